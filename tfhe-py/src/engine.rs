//! The evaluation engine: server key, public key and CRS of one key set, and every computing
//! call of the coprocessor. Each call releases the GIL and installs the server key in the
//! calling OS thread first (TFHE-rs keeps it thread-local), so Python threads compute in parallel.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tfhe::integer::ciphertext::IntegerProvenCompactCiphertextListConformanceParams;
use tfhe::prelude::*;
use tfhe::safe_serialization::safe_deserialize_conformant;
use tfhe::zk::{ZkComputeLoad, ZkPkeV2SupportedHashConfig};
use tfhe::ProvenCompactCiphertextList;

use crate::ct::{by_type, Ct, FheType};
use crate::device::Device;
use crate::errors::{ctx, guard, py_err, Failure, Res};
use crate::keys::{CompactPublicKey, CompressedServerKey, Crs, ServerKey};
use crate::ops::{execute, trivial, Op, Operand};
use crate::params::{pke_params, CIPHERTEXT_LIMIT, INPUT_METADATA_LEN, MAX_INPUT_ENTRIES};
use crate::pyconv::int_to_be32;
use crate::scalar::{be32_from_slice, Be32};

/// An immutable ciphertext of one fhEVM type.
#[pyclass(frozen, module = "tfhe_py")]
pub struct Ciphertext {
    pub inner: Arc<Ct>,
}

impl Ciphertext {
    pub fn new(ct: Ct) -> Self {
        Self {
            inner: Arc::new(ct),
        }
    }
}

#[pymethods]
impl Ciphertext {
    /// The fhEVM type number (byte 30 of a handle).
    #[getter]
    fn fhe_type(&self) -> u8 {
        self.inner.fhe_type() as u8
    }

    /// Raw safe-serialized bytes of the ciphertext (not the stored, compressed format).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let inner = self.inner.clone();
        let data = py
            .detach(|| guard(|| inner.to_raw_bytes()))
            .map_err(py_err)?;
        Ok(PyBytes::new(py, &data))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8], fhe_type: u8) -> PyResult<Self> {
        let t = FheType::from_u8(fhe_type).map_err(py_err)?;
        let ct = py
            .detach(|| guard(|| Ct::from_raw_bytes(data, t)))
            .map_err(py_err)?;
        Ok(Self::new(ct))
    }

    fn __repr__(&self) -> String {
        format!("<Ciphertext {}>", self.inner.fhe_type().name())
    }
}

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Which engine's server key this OS thread has installed (0: none).
    static INSTALLED: Cell<u64> = const { Cell::new(0) };
}

/// An operand as Python passes it: an owned handle on a ciphertext, or a plaintext.
enum OwnedOperand {
    Ct(Arc<Ct>),
    Scalar(Be32),
}

fn extract_operand(obj: &Bound<'_, PyAny>) -> PyResult<OwnedOperand> {
    if let Ok(ct) = obj.cast::<Ciphertext>() {
        return Ok(OwnedOperand::Ct(ct.get().inner.clone()));
    }
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return be32_from_slice(bytes.as_bytes())
            .map(OwnedOperand::Scalar)
            .map_err(py_err);
    }
    Err(PyTypeError::new_err(
        "an operand is a Ciphertext or a big-endian plaintext of at most 32 bytes",
    ))
}

/// Computes with one key set on one device; cheap to share between threads.
#[pyclass(frozen, module = "tfhe_py")]
pub struct Engine {
    id: u64,
    device: Device,
    public_key: Option<tfhe::CompactPublicKey>,
    crs: Option<tfhe::zk::CompactPkeCrs>,
}

impl Engine {
    fn with_device(
        device: Device,
        public_key: Option<&CompactPublicKey>,
        crs: Option<&Crs>,
    ) -> Self {
        Self {
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            device,
            public_key: public_key.map(|k| k.inner.clone()),
            crs: crs.map(|c| c.inner.clone()),
        }
    }

    /// Installs this engine's server key in the current OS thread, then runs `f` under the
    /// panic guard.
    fn run<T>(&self, f: impl FnOnce() -> Res<T>) -> Result<T, Failure> {
        guard(|| {
            if INSTALLED.with(Cell::get) != self.id {
                self.device.install();
                INSTALLED.with(|c| c.set(self.id));
            }
            f()
        })
    }

    fn public_key(&self, what: &str) -> Res<&tfhe::CompactPublicKey> {
        self.public_key
            .as_ref()
            .ok_or_else(|| format!("{what} needs the engine's compact public key"))
    }

    fn evaluate(
        &self,
        op: Op,
        operands: &[OwnedOperand],
        result_type: Option<FheType>,
        rerandomize: bool,
    ) -> Res<Ct> {
        let mut fresh: Vec<Ct> = Vec::new();
        if rerandomize {
            let public_key = self.public_key("re-randomization")?;
            fresh = operands
                .iter()
                .filter_map(|o| match o {
                    OwnedOperand::Ct(ct) => Some(Ct::clone(ct)),
                    OwnedOperand::Scalar(_) => None,
                })
                .collect();
            let description = (op as i32).to_be_bytes();
            Ct::rerandomize_all(&mut fresh, OPERATION_DOMAIN, &[&description], public_key)?;
        }
        let mut next_fresh = fresh.iter();
        let ops: Vec<Operand<'_>> = operands
            .iter()
            .map(|o| match o {
                OwnedOperand::Ct(_) if rerandomize => Operand::Ct(
                    next_fresh
                        .next()
                        .expect("one re-randomized copy per operand"),
                ),
                OwnedOperand::Ct(ct) => Operand::Ct(ct),
                OwnedOperand::Scalar(v) => Operand::Scalar(*v),
            })
            .collect();
        execute(op, &ops, result_type)
    }

    /// SPEC §6 steps 1-3: conformant deserialization, the proof against `metadata`, expansion
    /// without a second verification. An empty list is valid and verifies nothing.
    fn verify_and_expand_list(&self, data: &[u8], metadata: &[u8]) -> Res<Vec<Ct>> {
        let crs = self
            .crs
            .as_ref()
            .ok_or("input verification needs the engine's CRS")?;
        let public_key = self.public_key("input verification")?;
        if metadata.len() != INPUT_METADATA_LEN {
            return Err(format!(
                "input metadata is {INPUT_METADATA_LEN} bytes (contract, user, ACL, chain id), got {}",
                metadata.len()
            ));
        }
        let conformance =
            IntegerProvenCompactCiphertextListConformanceParams::from_public_key_encryption_parameters_and_crs_parameters(
                pke_params(),
                crs,
            )
            .forbid_hash_config(ZkPkeV2SupportedHashConfig::V0_4_0)
            .forbid_compute_load(ZkComputeLoad::Proof);
        let list: ProvenCompactCiphertextList =
            safe_deserialize_conformant(data, CIPHERTEXT_LIMIT, &conformance)
                .map_err(ctx("malformed or non-conformant proven input list"))?;
        if list.is_empty() {
            return Ok(Vec::new());
        }
        if list.len() > MAX_INPUT_ENTRIES {
            return Err(format!(
                "an input list holds at most {MAX_INPUT_ENTRIES} entries, got {}",
                list.len()
            ));
        }
        if list.verify(crs, public_key, metadata).is_invalid() {
            return Err("input proof rejected: ZK proof verification failed".to_string());
        }
        let expander = list
            .expand_without_verification()
            .map_err(ctx("cannot expand the verified list"))?;
        (0..expander.len())
            .map(|i| {
                let t = expander
                    .get_kind_of(i)
                    .ok_or_else(|| format!("input {i} has no type"))
                    .and_then(FheType::from_tfhe)?;
                by_type!(t, T => expander
                    .get::<T>(i)
                    .map_err(ctx(&format!("cannot expand input {i}")))?
                    .map(Ct::from)
                    .ok_or_else(|| format!("input {i} is missing")))
            })
            .collect()
    }
}

/// Domain separator of the re-randomization before each operation (reference scheduler).
const OPERATION_DOMAIN: [u8; 8] = *b"TFHE_Rrd";
/// Domain separator of the re-randomization of verified inputs (reference zkproof worker).
const INPUT_DOMAIN: [u8; 8] = *b"ZKw_Rrnd";

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (server_key, public_key=None, crs=None))]
    fn py_new(
        server_key: &ServerKey,
        public_key: Option<&CompactPublicKey>,
        crs: Option<&Crs>,
    ) -> Self {
        Self::with_device(Device::Cpu(server_key.inner.clone()), public_key, crs)
    }

    /// An engine on CUDA GPUs (`gpus`, or every visible one), the server key expanded onto each
    /// once from its compressed form. A CPU build or a machine without a GPU is a TfheError.
    #[staticmethod]
    #[pyo3(signature = (compressed_server_key, public_key=None, crs=None, gpus=None))]
    fn cuda(
        py: Python<'_>,
        compressed_server_key: &CompressedServerKey,
        public_key: Option<&CompactPublicKey>,
        crs: Option<&Crs>,
        gpus: Option<Vec<u32>>,
    ) -> PyResult<Self> {
        let gpus = gpus.unwrap_or_default();
        let device = py
            .detach(|| guard(|| Device::cuda(&compressed_server_key.inner, &gpus)))
            .map_err(py_err)?;
        Ok(Self::with_device(device, public_key, crs))
    }

    /// Where this engine computes: `cpu`, or `cuda:` and its GPU indexes.
    #[getter]
    fn device(&self) -> String {
        self.device.name()
    }

    /// Evaluates operator `opcode` (FHEVMExecutor numbering) on `operands`, each a Ciphertext
    /// or a big-endian plaintext. `result_type` is byte 30 of the result handle; with
    /// `rerandomize`, encrypted operands are re-randomized first with the seeded context.
    #[pyo3(signature = (opcode, operands, result_type=None, rerandomize=false))]
    fn execute(
        &self,
        py: Python<'_>,
        opcode: u8,
        operands: Vec<Bound<'_, PyAny>>,
        result_type: Option<u8>,
        rerandomize: bool,
    ) -> PyResult<Ciphertext> {
        let op = Op::from_u8(opcode).map_err(py_err)?;
        let result_type = result_type
            .map(FheType::from_u8)
            .transpose()
            .map_err(py_err)?;
        let owned = operands
            .iter()
            .map(extract_operand)
            .collect::<PyResult<Vec<_>>>()?;
        let ct = py
            .detach(|| self.run(|| self.evaluate(op, &owned, result_type, rerandomize)))
            .map_err(py_err)?;
        Ok(Ciphertext::new(ct))
    }

    /// A ciphertext of `value` without a key (the TrivialEncrypt operator's semantics).
    fn trivial_encrypt(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        fhe_type: u8,
    ) -> PyResult<Ciphertext> {
        let v = int_to_be32(value)?;
        let t = FheType::from_u8(fhe_type).map_err(py_err)?;
        let ct = py.detach(|| self.run(|| trivial(&v, t))).map_err(py_err)?;
        Ok(Ciphertext::new(ct))
    }

    /// The stored format (ct64): a single-element compressed list, safe-serialized.
    fn compress<'py>(&self, py: Python<'py>, ct: &Ciphertext) -> PyResult<Bound<'py, PyBytes>> {
        let inner = ct.inner.clone();
        let data = py
            .detach(|| self.run(|| inner.compress()))
            .map_err(py_err)?;
        Ok(PyBytes::new(py, &data))
    }

    fn decompress(&self, py: Python<'_>, data: &[u8]) -> PyResult<Ciphertext> {
        let ct = py
            .detach(|| self.run(|| Ct::decompress(data)))
            .map_err(py_err)?;
        Ok(Ciphertext::new(ct))
    }

    /// Switch-and-squash to the ct128 format.
    fn squash<'py>(&self, py: Python<'py>, ct: &Ciphertext) -> PyResult<Bound<'py, PyBytes>> {
        let inner = ct.inner.clone();
        let data = py.detach(|| self.run(|| inner.squash())).map_err(py_err)?;
        Ok(PyBytes::new(py, &data))
    }

    /// Re-randomizes `cts` together as before an operation: context `TFHE_Rrd` with
    /// `fn_description`, one seed per ciphertext in order.
    fn rerandomize(
        &self,
        py: Python<'_>,
        cts: Vec<PyRef<'_, Ciphertext>>,
        fn_description: Vec<Vec<u8>>,
    ) -> PyResult<Vec<Ciphertext>> {
        let mut owned: Vec<Ct> = cts.iter().map(|c| Ct::clone(&c.inner)).collect();
        let out = py
            .detach(|| {
                self.run(|| {
                    let parts: Vec<&[u8]> = fn_description.iter().map(Vec::as_slice).collect();
                    let public_key = self.public_key("re-randomization")?;
                    Ct::rerandomize_all(&mut owned, OPERATION_DOMAIN, &parts, public_key)?;
                    Ok(owned)
                })
            })
            .map_err(py_err)?;
        Ok(out.into_iter().map(Ciphertext::new).collect())
    }

    /// Checks and expands an untrusted proven input list (SPEC §6 steps 1-3): conformant
    /// deserialization, the ZK proof against the 92-byte `metadata`, expansion. The entries are
    /// not re-randomized yet: that needs their handle hashes (`rerandomize_inputs`).
    fn verify_and_expand(
        &self,
        py: Python<'_>,
        data: &[u8],
        metadata: &[u8],
    ) -> PyResult<Vec<Ciphertext>> {
        let cts = py
            .detach(|| self.run(|| self.verify_and_expand_list(data, metadata)))
            .map_err(py_err)?;
        Ok(cts.into_iter().map(Ciphertext::new).collect())
    }

    /// SPEC §6 step 4: entry i gets the full 32-byte handle hash `h_i` as re-randomization
    /// metadata; all go into one context `ZKw_Rrnd` over `blob_hash`, one seed each, in order.
    fn rerandomize_inputs(
        &self,
        py: Python<'_>,
        cts: Vec<PyRef<'_, Ciphertext>>,
        blob_hash: Vec<u8>,
        handle_hashes: Vec<Vec<u8>>,
    ) -> PyResult<Vec<Ciphertext>> {
        if cts.len() != handle_hashes.len() {
            return Err(py_err(format!(
                "{} ciphertexts but {} handle hashes",
                cts.len(),
                handle_hashes.len()
            )));
        }
        let mut owned: Vec<Ct> = cts.iter().map(|c| Ct::clone(&c.inner)).collect();
        let out = py
            .detach(|| {
                self.run(|| {
                    let public_key = self.public_key("re-randomization")?;
                    for (ct, h) in owned.iter_mut().zip(&handle_hashes) {
                        ct.set_rerandomization_metadata(h);
                    }
                    Ct::rerandomize_all(&mut owned, INPUT_DOMAIN, &[&blob_hash], public_key)?;
                    Ok(owned)
                })
            })
            .map_err(py_err)?;
        Ok(out.into_iter().map(Ciphertext::new).collect())
    }
}

//! Key material as Python objects, each saved and loaded with TFHE-rs safe serialization.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tfhe::core_crypto::commons::generators::DeterministicSeeder;
use tfhe::core_crypto::prelude::DefaultRandomGenerator;
use tfhe::named::Named;
use tfhe::safe_serialization::{safe_deserialize, safe_serialize};
use tfhe::shortint::engine::ShortintEngine;
use tfhe::zk::CompactPkeCrs;
use tfhe::{Seed, Unversionize, Versionize};

use crate::ct::{decrypt_squashed, Ct, FheType};
use crate::engine::Ciphertext;
use crate::errors::{ctx, guard, py_err, Res};
use crate::params::{config, CRS_MAX_BITS, KEY_LIMIT};
use crate::pyconv::{be_to_int, int_to_be};

fn to_vec<T: serde::Serialize + Versionize + Named>(x: &T) -> Res<Vec<u8>> {
    let mut buf = Vec::new();
    safe_serialize(x, &mut buf, KEY_LIMIT)
        .map_err(ctx(&format!("cannot serialize {}", T::NAME)))?;
    Ok(buf)
}

fn from_slice<T: serde::de::DeserializeOwned + Unversionize + Named>(data: &[u8]) -> Res<T> {
    safe_deserialize(data, KEY_LIMIT).map_err(ctx(&format!("not a serialized {}", T::NAME)))
}

/// Writes through a buffered file opened 0600: key files are secrets or large, never both copied.
fn save_file<T: serde::Serialize + Versionize + Named>(x: &T, path: &PathBuf) -> Res<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(ctx(&format!("cannot write {}", path.display())))?;
    let mut writer = BufWriter::new(file);
    safe_serialize(x, &mut writer, KEY_LIMIT)
        .map_err(ctx(&format!("cannot serialize {}", T::NAME)))?;
    writer
        .flush()
        .map_err(ctx(&format!("cannot write {}", path.display())))
}

/// Streams from the file into the object: no second in-memory copy of GB-sized keys.
fn load_file<T: serde::de::DeserializeOwned + Unversionize + Named>(path: &PathBuf) -> Res<T> {
    let file = File::open(path).map_err(ctx(&format!("cannot read {}", path.display())))?;
    safe_deserialize(BufReader::new(file), KEY_LIMIT).map_err(ctx(&format!(
        "{} is not a serialized {}",
        path.display(),
        T::NAME
    )))
}

/// Runs `f` with this thread's TFHE-rs key-generation engine seeded from `seed`, then puts the
/// previous engine back: what `f` draws (a derived key) is the same on every machine.
fn seeded<T>(seed: u128, f: impl FnOnce() -> T) -> T {
    let mut seeder = DeterministicSeeder::<DefaultRandomGenerator>::new(Seed(seed));
    let engine = ShortintEngine::new_from_seeder(&mut seeder);
    let previous = ShortintEngine::with_thread_local_mut(|e| std::mem::replace(e, engine));
    let out = f();
    ShortintEngine::with_thread_local_mut(|e| *e = previous);
    out
}

/// Serialization methods shared by every key class: bytes and files, GIL released.
macro_rules! key_io {
    ($py_ty:ident, $inner:ty) => {
        #[pymethods]
        impl $py_ty {
            /// Safe-serialized bytes.
            fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
                let data = py
                    .detach(|| guard(|| to_vec(&self.inner)))
                    .map_err(py_err)?;
                Ok(PyBytes::new(py, &data))
            }

            #[staticmethod]
            fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
                let inner = py
                    .detach(|| guard(|| from_slice::<$inner>(data)))
                    .map_err(py_err)?;
                Ok(Self { inner })
            }

            /// Writes the key to `path` with 0600 permissions.
            fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
                py.detach(|| guard(|| save_file(&self.inner, &path)))
                    .map_err(py_err)
            }

            #[staticmethod]
            fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
                let inner = py
                    .detach(|| guard(|| load_file::<$inner>(&path)))
                    .map_err(py_err)?;
                Ok(Self { inner })
            }
        }
    };
}

/// The secret key: encrypts and decrypts (tests, demo, debugging) and derives the others.
#[pyclass(frozen, module = "tfhe_py")]
pub struct ClientKey {
    pub inner: tfhe::ClientKey,
}
key_io!(ClientKey, tfhe::ClientKey);

#[pymethods]
impl ClientKey {
    /// A new client key of the fhEVM parameter set; with `seed`, the same key every time.
    #[staticmethod]
    #[pyo3(signature = (seed=None))]
    fn generate(py: Python<'_>, seed: Option<u128>) -> PyResult<Self> {
        let inner = py
            .detach(|| {
                guard(|| {
                    Ok(match seed {
                        Some(s) => tfhe::ClientKey::generate_with_seed(config(), Seed(s)),
                        None => tfhe::ClientKey::generate(config()),
                    })
                })
            })
            .map_err(py_err)?;
        Ok(Self { inner })
    }

    /// The server key with compression, noise squashing and re-randomization material, in its
    /// compressed form: what a GPU engine expands (`Engine.cuda`) and what a CPU engine
    /// decompresses (`decompress`), so CPU and GPU coprocessors of one key set compute with one
    /// key. This is the only way to make a server key here.
    ///
    /// Server keys are random: coprocessors agree on bytes only when they compute with the same
    /// one. With `seed`, the key is derived deterministically (the same seed and client key give
    /// the same key on every machine), which is how test and devnet deployments share one key
    /// without shipping it; a production network distributes its key instead.
    #[pyo3(signature = (seed=None))]
    fn compressed_server_key(
        &self,
        py: Python<'_>,
        seed: Option<u128>,
    ) -> PyResult<CompressedServerKey> {
        let inner = py
            .detach(|| {
                guard(|| {
                    Ok(match seed {
                        Some(s) => seeded(s, || self.inner.generate_compressed_server_key()),
                        None => self.inner.generate_compressed_server_key(),
                    })
                })
            })
            .map_err(py_err)?;
        Ok(CompressedServerKey { inner })
    }

    fn public_key(&self, py: Python<'_>) -> PyResult<CompactPublicKey> {
        let inner = py
            .detach(|| {
                guard(|| tfhe::CompactPublicKey::try_new(&self.inner).map_err(ctx("public key")))
            })
            .map_err(py_err)?;
        Ok(CompactPublicKey { inner })
    }

    /// Encrypts `value` as `fhe_type`; a value wider than the type is an error.
    fn encrypt(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        fhe_type: u8,
    ) -> PyResult<Ciphertext> {
        let t = FheType::from_u8(fhe_type).map_err(py_err)?;
        let v = int_to_be(value, t.bytes().max(32))?;
        let ct = py
            .detach(|| guard(|| Ct::encrypt(&v, t, &self.inner)))
            .map_err(py_err)?;
        Ok(Ciphertext::new(ct))
    }

    fn decrypt<'py>(&self, py: Python<'py>, ct: &Ciphertext) -> PyResult<Bound<'py, PyAny>> {
        let inner = ct.inner.clone();
        let v = py
            .detach(|| guard(|| Ok(inner.decrypt(&self.inner))))
            .map_err(py_err)?;
        be_to_int(py, &v)
    }

    /// Decrypts a ct128 (noise-squashed, compressed) of type `fhe_type`.
    fn decrypt_squashed<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        fhe_type: u8,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = FheType::from_u8(fhe_type).map_err(py_err)?;
        let v = py
            .detach(|| guard(|| decrypt_squashed(data, t, &self.inner)))
            .map_err(py_err)?;
        be_to_int(py, &v)
    }
}

/// The evaluation key: what a coprocessor computes with.
#[pyclass(frozen, module = "tfhe_py")]
pub struct ServerKey {
    pub inner: tfhe::ServerKey,
}
key_io!(ServerKey, tfhe::ServerKey);

#[pymethods]
impl ServerKey {
    #[getter]
    fn supports_noise_squashing(&self) -> bool {
        self.inner.supports_noise_squashing()
    }

    #[getter]
    fn supports_compression(&self) -> bool {
        self.inner.supports_compression()
    }
}

/// The seeded form of the server key: smaller to store and ship, decompressed once per process.
#[pyclass(frozen, module = "tfhe_py")]
pub struct CompressedServerKey {
    pub inner: tfhe::CompressedServerKey,
}
key_io!(CompressedServerKey, tfhe::CompressedServerKey);

#[pymethods]
impl CompressedServerKey {
    fn decompress(&self, py: Python<'_>) -> PyResult<ServerKey> {
        let inner = py
            .detach(|| guard(|| Ok(self.inner.decompress())))
            .map_err(py_err)?;
        Ok(ServerKey { inner })
    }
}

/// The key users encrypt inputs with (and the re-randomization key of this parameter set).
#[pyclass(frozen, module = "tfhe_py")]
pub struct CompactPublicKey {
    pub inner: tfhe::CompactPublicKey,
}
key_io!(CompactPublicKey, tfhe::CompactPublicKey);

/// The common reference string of the input proofs.
#[pyclass(frozen, module = "tfhe_py")]
pub struct Crs {
    pub inner: CompactPkeCrs,
}
key_io!(Crs, CompactPkeCrs);

#[pymethods]
impl Crs {
    /// A new CRS for lists of up to `max_bits` bits (2048 in the protocol).
    #[staticmethod]
    #[pyo3(signature = (max_bits=CRS_MAX_BITS))]
    fn generate(py: Python<'_>, max_bits: usize) -> PyResult<Self> {
        let inner = py
            .detach(|| {
                guard(|| {
                    CompactPkeCrs::from_config(config(), max_bits).map_err(ctx("CRS generation"))
                })
            })
            .map_err(py_err)?;
        Ok(Self { inner })
    }
}

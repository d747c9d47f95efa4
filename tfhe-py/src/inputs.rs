//! The client side of encrypted inputs: build and prove a list, as the JS SDK does. Used by
//! tests and demo traffic; the coprocessor itself only verifies (see `Engine.verify_and_expand`).

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tfhe::integer::bigint::{U1024, U2048};
use tfhe::integer::{U256, U512};
use tfhe::safe_serialization::safe_serialize;
use tfhe::zk::ZkComputeLoad;
use tfhe::ProvenCompactCiphertextList;

use crate::ct::{check_fits, FheType};
use crate::errors::{ctx, guard, py_err, Res};
use crate::keys::{CompactPublicKey, Crs};
use crate::params::{CIPHERTEXT_LIMIT, INPUT_METADATA_LEN, MAX_INPUT_ENTRIES};
use crate::pyconv::int_to_be;
use crate::scalar::Clear;

fn build(
    public_key: &tfhe::CompactPublicKey,
    crs: &tfhe::zk::CompactPkeCrs,
    values: &[(Vec<u8>, FheType)],
    metadata: &[u8],
    seed: Option<&[u8]>,
    load: ZkComputeLoad,
) -> Res<Vec<u8>> {
    if values.len() > MAX_INPUT_ENTRIES {
        return Err(format!(
            "an input list holds at most {MAX_INPUT_ENTRIES} entries"
        ));
    }
    if metadata.len() != INPUT_METADATA_LEN {
        return Err(format!(
            "input metadata is {INPUT_METADATA_LEN} bytes, got {}",
            metadata.len()
        ));
    }
    let mut builder = ProvenCompactCiphertextList::builder(public_key);
    for (value, t) in values {
        check_fits(value, *t)?;
        let pushed = match t {
            FheType::Bool => Ok(builder.push(bool::from_be_slice(value))),
            FheType::Uint4 => builder.push_with_num_bits(u8::from_be_slice(value), 4),
            FheType::Uint8 => Ok(builder.push(u8::from_be_slice(value))),
            FheType::Uint16 => Ok(builder.push(u16::from_be_slice(value))),
            FheType::Uint32 => Ok(builder.push(u32::from_be_slice(value))),
            FheType::Uint64 => Ok(builder.push(u64::from_be_slice(value))),
            FheType::Uint128 => Ok(builder.push(u128::from_be_slice(value))),
            FheType::Uint160 => builder.push_with_num_bits(U256::from_be_slice(value), 160),
            FheType::Uint256 => Ok(builder.push(U256::from_be_slice(value))),
            FheType::Uint512 => builder.push_with_num_bits(U512::from_be_slice(value), 512),
            FheType::Uint1024 => builder.push_with_num_bits(U1024::from_be_slice(value), 1024),
            FheType::Uint2048 => builder.push_with_num_bits(U2048::from_be_slice(value), 2048),
        };
        pushed.map_err(ctx(&format!("cannot add a {}", t.name())))?;
    }
    let list = match seed {
        Some(s) => builder.build_with_proof_packed_seeded(crs, metadata, load, s),
        None => builder.build_with_proof_packed(crs, metadata, load),
    }
    .map_err(ctx("proof generation failed"))?;
    let mut out = Vec::new();
    safe_serialize(&list, &mut out, CIPHERTEXT_LIMIT).map_err(ctx("serialization failed"))?;
    Ok(out)
}

/// Encrypts `values` (pairs of int and FHE type) under `public_key` and proves them against
/// `crs` with the 92-byte `metadata`; returns the serialized `ProvenCompactCiphertextList`.
/// With `seed`, encryption and proof are deterministic (tests only: the seed is a secret).
/// `compute_load` is "verify" (what clients send) or "proof" (refused by the coprocessor; tests).
#[pyfunction]
#[pyo3(signature = (public_key, crs, values, metadata, seed=None, compute_load="verify"))]
pub fn build_proven_list<'py>(
    py: Python<'py>,
    public_key: &CompactPublicKey,
    crs: &Crs,
    values: Vec<(Bound<'py, PyAny>, u8)>,
    metadata: &[u8],
    seed: Option<&[u8]>,
    compute_load: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let load = match compute_load {
        "verify" => ZkComputeLoad::Verify,
        "proof" => ZkComputeLoad::Proof,
        other => {
            return Err(py_err(format!(
                "compute_load is 'verify' or 'proof', got {other:?}"
            )))
        }
    };
    let values = values
        .iter()
        .map(|(v, t)| {
            let t = FheType::from_u8(*t).map_err(py_err)?;
            Ok((int_to_be(v, t.bytes().max(32))?, t))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let data = py
        .detach(|| guard(|| build(&public_key.inner, &crs.inner, &values, metadata, seed, load)))
        .map_err(py_err)?;
    Ok(PyBytes::new(py, &data))
}

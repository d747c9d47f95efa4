//! Switch-and-squash as the reference sns-worker does it with compression on
//! (`sns-worker/src/executor.rs` `compute_task` + `decompress_ct`, `sns-worker/src/squash_noise.rs`
//! `squash_noise_and_serialize(true)`), re-sequenced from `fhevm-engine-common` and TFHE-rs public
//! functions: the sns-worker crate itself needs a database and the rest of the monorepo.
//!
//! The caller installs the server key on the calling thread (`tfhe::set_server_key`), as the
//! sns-worker does on every thread of its pool.

use fhevm_engine_common::types::SupportedFheCiphertexts;
use tfhe::prelude::SquashNoise;
use tfhe::{
    CompressedSquashedNoiseCiphertextListBuilder, SquashedNoiseFheBool, SquashedNoiseFheUint,
};

/// `sns-worker` `SAFE_SER_LIMIT` (the limit does not change the bytes).
pub const SNS_SER_LIMIT: u64 = 1024 * 1024 * 66;

/// The ct128 of one stored ct64 of type `ct_type` (byte 30 of its handle):
/// `decompress_no_memcheck`, `squash_noise()`, a one-element
/// `CompressedSquashedNoiseCiphertextListBuilder` list, `safe_serialize`.
pub fn squash_ct64(ct_type: i16, ct64: &[u8]) -> Result<Vec<u8>, String> {
    if ct64.is_empty() {
        // compute_task skips empty ciphertexts.
        return Err("empty ciphertext64".into());
    }
    let ct = SupportedFheCiphertexts::decompress_no_memcheck(ct_type, ct64)
        .map_err(|e| format!("decompress: {e}"))?;
    let mut builder = CompressedSquashedNoiseCiphertextListBuilder::new();
    fn uint(
        v: &impl SquashNoise<Output = SquashedNoiseFheUint>,
    ) -> Result<SquashedNoiseFheUint, String> {
        v.squash_noise().map_err(|e| format!("squash_noise: {e}"))
    }
    match &ct {
        SupportedFheCiphertexts::FheBool(v) => {
            let q: SquashedNoiseFheBool =
                v.squash_noise().map_err(|e| format!("squash_noise: {e}"))?;
            builder.push(q);
        }
        SupportedFheCiphertexts::FheUint4(v) => {
            builder.push(uint(v)?);
        }
        SupportedFheCiphertexts::FheUint8(v) => {
            builder.push(uint(v)?);
        }
        SupportedFheCiphertexts::FheUint16(v) => {
            builder.push(uint(v)?);
        }
        SupportedFheCiphertexts::FheUint32(v) => {
            builder.push(uint(v)?);
        }
        SupportedFheCiphertexts::FheUint64(v) => {
            builder.push(uint(v)?);
        }
        SupportedFheCiphertexts::FheUint128(v) => {
            builder.push(uint(v)?);
        }
        SupportedFheCiphertexts::FheUint160(v) => {
            builder.push(uint(v)?);
        }
        SupportedFheCiphertexts::FheUint256(v) => {
            builder.push(uint(v)?);
        }
        SupportedFheCiphertexts::FheBytes64(v) => {
            builder.push(uint(v)?);
        }
        SupportedFheCiphertexts::FheBytes128(v) => {
            builder.push(uint(v)?);
        }
        SupportedFheCiphertexts::FheBytes256(v) => {
            builder.push(uint(v)?);
        }
        other => return Err(format!("no squash for {}", other.type_name())),
    }
    let list = builder.build().map_err(|e| format!("compress: {e}"))?;
    let mut ct128 = vec![];
    tfhe::safe_serialization::safe_serialize(&list, &mut ct128, SNS_SER_LIMIT)
        .map_err(|e| format!("serialize: {e}"))?;
    Ok(ct128)
}

//! The one parameter set of the fhEVM protocol, and the serialization limits.
//!
//! Parameters are always passed explicitly: TFHE-rs defaults differ between builds (the `gpu`
//! feature changes them), and a coprocessor must produce the same bytes as its peers.

use tfhe::shortint::parameters::v1_5::meta::cpu::V1_5_META_PARAM_CPU_2_2_KS_PBS_PKE_TO_SMALL_ZKV2_TUNIFORM_2M128 as FHEVM_META;
use tfhe::shortint::parameters::{CompactPublicKeyEncryptionParameters, MetaParameters};
use tfhe::Config;

/// Name of the parameter set, for logs and key metadata.
pub const PARAMETER_SET: &str = "V1_5_META_PARAM_CPU_2_2_KS_PBS_PKE_TO_SMALL_ZKV2_TUNIFORM_2M128";
/// Size limit of a serialized ciphertext or ciphertext list.
pub const CIPHERTEXT_LIMIT: u64 = 16 << 20;
/// Size limit of a serialized key (the server key with noise squashing is about 1.6 GB).
pub const KEY_LIMIT: u64 = 2 << 30;
/// Bits a CRS can prove in one list: 2048, as the protocol's clients expect.
pub const CRS_MAX_BITS: usize = 2048;
/// Most entries in one input list (the handle index is one byte, 0xff is reserved).
pub const MAX_INPUT_ENTRIES: usize = 255;
/// Length of the metadata bound to an input proof: contract, user, ACL, chain id.
pub const INPUT_METADATA_LEN: usize = 92;

pub fn meta() -> MetaParameters {
    FHEVM_META
}

pub fn config() -> Config {
    Config::from(meta())
}

pub fn pke_params() -> CompactPublicKeyEncryptionParameters {
    meta()
        .dedicated_compact_public_key_parameters
        .expect("the fhEVM parameter set has a dedicated compact public key")
        .pke_params
}

//! Code shared by the two binaries of this tool: `reference-vectors` (golden vectors) and
//! `reference-bench` (the reference coprocessor's own code path on exported work).
//!
//! Only sequencing of the reference's public functions lives here; no reference code is copied.

use sha3::{Digest, Keccak256};

pub mod sns;

/// Limit of the key files (they were written with this limit).
pub const KEY_LIMIT: u64 = 1 << 31;

/// Keccak-256, the digest our pipeline commits for ct64 and ct128 bytes.
pub fn keccak(data: &[u8]) -> [u8; 32] {
    Keccak256::digest(data).into()
}

/// `0x`-prefixed lowercase hex.
pub fn hex0x(data: &[u8]) -> String {
    format!("0x{}", hex::encode(data))
}

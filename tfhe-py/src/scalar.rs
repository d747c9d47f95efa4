//! Plaintext values as 32-byte big-endian words, the form they take in fhEVM events.

use tfhe::integer::U256;

/// A plaintext as it appears in events: 32 bytes, big-endian.
pub type Be32 = [u8; 32];

/// Left-pads a big-endian value of at most 32 bytes.
pub fn be32_from_slice(bytes: &[u8]) -> Result<Be32, String> {
    if bytes.len() > 32 {
        return Err(format!(
            "a plaintext has at most 32 bytes, got {}",
            bytes.len()
        ));
    }
    let mut out = [0u8; 32];
    out[32 - bytes.len()..].copy_from_slice(bytes);
    Ok(out)
}

/// Truncates from the left to `bits` (a whole number of bytes, or 1 for Bool), as the
/// protocol does with scalar operands.
pub fn truncate(value: &Be32, bits: u32) -> Be32 {
    let keep = bits.div_ceil(8) as usize;
    let mut out = *value;
    out[..32 - keep].fill(0);
    out
}

/// Number of significant bits.
pub fn bit_length(value: &Be32) -> u32 {
    value
        .iter()
        .position(|b| *b != 0)
        .map_or(0, |i| (32 - i as u32) * 8 - value[i].leading_zeros())
}

/// Reads the low bits of a 32-byte word as `u128`, for shift amounts and bounds.
pub fn low_u128(value: &Be32) -> u128 {
    u128::from_be_bytes(value[16..].try_into().expect("16 bytes"))
}

/// True when the value needs more than 128 bits.
pub fn exceeds_u128(value: &Be32) -> bool {
    value[..16].iter().any(|b| *b != 0)
}

/// A clear type of TFHE-rs that converts from and to the 32-byte form.
pub trait ClearValue: Sized {
    /// Truncating conversion: the caller has already checked or truncated the width.
    fn from_be32(value: &Be32) -> Self;
    fn to_be32(self) -> Be32;
}

impl ClearValue for bool {
    fn from_be32(value: &Be32) -> Self {
        value[31] != 0
    }
    fn to_be32(self) -> Be32 {
        let mut out = [0u8; 32];
        out[31] = u8::from(self);
        out
    }
}

macro_rules! clear_uint {
    ($($t:ty),*) => {$(
        impl ClearValue for $t {
            fn from_be32(value: &Be32) -> Self {
                const N: usize = std::mem::size_of::<$t>();
                <$t>::from_be_bytes(value[32 - N..].try_into().expect("width"))
            }
            fn to_be32(self) -> Be32 {
                const N: usize = std::mem::size_of::<$t>();
                let mut out = [0u8; 32];
                out[32 - N..].copy_from_slice(&self.to_be_bytes());
                out
            }
        }
    )*};
}
clear_uint!(u8, u16, u32, u64, u128);

impl ClearValue for U256 {
    fn from_be32(value: &Be32) -> Self {
        let mut out = U256::ZERO;
        out.copy_from_be_byte_slice(value);
        out
    }
    fn to_be32(self) -> Be32 {
        let mut out = [0u8; 32];
        self.copy_to_be_byte_slice(&mut out);
        out
    }
}

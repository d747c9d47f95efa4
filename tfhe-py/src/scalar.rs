//! Plaintext values: 32-byte big-endian words (the form they take in fhEVM events), and the
//! big-endian conversions of TFHE-rs clear types.

use tfhe::integer::bigint::StaticUnsignedBigInt;

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
/// protocol does with scalar operands; widths of 256 bits or more keep the whole word.
pub fn truncate(value: &Be32, bits: u32) -> Be32 {
    let keep = (bits.div_ceil(8) as usize).min(32);
    let mut out = *value;
    out[..32 - keep].fill(0);
    out
}

/// Number of significant bits of a big-endian value.
pub fn bit_length(value: &[u8]) -> u32 {
    value.iter().position(|b| *b != 0).map_or(0, |i| {
        u32::try_from(value.len() - i).expect("short value") * 8 - value[i].leading_zeros()
    })
}

/// Reads the low bits of a 32-byte word as `u128`, for shift amounts and bounds.
pub fn low_u128(value: &Be32) -> u128 {
    u128::from_be_bytes(value[16..].try_into().expect("16 bytes"))
}

/// True when the value needs more than 128 bits.
pub fn exceeds_u128(value: &Be32) -> bool {
    value[..16].iter().any(|b| *b != 0)
}

/// A clear type of TFHE-rs read from and written to big-endian bytes.
pub trait Clear: Sized {
    /// Reads the low bytes of a big-endian value of any length (the protocol truncates
    /// scalars from the left, as the reference's `to_be_uN_bit` do).
    fn from_be_slice(value: &[u8]) -> Self;
    fn to_be_vec(self) -> Vec<u8>;
}

/// Left-pads or left-truncates a big-endian value to exactly `len` bytes.
pub fn pad(value: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let take = value.len().min(len);
    out[len - take..].copy_from_slice(&value[value.len() - take..]);
    out
}

fn fixed<const N: usize>(value: &[u8]) -> [u8; N] {
    pad(value, N).try_into().expect("pad returns N bytes")
}

/// A Bool scalar is true when any byte is non-zero (the reference's `arr_non_zero`, SPEC §4).
impl Clear for bool {
    fn from_be_slice(value: &[u8]) -> Self {
        value.iter().any(|b| *b != 0)
    }
    fn to_be_vec(self) -> Vec<u8> {
        vec![u8::from(self)]
    }
}

macro_rules! clear_uint {
    ($($t:ty),*) => {$(
        impl Clear for $t {
            fn from_be_slice(value: &[u8]) -> Self {
                <$t>::from_be_bytes(fixed(value))
            }
            fn to_be_vec(self) -> Vec<u8> {
                self.to_be_bytes().to_vec()
            }
        }
    )*};
}
clear_uint!(u8, u16, u32, u64, u128);

impl<const N: usize> Clear for StaticUnsignedBigInt<N> {
    fn from_be_slice(value: &[u8]) -> Self {
        let mut out = Self::ZERO;
        out.copy_from_be_byte_slice(&pad(value, N * 8));
        out
    }
    fn to_be_vec(self) -> Vec<u8> {
        let mut out = vec![0u8; N * 8];
        self.copy_to_be_byte_slice(&mut out);
        out
    }
}

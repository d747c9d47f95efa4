//! Ciphertexts of the fhEVM types as one enum, and what every type can do alike:
//! (de)serialization, compression, noise squashing, re-randomization, client-key encryption.

use tfhe::integer::bigint::{U1024, U2048};
use tfhe::integer::ciphertext::ReRandomizationSeed;
use tfhe::integer::{U256, U512};
use tfhe::prelude::*;
use tfhe::safe_serialization::{safe_deserialize, safe_deserialize_conformant, safe_serialize};
use tfhe::{
    ClientKey, CompactPublicKey, CompressedCiphertextList, CompressedCiphertextListBuilder,
    CompressedSquashedNoiseCiphertextList, FheBool, FheTypes, FheUint1024, FheUint128, FheUint16,
    FheUint160, FheUint2048, FheUint256, FheUint32, FheUint4, FheUint512, FheUint64, FheUint8,
    ReRandomizationContext, SquashedNoiseFheBool, SquashedNoiseFheUint,
};

use crate::errors::{ctx, Res};
use crate::params::{meta, CIPHERTEXT_LIMIT};
use crate::scalar::{bit_length, pad, Clear};

/// The ciphertext types of handles (byte 30) and TFHE-rs `FheTypes`. Operators accept the
/// types of SPEC §4 only; Uint4 and the 512/1024/2048-bit types still arrive in input lists,
/// which the reference accepts, so they are expanded, stored, squashed and decrypted like any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FheType {
    Bool = 0,
    Uint4 = 1,
    Uint8 = 2,
    Uint16 = 3,
    Uint32 = 4,
    Uint64 = 5,
    Uint128 = 6,
    Uint160 = 7,
    Uint256 = 8,
    Uint512 = 9,
    Uint1024 = 10,
    Uint2048 = 11,
}

impl FheType {
    pub const ALL: [FheType; 12] = [
        FheType::Bool,
        FheType::Uint4,
        FheType::Uint8,
        FheType::Uint16,
        FheType::Uint32,
        FheType::Uint64,
        FheType::Uint128,
        FheType::Uint160,
        FheType::Uint256,
        FheType::Uint512,
        FheType::Uint1024,
        FheType::Uint2048,
    ];

    pub fn from_u8(v: u8) -> Res<Self> {
        Self::ALL
            .into_iter()
            .find(|t| *t as u8 == v)
            .ok_or_else(|| format!("unknown FHE type {v}"))
    }

    pub fn from_tfhe(t: FheTypes) -> Res<Self> {
        Self::from_u8(t as u8).map_err(ctx("unsupported ciphertext kind in list"))
    }

    pub fn bits(self) -> u32 {
        match self {
            FheType::Bool => 1,
            FheType::Uint4 => 4,
            FheType::Uint8 => 8,
            FheType::Uint16 => 16,
            FheType::Uint32 => 32,
            FheType::Uint64 => 64,
            FheType::Uint128 => 128,
            FheType::Uint160 => 160,
            FheType::Uint256 => 256,
            FheType::Uint512 => 512,
            FheType::Uint1024 => 1024,
            FheType::Uint2048 => 2048,
        }
    }

    /// Bytes of a big-endian plaintext of this type (at least one).
    pub fn bytes(self) -> usize {
        self.bits().div_ceil(8) as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            FheType::Bool => "Bool",
            FheType::Uint4 => "Uint4",
            FheType::Uint8 => "Uint8",
            FheType::Uint16 => "Uint16",
            FheType::Uint32 => "Uint32",
            FheType::Uint64 => "Uint64",
            FheType::Uint128 => "Uint128",
            FheType::Uint160 => "Uint160",
            FheType::Uint256 => "Uint256",
            FheType::Uint512 => "Uint512",
            FheType::Uint1024 => "Uint1024",
            FheType::Uint2048 => "Uint2048",
        }
    }
}

/// A ciphertext of one of the handle types.
#[derive(Clone)]
pub enum Ct {
    Bool(FheBool),
    U4(FheUint4),
    U8(FheUint8),
    U16(FheUint16),
    U32(FheUint32),
    U64(FheUint64),
    U128(FheUint128),
    U160(FheUint160),
    U256(FheUint256),
    U512(FheUint512),
    U1024(FheUint1024),
    U2048(FheUint2048),
}

macro_rules! ct_from {
    ($($v:ident: $t:ty),*) => {$(
        impl From<$t> for Ct {
            fn from(x: $t) -> Self { Ct::$v(x) }
        }
    )*};
}
ct_from!(Bool: FheBool, U4: FheUint4, U8: FheUint8, U16: FheUint16, U32: FheUint32,
         U64: FheUint64, U128: FheUint128, U160: FheUint160, U256: FheUint256,
         U512: FheUint512, U1024: FheUint1024, U2048: FheUint2048);

/// Applies the same expression to whichever ciphertext type `$ct` holds.
macro_rules! each_ct {
    ($ct:expr, $x:ident => $body:expr) => {
        match $ct {
            Ct::Bool($x) => $body,
            Ct::U4($x) => $body,
            Ct::U8($x) => $body,
            Ct::U16($x) => $body,
            Ct::U32($x) => $body,
            Ct::U64($x) => $body,
            Ct::U128($x) => $body,
            Ct::U160($x) => $body,
            Ct::U256($x) => $body,
            Ct::U512($x) => $body,
            Ct::U1024($x) => $body,
            Ct::U2048($x) => $body,
        }
    };
}

/// Runs `$body` with `$T` bound to the TFHE-rs type of an [`FheType`].
macro_rules! by_type {
    ($t:expr, $T:ident => $body:expr) => {
        match $t {
            FheType::Bool => {
                type $T = tfhe::FheBool;
                $body
            }
            FheType::Uint4 => {
                type $T = tfhe::FheUint4;
                $body
            }
            FheType::Uint8 => {
                type $T = tfhe::FheUint8;
                $body
            }
            FheType::Uint16 => {
                type $T = tfhe::FheUint16;
                $body
            }
            FheType::Uint32 => {
                type $T = tfhe::FheUint32;
                $body
            }
            FheType::Uint64 => {
                type $T = tfhe::FheUint64;
                $body
            }
            FheType::Uint128 => {
                type $T = tfhe::FheUint128;
                $body
            }
            FheType::Uint160 => {
                type $T = tfhe::FheUint160;
                $body
            }
            FheType::Uint256 => {
                type $T = tfhe::FheUint256;
                $body
            }
            FheType::Uint512 => {
                type $T = tfhe::FheUint512;
                $body
            }
            FheType::Uint1024 => {
                type $T = tfhe::FheUint1024;
                $body
            }
            FheType::Uint2048 => {
                type $T = tfhe::FheUint2048;
                $body
            }
        }
    };
}
pub(crate) use by_type;

fn serialize<T: serde::Serialize + tfhe::Versionize + tfhe::named::Named>(x: &T) -> Res<Vec<u8>> {
    let mut buf = Vec::new();
    safe_serialize(x, &mut buf, CIPHERTEXT_LIMIT).map_err(ctx("serialization failed"))?;
    Ok(buf)
}

impl Ct {
    pub fn fhe_type(&self) -> FheType {
        match self {
            Ct::Bool(_) => FheType::Bool,
            Ct::U4(_) => FheType::Uint4,
            Ct::U8(_) => FheType::Uint8,
            Ct::U16(_) => FheType::Uint16,
            Ct::U32(_) => FheType::Uint32,
            Ct::U64(_) => FheType::Uint64,
            Ct::U128(_) => FheType::Uint128,
            Ct::U160(_) => FheType::Uint160,
            Ct::U256(_) => FheType::Uint256,
            Ct::U512(_) => FheType::Uint512,
            Ct::U1024(_) => FheType::Uint1024,
            Ct::U2048(_) => FheType::Uint2048,
        }
    }

    /// Raw `safe_serialize` bytes of the ciphertext itself (not the stored format).
    pub fn to_raw_bytes(&self) -> Res<Vec<u8>> {
        each_ct!(self, x => serialize(x))
    }

    /// Conformant deserialization: the bytes must be a ciphertext of exactly type `t` under the
    /// fhEVM parameters (a Uint8 does not pass for a Uint64, a count of blocks being checked).
    pub fn from_raw_bytes(data: &[u8], t: FheType) -> Res<Self> {
        let compute = meta().compute_parameters;
        by_type!(t, T => safe_deserialize_conformant::<T>(
            data,
            CIPHERTEXT_LIMIT,
            &<T as ParameterSetConformant>::ParameterSet::from(compute),
        )
        .map(Ct::from)
        .map_err(ctx(&format!("not a serialized {} ciphertext", t.name()))))
    }

    /// The stored format (ct64): a single-element `CompressedCiphertextList`, safe-serialized.
    pub fn compress(&self) -> Res<Vec<u8>> {
        let mut builder = CompressedCiphertextListBuilder::new();
        each_ct!(self, x => builder.push(x.clone()));
        let list = builder.build().map_err(ctx("compression failed"))?;
        serialize(&list)
    }

    pub fn decompress(data: &[u8]) -> Res<Self> {
        let list: CompressedCiphertextList = safe_deserialize(data, CIPHERTEXT_LIMIT)
            .map_err(ctx("not a serialized CompressedCiphertextList"))?;
        if list.len() != 1 {
            return Err(format!(
                "a stored ciphertext holds exactly one element, this list holds {}",
                list.len()
            ));
        }
        let kind = list
            .get_kind_of(0)
            .ok_or("the compressed list has no element kind")?;
        let t = FheType::from_tfhe(kind)?;
        by_type!(t, T => list.get::<T>(0)
            .map_err(ctx("decompression failed"))?
            .map(Ct::from)
            .ok_or_else(|| "the compressed list is empty".to_string()))
    }

    /// Switch-and-squash (ct128): squashed, put in a `CompressedSquashedNoiseCiphertextList`.
    pub fn squash(&self) -> Res<Vec<u8>> {
        let mut builder = CompressedSquashedNoiseCiphertextList::builder();
        each_ct!(self, x => {
            let squashed = x.squash_noise().map_err(ctx("noise squashing failed"))?;
            builder.push(squashed);
        });
        let list = builder
            .build()
            .map_err(ctx("squashed-noise compression failed"))?;
        serialize(&list)
    }

    /// Re-randomizes with the seeded context of the reference coprocessor: every ciphertext
    /// (with its re-randomization metadata) goes into the context, then one seed each, in order.
    pub fn rerandomize_all(
        cts: &mut [Ct],
        domain: [u8; 8],
        fn_description: &[&[u8]],
        public_key: &CompactPublicKey,
    ) -> Res<()> {
        let mut context =
            ReRandomizationContext::new(domain, fn_description.iter().copied(), *b"TFHE_Enc");
        for ct in cts.iter() {
            each_ct!(ct, x => context.add_ciphertext(x));
        }
        let mut seeds = context.finalize();
        for ct in cts.iter_mut() {
            let seed = seeds.next_seed().map_err(ctx("re-randomization seed"))?;
            ct.rerandomize(public_key, seed)?;
        }
        Ok(())
    }

    fn rerandomize(&mut self, public_key: &CompactPublicKey, seed: ReRandomizationSeed) -> Res<()> {
        each_ct!(self, x => x.re_randomize(public_key, seed))
            .map_err(ctx("re-randomization failed"))
    }

    /// Sets the data bound to the ciphertext in a re-randomization context (an input's `h_i`).
    pub fn set_rerandomization_metadata(&mut self, data: &[u8]) {
        each_ct!(self, x => x.re_randomization_metadata_mut().set_data(data));
    }

    /// Encrypts a big-endian plaintext of `t.bytes()` bytes.
    pub fn encrypt(value: &[u8], t: FheType, key: &ClientKey) -> Res<Self> {
        check_fits(value, t)?;
        Ok(match t {
            FheType::Bool => Ct::Bool(FheBool::encrypt(value.iter().any(|b| *b != 0), key)),
            FheType::Uint4 => Ct::U4(FheUint4::encrypt(u8::from_be_slice(value), key)),
            FheType::Uint8 => Ct::U8(FheUint8::encrypt(u8::from_be_slice(value), key)),
            FheType::Uint16 => Ct::U16(FheUint16::encrypt(u16::from_be_slice(value), key)),
            FheType::Uint32 => Ct::U32(FheUint32::encrypt(u32::from_be_slice(value), key)),
            FheType::Uint64 => Ct::U64(FheUint64::encrypt(u64::from_be_slice(value), key)),
            FheType::Uint128 => Ct::U128(FheUint128::encrypt(u128::from_be_slice(value), key)),
            FheType::Uint160 => Ct::U160(FheUint160::encrypt(U256::from_be_slice(value), key)),
            FheType::Uint256 => Ct::U256(FheUint256::encrypt(U256::from_be_slice(value), key)),
            FheType::Uint512 => Ct::U512(FheUint512::encrypt(U512::from_be_slice(value), key)),
            FheType::Uint1024 => Ct::U1024(FheUint1024::encrypt(U1024::from_be_slice(value), key)),
            FheType::Uint2048 => Ct::U2048(FheUint2048::encrypt(U2048::from_be_slice(value), key)),
        })
    }

    /// The plaintext, big-endian, `fhe_type().bytes()` long.
    pub fn decrypt(&self, key: &ClientKey) -> Vec<u8> {
        match self {
            Ct::Bool(x) => vec![u8::from(x.decrypt(key))],
            Ct::U4(x) => FheDecrypt::<u8>::decrypt(x, key).to_be_vec(),
            Ct::U8(x) => FheDecrypt::<u8>::decrypt(x, key).to_be_vec(),
            Ct::U16(x) => FheDecrypt::<u16>::decrypt(x, key).to_be_vec(),
            Ct::U32(x) => FheDecrypt::<u32>::decrypt(x, key).to_be_vec(),
            Ct::U64(x) => FheDecrypt::<u64>::decrypt(x, key).to_be_vec(),
            Ct::U128(x) => FheDecrypt::<u128>::decrypt(x, key).to_be_vec(),
            Ct::U160(x) => FheDecrypt::<U256>::decrypt(x, key).to_be_vec(),
            Ct::U256(x) => FheDecrypt::<U256>::decrypt(x, key).to_be_vec(),
            Ct::U512(x) => FheDecrypt::<U512>::decrypt(x, key).to_be_vec(),
            Ct::U1024(x) => FheDecrypt::<U1024>::decrypt(x, key).to_be_vec(),
            Ct::U2048(x) => FheDecrypt::<U2048>::decrypt(x, key).to_be_vec(),
        }
    }
}

/// Decrypts a ct128 (squashed, compressed) with the client key's noise-squashing key; the
/// plaintext is big-endian, `t.bytes()` long.
pub fn decrypt_squashed(data: &[u8], t: FheType, key: &ClientKey) -> Res<Vec<u8>> {
    let list: CompressedSquashedNoiseCiphertextList = safe_deserialize(data, CIPHERTEXT_LIMIT)
        .map_err(ctx(
            "not a serialized CompressedSquashedNoiseCiphertextList",
        ))?;
    if list.len() != 1 {
        return Err(format!(
            "a ct128 holds exactly one element, this list holds {}",
            list.len()
        ));
    }
    let missing = || "the squashed list is empty".to_string();
    if t == FheType::Bool {
        let ct: SquashedNoiseFheBool = list
            .get(0)
            .map_err(ctx("not a squashed Bool"))?
            .ok_or_else(missing)?;
        let clear: bool = ct.decrypt(key);
        return Ok(clear.to_be_vec());
    }
    let ct: SquashedNoiseFheUint = list
        .get(0)
        .map_err(ctx("not a squashed unsigned integer"))?
        .ok_or_else(missing)?;
    let clear: U2048 = ct.decrypt(key);
    Ok(pad(&clear.to_be_vec(), t.bytes()))
}

/// Client-side encryption refuses values wider than the type: silent truncation hides bugs.
pub fn check_fits(value: &[u8], t: FheType) -> Res<()> {
    let bits = t.bits();
    let used = bit_length(value);
    if used > bits {
        return Err(format!(
            "value needs {used} bits, which does not fit in {}",
            t.name()
        ));
    }
    Ok(())
}

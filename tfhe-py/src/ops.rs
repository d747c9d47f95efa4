//! The operator dispatcher: one entry point keyed by the FHEVMExecutor opcode.
//!
//! The match arms are the type table of the protocol (SPEC §4): a combination that has no arm
//! is refused with an error naming the operator and the operand types, never computed.

use tfhe::integer::U256;
use tfhe::prelude::*;
use tfhe::{
    FheBool, FheUint128, FheUint16, FheUint160, FheUint256, FheUint32, FheUint64, FheUint8, Seed,
};

use crate::ct::{Ct, FheType};
use crate::errors::{ctx, Res};
use crate::scalar::{bit_length, exceeds_u128, low_u128, truncate, Be32, Clear};

/// FHEVMExecutor `Operators`, numbered as on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
    Rem = 4,
    BitAnd = 5,
    BitOr = 6,
    BitXor = 7,
    Shl = 8,
    Shr = 9,
    Rotl = 10,
    Rotr = 11,
    Eq = 12,
    Ne = 13,
    Ge = 14,
    Gt = 15,
    Le = 16,
    Lt = 17,
    Min = 18,
    Max = 19,
    Neg = 20,
    Not = 21,
    VerifyInput = 22,
    Cast = 23,
    TrivialEncrypt = 24,
    IfThenElse = 25,
    Rand = 26,
    RandBounded = 27,
    Sum = 28,
    IsIn = 29,
    MulDiv = 30,
}

impl Op {
    pub const ALL: [Op; 31] = [
        Op::Add,
        Op::Sub,
        Op::Mul,
        Op::Div,
        Op::Rem,
        Op::BitAnd,
        Op::BitOr,
        Op::BitXor,
        Op::Shl,
        Op::Shr,
        Op::Rotl,
        Op::Rotr,
        Op::Eq,
        Op::Ne,
        Op::Ge,
        Op::Gt,
        Op::Le,
        Op::Lt,
        Op::Min,
        Op::Max,
        Op::Neg,
        Op::Not,
        Op::VerifyInput,
        Op::Cast,
        Op::TrivialEncrypt,
        Op::IfThenElse,
        Op::Rand,
        Op::RandBounded,
        Op::Sum,
        Op::IsIn,
        Op::MulDiv,
    ];

    pub fn from_u8(v: u8) -> Res<Self> {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .ok_or_else(|| format!("unknown opcode {v}"))
    }

    /// The event name of the operator, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Op::Add => "FheAdd",
            Op::Sub => "FheSub",
            Op::Mul => "FheMul",
            Op::Div => "FheDiv",
            Op::Rem => "FheRem",
            Op::BitAnd => "FheBitAnd",
            Op::BitOr => "FheBitOr",
            Op::BitXor => "FheBitXor",
            Op::Shl => "FheShl",
            Op::Shr => "FheShr",
            Op::Rotl => "FheRotl",
            Op::Rotr => "FheRotr",
            Op::Eq => "FheEq",
            Op::Ne => "FheNe",
            Op::Ge => "FheGe",
            Op::Gt => "FheGt",
            Op::Le => "FheLe",
            Op::Lt => "FheLt",
            Op::Min => "FheMin",
            Op::Max => "FheMax",
            Op::Neg => "FheNeg",
            Op::Not => "FheNot",
            Op::VerifyInput => "VerifyInput",
            Op::Cast => "Cast",
            Op::TrivialEncrypt => "TrivialEncrypt",
            Op::IfThenElse => "FheIfThenElse",
            Op::Rand => "FheRand",
            Op::RandBounded => "FheRandBounded",
            Op::Sum => "FheSum",
            Op::IsIn => "FheIsIn",
            Op::MulDiv => "FheMulDiv",
        }
    }
}

/// Most values an `FheSum` may add (or an `FheIsIn` set may hold) of 8 to 32 bits, as the
/// reference enforces; wider values: [`MAX_WIDE_VALUES`].
pub const MAX_SUM_VALUES: usize = 100;
/// Most values of 64 bits or more in an `FheSum` or an `FheIsIn` set.
pub const MAX_WIDE_VALUES: usize = 60;

/// Refuses a Sum or IsIn over more values than the reference accepts for their type.
fn check_count(op: Op, values: &[Operand<'_>]) -> Res<()> {
    let Some(Operand::Ct(first)) = values.first() else {
        return Ok(());
    };
    let t = first.fhe_type();
    let limit = if t.bits() >= 64 {
        MAX_WIDE_VALUES
    } else {
        MAX_SUM_VALUES
    };
    if values.len() > limit {
        return Err(format!(
            "{}: at most {limit} {} values, got {}",
            op.name(),
            t.name(),
            values.len()
        ));
    }
    Ok(())
}

/// An operand: a ciphertext or a plaintext scalar (32 bytes, big-endian).
pub enum Operand<'a> {
    Ct(&'a Ct),
    Scalar(Be32),
}

impl Operand<'_> {
    fn describe(&self) -> &'static str {
        match self {
            Operand::Ct(ct) => ct.fhe_type().name(),
            Operand::Scalar(_) => "scalar",
        }
    }
}

/// A scalar operand as the reference reads it: the low bytes of the 32-byte word for the
/// operand's width, except for a Bool operand, which is true when any byte is non-zero (SPEC §4).
fn scalar_bytes(raw: &Be32, t: FheType) -> &[u8] {
    if t == FheType::Bool {
        raw
    } else {
        &raw[32 - t.bytes().min(32)..]
    }
}

fn unsupported(op: Op, operands: &[Operand<'_>]) -> String {
    let kinds: Vec<&str> = operands.iter().map(Operand::describe).collect();
    format!(
        "{}: unsupported operand types ({})",
        op.name(),
        kinds.join(", ")
    )
}

fn arity(op: Op, operands: &[Operand<'_>], n: usize) -> Res<()> {
    if operands.len() == n {
        Ok(())
    } else {
        Err(format!(
            "{} takes {n} operands, got {}",
            op.name(),
            operands.len()
        ))
    }
}

fn scalar_of(op: Op, operand: &Operand<'_>, what: &str) -> Res<Be32> {
    match operand {
        Operand::Scalar(v) => Ok(*v),
        Operand::Ct(_) => Err(format!("{}: the {what} must be a plaintext", op.name())),
    }
}

fn ct_of<'a>(op: Op, operand: &Operand<'a>, what: &str) -> Res<&'a Ct> {
    match operand {
        Operand::Ct(ct) => Ok(ct),
        Operand::Scalar(_) => Err(format!("{}: the {what} must be a ciphertext", op.name())),
    }
}

/// Binary operator over the listed variants; `$c` is the clear type of a scalar right side,
/// read as the reference reads it (`scalar_bytes`).
macro_rules! binary {
    ($op:expr, $ops:expr, [$($v:ident: $c:ty),*],
     |$a:ident, $b:ident| $enc:expr,
     |$sa:ident, $s:ident| $sc:expr) => {{
        let lhs = ct_of($op, &$ops[0], "left operand")?;
        let t = lhs.fhe_type();
        match (lhs, &$ops[1]) {
            $( (Ct::$v($a), Operand::Ct(Ct::$v($b))) => Ok(Ct::from($enc)), )*
            $( (Ct::$v($sa), Operand::Scalar(raw)) => {
                let $s = <$c as Clear>::from_be_slice(scalar_bytes(raw, t));
                Ok(Ct::from($sc))
            } )*
            _ => Err(unsupported($op, $ops)),
        }
    }};
}

/// Binary operator whose right side must be a non-zero plaintext.
macro_rules! scalar_divisor {
    ($op:expr, $ops:expr, [$($v:ident: $c:ty),*], |$a:ident, $s:ident| $sc:expr) => {{
        let lhs = ct_of($op, &$ops[0], "left operand")?;
        let bits = lhs.fhe_type().bits();
        match (lhs, &$ops[1]) {
            $( (Ct::$v($a), Operand::Scalar(raw)) => {
                let raw = truncate(raw, bits);
                if raw == [0u8; 32] {
                    return Err(format!("{}: scalar division by zero", $op.name()));
                }
                let $s = <$c as Clear>::from_be_slice(&raw);
                Ok(Ct::from($sc))
            } )*
            (_, Operand::Ct(_)) => Err(format!(
                "{}: the divisor must be a plaintext (scalar only)", $op.name()
            )),
            _ => Err(unsupported($op, $ops)),
        }
    }};
}

fn arithmetic(op: Op, ops: &[Operand<'_>]) -> Res<Ct> {
    arity(op, ops, 2)?;
    match op {
        Op::Add => binary!(op, ops, [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128],
            |a, b| a + b, |a, s| a + s),
        Op::Sub => binary!(op, ops, [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128],
            |a, b| a - b, |a, s| a - s),
        Op::Mul => binary!(op, ops, [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128],
            |a, b| a * b, |a, s| a * s),
        Op::Div => scalar_divisor!(op, ops, [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128],
            |a, s| a / s),
        Op::Rem => scalar_divisor!(op, ops, [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128],
            |a, s| a % s),
        _ => unreachable!("arithmetic() called with {op:?}"),
    }
}

fn bitwise(op: Op, ops: &[Operand<'_>]) -> Res<Ct> {
    arity(op, ops, 2)?;
    match op {
        Op::BitAnd => binary!(op, ops,
            [Bool: bool, U8: u8, U16: u16, U32: u32, U64: u64, U128: u128, U256: U256],
            |a, b| a & b, |a, s| a & s),
        Op::BitOr => binary!(op, ops,
            [Bool: bool, U8: u8, U16: u16, U32: u32, U64: u64, U128: u128, U256: U256],
            |a, b| a | b, |a, s| a | s),
        Op::BitXor => binary!(op, ops,
            [Bool: bool, U8: u8, U16: u16, U32: u32, U64: u64, U128: u128, U256: U256],
            |a, b| a ^ b, |a, s| a ^ s),
        _ => unreachable!("bitwise() called with {op:?}"),
    }
}

/// The scalar amount has the operand's clear type, as in the reference; TFHE-rs takes it
/// modulo the width.
fn shift(op: Op, ops: &[Operand<'_>]) -> Res<Ct> {
    arity(op, ops, 2)?;
    match op {
        Op::Shl => binary!(op, ops,
            [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128, U256: U256],
            |a, b| a << b, |a, s| a << s),
        Op::Shr => binary!(op, ops,
            [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128, U256: U256],
            |a, b| a >> b, |a, s| a >> s),
        Op::Rotl => binary!(op, ops,
            [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128, U256: U256],
            |a, b| RotateLeft::rotate_left(a, b), |a, s| RotateLeft::rotate_left(a, s)),
        Op::Rotr => binary!(op, ops,
            [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128, U256: U256],
            |a, b| RotateRight::rotate_right(a, b), |a, s| RotateRight::rotate_right(a, s)),
        _ => unreachable!("shift() called with {op:?}"),
    }
}

fn comparison(op: Op, ops: &[Operand<'_>]) -> Res<Ct> {
    arity(op, ops, 2)?;
    match op {
        Op::Eq => binary!(op, ops,
            [Bool: bool, U8: u8, U16: u16, U32: u32, U64: u64, U128: u128, U160: U256, U256: U256],
            |a, b| FheEq::eq(a, b), |a, s| FheEq::eq(a, s)),
        Op::Ne => binary!(op, ops,
            [Bool: bool, U8: u8, U16: u16, U32: u32, U64: u64, U128: u128, U160: U256, U256: U256],
            |a, b| FheEq::ne(a, b), |a, s| FheEq::ne(a, s)),
        Op::Ge => binary!(op, ops, [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128],
            |a, b| FheOrd::ge(a, b), |a, s| FheOrd::ge(a, s)),
        Op::Gt => binary!(op, ops, [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128],
            |a, b| FheOrd::gt(a, b), |a, s| FheOrd::gt(a, s)),
        Op::Le => binary!(op, ops, [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128],
            |a, b| FheOrd::le(a, b), |a, s| FheOrd::le(a, s)),
        Op::Lt => binary!(op, ops, [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128],
            |a, b| FheOrd::lt(a, b), |a, s| FheOrd::lt(a, s)),
        Op::Min => binary!(op, ops, [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128],
            |a, b| FheMin::min(a, b), |a, s| FheMin::min(a, s)),
        Op::Max => binary!(op, ops, [U8: u8, U16: u16, U32: u32, U64: u64, U128: u128],
            |a, b| FheMax::max(a, b), |a, s| FheMax::max(a, s)),
        _ => unreachable!("comparison() called with {op:?}"),
    }
}

fn unary(op: Op, ops: &[Operand<'_>]) -> Res<Ct> {
    arity(op, ops, 1)?;
    let ct = ct_of(op, &ops[0], "operand")?;
    match (op, ct) {
        (Op::Neg, Ct::U8(a)) => Ok(Ct::from(-a)),
        (Op::Neg, Ct::U16(a)) => Ok(Ct::from(-a)),
        (Op::Neg, Ct::U32(a)) => Ok(Ct::from(-a)),
        (Op::Neg, Ct::U64(a)) => Ok(Ct::from(-a)),
        (Op::Neg, Ct::U128(a)) => Ok(Ct::from(-a)),
        (Op::Neg, Ct::U256(a)) => Ok(Ct::from(-a)),
        (Op::Not, Ct::Bool(a)) => Ok(Ct::from(!a)),
        (Op::Not, Ct::U8(a)) => Ok(Ct::from(!a)),
        (Op::Not, Ct::U16(a)) => Ok(Ct::from(!a)),
        (Op::Not, Ct::U32(a)) => Ok(Ct::from(!a)),
        (Op::Not, Ct::U64(a)) => Ok(Ct::from(!a)),
        (Op::Not, Ct::U128(a)) => Ok(Ct::from(!a)),
        (Op::Not, Ct::U256(a)) => Ok(Ct::from(!a)),
        _ => Err(unsupported(op, ops)),
    }
}

fn cast(ops: &[Operand<'_>], to: FheType) -> Res<Ct> {
    arity(Op::Cast, ops, 1)?;
    let ct = ct_of(Op::Cast, &ops[0], "operand")?;
    if ct.fhe_type() == to {
        // The host contracts revert with InvalidType; TFHE-rs would compute a copy.
        return Err(format!("Cast: cannot cast a {} to itself", to.name()));
    }
    macro_rules! cast_into {
        ($t:ty) => {
            match ct {
                Ct::Bool(x) => <$t>::cast_from(x.clone()),
                Ct::U8(x) => <$t>::cast_from(x.clone()),
                Ct::U16(x) => <$t>::cast_from(x.clone()),
                Ct::U32(x) => <$t>::cast_from(x.clone()),
                Ct::U64(x) => <$t>::cast_from(x.clone()),
                Ct::U128(x) => <$t>::cast_from(x.clone()),
                Ct::U256(x) => <$t>::cast_from(x.clone()),
                other => {
                    return Err(format!(
                        "Cast: a {} cannot be cast",
                        other.fhe_type().name()
                    ))
                }
            }
        };
    }
    Ok(match to {
        FheType::Uint8 => Ct::from(cast_into!(FheUint8)),
        FheType::Uint16 => Ct::from(cast_into!(FheUint16)),
        FheType::Uint32 => Ct::from(cast_into!(FheUint32)),
        FheType::Uint64 => Ct::from(cast_into!(FheUint64)),
        FheType::Uint128 => Ct::from(cast_into!(FheUint128)),
        FheType::Uint256 => Ct::from(cast_into!(FheUint256)),
        _ => return Err(format!("Cast: cannot cast to {}", to.name())),
    })
}

/// Encrypts a plaintext without a key: Bool is "last byte non-zero" (the reference's
/// `trivial_encrypt_be_bytes`), integers truncate from the left.
pub fn trivial(pt: &Be32, to: FheType) -> Res<Ct> {
    let err = ctx("TrivialEncrypt failed");
    let v = scalar_bytes(pt, to);
    Ok(match to {
        FheType::Bool => Ct::from(FheBool::try_encrypt_trivial(pt[31] != 0).map_err(err)?),
        FheType::Uint8 => {
            Ct::from(FheUint8::try_encrypt_trivial(u8::from_be_slice(v)).map_err(err)?)
        }
        FheType::Uint16 => {
            Ct::from(FheUint16::try_encrypt_trivial(u16::from_be_slice(v)).map_err(err)?)
        }
        FheType::Uint32 => {
            Ct::from(FheUint32::try_encrypt_trivial(u32::from_be_slice(v)).map_err(err)?)
        }
        FheType::Uint64 => {
            Ct::from(FheUint64::try_encrypt_trivial(u64::from_be_slice(v)).map_err(err)?)
        }
        FheType::Uint128 => {
            Ct::from(FheUint128::try_encrypt_trivial(u128::from_be_slice(v)).map_err(err)?)
        }
        FheType::Uint160 => {
            Ct::from(FheUint160::try_encrypt_trivial(U256::from_be_slice(v)).map_err(err)?)
        }
        FheType::Uint256 => {
            Ct::from(FheUint256::try_encrypt_trivial(U256::from_be_slice(v)).map_err(err)?)
        }
        _ => return Err(format!("TrivialEncrypt: cannot encrypt to {}", to.name())),
    })
}

fn if_then_else(ops: &[Operand<'_>]) -> Res<Ct> {
    let op = Op::IfThenElse;
    arity(op, ops, 3)?;
    let control = match ct_of(op, &ops[0], "control")? {
        Ct::Bool(c) => c,
        _ => return Err(format!("{}: the control must be a Bool", op.name())),
    };
    let (a, b) = (
        ct_of(op, &ops[1], "true branch")?,
        ct_of(op, &ops[2], "false branch")?,
    );
    Ok(match (a, b) {
        (Ct::Bool(a), Ct::Bool(b)) => Ct::from(control.select(a, b)),
        (Ct::U8(a), Ct::U8(b)) => Ct::from(control.select(a, b)),
        (Ct::U16(a), Ct::U16(b)) => Ct::from(control.select(a, b)),
        (Ct::U32(a), Ct::U32(b)) => Ct::from(control.select(a, b)),
        (Ct::U64(a), Ct::U64(b)) => Ct::from(control.select(a, b)),
        (Ct::U128(a), Ct::U128(b)) => Ct::from(control.select(a, b)),
        (Ct::U160(a), Ct::U160(b)) => Ct::from(control.select(a, b)),
        (Ct::U256(a), Ct::U256(b)) => Ct::from(control.select(a, b)),
        _ => return Err(unsupported(op, ops)),
    })
}

fn seed_of(op: Op, operand: &Operand<'_>) -> Res<Seed> {
    let raw = scalar_of(op, operand, "seed")?;
    if exceeds_u128(&raw) {
        return Err(format!("{}: the seed has 16 bytes", op.name()));
    }
    Ok(Seed(low_u128(&raw)))
}

/// Random integers use the bounded generator over the type's full width, as the reference
/// does (`generate_random_number`); only Bool uses the unbounded one.
fn random(op: Op, seed: Seed, to: FheType, random_bits: u64) -> Res<Ct> {
    let bits = random_bits.min(u64::from(to.bits()));
    Ok(match to {
        FheType::Bool => Ct::from(FheBool::generate_oblivious_pseudo_random(seed)),
        FheType::Uint8 => Ct::from(FheUint8::generate_oblivious_pseudo_random_bounded(
            seed, bits,
        )),
        FheType::Uint16 => Ct::from(FheUint16::generate_oblivious_pseudo_random_bounded(
            seed, bits,
        )),
        FheType::Uint32 => Ct::from(FheUint32::generate_oblivious_pseudo_random_bounded(
            seed, bits,
        )),
        FheType::Uint64 => Ct::from(FheUint64::generate_oblivious_pseudo_random_bounded(
            seed, bits,
        )),
        FheType::Uint128 => Ct::from(FheUint128::generate_oblivious_pseudo_random_bounded(
            seed, bits,
        )),
        FheType::Uint256 => Ct::from(FheUint256::generate_oblivious_pseudo_random_bounded(
            seed, bits,
        )),
        _ => {
            return Err(format!(
                "{}: random values of {} are not supported",
                op.name(),
                to.name()
            ))
        }
    })
}

fn rand(ops: &[Operand<'_>], to: FheType) -> Res<Ct> {
    let op = Op::Rand;
    arity(op, ops, 1)?;
    random(op, seed_of(op, &ops[0])?, to, u64::from(to.bits()))
}

fn rand_bounded(ops: &[Operand<'_>], to: FheType) -> Res<Ct> {
    let op = Op::RandBounded;
    arity(op, ops, 2)?;
    let seed = seed_of(op, &ops[0])?;
    let bound = scalar_of(op, &ops[1], "upper bound")?;
    if bound.iter().map(|b| b.count_ones()).sum::<u32>() != 1 {
        return Err(format!(
            "{}: the upper bound must be a power of two",
            op.name()
        ));
    }
    let random_bits = u64::from(bit_length(&bound) - 1);
    if random_bits > u64::from(to.bits()) {
        return Err(format!(
            "{}: upper bound 2^{random_bits} exceeds {}",
            op.name(),
            to.name()
        ));
    }
    if to == FheType::Bool {
        return Err(format!("{}: cannot generate a bounded Bool", op.name()));
    }
    random(op, seed, to, random_bits)
}

/// Collects ciphertext operands that must all be the variant `$v`.
macro_rules! all_of {
    ($op:expr, $ops:expr, $v:ident) => {
        $ops.iter()
            .map(|o| match o {
                Operand::Ct(Ct::$v(x)) => Ok(x),
                _ => Err(unsupported($op, $ops)),
            })
            .collect::<Res<Vec<_>>>()
    };
}

fn sum(ops: &[Operand<'_>], to: Option<FheType>) -> Res<Ct> {
    let op = Op::Sum;
    check_count(op, ops)?;
    let Some(first) = ops.first() else {
        return match to {
            Some(
                t @ (FheType::Uint8
                | FheType::Uint16
                | FheType::Uint32
                | FheType::Uint64
                | FheType::Uint128),
            ) => trivial(&[0u8; 32], t),
            Some(t) => Err(format!(
                "{}: unsupported result type {}",
                op.name(),
                t.name()
            )),
            None => Err(format!("{}: an empty sum needs the result type", op.name())),
        };
    };
    match first {
        Operand::Ct(Ct::U8(_)) => Ok(Ct::from(
            all_of!(op, ops, U8)?.into_iter().sum::<FheUint8>(),
        )),
        Operand::Ct(Ct::U16(_)) => Ok(Ct::from(
            all_of!(op, ops, U16)?.into_iter().sum::<FheUint16>(),
        )),
        Operand::Ct(Ct::U32(_)) => Ok(Ct::from(
            all_of!(op, ops, U32)?.into_iter().sum::<FheUint32>(),
        )),
        Operand::Ct(Ct::U64(_)) => Ok(Ct::from(
            all_of!(op, ops, U64)?.into_iter().sum::<FheUint64>(),
        )),
        Operand::Ct(Ct::U128(_)) => Ok(Ct::from(
            all_of!(op, ops, U128)?.into_iter().sum::<FheUint128>(),
        )),
        _ => Err(unsupported(op, ops)),
    }
}

fn is_in(ops: &[Operand<'_>]) -> Res<Ct> {
    let op = Op::IsIn;
    let Some((value, set)) = ops.split_first() else {
        return Err(format!("{}: needs a value", op.name()));
    };
    check_count(op, set)?;
    macro_rules! contains {
        ($v:ident, $t:ty, $x:expr) => {{
            // An empty set holds nothing, once the value is of a type IsIn takes.
            if set.is_empty() {
                return trivial(&[0u8; 32], FheType::Bool);
            }
            let owned: Vec<$t> = all_of!(op, set, $v)?.into_iter().cloned().collect();
            Ok(Ct::from(<$t>::contains(&owned, $x)))
        }};
    }
    match value {
        Operand::Ct(Ct::U8(x)) => contains!(U8, FheUint8, x),
        Operand::Ct(Ct::U16(x)) => contains!(U16, FheUint16, x),
        Operand::Ct(Ct::U32(x)) => contains!(U32, FheUint32, x),
        Operand::Ct(Ct::U64(x)) => contains!(U64, FheUint64, x),
        Operand::Ct(Ct::U128(x)) => contains!(U128, FheUint128, x),
        Operand::Ct(Ct::U160(x)) => contains!(U160, FheUint160, x),
        Operand::Ct(Ct::U256(x)) => contains!(U256, FheUint256, x),
        _ => Err(unsupported(op, ops)),
    }
}

/// `factor1 * factor2 / divisor` computed at double width, truncated back (TFHE-rs fused ops).
fn mul_div(ops: &[Operand<'_>]) -> Res<Ct> {
    let op = Op::MulDiv;
    arity(op, ops, 3)?;
    let lhs = ct_of(op, &ops[0], "first factor")?;
    let bits = lhs.fhe_type().bits();
    let divisor = scalar_of(op, &ops[2], "divisor")?;
    // Plaintexts are truncated to the factor's width once its type is one MulDiv takes.
    macro_rules! fused {
        ($a:expr, $c:ty, $v:ident) => {{
            let divisor = truncate(&divisor, bits);
            if divisor == [0u8; 32] {
                return Err(format!("{}: scalar division by zero", op.name()));
            }
            let d = <$c>::from_be_slice(&divisor);
            match &ops[1] {
                Operand::Ct(Ct::$v(b)) => {
                    Ok(Ct::from(FusedMulScalarDiv::fused_mul_scalar_div($a, b, d)))
                }
                Operand::Scalar(raw) => {
                    let m = <$c>::from_be_slice(&truncate(raw, bits));
                    Ok(Ct::from(
                        FusedScalarMulScalarDiv::fused_scalar_mul_scalar_div($a, m, d),
                    ))
                }
                _ => Err(unsupported(op, ops)),
            }
        }};
    }
    match lhs {
        Ct::U8(a) => fused!(a, u8, U8),
        Ct::U16(a) => fused!(a, u16, U16),
        Ct::U32(a) => fused!(a, u32, U32),
        Ct::U64(a) => fused!(a, u64, U64),
        _ => Err(unsupported(op, ops)),
    }
}

/// Evaluates one operation. `result_type` is byte 30 of the result handle: required where the
/// operands do not fix it (Cast, TrivialEncrypt, Rand, RandBounded, an empty Sum) and checked
/// against the computed type everywhere else.
pub fn execute(op: Op, ops: &[Operand<'_>], result_type: Option<FheType>) -> Res<Ct> {
    let needs_type = |what: &str| {
        result_type.ok_or_else(|| format!("{}: the result type is required ({what})", op.name()))
    };
    let out = match op {
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Rem => arithmetic(op, ops),
        Op::BitAnd | Op::BitOr | Op::BitXor => bitwise(op, ops),
        Op::Shl | Op::Shr | Op::Rotl | Op::Rotr => shift(op, ops),
        Op::Eq | Op::Ne | Op::Ge | Op::Gt | Op::Le | Op::Lt | Op::Min | Op::Max => {
            comparison(op, ops)
        }
        Op::Neg | Op::Not => unary(op, ops),
        Op::VerifyInput => Err(
            "VerifyInput has no computation: its ciphertext comes from input verification"
                .to_string(),
        ),
        Op::Cast => cast(ops, needs_type("toType")?),
        Op::TrivialEncrypt => {
            arity(op, ops, 1)?;
            trivial(&scalar_of(op, &ops[0], "plaintext")?, needs_type("toType")?)
        }
        Op::IfThenElse => if_then_else(ops),
        Op::Rand => rand(ops, needs_type("randType")?),
        Op::RandBounded => rand_bounded(ops, needs_type("randType")?),
        Op::Sum => sum(ops, result_type),
        Op::IsIn => is_in(ops),
        Op::MulDiv => mul_div(ops),
    }?;
    if let Some(expected) = result_type {
        if out.fhe_type() != expected {
            return Err(format!(
                "{}: the result is a {} but the result handle says {}",
                op.name(),
                out.fhe_type().name(),
                expected.name()
            ));
        }
    }
    Ok(out)
}

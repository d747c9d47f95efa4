//! Golden vectors from Zama's reference coprocessor crates (zama-ai/fhevm v0.14.0).
//!
//! Every ciphertext in the output is produced by the public functions of the reference crate
//! `fhevm-engine-common` (compress, decompress, add_to_re_randomization_context, re_randomise,
//! add_re_randomization_metadata, extract_ct_list, perform_fhe_operation, check_fhe_operand_types,
//! safe_deserialize_conformant, decrypt). The few steps that live in private functions of heavier
//! reference crates (the scheduler's per-operation step, the zkproof-worker's verification and the
//! sns-worker's switch-and-squash) are re-sequenced here from those public calls, in the order the
//! reference performs them. The tests of `tfhe-py` compare their own bytes against this file.
//!
//! Usage: reference-vectors [--quick] [--derive-twice] [--operands FILE] [--repo DIR] [--out FILE]
//!
//! `--operands FILE` reuses the encrypted operands of an earlier vectors.json (fresh encryptions
//! are random, everything after them is deterministic): regenerating with the committed file gives
//! the same bytes, and comparing the two files checks that the vectors are reproducible.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use fhevm_engine_common::tfhe_ops::{
    check_fhe_operand_types, extract_ct_list, perform_fhe_operation,
};
use fhevm_engine_common::types::SupportedFheCiphertexts;
use fhevm_engine_common::utils::safe_deserialize_conformant;
use reference_vectors::sns::{squash_ct64, SNS_SER_LIMIT};
use reference_vectors::{hex0x, keccak, KEY_LIMIT};
use serde_json::{json, Value};
use sha3::{Digest, Keccak256};
use tfhe::core_crypto::commons::generators::DeterministicSeeder;
use tfhe::core_crypto::prelude::DefaultRandomGenerator;
use tfhe::integer::bigint::U2048;
use tfhe::integer::ciphertext::IntegerProvenCompactCiphertextListConformanceParams;
use tfhe::integer::U256;
use tfhe::prelude::*;
use tfhe::shortint::engine::ShortintEngine;
use tfhe::zk::{CompactPkeCrs, ZkComputeLoad, ZkPkeV2SupportedHashConfig};
use tfhe::{
    ClientKey, CompactPublicKey, CompressedSquashedNoiseCiphertextList, ReRandomizationContext,
    SquashedNoiseFheBool, SquashedNoiseFheUint,
};

// Domain separators of the reference (scheduler.rs, verifier.rs).
const OPERATION_RERAND_DOMAIN: [u8; 8] = *b"TFHE_Rrd";
const INPUT_RERAND_DOMAIN: [u8; 8] = *b"ZKw_Rrnd";
const COMPACT_PUBLIC_ENCRYPTION_DOMAIN: [u8; 8] = *b"TFHE_Enc";
const RAW_CT_HASH_DOMAIN: [u8; 8] = *b"ZK-w_rct";
const HANDLE_HASH_DOMAIN: [u8; 8] = *b"ZK-w_hdl";
/// zkproof-worker `MAX_INPUT_INDEX` (= 0xff - 1).
const MAX_INPUT_INDEX: usize = 254;

// FHE types (SPEC §2).
const BOOL: i16 = 0;
const U8: i16 = 2;
const U16: i16 = 3;
const U32: i16 = 4;
const U64: i16 = 5;
const U128: i16 = 6;
const U160: i16 = 7;
const U256T: i16 = 8;
const UINTS: [i16; 5] = [U8, U16, U32, U64, U128];

// Opcodes (FHEVMExecutor `Operators`).
const ADD: i32 = 0;
const SUB: i32 = 1;
const MUL: i32 = 2;
const DIV: i32 = 3;
const REM: i32 = 4;
const BIT_AND: i32 = 5;
const BIT_OR: i32 = 6;
const BIT_XOR: i32 = 7;
const SHL: i32 = 8;
const SHR: i32 = 9;
const ROTL: i32 = 10;
const ROTR: i32 = 11;
const EQ: i32 = 12;
const NE: i32 = 13;
const GE: i32 = 14;
const GT: i32 = 15;
const LE: i32 = 16;
const LT: i32 = 17;
const MIN: i32 = 18;
const MAX: i32 = 19;
const NEG: i32 = 20;
const NOT: i32 = 21;
const CAST: i32 = 23;
const TRIVIAL_ENCRYPT: i32 = 24;
const IF_THEN_ELSE: i32 = 25;
const RAND: i32 = 26;
const RAND_BOUNDED: i32 = 27;
const SUM: i32 = 28;
const IS_IN: i32 = 29;
const MUL_DIV: i32 = 30;

fn op_name(op: i32) -> &'static str {
    match op {
        ADD => "Add",
        SUB => "Sub",
        MUL => "Mul",
        DIV => "Div",
        REM => "Rem",
        BIT_AND => "BitAnd",
        BIT_OR => "BitOr",
        BIT_XOR => "BitXor",
        SHL => "Shl",
        SHR => "Shr",
        ROTL => "Rotl",
        ROTR => "Rotr",
        EQ => "Eq",
        NE => "Ne",
        GE => "Ge",
        GT => "Gt",
        LE => "Le",
        LT => "Lt",
        MIN => "Min",
        MAX => "Max",
        NEG => "Neg",
        NOT => "Not",
        CAST => "Cast",
        TRIVIAL_ENCRYPT => "TrivialEncrypt",
        IF_THEN_ELSE => "IfThenElse",
        RAND => "Rand",
        RAND_BOUNDED => "RandBounded",
        SUM => "Sum",
        IS_IN => "IsIn",
        MUL_DIV => "MulDiv",
        _ => "Unknown",
    }
}

fn type_name(t: i16) -> &'static str {
    match t {
        BOOL => "Bool",
        1 => "Uint4",
        U8 => "Uint8",
        U16 => "Uint16",
        U32 => "Uint32",
        U64 => "Uint64",
        U128 => "Uint128",
        U160 => "Uint160",
        U256T => "Uint256",
        _ => "Unknown",
    }
}

fn type_bits(t: i16) -> usize {
    match t {
        BOOL => 1,
        1 => 4,
        U8 => 8,
        U16 => 16,
        U32 => 32,
        U64 => 64,
        U128 => 128,
        U160 => 160,
        U256T => 256,
        _ => panic!("no width for type {t}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 256-bit big-endian plaintexts (enough for every case; no bignum dependency)
// ---------------------------------------------------------------------------------------------

type Num = [u8; 32];

fn num(x: u128) -> Num {
    let mut n = [0u8; 32];
    n[16..].copy_from_slice(&x.to_be_bytes());
    n
}

fn set_bit(mut n: Num, bit: usize) -> Num {
    n[31 - bit / 8] |= 1 << (bit % 8);
    n
}

fn maxv(t: i16) -> Num {
    let mut n = [0u8; 32];
    for bit in 0..type_bits(t) {
        n = set_bit(n, bit);
    }
    n
}

fn sub_small(mut n: Num, k: u8) -> Num {
    let (low, mut borrow) = n[31].overflowing_sub(k);
    n[31] = low;
    let mut i = 31;
    while borrow && i > 0 {
        i -= 1;
        let (b, o) = n[i].overflowing_sub(1);
        n[i] = b;
        borrow = o;
    }
    assert!(!borrow, "underflow");
    n
}

fn repeat_byte(byte: u8, t: i16) -> Num {
    let mut n = [0u8; 32];
    for i in 0..type_bits(t) / 8 {
        n[31 - i] = byte;
    }
    n
}

fn bit_length(n: &[u8]) -> usize {
    for (i, b) in n.iter().enumerate() {
        if *b != 0 {
            return (n.len() - i) * 8 - b.leading_zeros() as usize;
        }
    }
    0
}

/// Decimal string of a big-endian unsigned integer of any length.
fn dec(be: &[u8]) -> String {
    let mut digits: Vec<u8> = vec![0]; // little-endian base 10
    for byte in be {
        let mut carry = *byte as u32;
        for d in digits.iter_mut() {
            let v = *d as u32 * 256 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    while digits.len() > 1 && *digits.last().unwrap() == 0 {
        digits.pop();
    }
    digits.iter().rev().map(|d| (b'0' + d) as char).collect()
}

/// Parses a decimal string into a 256-bit big-endian number.
fn parse_dec(s: &str) -> Num {
    let mut n = [0u8; 32];
    for ch in s.bytes() {
        assert!(ch.is_ascii_digit(), "not a decimal: {s}");
        let mut carry = (ch - b'0') as u32;
        for b in n.iter_mut().rev() {
            let v = *b as u32 * 10 + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0, "overflow: {s}");
    }
    n
}

fn u256(n: &Num) -> U256 {
    let mut x = U256::ZERO;
    x.copy_from_be_byte_slice(n);
    x
}

fn u128_of(n: &Num) -> u128 {
    u128::from_be_bytes(n[16..].try_into().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

fn open(path: &Path) -> BufReader<File> {
    BufReader::new(File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// The server key of our bindings: the compressed server key drawn from the client key with a
/// seeded shortint engine on this thread, decompressed (the recipe shared with tfhe-py, whose GPU
/// engine expands the same compressed key).
fn derive_server_key(client_key: &ClientKey, seed: u128) -> tfhe::ServerKey {
    let mut seeder = DeterministicSeeder::<DefaultRandomGenerator>::new(tfhe::Seed(seed));
    let engine = ShortintEngine::new_from_seeder(&mut seeder);
    let previous = ShortintEngine::with_thread_local_mut(|e| std::mem::replace(e, engine));
    let compressed = client_key.generate_compressed_server_key();
    ShortintEngine::with_thread_local_mut(|e| *e = previous);
    compressed.decompress()
}

struct KeccakWriter(Keccak256, u64);

impl Write for KeccakWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Keccak-256 of the safe-serialized server key (limit 2 GiB), streamed; and its size.
fn server_key_keccak(server_key: &tfhe::ServerKey) -> ([u8; 32], u64) {
    let mut w = KeccakWriter(Keccak256::new(), 0);
    tfhe::safe_serialization::safe_serialize(server_key, &mut w, KEY_LIMIT)
        .expect("serialize server key");
    (w.0.finalize().into(), w.1)
}

// ---------------------------------------------------------------------------------------------
// Operands, steps
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
enum Arg {
    /// An operand id or an earlier step id: passed to the step as its compressed bytes.
    Ct(String),
    /// Plaintext bytes, exactly as the host listener stores them.
    Scalar(Vec<u8>),
}

fn ct(id: &str) -> Arg {
    Arg::Ct(id.to_string())
}

fn scalar(bytes: &[u8]) -> Arg {
    Arg::Scalar(bytes.to_vec())
}

fn arg_json(a: &Arg) -> Value {
    match a {
        Arg::Ct(id) => json!({ "ct": id }),
        Arg::Scalar(b) => json!({ "scalar": hex::encode(b) }),
    }
}

/// A stored ciphertext: its type and its ct64 (SupportedFheCiphertexts::compress() output).
#[derive(Clone)]
struct Stored {
    fhe_type: i16,
    ct64: Vec<u8>,
}

struct Ctx {
    client_key: ClientKey,
    public_key: CompactPublicKey,
    crs: CompactPkeCrs,
    /// id -> (type, plaintext, ct64)
    operands: BTreeMap<String, (i16, Num, Vec<u8>)>,
    /// Operands of an earlier vectors.json (--operands): reused instead of fresh encryptions.
    preset: BTreeMap<String, (i16, Num, Vec<u8>)>,
}

fn to_plain(s: String) -> String {
    match s.as_str() {
        "true" => "1".to_string(),
        "false" => "0".to_string(),
        _ => s,
    }
}

impl Ctx {
    /// The operand id for (value, type), encrypting and compressing it on first use.
    fn operand(&mut self, value: Num, t: i16) -> String {
        assert!(
            bit_length(&value) <= type_bits(t),
            "{} does not fit {}",
            dec(&value),
            type_name(t)
        );
        let id = format!("{}_{}", type_name(t), dec(&value));
        if let Some(p) = self.preset.get(&id) {
            assert_eq!((p.0, p.1), (t, value), "preset operand {id}");
            self.operands.entry(id.clone()).or_insert_with(|| p.clone());
        }
        if !self.operands.contains_key(&id) {
            let ck = &self.client_key;
            let v = u128_of(&value);
            let c = match t {
                BOOL => SupportedFheCiphertexts::FheBool(tfhe::FheBool::encrypt(v != 0, ck)),
                U8 => SupportedFheCiphertexts::FheUint8(tfhe::FheUint8::encrypt(v as u8, ck)),
                U16 => SupportedFheCiphertexts::FheUint16(tfhe::FheUint16::encrypt(v as u16, ck)),
                U32 => SupportedFheCiphertexts::FheUint32(tfhe::FheUint32::encrypt(v as u32, ck)),
                U64 => SupportedFheCiphertexts::FheUint64(tfhe::FheUint64::encrypt(v as u64, ck)),
                U128 => SupportedFheCiphertexts::FheUint128(tfhe::FheUint128::encrypt(v, ck)),
                U160 => {
                    SupportedFheCiphertexts::FheUint160(tfhe::FheUint160::encrypt(u256(&value), ck))
                }
                U256T => {
                    SupportedFheCiphertexts::FheUint256(tfhe::FheUint256::encrypt(u256(&value), ck))
                }
                _ => panic!("type {t}"),
            };
            let ct64 = c.compress().expect("compress operand");
            self.operands.insert(id.clone(), (t, value, ct64));
        }
        id
    }

    fn decrypt_ct64(&self, s: &Stored) -> Result<String, String> {
        let c = SupportedFheCiphertexts::decompress(s.fhe_type, &s.ct64, 0)
            .map_err(|e| format!("decompress for decryption: {e}"))?;
        Ok(to_plain(c.decrypt(&self.client_key)))
    }

    /// One scheduler step of the reference (scheduler.rs try_execute_node + run_computation):
    /// decompress every compressed operand, re-randomize (TFHE_Rrd, opcode as i32 big-endian),
    /// perform_fhe_operation(opcode, inputs, gpu 0, output type from the handle), compress.
    fn step(
        &self,
        opcode: i32,
        args: &[Arg],
        result_type: i16,
        results: &BTreeMap<String, Stored>,
    ) -> Result<Stored, String> {
        let lookup = |id: &str| -> Stored {
            if let Some(s) = results.get(id) {
                return s.clone();
            }
            let (t, _, ct64) = self
                .operands
                .get(id)
                .unwrap_or_else(|| panic!("no operand {id}"));
            Stored {
                fhe_type: *t,
                ct64: ct64.clone(),
            }
        };
        // tfhe-worker validates the computation row first (handles: type at byte 30).
        let mut deps: Vec<Vec<u8>> = vec![];
        let mut is_scalar: Vec<bool> = vec![];
        for a in args {
            match a {
                Arg::Ct(id) => {
                    let mut h = vec![0u8; 32];
                    h[21] = 0xff;
                    h[30] = lookup(id).fhe_type as u8;
                    deps.push(h);
                    is_scalar.push(false);
                }
                Arg::Scalar(b) => {
                    deps.push(b.clone());
                    is_scalar.push(true);
                }
            }
        }
        check_fhe_operand_types(opcode, &deps, &is_scalar)
            .map_err(|e| format!("check_fhe_operand_types: {e}"))?;

        let mut cts: Vec<SupportedFheCiphertexts> = Vec::with_capacity(args.len());
        for a in args {
            match a {
                Arg::Ct(id) => {
                    let s = lookup(id);
                    cts.push(
                        SupportedFheCiphertexts::decompress(s.fhe_type, &s.ct64, 0)
                            .map_err(|e| format!("decompress: {e}"))?,
                    );
                }
                Arg::Scalar(b) => cts.push(SupportedFheCiphertexts::Scalar(b.clone())),
            }
        }
        let mut context = ReRandomizationContext::new(
            OPERATION_RERAND_DOMAIN,
            [opcode.to_be_bytes().as_slice()],
            COMPACT_PUBLIC_ENCRYPTION_DOMAIN,
        );
        for c in cts.iter() {
            c.add_to_re_randomization_context(&mut context);
        }
        let mut seeds = context.finalize();
        for c in cts.iter_mut() {
            if !matches!(c, SupportedFheCiphertexts::Scalar(_)) {
                let seed = seeds.next_seed().map_err(|e| format!("next_seed: {e}"))?;
                c.re_randomise(&self.public_key, seed)
                    .map_err(|e| format!("re_randomise: {e}"))?;
            }
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            perform_fhe_operation(opcode as i16, &cts, 0, result_type)
        }))
        .map_err(|p| {
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into())
        })?
        .map_err(|e| format!("perform_fhe_operation: {e}"))?;
        let fhe_type = result.type_num();
        let ct64 = result.compress().map_err(|e| format!("compress: {e}"))?;
        Ok(Stored { fhe_type, ct64 })
    }
}

// ---------------------------------------------------------------------------------------------
// Cases (the plaintext cases of tests/test_operators_vs_oracle.py)
// ---------------------------------------------------------------------------------------------

struct Case {
    id: String,
    opcode: i32,
    args: Vec<Arg>,
    result_type: i16,
}

fn result_type_of(opcode: i32, operand_type: i16) -> i16 {
    match opcode {
        EQ | NE | GE | GT | LE | LT | IS_IN => BOOL,
        _ => operand_type,
    }
}

fn cases(c: &mut Ctx) -> Vec<Case> {
    let mut out: Vec<Case> = vec![];
    let mut push = |id: String, opcode: i32, args: Vec<Arg>, result_type: i16| {
        out.push(Case {
            id,
            opcode,
            args,
            result_type,
        })
    };
    let uints_256: Vec<i16> = UINTS.iter().copied().chain([U256T]).collect();

    // Binary operators.
    for op in [ADD, SUB, MUL] {
        for &t in UINTS.iter() {
            let m = maxv(t);
            let (l, r) = match op {
                ADD => (m, num(1)),
                SUB => (num(0), num(1)),
                _ => (m, num(2)),
            };
            let (a, b) = (c.operand(l, t), c.operand(r, t));
            push(
                format!("{}-{}-enc", op_name(op), type_name(t)),
                op,
                vec![ct(&a), ct(&b)],
                t,
            );
            let a = c.operand(sub_small(m, 1), t);
            // (1 << bits) + 3: wider than the operand, truncated from the left.
            let mut s = set_bit([0u8; 32], type_bits(t));
            s[31] |= 3;
            push(
                format!("{}-{}-scalar", op_name(op), type_name(t)),
                op,
                vec![ct(&a), scalar(&s)],
                t,
            );
        }
    }
    for op in [DIV, REM] {
        for &t in UINTS.iter() {
            let a = c.operand(maxv(t), t);
            push(
                format!("{}-{}-scalar", op_name(op), type_name(t)),
                op,
                vec![ct(&a), scalar(&num(7))],
                t,
            );
        }
    }
    for op in [BIT_AND, BIT_OR, BIT_XOR] {
        let (one, zero) = (c.operand(num(1), BOOL), c.operand(num(0), BOOL));
        push(
            format!("{}-Bool-enc", op_name(op)),
            op,
            vec![ct(&one), ct(&zero)],
            BOOL,
        );
        push(
            format!("{}-Bool-scalar", op_name(op)),
            op,
            vec![ct(&one), scalar(&num(1))],
            BOOL,
        );
        for &t in uints_256.iter() {
            let pattern = repeat_byte(0x5a, t);
            let mut l = maxv(t);
            l[31] ^= 0xF0;
            let (a, b) = (c.operand(l, t), c.operand(pattern, t));
            push(
                format!("{}-{}-enc", op_name(op), type_name(t)),
                op,
                vec![ct(&a), ct(&b)],
                t,
            );
            push(
                format!("{}-{}-scalar", op_name(op), type_name(t)),
                op,
                vec![ct(&b), scalar(&num(0x0F0F))],
                t,
            );
        }
    }
    for op in [SHL, SHR, ROTL, ROTR] {
        for &t in uints_256.iter() {
            let mut value = repeat_byte(0xc3, t);
            value[31] ^= 1;
            let mut beyond = maxv(t);
            beyond[31] = (beyond[31] & !((type_bits(t) - 1) as u8)) | 3;
            let (a, b) = (c.operand(value, t), c.operand(beyond, t));
            push(
                format!("{}-{}-enc", op_name(op), type_name(t)),
                op,
                vec![ct(&a), ct(&b)],
                t,
            );
            push(
                format!("{}-{}-scalar", op_name(op), type_name(t)),
                op,
                vec![ct(&a), scalar(&num(type_bits(t) as u128 + 5))],
                t,
            );
        }
    }
    for op in [EQ, NE] {
        let (one, zero) = (c.operand(num(1), BOOL), c.operand(num(0), BOOL));
        push(
            format!("{}-Bool-enc", op_name(op)),
            op,
            vec![ct(&one), ct(&one)],
            BOOL,
        );
        push(
            format!("{}-Bool-scalar", op_name(op)),
            op,
            vec![ct(&zero), scalar(&num(1))],
            BOOL,
        );
        for t in UINTS.iter().copied().chain([U160, U256T]) {
            let m = maxv(t);
            let a = c.operand(m, t);
            push(
                format!("{}-{}-enc", op_name(op), type_name(t)),
                op,
                vec![ct(&a), ct(&a)],
                BOOL,
            );
            let a = c.operand(sub_small(m, 1), t);
            push(
                format!("{}-{}-scalar", op_name(op), type_name(t)),
                op,
                vec![ct(&a), scalar(&m)],
                BOOL,
            );
        }
    }
    // A Bool scalar is true when any byte is non-zero (reference arr_non_zero), not the last one.
    for op in [BIT_AND, BIT_OR, BIT_XOR, EQ, NE] {
        let one = c.operand(num(1), BOOL);
        push(
            format!("{}-Bool-scalar-0x0100", op_name(op)),
            op,
            vec![ct(&one), scalar(&num(0x0100))],
            BOOL,
        );
    }
    for op in [GE, GT, LE, LT, MIN, MAX] {
        for &t in UINTS.iter() {
            let (a, b) = (c.operand(maxv(t), t), c.operand(num(0), t));
            let rt = result_type_of(op, t);
            push(
                format!("{}-{}-enc", op_name(op), type_name(t)),
                op,
                vec![ct(&a), ct(&b)],
                rt,
            );
            let a = c.operand(num(3), t);
            push(
                format!("{}-{}-scalar", op_name(op), type_name(t)),
                op,
                vec![ct(&a), scalar(&num(3))],
                rt,
            );
        }
    }

    // Unary operators.
    for &t in uints_256.iter() {
        for v in [0u128, 1] {
            let a = c.operand(num(v), t);
            push(format!("Neg-{}-{}", type_name(t), v), NEG, vec![ct(&a)], t);
        }
    }
    for t in [BOOL].into_iter().chain(uints_256.iter().copied()) {
        let a = c.operand(num(1), t);
        push(format!("Not-{}", type_name(t)), NOT, vec![ct(&a)], t);
    }

    // Cast: [ct, toType byte] (host listener stores `vec![toType]`).
    for src in [BOOL].into_iter().chain(uints_256.iter().copied()) {
        for &dst in uints_256.iter() {
            if src == dst {
                continue;
            }
            let value = if src == BOOL {
                num(1)
            } else {
                sub_small(maxv(src), 2)
            };
            let a = c.operand(value, src);
            push(
                format!("Cast-{}-to-{}", type_name(src), type_name(dst)),
                CAST,
                vec![ct(&a), scalar(&[dst as u8])],
                dst,
            );
        }
    }

    // TrivialEncrypt: [pt as 32 bytes big-endian, toType byte].
    for t in [BOOL]
        .into_iter()
        .chain(UINTS.iter().copied())
        .chain([U160, U256T])
    {
        let pt = if t == BOOL {
            num(0x0100)
        } else {
            set_bit(sub_small(maxv(t), 1), 255)
        };
        push(
            format!("TrivialEncrypt-{}", type_name(t)),
            TRIVIAL_ENCRYPT,
            vec![scalar(&pt), scalar(&[t as u8])],
            t,
        );
    }

    // IfThenElse for both controls.
    for t in [BOOL]
        .into_iter()
        .chain(UINTS.iter().copied())
        .chain([U160, U256T])
    {
        for control in [0u128, 1] {
            let k = c.operand(num(control), BOOL);
            let (a, b) = (c.operand(num(1), t), c.operand(num(0), t));
            push(
                format!("IfThenElse-{}-control{}", type_name(t), control),
                IF_THEN_ELSE,
                vec![ct(&k), ct(&a), ct(&b)],
                t,
            );
        }
    }

    // Rand: [seed16, randType byte]; RandBounded: [seed16, upperBound 32 bytes, randType byte].
    let seed: Vec<u8> = (0u8..16).collect();
    for t in [BOOL].into_iter().chain(uints_256.iter().copied()) {
        push(
            format!("Rand-{}", type_name(t)),
            RAND,
            vec![scalar(&seed), scalar(&[t as u8])],
            t,
        );
    }
    for i in 0u8..3 {
        push(
            format!("Rand-Uint64-seed{:02x}", i),
            RAND,
            vec![scalar(&[i; 16]), scalar(&[U64 as u8])],
            U64,
        );
    }
    for &t in uints_256.iter() {
        push(
            format!("RandBounded-{}", type_name(t)),
            RAND_BOUNDED,
            vec![scalar(&[7u8; 16]), scalar(&num(1 << 5)), scalar(&[t as u8])],
            t,
        );
    }

    // Sum, IsIn, MulDiv (newer operators).
    for &t in UINTS.iter() {
        let args = vec![
            ct(&c.operand(maxv(t), t)),
            ct(&c.operand(num(2), t)),
            ct(&c.operand(num(5), t)),
        ];
        push(format!("Sum-{}", type_name(t)), SUM, args, t);
    }
    push("Sum-empty-Uint32".into(), SUM, vec![], U32);
    for t in UINTS.iter().copied().chain([U160, U256T]) {
        let members = [c.operand(num(1), t), c.operand(maxv(t), t)];
        for (label, value) in [("member", maxv(t)), ("nonmember", num(2))] {
            let v = c.operand(value, t);
            push(
                format!("IsIn-{}-{}", type_name(t), label),
                IS_IN,
                vec![ct(&v), ct(&members[0]), ct(&members[1])],
                BOOL,
            );
        }
    }
    let three = c.operand(num(3), U8);
    push("IsIn-empty-Uint8".into(), IS_IN, vec![ct(&three)], BOOL);
    for t in [U8, U16, U32, U64] {
        let m = maxv(t);
        let a = c.operand(m, t);
        push(
            format!("MulDiv-{}-enc", type_name(t)),
            MUL_DIV,
            vec![ct(&a), ct(&a), scalar(&m)],
            t,
        );
        push(
            format!("MulDiv-{}-scalar", type_name(t)),
            MUL_DIV,
            vec![ct(&a), scalar(&sub_small(m, 1)), scalar(&m)],
            t,
        );
    }
    out
}

fn in_quick_subset(case: &Case) -> bool {
    matches!(
        case.opcode,
        ADD | BIT_AND | EQ | SHL | CAST | IF_THEN_ELSE | RAND
    )
}

// ---------------------------------------------------------------------------------------------
// Chains: confidential transfer on Uint64, every step consuming compressed earlier results
// ---------------------------------------------------------------------------------------------

fn chain(
    c: &mut Ctx,
    id: &str,
    from: u128,
    to: u128,
    amount: u128,
) -> (Value, Vec<(String, Stored)>) {
    let bf = c.operand(num(from), U64);
    let bt = c.operand(num(to), U64);
    let am = c.operand(num(amount), U64);
    let steps: Vec<(&str, i32, Vec<Arg>, i16)> = vec![
        ("ok", GE, vec![ct(&bf), ct(&am)], BOOL),
        (
            "zero",
            TRIVIAL_ENCRYPT,
            vec![scalar(&num(0)), scalar(&[U64 as u8])],
            U64,
        ),
        (
            "value",
            IF_THEN_ELSE,
            vec![ct("ok"), ct(&am), ct("zero")],
            U64,
        ),
        ("new_to", ADD, vec![ct(&bt), ct("value")], U64),
        ("new_from", SUB, vec![ct(&bf), ct("value")], U64),
    ];
    let mut results: BTreeMap<String, Stored> = BTreeMap::new();
    let mut out_steps = vec![];
    let mut stored = vec![];
    for (name, opcode, args, rt) in steps {
        let t0 = Instant::now();
        let s = c
            .step(opcode, &args, rt, &results)
            .unwrap_or_else(|e| panic!("{id}.{name}: {e}"));
        let plain = c.decrypt_ct64(&s).expect("decrypt");
        println!(
            "  chain {id}.{name}: {} -> {plain} ({:.1}s)",
            op_name(opcode),
            t0.elapsed().as_secs_f64()
        );
        out_steps.push(json!({
            "result": name,
            "opcode": opcode,
            "operands": args.iter().map(arg_json).collect::<Vec<_>>(),
            "result_type": rt,
            "ct64_keccak": hex0x(&keccak(&s.ct64)),
            "plaintext": plain,
        }));
        stored.push((format!("{id}.{name}"), s.clone()));
        results.insert(name.to_string(), s);
    }
    (json!({ "id": id, "steps": out_steps }), stored)
}

// ---------------------------------------------------------------------------------------------
// Inputs: zkproof-worker verify_proof, from the reference's public functions
// ---------------------------------------------------------------------------------------------

fn address(s: &str) -> [u8; 20] {
    let b = hex::decode(s.trim_start_matches("0x")).expect("address hex");
    b.try_into().expect("20-byte address")
}

fn verify_input(c: &Ctx, raw: &[u8], meta: &Value) -> Result<Value, String> {
    let contract = address(meta["contract"].as_str().unwrap());
    let user = address(meta["user"].as_str().unwrap());
    let acl = address(meta["acl"].as_str().unwrap());
    let chain_id = meta["chain_id"].as_u64().unwrap();
    let chain_id_u256 = num(chain_id as u128);
    let mut aux = Vec::with_capacity(92);
    aux.extend_from_slice(&contract);
    aux.extend_from_slice(&user);
    aux.extend_from_slice(&acl);
    aux.extend_from_slice(&chain_id_u256);

    // Step 1: conformant deserialization (verifier.rs proven_list_conformance_params), size
    // check, verification.
    let params = IntegerProvenCompactCiphertextListConformanceParams::from_public_key_encryption_parameters_and_crs_parameters(
        c.public_key.parameters(),
        &c.crs,
    )
    .forbid_hash_config(ZkPkeV2SupportedHashConfig::V0_4_0)
    .forbid_compute_load(ZkComputeLoad::Proof);
    let list: tfhe::ProvenCompactCiphertextList =
        safe_deserialize_conformant(raw, &params).map_err(|e| format!("Fhevm error: {e}"))?;
    let mut cts: Vec<SupportedFheCiphertexts> = if list.is_empty() {
        vec![]
    } else {
        if list.len() > MAX_INPUT_INDEX + 1 {
            return Err(format!("Too many inputs: {}", list.len()));
        }
        if list.verify(&c.crs, &c.public_key, &aux).is_invalid() {
            return Err("Invalid Proof(<request id>, ZK proof verification failed)".into());
        }
        // Step 2: expand without verification, reference extract_ct_list.
        let expander = list
            .expand_without_verification()
            .map_err(|e| format!("Invalid Proof(<request id>, {e})"))?;
        extract_ct_list(&expander).map_err(|e| format!("Fhevm error: {e}"))?
    };

    // Step 3: blob hash, handle hashes, re-randomization metadata (full 32-byte h_i).
    let mut h = Keccak256::new();
    h.update(RAW_CT_HASH_DOMAIN);
    h.update(raw);
    let blob_hash: [u8; 32] = h.finalize().into();
    let mut handles: Vec<Vec<u8>> = vec![];
    for (idx, ct) in cts.iter_mut().enumerate() {
        let mut hh = Keccak256::new();
        hh.update(HANDLE_HASH_DOMAIN);
        hh.update(blob_hash);
        hh.update([idx as u8]);
        hh.update(acl);
        hh.update(chain_id_u256);
        let handle: [u8; 32] = hh.finalize().into();
        ct.add_re_randomization_metadata(&handle);
        handles.push(handle.to_vec());
    }

    // Step 4: re-randomize (ZKw_Rrnd, [blob_hash]), one seed per ciphertext in order.
    let mut context = ReRandomizationContext::new(
        INPUT_RERAND_DOMAIN,
        [blob_hash.as_slice()],
        COMPACT_PUBLIC_ENCRYPTION_DOMAIN,
    );
    for ct in cts.iter() {
        ct.add_to_re_randomization_context(&mut context);
    }
    let mut seeds = context.finalize();
    for ct in cts.iter_mut() {
        let seed = seeds.next_seed().map_err(|e| format!("next_seed: {e}"))?;
        ct.re_randomise(&c.public_key, seed)
            .map_err(|e| format!("re_randomise: {e}"))?;
    }

    // Step 5: compress, patch the handles.
    let mut out_handles = vec![];
    let mut types = vec![];
    let mut keccaks = vec![];
    let mut plaintexts = vec![];
    for (idx, (ct, mut handle)) in cts.iter().zip(handles).enumerate() {
        let t = ct.type_num();
        let ct64 = ct.compress().map_err(|e| format!("compress: {e}"))?;
        handle[21] = idx as u8;
        handle[22..30].copy_from_slice(&chain_id.to_be_bytes());
        handle[30] = t as u8;
        handle[31] = 0;
        out_handles.push(hex0x(&handle));
        types.push(t);
        keccaks.push(hex0x(&keccak(&ct64)));
        plaintexts.push(c.decrypt_ct64(&Stored { fhe_type: t, ct64 })?);
    }
    Ok(json!({
        "handles": out_handles,
        "fhe_types": types,
        "ct64_keccak": keccaks,
        "plaintexts": plaintexts,
    }))
}

// ---------------------------------------------------------------------------------------------
// Switch-and-squash: sns-worker compute_task + squash_noise_and_serialize (compression on), in
// src/sns.rs (shared with reference-bench); then a decryption of the ct128 as a check
// ---------------------------------------------------------------------------------------------

fn squash(c: &Ctx, s: &Stored) -> Result<(Vec<u8>, String), String> {
    let ct128 = squash_ct64(s.fhe_type, &s.ct64)?;

    // Decrypt the ct128 back, as a check of the vector (not part of the reference path).
    let back: CompressedSquashedNoiseCiphertextList =
        tfhe::safe_serialization::safe_deserialize(ct128.as_slice(), SNS_SER_LIMIT)?;
    let plain = if s.fhe_type == BOOL {
        let q: SquashedNoiseFheBool = back.get(0).map_err(|e| e.to_string())?.ok_or("empty")?;
        let b: bool = q.decrypt(&c.client_key);
        (b as u8).to_string()
    } else {
        let q: SquashedNoiseFheUint = back.get(0).map_err(|e| e.to_string())?.ok_or("empty")?;
        let v: U2048 = q.decrypt(&c.client_key);
        let mut bytes = [0u8; 256];
        v.copy_to_be_byte_slice(&mut bytes);
        dec(&bytes)
    };
    Ok((ct128, plain))
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let derive_twice = args.iter().any(|a| a == "--derive-twice");
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| PathBuf::from(&args[i + 1]))
    };
    let repo =
        value_of("--repo").unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let out_path = value_of("--out")
        .unwrap_or_else(|| repo.join("tests/fixtures/reference_vectors/vectors.json"));
    let keys_dir = repo.join("tfhe-py/tests/fixtures/keys");

    // Keys.
    let t0 = Instant::now();
    let client_key: ClientKey = tfhe::safe_serialization::safe_deserialize(
        open(&keys_dir.join("client_key.bin")),
        KEY_LIMIT,
    )
    .expect("client key");
    let public_key: CompactPublicKey = tfhe::safe_serialization::safe_deserialize(
        open(&keys_dir.join("public_key.bin")),
        KEY_LIMIT,
    )
    .expect("public key");
    let crs: CompactPkeCrs =
        tfhe::safe_serialization::safe_deserialize(open(&keys_dir.join("crs.bin")), KEY_LIMIT)
            .expect("crs");
    let keys_json: Value =
        serde_json::from_reader(open(&keys_dir.join("keys.json"))).expect("keys.json");
    let seed_str = keys_json["server_key_seed"]
        .as_str()
        .expect("server_key_seed")
        .to_string();
    let seed: u128 = seed_str.parse().expect("server_key_seed is a decimal u128");
    println!("keys loaded ({:.1}s)", t0.elapsed().as_secs_f64());

    let mut preset = BTreeMap::new();
    if let Some(path) = value_of("--operands") {
        let earlier: Value = serde_json::from_reader(open(&path)).expect("--operands json");
        for (id, o) in earlier["operands"].as_object().expect("operands") {
            let t = o["fhe_type"].as_i64().unwrap() as i16;
            let v = parse_dec(o["plaintext"].as_str().unwrap());
            let ct64 = hex::decode(o["ct64"].as_str().unwrap()).expect("ct64 hex");
            preset.insert(id.clone(), (t, v, ct64));
        }
        println!("{} operands reused from {}", preset.len(), path.display());
    }
    let t0 = Instant::now();
    let server_key = derive_server_key(&client_key, seed);
    println!("server key derived ({:.1}s)", t0.elapsed().as_secs_f64());
    let t0 = Instant::now();
    let (sk_hash, sk_size) = server_key_keccak(&server_key);
    println!(
        "server key keccak {} ({} bytes, {:.1}s)",
        hex0x(&sk_hash),
        sk_size,
        t0.elapsed().as_secs_f64()
    );
    if derive_twice {
        let t0 = Instant::now();
        let again = derive_server_key(&client_key, seed);
        let (h2, _) = server_key_keccak(&again);
        drop(again);
        println!(
            "server key derived again: keccak {} -> {} ({:.1}s)",
            hex0x(&h2),
            if h2 == sk_hash {
                "DETERMINISTIC"
            } else {
                "DIFFERENT"
            },
            t0.elapsed().as_secs_f64()
        );
        assert_eq!(h2, sk_hash, "server key derivation is not deterministic");
    }
    tfhe::set_server_key(server_key);

    let mut c = Ctx {
        client_key,
        public_key,
        crs,
        operands: BTreeMap::new(),
        preset,
    };
    let write_doc = |c: &Ctx,
                     operations: &[Value],
                     chains: &[Value],
                     inputs: &[Value],
                     squashes: &[Value],
                     path: &Path| {
        let operands: serde_json::Map<String, Value> = c
            .operands
            .iter()
            .map(|(id, (t, v, ct64))| {
                (
                    id.clone(),
                    json!({ "fhe_type": t, "plaintext": dec(v), "ct64": hex::encode(ct64) }),
                )
            })
            .collect();
        let doc = json!({
            "reference": "zama-ai/fhevm v0.14.0 coprocessor/fhevm-engine (fhevm-engine-common), tfhe 1.6.3",
            "subset": if quick { "quick" } else { "full" },
            "server_key_seed": seed_str,
            "server_key_keccak": hex0x(&sk_hash),
            "operands": operands,
            "operations": operations,
            "chains": chains,
            "inputs": inputs,
            "squash": squashes,
        });
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        let mut text = serde_json::to_string_pretty(&doc).expect("json");
        text.push('\n');
        std::fs::write(path, text).expect("write vectors");
    };
    let partial_path = out_path.with_extension("json.partial");

    // Every operand is encrypted once, up front (one per distinct value and type).
    let t0 = Instant::now();
    let all = cases(&mut c);
    let selected: Vec<&Case> = all
        .iter()
        .filter(|k| !quick || in_quick_subset(k))
        .collect();
    println!(
        "{} operands ready (encrypted and compressed, or reused; {:.1}s); {} operations selected ({} in total)",
        c.operands.len(),
        t0.elapsed().as_secs_f64(),
        selected.len(),
        all.len()
    );

    // Chains: cheap and the most useful end-to-end check.
    let mut chains = vec![];
    let mut chain_results: BTreeMap<String, Stored> = BTreeMap::new();
    for (id, amount) in [
        ("erc20_transfer_ok", 100u128),
        ("erc20_transfer_insufficient", 5000),
    ] {
        let (v, stored) = chain(&mut c, id, 1000, 0, amount);
        chains.push(v);
        chain_results.extend(stored);
    }

    // Inputs.
    let mut inputs = vec![];
    let inputs_dir = repo.join("tests/fixtures/inputs");
    let mut bins: Vec<PathBuf> = std::fs::read_dir(&inputs_dir)
        .expect("inputs dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .filter(|p| p.with_extension("json").exists())
        .collect();
    bins.sort();
    for bin in bins {
        let t0 = Instant::now();
        let rel = format!(
            "tests/fixtures/inputs/{}",
            bin.file_name().unwrap().to_string_lossy()
        );
        let raw = std::fs::read(&bin).expect("read input");
        let meta: Value = serde_json::from_reader(open(&bin.with_extension("json"))).expect("json");
        let mut entry = serde_json::Map::new();
        entry.insert("fixture".into(), json!(rel));
        match verify_input(&c, &raw, &meta) {
            Ok(v) => {
                let same = meta.get("handles") == Some(&v["handles"]);
                println!(
                    "  input {rel}: {} handles, same handles as the fixture's .json: {same} ({:.1}s)",
                    v["handles"].as_array().unwrap().len(),
                    t0.elapsed().as_secs_f64()
                );
                for (k, x) in v.as_object().unwrap() {
                    entry.insert(k.clone(), x.clone());
                }
            }
            Err(e) => {
                println!(
                    "  input {rel}: rejected: {e} ({:.1}s)",
                    t0.elapsed().as_secs_f64()
                );
                entry.insert("rejected".into(), json!(e));
            }
        }
        inputs.push(Value::Object(entry));
    }

    // Squash.
    let mut squashes = vec![];
    let mut to_squash: Vec<String> = vec![
        format!("Uint8_{}", dec(&maxv(U8))),
        format!("Uint64_{}", dec(&maxv(U64))),
        "Bool_1".to_string(),
    ];
    if !quick {
        to_squash.push(format!("Uint256_{}", dec(&maxv(U256T))));
    }
    to_squash.push("erc20_transfer_ok.new_to".to_string());
    for id in to_squash {
        let t0 = Instant::now();
        let s = match chain_results.get(&id) {
            Some(s) => s.clone(),
            None => {
                let (t, _, ct64) = c
                    .operands
                    .get(&id)
                    .unwrap_or_else(|| panic!("no operand {id}"));
                Stored {
                    fhe_type: *t,
                    ct64: ct64.clone(),
                }
            }
        };
        let (ct128, plain) = squash(&c, &s).unwrap_or_else(|e| panic!("squash {id}: {e}"));
        println!(
            "  squash {id}: {} bytes, decrypts to {plain} ({:.1}s)",
            ct128.len(),
            t0.elapsed().as_secs_f64()
        );
        squashes.push(json!({
            "operand": id,
            "fhe_type": s.fhe_type,
            "ct64_keccak": hex0x(&keccak(&s.ct64)),
            "ct128_keccak": hex0x(&keccak(&ct128)),
            "plaintext": plain,
        }));
    }
    write_doc(&c, &[], &chains, &inputs, &squashes, &partial_path);

    // Operations.
    let mut operations = vec![];
    let empty = BTreeMap::new();
    let mut failures = 0;
    for (i, k) in selected.iter().enumerate() {
        let t0 = Instant::now();
        let mut entry = json!({
            "id": k.id,
            "opcode": k.opcode,
            "operands": k.args.iter().map(arg_json).collect::<Vec<_>>(),
            "result_type": k.result_type,
        });
        let outcome = c
            .step(k.opcode, &k.args, k.result_type, &empty)
            .and_then(|s| {
                if s.fhe_type != k.result_type {
                    return Err(format!(
                        "result type {} instead of {}",
                        s.fhe_type, k.result_type
                    ));
                }
                Ok((hex0x(&keccak(&s.ct64)), c.decrypt_ct64(&s)?))
            });
        match outcome {
            Ok((hash, plain)) => {
                println!(
                    "  [{}/{}] {} = {} ({:.1}s)",
                    i + 1,
                    selected.len(),
                    k.id,
                    plain,
                    t0.elapsed().as_secs_f64()
                );
                entry["ct64_keccak"] = json!(hash);
                entry["plaintext"] = json!(plain);
            }
            Err(e) => {
                failures += 1;
                println!("  [{}/{}] {} ERROR {e}", i + 1, selected.len(), k.id);
                entry["error"] = json!(e);
            }
        }
        operations.push(entry);
        if (i + 1) % 20 == 0 {
            write_doc(&c, &operations, &chains, &inputs, &squashes, &partial_path);
        }
    }

    write_doc(&c, &operations, &chains, &inputs, &squashes, &out_path);
    let _ = std::fs::remove_file(&partial_path);
    println!(
        "wrote {} ({} operations, {} errors; {:.1}s in total)",
        out_path.display(),
        operations.len(),
        failures,
        started.elapsed().as_secs_f64()
    );
}

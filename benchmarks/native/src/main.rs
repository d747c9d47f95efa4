//! Times the operations of `benchmarks/tfhe_ops.py` with TFHE-rs called directly, on the same
//! keys (the server key cached by the Python side), and prints one JSON object of sample lists.
//!
//! Usage: native-bench <client_key.bin> <server_key.bin> <repeats> <slow_repeats>

use std::fs::File;
use std::io::BufReader;
use std::time::Instant;

use tfhe::prelude::*;
use tfhe::safe_serialization::{safe_deserialize, safe_serialize};
use tfhe::{
    set_server_key, ClientKey, CompressedCiphertextList, CompressedCiphertextListBuilder,
    CompressedSquashedNoiseCiphertextList, FheUint64, FheUint8, ServerKey,
};

const KEY_LIMIT: u64 = 2 << 30;
const CT_LIMIT: u64 = 16 << 20;

fn load<T: serde::de::DeserializeOwned + tfhe::Unversionize + tfhe::named::Named>(path: &str) -> T {
    let file = File::open(path).unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
    safe_deserialize(BufReader::new(file), KEY_LIMIT).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed().as_secs_f64()
        })
        .collect()
}

fn samples_json(name: &str, samples: &[f64]) -> String {
    let list: Vec<String> = samples.iter().map(|s| format!("{s:.6}")).collect();
    format!("\"{name}\": [{}]", list.join(", "))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!(
        args.len() == 5,
        "usage: native-bench <client_key> <server_key> <repeats> <slow_repeats>"
    );
    let client_key: ClientKey = load(&args[1]);
    let server_key: ServerKey = load(&args[2]);
    let n: usize = args[3].parse().expect("repeats");
    let slow: usize = args[4].parse().expect("slow repeats");
    set_server_key(server_key);

    let a8 = FheUint8::encrypt(200u8, &client_key);
    let b8 = FheUint8::encrypt(77u8, &client_key);
    let a64 = FheUint64::encrypt(u64::MAX - 5, &client_key);
    let b64 = FheUint64::encrypt(123_456u64, &client_key);
    let flag = a64.ge(&b64);

    let mut out = vec![
        samples_json("uint8_add", &time(n, || &a8 + &b8)),
        samples_json("uint8_mul", &time(n, || &a8 * &b8)),
        samples_json("uint8_ge", &time(n, || a8.ge(&b8))),
        samples_json("uint8_select", &time(n, || a8.ge(&b8).select(&a8, &b8))),
        samples_json("uint64_add", &time(n, || &a64 + &b64)),
        samples_json("uint64_mul", &time(slow, || &a64 * &b64)),
        samples_json("uint64_ge", &time(n, || a64.ge(&b64))),
        samples_json("uint64_select", &time(n, || flag.select(&a64, &b64))),
    ];
    let compress = || {
        let mut builder = CompressedCiphertextListBuilder::new();
        builder.push(a64.clone());
        let mut buf = Vec::new();
        safe_serialize(&builder.build().unwrap(), &mut buf, CT_LIMIT).unwrap();
        buf
    };
    let stored = compress();
    out.push(samples_json("uint64_compress", &time(n, compress)));
    out.push(samples_json(
        "uint64_decompress",
        &time(n, || {
            let list: CompressedCiphertextList = safe_deserialize(&stored[..], CT_LIMIT).unwrap();
            list.get::<FheUint64>(0).unwrap().unwrap()
        }),
    ));
    out.push(samples_json(
        "uint64_squash",
        &time(n, || {
            let mut builder = CompressedSquashedNoiseCiphertextList::builder();
            builder.push(a64.squash_noise().unwrap());
            let mut buf = Vec::new();
            safe_serialize(&builder.build().unwrap(), &mut buf, CT_LIMIT).unwrap();
            buf
        }),
    ));
    println!("{{{}}}", out.join(", "));
}

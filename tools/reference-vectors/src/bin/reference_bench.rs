//! Side-by-side benchmark: the reference coprocessor's own code path (zama-ai/fhevm v0.14.0) on
//! work exported by our Python benchmark, with times and the ciphertext digests.
//!
//! Usage: reference-bench --work WORK.json --server-key PATH --public-key PATH --out RESULT.json
//!        [--no-squash]   (the scheduler alone: ct128_keccak null, squash_seconds ~0)
//!
//! Evaluation goes through the public API of the reference `scheduler` crate exactly as
//! `tfhe-worker/src/tfhe_worker.rs` drives it: per host transaction, `DFGOp`s
//! (`SupportedFheOperations::try_from`, `is_operand_scalar`, scalar operands as
//! `DFGTaskInput::Value(Scalar)`, the others as `DFGTaskInput::Dependence(handle)`,
//! `check_fhe_operand_types`) and `build_component_nodes`; then `DFComponentGraph::build`,
//! `add_input` of the stored ciphertexts for the `needed_map` keys, `resolve_dependences`,
//! `Scheduler::new(..).schedule()` in a multi-thread tokio runtime, `get_results()`.
//! Then the sns-worker squash (`process_tasks` with `SchedulePolicy::RayonParallel`:
//! `rayon::broadcast` of the server key, `par_iter` of `compute_task`) for every allowed result.
//!
//! WORK.json:
//!   {"transactions": [{"tx": "0x<32 bytes>", "ops": [{"output": "0x<handle>", "opcode": n,
//!     "is_scalar": b, "is_allowed": b, "dependencies": ["0x<handle or scalar bytes>", ..]}, ..]}, ..],
//!    "inputs": {"0x<handle>": "0x<ct64>", ..}}
//! RESULT.json:
//!   {"key_load_seconds", "evaluate_seconds", "squash_seconds", "operations", "allowed",
//!    "threads": {"rayon", "tokio_workers"},
//!    "results": {"0x<handle>": {"ct64_keccak", "ct128_keccak"}}, "errors": {"0x<handle>": ".."}}

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use fhevm_engine_common::tfhe_ops::check_fhe_operand_types;
use fhevm_engine_common::types::{get_ct_type, SupportedFheCiphertexts, SupportedFheOperations};
use fhevm_engine_common::utils::HeartBeat;
use rayon::prelude::*;
use reference_vectors::sns::squash_ct64;
use reference_vectors::{hex0x, keccak, KEY_LIMIT};
use scheduler::dfg::scheduler::Scheduler;
use scheduler::dfg::types::{CompressedCiphertext, DFGTaskInput, DFGTxInput};
use scheduler::dfg::{build_component_nodes, ComponentNode, DFComponentGraph, DFGOp};
use serde_json::{json, Map, Value};
use tfhe::{CompactPublicKey, ServerKey};

const USAGE: &str = "usage: reference-bench --work WORK.json --server-key PATH --public-key PATH \
     --out RESULT.json [--no-squash]";

type Handle = Vec<u8>;

struct Op {
    output: Handle,
    opcode: i64,
    is_scalar: bool,
    is_allowed: bool,
    dependencies: Vec<Vec<u8>>,
}

struct Tx {
    id: Handle,
    ops: Vec<Op>,
}

struct Work {
    transactions: Vec<Tx>,
    inputs: HashMap<Handle, Vec<u8>>,
}

struct Args {
    work: PathBuf,
    server_key: PathBuf,
    public_key: PathBuf,
    out: PathBuf,
    squash: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut work = None;
    let mut server_key = None;
    let mut public_key = None;
    let mut out = None;
    let mut squash = true;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--no-squash" => {
                squash = false;
                continue;
            }
            "--work" => &mut work,
            "--server-key" => &mut server_key,
            "--public-key" => &mut public_key,
            "--out" => &mut out,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        };
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        *slot = Some(PathBuf::from(value));
    }
    let need =
        |v: Option<PathBuf>, flag: &str| v.ok_or_else(|| format!("{flag} is missing\n{USAGE}"));
    Ok(Args {
        work: need(work, "--work")?,
        server_key: need(server_key, "--server-key")?,
        public_key: need(public_key, "--public-key")?,
        out: need(out, "--out")?,
        squash,
    })
}

fn hex_bytes(v: &Value, what: &str) -> Result<Vec<u8>, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("{what}: expected a 0x-hex string, got {v}"))?;
    let digits = s
        .strip_prefix("0x")
        .ok_or_else(|| format!("{what}: {s:?} does not start with 0x"))?;
    hex::decode(digits).map_err(|e| format!("{what}: bad hex ({e})"))
}

fn handle32(v: &Value, what: &str) -> Result<Handle, String> {
    let b = hex_bytes(v, what)?;
    if b.len() != 32 {
        return Err(format!("{what}: expected 32 bytes, got {}", b.len()));
    }
    Ok(b)
}

fn read_work(path: &Path) -> Result<Work, String> {
    let file = File::open(path).map_err(|e| format!("--work {}: {e}", path.display()))?;
    let doc: Value = serde_json::from_reader(BufReader::new(file))
        .map_err(|e| format!("--work {}: not JSON ({e})", path.display()))?;
    let txs = doc["transactions"]
        .as_array()
        .ok_or("WORK.json: \"transactions\" must be a list")?;
    let mut transactions = Vec::with_capacity(txs.len());
    for (i, t) in txs.iter().enumerate() {
        let id = handle32(&t["tx"], &format!("transactions[{i}].tx"))?;
        let ops_json = t["ops"]
            .as_array()
            .ok_or_else(|| format!("transactions[{i}].ops must be a list"))?;
        let mut ops = Vec::with_capacity(ops_json.len());
        for (j, o) in ops_json.iter().enumerate() {
            let at = format!("transactions[{i}].ops[{j}]");
            let flag = |k: &str| {
                o[k].as_bool()
                    .ok_or_else(|| format!("{at}.{k} must be true or false"))
            };
            let deps = o["dependencies"]
                .as_array()
                .ok_or_else(|| format!("{at}.dependencies must be a list"))?
                .iter()
                .enumerate()
                .map(|(k, d)| hex_bytes(d, &format!("{at}.dependencies[{k}]")))
                .collect::<Result<Vec<_>, _>>()?;
            ops.push(Op {
                output: handle32(&o["output"], &format!("{at}.output"))?,
                opcode: o["opcode"]
                    .as_i64()
                    .ok_or_else(|| format!("{at}.opcode must be an integer"))?,
                is_scalar: flag("is_scalar")?,
                is_allowed: flag("is_allowed")?,
                dependencies: deps,
            });
        }
        transactions.push(Tx { id, ops });
    }
    let mut inputs = HashMap::new();
    if let Some(m) = doc.get("inputs") {
        let m = m
            .as_object()
            .ok_or("WORK.json: \"inputs\" must be an object {handle: ct64}")?;
        for (h, ct) in m {
            let handle = handle32(&Value::String(h.clone()), &format!("inputs key {h}"))?;
            inputs.insert(handle, hex_bytes(ct, &format!("inputs[{h}]"))?);
        }
    }
    Ok(Work {
        transactions,
        inputs,
    })
}

fn load_keys(args: &Args) -> Result<(ServerKey, CompactPublicKey), String> {
    let open = |p: &Path, flag: &str| {
        File::open(p)
            .map(BufReader::new)
            .map_err(|e| format!("{flag} {}: {e}", p.display()))
    };
    let cpk: CompactPublicKey = tfhe::safe_serialization::safe_deserialize(
        open(&args.public_key, "--public-key")?,
        KEY_LIMIT,
    )
    .map_err(|e| {
        format!(
            "--public-key {}: not a safe-serialized CompactPublicKey ({e})",
            args.public_key.display()
        )
    })?;
    let sks: ServerKey = tfhe::safe_serialization::safe_deserialize(
        open(&args.server_key, "--server-key")?,
        KEY_LIMIT,
    )
    .map_err(|e| {
        format!(
            "--server-key {}: not a safe-serialized ServerKey ({e})",
            args.server_key.display()
        )
    })?;
    Ok((sks, cpk))
}

/// tfhe-worker's per-transaction preparation (`query_for_work`): one `DFGOp` per computation,
/// then `build_component_nodes`. Computations the reference refuses get their error text.
fn prepare(
    transactions: &[Tx],
    errors: &mut BTreeMap<Handle, String>,
) -> Result<Vec<ComponentNode>, String> {
    let mut components = vec![];
    for tx in transactions {
        let mut ops = Vec::with_capacity(tx.ops.len());
        for w in &tx.ops {
            let fhe_op = match i16::try_from(w.opcode)
                .map_err(|_| format!("opcode {} out of range", w.opcode))
                .and_then(|c| SupportedFheOperations::try_from(c).map_err(|e| e.to_string()))
            {
                Ok(op) => op,
                Err(e) => {
                    // tfhe-worker: set_computation_error, continue.
                    errors.insert(w.output.clone(), e);
                    continue;
                }
            };
            let n = w.dependencies.len();
            let mut inputs = Vec::with_capacity(n);
            let mut is_scalar_op_vec = Vec::with_capacity(n);
            for (idx, dh) in w.dependencies.iter().enumerate() {
                let is_operand_scalar = fhe_op.is_operand_scalar(w.is_scalar, idx, n);
                is_scalar_op_vec.push(is_operand_scalar);
                if is_operand_scalar {
                    inputs.push(DFGTaskInput::Value(SupportedFheCiphertexts::Scalar(
                        dh.clone(),
                    )));
                } else {
                    inputs.push(DFGTaskInput::Dependence(dh.clone()));
                }
            }
            // tfhe-worker fails its whole batch on this error (`?`); here only the computation
            // is left out, with the reference's error text.
            if let Err(e) =
                check_fhe_operand_types(w.opcode as i32, &w.dependencies, &is_scalar_op_vec)
            {
                errors.insert(w.output.clone(), e.to_string());
                continue;
            }
            ops.push(DFGOp {
                output_handle: w.output.clone(),
                fhe_op,
                inputs,
                is_allowed: w.is_allowed,
            });
        }
        let (mut c, _unneeded) = build_component_nodes(ops, &tx.id).map_err(|e| {
            format!(
                "build_component_nodes for transaction {}: {e}",
                hex0x(&tx.id)
            )
        })?;
        components.append(&mut c);
    }
    Ok(components)
}

fn op_nodes(graph: &DFComponentGraph) -> usize {
    graph
        .graph
        .raw_nodes()
        .iter()
        .map(|n| n.weight.graph.graph.node_count())
        .sum()
}

fn run(args: &Args) -> Result<String, String> {
    let work = read_work(&args.work)?;
    let submitted: usize = work.transactions.iter().map(|t| t.ops.len()).sum();
    eprintln!(
        "reference-bench: {} transactions, {} computations, {} stored inputs; loading keys",
        work.transactions.len(),
        submitted,
        work.inputs.len()
    );

    let t0 = Instant::now();
    let (sks, cpk) = load_keys(args)?;
    let key_load_seconds = t0.elapsed().as_secs_f64();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let tokio_workers = runtime.metrics().num_workers();

    // Evaluation: graph build + schedule + get_results (wall).
    let mut errors: BTreeMap<Handle, String> = BTreeMap::new();
    let t0 = Instant::now();
    let mut components = prepare(&work.transactions, &mut errors)?;
    let mut graph = DFComponentGraph::default();
    graph
        .build(&mut components)
        .map_err(|e| format!("DFComponentGraph::build: {e}"))?;
    let mut fetched: HashSet<Handle> = HashSet::new();
    let mut missing = vec![];
    let needed: Vec<Handle> = graph.needed_map.keys().cloned().collect();
    for handle in needed {
        match work.inputs.get(&handle) {
            Some(ct64) => {
                let ct_type = get_ct_type(&handle).map_err(|e| e.to_string())?;
                graph
                    .add_input(
                        &handle,
                        &DFGTxInput::Compressed((
                            CompressedCiphertext {
                                ct_type,
                                ct_bytes: ct64.clone(),
                            },
                            true,
                        )),
                    )
                    .map_err(|e| format!("add_input {}: {e}", hex0x(&handle)))?;
                fetched.insert(handle);
            }
            None if !graph.produced.contains_key(&handle) => missing.push(hex0x(&handle)),
            None => {} // produced by an earlier transaction of this work: a deferred dependence
        }
    }
    if !missing.is_empty() {
        missing.sort();
        eprintln!(
            "reference-bench: warning: {} needed handles are neither inputs nor produced here: {}",
            missing.len(),
            missing.join(", ")
        );
    }
    let resolved = graph.resolve_dependences(&fetched);
    let in_graph = op_nodes(&graph);
    if let Err(e) = &resolved {
        // tfhe-worker does not execute the batch; the cycle errors are in the results.
        eprintln!("reference-bench: resolve_dependences: {e}");
    } else {
        runtime
            .block_on(async {
                tfhe::set_server_key(sks.clone());
                let mut sched =
                    Scheduler::new(&mut graph, sks.clone(), cpk.clone(), HeartBeat::new());
                sched.schedule().await
            })
            .map_err(|e| format!("Scheduler::schedule: {e}"))?;
    }
    // The scheduler takes the op graph of every transaction it runs.
    let operations = in_graph - op_nodes(&graph);
    let graph_results = graph.get_results();
    let evaluate_seconds = t0.elapsed().as_secs_f64();

    let mut ct64s: Vec<(Handle, Vec<u8>)> = vec![];
    for r in graph_results {
        match r.compressed_ct {
            Ok(cct) => ct64s.push((r.handle, cct.ct_bytes)),
            Err(e) => {
                errors.insert(r.handle, e.to_string());
            }
        }
    }
    ct64s.sort();
    let allowed = ct64s.len();

    // sns-worker process_tasks, SchedulePolicy::RayonParallel, compression on (unless
    // --no-squash: the scheduler alone, every ct128_keccak null).
    let t0 = Instant::now();
    tfhe::set_server_key(sks.clone());
    rayon::broadcast(|_| tfhe::set_server_key(sks.clone()));
    let ct128s: Vec<Option<Result<Vec<u8>, String>>> = ct64s
        .par_iter()
        .map(|(handle, ct64)| {
            args.squash.then(|| {
                let ct_type = get_ct_type(handle).map_err(|e| e.to_string())?;
                squash_ct64(ct_type, ct64)
            })
        })
        .collect();
    let squash_seconds = t0.elapsed().as_secs_f64();

    let mut results = Map::new();
    let mut squash_errors = 0;
    for ((handle, ct64), ct128) in ct64s.iter().zip(ct128s) {
        let ct128_keccak = match ct128 {
            Some(Ok(b)) => json!(hex0x(&keccak(&b))),
            Some(Err(e)) => {
                squash_errors += 1;
                errors.insert(handle.clone(), format!("squash: {e}"));
                Value::Null
            }
            None => Value::Null,
        };
        results.insert(
            hex0x(handle),
            json!({ "ct64_keccak": hex0x(&keccak(ct64)), "ct128_keccak": ct128_keccak }),
        );
    }
    let rayon_threads = rayon::current_num_threads();
    let error_count = errors.len();
    let errors: Map<String, Value> = errors
        .into_iter()
        .map(|(h, e)| (hex0x(&h), json!(e)))
        .collect();
    let doc = json!({
        "reference": "zama-ai/fhevm v0.14.0 coprocessor/fhevm-engine (scheduler, fhevm-engine-common; sns-worker squash sequence), tfhe 1.6.3",
        "key_load_seconds": key_load_seconds,
        "evaluate_seconds": evaluate_seconds,
        "squash_seconds": squash_seconds,
        "operations": operations,
        "allowed": allowed,
        "threads": { "rayon": rayon_threads, "tokio_workers": tokio_workers },
        "results": results,
        "errors": errors,
    });
    let mut text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    text.push('\n');
    std::fs::write(&args.out, text).map_err(|e| format!("--out {}: {e}", args.out.display()))?;
    Ok(format!(
        "reference-bench: {operations} operations ({submitted} submitted), {allowed} allowed results, \
         {error_count} errors ({squash_errors} in squash); keys {key_load_seconds:.1}s, \
         evaluate {evaluate_seconds:.1}s, squash {squash_seconds:.1}s; rayon {rayon_threads}, \
         tokio {tokio_workers} workers -> {}",
        args.out.display()
    ))
}

fn main() -> ExitCode {
    let outcome = parse_args().and_then(|a| run(&a));
    match outcome {
        Ok(summary) => {
            eprintln!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reference-bench: error: {e}");
            ExitCode::from(2)
        }
    }
}

//! One error type for Python, and the guard that turns TFHE-rs panics into it.
//!
//! TFHE-rs reports misuse (wrong key, bad parameters, broken data) by panicking. A panic that
//! crossed into Python would surface as `PanicException` or abort the interpreter, so every
//! call into TFHE-rs runs under [`guard`]. A panic stays distinguishable from a refusal
//! (`TfhePanic`): the reference coprocessor retries a request whose verification panicked
//! instead of rejecting it (SPEC §6), and so must its callers.

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;

create_exception!(
    tfhe_py,
    TfheError,
    PyException,
    "Any failure inside TFHE-rs or the bindings: bad input, wrong type, missing key material."
);

create_exception!(
    tfhe_py,
    TfhePanic,
    TfheError,
    "TFHE-rs panicked: an internal failure, not a verdict on the input (retry, never reject)."
);

/// The bindings' internal error: a message for the operator.
pub type Res<T> = Result<T, String>;

/// Why a guarded call failed: TFHE-rs or the bindings refused, or TFHE-rs panicked.
pub enum Failure {
    Refused(String),
    Panicked(String),
}

impl From<String> for Failure {
    fn from(msg: String) -> Self {
        Failure::Refused(msg)
    }
}

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Silences the default panic report for panics that [`guard`] turns into errors.
pub fn install_quiet_panic_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs `f`, turning a panic into a [`Failure::Panicked`] that names it.
pub fn guard<T>(f: impl FnOnce() -> Res<T>) -> Result<T, Failure> {
    let was = GUARDED.with(|g| g.replace(true));
    let out = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    match out {
        Ok(r) => r.map_err(Failure::Refused),
        Err(payload) => Err(Failure::Panicked(format!(
            "TFHE-rs panicked: {}",
            panic_message(payload.as_ref())
        ))),
    }
}

/// Converts an internal error into the Python exception.
pub fn py_err(failure: impl Into<Failure>) -> PyErr {
    match failure.into() {
        Failure::Refused(msg) => TfheError::new_err(msg),
        Failure::Panicked(msg) => TfhePanic::new_err(msg),
    }
}

/// Adds context to any displayable error.
pub fn ctx<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

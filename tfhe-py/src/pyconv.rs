//! Conversions between Python values and the bindings' plaintext form.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt};

use crate::errors::py_err;
use crate::scalar::Be32;

/// A non-negative Python int below 2^(8 * `len`), as `len` big-endian bytes.
pub fn int_to_be(value: &Bound<'_, PyAny>, len: usize) -> PyResult<Vec<u8>> {
    if !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err("expected an int"));
    }
    let bytes = value
        .call_method1("to_bytes", (len, "big"))
        .map_err(|_| py_err(format!("plaintext must be an int in [0, 2**{})", len * 8)))?;
    Ok(bytes.cast::<PyBytes>()?.as_bytes().to_vec())
}

/// A non-negative Python int below 2^256, as 32 big-endian bytes.
pub fn int_to_be32(value: &Bound<'_, PyAny>) -> PyResult<Be32> {
    Ok(int_to_be(value, 32)?
        .try_into()
        .expect("to_bytes(32) returns 32 bytes"))
}

pub fn be_to_int<'py>(py: Python<'py>, value: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    py.get_type::<PyInt>()
        .call_method1("from_bytes", (PyBytes::new(py, value), "big"))
}

//! Conversions between Python values and the bindings' plaintext form.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt};

use crate::errors::py_err;
use crate::scalar::Be32;

/// A non-negative Python int below 2^256, as 32 big-endian bytes.
pub fn int_to_be32(value: &Bound<'_, PyAny>) -> PyResult<Be32> {
    if !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err("expected an int"));
    }
    let bytes = value
        .call_method1("to_bytes", (32, "big"))
        .map_err(|_| py_err("plaintext must be an int in [0, 2**256)".to_string()))?;
    let bytes = bytes.downcast::<PyBytes>()?.as_bytes();
    Ok(bytes.try_into().expect("to_bytes(32) returns 32 bytes"))
}

pub fn be32_to_int<'py>(py: Python<'py>, value: &Be32) -> PyResult<Bound<'py, PyAny>> {
    py.get_type::<PyInt>()
        .call_method1("from_bytes", (PyBytes::new(py, value), "big"))
}

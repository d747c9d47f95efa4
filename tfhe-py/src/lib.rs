use pyo3::prelude::*;
#[pymodule]
fn tfhe_py(_m: &Bound<'_, PyModule>) -> PyResult<()> { Ok(()) }

//! `tfhe_py`: Python bindings for TFHE-rs, pinned to the fhEVM protocol version (tfhe 1.6.3).

mod ct;
mod device;
mod engine;
mod errors;
mod inputs;
mod keys;
mod ops;
mod params;
mod pyconv;
mod scalar;

use std::collections::BTreeMap;

use pyo3::prelude::*;

/// FHE type numbers and names this build supports (for cross-checks with protocol tables).
#[pyfunction]
fn fhe_type_names() -> BTreeMap<u8, &'static str> {
    ct::FheType::ALL
        .iter()
        .map(|t| (*t as u8, t.name()))
        .collect()
}

/// GPUs this build can compute on (0 on a CPU build, or without a CUDA driver or device).
#[pyfunction]
fn cuda_device_count() -> usize {
    device::cuda_device_count()
}

/// Opcode numbers and event names the dispatcher knows.
#[pyfunction]
fn opcode_names() -> BTreeMap<u8, &'static str> {
    ops::Op::ALL.iter().map(|o| (*o as u8, o.name())).collect()
}

#[pymodule]
fn _tfhe_py(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::install_quiet_panic_hook();
    m.add("TfheError", m.py().get_type::<errors::TfheError>())?;
    m.add("TfhePanic", m.py().get_type::<errors::TfhePanic>())?;
    m.add("PARAMETER_SET", params::PARAMETER_SET)?;
    m.add("TFHE_RS_VERSION", "1.6.3")?;
    m.add("CUDA", cfg!(feature = "gpu"))?;
    m.add("CRS_MAX_BITS", params::CRS_MAX_BITS)?;
    m.add("MAX_INPUT_ENTRIES", params::MAX_INPUT_ENTRIES)?;
    m.add("MAX_SUM_VALUES", ops::MAX_SUM_VALUES)?;
    m.add("MAX_WIDE_VALUES", ops::MAX_WIDE_VALUES)?;
    m.add_class::<keys::ClientKey>()?;
    m.add_class::<keys::ServerKey>()?;
    m.add_class::<keys::CompressedServerKey>()?;
    m.add_class::<keys::CompactPublicKey>()?;
    m.add_class::<keys::Crs>()?;
    m.add_class::<engine::Ciphertext>()?;
    m.add_class::<engine::Engine>()?;
    m.add_function(wrap_pyfunction!(inputs::build_proven_list, m)?)?;
    m.add_function(wrap_pyfunction!(fhe_type_names, m)?)?;
    m.add_function(wrap_pyfunction!(opcode_names, m)?)?;
    m.add_function(wrap_pyfunction!(cuda_device_count, m)?)?;
    Ok(())
}

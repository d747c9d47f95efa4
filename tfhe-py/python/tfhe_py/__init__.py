"""Python bindings for TFHE-rs 1.6.3, with the fhEVM parameter set built in.

Every computing call releases the GIL and installs the server key in the calling thread, so an
`Engine` can be shared by a thread pool. Failures raise `TfheError`, never a Rust panic; a panic
inside TFHE-rs raises its subclass `TfhePanic` (an internal failure: retry, never reject).
A build with the `gpu` feature (`CUDA`) also computes on GPUs: `Engine.cuda`.
"""

from tfhe_py._tfhe_py import (
    CRS_MAX_BITS,
    CUDA,
    MAX_INPUT_ENTRIES,
    MAX_SUM_VALUES,
    MAX_WIDE_VALUES,
    PARAMETER_SET,
    TFHE_RS_VERSION,
    Ciphertext,
    ClientKey,
    CompactPublicKey,
    CompressedServerKey,
    Crs,
    Engine,
    ServerKey,
    TfheError,
    TfhePanic,
    build_proven_list,
    cuda_device_count,
    fhe_type_names,
    opcode_names,
)

__all__ = [
    "CRS_MAX_BITS",
    "CUDA",
    "MAX_INPUT_ENTRIES",
    "MAX_SUM_VALUES",
    "MAX_WIDE_VALUES",
    "PARAMETER_SET",
    "TFHE_RS_VERSION",
    "Ciphertext",
    "ClientKey",
    "CompactPublicKey",
    "CompressedServerKey",
    "Crs",
    "Engine",
    "ServerKey",
    "TfheError",
    "TfhePanic",
    "build_proven_list",
    "cuda_device_count",
    "fhe_type_names",
    "opcode_names",
]

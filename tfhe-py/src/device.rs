//! Where an engine computes: the CPU with a `ServerKey`, or CUDA GPUs with one `CudaServerKey`
//! per device. TFHE-rs moves ciphertexts to the device of the key installed in the calling thread,
//! so every operation, compression, squash and expansion runs there with the same code.

#[cfg(feature = "gpu")]
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::errors::Res;

/// The key material of one device kind.
pub enum Device {
    Cpu(tfhe::ServerKey),
    #[cfg(feature = "gpu")]
    Cuda {
        keys: Vec<(u32, tfhe::CudaServerKey)>,
        next: AtomicUsize,
    },
}

impl Device {
    /// Keys for `gpus` (all visible GPUs when empty), expanded once: from the compressed server
    /// key, since a CPU `ServerKey` holds its bootstrapping keys in the Fourier domain.
    #[cfg(feature = "gpu")]
    pub fn cuda(compressed: &tfhe::CompressedServerKey, gpus: &[u32]) -> Res<Self> {
        let count = cuda_device_count();
        if count == 0 {
            return Err("no CUDA device is visible to this process".to_string());
        }
        let indexes: Vec<u32> = if gpus.is_empty() {
            (0..count as u32).collect()
        } else {
            gpus.to_vec()
        };
        if let Some(bad) = indexes.iter().find(|i| **i as usize >= count) {
            return Err(format!("GPU {bad} does not exist ({count} visible)"));
        }
        let keys = indexes
            .iter()
            .map(|i| {
                let gpu = tfhe::GpuIndex::new(*i);
                (*i, compressed.decompress_to_specific_gpu(gpu))
            })
            .collect();
        Ok(Device::Cuda {
            keys,
            next: AtomicUsize::new(0),
        })
    }

    #[cfg(not(feature = "gpu"))]
    pub fn cuda(_compressed: &tfhe::CompressedServerKey, _gpus: &[u32]) -> Res<Self> {
        Err(NO_CUDA.to_string())
    }

    /// Installs this device's key in the calling OS thread. A thread keeps the GPU it was given
    /// first; threads are spread over the GPUs in turn, as the reference spreads partitions.
    pub fn install(&self) {
        match self {
            Device::Cpu(key) => tfhe::set_server_key(key.clone()),
            #[cfg(feature = "gpu")]
            Device::Cuda { keys, next } => {
                let slot = next.fetch_add(1, Ordering::Relaxed) % keys.len();
                tfhe::set_server_key(keys[slot].1.clone());
            }
        }
    }

    /// `cpu`, or `cuda:` and the GPU indexes.
    pub fn name(&self) -> String {
        match self {
            Device::Cpu(_) => "cpu".to_string(),
            #[cfg(feature = "gpu")]
            Device::Cuda { keys, .. } => {
                let ids: Vec<String> = keys.iter().map(|(i, _)| i.to_string()).collect();
                format!("cuda:{}", ids.join(","))
            }
        }
    }
}

/// Why CUDA is refused on a CPU build.
#[cfg(not(feature = "gpu"))]
const NO_CUDA: &str = "this build of tfhe_py has no CUDA backend: build it with the `gpu` feature \
                       (tfhe-py/build-gpu.sh, `make tfhe-py-gpu`)";

/// GPUs the CUDA runtime sees (0 on a CPU build, or without a driver or device). Asked of the
/// runtime directly: TFHE-rs's own count aborts the process when no driver is loaded.
#[cfg(feature = "gpu")]
pub fn cuda_device_count() -> usize {
    extern "C" {
        fn cudaGetDeviceCount(count: *mut i32) -> i32;
    }
    let mut count: i32 = 0;
    // SAFETY: the statically linked CUDA runtime writes one int through a valid pointer.
    let status = unsafe { cudaGetDeviceCount(&mut count) };
    if status == 0 {
        count.max(0) as usize
    } else {
        0
    }
}

#[cfg(not(feature = "gpu"))]
pub fn cuda_device_count() -> usize {
    0
}

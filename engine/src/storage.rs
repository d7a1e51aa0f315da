//! Where a tensor's values live, and in which element type.

use crate::backend::gpu_status;
use crate::error::{Error, ErrorKind, Result};
use std::fmt;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE 754 (24-bit significand, unit roundoff 6e-8): models, and the GPU.
    F32,
    /// 64-bit IEEE 754 (53-bit significand, unit roundoff 1.1e-16): gradient checks, where
    /// finite differences need the extra digits.
    F64,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
        })
    }
}

/// Where a tensor's buffer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// Host memory; ops run on rayon's threads.
    Cpu,
    /// The process's GPU (the adapter `wgpu` picks); ops run as WGSL compute shaders.
    /// Holds `f32` only: WGSL has no portable `f64`.
    Gpu,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Gpu => f.write_str("gpu"),
        }
    }
}

impl Device {
    /// The GPU, opened on first use; the error names the reason there is none.
    pub fn gpu() -> Result<Device> {
        gpu_status::open()
            .map(|_| Device::Gpu)
            .map_err(|why| Error::new("Device::gpu", ErrorKind::Device, why))
    }

    /// The GPU when there is a hardware one, else the CPU. A software adapter (Mesa's
    /// lavapipe, Microsoft's WARP) runs shaders on the CPU about 50 times slower than the
    /// CPU path, so it is used only when asked for by name.
    pub fn best() -> Device {
        if gpu_status::open().is_ok() && !gpu_status::is_software() {
            Device::Gpu
        } else {
            Device::Cpu
        }
    }

    /// `cpu`, `gpu` or `best`, as the `--device` flags and `FERROGRAD_DEVICE` spell them.
    pub fn parse(name: &str) -> Result<Device> {
        match name.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "gpu" => Device::gpu(),
            "best" | "" => Ok(Device::best()),
            other => Err(Error::argument(
                "Device::parse",
                format!("unknown device '{other}'; use cpu, gpu or best"),
            )),
        }
    }

    /// The device a program should use: `FERROGRAD_DEVICE` (`cpu`, `gpu` or `best`) when set,
    /// else [`Device::best`].
    pub fn from_env() -> Result<Device> {
        match std::env::var("FERROGRAD_DEVICE") {
            Ok(v) => Device::parse(&v).map_err(|e| {
                Error::new(
                    "FERROGRAD_DEVICE",
                    e.kind,
                    format!("FERROGRAD_DEVICE={v}: {}", e.message),
                )
            }),
            Err(_) => Ok(Device::best()),
        }
    }

    /// A line for logs and reports: "cpu (2 threads)" or "gpu: NVIDIA H100 (Vulkan)".
    pub fn describe(&self) -> String {
        match self {
            Device::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
            Device::Gpu => match gpu_status::adapter_name() {
                Ok(name) => format!("gpu: {name}"),
                Err(why) => format!("gpu (unavailable: {why})"),
            },
        }
    }

    /// Waits until every op recorded on this device has finished (for timings: GPU ops are
    /// queued and run later). A no-op on the CPU, whose ops finish before they return.
    pub fn synchronize(&self) {
        if *self == Device::Gpu {
            gpu_status::synchronize();
        }
    }
}

/// Host–device traffic so far in this process: what a test counts to prove a training step
/// on the GPU reads back nothing but its loss (all zero without a GPU).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferCounts {
    /// Device-to-host copies.
    pub readbacks: u64,
    /// Host-to-device copies.
    pub uploads: u64,
    /// GPU buffers created (pool misses): constant over a steady training loop.
    pub buffer_allocations: u64,
}

impl TransferCounts {
    /// The counts now.
    pub fn now() -> TransferCounts {
        let (readbacks, uploads, buffer_allocations) = gpu_status::counters();
        TransferCounts {
            readbacks,
            uploads,
            buffer_allocations,
        }
    }
}

/// A flat, row-major buffer of values.
///
/// The ops never match on it: each primitive is dispatched once, in `backend/`.
#[derive(Debug)]
pub enum Storage {
    /// `f32` values in host memory.
    F32(Vec<f32>),
    /// `f64` values in host memory.
    F64(Vec<f64>),
    /// `f32` values in GPU memory; reading them is a counted device-to-host copy.
    #[cfg(feature = "gpu")]
    Gpu(ferrograd_kernels::gpu::GpuBuffer),
}

/// A copy on the same device (a GPU buffer is copied on the GPU).
impl Clone for Storage {
    fn clone(&self) -> Self {
        match self {
            Storage::F32(v) => Storage::F32(v.clone()),
            Storage::F64(v) => Storage::F64(v.clone()),
            #[cfg(feature = "gpu")]
            Storage::Gpu(b) => Storage::Gpu(crate::backend::wgpu::open().copy(b)),
        }
    }
}

/// A dropped buffer goes back to the kernels' pool, so the next step's op of the same size
/// reuses it instead of faulting in fresh pages.
impl Drop for Storage {
    fn drop(&mut self) {
        match self {
            Storage::F32(v) => ferrograd_kernels::pool::give(std::mem::take(v)),
            Storage::F64(v) => ferrograd_kernels::pool::give(std::mem::take(v)),
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => {} // the buffer returns to the GPU pool on its own drop
        }
    }
}

impl Storage {
    /// The element type (always `F32` on the GPU).
    pub fn dtype(&self) -> DType {
        match self {
            Storage::F32(_) => DType::F32,
            Storage::F64(_) => DType::F64,
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => DType::F32,
        }
    }
    /// Where the values live.
    pub fn device(&self) -> Device {
        match self {
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => Device::Gpu,
            _ => Device::Cpu,
        }
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::F64(v) => v.len(),
            #[cfg(feature = "gpu")]
            Storage::Gpu(b) => b.len(),
        }
    }
    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `len` copies of `value` in `dtype`, in host memory.
    pub fn full(len: usize, value: f64, dtype: DType) -> Storage {
        match dtype {
            DType::F32 => Storage::F32(vec![value as f32; len]),
            DType::F64 => Storage::F64(vec![value; len]),
        }
    }
    /// `len` copies of `value` in `dtype` on `device` (made there: no upload).
    pub(crate) fn full_on(len: usize, value: f64, dtype: DType, device: Device) -> Result<Storage> {
        use crate::backend::{Backend, Cpu};
        match device {
            Device::Cpu => Ok(match dtype {
                DType::F32 => Storage::F32(Cpu::<f32>::full(len, value)),
                DType::F64 => Storage::F64(Cpu::<f64>::full(len, value)),
            }),
            Device::Gpu => {
                if dtype != DType::F32 {
                    return Err(Error::new(
                        "full_on",
                        ErrorKind::DType,
                        format!("GPU tensors hold f32 only, not {dtype}"),
                    ));
                }
                Device::gpu()?;
                #[cfg(feature = "gpu")]
                return Ok(Storage::Gpu(crate::backend::Wgpu::full(len, value)));
                #[cfg(not(feature = "gpu"))]
                unreachable!("Device::gpu() fails without the gpu feature")
            }
        }
    }
    /// Values converted from f64.
    pub fn from_f64s(values: impl IntoIterator<Item = f64>, dtype: DType) -> Storage {
        let it = values.into_iter();
        match dtype {
            DType::F32 => Storage::F32(it.map(|v| v as f32).collect()),
            DType::F64 => Storage::F64(it.collect()),
        }
    }
    /// The values as f64 (exact: every f32 is an f64; a read-back from the GPU).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Storage::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Storage::F64(v) => v.clone(),
            #[cfg(feature = "gpu")]
            Storage::Gpu(b) => crate::backend::wgpu::open()
                .read_f32(b)
                .into_iter()
                .map(f64::from)
                .collect(),
        }
    }
    /// The values as f32 (converted if stored as f64; a read-back from the GPU).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self {
            Storage::F32(v) => v.clone(),
            Storage::F64(v) => v.iter().map(|&x| x as f32).collect(),
            #[cfg(feature = "gpu")]
            Storage::Gpu(b) => crate::backend::wgpu::open().read_f32(b),
        }
    }

    /// The same values in host memory (a read-back when on the GPU; a cheap handle otherwise).
    pub fn to_host(self: &std::sync::Arc<Self>) -> std::sync::Arc<Storage> {
        match &**self {
            #[cfg(feature = "gpu")]
            Storage::Gpu(b) => {
                std::sync::Arc::new(Storage::F32(crate::backend::wgpu::open().read_f32(b)))
            }
            _ => self.clone(),
        }
    }

    /// The same values on the GPU (an upload when on the host). f64 values cannot go.
    pub fn to_gpu(self: &std::sync::Arc<Self>) -> Result<std::sync::Arc<Storage>> {
        match &**self {
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => Ok(self.clone()),
            Storage::F32(v) => {
                Device::gpu()?;
                crate::limits::check_buffer(
                    "to",
                    &format!("a tensor of {} values", v.len()),
                    Some(v.len()),
                    DType::F32,
                    Device::Gpu,
                )?;
                #[cfg(feature = "gpu")]
                return Ok(std::sync::Arc::new(Storage::Gpu(
                    crate::backend::wgpu::open().upload_f32(v),
                )));
                #[cfg(not(feature = "gpu"))]
                unreachable!("Device::gpu() fails without the gpu feature")
            }
            Storage::F64(_) => Err(Error::new(
                "to",
                ErrorKind::DType,
                "the GPU holds f32 only (WGSL has no portable f64); cast with to_dtype(F32) first",
            )),
        }
    }
}

/// Element types a tensor can be built from.
pub trait Element: ferrograd_kernels::Real {
    /// The [`DType`] of this element type.
    const DTYPE: DType;
    /// Host storage owning `values`, without a copy.
    fn into_storage(values: Vec<Self>) -> Storage;
    /// The values, if `storage` is host memory of this type; `None` otherwise.
    fn slice(storage: &Storage) -> Option<&[Self]>;
    /// The values, mutably, if `storage` is host memory of this type; `None` otherwise.
    fn slice_mut(storage: &mut Storage) -> Option<&mut [Self]>;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn into_storage(values: Vec<Self>) -> Storage {
        Storage::F32(values)
    }
    fn slice(storage: &Storage) -> Option<&[Self]> {
        match storage {
            Storage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn slice_mut(storage: &mut Storage) -> Option<&mut [Self]> {
        match storage {
            Storage::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    fn into_storage(values: Vec<Self>) -> Storage {
        Storage::F64(values)
    }
    fn slice(storage: &Storage) -> Option<&[Self]> {
        match storage {
            Storage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn slice_mut(storage: &mut Storage) -> Option<&mut [Self]> {
        match storage {
            Storage::F64(v) => Some(v),
            _ => None,
        }
    }
}

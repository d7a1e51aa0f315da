//! Where a tensor's values live, and in which element type.

use crate::error::{Error, ErrorKind, Result};
use ferrograd_kernels::gpu::{self, GpuBuffer};
use std::fmt;

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
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
        gpu::context()
            .map(|_| Device::Gpu)
            .map_err(|why| Error::new("Device::gpu", ErrorKind::Device, why))
    }

    /// The GPU when there is a hardware one, else the CPU. A software adapter (Mesa's
    /// lavapipe, Microsoft's WARP) runs shaders on the CPU about 50 times slower than the
    /// CPU path, so it is used only when asked for by name.
    pub fn best() -> Device {
        match gpu::context() {
            Ok(g) if !g.is_software() => Device::Gpu,
            _ => Device::Cpu,
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
            Device::Gpu => match gpu::context() {
                Ok(g) => format!("gpu: {}", g.adapter_name()),
                Err(why) => format!("gpu (unavailable: {why})"),
            },
        }
    }
}

/// A flat, row-major buffer of values.
#[derive(Debug)]
pub enum Storage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// `f32` values in GPU memory; reading them is a counted device-to-host copy.
    Gpu(GpuBuffer),
}

/// A copy on the same device (a GPU buffer is copied on the GPU).
impl Clone for Storage {
    fn clone(&self) -> Self {
        match self {
            Storage::F32(v) => Storage::F32(v.clone()),
            Storage::F64(v) => Storage::F64(v.clone()),
            Storage::Gpu(b) => Storage::Gpu(open_gpu().copy(b)),
        }
    }
}

/// The GPU that made a GPU buffer: it is open, or the buffer could not exist.
pub(crate) fn open_gpu() -> &'static gpu::Gpu {
    gpu::context().expect("a GPU buffer exists only once the GPU is open")
}

/// A dropped buffer goes back to the kernels' pool, so the next step's op of the same size
/// reuses it instead of faulting in fresh pages.
impl Drop for Storage {
    fn drop(&mut self) {
        match self {
            Storage::F32(v) => ferrograd_kernels::pool::give(std::mem::take(v)),
            Storage::F64(v) => ferrograd_kernels::pool::give(std::mem::take(v)),
            Storage::Gpu(_) => {} // the buffer returns to the GPU pool on its own drop
        }
    }
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::F32(_) => DType::F32,
            Storage::F64(_) => DType::F64,
            Storage::Gpu(_) => DType::F32,
        }
    }
    pub fn device(&self) -> Device {
        match self {
            Storage::Gpu(_) => Device::Gpu,
            _ => Device::Cpu,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::F64(v) => v.len(),
            Storage::Gpu(b) => b.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `len` copies of `value` in `dtype`.
    pub fn full(len: usize, value: f64, dtype: DType) -> Storage {
        match dtype {
            DType::F32 => Storage::F32(vec![value as f32; len]),
            DType::F64 => Storage::F64(vec![value; len]),
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
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Storage::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Storage::F64(v) => v.clone(),
            Storage::Gpu(b) => open_gpu().read_f32(b).into_iter().map(f64::from).collect(),
        }
    }

    /// The same values in host memory (a read-back when on the GPU; a cheap handle otherwise).
    pub fn to_host(self: &std::sync::Arc<Self>) -> std::sync::Arc<Storage> {
        match &**self {
            Storage::Gpu(b) => std::sync::Arc::new(Storage::F32(open_gpu().read_f32(b))),
            _ => self.clone(),
        }
    }

    /// The same values on the GPU (an upload when on the host). f64 values cannot go.
    pub fn to_gpu(self: &std::sync::Arc<Self>) -> Result<std::sync::Arc<Storage>> {
        match &**self {
            Storage::Gpu(_) => Ok(self.clone()),
            Storage::F32(v) => {
                let g = gpu::context().map_err(|why| Error::new("to", ErrorKind::Device, why))?;
                crate::limits::check_buffer(
                    "to",
                    &format!("a tensor of {} values", v.len()),
                    Some(v.len()),
                    DType::F32,
                    Device::Gpu,
                )?;
                Ok(std::sync::Arc::new(Storage::Gpu(g.upload_f32(v))))
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
    const DTYPE: DType;
    fn into_storage(values: Vec<Self>) -> Storage;
    fn slice(storage: &Storage) -> Option<&[Self]>;
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

/// Run a generic expression on a storage's slice, keeping its element type:
/// `map_storage!(&storage, v => kernels::unary(op, v))` gives a new `Storage`.
#[macro_export]
#[doc(hidden)]
macro_rules! map_storage {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::Storage::F32($v) => $crate::Storage::F32($body),
            $crate::Storage::F64($v) => $crate::Storage::F64($body),
            $crate::Storage::Gpu(_) => unreachable!("GPU storage takes its own path first"),
        }
    };
}

/// Run a generic expression on a storage's slice, for a result of any one type.
#[macro_export]
#[doc(hidden)]
macro_rules! with_storage {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::Storage::F32($v) => $body,
            $crate::Storage::F64($v) => $body,
            $crate::Storage::Gpu(_) => unreachable!("GPU storage takes its own path first"),
        }
    };
}

//! Flat indices for gathers and scatters, on the device that uses them.
//!
//! Indices the engine computes from shapes (slices, pads, concatenations) are made on the
//! host and uploaded once, the first time a GPU op needs them; indices that come out of a GPU
//! kernel (arg-max positions, max-pool windows) stay on the GPU, so `max` and `max_pool2d`
//! and their backward passes never read back.

use std::sync::Arc;

#[derive(Clone)]
pub(crate) enum Indices {
    Host {
        values: Arc<Vec<usize>>,
        /// The values as `u32` on the GPU, uploaded on first use and kept with them.
        #[cfg(feature = "gpu")]
        uploaded: Arc<std::sync::OnceLock<ferrograd_kernels::gpu::GpuBuffer>>,
    },
    #[cfg(feature = "gpu")]
    Gpu(Arc<ferrograd_kernels::gpu::GpuBuffer>),
}

impl Indices {
    pub(crate) fn host(values: Arc<Vec<usize>>) -> Indices {
        Indices::Host {
            values,
            #[cfg(feature = "gpu")]
            uploaded: Arc::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Indices::Host { values, .. } => values.len(),
            #[cfg(feature = "gpu")]
            Indices::Gpu(b) => b.len(),
        }
    }

    /// The indices in host memory (a read-back for GPU-made ones).
    pub(crate) fn on_host(&self) -> Arc<Vec<usize>> {
        match self {
            Indices::Host { values, .. } => values.clone(),
            #[cfg(feature = "gpu")]
            Indices::Gpu(b) => Arc::new(
                crate::backend::wgpu::open()
                    .read_u32(b)
                    .into_iter()
                    .map(|i| i as usize)
                    .collect(),
            ),
        }
    }

    /// The indices on the GPU, for a kernel to read.
    #[cfg(feature = "gpu")]
    pub(crate) fn with_gpu<R>(&self, f: impl FnOnce(&ferrograd_kernels::gpu::GpuBuffer) -> R) -> R {
        match self {
            Indices::Host { values, uploaded } => f(uploaded.get_or_init(|| {
                let words: Vec<u32> = values
                    .iter()
                    .map(|&i| ferrograd_kernels::gpu::u32_of(i))
                    .collect();
                crate::backend::wgpu::open().upload_u32(&words)
            })),
            Indices::Gpu(b) => f(b),
        }
    }
}

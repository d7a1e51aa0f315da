//! The one seam between the ops and the devices.
//!
//! Every op of `ops/` is built from the primitives of [`Backend`]: a handful of computations on
//! flat buffers (a pointwise map, a broadcast binary map, a sum or arg-max to a kept shape, a
//! gather and its adjoint, a permutation, a broadcast copy, a batched matrix product, the three
//! convolution kernels, a max-pool arg-max, the fused optimizer steps). Each primitive is
//! dispatched once, here, on where its operands live: [`cpu::Cpu<T>`] runs the generic kernels
//! of `ferrograd-kernels` (one code path for f32 and f64), and `wgpu::Wgpu` the WGSL shaders
//! (with the `gpu` feature). No op file looks at a device.
//!
//! Adding a primitive to both backends is: its kernel in `ferrograd-kernels` (CPU, and WGSL with
//! its Rust wrapper), one method of [`Backend`] with its two implementations, and one dispatch
//! method on [`Storage`] below. `docs/ARCHITECTURE.md` counts the places.

pub(crate) mod cpu;
#[cfg(feature = "gpu")]
pub(crate) mod wgpu;

use crate::error::{Error, ErrorKind, Result};
use crate::indices::Indices;
use crate::storage::Storage;
use ferrograd_kernels::channel::ChannelLayout;
use ferrograd_kernels::conv::ConvGeometry;
use ferrograd_kernels::elementwise::{BinaryOp, UnaryOp};
use ferrograd_kernels::optim::AdamStep;

pub(crate) use cpu::Cpu;
#[cfg(feature = "gpu")]
pub(crate) use wgpu::Wgpu;

/// A promise about flat indices: gathered plane k (`gathered` values) reads only from source
/// plane k (`source` values). It lets the scatter-add adjoint run plane by plane in parallel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Planes {
    pub gathered: usize,
    pub source: usize,
}

/// Which of the three convolution kernels (see `ops/conv.rs`): the forward product, its input
/// gradient (the transposed convolution) and its weight gradient. Operands are (x, w), (dy, w)
/// and (x, dy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConvKind {
    Forward,
    InputGrad,
    WeightGrad,
}

/// A batched product op(A)·op(B): A holds `numel(a_batch)` matrices, read transposed when
/// `transpose_a`; likewise B; the batch shapes broadcast to `out_batch`.
pub(crate) struct MatmulPlan<'a> {
    pub a_batch: &'a [usize],
    pub b_batch: &'a [usize],
    pub out_batch: &'a [usize],
    pub transpose_a: bool,
    pub transpose_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// Hyper-parameters of one fused SGD step: momentum μ, coupled weight decay λ, and whether it
/// is the optimizer's first (the formula is in `kernels/src/optim.rs`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SgdStep {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub first: bool,
}

/// The primitives every device implements, on its own buffer type.
pub(crate) trait Backend {
    type Buffer;
    /// `op` on every value.
    fn unary(op: UnaryOp, x: &Self::Buffer) -> Self::Buffer;
    /// `op(a, b)` with NumPy broadcasting to `out_shape`.
    fn binary(
        op: BinaryOp,
        a: &Self::Buffer,
        a_shape: &[usize],
        b: &Self::Buffer,
        b_shape: &[usize],
        out_shape: &[usize],
    ) -> Self::Buffer;
    /// Σ over the axes where `kept` is 1 and `shape` is not.
    fn sum_to(x: &Self::Buffer, shape: &[usize], kept: &[usize]) -> Self::Buffer;
    /// Per channel, Σ (x − m[c])·(y − m[c]) (v = 1 without y, m = 0 without a centre): see
    /// `ferrograd_kernels::channel::channel_sums`.
    fn channel_sums(
        l: ChannelLayout,
        x: &Self::Buffer,
        y: Option<&Self::Buffer>,
        centre: Option<&Self::Buffer>,
    ) -> Self::Buffer;
    /// Σₖ xₖ·aₖ[c] + t[c] over one or two terms: see `ferrograd_kernels::channel::channel_mix`.
    fn channel_mix(
        l: ChannelLayout,
        terms: &[(&Self::Buffer, &Self::Buffer)],
        shift: Option<&Self::Buffer>,
    ) -> Self::Buffer;
    /// The flat index of each group's maximum (the first on ties, a NaN if there is one).
    fn argmax_to(x: &Self::Buffer, shape: &[usize], kept: &[usize]) -> Indices;
    /// out[i] = x[idx[i]].
    fn gather(x: &Self::Buffer, idx: &Indices) -> Self::Buffer;
    /// out = 0; out[idx[i]] += g[i], with `out_len` values.
    fn scatter_add(
        g: &Self::Buffer,
        idx: &Indices,
        out_len: usize,
        planes: Option<Planes>,
    ) -> Self::Buffer;
    /// Axis `i` of the result is axis `perm[i]` of x.
    fn permute(x: &Self::Buffer, shape: &[usize], perm: &[usize]) -> Self::Buffer;
    /// x repeated along its size-1 (and missing leading) axes up to `target`.
    fn broadcast_to(x: &Self::Buffer, shape: &[usize], target: &[usize]) -> Self::Buffer;
    /// op(A)·op(B) for every index of the batch.
    fn matmul(a: &Self::Buffer, b: &Self::Buffer, plan: &MatmulPlan<'_>) -> Self::Buffer;
    /// One of the three convolution kernels.
    fn conv(kind: ConvKind, g: &ConvGeometry, p: &Self::Buffer, q: &Self::Buffer) -> Self::Buffer;
    /// The flat index of each max-pool window's maximum.
    fn max_pool_argmax(g: &ConvGeometry, x: &Self::Buffer) -> Indices;
    /// `len` copies of `value`.
    fn full(len: usize, value: f64) -> Self::Buffer;
    /// One fused SGD step, in place on `param` and its momentum buffer.
    fn sgd_step(h: SgdStep, param: &mut Self::Buffer, buf: &mut Self::Buffer, grad: &Self::Buffer);
    /// One fused Adam step, in place on `param` and its two moments.
    fn adam_step(
        h: AdamStep,
        param: &mut Self::Buffer,
        m: &mut Self::Buffer,
        v: &mut Self::Buffer,
        grad: &Self::Buffer,
    );
}

/// `$body` with `$B` the backend of `$storage`'s device and element type, and `$x` its buffer;
/// a buffer result is wrapped back into a [`Storage`] of the same kind.
macro_rules! on_backend {
    ($storage:expr, $B:ident, $x:ident => $body:expr) => {
        match $storage {
            Storage::F32($x) => {
                type $B = Cpu<f32>;
                Storage::F32($body)
            }
            Storage::F64($x) => {
                type $B = Cpu<f64>;
                Storage::F64($body)
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu($x) => {
                type $B = Wgpu;
                Storage::Gpu($body)
            }
        }
    };
}

/// [`on_backend!`] for a result that is not a buffer.
macro_rules! on_backend_raw {
    ($storage:expr, $B:ident, $x:ident => $body:expr) => {
        match $storage {
            Storage::F32($x) => {
                type $B = Cpu<f32>;
                $body
            }
            Storage::F64($x) => {
                type $B = Cpu<f64>;
                $body
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu($x) => {
                type $B = Wgpu;
                $body
            }
        }
    };
}

/// [`on_backend!`] for two operands, which must be of one kind; `$op` names the op in the
/// error for two that are not (the ops check devices and dtypes first, with the shapes, so
/// this is a second line of defence).
macro_rules! on_backend2 {
    ($op:expr, $a:expr, $b:expr, $B:ident, $x:ident, $y:ident => $body:expr) => {
        match ($a, $b) {
            (Storage::F32($x), Storage::F32($y)) => {
                type $B = Cpu<f32>;
                Ok(Storage::F32($body))
            }
            (Storage::F64($x), Storage::F64($y)) => {
                type $B = Cpu<f64>;
                Ok(Storage::F64($body))
            }
            #[cfg(feature = "gpu")]
            (Storage::Gpu($x), Storage::Gpu($y)) => {
                type $B = Wgpu;
                Ok(Storage::Gpu($body))
            }
            (a, b) => Err(mismatch($op, a, b)),
        }
    };
}

/// [`on_backend!`] for any number of operands of the kind of `$first`: `$buf` turns a
/// [`Storage`] into that kind's buffer, or the error for one of another kind.
macro_rules! on_backend_n {
    ($op:expr, $first:expr, $B:ident, $buf:ident => $body:expr) => {{
        let first: &Storage = $first;
        match first {
            Storage::F32(_) => {
                type $B = Cpu<f32>;
                let $buf = buffer_getter(|s: &Storage| -> Result<&Vec<f32>> {
                    match s {
                        Storage::F32(b) => Ok(b),
                        other => Err(mismatch($op, first, other)),
                    }
                });
                Ok(Storage::F32($body))
            }
            Storage::F64(_) => {
                type $B = Cpu<f64>;
                let $buf = buffer_getter(|s: &Storage| -> Result<&Vec<f64>> {
                    match s {
                        Storage::F64(b) => Ok(b),
                        other => Err(mismatch($op, first, other)),
                    }
                });
                Ok(Storage::F64($body))
            }
            #[cfg(feature = "gpu")]
            Storage::Gpu(_) => {
                type $B = Wgpu;
                let $buf = buffer_getter(
                    |s: &Storage| -> Result<&ferrograd_kernels::gpu::GpuBuffer> {
                        match s {
                            Storage::Gpu(b) => Ok(b),
                            other => Err(mismatch($op, first, other)),
                        }
                    },
                );
                Ok(Storage::Gpu($body))
            }
        }
    }};
}

/// Ties a closure's returned borrow to its argument's, which a closure cannot spell itself.
fn buffer_getter<T, F>(f: F) -> F
where
    F: for<'s> Fn(&'s Storage) -> Result<&'s T>,
{
    f
}

fn mismatch(op: &'static str, a: &Storage, b: &Storage) -> Error {
    Error::new(
        op,
        if a.device() != b.device() {
            ErrorKind::Device
        } else {
            ErrorKind::DType
        },
        format!(
            "operands are {} on the {} and {} on the {}",
            a.dtype(),
            a.device(),
            b.dtype(),
            b.device()
        ),
    )
}

/// The dispatch: one method per primitive.
impl Storage {
    pub(crate) fn unary(&self, op: UnaryOp) -> Storage {
        on_backend!(self, B, x => B::unary(op, x))
    }

    pub(crate) fn binary(
        op: BinaryOp,
        name: &'static str,
        (a, a_shape): (&Storage, &[usize]),
        (b, b_shape): (&Storage, &[usize]),
        out_shape: &[usize],
    ) -> Result<Storage> {
        on_backend2!(name, a, b, B, x, y => B::binary(op, x, a_shape, y, b_shape, out_shape))
    }

    pub(crate) fn sum_to(&self, shape: &[usize], kept: &[usize]) -> Storage {
        on_backend!(self, B, x => B::sum_to(x, shape, kept))
    }

    pub(crate) fn channel_sums(
        l: ChannelLayout,
        x: &Storage,
        y: Option<&Storage>,
        centre: Option<&Storage>,
    ) -> Result<Storage> {
        on_backend_n!("channel_sums", x, B, buf => {
            let y = y.map(&buf).transpose()?;
            let centre = centre.map(&buf).transpose()?;
            B::channel_sums(l, buf(x)?, y, centre)
        })
    }

    pub(crate) fn channel_mix(
        l: ChannelLayout,
        terms: &[(&Storage, &Storage)],
        shift: Option<&Storage>,
    ) -> Result<Storage> {
        on_backend_n!("channel_mix", terms[0].0, B, buf => {
            let terms = terms
                .iter()
                .map(|&(x, a)| Ok((buf(x)?, buf(a)?)))
                .collect::<Result<Vec<_>>>()?;
            let shift = shift.map(buf).transpose()?;
            B::channel_mix(l, &terms, shift)
        })
    }

    pub(crate) fn argmax_to(&self, shape: &[usize], kept: &[usize]) -> Indices {
        on_backend_raw!(self, B, x => B::argmax_to(x, shape, kept))
    }

    pub(crate) fn gather(&self, idx: &Indices) -> Storage {
        on_backend!(self, B, x => B::gather(x, idx))
    }

    pub(crate) fn scatter_add(
        &self,
        idx: &Indices,
        out_len: usize,
        planes: Option<Planes>,
    ) -> Storage {
        on_backend!(self, B, x => B::scatter_add(x, idx, out_len, planes))
    }

    pub(crate) fn permute(&self, shape: &[usize], perm: &[usize]) -> Storage {
        on_backend!(self, B, x => B::permute(x, shape, perm))
    }

    pub(crate) fn broadcast_to(&self, shape: &[usize], target: &[usize]) -> Storage {
        on_backend!(self, B, x => B::broadcast_to(x, shape, target))
    }

    pub(crate) fn matmul(a: &Storage, b: &Storage, plan: &MatmulPlan<'_>) -> Result<Storage> {
        on_backend2!("matmul", a, b, B, x, y => B::matmul(x, y, plan))
    }

    pub(crate) fn conv(
        kind: ConvKind,
        g: &ConvGeometry,
        p: &Storage,
        q: &Storage,
    ) -> Result<Storage> {
        on_backend2!("conv2d", p, q, B, x, y => B::conv(kind, g, x, y))
    }

    pub(crate) fn max_pool_argmax(&self, g: &ConvGeometry) -> Indices {
        on_backend_raw!(self, B, x => B::max_pool_argmax(g, x))
    }

    /// One fused SGD step in place on `param` and its momentum buffer (all of one kind).
    pub(crate) fn sgd_step(
        h: SgdStep,
        param: &mut Storage,
        buf: &mut Storage,
        grad: &Storage,
    ) -> Result<()> {
        match (param, buf, grad) {
            (Storage::F32(p), Storage::F32(b), Storage::F32(g)) => Cpu::sgd_step(h, p, b, g),
            (Storage::F64(p), Storage::F64(b), Storage::F64(g)) => Cpu::sgd_step(h, p, b, g),
            #[cfg(feature = "gpu")]
            (Storage::Gpu(p), Storage::Gpu(b), Storage::Gpu(g)) => Wgpu::sgd_step(h, p, b, g),
            (p, _, g) => return Err(mismatch("sgd", p, g)),
        }
        Ok(())
    }

    /// One fused Adam step in place on `param` and its two moments (all of one kind).
    pub(crate) fn adam_step(
        h: AdamStep,
        param: &mut Storage,
        m: &mut Storage,
        v: &mut Storage,
        grad: &Storage,
    ) -> Result<()> {
        match (param, m, v, grad) {
            (Storage::F32(p), Storage::F32(m), Storage::F32(v), Storage::F32(g)) => {
                Cpu::adam_step(h, p, m, v, g)
            }
            (Storage::F64(p), Storage::F64(m), Storage::F64(v), Storage::F64(g)) => {
                Cpu::adam_step(h, p, m, v, g)
            }
            #[cfg(feature = "gpu")]
            (Storage::Gpu(p), Storage::Gpu(m), Storage::Gpu(v), Storage::Gpu(g)) => {
                Wgpu::adam_step(h, p, m, v, g)
            }
            (p, _, _, g) => return Err(mismatch("adam", p, g)),
        }
        Ok(())
    }
}

/// What the engine knows of the GPU, whether or not it was built with the `gpu` feature.
pub(crate) mod gpu_status {
    /// The GPU is open, or the reason there is none.
    pub(crate) fn open() -> Result<(), String> {
        #[cfg(feature = "gpu")]
        return ferrograd_kernels::gpu::context().map(|_| ());
        #[cfg(not(feature = "gpu"))]
        Err("this build of ferrograd has no GPU support (built without the `gpu` feature)".into())
    }

    /// Whether the adapter is a CPU in disguise (lavapipe, WARP): never picked by `best`.
    pub(crate) fn is_software() -> bool {
        #[cfg(feature = "gpu")]
        return ferrograd_kernels::gpu::context().is_ok_and(|g| g.is_software());
        #[cfg(not(feature = "gpu"))]
        false
    }

    /// "NVIDIA H100 (Vulkan)", or why there is no adapter.
    pub(crate) fn adapter_name() -> Result<String, String> {
        #[cfg(feature = "gpu")]
        return ferrograd_kernels::gpu::context().map(|g| g.adapter_name());
        #[cfg(not(feature = "gpu"))]
        open().map(|_| String::new())
    }

    /// The most values one GPU buffer may hold (its indices must also fit a `u32`).
    pub(crate) fn max_buffer_words() -> usize {
        #[cfg(feature = "gpu")]
        return ferrograd_kernels::gpu::context()
            .map(|g| g.max_buffer_words())
            .unwrap_or(u32::MAX as usize)
            .min(u32::MAX as usize);
        #[cfg(not(feature = "gpu"))]
        0
    }

    /// Waits until the work recorded on the GPU has finished.
    pub(crate) fn synchronize() {
        #[cfg(feature = "gpu")]
        if let Ok(g) = ferrograd_kernels::gpu::context() {
            g.synchronize();
        }
    }

    /// (read-backs, uploads, buffer allocations) so far in this process.
    pub(crate) fn counters() -> (u64, u64, u64) {
        #[cfg(feature = "gpu")]
        return (
            ferrograd_kernels::gpu::readback_count(),
            ferrograd_kernels::gpu::upload_count(),
            ferrograd_kernels::gpu::buffer_allocations(),
        );
        #[cfg(not(feature = "gpu"))]
        (0, 0, 0)
    }
}

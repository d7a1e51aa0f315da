//! The GPU backend: the primitives as WGSL compute shaders (`ferrograd-kernels`' `gpu` module),
//! on f32 buffers that stay on the device.

use super::{Backend, ConvKind, MatmulPlan, Planes, SgdStep};
use crate::indices::Indices;
use ferrograd_kernels::channel::ChannelLayout;
use ferrograd_kernels::conv::ConvGeometry;
use ferrograd_kernels::elementwise::{BinaryOp, UnaryOp};
use ferrograd_kernels::gpu::{self, GpuBuffer};
use ferrograd_kernels::optim::AdamStep;
use std::sync::Arc;

/// The process's GPU.
pub(crate) struct Wgpu;

/// The GPU that made a GPU buffer: it is open, or the buffer could not exist.
pub(crate) fn open() -> &'static gpu::Gpu {
    gpu::context().expect("a GPU buffer exists only once the GPU is open")
}

impl Backend for Wgpu {
    type Buffer = GpuBuffer;

    fn unary(op: UnaryOp, x: &GpuBuffer) -> GpuBuffer {
        gpu::elementwise::unary(op, x)
    }

    fn binary(
        op: BinaryOp,
        a: &GpuBuffer,
        a_shape: &[usize],
        b: &GpuBuffer,
        b_shape: &[usize],
        out_shape: &[usize],
    ) -> GpuBuffer {
        gpu::elementwise::binary(op, a, a_shape, b, b_shape, out_shape)
    }

    fn sum_to(x: &GpuBuffer, shape: &[usize], kept: &[usize]) -> GpuBuffer {
        gpu::reduce::sum_to(x, shape, kept)
    }

    /// Composed from the broadcast binary and `sum_to` shaders: the same passes batch norm made
    /// before the CPU's fused kernels (a dedicated shader is future work).
    fn channel_sums(
        l: ChannelLayout,
        x: &GpuBuffer,
        y: Option<&GpuBuffer>,
        centre: Option<&GpuBuffer>,
    ) -> GpuBuffer {
        let full = [l.outer, l.channels, l.inner];
        let per_channel = [1, l.channels, 1];
        let centred = |v: &GpuBuffer| {
            centre
                .map(|m| gpu::elementwise::binary(BinaryOp::Sub, v, &full, m, &per_channel, &full))
        };
        let (u, v) = (centred(x), y.and_then(centred));
        let u = u.as_ref().unwrap_or(x);
        let product = y.map(|y| {
            let v = v.as_ref().unwrap_or(y);
            gpu::elementwise::binary(BinaryOp::Mul, u, &full, v, &full, &full)
        });
        gpu::reduce::sum_to(product.as_ref().unwrap_or(u), &full, &per_channel)
    }

    /// Composed from the broadcast binary shader, one pass per product and sum.
    fn channel_mix(
        l: ChannelLayout,
        terms: &[(&GpuBuffer, &GpuBuffer)],
        shift: Option<&GpuBuffer>,
    ) -> GpuBuffer {
        let full = [l.outer, l.channels, l.inner];
        let per_channel = [1, l.channels, 1];
        let scaled = |&(x, a): &(&GpuBuffer, &GpuBuffer)| {
            gpu::elementwise::binary(BinaryOp::Mul, x, &full, a, &per_channel, &full)
        };
        let mut out = scaled(&terms[0]);
        for term in &terms[1..] {
            out = gpu::elementwise::binary(BinaryOp::Add, &out, &full, &scaled(term), &full, &full);
        }
        match shift {
            Some(t) => gpu::elementwise::binary(BinaryOp::Add, &out, &full, t, &per_channel, &full),
            None => out,
        }
    }

    fn argmax_to(x: &GpuBuffer, shape: &[usize], kept: &[usize]) -> Indices {
        Indices::Gpu(Arc::new(gpu::reduce::argmax_to(x, shape, kept)))
    }

    fn gather(x: &GpuBuffer, idx: &Indices) -> GpuBuffer {
        idx.with_gpu(|i| gpu::index::gather(x, i))
    }

    /// Plane by plane or not, one compare-and-swap scatter.
    fn scatter_add(g: &GpuBuffer, idx: &Indices, out_len: usize, _: Option<Planes>) -> GpuBuffer {
        idx.with_gpu(|i| gpu::index::scatter_add(g, i, out_len))
    }

    fn permute(x: &GpuBuffer, shape: &[usize], perm: &[usize]) -> GpuBuffer {
        gpu::layout::permute(x, shape, perm)
    }

    fn broadcast_to(x: &GpuBuffer, shape: &[usize], target: &[usize]) -> GpuBuffer {
        gpu::layout::broadcast_to(x, shape, target)
    }

    fn matmul(a: &GpuBuffer, b: &GpuBuffer, p: &MatmulPlan<'_>) -> GpuBuffer {
        gpu::matmul::batched_matmul(
            a,
            p.a_batch,
            p.transpose_a,
            b,
            p.b_batch,
            p.transpose_b,
            p.out_batch,
            p.m,
            p.n,
            p.k,
        )
    }

    fn conv(kind: ConvKind, g: &ConvGeometry, p: &GpuBuffer, q: &GpuBuffer) -> GpuBuffer {
        match kind {
            ConvKind::Forward => gpu::conv::conv2d_forward(g, p, q),
            ConvKind::InputGrad => gpu::conv::conv2d_backward_input(g, p, q),
            ConvKind::WeightGrad => gpu::conv::conv2d_backward_weight(g, p, q),
        }
    }

    fn max_pool_argmax(g: &ConvGeometry, x: &GpuBuffer) -> Indices {
        Indices::Gpu(Arc::new(gpu::conv::max_pool2d_argmax(g, x)))
    }

    fn full(len: usize, value: f64) -> GpuBuffer {
        if value == 0.0 {
            open().zeros(len)
        } else {
            gpu::elementwise::fill(len, value)
        }
    }

    fn sgd_step(h: SgdStep, param: &mut GpuBuffer, buf: &mut GpuBuffer, grad: &GpuBuffer) {
        gpu::optim::sgd_step(
            param,
            buf,
            grad,
            h.lr as f32,
            h.momentum as f32,
            h.weight_decay as f32,
            h.first,
        );
    }

    fn adam_step(
        h: AdamStep,
        param: &mut GpuBuffer,
        m: &mut GpuBuffer,
        v: &mut GpuBuffer,
        grad: &GpuBuffer,
    ) {
        gpu::optim::adam_step(
            param,
            m,
            v,
            grad,
            h.lr as f32,
            h.beta1 as f32,
            h.beta2 as f32,
            h.eps as f32,
            h.weight_decay as f32,
            h.bias1 as f32,
            h.bias2 as f32,
        );
    }
}

//! The CPU backend: the primitives on host vectors, one generic code path for f32 and f64.

use super::{Backend, ConvKind, MatmulPlan, Planes, SgdStep};
use crate::indices::Indices;
use ferrograd_kernels::channel::{self, ChannelLayout};
use ferrograd_kernels::conv::{self, ConvGeometry};
use ferrograd_kernels::elementwise::{self, broadcast_strides, BinaryOp, UnaryOp};
use ferrograd_kernels::matmul::{gemm, GemmShape, MatRef};
use ferrograd_kernels::optim::AdamStep;
use ferrograd_kernels::{index, layout, numel, optim, pool, reduce, Real};
use rayon::prelude::*;
use std::marker::PhantomData;
use std::sync::Arc;

/// Host memory, elements of type `T`.
pub(crate) struct Cpu<T>(PhantomData<T>);

impl<T: Real> Backend for Cpu<T> {
    type Buffer = Vec<T>;

    fn unary(op: UnaryOp, x: &Vec<T>) -> Vec<T> {
        elementwise::unary(op, x)
    }

    fn binary(
        op: BinaryOp,
        a: &Vec<T>,
        a_shape: &[usize],
        b: &Vec<T>,
        b_shape: &[usize],
        out_shape: &[usize],
    ) -> Vec<T> {
        elementwise::binary(op, a, a_shape, b, b_shape, out_shape)
    }

    fn sum_to(x: &Vec<T>, shape: &[usize], kept: &[usize]) -> Vec<T> {
        reduce::sum_to(x, shape, kept)
    }

    fn channel_sums(
        l: ChannelLayout,
        x: &Vec<T>,
        y: Option<&Vec<T>>,
        centre: Option<&Vec<T>>,
    ) -> Vec<T> {
        channel::channel_sums(l, x, y.map(|v| &v[..]), centre.map(|v| &v[..]))
    }

    fn channel_mix(
        l: ChannelLayout,
        terms: &[(&Vec<T>, &Vec<T>)],
        shift: Option<&Vec<T>>,
    ) -> Vec<T> {
        let terms: Vec<(&[T], &[T])> = terms.iter().map(|&(x, a)| (&x[..], &a[..])).collect();
        channel::channel_mix(l, &terms, shift.map(|v| &v[..]))
    }

    fn argmax_to(x: &Vec<T>, shape: &[usize], kept: &[usize]) -> Indices {
        Indices::host(Arc::new(reduce::max_to(x, shape, kept).1))
    }

    fn gather(x: &Vec<T>, idx: &Indices) -> Vec<T> {
        index::gather(x, &idx.on_host())
    }

    fn scatter_add(g: &Vec<T>, idx: &Indices, out_len: usize, planes: Option<Planes>) -> Vec<T> {
        let idx = idx.on_host();
        match planes {
            Some(p) => index::scatter_add_planar(g, &idx, out_len, p.gathered, p.source),
            None => index::scatter_add(g, &idx, out_len),
        }
    }

    fn permute(x: &Vec<T>, shape: &[usize], perm: &[usize]) -> Vec<T> {
        layout::permute(x, shape, perm)
    }

    fn broadcast_to(x: &Vec<T>, shape: &[usize], target: &[usize]) -> Vec<T> {
        layout::broadcast_to(x, shape, target)
    }

    fn matmul(a: &Vec<T>, b: &Vec<T>, plan: &MatmulPlan<'_>) -> Vec<T> {
        batched(a, b, plan)
    }

    fn conv(kind: ConvKind, g: &ConvGeometry, p: &Vec<T>, q: &Vec<T>) -> Vec<T> {
        match kind {
            ConvKind::Forward => conv::conv2d_forward(g, p, q),
            ConvKind::InputGrad => conv::conv2d_backward_input(g, p, q),
            ConvKind::WeightGrad => conv::conv2d_backward_weight(g, p, q),
        }
    }

    fn max_pool_argmax(g: &ConvGeometry, x: &Vec<T>) -> Indices {
        Indices::host(Arc::new(conv::max_pool2d_argmax(g, x)))
    }

    fn full(len: usize, value: f64) -> Vec<T> {
        let mut v = pool::take(len);
        v.iter_mut().for_each(|x| *x = T::from_f64(value));
        v
    }

    fn sgd_step(h: SgdStep, param: &mut Vec<T>, buf: &mut Vec<T>, grad: &Vec<T>) {
        optim::sgd_step(param, buf, grad, h.lr, h.momentum, h.weight_decay, h.first);
    }

    fn adam_step(h: AdamStep, param: &mut Vec<T>, m: &mut Vec<T>, v: &mut Vec<T>, grad: &Vec<T>) {
        optim::adam_step(param, m, v, grad, h);
    }
}

/// Batched product with broadcast batch axes: many small products one per thread, few large
/// ones each parallel inside.
fn batched<T: Real>(a: &[T], b: &[T], plan: &MatmulPlan<'_>) -> Vec<T> {
    let (m, n, k) = (plan.m, plan.n, plan.k);
    let batches = numel(plan.out_batch);
    let mut out = pool::take(batches * m * n);
    if m * n == 0 {
        return out;
    }
    let sa = broadcast_strides(plan.a_batch, plan.out_batch);
    let sb = broadcast_strides(plan.b_batch, plan.out_batch);
    let offsets = |bi: usize| {
        let (mut oa, mut ob, mut rem) = (0, 0, bi);
        for d in (0..plan.out_batch.len()).rev() {
            let i = rem % plan.out_batch[d];
            rem /= plan.out_batch[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        (oa * m * k, ob * k * n)
    };
    // The matrix op(X) of `rows x cols` at element offset `at` of `data`.
    fn matrix<T>(
        data: &[T],
        at: usize,
        rows: usize,
        cols: usize,
        transposed: bool,
    ) -> MatRef<'_, T> {
        let data = &data[at..at + rows * cols];
        if transposed {
            MatRef::transposed(data, rows)
        } else {
            MatRef::row_major(data, cols)
        }
    }
    let by_batch = batches >= 2 * rayon::current_num_threads() && m * n * k < 256 * 256 * 256;
    let one = |bi: usize, c: &mut [T]| {
        let (oa, ob) = offsets(bi);
        gemm(
            GemmShape { m, n, k },
            matrix(a, oa, m, k, plan.transpose_a),
            matrix(b, ob, k, n, plan.transpose_b),
            c,
            false,
            !by_batch,
        );
    };
    if by_batch {
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(bi, c)| one(bi, c));
    } else {
        out.chunks_mut(m * n)
            .enumerate()
            .for_each(|(bi, c)| one(bi, c));
    }
    out
}

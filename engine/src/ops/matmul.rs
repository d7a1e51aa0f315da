//! Matrix product, 2-D and batched: [..., M, K] · [..., K, N] → [..., M, N], batch axes
//! broadcast as in NumPy.

use crate::autograd::BackwardOp;
use crate::checks::{self, CheckCase, OpCheck};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::Storage;
use ferrograd_kernels::elementwise::{broadcast_shapes, broadcast_strides};
use ferrograd_kernels::matmul::{gemm, GemmShape, MatRef};
use ferrograd_kernels::{numel, Real};
use rayon::prelude::*;

struct Matmul;

impl BackwardOp for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    /// C = A·B: ∂L/∂A = G·Bᵀ, ∂L/∂B = Aᵀ·G, each summed over broadcast batch axes.
    fn backward(&self, inputs: &[Tensor], g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let da = if a.requires_grad() {
            Some(g.matmul(&b.transpose(-1, -2)?)?.sum_to(a.shape())?)
        } else {
            None
        };
        let db = if b.requires_grad() {
            Some(a.transpose(-1, -2)?.matmul(g)?.sum_to(b.shape())?)
        } else {
            None
        };
        Ok(vec![da, db])
    }
}

/// Batched product of contiguous row-major operands with broadcast batch axes.
fn batched<T: Real>(
    a: &[T],
    a_batch: &[usize],
    b: &[T],
    b_batch: &[usize],
    out_batch: &[usize],
    shape: GemmShape,
) -> Vec<T> {
    let GemmShape { m, n, k } = shape;
    let batches = numel(out_batch);
    let mut out = ferrograd_kernels::pool::take(batches * m * n);
    let sa = broadcast_strides(a_batch, out_batch);
    let sb = broadcast_strides(b_batch, out_batch);
    let offsets = |bi: usize| {
        let (mut oa, mut ob, mut rem) = (0, 0, bi);
        for d in (0..out_batch.len()).rev() {
            let i = rem % out_batch[d];
            rem /= out_batch[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        (oa * m * k, ob * k * n)
    };
    // Many small products: one per thread. Few large ones: parallel inside each.
    let by_batch = batches >= 2 * rayon::current_num_threads() && m * n * k < 256 * 256 * 256;
    let one = |bi: usize, c: &mut [T]| {
        let (oa, ob) = offsets(bi);
        gemm(
            GemmShape { m, n, k },
            MatRef::row_major(&a[oa..oa + m * k], k),
            MatRef::row_major(&b[ob..ob + k * n], n),
            c,
            false,
            !by_batch,
        );
    };
    if m * n == 0 {
        return out;
    }
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

impl Tensor {
    /// Matrix product of the last two axes; leading (batch) axes broadcast.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        let (a, b) = (self.shape(), other.shape());
        if a.len() < 2 || b.len() < 2 {
            return Err(Error::shape(
                "matmul",
                format!("{a:?} x {b:?}: both operands need at least two axes"),
            ));
        }
        let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
        let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
        if k != k2 {
            return Err(Error::shape(
                "matmul",
                format!("{a:?} x {b:?}: inner dimensions {k} and {k2} differ"),
            ));
        }
        self.same_dtype("matmul", other)?;
        let (a_batch, b_batch) = (&a[..a.len() - 2], &b[..b.len() - 2]);
        let out_batch = broadcast_shapes(a_batch, b_batch).ok_or_else(|| {
            Error::shape(
                "matmul",
                format!("{a:?} x {b:?}: batch axes {a_batch:?} and {b_batch:?} do not broadcast"),
            )
        })?;
        let (sa, sb) = (self.storage(), other.storage());
        let out = match (&*sa, &*sb) {
            (Storage::F32(x), Storage::F32(y)) => Storage::F32(batched(
                x,
                a_batch,
                y,
                b_batch,
                &out_batch,
                GemmShape { m, n, k },
            )),
            (Storage::F64(x), Storage::F64(y)) => Storage::F64(batched(
                x,
                a_batch,
                y,
                b_batch,
                &out_batch,
                GemmShape { m, n, k },
            )),
            _ => unreachable!("dtypes checked above"),
        };
        let mut shape = out_batch;
        shape.extend([m, n]);
        Ok(Tensor::from_op(
            out,
            shape,
            Matmul,
            vec![self.clone(), other.clone()],
        ))
    }
}

pub(crate) fn checks() -> Vec<OpCheck> {
    vec![OpCheck::new("matmul", 3, |r| {
        let (m, k, n) = (1 + r.below(4), 1 + r.below(4), 1 + r.below(4));
        let (batch_a, batch_b): (Vec<usize>, Vec<usize>) = match r.below(3) {
            0 => (vec![], vec![]),
            1 => {
                let b = 1 + r.below(3);
                (vec![b], vec![b])
            }
            _ => (vec![2, 1], vec![3]),
        };
        let mut sa = batch_a;
        sa.extend([m, k]);
        let mut sb = batch_b;
        sb.extend([k, n]);
        let a = checks::random_values(&sa, checks::Domain::Any, r);
        let b = checks::random_values(&sb, checks::Domain::Any, r);
        CheckCase::new(format!("matmul {sa:?} x {sb:?}"), vec![a, b], |t| {
            t[0].matmul(&t[1])
        })
    })]
}

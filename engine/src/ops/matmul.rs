//! Matrix product, 2-D and batched: op(A) · op(B) with op(X) = X or Xᵀ (of the last two axes),
//! [..., M, K] · [..., K, N] → [..., M, N], batch axes broadcast as in NumPy.
//!
//! Transposes are never copied: the GEMM reads a transposed operand through its strides. That
//! is why the primitive carries the two flags: its derivative rule is again a flagged product.

use crate::autograd::BackwardOp;
use crate::backend::MatmulPlan;
use crate::checks::{self, CheckCase, OpCheck};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::Storage;
use ferrograd_kernels::elementwise::broadcast_shapes;

/// C = op(A)·op(B), with `transpose_a`/`transpose_b` choosing op.
struct Matmul {
    transpose_a: bool,
    transpose_b: bool,
}

impl BackwardOp for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    /// With G = ∂L/∂C: ∂L/∂op(A) = G·op(B)ᵀ and ∂L/∂op(B) = op(A)ᵀ·G, then undo each op:
    ///
    /// | A read as | ∂L/∂A        |   | B read as | ∂L/∂B        |
    /// |-----------|--------------|---|-----------|--------------|
    /// | A         | G·op(B)ᵀ     |   | B         | op(A)ᵀ·G     |
    /// | Aᵀ        | op(B)·Gᵀ     |   | Bᵀ        | Gᵀ·op(A)     |
    ///
    /// each summed over broadcast batch axes.
    fn backward(
        &self,
        inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let (ta, tb) = (self.transpose_a, self.transpose_b);
        let da = if !a.requires_grad() {
            None
        } else if ta {
            Some(b.matmul_t(g, tb, true)?.sum_to(a.shape())?)
        } else {
            Some(g.matmul_t(b, false, !tb)?.sum_to(a.shape())?)
        };
        let db = if !b.requires_grad() {
            None
        } else if tb {
            Some(g.matmul_t(a, true, ta)?.sum_to(b.shape())?)
        } else {
            Some(a.matmul_t(g, !ta, false)?.sum_to(b.shape())?)
        };
        Ok(vec![da, db])
    }
}

impl Tensor {
    /// Matrix product of the last two axes; leading (batch) axes broadcast.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        self.matmul_t(other, false, false)
    }

    /// op(self) · op(other), where op transposes the last two axes when its flag is set, without
    /// copying: `x.matmul_t(&w, false, true)` is x·wᵀ for a PyTorch-layout `[out, in]` weight.
    pub fn matmul_t(&self, other: &Tensor, transpose_a: bool, transpose_b: bool) -> Result<Tensor> {
        let (a, b) = (self.shape(), other.shape());
        let describe = || {
            let t = |f: bool| if f { "ᵀ" } else { "" };
            format!("{a:?}{} x {b:?}{}", t(transpose_a), t(transpose_b))
        };
        if a.len() < 2 || b.len() < 2 {
            return Err(Error::shape(
                "matmul",
                format!("{}: both operands need at least two axes", describe()),
            ));
        }
        let (ra, ca) = (a[a.len() - 2], a[a.len() - 1]);
        let (rb, cb) = (b[b.len() - 2], b[b.len() - 1]);
        let (m, k) = if transpose_a { (ca, ra) } else { (ra, ca) };
        let (k2, n) = if transpose_b { (cb, rb) } else { (rb, cb) };
        if k != k2 {
            return Err(Error::shape(
                "matmul",
                format!("{}: inner dimensions {k} and {k2} differ", describe()),
            ));
        }
        self.same_device("matmul", other)?;
        self.same_dtype("matmul", other)?;
        let (a_batch, b_batch) = (&a[..a.len() - 2], &b[..b.len() - 2]);
        let out_batch = broadcast_shapes(a_batch, b_batch).ok_or_else(|| {
            Error::shape(
                "matmul",
                format!(
                    "{}: batch axes {a_batch:?} and {b_batch:?} do not broadcast",
                    describe()
                ),
            )
        })?;
        let mut out_shape = out_batch.clone();
        out_shape.extend([m, n]);
        crate::limits::checked_alloc("matmul", &out_shape, self.dtype(), self.device())?;
        let plan = MatmulPlan {
            a_batch,
            b_batch,
            out_batch: &out_batch,
            transpose_a,
            transpose_b,
            m,
            n,
            k,
        };
        let out = Storage::matmul(&self.storage(), &other.storage(), &plan)?;
        Ok(Tensor::from_op(
            out,
            out_shape,
            Matmul {
                transpose_a,
                transpose_b,
            },
            vec![self.clone(), other.clone()],
        ))
    }
}

pub(crate) fn checks() -> Vec<OpCheck> {
    vec![OpCheck::new("matmul", 3, |r| {
        let (m, k, n) = (1 + r.below(4), 1 + r.below(4), 1 + r.below(4));
        let (ta, tb) = (r.uniform() < 0.5, r.uniform() < 0.5);
        let (mut sa, mut sb): (Vec<usize>, Vec<usize>) = match r.below(3) {
            0 => (vec![], vec![]),
            1 => {
                let b = 1 + r.below(3);
                (vec![b], vec![b])
            }
            _ => (vec![2, 1], vec![3]),
        };
        sa.extend(if ta { [k, m] } else { [m, k] });
        sb.extend(if tb { [n, k] } else { [k, n] });
        let a = checks::random_values(&sa, checks::Domain::Any, r);
        let b = checks::random_values(&sb, checks::Domain::Any, r);
        CheckCase::new(
            format!("matmul_t {sa:?} x {sb:?} (transpose a {ta}, b {tb})"),
            vec![a, b],
            move |t| t[0].matmul_t(&t[1], ta, tb),
        )
    })]
}

//! Reductions over chosen axes: sum (the primitive), mean, max, min, prod, logsumexp,
//! variance and standard deviation; arg-max and arg-min along one axis.
//!
//! `sum_to` and `broadcast_to` are adjoint: each one's derivative rule is the other.

use crate::autograd::BackwardOp;
use crate::checks::{self, CheckCase, OpCheck};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use ferrograd_kernels::elementwise::{broadcast_shapes, UnaryOp};

/// Σ down to a shape that broadcasts back to the input's.
struct SumTo {
    in_shape: Vec<usize>,
}

impl BackwardOp for SumTo {
    fn name(&self) -> &'static str {
        "sum"
    }
    /// ∂(Σ x)/∂x = 1 at every summed position: the gradient is broadcast back.
    fn backward(
        &self,
        _inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.broadcast_to(&self.in_shape)?)])
    }
}

impl Tensor {
    /// Sums over the axes along which `shape` would be broadcast to this tensor's shape: the
    /// adjoint of [`Tensor::broadcast_to`], used by every broadcasting op's derivative.
    pub fn sum_to(&self, shape: &[usize]) -> Result<Tensor> {
        if shape == self.shape() {
            return Ok(self.identity("sum"));
        }
        if shape.len() > self.rank()
            || broadcast_shapes(shape, self.shape()).as_deref() != Some(self.shape())
        {
            return Err(Error::shape(
                "sum_to",
                format!("{:?} cannot be summed down to {:?}", self.shape(), shape),
            ));
        }
        let mut kept = vec![1; self.rank() - shape.len()];
        kept.extend_from_slice(shape);
        // The sum of an empty tensor can be larger than it ([0, 10⁹] sums to [1, 10⁹]); on
        // the CPU the sums also accumulate in f64.
        let accumulator = match self.device() {
            crate::Device::Cpu => crate::DType::F64,
            crate::Device::Gpu => crate::DType::F32,
        };
        crate::limits::checked_alloc("sum", shape, accumulator, self.device())?;
        let out = self.storage().sum_to(self.shape(), &kept);
        Ok(Tensor::from_op(
            out,
            shape.to_vec(),
            SumTo {
                in_shape: self.shape().to_vec(),
            },
            vec![self.clone()],
        ))
    }

    /// Resolves axes (negative counts from the end) and the kept-rank shape they reduce to.
    fn reduced_shape(&self, op: &'static str, axes: &[isize]) -> Result<(Vec<usize>, Vec<usize>)> {
        if axes.is_empty() {
            return Err(Error::argument(
                op,
                "no axes given; the *_all form reduces every axis",
            ));
        }
        let mut resolved = Vec::with_capacity(axes.len());
        for &a in axes {
            let a = self.axis(op, a)?;
            if resolved.contains(&a) {
                return Err(Error::argument(
                    op,
                    format!("axis {a} given twice for shape {:?}", self.shape()),
                ));
            }
            resolved.push(a);
        }
        let kept: Vec<usize> = self
            .shape()
            .iter()
            .enumerate()
            .map(|(i, &d)| if resolved.contains(&i) { 1 } else { d })
            .collect();
        Ok((resolved, kept))
    }

    fn squeeze_unless(&self, t: Tensor, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        if keepdim {
            return Ok(t);
        }
        let squeezed: Vec<usize> = self
            .shape()
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect();
        t.reshape(&squeezed)
    }

    /// Σ over `axes`; reduced axes are kept with size 1 when `keepdim`.
    pub fn sum(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let (axes, kept) = self.reduced_shape("sum", axes)?;
        let s = self.sum_to(&kept)?;
        self.squeeze_unless(s, &axes, keepdim)
    }

    /// Σ of every element, as a scalar.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum_to(&vec![1; self.rank()])?.reshape(&[])
    }

    /// Mean over `axes`; NaN over an empty axis (0/0), as in PyTorch.
    pub fn mean(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let (resolved, _) = self.reduced_shape("mean", axes)?;
        let count: usize = resolved.iter().map(|&a| self.shape()[a]).product();
        self.sum(axes, keepdim)?.mul_scalar(1.0 / count as f64)
    }

    /// Mean of every element, as a scalar; NaN for an empty tensor.
    pub fn mean_all(&self) -> Result<Tensor> {
        self.sum_all()?.mul_scalar(1.0 / self.numel() as f64)
    }

    /// Max over `axes`. The derivative flows to the first maximal element of each group; a
    /// NaN is the maximum of any group it is in. A reduced axis of size 0 is an error (the max
    /// of nothing is undefined), other empty axes give an empty result.
    pub fn max(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let (axes, kept) = self.reduced_shape("max", axes)?;
        if let Some(&a) = axes.iter().find(|&&a| self.shape()[a] == 0) {
            return Err(Error::shape(
                "max",
                format!(
                    "axis {a} of shape {:?} is empty: the max of nothing is undefined",
                    self.shape()
                ),
            ));
        }
        let arg = self.storage().argmax_to(self.shape(), &kept);
        let m = self.gather_flat_trusted(arg, &kept, None);
        self.squeeze_unless(m, &axes, keepdim)
    }

    /// Max of every element, as a scalar (an error for an empty tensor).
    pub fn max_all(&self) -> Result<Tensor> {
        let all: Vec<isize> = (0..self.rank() as isize).collect();
        if all.is_empty() {
            return Ok(self.identity("max"));
        }
        self.max(&all, false)
    }

    /// log Σ exp(x) over `axes`, computed as m + log Σ exp(x − m) with m = max(x) held
    /// constant: the value does not depend on m, so neither does the derivative (softmax).
    /// An infinite m is replaced by 0 (as PyTorch does), so a group of −∞ gives −∞ rather than
    /// NaN from −∞ − (−∞); an empty group gives −∞ (log 0).
    pub fn logsumexp(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let (resolved, _) = self.reduced_shape("logsumexp", axes)?;
        if resolved.iter().any(|&a| self.shape()[a] == 0) {
            // Σ over nothing is 0 and log 0 is −∞; the sum keeps the result in the graph.
            return self.sum(axes, keepdim)?.add_scalar(f64::NEG_INFINITY);
        }
        let m = self.max(axes, true)?.constant(UnaryOp::InfToZero);
        let lse = self.sub(&m)?.exp()?.sum(axes, true)?.log()?.add(&m)?;
        self.squeeze_unless(lse, &resolved, keepdim)
    }

    /// Biased variance (divide by n) over `axes`: mean((x − mean(x))²). The same as
    /// [`Tensor::var_with`] with `unbiased = false`.
    pub fn var(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        self.var_with(axes, false, keepdim)
    }

    /// Variance over `axes`: Σ(x − mean(x))² / (n − 1) when `unbiased` (Bessel's correction,
    /// PyTorch's default), / n otherwise, n the number of elements reduced. NaN where the
    /// divisor is 0 (an empty group, or a single element when unbiased), as in PyTorch.
    pub fn var_with(&self, axes: &[isize], unbiased: bool, keepdim: bool) -> Result<Tensor> {
        let (resolved, _) = self.reduced_shape("var", axes)?;
        let n: usize = resolved.iter().map(|&a| self.shape()[a]).product();
        let divisor = if unbiased { n as f64 - 1.0 } else { n as f64 };
        let centred = self.sub(&self.mean(axes, true)?)?;
        let ss = centred.mul(&centred)?.sum(axes, keepdim)?;
        if divisor <= 0.0 {
            // 0/0: NaN, kept in the graph.
            return ss.mul_scalar(f64::NAN);
        }
        ss.mul_scalar(1.0 / divisor)
    }

    /// Standard deviation over `axes`: √var, with `unbiased` as in [`Tensor::var_with`].
    /// Its derivative 1/(2·std) is infinite where every element of a group is equal.
    pub fn std(&self, axes: &[isize], unbiased: bool, keepdim: bool) -> Result<Tensor> {
        self.var_with(axes, unbiased, keepdim)?.sqrt()
    }

    /// Min over `axes`, as −max(−x): the derivative flows to the first minimal element of
    /// each group, and a NaN is the minimum of any group it is in. A reduced axis of size 0 is
    /// an error, other empty axes give an empty result.
    pub fn min(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let (resolved, _) = self.reduced_shape("min", axes)?;
        if let Some(&a) = resolved.iter().find(|&&a| self.shape()[a] == 0) {
            return Err(Error::shape(
                "min",
                format!(
                    "axis {a} of shape {:?} is empty: the min of nothing is undefined",
                    self.shape()
                ),
            ));
        }
        self.neg()?.max(axes, keepdim)?.neg()
    }

    /// Min of every element, as a scalar (an error for an empty tensor).
    pub fn min_all(&self) -> Result<Tensor> {
        if self.numel() == 0 {
            return Err(Error::shape(
                "min",
                format!(
                    "shape {:?} is empty: the min of nothing is undefined",
                    self.shape()
                ),
            ));
        }
        self.neg()?.max_all()?.neg()
    }

    /// Π over `axes`; 1 over an empty axis, as in PyTorch.
    ///
    /// Each axis is reduced by a pairwise tree: halves of the axis (by [`Tensor::narrow`])
    /// multiplied elementwise, level by level. It is made only of narrow, concat and mul, so
    /// its derivatives of every order come from theirs, and it is right with zeros in the
    /// input (∂Π/∂xᵢ = Π_{j≠i} xⱼ, never Π/xᵢ). The tree also keeps each product O(log n)
    /// multiplications deep.
    pub fn prod(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let (resolved, _) = self.reduced_shape("prod", axes)?;
        let mut p = self.clone();
        for &a in &resolved {
            p = p.prod_axis(a)?;
        }
        self.squeeze_unless(p, &resolved, keepdim)
    }

    /// Π of every element, as a scalar (1 for an empty tensor).
    pub fn prod_all(&self) -> Result<Tensor> {
        if self.rank() == 0 {
            return Ok(self.identity("prod"));
        }
        let all: Vec<isize> = (0..self.rank() as isize).collect();
        self.prod(&all, false)
    }

    /// Π along resolved axis `a`, kept with size 1: level by level, the first ⌊n/2⌋ entries
    /// times the next ⌊n/2⌋ (an odd last entry carried to the next level by concat), so an
    /// axis of n takes O(log n) ops.
    fn prod_axis(&self, a: usize) -> Result<Tensor> {
        let mut n = self.shape()[a];
        if n == 0 {
            // Σ over nothing is 0 (in the graph, of the right shape); 0·0 + 1 = 1.
            return self
                .sum(&[a as isize], true)?
                .mul_scalar(0.0)?
                .add_scalar(1.0);
        }
        let axis = a as isize;
        let mut p = self.identity("prod");
        while n > 1 {
            let h = n / 2;
            let pairs = p.narrow(axis, 0, h)?.mul(&p.narrow(axis, h, h)?)?;
            p = if n % 2 == 1 {
                Tensor::concat(&[pairs, p.narrow(axis, 2 * h, 1)?], axis)?
            } else {
                pairs
            };
            n = n.div_ceil(2);
        }
        Ok(p)
    }

    /// The index along `axis` of each maximum over that axis (the first on ties; a NaN is a
    /// maximum), in row-major order of the shape without `axis`.
    ///
    /// Indices are integers and the engine's tensors are floating point, so they come back as
    /// host `usize`s (a read-back for a GPU tensor), not as a tensor; there is no derivative.
    /// An empty `axis` is an error.
    pub fn argmax(&self, axis: isize) -> Result<Vec<usize>> {
        self.arg_extremum("argmax", axis, false)
    }

    /// The index along `axis` of each minimum over that axis (the first on ties; a NaN is a
    /// minimum), as host `usize`s like [`Tensor::argmax`].
    pub fn argmin(&self, axis: isize) -> Result<Vec<usize>> {
        self.arg_extremum("argmin", axis, true)
    }

    fn arg_extremum(&self, op: &'static str, axis: isize, negate: bool) -> Result<Vec<usize>> {
        let a = self.axis(op, axis)?;
        let size = self.shape()[a];
        if size == 0 {
            return Err(Error::shape(
                op,
                format!(
                    "axis {a} of shape {:?} is empty: no element to pick",
                    self.shape()
                ),
            ));
        }
        let mut kept = self.shape().to_vec();
        kept[a] = 1;
        let flat = if negate {
            self.constant(UnaryOp::Neg)
                .storage()
                .argmax_to(self.shape(), &kept)
        } else {
            self.storage().argmax_to(self.shape(), &kept)
        };
        let stride: usize = self.shape()[a + 1..].iter().product();
        Ok(flat
            .on_host()
            .iter()
            .map(|&i| (i / stride) % size)
            .collect())
    }
}

// ---- gradient-check cases ------------------------------------------------------------------

/// A random shape of rank 1–3 and a random non-empty set of its axes.
fn shape_and_axes(r: &mut crate::Rng) -> (Vec<usize>, Vec<isize>) {
    let shape = checks::random_shape(r, 1, 3, 4);
    let mut axes: Vec<isize> = (0..shape.len() as isize)
        .filter(|_| r.uniform() < 0.5)
        .collect();
    if axes.is_empty() {
        axes.push(-1);
    }
    (shape, axes)
}

/// A shape, axes, keepdim and unbiased for var and std: every reduced axis has at least two
/// entries, so the unbiased divisor n − 1 is positive.
fn spread_case(r: &mut crate::Rng) -> (Vec<usize>, Vec<isize>, bool, bool) {
    let (mut shape, axes) = shape_and_axes(r);
    let rank = shape.len() as isize;
    for &a in &axes {
        let d = &mut shape[a.rem_euclid(rank) as usize];
        *d = (*d).max(2);
    }
    // At least 3 values per group: the std of 2 values is |x₁ − x₂|/√2 (or /2), linear on each
    // side, so its derivatives of order 2 and 3 are 0 only through the cancellation of terms
    // ~1/σ: a test of rounding (f32 loses it on the GPU), not of the rule.
    let reduced: usize = axes
        .iter()
        .map(|&a| shape[a.rem_euclid(rank) as usize])
        .product();
    if reduced < 3 {
        if let Some(&a) = axes.first() {
            shape[a.rem_euclid(rank) as usize] = 3;
        }
    }
    (shape, axes, r.uniform() < 0.5, r.uniform() < 0.5)
}

pub(crate) fn checks() -> Vec<OpCheck> {
    vec![
        OpCheck::new("sum", 2, |r| {
            let (shape, axes) = shape_and_axes(r);
            let keep = r.uniform() < 0.5;
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            CheckCase::new(
                format!("sum {shape:?} axes {axes:?} keepdim {keep}"),
                vec![x],
                move |t| t[0].sum(&axes, keep),
            )
        }),
        OpCheck::new("mean", 2, |r| {
            let (shape, axes) = shape_and_axes(r);
            let keep = r.uniform() < 0.5;
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            CheckCase::new(
                format!("mean {shape:?} axes {axes:?} keepdim {keep}"),
                vec![x],
                move |t| t[0].mean(&axes, keep),
            )
        }),
        OpCheck::new("max", 2, |r| {
            let (shape, axes) = shape_and_axes(r);
            let keep = r.uniform() < 0.5;
            let x = checks::distinct_values(&shape, r);
            CheckCase::new(
                format!("max {shape:?} axes {axes:?} keepdim {keep}"),
                vec![x],
                move |t| t[0].max(&axes, keep),
            )
        }),
        OpCheck::new("min", 2, |r| {
            let (shape, axes) = shape_and_axes(r);
            let keep = r.uniform() < 0.5;
            let x = checks::distinct_values(&shape, r);
            CheckCase::new(
                format!("min {shape:?} axes {axes:?} keepdim {keep}"),
                vec![x],
                move |t| t[0].min(&axes, keep),
            )
        }),
        OpCheck::new("prod", 3, |r| {
            let (shape, axes) = shape_and_axes(r);
            let keep = r.uniform() < 0.5;
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            CheckCase::new(
                format!("prod {shape:?} axes {axes:?} keepdim {keep}"),
                vec![x],
                move |t| t[0].prod(&axes, keep),
            )
        }),
        OpCheck::new("var", 3, |r| {
            let (shape, axes, keep, unbiased) = spread_case(r);
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            CheckCase::new(
                format!("var {shape:?} axes {axes:?} unbiased {unbiased} keepdim {keep}"),
                vec![x],
                move |t| t[0].var_with(&axes, unbiased, keep),
            )
        }),
        OpCheck::new("std", 3, |r| {
            let (shape, axes, keep, unbiased) = spread_case(r);
            let x = checks::distinct_values(&shape, r);
            CheckCase::new(
                format!("std {shape:?} axes {axes:?} unbiased {unbiased} keepdim {keep}"),
                vec![x],
                move |t| t[0].std(&axes, unbiased, keep),
            )
        }),
        OpCheck::new("logsumexp", 3, |r| {
            let (shape, axes) = shape_and_axes(r);
            let keep = r.uniform() < 0.5;
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            CheckCase::new(
                format!("logsumexp {shape:?} axes {axes:?} keepdim {keep}"),
                vec![x],
                move |t| t[0].logsumexp(&axes, keep),
            )
        }),
    ]
}

//! Gradient-check cases, one list per op file, gathered here.
//!
//! A case is a function of some f64 tensors plus the tensors themselves, drawn at random from a
//! seed: shapes with odd sizes and broadcasting, values kept away from the kinks of piecewise
//! ops (so central differences never straddle one). The test suite draws the seeds with
//! proptest; `ferrograd gradcheck` draws them from a fixed generator.

use crate::error::Result;
use crate::rng::Rng;
use crate::storage::DType;
use crate::tensor::Tensor;
use std::sync::Arc;

/// The function under check.
pub type CheckFn = Arc<dyn Fn(&[Tensor]) -> Result<Tensor> + Send + Sync>;

/// One op's entry: its name, the highest derivative order the suite checks, and a sampler.
#[derive(Clone, Copy)]
pub struct OpCheck {
    /// The op's name, as in its errors and in `ferrograd gradcheck`'s report.
    pub op: &'static str,
    /// The highest derivative order checked, 1 being the gradient (order k > 1 as in
    /// [`crate::gradcheck`]).
    pub max_order: usize,
    /// Draws one case from the generator.
    pub sample: fn(&mut Rng) -> CheckCase,
}

impl OpCheck {
    /// An entry, usable in a `const` list.
    pub const fn new(
        op: &'static str,
        max_order: usize,
        sample: fn(&mut Rng) -> CheckCase,
    ) -> Self {
        OpCheck {
            op,
            max_order,
            sample,
        }
    }
}

/// A drawn case: f, its f64 inputs, and a label saying which shapes and parameters were drawn.
#[derive(Clone)]
pub struct CheckCase {
    /// The drawn shapes and parameters, printed when the case fails.
    pub label: String,
    /// The points the derivatives are checked at (f64, so central differences are accurate).
    pub inputs: Vec<Tensor>,
    /// The function checked; it applies the op to `inputs`.
    pub f: CheckFn,
}

impl CheckCase {
    /// A case checking `f` at `inputs`.
    pub fn new(
        label: String,
        inputs: Vec<Tensor>,
        f: impl Fn(&[Tensor]) -> Result<Tensor> + Send + Sync + 'static,
    ) -> Self {
        CheckCase {
            label,
            inputs,
            f: Arc::new(f),
        }
    }
}

/// Every op's cases, in the order `ferrograd gradcheck` prints them.
pub fn all() -> Vec<OpCheck> {
    let mut v = crate::ops::elementwise::checks();
    v.extend(crate::ops::reduce::checks());
    v.extend(crate::ops::shape::checks());
    v.extend(crate::ops::matmul::checks());
    v.extend(crate::ops::conv::checks());
    v.extend(crate::ops::pool::checks());
    v.extend(crate::ops::channel::checks());
    v.extend(crate::ops::nn::checks());
    v
}

/// Where a case's values are drawn from.
#[derive(Clone, Copy, Debug)]
pub enum Domain {
    /// N(0, 1).
    Any,
    /// U(0.5, 2): for log, sqrt, real powers and divisors.
    Positive,
    /// ±U(0.1, 1.5): for ops with a kink at zero.
    AwayFromZero,
    /// U(−1, 1) but at least 0.05 from ±0.5: for clamp(−0.5, 0.5).
    AwayFromHalf,
}

/// f64 values of `shape` drawn from `domain`.
pub fn random_values(shape: &[usize], domain: Domain, rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let values: Vec<f64> = (0..n)
        .map(|_| match domain {
            Domain::Any => rng.normal(),
            Domain::Positive => 0.5 + 1.5 * rng.uniform(),
            Domain::AwayFromZero => {
                let m = 0.1 + 1.4 * rng.uniform();
                if rng.uniform() < 0.5 {
                    -m
                } else {
                    m
                }
            }
            Domain::AwayFromHalf => loop {
                let v = 2.0 * rng.uniform() - 1.0;
                if (v.abs() - 0.5).abs() > 0.05 {
                    break v;
                }
            },
        })
        .collect();
    Tensor::from_f64s(&values, shape, DType::F64).expect("length matches shape")
}

/// Distinct values, at least 0.01 apart, in random order: maxima never tie, so max and
/// max-pool are differentiable at every drawn point.
pub fn distinct_values(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let mut values: Vec<f64> = (0..n)
        .map(|i| (i as f64 - n as f64 / 2.0) * 0.05 + 0.02 * rng.uniform())
        .collect();
    rng.shuffle(&mut values);
    Tensor::from_f64s(&values, shape, DType::F64).expect("length matches shape")
}

/// A shape of rank in [min_rank, max_rank] with sizes in [1, max_dim].
pub fn random_shape(rng: &mut Rng, min_rank: usize, max_rank: usize, max_dim: usize) -> Vec<usize> {
    let rank = min_rank + rng.below(max_rank - min_rank + 1);
    (0..rank).map(|_| 1 + rng.below(max_dim)).collect()
}

/// Two shapes that broadcast against each other: a random full shape, and a suffix of it with
/// some sizes set to 1; either may come first.
pub fn broadcast_pair(rng: &mut Rng) -> (Vec<usize>, Vec<usize>) {
    let full = random_shape(rng, 1, 3, 4);
    let keep = rng.below(full.len() + 1);
    let mut part: Vec<usize> = full[full.len() - keep..].to_vec();
    for d in part.iter_mut() {
        if rng.uniform() < 0.4 {
            *d = 1;
        }
    }
    if rng.uniform() < 0.5 {
        (full, part)
    } else {
        (part, full)
    }
}

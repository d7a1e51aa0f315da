//! Neural-network functions: softmax, losses, batch normalisation, dropout. Most are composed
//! from the primitives, so their derivatives of every order follow from the primitives' rules
//! with nothing to get wrong here. Training-mode batch normalisation is its own op (for speed:
//! three passes forward, a handful backward), and its derivative rule is written in the
//! `channel_*` ops, so orders 2 and 3 still follow from rules checked elsewhere.

use crate::checks::{self, CheckCase, OpCheck};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::sync::Arc;

/// How a loss combines its per-element (or per-row) terms ℓᵢ, as PyTorch's `reduction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// The terms themselves, one per element (per row for cross-entropy).
    None,
    /// Σᵢ ℓᵢ.
    Sum,
    /// (1/n) Σᵢ ℓᵢ (NaN for no terms, as PyTorch).
    #[default]
    Mean,
}

impl Reduction {
    /// Applies the reduction to the terms.
    pub fn apply(self, terms: Tensor) -> Result<Tensor> {
        match self {
            Reduction::None => Ok(terms),
            Reduction::Sum => terms.sum_all(),
            Reduction::Mean => terms.mean_all(),
        }
    }
}

impl Tensor {
    /// softmax(x)ᵢ = exp(xᵢ − logsumexp(x)) along `axis`.
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        self.sub(&self.logsumexp(&[axis], true)?)?.exp()
    }

    /// log softmax(x)ᵢ = xᵢ − logsumexp(x) along `axis`, without forming exp(x).
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        self.sub(&self.logsumexp(&[axis], true)?)
    }

    /// Mean cross-entropy of logits [N, C] against class labels: −(1/N) Σₙ log softmax(xₙ)\[yₙ\].
    pub fn cross_entropy(&self, labels: &[usize]) -> Result<Tensor> {
        self.cross_entropy_with(labels, Reduction::Mean)
    }

    /// Cross-entropy of logits [N, C] against class labels, ℓₙ = −log softmax(xₙ)\[yₙ\],
    /// reduced by `reduction` (`None` gives the \[N\] terms).
    pub fn cross_entropy_with(&self, labels: &[usize], reduction: Reduction) -> Result<Tensor> {
        let [n, c] = <[usize; 2]>::try_from(self.shape()).map_err(|_| {
            Error::shape(
                "cross_entropy",
                format!("logits must be [N, C], got shape {:?}", self.shape()),
            )
        })?;
        if labels.len() != n {
            return Err(Error::shape(
                "cross_entropy",
                format!(
                    "{} labels for {n} rows of logits {:?}",
                    labels.len(),
                    self.shape()
                ),
            ));
        }
        if let Some((i, &bad)) = labels.iter().enumerate().find(|(_, &l)| l >= c) {
            return Err(Error::argument(
                "cross_entropy",
                format!("label {bad} at row {i} is out of range for {c} classes"),
            ));
        }
        let picked: Vec<usize> = labels
            .iter()
            .enumerate()
            .map(|(row, &l)| row * c + l)
            .collect();
        reduction.apply(
            self.log_softmax(1)?
                .gather_flat(Arc::new(picked), &[n])?
                .neg()?,
        )
    }

    /// Mean binary cross-entropy of logits against targets in [0, 1]:
    /// mean(softplus(x) − x·y), equal to −[y log σ(x) + (1 − y) log(1 − σ(x))] but stable.
    pub fn binary_cross_entropy_with_logits(&self, targets: &Tensor) -> Result<Tensor> {
        self.binary_cross_entropy_with_logits_with(targets, Reduction::Mean)
    }

    /// Binary cross-entropy of logits against targets, ℓᵢ = softplus(xᵢ) − xᵢ·yᵢ, reduced by
    /// `reduction` (`None` gives the terms, shaped as the logits).
    pub fn binary_cross_entropy_with_logits_with(
        &self,
        targets: &Tensor,
        reduction: Reduction,
    ) -> Result<Tensor> {
        if self.shape() != targets.shape() {
            return Err(Error::shape(
                "binary_cross_entropy_with_logits",
                format!(
                    "logits {:?} and targets {:?} differ",
                    self.shape(),
                    targets.shape()
                ),
            ));
        }
        reduction.apply(self.softplus()?.sub(&self.mul(targets)?)?)
    }

    /// Mean squared error: mean((a − b)²).
    pub fn mse_loss(&self, target: &Tensor) -> Result<Tensor> {
        self.mse_loss_with(target, Reduction::Mean)
    }

    /// Squared error, ℓᵢ = (aᵢ − bᵢ)², reduced by `reduction`.
    pub fn mse_loss_with(&self, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
        if self.shape() != target.shape() {
            return Err(Error::shape(
                "mse_loss",
                format!(
                    "prediction {:?} and target {:?} differ",
                    self.shape(),
                    target.shape()
                ),
            ));
        }
        let d = self.sub(target)?;
        reduction.apply(d.mul(&d)?)
    }

    /// Mean absolute error: mean(|a − b|).
    pub fn l1_loss(&self, target: &Tensor) -> Result<Tensor> {
        self.l1_loss_with(target, Reduction::Mean)
    }

    /// Absolute error, ℓᵢ = |aᵢ − bᵢ|, reduced by `reduction`.
    pub fn l1_loss_with(&self, target: &Tensor, reduction: Reduction) -> Result<Tensor> {
        if self.shape() != target.shape() {
            return Err(Error::shape(
                "l1_loss",
                format!(
                    "prediction {:?} and target {:?} differ",
                    self.shape(),
                    target.shape()
                ),
            ));
        }
        reduction.apply(self.sub(target)?.abs()?)
    }

    /// Zeroes each element with probability p and scales survivors by 1/(1 − p), so the
    /// expectation is unchanged; the identity when not training. The mask comes from `rng`.
    pub fn dropout(&self, p: f64, training: bool, rng: &mut Rng) -> Result<Tensor> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::argument(
                "dropout",
                format!("probability {p} must be in [0, 1)"),
            ));
        }
        if !training || p == 0.0 {
            return Ok(self.identity("dropout"));
        }
        Ok(self.dropout_with_mask(p, rng)?.0)
    }

    /// Training-mode dropout that also returns its keep mask: (x·m/(1 − p), m), where m
    /// holds 1 for kept and 0 for dropped elements (drawn from `rng` exactly as
    /// [`Tensor::dropout`] draws them), with x's shape, dtype and device and no gradient.
    /// The derivative is ∂L/∂x = m/(1 − p)·∂L/∂y.
    pub fn dropout_with_mask(&self, p: f64, rng: &mut Rng) -> Result<(Tensor, Tensor)> {
        const OP: &str = "dropout";
        if !(0.0..1.0).contains(&p) {
            return Err(Error::argument(
                OP,
                format!("probability {p} must be in [0, 1)"),
            ));
        }
        crate::limits::checked_alloc(OP, self.shape(), self.dtype(), self.device())?;
        if p == 0.0 {
            let ones = Tensor::full_on(self.shape(), 1.0, self.dtype(), self.device())?;
            return Ok((self.identity(OP), ones));
        }
        let scale = 1.0 / (1.0 - p);
        let keep: Vec<bool> = (0..self.numel()).map(|_| rng.uniform() >= p).collect();
        let values = |on: f64| -> Result<Tensor> {
            let v: Vec<f64> = keep.iter().map(|&k| if k { on } else { 0.0 }).collect();
            Tensor::from_f64s(&v, self.shape(), self.dtype())?.to(self.device())
        };
        let y = self.mul(&values(scale)?)?;
        Ok((y, values(1.0)?))
    }
}

/// Batch normalisation's running statistics, updated in place while training.
pub struct BatchNormState<'a> {
    /// The per-channel running mean, overwritten with the update.
    pub running_mean: &'a Tensor,
    /// The per-channel running (unbiased) variance, overwritten with the update.
    pub running_var: &'a Tensor,
    /// Weight of the new batch in the running averages (PyTorch's default is 0.1).
    pub momentum: f64,
}

/// Batch normalisation over [N, C] or [N, C, H, W]: y = γ·(x − μ)/√(σ² + ε) + β per channel.
/// Training uses the batch's mean and biased variance and, given `state`, updates the running
/// statistics in place (with the unbiased variance, as PyTorch does); inference uses the
/// running statistics. [`batch_norm_functional`] is the same without the in-place update.
pub fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    state: Option<BatchNormState<'_>>,
    training: bool,
    eps: f64,
) -> Result<Tensor> {
    let running = state.as_ref().map(|s| (s.running_mean, s.running_var));
    let momentum = state.as_ref().map_or(0.1, |s| s.momentum);
    let (y, updated) = batch_norm_functional(x, gamma, beta, running, training, momentum, eps)?;
    if let (Some(s), Some((mean, var))) = (&state, updated) {
        crate::no_grad(|| -> Result<()> {
            s.running_mean.assign(&mean)?;
            s.running_var.assign(&var)
        })?;
    }
    Ok(y)
}

/// Batch normalisation that never writes to its arguments: y = γ·(x − μ)/√(σ² + ε) + β per
/// channel over [N, C] or [N, C, H, W], and, when training with `running` = (mean, var)
/// given, the updated running statistics (1 − m)·running + m·batch (the batch variance
/// unbiased), returned for the caller to keep or drop. Inference normalises with `running`
/// (required) and returns no statistics. The new statistics carry no gradient.
pub fn batch_norm_functional(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    running: Option<(&Tensor, &Tensor)>,
    training: bool,
    momentum: f64,
    eps: f64,
) -> Result<(Tensor, Option<(Tensor, Tensor)>)> {
    const OP: &str = "batch_norm";
    let stat_shape: Vec<usize> = match x.shape() {
        [_, c] => vec![1, *c],
        [_, c, _, _] => vec![1, *c, 1, 1],
        s => {
            return Err(Error::shape(
                OP,
                format!("input must be [N, C] or [N, C, H, W], got {s:?}"),
            ))
        }
    };
    let c = x.shape()[1];
    if !momentum.is_finite() {
        return Err(Error::argument(
            OP,
            format!("momentum {momentum} must be finite"),
        ));
    }
    let stats = running.map(|(m, v)| [("running_mean", m), ("running_var", v)]);
    for (name, t) in [("weight", gamma), ("bias", beta)]
        .into_iter()
        .chain(stats.into_iter().flatten())
    {
        if t.shape() != [c] {
            return Err(Error::shape(
                OP,
                format!(
                    "{name} of shape {:?} for input {:?} ({c} channels)",
                    t.shape(),
                    x.shape()
                ),
            ));
        }
        x.same_device(OP, t)?;
        x.same_dtype(OP, t)?;
    }
    if x.numel() == 0 {
        // An empty batch: nothing to normalise, and no statistics to update.
        let y = x
            .mul(&gamma.reshape(&stat_shape)?)?
            .add(&beta.reshape(&stat_shape)?)?;
        return Ok((y, None));
    }
    if !training {
        let (running_mean, running_var) =
            running.ok_or_else(|| Error::argument(OP, "inference needs the running statistics"))?;
        // y = x·s + t per channel, s = γ/√(σ² + ε), t = β − μ·s: one pass over x.
        let scale = gamma.mul(&running_var.add_scalar(eps)?.rsqrt()?)?;
        let shift = beta.sub(&running_mean.mul(&scale)?)?;
        return Ok((x.channel_affine(&scale, Some(&shift))?, None));
    }
    let count = x.numel() / c;
    if count < 2 {
        return Err(Error::shape(
            OP,
            format!(
                "training needs more than one value per channel, input {:?}",
                x.shape()
            ),
        ));
    }
    let (y, mean, var) = BatchNormTrain::forward(x, gamma, beta, eps)?;
    let updated = running
        .map(|(running_mean, running_var)| {
            crate::no_grad(|| -> Result<(Tensor, Tensor)> {
                let unbiased = var.mul_scalar(count as f64 / (count - 1) as f64)?;
                let m = momentum;
                Ok((
                    running_mean
                        .mul_scalar(1.0 - m)?
                        .add(&mean.mul_scalar(m)?)?,
                    running_var
                        .mul_scalar(1.0 - m)?
                        .add(&unbiased.mul_scalar(m)?)?,
                ))
            })
        })
        .transpose()?;
    Ok((y, updated))
}

/// Training-mode batch normalisation as one op: y = x·s + t per channel with the batch's
/// statistics, s = γ/√(σ² + ε) and t = β − μ·s. Its forward is three passes over x (the sum,
/// the centred squares, the affine map); its derivative rule is one fused pass too, written in
/// the `channel_*` ops so that it can be differentiated again.
struct BatchNormTrain {
    eps: f64,
    /// μ and σ² of the forward pass, detached: the backward reuses them when it is not
    /// recording a graph (first-order training), and recomputes them differentiably when it is.
    saved: (Tensor, Tensor),
}

impl BatchNormTrain {
    /// y, μ and σ² (biased) of a training batch; y is differentiable in x, γ and β.
    fn forward(
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let (mean, var) = x.channel_moments()?;
        let y = crate::no_grad(|| -> Result<Tensor> {
            let scale = gamma.mul(&var.add_scalar(eps)?.rsqrt()?)?;
            let shift = beta.sub(&mean.mul(&scale)?)?;
            x.channel_affine(&scale, Some(&shift))
        })?;
        let op = BatchNormTrain {
            eps,
            saved: (mean.clone(), var.clone()),
        };
        let y = Tensor::from_op_shared(
            y.storage(),
            x.shape().to_vec(),
            op,
            vec![x.clone(), gamma.clone(), beta.clone()],
        );
        Ok((y, mean, var))
    }
}

impl crate::autograd::BackwardOp for BatchNormTrain {
    fn name(&self) -> &'static str {
        "batch_norm"
    }

    /// With r = 1/√(σ² + ε), s = γ·r, Σg and P = Σ g·(x − μ) = Σ g·x − μ·Σg per channel over
    /// its M values:
    ///
    ///   ∂γ = r·P,   ∂β = Σg,   ∂x = s·(g − Σg/M − (x − μ)·r²·P/M),
    ///
    /// the last written as g·s + x·a + b with a = −s·r²·P/M and b = −s·Σg/M − a·μ: one pass.
    fn backward(
        &self,
        inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, gamma) = (&inputs[0], &inputs[1]);
        let m = (x.numel() / x.shape()[1]) as f64;
        let (mean, var) = if crate::is_grad_enabled() {
            (x.channel_sum()?.mul_scalar(1.0 / m)?, x.channel_var()?)
        } else {
            self.saved.clone()
        };
        let r = var.add_scalar(self.eps)?.rsqrt()?;
        let s = gamma.mul(&r)?;
        let sum_g = g.channel_sum()?;
        let p = g.channel_dot(x)?.sub(&mean.mul(&sum_g)?)?;
        let a = s.mul(&r)?.mul(&r)?.mul(&p)?.mul_scalar(-1.0 / m)?;
        let b = s.mul(&sum_g)?.mul_scalar(-1.0 / m)?.sub(&a.mul(&mean)?)?;
        let dx = x
            .requires_grad()
            .then(|| g.channel_mix(&s, x, &a, Some(&b)))
            .transpose()?;
        let dgamma = gamma.requires_grad().then(|| r.mul(&p)).transpose()?;
        let dbeta = inputs[2].requires_grad().then_some(sum_g);
        Ok(vec![dx, dgamma, dbeta])
    }
}

// ---- gradient-check cases ------------------------------------------------------------------

fn logits_and_labels(r: &mut Rng) -> (Tensor, Vec<usize>) {
    let (n, c) = (1 + r.below(4), 2 + r.below(4));
    let labels = (0..n).map(|_| r.below(c)).collect();
    (
        checks::random_values(&[n, c], checks::Domain::Any, r),
        labels,
    )
}

/// A reduction for a loss case: each of the three, the default (mean) most often.
fn reduction(r: &mut Rng) -> Reduction {
    [
        Reduction::None,
        Reduction::Sum,
        Reduction::Mean,
        Reduction::Mean,
    ][r.below(4)]
}

pub(crate) fn checks() -> Vec<OpCheck> {
    vec![
        OpCheck::new("softmax", 3, |r| {
            let shape = checks::random_shape(r, 1, 3, 4);
            let axis = -(1 + r.below(shape.len()) as isize);
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            CheckCase::new(
                format!("softmax {shape:?} axis {axis}"),
                vec![x],
                move |t| t[0].softmax(axis),
            )
        }),
        OpCheck::new("log_softmax", 3, |r| {
            let shape = checks::random_shape(r, 1, 3, 4);
            let axis = -(1 + r.below(shape.len()) as isize);
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            CheckCase::new(
                format!("log_softmax {shape:?} axis {axis}"),
                vec![x],
                move |t| t[0].log_softmax(axis),
            )
        }),
        OpCheck::new("cross_entropy", 3, |r| {
            let (x, labels) = logits_and_labels(r);
            let red = reduction(r);
            CheckCase::new(
                format!("cross_entropy {:?} labels {labels:?} {red:?}", x.shape()),
                vec![x],
                move |t| t[0].cross_entropy_with(&labels, red),
            )
        }),
        OpCheck::new("bce_with_logits", 3, |r| {
            let shape = checks::random_shape(r, 1, 2, 4);
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            let y = checks::random_values(&shape, checks::Domain::Positive, r)
                .mul_scalar(0.5)
                .expect("scale")
                .sub_scalar(0.25)
                .expect("shift");
            let red = reduction(r);
            CheckCase::new(
                format!("bce_with_logits {shape:?} {red:?}"),
                vec![x, y],
                move |t| t[0].binary_cross_entropy_with_logits_with(&t[1], red),
            )
        }),
        OpCheck::new("mse_loss", 3, |r| {
            let shape = checks::random_shape(r, 1, 3, 4);
            let (a, b) = (
                checks::random_values(&shape, checks::Domain::Any, r),
                checks::random_values(&shape, checks::Domain::Any, r),
            );
            let red = reduction(r);
            CheckCase::new(
                format!("mse_loss {shape:?} {red:?}"),
                vec![a, b],
                move |t| t[0].mse_loss_with(&t[1], red),
            )
        }),
        OpCheck::new("l1_loss", 2, |r| {
            let shape = checks::random_shape(r, 1, 3, 4);
            let a = checks::random_values(&shape, checks::Domain::Any, r);
            let d = checks::random_values(&shape, checks::Domain::AwayFromZero, r);
            let b = a.sub(&d).expect("same shape");
            let red = reduction(r);
            CheckCase::new(format!("l1_loss {shape:?} {red:?}"), vec![a, b], move |t| {
                t[0].l1_loss_with(&t[1], red)
            })
        }),
        OpCheck::new("batch_norm", 3, |r| {
            // At least 3 values per channel: with 2, the normalised values are ±1 whatever x
            // is, and the derivative is the ε term alone, a difference of terms ~1/√ε larger
            // than itself: a test of rounding (f32 loses it), not of the rule.
            let shape = if r.uniform() < 0.5 {
                vec![3 + r.below(3), 1 + r.below(3)]
            } else {
                vec![1 + r.below(2), 1 + r.below(3), 2, 2 + r.below(2)]
            };
            let c = shape[1];
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            let gamma = checks::random_values(&[c], checks::Domain::Positive, r);
            let beta = checks::random_values(&[c], checks::Domain::Any, r);
            CheckCase::new(
                format!("batch_norm (training) {shape:?}"),
                vec![x, gamma, beta],
                |t| batch_norm(&t[0], &t[1], &t[2], None, true, 1e-5),
            )
        }),
        OpCheck::new("dropout", 2, |r| {
            let shape = checks::random_shape(r, 1, 3, 4);
            let seed = r.next_u64();
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            // The same seed for every evaluation: the mask is part of the function.
            CheckCase::new(format!("dropout(0.3) {shape:?}"), vec![x], move |t| {
                t[0].dropout(0.3, true, &mut Rng::new(seed))
            })
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn functional_batch_norm_returns_the_statistics_and_writes_nothing() {
        let x = Tensor::from_f64s(&[1.0, 2.0, 3.0, 6.0, 5.0, 10.0], &[3, 2], DType::F64).unwrap();
        let (gamma, beta) = (
            Tensor::ones(&[2], DType::F64).unwrap(),
            Tensor::zeros(&[2], DType::F64).unwrap(),
        );
        let (mean, var) = (
            Tensor::zeros(&[2], DType::F64).unwrap(),
            Tensor::ones(&[2], DType::F64).unwrap(),
        );
        let (y, stats) =
            batch_norm_functional(&x, &gamma, &beta, Some((&mean, &var)), true, 0.5, 1e-5).unwrap();
        // The caller's statistics are untouched.
        assert_eq!(mean.to_vec_f64(), vec![0.0, 0.0]);
        assert_eq!(var.to_vec_f64(), vec![1.0, 1.0]);
        // Batch means [3, 6], unbiased variances [4, 16]; momentum 0.5.
        let (new_mean, new_var) = stats.expect("training with running statistics");
        assert_eq!(new_mean.to_vec_f64(), vec![1.5, 3.0]);
        assert_eq!(new_var.to_vec_f64(), vec![2.5, 8.5]);
        // batch_norm with a state gives the same output and writes the same statistics.
        let state = BatchNormState {
            running_mean: &mean,
            running_var: &var,
            momentum: 0.5,
        };
        let y2 = batch_norm(&x, &gamma, &beta, Some(state), true, 1e-5).unwrap();
        assert_eq!(y.to_vec_f64(), y2.to_vec_f64());
        assert_eq!(mean.to_vec_f64(), new_mean.to_vec_f64());
        assert_eq!(var.to_vec_f64(), new_var.to_vec_f64());
        // Inference returns no statistics.
        let (_, none) =
            batch_norm_functional(&x, &gamma, &beta, Some((&mean, &var)), false, 0.5, 1e-5)
                .unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn dropout_with_mask_matches_dropout_and_its_mask() {
        let x = Tensor::from_f64s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3], DType::F64).unwrap();
        let y = x.dropout(0.5, true, &mut Rng::new(7)).unwrap();
        let (y2, m) = x.dropout_with_mask(0.5, &mut Rng::new(7)).unwrap();
        assert_eq!(y.to_vec_f64(), y2.to_vec_f64());
        assert_eq!(m.shape(), x.shape());
        for ((&xi, &yi), &mi) in x
            .to_vec_f64()
            .iter()
            .zip(&y.to_vec_f64())
            .zip(&m.to_vec_f64())
        {
            assert!(mi == 0.0 || mi == 1.0);
            assert_eq!(yi, xi * mi * 2.0);
        }
        assert!(x.dropout_with_mask(1.0, &mut Rng::new(7)).is_err());
    }

    #[test]
    fn reductions_give_terms_sum_and_mean() {
        let a = Tensor::from_f64s(&[1.0, -2.0, 3.0, 0.5], &[2, 2], DType::F64).unwrap();
        let b = Tensor::zeros(&[2, 2], DType::F64).unwrap();
        let none = a.mse_loss_with(&b, Reduction::None).unwrap();
        assert_eq!(none.shape(), &[2, 2]);
        assert_eq!(none.to_vec_f64(), vec![1.0, 4.0, 9.0, 0.25]);
        let sum = a.l1_loss_with(&b, Reduction::Sum).unwrap().to_vec_f64();
        assert_eq!(sum, vec![6.5]);
        assert_eq!(a.l1_loss(&b).unwrap().to_vec_f64(), vec![6.5 / 4.0]);
        let rows = a.cross_entropy_with(&[0, 1], Reduction::None).unwrap();
        assert_eq!(rows.shape(), &[2]);
        let mean = a.cross_entropy(&[0, 1]).unwrap().to_vec_f64()[0];
        let r = rows.to_vec_f64();
        assert!((mean - (r[0] + r[1]) / 2.0).abs() < 1e-12);
        let bce = a
            .binary_cross_entropy_with_logits_with(&b, Reduction::None)
            .unwrap();
        assert_eq!(bce.shape(), &[2, 2]);
    }
}

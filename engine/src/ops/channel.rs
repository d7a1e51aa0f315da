//! Per-channel ops on [N, C, …] tensors (axis 1 is the channel): the sums and the affine maps
//! batch normalisation is made of, each one pass over the full-size tensor.
//!
//! | op | value | derivative rule (g the incoming gradient) |
//! |---|---|---|
//! | `channel_sum(x)` | s[c] = Σ x | ∂x = g[c] broadcast |
//! | `channel_dot(x, y)` | d[c] = Σ x·y | ∂x = y·g[c], ∂y = x·g[c] |
//! | `channel_var(x)` | v[c] = (1/M) Σ (x − μ)² | ∂x = x·(2g/M) − 2gμ/M |
//! | `channel_mix(x, a, y, b, t)` | x·a[c] + y·b[c] + t[c] | ∂x = g·a, ∂a = Σ g·x, …, ∂t = Σ g |
//!
//! (sums over every axis but the channel, M = numel / C.) Every rule is written with these
//! same ops, so the family is closed under differentiation: orders 2 and 3 need nothing new.

use crate::autograd::BackwardOp;
use crate::checks::{self, CheckCase, OpCheck};
use crate::error::{Error, Result};
use crate::limits::checked_alloc;
use crate::tensor::Tensor;
use crate::Storage;
use ferrograd_kernels::channel::ChannelLayout;

/// The channel layout of `x` ([N, C, …], at least two axes).
fn layout(op: &'static str, x: &Tensor) -> Result<ChannelLayout> {
    match x.shape() {
        [outer, channels, rest @ ..] => Ok(ChannelLayout {
            outer: *outer,
            channels: *channels,
            inner: rest.iter().product(),
        }),
        s => Err(Error::shape(
            op,
            format!("input must be [N, C, …] with the channels on axis 1, got {s:?}"),
        )),
    }
}

/// Checks that `t` is one value per channel of `x`, on its device and of its dtype.
fn per_channel(op: &'static str, name: &str, x: &Tensor, t: &Tensor) -> Result<()> {
    let c = x.shape()[1];
    if t.shape() != [c] {
        return Err(Error::shape(
            op,
            format!(
                "{name} of shape {:?} for input {:?}: one value per channel ([{c}])",
                t.shape(),
                x.shape()
            ),
        ));
    }
    x.same_device(op, t)?;
    x.same_dtype(op, t)
}

/// Checks that `y` has the shape, device and dtype of `x`.
fn full_size(op: &'static str, x: &Tensor, y: &Tensor) -> Result<()> {
    if y.shape() != x.shape() {
        return Err(Error::shape(
            op,
            format!(
                "operands {:?} and {:?} differ in shape",
                x.shape(),
                y.shape()
            ),
        ));
    }
    x.same_device(op, y)?;
    x.same_dtype(op, y)
}

struct ChannelSum;

impl BackwardOp for ChannelSum {
    fn name(&self) -> &'static str {
        "channel_sum"
    }
    fn backward(&self, inputs: &[Tensor], _: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        Ok(vec![Some(
            g.reshape(&stat_shape(x))?.broadcast_to(x.shape())?,
        )])
    }
}

struct ChannelDot;

impl BackwardOp for ChannelDot {
    fn name(&self) -> &'static str {
        "channel_dot"
    }
    /// ∂x = y·g[c], ∂y = x·g[c].
    fn backward(&self, inputs: &[Tensor], _: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let (x, y) = (&inputs[0], &inputs[1]);
        let dx = x
            .requires_grad()
            .then(|| y.channel_affine(g, None))
            .transpose()?;
        let dy = y
            .requires_grad()
            .then(|| x.channel_affine(g, None))
            .transpose()?;
        Ok(vec![dx, dy])
    }
}

struct ChannelVar;

impl BackwardOp for ChannelVar {
    fn name(&self) -> &'static str {
        "channel_var"
    }
    /// v = (1/M) Σ (x − μ)², and Σ (x − μ) = 0 kills μ's own dependence on x:
    /// ∂v/∂x = 2(x − μ)/M, so ∂x = x·(2g/M) + (−2gμ/M).
    fn backward(&self, inputs: &[Tensor], _: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        let m = layout("channel_var", x)?.per_channel() as f64;
        let mean = x.channel_sum()?.mul_scalar(1.0 / m)?;
        let scale = g.mul_scalar(2.0 / m)?;
        let shift = scale.mul(&mean)?.neg()?;
        Ok(vec![Some(x.channel_affine(&scale, Some(&shift))?)])
    }
}

/// Σₖ xₖ·aₖ[c] + t[c]: inputs [x, a], then [y, b] when there are two terms, then t if shifted.
struct ChannelMix {
    terms: usize,
    shifted: bool,
}

impl BackwardOp for ChannelMix {
    fn name(&self) -> &'static str {
        "channel_mix"
    }
    /// ∂xₖ = g·aₖ[c], ∂aₖ = Σ g·xₖ, ∂t = Σ g.
    fn backward(&self, inputs: &[Tensor], _: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let mut grads = Vec::with_capacity(inputs.len());
        for k in 0..self.terms {
            let (x, a) = (&inputs[2 * k], &inputs[2 * k + 1]);
            grads.push(
                x.requires_grad()
                    .then(|| g.channel_affine(a, None))
                    .transpose()?,
            );
            grads.push(a.requires_grad().then(|| g.channel_dot(x)).transpose()?);
        }
        if self.shifted {
            let t = &inputs[2 * self.terms];
            grads.push(t.requires_grad().then(|| g.channel_sum()).transpose()?);
        }
        Ok(grads)
    }
}

/// [1, C, 1, …]: one value per channel, broadcastable against an input of `x`'s rank.
pub(crate) fn stat_shape(x: &Tensor) -> Vec<usize> {
    let mut s = vec![1; x.rank()];
    s[1] = x.shape()[1];
    s
}

impl Tensor {
    /// Σ over every axis but the channel axis (1): [N, C, …] → [C], in one pass.
    pub fn channel_sum(&self) -> Result<Tensor> {
        const OP: &str = "channel_sum";
        let l = layout(OP, self)?;
        let out = Storage::channel_sums(l, &self.storage(), None, None)?;
        Ok(Tensor::from_op(
            out,
            vec![l.channels],
            ChannelSum,
            vec![self.clone()],
        ))
    }

    /// Σ self·other over every axis but the channel axis: [C], in one pass (no product is
    /// written out).
    pub fn channel_dot(&self, other: &Tensor) -> Result<Tensor> {
        const OP: &str = "channel_dot";
        let l = layout(OP, self)?;
        full_size(OP, self, other)?;
        let out = Storage::channel_sums(l, &self.storage(), Some(&other.storage()), None)?;
        Ok(Tensor::from_op(
            out,
            vec![l.channels],
            ChannelDot,
            vec![self.clone(), other.clone()],
        ))
    }

    /// The biased variance of each channel, (1/M) Σ (x − μ)² with M = numel / C: [C]. Centred
    /// before squaring (two passes), so a channel with a large mean keeps its digits.
    pub fn channel_var(&self) -> Result<Tensor> {
        let (_, var) = self.channel_moments()?;
        Ok(Tensor::from_op_shared(
            var.storage(),
            vec![self.shape()[1]],
            ChannelVar,
            vec![self.clone()],
        ))
    }

    /// The mean and biased variance of each channel, as constants (no graph): the two passes
    /// of [`Tensor::channel_var`], for callers that need both (batch norm's forward).
    pub(crate) fn channel_moments(&self) -> Result<(Tensor, Tensor)> {
        const OP: &str = "channel_var";
        let l = layout(OP, self)?;
        if l.per_channel() == 0 {
            return Err(Error::shape(
                OP,
                format!("the variance of an empty channel, input {:?}", self.shape()),
            ));
        }
        let m = l.per_channel() as f64;
        let x = self.storage();
        crate::no_grad(|| -> Result<(Tensor, Tensor)> {
            let mean = Storage::channel_sums(l, &x, None, None)?;
            let mean = Tensor::new_leaf(mean, vec![l.channels]).mul_scalar(1.0 / m)?;
            let centred_squares = Storage::channel_sums(l, &x, Some(&x), Some(&mean.storage()))?;
            let var = Tensor::new_leaf(centred_squares, vec![l.channels]).mul_scalar(1.0 / m)?;
            Ok((mean, var))
        })
    }

    /// self·scale[c] + shift[c] in one pass: [N, C, …] with one scale (and shift) per channel.
    pub fn channel_affine(&self, scale: &Tensor, shift: Option<&Tensor>) -> Result<Tensor> {
        self.channel_terms("channel_affine", &[(self, scale)], shift)
    }

    /// self·a[c] + other·b[c] + shift[c] in one pass: two full-size tensors of one shape, each
    /// with one scale per channel.
    pub fn channel_mix(
        &self,
        a: &Tensor,
        other: &Tensor,
        b: &Tensor,
        shift: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.channel_terms("channel_mix", &[(self, a), (other, b)], shift)
    }

    fn channel_terms(
        &self,
        op: &'static str,
        terms: &[(&Tensor, &Tensor)],
        shift: Option<&Tensor>,
    ) -> Result<Tensor> {
        let l = layout(op, self)?;
        for (k, &(x, a)) in terms.iter().enumerate() {
            full_size(op, self, x)?;
            per_channel(op, if k == 0 { "scale" } else { "second scale" }, self, a)?;
        }
        if let Some(t) = shift {
            per_channel(op, "shift", self, t)?;
        }
        checked_alloc(op, self.shape(), self.dtype(), self.device())?;
        let guards: Vec<_> = terms
            .iter()
            .map(|(x, a)| (x.storage(), a.storage()))
            .collect();
        let storages: Vec<(&Storage, &Storage)> =
            guards.iter().map(|(x, a)| (&**x, &**a)).collect();
        let shift_guard = shift.map(|t| t.storage());
        let out = Storage::channel_mix(l, &storages, shift_guard.as_deref())?;
        drop(shift_guard);
        drop(guards);
        let mut inputs: Vec<Tensor> = terms
            .iter()
            .flat_map(|&(x, a)| [x.clone(), a.clone()])
            .collect();
        inputs.extend(shift.cloned());
        Ok(Tensor::from_op(
            out,
            self.shape().to_vec(),
            ChannelMix {
                terms: terms.len(),
                shifted: shift.is_some(),
            },
            inputs,
        ))
    }
}

pub(crate) fn checks() -> Vec<OpCheck> {
    use checks::Domain;
    /// [N, C] or [N, C, H, W] with a few values per channel.
    fn shape(r: &mut crate::Rng) -> Vec<usize> {
        if r.uniform() < 0.3 {
            vec![2 + r.below(3), 1 + r.below(3)]
        } else {
            vec![
                1 + r.below(2),
                1 + r.below(3),
                1 + r.below(3),
                2 + r.below(2),
            ]
        }
    }
    vec![
        OpCheck::new("channel_sum", 3, |r| {
            let s = shape(r);
            let x = checks::random_values(&s, Domain::Any, r);
            CheckCase::new(format!("channel_sum {s:?}"), vec![x], |t| {
                t[0].channel_sum()
            })
        }),
        OpCheck::new("channel_dot", 3, |r| {
            let s = shape(r);
            let x = checks::random_values(&s, Domain::Any, r);
            let y = checks::random_values(&s, Domain::Any, r);
            CheckCase::new(format!("channel_dot {s:?}"), vec![x, y], |t| {
                t[0].channel_dot(&t[1])
            })
        }),
        OpCheck::new("channel_var", 3, |r| {
            let s = shape(r);
            let x = checks::random_values(&s, Domain::Any, r);
            CheckCase::new(format!("channel_var {s:?}"), vec![x], |t| {
                t[0].channel_var()
            })
        }),
        OpCheck::new("channel_mix", 3, |r| {
            let s = shape(r);
            let c = s[1];
            let two = r.uniform() < 0.5;
            let shifted = r.uniform() < 0.7;
            let mut inputs = vec![
                checks::random_values(&s, Domain::Any, r),
                checks::random_values(&[c], Domain::Any, r),
                checks::random_values(&s, Domain::Any, r),
                checks::random_values(&[c], Domain::Any, r),
            ];
            if shifted {
                inputs.push(checks::random_values(&[c], Domain::Any, r));
            }
            if !two {
                inputs.drain(2..4);
            }
            CheckCase::new(
                format!(
                    "channel_mix {s:?} ({} terms, shift {shifted})",
                    1 + two as usize
                ),
                inputs,
                move |t| {
                    let shift = shifted.then(|| &t[t.len() - 1]);
                    if two {
                        t[0].channel_mix(&t[1], &t[2], &t[3], shift)
                    } else {
                        t[0].channel_affine(&t[1], shift)
                    }
                },
            )
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ops_equal_their_compositions() {
        let mut r = crate::Rng::new(7);
        let x = checks::random_values(&[3, 4, 5, 2], checks::Domain::Any, &mut r);
        let y = checks::random_values(&[3, 4, 5, 2], checks::Domain::Any, &mut r);
        let a = checks::random_values(&[4], checks::Domain::Any, &mut r);
        let b = checks::random_values(&[4], checks::Domain::Any, &mut r);
        let t = checks::random_values(&[4], checks::Domain::Any, &mut r);
        let axes = [0, 2, 3];
        let col = |v: &Tensor| v.reshape(&[1, 4, 1, 1]).unwrap();
        let close = |p: &Tensor, q: &Tensor| {
            let (p, q) = (p.to_vec_f64(), q.to_vec_f64());
            assert_eq!(p.len(), q.len());
            for (u, v) in p.iter().zip(&q) {
                assert!((u - v).abs() < 1e-12, "{u} vs {v}");
            }
        };
        close(&x.channel_sum().unwrap(), &x.sum(&axes, false).unwrap());
        close(
            &x.channel_dot(&y).unwrap(),
            &x.mul(&y).unwrap().sum(&axes, false).unwrap(),
        );
        let centred = x.sub(&x.mean(&axes, true).unwrap()).unwrap();
        close(
            &x.channel_var().unwrap(),
            &centred.mul(&centred).unwrap().mean(&axes, false).unwrap(),
        );
        let mixed = x
            .mul(&col(&a))
            .unwrap()
            .add(&y.mul(&col(&b)).unwrap())
            .unwrap()
            .add(&col(&t))
            .unwrap();
        close(&x.channel_mix(&a, &y, &b, Some(&t)).unwrap(), &mixed);
    }

    #[test]
    fn malformed_operands_are_refused_with_the_reason() {
        let x = Tensor::zeros(&[2, 3, 4], crate::DType::F64).unwrap();
        let wrong = Tensor::zeros(&[2], crate::DType::F64).unwrap();
        let err = x.channel_affine(&wrong, None).unwrap_err().to_string();
        assert!(err.contains("one value per channel ([3])"), "{err}");
        let err = Tensor::zeros(&[5], crate::DType::F64)
            .unwrap()
            .channel_sum()
            .unwrap_err()
            .to_string();
        assert!(err.contains("[N, C, …]"), "{err}");
        let y = Tensor::zeros(&[2, 3, 5], crate::DType::F64).unwrap();
        assert!(x.channel_dot(&y).is_err());
    }
}

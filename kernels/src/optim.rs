//! Fused in-place optimizer updates: one pass over a parameter, its state and its gradient,
//! no temporaries. The WGSL twins (`shaders/optim.wgsl`) use the same formulas in the same
//! order of operations.

use crate::Real;
use rayon::prelude::*;

/// Values per rayon task.
const CHUNK: usize = 1 << 14;

/// One SGD step with momentum μ and coupled weight decay λ (PyTorch's SGD), in place:
///
/// g ← ∇θ + λθ;  b ← μb + g (b ← g on the first step or when μ = 0);  θ ← θ − lr·b.
pub fn sgd_step<T: Real>(
    param: &mut [T],
    momentum_buf: &mut [T],
    grad: &[T],
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    first: bool,
) {
    assert!(
        momentum_buf.len() == param.len() && grad.len() == param.len(),
        "parameter, momentum buffer and gradient of one length"
    );
    let (lr, mu, wd) = (
        T::from_f64(lr),
        T::from_f64(momentum),
        T::from_f64(weight_decay),
    );
    let restart = first || momentum == 0.0;
    param
        .par_chunks_mut(CHUNK)
        .zip(momentum_buf.par_chunks_mut(CHUNK))
        .zip(grad.par_chunks(CHUNK))
        .for_each(|((t, b), g)| {
            for ((t, b), &g) in t.iter_mut().zip(b.iter_mut()).zip(g) {
                let g = g + wd * *t;
                *b = if restart { g } else { mu * *b + g };
                *t = *t - lr * *b;
            }
        });
}

/// Hyper-parameters of one Adam step; `bias1` = 1 − β₁ᵗ and `bias2` = 1 − β₂ᵗ for step t
/// (counting from 1), computed once per step rather than per value. With m̂ = m / bias1 and
/// v̂ = v / bias2 the step is θ ← θ − lr·(m̂ / (√v̂ + ε) + λθ) ([`adam_step`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// The learning rate lr.
    pub lr: f64,
    /// β₁, the decay of the first-moment (mean) estimate m.
    pub beta1: f64,
    /// β₂, the decay of the second-moment (uncentred variance) estimate v.
    pub beta2: f64,
    /// ε, added to √v̂ so the step stays bounded where v ≈ 0.
    pub eps: f64,
    /// λ, the decoupled (AdamW) weight decay: the step also subtracts lr·λθ.
    pub weight_decay: f64,
    /// 1 − β₁ᵗ, the correction for m starting at 0: m̂ = m / bias1.
    pub bias1: f64,
    /// 1 − β₂ᵗ, the correction for v starting at 0: v̂ = v / bias2.
    pub bias2: f64,
}

/// One Adam step (Kingma & Ba 2015) with AdamW's decoupled weight decay λ, in place:
///
/// m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,  θ ← θ − lr·((m / bias1) / (√(v / bias2) + ε) + λθ).
pub fn adam_step<T: Real>(param: &mut [T], m: &mut [T], v: &mut [T], grad: &[T], h: AdamStep) {
    assert!(
        m.len() == param.len() && v.len() == param.len() && grad.len() == param.len(),
        "parameter, moments and gradient of one length"
    );
    let c = |x: f64| T::from_f64(x);
    let (lr, b1, b2, eps, wd, bias1, bias2) = (
        c(h.lr),
        c(h.beta1),
        c(h.beta2),
        c(h.eps),
        c(h.weight_decay),
        c(h.bias1),
        c(h.bias2),
    );
    param
        .par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(grad.par_chunks(CHUNK))
        .for_each(|(((t, m), v), g)| {
            for (((t, m), v), &g) in t.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                *m = b1 * *m + (T::ONE - b1) * g;
                *v = b2 * *v + (T::ONE - b2) * g * g;
                let update = (*m / bias1) / ((*v / bias2).sqrt() + eps);
                *t = *t - lr * (update + wd * *t);
            }
        });
}

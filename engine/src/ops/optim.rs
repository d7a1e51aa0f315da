//! Fused optimizer updates: in place, outside the tape, one pass over a parameter, its state
//! and its gradient, on whatever device they live (the formulas are in the kernels'
//! `optim.rs` and `optim.wgsl`). Optimizers built on the engine (`ferrograd-nn`'s SGD and
//! Adam) call these between steps, as PyTorch's optimizers update under `no_grad`.

use crate::backend::SgdStep;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tensor::Tensor;
use std::sync::Arc;

pub use ferrograd_kernels::optim::AdamStep;

/// Checks that every tensor matches `param` in shape, device and dtype, and that the ones
/// updated in place are distinct tensors.
fn check(op: &'static str, param: &Tensor, state: &[&Tensor], grad: &Tensor) -> Result<()> {
    for t in state.iter().chain([&grad]) {
        if t.shape() != param.shape() {
            return Err(Error::shape(
                op,
                format!(
                    "a state or gradient of shape {:?} for a parameter of shape {:?}",
                    t.shape(),
                    param.shape()
                ),
            ));
        }
        param.same_device(op, t)?;
        param.same_dtype(op, t)?;
    }
    let mut ids: Vec<u64> = state.iter().map(|t| t.id()).chain([param.id()]).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::argument(
            op,
            "the parameter and its state buffers must be distinct tensors",
        ));
    }
    Ok(())
}

impl Tensor {
    /// The buffer, to be updated in place: copy-on-write, so a detached tensor or a reshape
    /// that shares it keeps the old values.
    fn storage_mut(&self) -> std::sync::RwLockWriteGuard<'_, Arc<Storage>> {
        self.0.storage.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// One SGD step with momentum μ and coupled weight decay λ (PyTorch's SGD), in place on
/// `param` and `momentum_buf`:
///
/// g ← ∇θ + λθ;  b ← μb + g (b ← g on the `first` step or when μ = 0);  θ ← θ − lr·b.
pub fn sgd_step(
    param: &Tensor,
    momentum_buf: &Tensor,
    grad: &Tensor,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    first: bool,
) -> Result<()> {
    check("sgd_step", param, &[momentum_buf], grad)?;
    let h = SgdStep {
        lr,
        momentum,
        weight_decay,
        first,
    };
    let g = grad.storage();
    let (mut p, mut b) = (param.storage_mut(), momentum_buf.storage_mut());
    Storage::sgd_step(h, Arc::make_mut(&mut p), Arc::make_mut(&mut b), &g)
}

/// One Adam step with AdamW's decoupled weight decay, in place on `param` and its moments
/// `m` and `v` (see [`AdamStep`] for the formula and the bias corrections).
pub fn adam_step(param: &Tensor, m: &Tensor, v: &Tensor, grad: &Tensor, h: AdamStep) -> Result<()> {
    check("adam_step", param, &[m, v], grad)?;
    let g = grad.storage();
    let (mut p, mut m, mut v) = (param.storage_mut(), m.storage_mut(), v.storage_mut());
    Storage::adam_step(
        h,
        Arc::make_mut(&mut p),
        Arc::make_mut(&mut m),
        Arc::make_mut(&mut v),
        &g,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn steps_follow_their_formulas_and_leave_sharing_tensors_alone() {
        let t = |v: &[f64]| Tensor::from_f64s(v, &[2], DType::F64).unwrap();
        let (p, b, g) = (t(&[1.0, -2.0]), t(&[0.5, 0.5]), t(&[0.1, 0.2]));
        let before = p.detach();
        sgd_step(&p, &b, &g, 0.1, 0.9, 0.0, false).unwrap();
        // b ← 0.9·0.5 + g; θ ← θ − 0.1·b
        let want_b = [0.9 * 0.5 + 0.1, 0.9 * 0.5 + 0.2];
        assert_eq!(b.to_vec_f64(), want_b);
        assert_eq!(
            p.to_vec_f64(),
            vec![1.0 - 0.1 * want_b[0], -2.0 - 0.1 * want_b[1]]
        );
        assert_eq!(before.to_vec_f64(), vec![1.0, -2.0], "copy on write");
        let e = sgd_step(&p, &p, &g, 0.1, 0.0, 0.0, true).unwrap_err();
        assert!(e.message.contains("distinct"), "{e}");

        let (p, m, v, g) = (
            t(&[1.0, 1.0]),
            t(&[0.0, 0.0]),
            t(&[0.0, 0.0]),
            t(&[0.5, -0.5]),
        );
        let h = AdamStep {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            bias1: 0.1,
            bias2: 0.001,
        };
        adam_step(&p, &m, &v, &g, h).unwrap();
        // The first bias-corrected step moves each value by lr·sign(g) (up to ε).
        let moved: Vec<f64> = p.to_vec_f64().iter().map(|x| x - 1.0).collect();
        assert!(
            (moved[0] + 0.01).abs() < 1e-7 && (moved[1] - 0.01).abs() < 1e-7,
            "{moved:?}"
        );
    }
}

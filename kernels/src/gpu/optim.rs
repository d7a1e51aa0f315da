//! Fused in-place optimizer updates on device buffers (`shaders/optim.wgsl`): one dispatch
//! per parameter per step, reading the gradient and writing θ and the optimizer state where
//! they lie, so a training step moves nothing to the host.
//!
//! The formulas are exactly those of the CPU loops in `ferrograd-models`' `optim.rs`, in f32
//! and in the same order of operations; results agree up to the GPU's rounding (it may fuse a
//! multiply-add where the CPU rounds twice).

use super::params::{AdamParams, SgdParams};
use super::{context, grid_1d, u32_of, GpuBuffer, Shader};

static SHADER: Shader = Shader {
    name: "optim",
    structs: &[SgdParams::WGSL, AdamParams::WGSL],
    files: &[include_str!("../../shaders/optim.wgsl")],
};

/// One SGD step with momentum and coupled weight decay (PyTorch's SGD), in place:
///
/// g ← ∇θ + λθ;  b ← μb + g (b ← g when `first` or μ = 0);  θ ← θ − lr·b.
///
/// `first` is true on the optimizer's first step, when `momentum_buf` holds nothing yet.
pub fn sgd_step(
    param: &GpuBuffer,
    momentum_buf: &GpuBuffer,
    grad: &GpuBuffer,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    first: bool,
) {
    let n = param.len();
    assert!(
        momentum_buf.len() == n && grad.len() == n,
        "parameter, momentum buffer and gradient of one length"
    );
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    gpu.dispatch(
        &SHADER,
        "sgd_step",
        &SgdParams {
            n: u32_of(n),
            lr,
            momentum,
            weight_decay,
            first: u32::from(first),
        }
        .words(),
        &[param, momentum_buf, grad],
        grid_1d(n),
    );
}

/// One Adam step (Kingma & Ba 2015) with AdamW's decoupled weight decay λ, in place:
///
/// m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,
/// θ ← θ − lr·((m / bias1) / (√(v / bias2) + ε) + λθ),
///
/// where the caller gives the bias corrections of step t (counting from 1):
/// `bias1` = 1 − β₁ᵗ and `bias2` = 1 − β₂ᵗ, computed once per step rather than per value.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    param: &GpuBuffer,
    m: &GpuBuffer,
    v: &GpuBuffer,
    grad: &GpuBuffer,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bias1: f32,
    bias2: f32,
) {
    let n = param.len();
    assert!(
        m.len() == n && v.len() == n && grad.len() == n,
        "parameter, moments and gradient of one length"
    );
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    gpu.dispatch(
        &SHADER,
        "adam_step",
        &AdamParams {
            n: u32_of(n),
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            bias1,
            bias2,
        }
        .words(),
        &[param, m, v, grad],
        grid_1d(n),
    );
}

// Fused in-place optimizer updates, mirroring the CPU loops of `Sgd::step` and `Adam::step`
// in models/src/optim.rs (same f32 formulas, same order of operations):
//
//   sgd:  g ← ∇ + λθ;  b ← g on the first step (or with μ = 0), else μb + g;  θ ← θ − lr·b
//   adam: m ← β₁m + (1 − β₁)∇;  v ← β₂v + (1 − β₂)∇²;
//         θ ← θ − lr·((m / bias1) / (√(v / bias2) + ε) + λθ)
//         with bias1 = 1 − β₁ᵗ and bias2 = 1 − β₂ᵗ from the host (AdamW's decoupled λ).
//
// Layout: flat f32 buffers of one parameter's n values: θ, its state (b, or m and v) updated
// in place, and the gradient read only. One invocation per value (each update touches only
// its own element; bound by memory traffic), the 1-D index folded over gid.y past 65,535
// workgroups.
//
// Parameters: SgdParams and AdamParams, declared in the prelude.

@group(0) @binding(0) var<storage, read> sgd: SgdParams;
@group(0) @binding(0) var<storage, read> adam: AdamParams;
@group(0) @binding(1) var<storage, read_write> theta: array<f32>;
@group(0) @binding(2) var<storage, read_write> momentum_buf: array<f32>;
@group(0) @binding(3) var<storage, read> sgd_grad: array<f32>;

@group(0) @binding(2) var<storage, read_write> m: array<f32>;
@group(0) @binding(3) var<storage, read_write> v: array<f32>;
@group(0) @binding(4) var<storage, read> adam_grad: array<f32>;

fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn sgd_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= sgd.n {
        return;
    }
    let lr = sgd.lr;
    let mu = sgd.momentum;
    let wd = sgd.weight_decay;
    let first = sgd.first != 0u;
    let t = theta[i];
    let g = sgd_grad[i] + wd * t;
    var b = g;
    if !first && mu != 0.0 {
        b = mu * momentum_buf[i] + g;
    }
    momentum_buf[i] = b;
    theta[i] = t - lr * b;
}

@compute @workgroup_size(WG)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if i >= adam.n {
        return;
    }
    let lr = adam.lr;
    let b1 = adam.beta1;
    let b2 = adam.beta2;
    let eps = adam.eps;
    let wd = adam.weight_decay;
    let bias1 = adam.bias1;
    let bias2 = adam.bias2;
    let g = adam_grad[i];
    let mi = b1 * m[i] + (1.0 - b1) * g;
    let vi = b2 * v[i] + (1.0 - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let update = (mi / bias1) / (sqrt(vi / bias2) + eps);
    let t = theta[i];
    theta[i] = t - lr * (update + wd * t);
}

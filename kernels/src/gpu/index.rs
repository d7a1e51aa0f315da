//! GPU twins of [`crate::index`]: the flat gather and its adjoint, the scatter-add
//! (`shaders/index.wgsl`).

use super::params::IndexParams;
use super::{context, grid_1d, u32_of, GpuBuffer, Shader};

static SHADER: Shader = Shader {
    name: "index",
    structs: &[IndexParams::WGSL],
    files: &[include_str!("../../shaders/index.wgsl")],
};

fn params(n: usize) -> Vec<u32> {
    IndexParams { n: u32_of(n) }.words()
}

/// `out[i] = x[idx[i]]`, with `idx` a buffer of `u32` indices into `x`. The words are moved
/// unchanged, so `x` may hold `f32` values or `u32` indices.
pub fn gather(x: &GpuBuffer, idx: &GpuBuffer) -> GpuBuffer {
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    let n = idx.len();
    let out = gpu.alloc(n);
    if n == 0 {
        return out;
    }
    gpu.dispatch(&SHADER, "gather", &params(n), &[x, idx, &out], grid_1d(n));
    out
}

/// `out = 0; out[idx[i]] += g[i]` with `out_len` elements: the adjoint of [`gather`]
/// (Σ over the i with idx\[i\] = j, for each j). Repeated indices are summed with atomic
/// compare-and-swap, in no fixed order: equal to the CPU's up to rounding.
pub fn scatter_add(g: &GpuBuffer, idx: &GpuBuffer, out_len: usize) -> GpuBuffer {
    assert_eq!(g.len(), idx.len(), "one index per scattered value");
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    let n = idx.len();
    let out = gpu.zeros(out_len);
    if n == 0 {
        return out;
    }
    gpu.dispatch(
        &SHADER,
        "scatter_add",
        &params(n),
        &[g, idx, &out],
        grid_1d(n),
    );
    out
}

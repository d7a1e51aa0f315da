//! GPU twins of [`crate::elementwise`]: the same `UnaryOp`/`BinaryOp` formulas, in
//! `shaders/elementwise.wgsl`, selected by the codes of [`UnaryOp::NAMES`] and
//! [`BinaryOp::NAMES`].

use super::params::{BinaryParams, FillParams, ParamsWithTail, UnaryParams};
use super::{context, grid_1d, u32_of, GpuBuffer, Shader};
use crate::elementwise::{broadcast_strides, BinaryOp, UnaryOp};
use crate::numel;

static SHADER: Shader = Shader {
    name: "elementwise",
    structs: &[UnaryParams::WGSL, BinaryParams::WGSL, FillParams::WGSL],
    files: &[include_str!("../../shaders/elementwise.wgsl")],
};

/// `op` applied to every element of `x`.
pub fn unary(op: UnaryOp, x: &GpuBuffer) -> GpuBuffer {
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    let out = gpu.alloc(x.len());
    if x.is_empty() {
        return out;
    }
    let (code, c0, c1) = op.code();
    let params = UnaryParams {
        n: u32_of(x.len()),
        op: code,
        c0: c0 as f32,
        c1: c1 as f32,
    };
    gpu.dispatch(
        &SHADER,
        "unary",
        &params.words(),
        &[x, &out],
        grid_1d(x.len()),
    );
    out
}

/// `op(a, b)` with NumPy broadcasting; `out_shape` must be the broadcast of the two shapes.
pub fn binary(
    op: BinaryOp,
    a: &GpuBuffer,
    a_shape: &[usize],
    b: &GpuBuffer,
    b_shape: &[usize],
    out_shape: &[usize],
) -> GpuBuffer {
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    let n = numel(out_shape);
    let out = gpu.alloc(n);
    if n == 0 {
        // Nothing to compute, and the sizes of an empty shape need not fit the shader's u32.
        return out;
    }
    let params = BinaryParams {
        n: u32_of(n),
        op: op.code(),
        rank: u32_of(out_shape.len()),
    };
    let tail: Vec<u32> = out_shape
        .iter()
        .copied()
        .chain(broadcast_strides(a_shape, out_shape))
        .chain(broadcast_strides(b_shape, out_shape))
        .map(u32_of)
        .collect();
    gpu.dispatch(
        &SHADER,
        "binary",
        &params.with_tail(&tail),
        &[a, b, &out],
        grid_1d(n),
    );
    out
}

/// `len` copies of `value`.
pub fn fill(len: usize, value: f64) -> GpuBuffer {
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    let out = gpu.alloc(len);
    if len == 0 {
        return out;
    }
    let params = FillParams {
        n: u32_of(len),
        value: value as f32,
    };
    gpu.dispatch(&SHADER, "fill", &params.words(), &[&out], grid_1d(len));
    out
}

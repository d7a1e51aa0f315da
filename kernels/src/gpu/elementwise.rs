//! GPU twins of [`crate::elementwise`]: the same `UnaryOp`/`BinaryOp` formulas, in
//! `shaders/elementwise.wgsl`.

use super::{context, f32_bits, grid_1d, u32_of, GpuBuffer, Shader};
use crate::elementwise::{broadcast_strides, BinaryOp, UnaryOp};
use crate::numel;

static SHADER: Shader = Shader {
    name: "elementwise",
    source: include_str!("../../shaders/elementwise.wgsl"),
};

/// The shader's code for `op` and its two parameters.
fn unary_code(op: UnaryOp) -> (u32, f64, f64) {
    match op {
        UnaryOp::Neg => (0, 0.0, 0.0),
        UnaryOp::Exp => (1, 0.0, 0.0),
        UnaryOp::Log => (2, 0.0, 0.0),
        UnaryOp::Sqrt => (3, 0.0, 0.0),
        UnaryOp::Abs => (4, 0.0, 0.0),
        UnaryOp::Sign => (5, 0.0, 0.0),
        UnaryOp::Relu => (6, 0.0, 0.0),
        UnaryOp::Step => (7, 0.0, 0.0),
        UnaryOp::LeakyMask(slope) => (8, slope, 0.0),
        UnaryOp::Sigmoid => (9, 0.0, 0.0),
        UnaryOp::Tanh => (10, 0.0, 0.0),
        UnaryOp::Softplus => (11, 0.0, 0.0),
        UnaryOp::Powf(p) => (12, p, 0.0),
        UnaryOp::AddScalar(c) => (13, c, 0.0),
        UnaryOp::MulScalar(c) => (14, c, 0.0),
        UnaryOp::Clamp(lo, hi) => (15, lo, hi),
        UnaryOp::InsideMask(lo, hi) => (16, lo, hi),
        UnaryOp::InfToZero => (17, 0.0, 0.0),
    }
}

fn binary_code(op: BinaryOp) -> u32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::MulStep => 4,
    }
}

/// `op` applied to every element of `x`.
pub fn unary(op: UnaryOp, x: &GpuBuffer) -> GpuBuffer {
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    let out = gpu.alloc(x.len());
    if x.is_empty() {
        return out;
    }
    let (code, c0, c1) = unary_code(op);
    gpu.dispatch(
        &SHADER,
        "unary",
        &[u32_of(x.len()), code, f32_bits(c0), f32_bits(c1)],
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
    let mut params = vec![u32_of(n), binary_code(op), u32_of(out_shape.len())];
    params.extend(out_shape.iter().map(|&d| u32_of(d)));
    params.extend(
        broadcast_strides(a_shape, out_shape)
            .into_iter()
            .map(u32_of),
    );
    params.extend(
        broadcast_strides(b_shape, out_shape)
            .into_iter()
            .map(u32_of),
    );
    gpu.dispatch(&SHADER, "binary", &params, &[a, b, &out], grid_1d(n));
    out
}

/// `len` copies of `value`.
pub fn fill(len: usize, value: f64) -> GpuBuffer {
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    let out = gpu.alloc(len);
    if len == 0 {
        return out;
    }
    gpu.dispatch(
        &SHADER,
        "fill",
        &[u32_of(len), f32_bits(value)],
        &[&out],
        grid_1d(len),
    );
    out
}

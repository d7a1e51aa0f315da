//! GPU twins of [`crate::layout`]: permutation and broadcast as one strided copy
//! (`shaders/layout.wgsl`).

use super::params::{CopyParams, ParamsWithTail};
use super::{context, grid_1d, u32_of, GpuBuffer, Shader};
use crate::{contiguous_strides, elementwise::broadcast_strides, numel};

static SHADER: Shader = Shader {
    name: "layout",
    structs: &[CopyParams::WGSL],
    files: &[include_str!("../../shaders/layout.wgsl")],
};

fn strided_copy(x: &GpuBuffer, out_shape: &[usize], strides: &[usize]) -> GpuBuffer {
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    let n = numel(out_shape);
    let out = gpu.alloc(n);
    if n == 0 {
        // Nothing to copy, and the sizes of an empty shape need not fit the shader's u32.
        return out;
    }
    let params = CopyParams {
        n: u32_of(n),
        rank: u32_of(out_shape.len()),
    };
    let tail: Vec<u32> = out_shape
        .iter()
        .chain(strides)
        .map(|&v| u32_of(v))
        .collect();
    gpu.dispatch(
        &SHADER,
        "strided_copy",
        &params.with_tail(&tail),
        &[x, &out],
        grid_1d(n),
    );
    out
}

/// Transpose the axes: output axis `i` is input axis `perm[i]`.
pub fn permute(x: &GpuBuffer, shape: &[usize], perm: &[usize]) -> GpuBuffer {
    let in_strides = contiguous_strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    strided_copy(x, &out_shape, &strides)
}

/// Copy `x` of shape `shape` out to the larger broadcast shape `target`.
pub fn broadcast_to(x: &GpuBuffer, shape: &[usize], target: &[usize]) -> GpuBuffer {
    strided_copy(x, target, &broadcast_strides(shape, target))
}

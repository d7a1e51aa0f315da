//! GPU twins of [`crate::reduce`]: sums and arg-maxes to a "kept" shape
//! (`shaders/reduce.wgsl`).
//!
//! Each output folds R input elements: one workgroup of 256 invocations per output when R is
//! long, several outputs per workgroup when it is short, a strided pass per invocation and a
//! shared-memory tree across them.

use super::params::{ParamsWithTail, ReduceParams};
use super::{context, grid_1d, u32_of, GpuBuffer, Shader, WORKGROUP};
use crate::{contiguous_strides, merge_axes, numel};

static SHADER: Shader = Shader {
    name: "reduce",
    structs: &[ReduceParams::WGSL],
    files: &[include_str!("../../shaders/reduce.wgsl")],
};

/// The shader's parameter block for reducing `in_shape` to `out_shape` ([`ReduceParams`] and
/// its tail `[kept_sizes, kept_strides, red_sizes, red_strides]`), and the workgroups to
/// dispatch.
///
/// An axis is reduced where `out_shape` is 1 and `in_shape` is not. Both groups of axes are
/// merged where contiguous in x ([`merge_axes`]), which leaves fewer divisions per element in
/// the shader: reducing [N, C, H, W] to [1, C, 1, 1] reduces over (N, H·W) and keeps (C).
fn plan(in_shape: &[usize], out_shape: &[usize]) -> (Vec<u32>, [u32; 3]) {
    assert_eq!(
        in_shape.len(),
        out_shape.len(),
        "a reduction keeps the rank: {in_shape:?} to {out_shape:?}"
    );
    for (&i, &o) in in_shape.iter().zip(out_shape) {
        assert!(
            o == i || o == 1,
            "{out_shape:?} is not {in_shape:?} with some axes reduced to 1"
        );
    }
    let strides = contiguous_strides(in_shape);
    // merge_axes drops size-1 axes, so zeroing one group's sizes to 1 leaves the other group.
    let kept_shape: Vec<usize> = in_shape
        .iter()
        .zip(out_shape)
        .map(|(&i, &o)| if o == 1 { 1 } else { i })
        .collect();
    let red_shape: Vec<usize> = in_shape
        .iter()
        .zip(out_shape)
        .map(|(&i, &o)| if o == 1 { i } else { 1 })
        .collect();
    let kept = merge_axes(&kept_shape, [&strides, &strides]);
    let red = merge_axes(&red_shape, [&strides, &strides]);

    let n_out = numel(out_shape);
    let count = numel(&red_shape);
    // T invocations per output: enough for one element each, at most a workgroup.
    let threads = count.next_power_of_two().min(WORKGROUP as usize);
    let params = ReduceParams {
        n_out: u32_of(n_out),
        threads: u32_of(threads),
        count: u32_of(count),
        n_kept: u32_of(kept.len()),
        n_red: u32_of(red.len()),
    };
    let mut tail = Vec::new();
    for axes in [&kept, &red] {
        tail.extend(axes.iter().map(|&(size, _)| u32_of(size)));
        tail.extend(axes.iter().map(|&(_, [stride, _])| u32_of(stride)));
    }
    // T divides 256, so n_out·T invocations fill exactly ⌈n_out / (256/T)⌉ workgroups.
    (params.with_tail(&tail), grid_1d(n_out * threads))
}

/// Σ over the axes where `out_shape` is 1 and `in_shape` is not, as [`crate::reduce::sum_to`]
/// (summed in a different order, so equal up to rounding).
pub fn sum_to(x: &GpuBuffer, in_shape: &[usize], out_shape: &[usize]) -> GpuBuffer {
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    if numel(in_shape) == 0 {
        // Empty sums (and the sizes of an empty shape need not fit the shader's u32).
        return gpu.zeros(numel(out_shape));
    }
    let (params, groups) = plan(in_shape, out_shape);
    let out = gpu.alloc(numel(out_shape));
    gpu.dispatch(&SHADER, "sum_to", &params, &[x, &out], groups);
    out
}

/// Flat indices into `x` (as `u32`) of each output's maximum over the reduced axes: the
/// index half of [`crate::reduce::max_to`], with its rule exactly: the first maximum on
/// ties, the first NaN if there is one. An empty reduction gives `u32::MAX`.
pub fn argmax_to(x: &GpuBuffer, in_shape: &[usize], out_shape: &[usize]) -> GpuBuffer {
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    if numel(out_shape) == 0 {
        return gpu.alloc(0);
    }
    let (params, groups) = plan(in_shape, out_shape);
    let out = gpu.alloc(numel(out_shape));
    gpu.dispatch(&SHADER, "argmax_to", &params, &[x, &out], groups);
    out
}

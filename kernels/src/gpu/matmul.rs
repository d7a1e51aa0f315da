//! GPU twin of [`crate::matmul::gemm`], batched and broadcast: a tiled, register-blocked
//! product in `shaders/matmul.wgsl`.
//!
//! A workgroup of 16×16 invocations owns a 64×64 tile of the output and walks the reduction
//! 16 deep at a time through workgroup memory; each invocation keeps a 4×4 block of the tile
//! in registers. Per step of the reduction an invocation then reads 4 + 4 words of workgroup
//! memory for 16 multiply-adds, and each word fetched from the storage buffers serves 64
//! products instead of one, which is what lifts a matrix product off memory bandwidth.
//! The convolutions in [`super::conv`] reuse the same tiles and `dispatch_tiled`.

use super::params::{MatmulParams, ParamsWithTail, TILE_M, TILE_N};
use super::{context, u32_of, Gpu, GpuBuffer, Shader};
use crate::elementwise::broadcast_strides;
use crate::numel;

static SHADER: Shader = Shader {
    name: "matmul",
    structs: &[MatmulParams::WGSL],
    // The shared tile product first, then this family's loads and stores.
    files: &[
        include_str!("../../shaders/tile.wgsl"),
        include_str!("../../shaders/matmul.wgsl"),
    ],
};

/// Workgroups a dispatch may have along one dimension.
const MAX_GROUPS: usize = 65_535;

/// Dispatches `entry` over a grid of `grid` workgroups, `[column tiles, row tiles, z]`, in as
/// many dispatches as wgpu's 65,535-per-dimension limit requires. The first three words of
/// `params` are the tile bases (`x_base`, `y_base`, `z_base` of [`MatmulParams`] and
/// `ConvParams`), set here for each dispatch: the shader adds them to `workgroup_id` to
/// recover its place in the whole grid.
pub(super) fn dispatch_tiled(
    gpu: &Gpu,
    shader: &Shader,
    entry: &'static str,
    params: &[u32],
    buffers: &[&GpuBuffer],
    grid: [usize; 3],
) {
    let mut words = params.to_vec();
    for z in (0..grid[2]).step_by(MAX_GROUPS) {
        for y in (0..grid[1]).step_by(MAX_GROUPS) {
            for x in (0..grid[0]).step_by(MAX_GROUPS) {
                words[..3].copy_from_slice(&[u32_of(x), u32_of(y), u32_of(z)]);
                let groups = [
                    (grid[0] - x).min(MAX_GROUPS),
                    (grid[1] - y).min(MAX_GROUPS),
                    (grid[2] - z).min(MAX_GROUPS),
                ];
                gpu.dispatch(shader, entry, &words, buffers, groups.map(u32_of));
            }
        }
    }
}

/// `C = op(A) · op(B)` for every index of the batch shape `out_batch`.
///
/// `a` holds `numel(a_batch)` matrices, each stored row-major as `[m, k]`, or as `[k, m]`
/// when `transpose_a` (op(A) = Aᵀ, read in place); `b` holds `numel(b_batch)` matrices
/// stored `[k, n]`, or `[n, k]` when `transpose_b`. The two batch shapes broadcast to
/// `out_batch` NumPy-style (aligned on the right, size-1 axes repeated). Returns C,
/// contiguous `[out_batch..., m, n]`; with `k = 0` it is all zeros.
#[allow(clippy::too_many_arguments)]
pub fn batched_matmul(
    a: &GpuBuffer,
    a_batch: &[usize],
    transpose_a: bool,
    b: &GpuBuffer,
    b_batch: &[usize],
    transpose_b: bool,
    out_batch: &[usize],
    m: usize,
    n: usize,
    k: usize,
) -> GpuBuffer {
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    assert_eq!(
        a.len(),
        numel(a_batch) * m * k,
        "batched_matmul: lhs length"
    );
    assert_eq!(
        b.len(),
        numel(b_batch) * k * n,
        "batched_matmul: rhs length"
    );
    for (name, shape) in [("lhs", a_batch), ("rhs", b_batch)] {
        let offset = out_batch.len().checked_sub(shape.len());
        assert!(
            offset.is_some_and(|o| shape
                .iter()
                .zip(&out_batch[o..])
                .all(|(&s, &t)| s == t || s == 1)),
            "batched_matmul: {name} batch {shape:?} does not broadcast to {out_batch:?}"
        );
    }
    let batches = numel(out_batch);
    if batches * m * n == 0 {
        return gpu.alloc(0);
    }
    if k == 0 {
        return gpu.zeros(batches * m * n);
    }
    let out = gpu.alloc(batches * m * n);
    // Batch strides in words: a stride of one matrix per step of a real axis, 0 on a
    // broadcast one.
    let scaled = |shape: &[usize], matrix: usize| {
        broadcast_strides(shape, out_batch)
            .into_iter()
            .map(move |s| u32_of(s * matrix))
    };
    let params = MatmulParams {
        m: u32_of(m),
        n: u32_of(n),
        k: u32_of(k),
        transpose_a: transpose_a as u32,
        transpose_b: transpose_b as u32,
        rank: u32_of(out_batch.len()),
        ..MatmulParams::default()
    };
    let tail: Vec<u32> = out_batch
        .iter()
        .map(|&d| u32_of(d))
        .chain(scaled(a_batch, m * k))
        .chain(scaled(b_batch, k * n))
        .collect();
    dispatch_tiled(
        gpu,
        &SHADER,
        "batched_matmul",
        &params.with_tail(&tail),
        &[a, b, &out],
        [n.div_ceil(TILE_N), m.div_ceil(TILE_M), batches],
    );
    out
}

//! GPU twins of [`crate::conv`]: the three convolutions as implicit GEMMs (the unfolded input
//! is never materialised; the tile loads compute each element's address), and the max-pool
//! argmax, in `shaders/conv.wgsl`.
//!
//! With x: [N, C, H, W], w: [K, C/G, R, S], y: [N, K, P, Q] (Cg = C/G, Kg = K/G), each group
//! g is one product C = A·B per dispatch layer (`workgroup_id.z`):
//!
//! | kernel          | M  | N       | reduction | A  | B                |
//! |-----------------|----|---------|-----------|----|------------------|
//! | forward         | Kg | N·P·Q   | Cg·R·S    | w  | x unfolded       |
//! | backward_input  | Cg | N·H·W   | Kg·R·S    | wᵀ | dy gathered back |
//! | backward_weight | Kg | Cg·R·S  | N·P·Q     | dy | x unfolded, ᵀ    |

use super::matmul::dispatch_tiled;
use super::params::{ConvParams, PoolParams, SplitParams, TILE_K, TILE_M, TILE_N};
use super::{context, grid_1d, u32_of, GpuBuffer, Shader};
use crate::conv::ConvGeometry;

static SHADER: Shader = Shader {
    name: "conv",
    structs: &[ConvParams::WGSL, SplitParams::WGSL, PoolParams::WGSL],
    // The shared tile product first, then this family's loads and stores.
    files: &[
        include_str!("../../shaders/tile.wgsl"),
        include_str!("../../shaders/conv.wgsl"),
    ],
};
/// The weight gradient splits its reduction until about this many workgroups run...
const TARGET_WORKGROUPS: usize = 128;
/// ...as long as each chunk keeps at least this many terms.
const MIN_CHUNK: usize = 256;

fn check(g: &ConvGeometry) {
    assert!(
        g.groups > 0
            && g.in_channels.is_multiple_of(g.groups)
            && g.out_channels.is_multiple_of(g.groups),
        "conv2d: {} groups do not divide {} input and {} output channels",
        g.groups,
        g.in_channels,
        g.out_channels
    );
}

/// The shader's parameter block: the geometry and how the weight gradient's reduction is
/// split (the tile bases are set per dispatch by `dispatch_tiled`).
fn params(g: &ConvGeometry, splits: usize, split_len: usize) -> Vec<u32> {
    ConvParams {
        batch: u32_of(g.batch),
        c: u32_of(g.in_channels),
        h: u32_of(g.in_h),
        w: u32_of(g.in_w),
        k: u32_of(g.out_channels),
        r: u32_of(g.kernel_h),
        s: u32_of(g.kernel_w),
        p: u32_of(g.out_h),
        q: u32_of(g.out_w),
        stride_h: u32_of(g.stride.0),
        stride_w: u32_of(g.stride.1),
        pad_h: u32_of(g.padding.0),
        pad_w: u32_of(g.padding.1),
        dil_h: u32_of(g.dilation.0),
        dil_w: u32_of(g.dilation.1),
        groups: u32_of(g.groups),
        splits: u32_of(splits),
        split_len: u32_of(split_len),
        ..ConvParams::default()
    }
    .words()
}

/// Workgroups covering an `m × n` product in each of `layers` groups (or group chunks).
fn tiles(m: usize, n: usize, layers: usize) -> [usize; 3] {
    [n.div_ceil(TILE_N), m.div_ceil(TILE_M), layers]
}

/// y = conv2d(x, w) without bias. x: [N, C, H, W], w: [K, C/G, R, S] → y: [N, K, P, Q].
///
/// Per group, y_g[m, (n, p, q)] = Σ_(c,r,s) w_g[m, (c, r, s)] · x[n, c, p·sh + r·dh − ph,
/// q·sw + s·dw − pw], with zeros outside the image.
pub fn conv2d_forward(g: &ConvGeometry, x: &GpuBuffer, w: &GpuBuffer) -> GpuBuffer {
    check(g);
    assert_eq!(x.len(), g.input_len(), "conv2d_forward: input length");
    assert_eq!(w.len(), g.weight_len(), "conv2d_forward: weight length");
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    if g.output_len() == 0 || g.input_len() == 0 || g.weight_len() == 0 {
        // No output, or every output an empty sum.
        return gpu.zeros(g.output_len());
    }
    let y = gpu.alloc(g.output_len());
    let kg = g.out_channels / g.groups;
    dispatch_tiled(
        gpu,
        &SHADER,
        "conv2d_forward",
        &params(g, 1, 0),
        &[w, x, &y],
        tiles(kg, g.batch * g.out_h * g.out_w, g.groups),
    );
    y
}

/// dx = ∂⟨y, dy⟩/∂x for y = conv2d(x, w): the transposed convolution of dy with w.
/// dy: [N, K, P, Q], w: [K, C/G, R, S] → dx: [N, C, H, W].
///
/// Each dx[n, c, h, w] gathers the terms w[k, c, r, s] · dy[n, k, p, q] of the outputs whose
/// tap (r, s) lands on (h, w): p = (h + ph − r·dh) / sh when that divides exactly and falls in
/// [0, P), likewise q. Gathering (rather than scattering dy through wᵀ and adding overlaps, as
/// col2im does) gives each output one owner, so no atomics and no second pass.
pub fn conv2d_backward_input(g: &ConvGeometry, dy: &GpuBuffer, w: &GpuBuffer) -> GpuBuffer {
    check(g);
    assert_eq!(
        dy.len(),
        g.output_len(),
        "conv2d_backward_input: output-gradient length"
    );
    assert_eq!(
        w.len(),
        g.weight_len(),
        "conv2d_backward_input: weight length"
    );
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    if g.input_len() == 0 || g.output_len() == 0 || g.weight_len() == 0 {
        return gpu.zeros(g.input_len());
    }
    let dx = gpu.alloc(g.input_len());
    let cg = g.in_channels / g.groups;
    dispatch_tiled(
        gpu,
        &SHADER,
        "conv2d_backward_input",
        &params(g, 1, 0),
        &[w, dy, &dx],
        tiles(cg, g.batch * g.in_h * g.in_w, g.groups),
    );
    dx
}

/// dw = ∂⟨y, dy⟩/∂w for y = conv2d(x, w). x: [N, C, H, W], dy: [N, K, P, Q] → dw: [K, C/G, R, S].
///
/// dw_g[m, (c, r, s)] = Σ_(n,p,q) dy[n, m, p, q] · x[n, c, p·sh + r·dh − ph, q·sw + s·dw − pw].
/// The output is small (one weight tensor) and the reduction long (every output pixel of the
/// batch), so when the output alone would occupy few workgroups the reduction is cut into
/// chunks, each summed by its own workgroups into its own copy of dw; a second pass adds the
/// copies in chunk order, so reruns give identical bits.
pub fn conv2d_backward_weight(g: &ConvGeometry, x: &GpuBuffer, dy: &GpuBuffer) -> GpuBuffer {
    check(g);
    assert_eq!(
        x.len(),
        g.input_len(),
        "conv2d_backward_weight: input length"
    );
    assert_eq!(
        dy.len(),
        g.output_len(),
        "conv2d_backward_weight: output-gradient length"
    );
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    let w_len = g.weight_len();
    if w_len == 0 || g.input_len() == 0 || g.output_len() == 0 {
        return gpu.zeros(w_len);
    }
    let (m, n) = (
        g.out_channels / g.groups,
        g.in_channels / g.groups * g.kernel_h * g.kernel_w,
    );
    let reduction = g.batch * g.out_h * g.out_w;
    let [tx, ty, _] = tiles(m, n, 1);
    let wanted = TARGET_WORKGROUPS.div_ceil(tx * ty * g.groups);
    let splits = wanted.min(reduction / MIN_CHUNK).max(1);
    if splits == 1 {
        let dw = gpu.alloc(w_len);
        dispatch_tiled(
            gpu,
            &SHADER,
            "conv2d_backward_weight",
            &params(g, 1, reduction),
            &[dy, x, &dw],
            tiles(m, n, g.groups),
        );
        return dw;
    }
    // Chunks a whole number of tiles long; rounding up may leave fewer chunks than asked.
    let split_len = reduction.div_ceil(splits).next_multiple_of(TILE_K);
    let splits = reduction.div_ceil(split_len);
    let partial = gpu.alloc(splits * w_len);
    dispatch_tiled(
        gpu,
        &SHADER,
        "conv2d_backward_weight",
        &params(g, splits, split_len),
        &[dy, x, &partial],
        tiles(m, n, g.groups * splits),
    );
    let dw = gpu.alloc(w_len);
    gpu.dispatch(
        &SHADER,
        "sum_splits",
        &SplitParams {
            len: u32_of(w_len),
            splits: u32_of(splits),
        }
        .words(),
        &[&partial, &dw],
        grid_1d(w_len),
    );
    dw
}

/// For each max-pool window (a convolution geometry with one window per channel), the flat
/// index into x of its largest element: the first on ties, the first NaN if any, never a
/// padding position. x: [N, C, H, W] → u32 indices [N, C, P, Q].
pub fn max_pool2d_argmax(g: &ConvGeometry, x: &GpuBuffer) -> GpuBuffer {
    assert_eq!(x.len(), g.input_len(), "max_pool2d_argmax: input length");
    let gpu = context().expect("GPU buffers exist only once the GPU is open");
    let outputs = g.batch * g.in_channels * g.out_h * g.out_w;
    let idx = gpu.alloc(outputs);
    if outputs == 0 {
        return idx;
    }
    let params = PoolParams {
        outputs: u32_of(outputs),
        h: u32_of(g.in_h),
        w: u32_of(g.in_w),
        out_h: u32_of(g.out_h),
        out_w: u32_of(g.out_w),
        kernel_h: u32_of(g.kernel_h),
        kernel_w: u32_of(g.kernel_w),
        stride_h: u32_of(g.stride.0),
        stride_w: u32_of(g.stride.1),
        pad_h: u32_of(g.padding.0),
        pad_w: u32_of(g.padding.1),
        dil_h: u32_of(g.dilation.0),
        dil_w: u32_of(g.dilation.1),
    };
    gpu.dispatch(
        &SHADER,
        "max_pool2d_argmax",
        &params.words(),
        &[x, &idx],
        grid_1d(outputs),
    );
    idx
}

//! What the host and the shaders share, written once, here: each shader's parameter block as
//! a `#[repr(C)]` Pod struct whose WGSL declaration is generated from the same field list, and
//! the constants both sides use (workgroup size, tile sizes, op codes). A shader's source is
//! [`prelude`] followed by its file, so WGSL reads `p.stride_h` and `case UNARY_RELU`, never a
//! position; a renamed or reordered field changes both sides at once, and a field the host
//! does not declare is a shader compile error the GPU tests see.

use super::WORKGROUP;
use crate::elementwise::{BinaryOp, UnaryOp};

/// Declares a parameter block: the Rust struct (the host writes it) and the same struct in
/// WGSL (`WGSL`, the shader reads it). Fields are `u32` or `f32`, which WGSL spells alike, so
/// the layout is the same on both sides: 4-byte fields, no padding. `; tail` adds a trailing
/// `tail: array<u32>` in WGSL for per-axis sizes and strides, which the host appends after the
/// fixed fields ([`ParamsWithTail`]).
macro_rules! shader_params {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ident, )*
        } $(; $tail:ident)?
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }
        impl $name {
            /// The same struct, declared in WGSL.
            pub const WGSL: &'static str = concat!(
                "struct ", stringify!($name), " {\n",
                $( "    ", stringify!($field), ": ", stringify!($ty), ",\n", )*
                $( "    ", stringify!($tail), ": array<u32>,\n", )?
                "}\n"
            );
            /// The words the shader reads.
            pub fn words(&self) -> Vec<u32> {
                bytemuck::cast_slice(std::slice::from_ref(self)).to_vec()
            }
        }
    };
}

/// A parameter block followed by its per-axis tail.
pub trait ParamsWithTail {
    /// The block's words, then `tail` (one 0 word if `tail` is empty, since a binding must
    /// hold at least one element of the runtime-sized array).
    fn with_tail(&self, tail: &[u32]) -> Vec<u32>;
}

macro_rules! impl_tail {
    ($($name:ident),*) => {$(
        impl ParamsWithTail for $name {
            fn with_tail(&self, tail: &[u32]) -> Vec<u32> {
                let mut words = self.words();
                words.extend_from_slice(tail);
                // A binding must hold at least one element of the runtime-sized array, even
                // where the tail is empty (a rank-0 shape).
                if tail.is_empty() {
                    words.push(0);
                }
                words
            }
        }
    )*};
}

shader_params! {
    /// `unary`: `out[i] = op(x[i])` with the op's two scalar parameters.
    pub struct UnaryParams {
        /// Number of elements.
        pub n: u32,
        /// The op's code, its position in `UnaryOp::NAMES` (`UNARY_*` in WGSL).
        pub op: u32,
        /// First scalar parameter (the slope, exponent, addend, factor or lower bound).
        pub c0: f32,
        /// Second scalar parameter (the upper bound of `CLAMP` and `INSIDE_MASK`).
        pub c1: f32,
    }
}

shader_params! {
    /// `binary`: `out[i] = op(a[i], b[i])` with NumPy broadcasting; `tail` =
    /// `out_shape[rank], a_strides[rank], b_strides[rank]` (0 on a broadcast axis).
    pub struct BinaryParams {
        /// Number of output elements.
        pub n: u32,
        /// The op's code, its position in `BinaryOp::NAMES` (`BINARY_*` in WGSL).
        pub op: u32,
        /// Number of output axes, the length of each of the three tail arrays.
        pub rank: u32,
    }; tail
}

shader_params! {
    /// `fill`: `n` copies of `value`.
    pub struct FillParams {
        /// Number of elements written.
        pub n: u32,
        /// The value written.
        pub value: f32,
    }
}

shader_params! {
    /// `strided_copy`: a strided view made contiguous; `tail` = `out_shape[rank], strides[rank]`
    /// (the view's strides into the source).
    pub struct CopyParams {
        /// Number of elements copied.
        pub n: u32,
        /// Number of axes, the length of each of the two tail arrays.
        pub rank: u32,
    }; tail
}

shader_params! {
    /// `gather` and `scatter_add`: the number of indices.
    pub struct IndexParams {
        /// Number of indices, one invocation each.
        pub n: u32,
    }
}

shader_params! {
    /// `sum_to` and `argmax_to`: `n_out` outputs of `count` reduced elements each, `threads`
    /// invocations per output; `tail` = `kept_sizes[n_kept], kept_strides[n_kept],
    /// red_sizes[n_red], red_strides[n_red]`.
    pub struct ReduceParams {
        /// Number of outputs.
        pub n_out: u32,
        /// Invocations per output, T = min(`WORKGROUP`, next power of two ≥ `count`).
        pub threads: u32,
        /// Elements folded into each output, R.
        pub count: u32,
        /// Number of kept (merged) axes.
        pub n_kept: u32,
        /// Number of reduced (merged) axes.
        pub n_red: u32,
    }; tail
}

shader_params! {
    /// `batched_matmul`: the tile bases of this dispatch (grids past 65,535 workgroups a
    /// dimension are split), the product's sizes, and `tail` = `out_batch[rank],
    /// a_batch_strides[rank], b_batch_strides[rank]` (in words, 0 on a broadcast axis).
    pub struct MatmulParams {
        /// Added to `workgroup_id.x`: the first column tile of this dispatch.
        pub x_base: u32,
        /// Added to `workgroup_id.y`: the first row tile of this dispatch.
        pub y_base: u32,
        /// Added to `workgroup_id.z`: the first batch index of this dispatch.
        pub z_base: u32,
        /// Rows of op(A) and C.
        pub m: u32,
        /// Columns of op(B) and C.
        pub n: u32,
        /// The contracted dimension: columns of op(A), rows of op(B).
        pub k: u32,
        /// 1 if A is stored `[k, m]` and op(A) = Aᵀ, 0 if stored `[m, k]`.
        pub transpose_a: u32,
        /// 1 if B is stored `[n, k]` and op(B) = Bᵀ, 0 if stored `[k, n]`.
        pub transpose_b: u32,
        /// Number of batch axes, the length of each of the three tail arrays.
        pub rank: u32,
    }; tail
}

shader_params! {
    /// The three convolutions: tile bases, the geometry (x: [batch, c, h, w], w: [k, c/groups,
    /// r, s], y: [batch, k, p, q]), and how the weight gradient's reduction is split.
    pub struct ConvParams {
        /// Added to `workgroup_id.x`: the first column tile of this dispatch.
        pub x_base: u32,
        /// Added to `workgroup_id.y`: the first row tile of this dispatch.
        pub y_base: u32,
        /// Added to `workgroup_id.z`: the first (group, chunk) index of this dispatch.
        pub z_base: u32,
        /// Images in the batch, N.
        pub batch: u32,
        /// Input channels over all groups, C.
        pub c: u32,
        /// Input height, H.
        pub h: u32,
        /// Input width, W.
        pub w: u32,
        /// Output channels over all groups, K.
        pub k: u32,
        /// Kernel height, R.
        pub r: u32,
        /// Kernel width, S.
        pub s: u32,
        /// Output height, P = ⌊(H + 2·pad_h − dil_h·(R − 1) − 1) / stride_h⌋ + 1.
        pub p: u32,
        /// Output width, Q = ⌊(W + 2·pad_w − dil_w·(S − 1) − 1) / stride_w⌋ + 1.
        pub q: u32,
        /// Vertical stride: output row p starts at input row p·stride_h − pad_h.
        pub stride_h: u32,
        /// Horizontal stride.
        pub stride_w: u32,
        /// Zero rows added above and below the input.
        pub pad_h: u32,
        /// Zero columns added left and right of the input.
        pub pad_w: u32,
        /// Vertical dilation: kernel row r reads input row p·stride_h + r·dil_h − pad_h.
        pub dil_h: u32,
        /// Horizontal dilation.
        pub dil_w: u32,
        /// Channel groups G: output channels `g·K/G..` see only input channels `g·C/G..`.
        pub groups: u32,
        /// Chunks the weight gradient's reduction over (n, p, q) is split into (1: unsplit).
        pub splits: u32,
        /// Reduction indices per chunk: a multiple of `TILE_K` when split, N·P·Q when not
        /// (unused by the other two convolutions).
        pub split_len: u32,
    }
}

shader_params! {
    /// `sum_splits`: `len` values in each of `splits` partial copies.
    pub struct SplitParams {
        /// Values in one partial copy (the weight gradient's length).
        pub len: u32,
        /// Number of partial copies, added in order.
        pub splits: u32,
    }
}

shader_params! {
    /// `max_pool2d_argmax`: `outputs` windows over `[.., h, w]` planes.
    pub struct PoolParams {
        /// Number of windows (outputs), one invocation each.
        pub outputs: u32,
        /// Input height.
        pub h: u32,
        /// Input width.
        pub w: u32,
        /// Output height, ⌊(h + 2·pad_h − dil_h·(kernel_h − 1) − 1) / stride_h⌋ + 1.
        pub out_h: u32,
        /// Output width, ⌊(w + 2·pad_w − dil_w·(kernel_w − 1) − 1) / stride_w⌋ + 1.
        pub out_w: u32,
        /// Window height in taps.
        pub kernel_h: u32,
        /// Window width in taps.
        pub kernel_w: u32,
        /// Vertical stride between windows.
        pub stride_h: u32,
        /// Horizontal stride between windows.
        pub stride_w: u32,
        /// Padding rows above and below (never the maximum).
        pub pad_h: u32,
        /// Padding columns left and right (never the maximum).
        pub pad_w: u32,
        /// Vertical distance between taps.
        pub dil_h: u32,
        /// Horizontal distance between taps.
        pub dil_w: u32,
    }
}

shader_params! {
    /// `sgd_step`, as [`crate::optim::sgd_step`].
    pub struct SgdParams {
        /// Number of parameter values.
        pub n: u32,
        /// The learning rate lr.
        pub lr: f32,
        /// The momentum μ.
        pub momentum: f32,
        /// The coupled weight decay λ, added to the gradient as λθ.
        pub weight_decay: f32,
        /// 1 on the first step, which starts the momentum buffer at b = g.
        pub first: u32,
    }
}

shader_params! {
    /// `adam_step`, as [`crate::optim::adam_step`] with the fields of
    /// [`crate::optim::AdamStep`]; `bias1` = 1 − β₁ᵗ and `bias2` = 1 − β₂ᵗ.
    pub struct AdamParams {
        /// Number of parameter values.
        pub n: u32,
        /// The learning rate lr.
        pub lr: f32,
        /// β₁, the first moment's decay.
        pub beta1: f32,
        /// β₂, the second moment's decay.
        pub beta2: f32,
        /// ε, added to √v̂.
        pub eps: f32,
        /// The decoupled (AdamW) weight decay λ.
        pub weight_decay: f32,
        /// 1 − β₁ᵗ.
        pub bias1: f32,
        /// 1 − β₂ᵗ.
        pub bias2: f32,
    }
}

impl_tail!(BinaryParams, CopyParams, ReduceParams, MatmulParams);

/// Rows of the output tile one workgroup of the tiled products computes (`BM`).
pub const TILE_M: usize = 64;
/// Columns of that tile (`BN`).
pub const TILE_N: usize = 64;
/// Reduction depth of one shared-memory step (`BK`).
pub const TILE_K: usize = 16;
/// Invocations of one tiled workgroup (16 × 16, `THREADS`).
pub const TILE_THREADS: usize = 256;

/// The WGSL every shader starts with: the shared constants and the given parameter structs.
pub fn prelude(structs: &[&str]) -> String {
    let mut out = String::from("// Generated from kernels/src/gpu/params.rs: do not edit here.\n");
    let constants = [
        ("WG", WORKGROUP as usize),
        ("BM", TILE_M),
        ("BN", TILE_N),
        ("BK", TILE_K),
        ("THREADS", TILE_THREADS),
    ];
    for (name, value) in constants {
        out.push_str(&format!("const {name}: u32 = {value}u;\n"));
    }
    for (code, name) in UnaryOp::NAMES.iter().enumerate() {
        out.push_str(&format!("const UNARY_{name}: u32 = {code}u;\n"));
    }
    for (code, name) in BinaryOp::NAMES.iter().enumerate() {
        out.push_str(&format!("const BINARY_{name}: u32 = {code}u;\n"));
    }
    for s in structs {
        out.push_str(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wgsl_struct_lists_the_rust_fields_in_order() {
        assert_eq!(
            UnaryParams::WGSL,
            "struct UnaryParams {\n    n: u32,\n    op: u32,\n    c0: f32,\n    c1: f32,\n}\n"
        );
        assert!(BinaryParams::WGSL.ends_with("    rank: u32,\n    tail: array<u32>,\n}\n"));
        // One word per field, so the WGSL struct's offsets are the Rust ones.
        assert_eq!(std::mem::size_of::<ConvParams>(), 21 * 4);
        let p = UnaryParams {
            n: 3,
            op: 7,
            c0: 1.5,
            c1: -2.0,
        };
        assert_eq!(p.words(), vec![3, 7, 1.5f32.to_bits(), (-2.0f32).to_bits()]);
    }

    /// tile.wgsl's register blocking (4×4 outputs per invocation, 16×16 invocations) is
    /// written for these sizes: a change here must change it too.
    #[test]
    fn the_tile_constants_match_the_blocking_the_shader_is_written_for() {
        assert_eq!((TILE_M, TILE_N, TILE_THREADS), (4 * 16, 4 * 16, 16 * 16));
        // Each invocation loads 4 words of each tile per reduction step.
        assert_eq!(TILE_M * TILE_K, 4 * TILE_THREADS);
        assert_eq!(TILE_K * TILE_N, 4 * TILE_THREADS);
        let source = prelude(&[ConvParams::WGSL]);
        assert!(
            source.contains("const BM: u32 = 64u;")
                && source.contains("const UNARY_RELU: u32 = 6u;")
        );
    }
}

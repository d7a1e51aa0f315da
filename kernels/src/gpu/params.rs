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
    /// `unary`: out[i] = op(x[i]) with the op's two scalar parameters.
    pub struct UnaryParams {
        pub n: u32,
        pub op: u32,
        pub c0: f32,
        pub c1: f32,
    }
}

shader_params! {
    /// `binary`: `tail` = out_shape[rank], a_strides[rank], b_strides[rank] (0 on a
    /// broadcast axis).
    pub struct BinaryParams {
        pub n: u32,
        pub op: u32,
        pub rank: u32,
    }; tail
}

shader_params! {
    /// `fill`: `n` copies of `value`.
    pub struct FillParams {
        pub n: u32,
        pub value: f32,
    }
}

shader_params! {
    /// `strided_copy`: `tail` = out_shape[rank], strides[rank].
    pub struct CopyParams {
        pub n: u32,
        pub rank: u32,
    }; tail
}

shader_params! {
    /// `gather` and `scatter_add`: the number of indices.
    pub struct IndexParams {
        pub n: u32,
    }
}

shader_params! {
    /// `sum_to` and `argmax_to`: `n_out` outputs of `count` reduced elements each, `threads`
    /// invocations per output; `tail` = kept_sizes[n_kept], kept_strides[n_kept],
    /// red_sizes[n_red], red_strides[n_red].
    pub struct ReduceParams {
        pub n_out: u32,
        pub threads: u32,
        pub count: u32,
        pub n_kept: u32,
        pub n_red: u32,
    }; tail
}

shader_params! {
    /// `batched_matmul`: the tile bases of this dispatch (grids past 65,535 workgroups a
    /// dimension are split), the product's sizes, and `tail` = out_batch[rank],
    /// a_batch_strides[rank], b_batch_strides[rank] (in words, 0 on a broadcast axis).
    pub struct MatmulParams {
        pub x_base: u32,
        pub y_base: u32,
        pub z_base: u32,
        pub m: u32,
        pub n: u32,
        pub k: u32,
        pub transpose_a: u32,
        pub transpose_b: u32,
        pub rank: u32,
    }; tail
}

shader_params! {
    /// The three convolutions: tile bases, the geometry (x: [batch, c, h, w], w: [k, c/groups,
    /// r, s], y: [batch, k, p, q]), and how the weight gradient's reduction is split.
    pub struct ConvParams {
        pub x_base: u32,
        pub y_base: u32,
        pub z_base: u32,
        pub batch: u32,
        pub c: u32,
        pub h: u32,
        pub w: u32,
        pub k: u32,
        pub r: u32,
        pub s: u32,
        pub p: u32,
        pub q: u32,
        pub stride_h: u32,
        pub stride_w: u32,
        pub pad_h: u32,
        pub pad_w: u32,
        pub dil_h: u32,
        pub dil_w: u32,
        pub groups: u32,
        pub splits: u32,
        pub split_len: u32,
    }
}

shader_params! {
    /// `sum_splits`: `len` values in each of `splits` partial copies.
    pub struct SplitParams {
        pub len: u32,
        pub splits: u32,
    }
}

shader_params! {
    /// `max_pool2d_argmax`: `outputs` windows over [.., h, w] planes.
    pub struct PoolParams {
        pub outputs: u32,
        pub h: u32,
        pub w: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub kernel_h: u32,
        pub kernel_w: u32,
        pub stride_h: u32,
        pub stride_w: u32,
        pub pad_h: u32,
        pub pad_w: u32,
        pub dil_h: u32,
        pub dil_w: u32,
    }
}

shader_params! {
    /// `sgd_step`.
    pub struct SgdParams {
        pub n: u32,
        pub lr: f32,
        pub momentum: f32,
        pub weight_decay: f32,
        pub first: u32,
    }
}

shader_params! {
    /// `adam_step`; `bias1` = 1 − β₁ᵗ and `bias2` = 1 − β₂ᵗ.
    pub struct AdamParams {
        pub n: u32,
        pub lr: f32,
        pub beta1: f32,
        pub beta2: f32,
        pub eps: f32,
        pub weight_decay: f32,
        pub bias1: f32,
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

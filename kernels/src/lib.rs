//! Raw compute on flat, row-major buffers.
//!
//! This crate knows nothing of tensors, graphs or gradients: every function takes slices and
//! shapes and returns (or fills) a buffer. The engine builds differentiable ops on top of these.
//! CPU kernels are generic over [`Real`] (`f32` and `f64`) and parallel with rayon where the
//! work is large enough to pay for the fork.

pub mod conv;
pub mod elementwise;
pub mod index;
pub mod layout;
pub mod matmul;
pub mod pool;
pub mod real;
pub mod reduce;

pub use real::Real;

/// Below this many elements a kernel runs on the calling thread: forking costs more.
pub const PARALLEL_THRESHOLD: usize = 1 << 15;

/// Number of elements of a shape (1 for a scalar's empty shape).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Merges adjacent axes that two strided views both traverse contiguously, dropping size-1
/// axes: [N, C, H, W] read against [1, C, 1, 1] becomes [N, C, H·W], so the innermost run is
/// as long as it can be. Returns (size, [stride₀, stride₁]) per merged axis, outermost first.
pub fn merge_axes(shape: &[usize], strides: [&[usize]; 2]) -> Vec<(usize, [usize; 2])> {
    let mut dims: Vec<(usize, [usize; 2])> = Vec::with_capacity(shape.len());
    for (d, &size) in shape.iter().enumerate() {
        if size == 1 {
            continue;
        }
        let st = [strides[0][d], strides[1][d]];
        match dims.last_mut() {
            Some((outer, os)) if os[0] == st[0] * size && os[1] == st[1] * size => {
                *outer *= size;
                *os = st;
            }
            _ => dims.push((size, st)),
        }
    }
    dims
}

/// Row-major strides of a contiguous buffer of this shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc *= d;
    }
    strides
}

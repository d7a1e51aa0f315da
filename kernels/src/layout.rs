//! Moving elements without arithmetic: axis permutation and broadcast expansion.

use crate::{contiguous_strides, elementwise::broadcast_strides, numel, pool, Real};

/// Transpose the axes: output axis `i` is input axis `perm[i]`.
pub fn permute<T: Real>(x: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    let in_strides = contiguous_strides(shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    strided_copy(x, &out_shape, &strides)
}

/// Copy `x` of shape `shape` out to the larger broadcast shape `target`.
pub fn broadcast_to<T: Real>(x: &[T], shape: &[usize], target: &[usize]) -> Vec<T> {
    strided_copy(x, target, &broadcast_strides(shape, target))
}

/// A contiguous buffer of `out_shape` read from `x` with arbitrary per-axis `strides`.
fn strided_copy<T: Real>(x: &[T], out_shape: &[usize], strides: &[usize]) -> Vec<T> {
    let n = numel(out_shape);
    let rank = out_shape.len();
    if rank == 0 {
        return vec![x[0]];
    }
    let mut out = pool::take(n);
    let mut index = vec![0usize; rank];
    let mut offset = 0usize;
    for o in out.iter_mut() {
        *o = x[offset];
        // Odometer increment of the multi-index, keeping the input offset in step.
        for d in (0..rank).rev() {
            index[d] += 1;
            offset += strides[d];
            if index[d] < out_shape[d] {
                break;
            }
            offset -= strides[d] * out_shape[d];
            index[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_transposes() {
        let x = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(
            permute(&x, &[2, 3], &[1, 0]),
            vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }

    #[test]
    fn broadcast_expands() {
        let x = [1.0f32, 2.0];
        assert_eq!(
            broadcast_to(&x, &[2, 1], &[2, 3]),
            vec![1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
        );
        assert_eq!(broadcast_to(&x, &[2], &[2, 2]), vec![1.0, 2.0, 1.0, 2.0]);
    }
}

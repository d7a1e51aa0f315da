//! Reductions to a "kept" shape: `out_shape` has the input's rank, each dimension either equal to
//! the input's or 1 (reduced). Squeezing the reduced axes is the engine's business (a reshape).

use crate::{contiguous_strides, merge_axes, numel, pool, Real};

/// Walks the input row by row over merged axes (see [`merge_axes`]), calling
/// `visit(row_start_in_input, row_len, out_offset_of_row_start, out_stride_along_row)`.
fn for_each_row(
    in_shape: &[usize],
    out_shape: &[usize],
    mut visit: impl FnMut(usize, usize, usize, usize),
) {
    let in_strides = contiguous_strides(in_shape);
    let out_strides = contiguous_strides(out_shape);
    let kept: Vec<usize> = (0..in_shape.len())
        .map(|d| if out_shape[d] == 1 { 0 } else { out_strides[d] })
        .collect();
    let dims = merge_axes(in_shape, [&in_strides, &kept]);
    let Some(&(inner, [_, step])) = dims.last() else {
        visit(0, numel(in_shape).min(1), 0, 0);
        return;
    };
    let outer = &dims[..dims.len() - 1];
    let rows: usize = outer.iter().map(|d| d.0).product();
    for row in 0..rows {
        let (mut off, mut rem) = (0, row);
        for &(size, [_, so]) in outer.iter().rev() {
            off += (rem % size) * so;
            rem /= size;
        }
        visit(row * inner, inner, off, step);
    }
}

/// Σ over the axes where `out_shape` is 1 and `in_shape` is not.
pub fn sum_to<T: Real>(x: &[T], in_shape: &[usize], out_shape: &[usize]) -> Vec<T> {
    let mut out = pool::take_zeroed(numel(out_shape));
    for_each_row(in_shape, out_shape, |start, inner, off, step| {
        let row = &x[start..start + inner];
        if step == 0 {
            out[off] += row.iter().copied().sum::<T>();
        } else {
            for (j, &v) in row.iter().enumerate() {
                out[off + j * step] += v;
            }
        }
    });
    out
}

/// Max over the reduced axes, with the flat input index of each maximum (the first on ties).
pub fn max_to<T: Real>(x: &[T], in_shape: &[usize], out_shape: &[usize]) -> (Vec<T>, Vec<usize>) {
    let n = numel(out_shape);
    let mut best = vec![T::NEG_INFINITY; n];
    let mut arg = vec![usize::MAX; n];
    for_each_row(in_shape, out_shape, |start, inner, off, step| {
        for j in 0..inner {
            let v = x[start + j];
            let o = off + j * step;
            // A NaN, once taken, stays: NaNs propagate instead of hiding.
            let take = arg[o] == usize::MAX || (!best[o].is_nan() && (v.is_nan() || v > best[o]));
            if take {
                best[o] = v;
                arg[o] = start + j;
            }
        }
    });
    (best, arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_to_reduces_any_axes() {
        let x: Vec<f64> = (0..24).map(|v| v as f64).collect();
        let s = sum_to(&x, &[2, 3, 4], &[1, 3, 1]);
        let want: Vec<f64> = (0..3)
            .map(|j| {
                let mut t = 0.0;
                for i in 0..2 {
                    for k in 0..4 {
                        t += x[i * 12 + j * 4 + k];
                    }
                }
                t
            })
            .collect();
        assert_eq!(s, want);
        assert_eq!(sum_to(&x, &[2, 3, 4], &[1, 1, 1]), vec![276.0]);
    }

    #[test]
    fn max_to_returns_values_and_flat_indices() {
        let x = [1.0f32, 5.0, 3.0, 7.0, 2.0, 0.0];
        let (v, i) = max_to(&x, &[2, 3], &[2, 1]);
        assert_eq!(v, vec![5.0, 7.0]);
        assert_eq!(i, vec![1, 3]);
        let (v, i) = max_to(&x, &[2, 3], &[1, 3]);
        assert_eq!(v, vec![7.0, 5.0, 3.0]);
        assert_eq!(i, vec![3, 1, 2]);
    }
}

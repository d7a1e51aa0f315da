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
    // No rows to visit; counting them could take forever ([2⁴⁰, 0] has 2⁴⁰ empty rows).
    if numel(in_shape) == 0 {
        return;
    }
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
///
/// Sums accumulate in f64 whatever the element type, so an f32 sum of n values is off by about
/// one f32 rounding plus n·2⁻⁵³ of Σ|x|, not n·2⁻²⁴ as a running f32 total would be: a sum of
/// 10⁵ values that cancel to a small total keeps its digits. A contiguous run is summed in
/// eight independent lanes (which also lets the compiler vectorise it).
pub fn sum_to<T: Real>(x: &[T], in_shape: &[usize], out_shape: &[usize]) -> Vec<T> {
    let n_out = numel(out_shape);
    let mut acc = vec![0.0f64; n_out];
    for_each_row(in_shape, out_shape, |start, inner, off, step| {
        let row = &x[start..start + inner];
        if step == 0 {
            acc[off] += sum_run(row);
        } else {
            for (j, &v) in row.iter().enumerate() {
                acc[off + j * step] += v.to_f64();
            }
        }
    });
    let mut out = pool::take(n_out);
    out.iter_mut()
        .zip(&acc)
        .for_each(|(o, &a)| *o = T::from_f64(a));
    out
}

/// Σ of a contiguous run in f64, eight lanes at a time.
fn sum_run<T: Real>(row: &[T]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = row.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|v| v.to_f64()).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v.to_f64();
        }
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    ((a + b) + (c + d)) + ((e + f) + (g + h)) + tail
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

    /// 10⁵ values in (−1, 1) whose exact total is about 100: a running f32 total misses it
    /// by more than 10⁻⁶ of it; the f64 accumulation keeps it to about an f32 rounding.
    #[test]
    fn f32_sums_of_many_cancelling_values_stay_accurate() {
        let n = 100_000;
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let x: Vec<f32> = (0..n)
            .map(|_| {
                // xorshift64: uniform in [0, 1) from the top 53 bits.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 11) as f64 / (1u64 << 53) as f64;
                (u * 2.0 - 1.0 + 1e-3) as f32
            })
            .collect();
        let exact: f64 = x.iter().map(|&v| v as f64).sum();
        for (shape, kept) in [
            (vec![n], vec![1]),
            (vec![100, 1000], vec![1, 1]),
            (vec![1000, 100], vec![1, 100]),
        ] {
            let got: f64 = sum_to(&x, &shape, &kept).iter().map(|&v| v as f64).sum();
            let running: f32 = x.iter().sum();
            assert!(
                ((got - exact) / exact).abs() < 1e-6,
                "{shape:?} -> {kept:?}: {got} against {exact}"
            );
            // The check can fail: a running f32 total misses by more.
            assert!(((running as f64 - exact) / exact).abs() > 1e-6);
        }
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

//! Flat gathers and scatters: the two linear maps, adjoint to each other, behind max, max-pool,
//! slicing, padding, nearest up-sampling and label selection.

use crate::{pool, Real, PARALLEL_THRESHOLD};
use rayon::prelude::*;

/// `out[i] = x[idx[i]]`.
pub fn gather<T: Real>(x: &[T], idx: &[usize]) -> Vec<T> {
    let mut out = pool::take(idx.len());
    let run = |(o, idx): (&mut [T], &[usize])| o.iter_mut().zip(idx).for_each(|(o, &i)| *o = x[i]);
    if idx.len() >= PARALLEL_THRESHOLD {
        out.par_chunks_mut(1 << 14)
            .zip(idx.par_chunks(1 << 14))
            .for_each(run);
    } else {
        run((&mut out, idx));
    }
    out
}

/// [`scatter_add`] for indices that stay within planes: values `k·gathered..(k+1)·gathered`
/// of `g` land only in `out[k·source..(k+1)·source]` (max-pool and up-sampling indices never
/// leave their channel). Planes are independent, so they are zeroed and filled in parallel.
pub fn scatter_add_planar<T: Real>(
    g: &[T],
    idx: &[usize],
    out_len: usize,
    gathered: usize,
    source: usize,
) -> Vec<T> {
    let mut out = pool::take(out_len);
    if out_len == 0 || source == 0 {
        return out;
    }
    let fill = |k: usize, dst: &mut [T], g_k: &[T], idx_k: &[usize]| {
        dst.iter_mut().for_each(|v| *v = T::ZERO);
        let start = k * source;
        for (&i, &v) in idx_k.iter().zip(g_k) {
            dst[i - start] += v;
        }
    };
    let gathered = gathered.max(1);
    if out_len >= PARALLEL_THRESHOLD {
        out.par_chunks_mut(source)
            .zip(g.par_chunks(gathered).zip(idx.par_chunks(gathered)))
            .enumerate()
            .for_each(|(k, (dst, (g_k, idx_k)))| fill(k, dst, g_k, idx_k));
    } else {
        out.chunks_mut(source)
            .zip(g.chunks(gathered).zip(idx.chunks(gathered)))
            .enumerate()
            .for_each(|(k, (dst, (g_k, idx_k)))| fill(k, dst, g_k, idx_k));
    }
    out
}

/// `out = 0; out[idx[i]] += g[i]`, with `out_len` elements: the adjoint of [`gather`].
pub fn scatter_add<T: Real>(g: &[T], idx: &[usize], out_len: usize) -> Vec<T> {
    let mut out = pool::take_zeroed(out_len);
    for (&i, &v) in idx.iter().zip(g) {
        out[i] += v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planar_scatter_matches_the_generic_scatter_on_both_paths() {
        for planes in [3usize, 400] {
            // Past the parallel threshold with 400 planes of 100, below it with 3.
            let (source, gathered) = (100usize, 30usize);
            let idx: Vec<usize> = (0..planes * gathered)
                .map(|i| (i / gathered) * source + (i * 37) % source)
                .collect();
            let g: Vec<f64> = (0..idx.len()).map(|i| (i as f64 * 0.7).sin()).collect();
            let want = scatter_add(&g, &idx, planes * source);
            assert_eq!(
                scatter_add_planar(&g, &idx, planes * source, gathered, source),
                want
            );
        }
    }
}

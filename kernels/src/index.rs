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

/// `out = 0; out[idx[i]] += g[i]`, with `out_len` elements: the adjoint of [`gather`].
pub fn scatter_add<T: Real>(g: &[T], idx: &[usize], out_len: usize) -> Vec<T> {
    let mut out = pool::take_zeroed(out_len);
    for (&i, &v) in idx.iter().zip(g) {
        out[i] += v;
    }
    out
}

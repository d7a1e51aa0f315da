//! Flat gathers and scatters: the two linear maps, adjoint to each other, behind max, max-pool,
//! slicing, padding, nearest up-sampling and label selection.

use crate::{Real, PARALLEL_THRESHOLD};
use rayon::prelude::*;

/// `out[i] = x[idx[i]]`.
pub fn gather<T: Real>(x: &[T], idx: &[usize]) -> Vec<T> {
    if idx.len() >= PARALLEL_THRESHOLD {
        idx.par_iter().map(|&i| x[i]).collect()
    } else {
        idx.iter().map(|&i| x[i]).collect()
    }
}

/// `out = 0; out[idx[i]] += g[i]`, with `out_len` elements: the adjoint of [`gather`].
pub fn scatter_add<T: Real>(g: &[T], idx: &[usize], out_len: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; out_len];
    for (&i, &v) in idx.iter().zip(g) {
        out[i] += v;
    }
    out
}

//! Per-channel kernels: the passes batch normalisation is made of, one read (and at most one
//! write) of the full-size tensor each.
//!
//! A tensor [N, C, …] is seen as N·C contiguous runs of `inner` values (inner = H·W for an
//! image batch, 1 for [N, C]); run r belongs to channel r mod C. Composed from broadcast
//! binaries and `sum_to`, batch norm's forward and backward touch the full-size tensor about
//! thirty times; with these two kernels, about thirteen.

use crate::{pool, Real, PARALLEL_THRESHOLD};
use rayon::prelude::*;

/// How a buffer splits into channels: `outer` · `channels` runs of `inner` contiguous values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelLayout {
    /// N: the runs of one channel are `channels · inner` values apart.
    pub outer: usize,
    /// C.
    pub channels: usize,
    /// Values per run (H·W, or 1).
    pub inner: usize,
}

impl ChannelLayout {
    /// Number of values, N·C·inner.
    pub fn len(&self) -> usize {
        self.outer * self.channels * self.inner
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per channel, M = N·inner: the count batch normalisation averages over.
    pub fn per_channel(&self) -> usize {
        self.outer * self.inner
    }
}

/// out[c] = Σ over channel c's values of u·v, with u = x − m[c] and v = y − m[c]; without `y`,
/// v = 1, and without `centre`, m = 0. So (x, None, None) is the channel sum, (g, Some(x),
/// None) the channel dot product Σ g·x, and (x, Some(x), Some(μ)) the centred sum of squares
/// Σ (x − μ)², which keeps its digits where E[x²] − μ² would cancel them.
///
/// Each block of [`BLOCK`] values is summed in `T` over sixteen lanes (so f32 stays in f32
/// vectors, and each lane adds at most BLOCK/16 terms), and the block totals in f64: an f32
/// sum of a 100,000-value channel is off by a few roundings of a block, not of the whole
/// channel. Channels run in parallel.
pub fn channel_sums<T: Real>(
    l: ChannelLayout,
    x: &[T],
    y: Option<&[T]>,
    centre: Option<&[T]>,
) -> Vec<T> {
    assert_eq!(x.len(), l.len(), "channel_sums: x does not fit {l:?}");
    if let Some(y) = y {
        assert_eq!(y.len(), l.len(), "channel_sums: y does not fit {l:?}");
    }
    if let Some(m) = centre {
        assert_eq!(m.len(), l.channels, "channel_sums: one centre per channel");
    }
    let one_channel = |c: usize| -> T {
        let m = centre.map_or(T::ZERO, |m| m[c]);
        let mut total = 0.0f64;
        for n in 0..l.outer {
            let start = (n * l.channels + c) * l.inner;
            let xs = &x[start..start + l.inner];
            total += match y {
                None => run_sum(xs, m),
                Some(y) => run_dot(xs, &y[start..start + l.inner], m),
            };
        }
        T::from_f64(total)
    };
    let mut out = pool::take(l.channels);
    if l.len() >= PARALLEL_THRESHOLD && l.channels > 1 {
        out.par_iter_mut()
            .enumerate()
            .for_each(|(c, o)| *o = one_channel(c));
    } else {
        out.iter_mut()
            .enumerate()
            .for_each(|(c, o)| *o = one_channel(c));
    }
    out
}

/// Values summed in `T` before their total joins the f64 sum ([`channel_sums`]).
pub const BLOCK: usize = 256;
const LANES: usize = 16;

/// Σ (x − m) over a run.
fn run_sum<T: Real>(xs: &[T], m: T) -> f64 {
    xs.chunks(BLOCK)
        .map(|block| {
            let mut lanes = [T::ZERO; LANES];
            let chunks = block.chunks_exact(LANES);
            let mut tail = T::ZERO;
            for &v in chunks.remainder() {
                tail += v - m;
            }
            for chunk in chunks {
                for (lane, &v) in lanes.iter_mut().zip(chunk) {
                    *lane += v - m;
                }
            }
            fold_lanes(lanes) + tail.to_f64()
        })
        .sum()
}

/// Σ (x − m)(y − m) over a run.
fn run_dot<T: Real>(xs: &[T], ys: &[T], m: T) -> f64 {
    xs.chunks(BLOCK)
        .zip(ys.chunks(BLOCK))
        .map(|(xb, yb)| {
            let mut lanes = [T::ZERO; LANES];
            let (cx, cy) = (xb.chunks_exact(LANES), yb.chunks_exact(LANES));
            let mut tail = T::ZERO;
            for (&a, &b) in cx.remainder().iter().zip(cy.remainder()) {
                tail += (a - m) * (b - m);
            }
            for (a16, b16) in cx.zip(cy) {
                for ((lane, &a), &b) in lanes.iter_mut().zip(a16).zip(b16) {
                    *lane += (a - m) * (b - m);
                }
            }
            fold_lanes(lanes) + tail.to_f64()
        })
        .sum()
}

/// The lanes' total in f64, pairwise.
fn fold_lanes<T: Real>(lanes: [T; LANES]) -> f64 {
    let mut v = lanes.map(|t| t.to_f64());
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            v[i] += v[i + width];
        }
    }
    v[0]
}

/// out = Σₖ xₖ·aₖ[c] + t[c] for one or two terms (xₖ full-size, aₖ and t one value per
/// channel): batch norm's y = x·s + t in one pass, and its input gradient g·s + x·a + b in
/// another.
pub fn channel_mix<T: Real>(
    l: ChannelLayout,
    terms: &[(&[T], &[T])],
    shift: Option<&[T]>,
) -> Vec<T> {
    assert!(
        matches!(terms.len(), 1 | 2),
        "channel_mix: one or two terms, got {}",
        terms.len()
    );
    for (x, a) in terms {
        assert_eq!(x.len(), l.len(), "channel_mix: a term does not fit {l:?}");
        assert_eq!(a.len(), l.channels, "channel_mix: one scale per channel");
    }
    if let Some(t) = shift {
        assert_eq!(t.len(), l.channels, "channel_mix: one shift per channel");
    }
    let mut out = pool::take(l.len());
    if l.is_empty() {
        return out;
    }
    let row = |r: usize, o: &mut [T]| {
        let c = r % l.channels;
        let t = shift.map_or(T::ZERO, |t| t[c]);
        let at = r * l.inner;
        let (x, a) = terms[0];
        let (x, a) = (&x[at..at + l.inner], a[c]);
        match terms.get(1) {
            None => o.iter_mut().zip(x).for_each(|(o, &x)| *o = x * a + t),
            Some(&(y, b)) => {
                let (y, b) = (&y[at..at + l.inner], b[c]);
                o.iter_mut()
                    .zip(x)
                    .zip(y)
                    .for_each(|((o, &x), &y)| *o = x * a + y * b + t);
            }
        }
    };
    if l.len() >= PARALLEL_THRESHOLD {
        let rows_per_task = (PARALLEL_THRESHOLD / 4 / l.inner).max(1);
        out.par_chunks_mut(l.inner)
            .with_min_len(rows_per_task)
            .enumerate()
            .for_each(|(r, o)| row(r, o));
    } else {
        out.chunks_mut(l.inner)
            .enumerate()
            .for_each(|(r, o)| row(r, o));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same sums written the obvious way, value by value.
    fn naive_sums(l: ChannelLayout, x: &[f64], y: Option<&[f64]>, m: Option<&[f64]>) -> Vec<f64> {
        let mut out = vec![0.0; l.channels];
        for (i, &xv) in x.iter().enumerate() {
            let c = (i / l.inner) % l.channels;
            let mc = m.map_or(0.0, |m| m[c]);
            out[c] += (xv - mc) * y.map_or(1.0, |y| y[i] - mc);
        }
        out
    }

    fn values(len: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn sums_match_the_value_by_value_definition() {
        for (outer, channels, inner) in [(1, 1, 1), (3, 2, 5), (2, 3, 17), (7, 4, 1), (64, 8, 97)] {
            let l = ChannelLayout {
                outer,
                channels,
                inner,
            };
            let (x, y, m) = (values(l.len(), 1), values(l.len(), 2), values(channels, 3));
            for (y, m) in [
                (None, None),
                (Some(&y[..]), None),
                (Some(&x[..]), Some(&m[..])),
                (None, Some(&m[..])),
            ] {
                let got = channel_sums(l, &x, y, m);
                let want = naive_sums(l, &x, y, m);
                for (g, w) in got.iter().zip(&want) {
                    assert!(
                        (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                        "{l:?}: {g} vs {w}"
                    );
                }
            }
        }
    }

    /// f32 input, f64 reference: a long channel far from zero keeps its sum and, centred, its
    /// sum of squares to a few f32 roundings of a block.
    #[test]
    fn long_f32_channels_keep_their_digits() {
        let l = ChannelLayout {
            outer: 50,
            channels: 2,
            inner: 2_000,
        };
        let x64: Vec<f64> = values(l.len(), 9).iter().map(|v| 100.0 + v).collect();
        let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
        let exact: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
        let sums = channel_sums(l, &x32, None, None);
        let want = naive_sums(l, &exact, None, None);
        for (g, w) in sums.iter().zip(&want) {
            assert!(((*g as f64) - w).abs() <= 1e-6 * w.abs(), "{g} vs {w}");
        }
        let mean: Vec<f32> = want
            .iter()
            .map(|s| (s / l.per_channel() as f64) as f32)
            .collect();
        let mean64: Vec<f64> = mean.iter().map(|&m| m as f64).collect();
        let squares = channel_sums(l, &x32, Some(&x32), Some(&mean));
        let want = naive_sums(l, &exact, Some(&exact), Some(&mean64));
        for (g, w) in squares.iter().zip(&want) {
            assert!(((*g as f64) - w).abs() <= 1e-5 * w.abs(), "{g} vs {w}");
        }
    }

    #[test]
    fn mix_matches_the_value_by_value_definition() {
        for (outer, channels, inner) in [(1, 1, 1), (3, 2, 5), (9, 3, 1), (40, 16, 81)] {
            let l = ChannelLayout {
                outer,
                channels,
                inner,
            };
            let (x, y) = (values(l.len(), 4), values(l.len(), 5));
            let (a, b, t) = (
                values(channels, 6),
                values(channels, 7),
                values(channels, 8),
            );
            let two = channel_mix(l, &[(&x, &a), (&y, &b)], Some(&t));
            let one = channel_mix(l, &[(&x, &a)], None);
            for i in 0..l.len() {
                let c = (i / inner) % channels;
                assert_eq!(two[i], x[i] * a[c] + y[i] * b[c] + t[c]);
                assert_eq!(one[i], x[i] * a[c]);
            }
        }
    }
}

//! GPU reductions, gathers/scatters and optimizer steps against their CPU twins, on random
//! small shapes (lavapipe runs these on the CPU, some fifty times slower than native code).
#![cfg(feature = "gpu")]

mod gpu_common;

use ferrograd_kernels::gpu::{index as gpu_index, optim as gpu_optim, reduce as gpu_reduce};
use ferrograd_kernels::{index, numel, reduce};
use gpu_common::{assert_close, gpu_or_skip};
use proptest::prelude::*;

fn shape(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..6, 0..=max_rank)
}

/// A cheap deterministic spread over [−3, 3].
fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
            ((h >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0) as f32
        })
        .collect()
}

/// n distinct values in a seeded random order, so that every maximum is unique.
fn distinct_values(n: usize, seed: u64) -> Vec<f32> {
    let keys = values(n, seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]).then(a.cmp(&b)));
    let mut out = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        out[i] = rank as f32 * 0.25 - n as f32 * 0.125;
    }
    out
}

/// `shape` with the axes whose bit is set in `mask` reduced to 1.
fn reduced(shape: &[usize], mask: u32) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .map(|(d, &s)| if mask >> d & 1 == 1 { 1 } else { s })
        .collect()
}

/// The GPU's sums against the CPU's, each output held to what f32 summation can promise. Summing
/// k terms in f32, in any order, is off by at most γ₍ₖ₋₁₎·Σ|xᵢ| ≈ (k − 1)·u·Σ|xᵢ|, u = 2⁻²⁴
/// (Higham, *Accuracy and Stability of Numerical Algorithms*, §4.2), however small the sum
/// itself is. Where the terms cancel, the relative rule of `assert_close` asks more than that
/// (a 54-term sum of 6.9e-3 was 1.5e-4 off relatively, within the bound by a factor of 250).
/// The CPU twin sums in f64 and rounds once (at most u·Σ|xᵢ| more), hence (k + 1)·u·Σ|xᵢ|.
fn check_sum_to(x: &[f32], in_shape: &[usize], out_shape: &[usize]) {
    let g = gpu_or_skip().expect("checked by the caller");
    let got = g.read_f32(&gpu_reduce::sum_to(&g.upload_f32(x), in_shape, out_shape));
    let cpu = reduce::sum_to(x, in_shape, out_shape);
    let magnitudes: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    let magnitudes = reduce::sum_to(&magnitudes, in_shape, out_shape);
    let terms = numel(in_shape) / numel(out_shape);
    let u = f64::from(f32::EPSILON) / 2.0;
    assert_eq!(
        got.len(),
        cpu.len(),
        "sum_to {in_shape:?} -> {out_shape:?}: lengths"
    );
    for (i, ((&gpu, &cpu), &magnitude)) in got.iter().zip(&cpu).zip(&magnitudes).enumerate() {
        let bound = (terms + 1) as f64 * u * f64::from(magnitude);
        let error = (f64::from(gpu) - f64::from(cpu)).abs();
        assert!(
            error <= bound,
            "sum_to {in_shape:?} -> {out_shape:?}, output {i} ({terms} terms): gpu {gpu:e}, \
             cpu {cpu:e}, error {error:e} above the f32 summation bound {bound:e}"
        );
    }
}

fn check_argmax_to(x: &[f32], in_shape: &[usize], out_shape: &[usize]) {
    let g = gpu_or_skip().expect("checked by the caller");
    let got = g.read_u32(&gpu_reduce::argmax_to(
        &g.upload_f32(x),
        in_shape,
        out_shape,
    ));
    let want: Vec<u32> = reduce::max_to(x, in_shape, out_shape)
        .1
        .into_iter()
        .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
        .collect();
    assert_eq!(
        got, want,
        "argmax_to {in_shape:?} -> {out_shape:?} of {x:?}"
    );
}

/// The CPU loop of `Sgd::step` (models/src/optim.rs) on one parameter.
fn sgd_cpu(theta: &mut [f32], buf: &mut [f32], grad: &[f32], h: [f32; 3], first: bool) {
    let [lr, mu, wd] = h;
    for ((t, b), &g) in theta.iter_mut().zip(buf.iter_mut()).zip(grad) {
        let g = g + wd * *t;
        *b = if first || mu == 0.0 { g } else { mu * *b + g };
        *t -= lr * *b;
    }
}

/// The CPU loop of `Adam::step` (models/src/optim.rs) on one parameter, at step `step` ≥ 1.
fn adam_cpu(theta: &mut [f32], m: &mut [f32], v: &mut [f32], grad: &[f32], h: [f32; 5], step: i32) {
    let [lr, b1, b2, eps, wd] = h;
    let bias1 = (1.0 - (b1 as f64).powi(step)) as f32;
    let bias2 = (1.0 - (b2 as f64).powi(step)) as f32;
    for (((t, m), v), &g) in theta
        .iter_mut()
        .zip(m.iter_mut())
        .zip(v.iter_mut())
        .zip(grad)
    {
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * g * g;
        let update = (*m / bias1) / ((*v / bias2).sqrt() + eps);
        *t -= lr * (update + wd * *t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn sum_to_matches_cpu(s in shape(4), mask in any::<u32>(), seed in any::<u64>()) {
        let Some(_) = gpu_or_skip() else { return Ok(()) };
        let x = values(numel(&s), seed);
        check_sum_to(&x, &s, &reduced(&s, mask));
        // Everything to [1, 1, …], and nothing at all.
        check_sum_to(&x, &s, &vec![1; s.len()]);
        check_sum_to(&x, &s, &s);
    }

    #[test]
    fn argmax_to_matches_cpu(s in shape(4), mask in any::<u32>(), seed in any::<u64>()) {
        let Some(_) = gpu_or_skip() else { return Ok(()) };
        let x = distinct_values(numel(&s), seed);
        check_argmax_to(&x, &s, &reduced(&s, mask));
        check_argmax_to(&x, &s, &vec![1; s.len()]);
    }

    #[test]
    fn gather_matches_cpu(n in 1usize..40, m in 0usize..60, seed in any::<u64>()) {
        let Some(g) = gpu_or_skip() else { return Ok(()) };
        let x = values(n, seed);
        let idx: Vec<usize> = values(m, !seed).iter().map(|v| ((v + 3.0) / 6.0 * n as f32) as usize % n).collect();
        let idx32: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
        let got = g.read_f32(&gpu_index::gather(&g.upload_f32(&x), &g.upload_u32(&idx32)));
        // A gather only moves values: exactly equal.
        prop_assert_eq!(got, index::gather(&x, &idx));
    }

    #[test]
    fn scatter_add_matches_cpu(out_len in 1usize..8, m in 0usize..120, seed in any::<u64>()) {
        let Some(g) = gpu_or_skip() else { return Ok(()) };
        // Few targets for many values: most indices repeat, so the atomic loop contends.
        let v = values(m, seed);
        let idx: Vec<usize> = values(m, !seed).iter().map(|v| ((v + 3.0) / 6.0 * out_len as f32) as usize % out_len).collect();
        let idx32: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
        let got = g.read_f32(&gpu_index::scatter_add(&g.upload_f32(&v), &g.upload_u32(&idx32), out_len));
        assert_close(&format!("scatter_add {m} into {out_len}"), &got, &index::scatter_add(&v, &idx, out_len));
    }

    #[test]
    fn sgd_steps_match_cpu(n in 1usize..300, seed in any::<u64>(), momentum in prop::sample::select(vec![0.0f32, 0.9]), weight_decay in prop::sample::select(vec![0.0f32, 1e-2])) {
        let Some(g) = gpu_or_skip() else { return Ok(()) };
        let h = [0.05, momentum, weight_decay];
        let mut theta = values(n, seed);
        // Leftovers in the momentum buffer (as from a pooled buffer): the first step must
        // ignore them.
        let mut buf = values(n, !seed);
        let (p, b) = (g.upload_f32(&theta), g.upload_f32(&buf));
        for step in 0..3u64 {
            let grad = values(n, seed ^ (step + 1));
            sgd_cpu(&mut theta, &mut buf, &grad, h, step == 0);
            gpu_optim::sgd_step(&p, &b, &g.upload_f32(&grad), h[0], h[1], h[2], step == 0);
        }
        assert_close("sgd θ", &g.read_f32(&p), &theta);
        assert_close("sgd momentum", &g.read_f32(&b), &buf);
    }

    #[test]
    fn adam_steps_match_cpu(n in 1usize..300, seed in any::<u64>(), weight_decay in prop::sample::select(vec![0.0f32, 1e-2])) {
        let Some(g) = gpu_or_skip() else { return Ok(()) };
        let h = [1e-2, 0.9, 0.999, 1e-8, weight_decay];
        let mut theta = values(n, seed);
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        let (p, gm, gv) = (g.upload_f32(&theta), g.upload_f32(&m), g.upload_f32(&v));
        for step in 1..=3 {
            let grad = values(n, seed ^ step as u64);
            adam_cpu(&mut theta, &mut m, &mut v, &grad, h, step);
            let bias1 = (1.0 - (h[1] as f64).powi(step)) as f32;
            let bias2 = (1.0 - (h[2] as f64).powi(step)) as f32;
            gpu_optim::adam_step(&p, &gm, &gv, &g.upload_f32(&grad), h[0], h[1], h[2], h[3], h[4], bias1, bias2);
        }
        assert_close("adam θ", &g.read_f32(&p), &theta);
        assert_close("adam m", &g.read_f32(&gm), &m);
        assert_close("adam v", &g.read_f32(&gv), &v);
    }
}

#[test]
fn long_reductions_cross_the_whole_workgroup() {
    let Some(_) = gpu_or_skip() else { return };
    // Reduced extents past 256: every invocation loops, and the tree spans all 256 lanes.
    for (s, out) in [
        (vec![1000], vec![1]),
        (vec![3, 1000], vec![3, 1]),
        (vec![300, 4], vec![1, 4]),
        (vec![2, 500, 3], vec![1, 1, 3]),
        (vec![7, 40, 9], vec![7, 1, 1]),
    ] {
        let n = numel(&s);
        check_sum_to(&values(n, 7), &s, &out);
        check_argmax_to(&distinct_values(n, 11), &s, &out);
    }
}

#[test]
fn argmax_keeps_the_first_maximum_and_the_first_nan() {
    let Some(_) = gpu_or_skip() else { return };
    let nan = f32::NAN;
    let inf = f32::INFINITY;
    let x = [
        1.0, 5.0, 5.0, 2.0, // a tie: the first
        1.0, nan, 7.0, nan, // NaNs win, the first of them
        -0.0, 0.0, -1.0, 0.0, // −0 and +0 tie
        -inf, -inf, -inf, -inf, // nothing above −∞: the first
        3.0, 4.0, inf, inf, // +∞ ties too
    ];
    check_argmax_to(&x, &[5, 4], &[5, 1]);
    check_argmax_to(&x, &[5, 4], &[1, 4]);
    check_argmax_to(&x, &[5, 4], &[1, 1]);
    // Ties in long rows, decided across lanes by the tree. With 256 lanes, element 100 sits
    // in lane 100 and element 256 in lane 0, whose partial the tree keeps on any tie it does
    // not break by index: the later element in the favoured lane.
    let mut long = vec![1.0f32; 600];
    long[100] = 2.0;
    long[256] = 2.0;
    check_argmax_to(&long, &[600], &[1]);
    long[100] = nan;
    long[256] = nan;
    check_argmax_to(&long, &[600], &[1]);
    check_argmax_to(&long, &[2, 300], &[2, 1]);
}

#[test]
fn more_than_65535_workgroups_fold_over_y() {
    let Some(g) = gpu_or_skip() else { return };
    // A reduced extent of 129 takes a whole workgroup per output: 65,600 outputs need 65,600
    // workgroups, past one grid dimension's 65,535.
    let s = [65_600, 129];
    let out = [65_600, 1];
    let x = values(numel(&s), 3);
    check_sum_to(&x, &s, &out);
    let argmax = g.read_u32(&gpu_reduce::argmax_to(&g.upload_f32(&x), &s, &out));
    let want = reduce::max_to(&x, &s, &out).1;
    assert!(argmax.iter().zip(&want).all(|(&a, &b)| a as usize == b));
}

#[test]
fn empty_inputs() {
    let Some(g) = gpu_or_skip() else { return };
    let none = g.upload_u32(&[]);
    assert!(g
        .read_f32(&gpu_index::gather(&g.upload_f32(&[1.0]), &none))
        .is_empty());
    assert_eq!(
        g.read_f32(&gpu_index::scatter_add(&g.upload_f32(&[]), &none, 3)),
        vec![0.0; 3]
    );
    // Reducing a zero-length axis: sums of nothing are 0.
    check_sum_to(&[], &[2, 0], &[2, 1]);
}

//! GPU elementwise and layout kernels against their CPU twins, on random shapes.
#![cfg(feature = "gpu")]

mod gpu_common;

use ferrograd_kernels::elementwise::{self as cpu, broadcast_shapes, BinaryOp, UnaryOp};
use ferrograd_kernels::gpu::{elementwise as gpu_ew, layout as gpu_layout};
use ferrograd_kernels::{layout, numel};
use gpu_common::{assert_close, gpu_or_skip};
use proptest::prelude::*;

fn shape(max_rank: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..6, 0..=max_rank)
}

fn values(n: usize, seed: u64) -> Vec<f32> {
    // A cheap deterministic spread over [−3, 3], away from the edge cases of each op's domain.
    (0..n)
        .map(|i| {
            let h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
            ((h >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0) as f32
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Every op on every drawn shape.
    #[test]
    fn unary_matches_cpu(s in shape(3), seed in any::<u64>(), positive in any::<bool>()) {
        let Some(g) = gpu_or_skip() else { return Ok(()) };
        for &op in UnaryOp::EXAMPLES {
            let mut x = values(numel(&s), seed);
            // log, sqrt, rsqrt, log1p and fractional powers need positive inputs.
            if positive || matches!(op, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Log1p) {
                x.iter_mut().for_each(|v| *v = v.abs() + 0.1);
            }
            let got = g.read_f32(&gpu_ew::unary(op, &g.upload_f32(&x)));
            assert_close(&format!("{op:?} {s:?}"), &got, &cpu::unary(op, &x));
        }
    }

    #[test]
    fn binary_matches_cpu(full in shape(4), mask in any::<u8>(), keep in 0usize..5, swap in any::<bool>(), seed in any::<u64>()) {
        let Some(g) = gpu_or_skip() else { return Ok(()) };
        let keep = keep.min(full.len());
        let part: Vec<usize> = full[full.len() - keep..]
            .iter()
            .enumerate()
            .map(|(i, &d)| if mask >> i & 1 == 1 { 1 } else { d })
            .collect();
        let (sa, sb) = if swap { (part, full) } else { (full, part) };
        let out = broadcast_shapes(&sa, &sb).expect("shapes broadcast");
        let a = values(numel(&sa), seed);
        // b spans both signs (MulStep's mask) but stays away from zero (Div).
        let b: Vec<f32> = values(numel(&sb), !seed)
            .iter()
            .map(|&v| if v < 0.0 { v - 0.5 } else { v + 0.5 })
            .collect();
        for &op in BinaryOp::EXAMPLES {
            let got = g.read_f32(&gpu_ew::binary(op, &g.upload_f32(&a), &sa, &g.upload_f32(&b), &sb, &out));
            assert_close(&format!("{op:?} {sa:?} {sb:?}"), &got, &cpu::binary(op, &a, &sa, &b, &sb, &out));
        }
    }

    #[test]
    fn permute_and_broadcast_match_cpu(s in shape(4), seed in any::<u64>(), rot in 0usize..4, mask in any::<u8>()) {
        let Some(g) = gpu_or_skip() else { return Ok(()) };
        let x = values(numel(&s), seed);
        let xb = g.upload_f32(&x);
        let mut perm: Vec<usize> = (0..s.len()).collect();
        if !perm.is_empty() {
            let r = rot % perm.len();
            perm.rotate_left(r);
        }
        assert_close("permute", &g.read_f32(&gpu_layout::permute(&xb, &s, &perm)), &layout::permute(&x, &s, &perm));
        let small: Vec<usize> = s.iter().enumerate().map(|(i, &d)| if mask >> i & 1 == 1 { 1 } else { d }).collect();
        let xs = values(numel(&small), seed);
        let target: Vec<usize> = std::iter::once(2).chain(s.iter().copied()).collect();
        assert_close(
            "broadcast_to",
            &g.read_f32(&gpu_layout::broadcast_to(&g.upload_f32(&xs), &small, &target)),
            &layout::broadcast_to(&xs, &small, &target),
        );
    }
}

/// erf keeps its relative precision near 0, where a rational form of 1 − erfc cancels.
#[test]
fn erf_is_relatively_precise_near_zero() {
    let Some(g) = gpu_or_skip() else { return };
    let x = [1e-6f32, -3e-4, 0.01, 0.3, -0.49, 0.51, 2.0, -4.0, 10.0];
    let got = g.read_f32(&gpu_ew::unary(UnaryOp::Erf, &g.upload_f32(&x)));
    for (&v, &e) in x.iter().zip(&got) {
        let want = cpu::unary(UnaryOp::Erf, &[v as f64])[0];
        // Relative below 0.5 (the series), absolute (A&S's bound plus rounding) above.
        let tol = if v.abs() < 0.5 {
            1e-6 * want.abs()
        } else {
            2e-7
        };
        assert!(
            (e as f64 - want).abs() <= tol,
            "erf({v}) = {e} on the GPU, {want} exactly"
        );
    }
}

#[test]
fn fill_and_zeros() {
    let Some(g) = gpu_or_skip() else { return };
    assert_eq!(g.read_f32(&gpu_ew::fill(5, 2.5)), vec![2.5; 5]);
    assert_eq!(g.read_f32(&g.zeros(3)), vec![0.0; 3]);
}

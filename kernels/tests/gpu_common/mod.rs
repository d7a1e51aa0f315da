//! Shared by the GPU-vs-CPU tests: the adapter (or a skip), and the comparison rule.

use ferrograd_kernels::gpu::{self, Gpu};

/// The GPU, or `None` (test skipped) when there is none, unless `FERROGRAD_REQUIRE_GPU=1`
/// demands one, as CI does: then a missing adapter fails the test.
pub fn gpu_or_skip() -> Option<&'static Gpu> {
    match gpu::context() {
        Ok(g) => Some(g),
        Err(why) => {
            if std::env::var("FERROGRAD_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("FERROGRAD_REQUIRE_GPU=1 but there is no GPU: {why}");
            }
            eprintln!("skipped: no GPU ({why})");
            None
        }
    }
}

/// ‖gpu − cpu‖₂ ≤ 1e-4 · ‖cpu‖₂ (plus a floor for all-zero results), the f32 rule.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    let diff: f64 = gpu
        .iter()
        .zip(cpu)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = cpu.iter().map(|&b| (b as f64).powi(2)).sum::<f64>().sqrt();
    assert!(
        diff <= 1e-4 * norm + 1e-30,
        "{what}: ‖gpu − cpu‖ = {diff:e} against ‖cpu‖ = {norm:e}"
    );
    for (i, (&a, &b)) in gpu.iter().zip(cpu).enumerate() {
        assert_eq!(
            a.is_nan(),
            b.is_nan(),
            "{what}: NaN at {i} on one side only"
        );
    }
}

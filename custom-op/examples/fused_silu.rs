//! A custom op end to end: define it (`src/lib.rs`), check its derivatives of orders 1–3
//! against finite differences, and train with it.
//!
//! `cargo run -p ferrograd-custom-op --example fused_silu`

use ferrograd_custom_op::{fused_silu, train_circle_classifier};
use ferrograd_engine::gradcheck::check_derivatives;
use ferrograd_engine::{DType, Result, Rng, Tensor};

fn main() -> Result<()> {
    let x = Tensor::randn(&[3, 4], 0.0, 1.5, DType::F64, &mut Rng::new(0))?;
    println!("order  worst rel err  worst err/tol  result");
    for (k, o) in check_derivatives(|t| fused_silu(&t[0]), &[x], 3, 0)?
        .iter()
        .enumerate()
    {
        let verdict = if o.passed() { "pass" } else { "FAIL" };
        println!(
            "{:>5}  {:>13.3e}  {:>13.3e}  {verdict}",
            k + 1,
            o.max_rel_error,
            o.worst_ratio
        );
    }
    let losses = train_circle_classifier(200, 3)?;
    for (step, loss) in losses.iter().enumerate().step_by(40) {
        println!("step {step:>3}: cross-entropy {loss:.4}");
    }
    println!("step 199: cross-entropy {:.4}", losses[199]);
    Ok(())
}

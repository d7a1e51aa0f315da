//! f'(x), f''(x) and f'''(x) by nesting `grad(.., create_graph = true)`, printed beside the
//! closed form. Run with `cargo run --example derivatives`.

use ferrograd::{grad, DType, Result, Tensor};

/// The first three derivatives of `f` at `x`, each by differentiating the last one again.
pub fn three_derivatives(f: impl Fn(&Tensor) -> Result<Tensor>, x: f64) -> Result<[f64; 3]> {
    let x = Tensor::scalar(x, DType::F64).requires_grad_();
    let y = f(&x)?;
    let d1 = grad(&[&y], &[&x], None, true)?.remove(0);
    let d2 = grad(&[&d1], &[&x], None, true)?.remove(0);
    let d3 = grad(&[&d2], &[&x], None, false)?.remove(0);
    Ok([d1.item()?, d2.item()?, d3.item()?])
}

/// f(x) = x³·eˣ, written with the engine's ops.
pub fn f(x: &Tensor) -> Result<Tensor> {
    x.powf(3.0)?.mul(&x.exp()?)
}

/// Its derivatives by hand: f' = eˣ(x³ + 3x²), f'' = eˣ(x³ + 6x² + 6x), f''' = eˣ(x³ + 9x² + 18x + 6).
pub fn closed_form(x: f64) -> [f64; 3] {
    let e = x.exp();
    [
        e * (x.powi(3) + 3.0 * x * x),
        e * (x.powi(3) + 6.0 * x * x + 6.0 * x),
        e * (x.powi(3) + 9.0 * x * x + 18.0 * x + 6.0),
    ]
}

/// Largest relative difference between engine and closed form over the printed points.
pub fn worst_relative_error(print: bool) -> Result<f64> {
    let mut worst: f64 = 0.0;
    if print {
        println!("f(x) = x^3 * exp(x)");
        println!(
            "{:>6} {:>5} {:>24} {:>24} {:>10}",
            "x", "order", "engine", "closed form", "rel. diff"
        );
    }
    for x in [-2.0, -0.5, 0.7, 1.5, 3.0] {
        let engine = three_derivatives(f, x)?;
        let exact = closed_form(x);
        for order in 0..3 {
            let rel = (engine[order] - exact[order]).abs() / exact[order].abs().max(1e-300);
            worst = worst.max(rel);
            if print {
                println!(
                    "{x:>6} {:>5} {:>24.16e} {:>24.16e} {rel:>10.1e}",
                    order + 1,
                    engine[order],
                    exact[order]
                );
            }
        }
    }
    Ok(worst)
}

#[allow(dead_code)] // also compiled into the test that checks it, where main is unused
fn main() -> Result<()> {
    let worst = worst_relative_error(true)?;
    println!("worst relative difference: {worst:.1e} (must be below 1e-10)");
    if worst >= 1e-10 {
        std::process::exit(1);
    }
    Ok(())
}

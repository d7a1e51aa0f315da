//! A few SGD steps on random data: forward, backward, update, and the tape freed with the loss.
//! Run with `cargo run --example training_loop`.

use ferrograd::engine::{live_nodes, no_grad, Conv2dParams, DType, Result, Rng, Tensor};

/// Trains a one-convolution classifier for `steps` steps; returns the losses.
pub fn train(steps: usize) -> Result<Vec<f64>> {
    let mut rng = Rng::new(0); // same seed, same numbers, on every machine
    let w = Tensor::randn(&[8, 1, 3, 3], 0.0, 0.3, DType::F32, &mut rng)?.requires_grad_();
    let x = Tensor::randn(&[16, 1, 28, 28], 0.0, 1.0, DType::F32, &mut rng)?;
    let labels: Vec<usize> = (0..16).map(|i| i % 8).collect();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let loss = x
            .conv2d(&w, None, Conv2dParams::default().padding(1))?
            .relu()?
            .global_avg_pool2d()? // [16, 8]
            .cross_entropy(&labels)?;
        loss.backward()?; // accumulates w.grad()
        let g = w.grad().expect("w requires grad");
        no_grad(|| w.assign(&w.sub(&g.mul_scalar(0.5)?)?))?;
        w.zero_grad();
        losses.push(loss.item()?);
    } // each step's `loss` is dropped here, and its tape with it
    Ok(losses)
}

#[allow(dead_code)] // also compiled into the test that runs it, where main is unused
fn main() -> Result<()> {
    let losses = train(20)?;
    println!(
        "loss: {:.4} -> {:.4}; live tape nodes after training: {}",
        losses[0],
        losses[losses.len() - 1],
        live_nodes()
    );
    Ok(())
}

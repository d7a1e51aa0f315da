//! Optimizers. Each keeps its per-parameter state beside the parameter and updates it in place
//! with one fused pass over the values (no tape, no temporaries).

use ferrograd_engine::{Error, Result, Tensor};
use rayon::prelude::*;

/// Adam (Kingma & Ba 2015) with bias correction, and AdamW's decoupled weight decay:
///
/// m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,  m̂ = m/(1 − β₁ᵗ),  v̂ = v/(1 − β₂ᵗ),
/// θ ← θ − lr·(m̂/(√v̂ + ε) + λθ)   (λ = `weight_decay`; 0 gives plain Adam).
pub struct Adam {
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    params: Vec<Tensor>,
    /// First and second moments, one pair per parameter, in f32 like the parameters.
    moments: Vec<(Vec<f32>, Vec<f32>)>,
    step: u64,
}

impl Adam {
    pub fn new(params: Vec<Tensor>, lr: f64) -> Adam {
        let moments = params
            .iter()
            .map(|p| (vec![0.0; p.numel()], vec![0.0; p.numel()]))
            .collect();
        Adam {
            lr,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            params,
            moments,
            step: 0,
        }
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update from the gradients accumulated on the parameters (skipping any without one),
    /// then clears them.
    pub fn step(&mut self) -> Result<()> {
        self.step += 1;
        let (b1, b2) = self.betas;
        let bias1 = 1.0 - b1.powi(self.step as i32);
        let bias2 = 1.0 - b2.powi(self.step as i32);
        let (lr, eps, wd) = (self.lr as f32, self.eps as f32, self.weight_decay as f32);
        let (b1, b2, bias1, bias2) = (b1 as f32, b2 as f32, bias1 as f32, bias2 as f32);
        for (p, (m, v)) in self.params.iter().zip(self.moments.iter_mut()) {
            let Some(g) = p.grad() else { continue };
            let g = g.to_vec_f32();
            if g.len() != m.len() {
                return Err(Error::shape(
                    "adam",
                    format!(
                        "gradient of {} values for a parameter of shape {:?}",
                        g.len(),
                        p.shape()
                    ),
                ));
            }
            p.update_values::<f32>(|theta| {
                theta
                    .par_iter_mut()
                    .zip(m.par_iter_mut())
                    .zip(v.par_iter_mut())
                    .zip(g.par_iter())
                    .with_min_len(4096)
                    .for_each(|(((t, m), v), &g)| {
                        *m = b1 * *m + (1.0 - b1) * g;
                        *v = b2 * *v + (1.0 - b2) * g * g;
                        let update = (*m / bias1) / ((*v / bias2).sqrt() + eps);
                        *t -= lr * (update + wd * *t);
                    });
            })?;
            p.zero_grad();
        }
        Ok(())
    }
}

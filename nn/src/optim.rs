//! Optimizers. Each keeps per-parameter state beside the parameter, on the parameter's
//! device, and updates in place through the engine's fused steps ([`sgd_step`],
//! [`adam_step`]: one pass over the values, no tape, no temporaries, on the CPU or the GPU),
//! and exports its state by parameter name so a checkpoint can resume a run exactly.

use ferrograd_engine::{adam_step, sgd_step, AdamStep, Device, Error, Result, Tensor};
use std::collections::BTreeMap;

/// An optimizer's state for a checkpoint: named tensors and scalar settings.
#[derive(Clone, Default)]
pub struct OptimState {
    /// The state's tensors (moments, momentum buffers), by checkpoint name.
    pub tensors: Vec<(String, Tensor)>,
    /// The state's scalars as strings (step counts).
    pub metadata: BTreeMap<String, String>,
}

/// What every optimizer offers the training loop.
pub trait Optimizer {
    /// One update from the gradients accumulated on the parameters; clears them.
    fn step(&mut self) -> Result<()>;
    /// Learning rate (schedules may change it between steps).
    fn set_lr(&mut self, lr: f64);
    /// Everything needed to continue exactly where this optimizer stands, named under `prefix`.
    fn state(&self, prefix: &str) -> OptimState;
    /// Restores [`Optimizer::state`]; missing or mis-shaped entries are errors.
    fn load_state(
        &mut self,
        prefix: &str,
        tensors: &BTreeMap<String, Tensor>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()>;
}

/// One per-parameter state buffer (a momentum, a moment): an engine tensor kept on the
/// parameter's device, so that a GPU step reads nothing back.
struct Slot(Tensor);

impl Slot {
    fn zeros_for(p: &Tensor) -> Slot {
        Slot(p.zeros_like())
    }
    /// Moves the slot to `p`'s device when the parameter was moved after the optimizer was
    /// built.
    fn follow(&mut self, p: &Tensor) -> Result<()> {
        let device = p.device();
        if self.0.device() != device {
            self.0 = self.0.to(device)?.detach();
        }
        Ok(())
    }
    fn to_tensor(&self) -> Tensor {
        self.0.detach()
    }
    /// Restores from a checkpoint's tensor (on any device, of any shape holding as many
    /// values), onto `p`'s device.
    fn restore(
        &mut self,
        op: &'static str,
        tensors: &BTreeMap<String, Tensor>,
        key: &str,
        p: &Tensor,
    ) -> Result<()> {
        let t = tensors.get(key).ok_or_else(|| {
            Error::argument(op, format!("checkpoint has no optimizer state '{key}'"))
        })?;
        let v = t.to_vec_f32();
        if v.len() != p.numel() {
            return Err(Error::shape(
                op,
                format!(
                    "'{key}' holds {} values, the parameter has {}",
                    v.len(),
                    p.numel()
                ),
            ));
        }
        self.0 = Tensor::from_vec(v, p.shape())?
            .to_dtype(p.dtype())?
            .to(p.device())?
            .detach();
        Ok(())
    }
}

/// The gradient of `p`, checked against it and brought to its device and dtype for the
/// engine's step: a GPU parameter needs its gradient on the GPU; a CPU parameter takes one
/// from anywhere, as its values.
fn grad_for(op: &'static str, name: &str, p: &Tensor) -> Result<Option<Tensor>> {
    let Some(g) = p.grad() else { return Ok(None) };
    if p.device() == Device::Gpu {
        if g.shape() != p.shape() || g.device() != Device::Gpu {
            return Err(Error::shape(
                op,
                format!(
                    "{name}: gradient {:?} on the {} for parameter {:?} on the GPU",
                    g.shape(),
                    g.device(),
                    p.shape()
                ),
            ));
        }
        return Ok(Some(g));
    }
    if g.shape() != p.shape() {
        return Err(Error::shape(
            op,
            format!(
                "{name}: gradient {:?} for parameter {:?}",
                g.shape(),
                p.shape()
            ),
        ));
    }
    let g = if g.device() == p.device() {
        g
    } else {
        g.to(p.device())?
    };
    Ok(Some(if g.dtype() == p.dtype() {
        g
    } else {
        g.to_dtype(p.dtype())?
    }))
}

/// A step count from a checkpoint: digits only, so that "-1" or "1.5" is an error naming the key
/// rather than a silent 0 (which would restart Adam's bias correction and break a resume).
/// At most 2^31 − 1: the bias corrections raise β to this power as an `i32`.
fn meta_steps(op: &'static str, metadata: &BTreeMap<String, String>, key: &str) -> Result<u64> {
    let text = metadata.get(key).ok_or_else(|| {
        Error::argument(op, format!("checkpoint metadata has no step count '{key}'"))
    })?;
    crate::checkpoint::parse_whole(text)
        .filter(|&n| n <= i32::MAX as usize)
        .map(|n| n as u64)
        .ok_or_else(|| {
            Error::argument(
                op,
                format!(
                    "checkpoint metadata '{key}' = '{text}' is not a step count (a whole number \
                     from 0 to {})",
                    i32::MAX
                ),
            )
        })
}
/// Stochastic gradient descent with momentum and (coupled) weight decay, as PyTorch's SGD:
/// g ← ∇θ + λθ;  b ← μb + g (b = g on the first step);  θ ← θ − lr·b.
pub struct Sgd {
    /// The learning rate.
    pub lr: f64,
    /// μ, the momentum (0: plain SGD).
    pub momentum: f64,
    /// λ, the coupled weight decay (added to the gradient as λθ).
    pub weight_decay: f64,
    params: Vec<(String, Tensor)>,
    buffers: Vec<Slot>,
    steps: u64,
}

impl Sgd {
    /// SGD over `params` (name, tensor), with zeroed momentum buffers on each parameter's device.
    pub fn new(params: Vec<(String, Tensor)>, lr: f64, momentum: f64, weight_decay: f64) -> Sgd {
        let buffers = params.iter().map(|(_, p)| Slot::zeros_for(p)).collect();
        Sgd {
            lr,
            momentum,
            weight_decay,
            params,
            buffers,
            steps: 0,
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self) -> Result<()> {
        let first = self.steps == 0;
        for ((name, p), buf) in self.params.iter().zip(self.buffers.iter_mut()) {
            buf.follow(p)?;
            let Some(g) = grad_for("sgd", name, p)? else {
                continue;
            };
            sgd_step(
                p,
                &buf.0,
                &g,
                self.lr,
                self.momentum,
                self.weight_decay,
                first,
            )?;
            p.zero_grad();
        }
        self.steps += 1;
        Ok(())
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn state(&self, prefix: &str) -> OptimState {
        let tensors = self
            .params
            .iter()
            .zip(&self.buffers)
            .map(|((name, _), b)| (format!("{prefix}momentum_buffer.{name}"), b.to_tensor()))
            .collect();
        let metadata = BTreeMap::from([(format!("{prefix}steps"), self.steps.to_string())]);
        OptimState { tensors, metadata }
    }
    fn load_state(
        &mut self,
        prefix: &str,
        tensors: &BTreeMap<String, Tensor>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        for ((name, p), b) in self.params.iter().zip(self.buffers.iter_mut()) {
            b.restore(
                "sgd",
                tensors,
                &format!("{prefix}momentum_buffer.{name}"),
                p,
            )?;
        }
        self.steps = meta_steps("sgd", metadata, &format!("{prefix}steps"))?;
        Ok(())
    }
}

/// Adam (Kingma & Ba 2015) with bias correction, and AdamW's decoupled weight decay
/// (Loshchilov & Hutter 2019):
///
/// m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,  m̂ = m/(1 − β₁ᵗ),  v̂ = v/(1 − β₂ᵗ),
/// θ ← θ − lr·(m̂/(√v̂ + ε) + λθ)   (λ = `weight_decay`; 0 gives plain Adam).
pub struct Adam {
    /// The learning rate.
    pub lr: f64,
    /// (β₁, β₂), the moments' decay rates.
    pub betas: (f64, f64),
    /// ε, added to √v̂ so the step stays finite.
    pub eps: f64,
    /// λ, the decoupled weight decay (0: plain Adam).
    pub weight_decay: f64,
    params: Vec<(String, Tensor)>,
    /// First and second moments per parameter, of the parameter's dtype and device.
    moments: Vec<(Slot, Slot)>,
    step: u64,
}

impl Adam {
    /// Adam over `params` (name, tensor) with PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8, no decay.
    pub fn new(params: Vec<(String, Tensor)>, lr: f64) -> Adam {
        let moments = params
            .iter()
            .map(|(_, p)| (Slot::zeros_for(p), Slot::zeros_for(p)))
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
    /// AdamW: Adam with decoupled weight decay λ.
    pub fn adamw(params: Vec<(String, Tensor)>, lr: f64, weight_decay: f64) -> Adam {
        Adam {
            weight_decay,
            ..Adam::new(params, lr)
        }
    }
    /// Sets (β₁, β₂) (builder style).
    pub fn with_betas(mut self, b1: f64, b2: f64) -> Adam {
        self.betas = (b1, b2);
        self
    }
    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }
}

impl Optimizer for Adam {
    fn step(&mut self) -> Result<()> {
        self.step += 1;
        let (beta1, beta2) = self.betas;
        // The bias corrections in f64, once per step; the kernels round them to the
        // parameter's precision.
        let h = AdamStep {
            lr: self.lr,
            beta1,
            beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            bias1: 1.0 - beta1.powi(self.step as i32),
            bias2: 1.0 - beta2.powi(self.step as i32),
        };
        for ((name, p), (m, v)) in self.params.iter().zip(self.moments.iter_mut()) {
            m.follow(p)?;
            v.follow(p)?;
            let Some(g) = grad_for("adam", name, p)? else {
                continue;
            };
            adam_step(p, &m.0, &v.0, &g, h)?;
            p.zero_grad();
        }
        Ok(())
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn state(&self, prefix: &str) -> OptimState {
        let mut tensors = Vec::new();
        for ((name, _), (m, v)) in self.params.iter().zip(&self.moments) {
            tensors.push((format!("{prefix}exp_avg.{name}"), m.to_tensor()));
            tensors.push((format!("{prefix}exp_avg_sq.{name}"), v.to_tensor()));
        }
        let metadata = BTreeMap::from([(format!("{prefix}step"), self.step.to_string())]);
        OptimState { tensors, metadata }
    }
    fn load_state(
        &mut self,
        prefix: &str,
        tensors: &BTreeMap<String, Tensor>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        for ((name, p), (m, v)) in self.params.iter().zip(self.moments.iter_mut()) {
            m.restore("adam", tensors, &format!("{prefix}exp_avg.{name}"), p)?;
            v.restore("adam", tensors, &format!("{prefix}exp_avg_sq.{name}"), p)?;
        }
        self.step = meta_steps("adam", metadata, &format!("{prefix}step"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrograd_engine::DType;

    fn quadratic_step(opt: &mut dyn Optimizer, p: &Tensor) {
        // L = Σ (θ − 3)², ∇ = 2(θ − 3)
        p.sub_scalar(3.0)
            .unwrap()
            .powf(2.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        opt.step().unwrap();
    }

    #[test]
    fn optimizers_minimise_a_quadratic() {
        let p = Tensor::zeros(&[4], DType::F32).unwrap().requires_grad_();
        let mut sgd = Sgd::new(vec![("p".into(), p.clone())], 0.1, 0.9, 0.0);
        for _ in 0..100 {
            quadratic_step(&mut sgd, &p);
        }
        assert!(
            p.to_vec_f64().iter().all(|v| (v - 3.0).abs() < 1e-2),
            "{:?}",
            p.to_vec_f64()
        );
        let q = Tensor::zeros(&[4], DType::F32).unwrap().requires_grad_();
        let mut adam = Adam::new(vec![("q".into(), q.clone())], 0.1);
        for _ in 0..300 {
            quadratic_step(&mut adam, &q);
        }
        assert!(
            q.to_vec_f64().iter().all(|v| (v - 3.0).abs() < 1e-2),
            "{:?}",
            q.to_vec_f64()
        );
    }

    #[test]
    fn adam_first_step_moves_each_weight_by_lr() {
        // With bias correction, step 1 is lr·g/|g| (up to ε) whatever the gradient's scale.
        let p = Tensor::from_vec(vec![1.0f32, -2.0], &[2])
            .unwrap()
            .requires_grad_();
        let mut adam = Adam::new(vec![("p".into(), p.clone())], 0.01);
        p.mul_scalar(100.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        adam.step().unwrap();
        let v = p.to_vec_f64();
        assert!(
            (v[0] - 0.99).abs() < 1e-6 && (v[1] + 2.01).abs() < 1e-6,
            "{v:?}"
        );
    }

    /// The loops nn ran by hand before it called the engine's fused steps, kept here to pin
    /// that the engine's kernels give the same bits (f32, hyper-parameters rounded from f64).
    #[test]
    fn engine_steps_match_the_reference_loops_bit_for_bit() {
        let init = [0.5f32, -1.25, 2.0, 0.0, -3.5];
        let grads = |t: usize| -> Vec<f32> {
            (0..init.len())
                .map(|i| ((i as f32 + 1.0) * 0.37 - t as f32 * 0.11).sin())
                .collect()
        };
        let feed = |p: &Tensor, g: &[f32]| {
            p.zero_grad();
            p.mul(&Tensor::from_vec(g.to_vec(), &[g.len()]).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
        };

        // SGD with momentum and weight decay.
        let (lr, mu, wd) = (0.05f64, 0.9f64, 0.01f64);
        let p = Tensor::from_vec(init.to_vec(), &[init.len()])
            .unwrap()
            .requires_grad_();
        let mut sgd = Sgd::new(vec![("p".into(), p.clone())], lr, mu, wd);
        let (mut theta, mut buf) = (init.to_vec(), vec![0.0f32; init.len()]);
        for t in 0..6 {
            let g = grads(t);
            feed(&p, &g);
            sgd.step().unwrap();
            let (lr, mu, wd, first) = (lr as f32, mu as f32, wd as f32, t == 0);
            for ((t, b), &g) in theta.iter_mut().zip(buf.iter_mut()).zip(&g) {
                let g = g + wd * *t;
                *b = if first || mu == 0.0 { g } else { mu * *b + g };
                *t -= lr * *b;
            }
            assert_eq!(p.to_vec_f32(), theta, "sgd step {t}");
        }
        assert_eq!(sgd.state("").tensors[0].1.to_vec_f32(), buf);

        // AdamW with bias corrections.
        let (lr, b1, b2, eps, wd) = (0.01f64, 0.8f64, 0.99f64, 1e-8f64, 0.05f64);
        let p = Tensor::from_vec(init.to_vec(), &[init.len()])
            .unwrap()
            .requires_grad_();
        let mut adam = Adam::adamw(vec![("p".into(), p.clone())], lr, wd).with_betas(b1, b2);
        let n = init.len();
        let (mut theta, mut m, mut v) = (init.to_vec(), vec![0.0f32; n], vec![0.0f32; n]);
        for t in 0..6 {
            let g = grads(t);
            feed(&p, &g);
            adam.step().unwrap();
            let step = t as i32 + 1;
            let bias1 = (1.0 - b1.powi(step)) as f32;
            let bias2 = (1.0 - b2.powi(step)) as f32;
            let (lr, eps, wd, b1, b2) = (lr as f32, eps as f32, wd as f32, b1 as f32, b2 as f32);
            for (((t, m), v), &g) in theta.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(&g) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                let update = (*m / bias1) / ((*v / bias2).sqrt() + eps);
                *t -= lr * (update + wd * *t);
            }
            assert_eq!(p.to_vec_f32(), theta, "adam step {t}");
        }
        let state = adam.state("o.");
        assert_eq!(state.tensors[0].0, "o.exp_avg.p");
        assert_eq!(state.tensors[0].1.to_vec_f32(), m);
        assert_eq!(state.tensors[1].0, "o.exp_avg_sq.p");
        assert_eq!(state.tensors[1].1.to_vec_f32(), v);
    }

    #[test]
    fn state_round_trip_resumes_exactly() {
        let run = |split: Option<usize>| {
            let p = Tensor::from_vec(vec![0.5f32, -1.0, 2.0], &[3])
                .unwrap()
                .requires_grad_();
            let mut adam = Adam::adamw(vec![("w".into(), p.clone())], 0.05, 0.01);
            for i in 0..10 {
                if Some(i) == split {
                    // Rebuild from the saved state, as --resume does.
                    let state = adam.state("optim.");
                    let tensors: BTreeMap<String, Tensor> = state.tensors.into_iter().collect();
                    adam = Adam::adamw(vec![("w".into(), p.clone())], 0.05, 0.01);
                    adam.load_state("optim.", &tensors, &state.metadata)
                        .unwrap();
                }
                quadratic_step(&mut adam, &p);
            }
            p.to_vec_f32()
        };
        assert_eq!(run(None), run(Some(4)));
    }
}

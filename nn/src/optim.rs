//! Optimizers. Each keeps per-parameter state beside the parameter, updates in place with one
//! fused pass over the values (no tape, no temporaries), and exports its state by parameter
//! name so a checkpoint can resume a run exactly.

use ferrograd_engine::{Device, Error, Result, Storage, Tensor};
use ferrograd_kernels::gpu::{optim as gpu_optim, GpuBuffer};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// An optimizer's state for a checkpoint: named tensors and scalar settings.
#[derive(Clone, Default)]
pub struct OptimState {
    pub tensors: Vec<(String, Tensor)>,
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

/// Elements per rayon task in the fused updates.
const CHUNK: usize = 1 << 14;

/// One per-parameter state buffer (a momentum, a moment), kept on the parameter's device so
/// that a GPU step reads nothing back.
enum Slot {
    Host(Vec<f32>),
    Gpu(Tensor),
}

impl Slot {
    fn zeros_for(p: &Tensor) -> Slot {
        match p.device() {
            Device::Cpu => Slot::Host(vec![0.0; p.numel()]),
            Device::Gpu => Slot::Gpu(Tensor::zeros_like(p)),
        }
    }
    /// Moves the slot to `device` when its parameter was moved after the optimizer was built.
    fn follow(&mut self, device: Device, shape: &[usize]) -> Result<()> {
        let moved = match (&*self, device) {
            (Slot::Host(v), Device::Gpu) => {
                Slot::Gpu(Tensor::from_vec(v.clone(), shape)?.to(Device::Gpu)?)
            }
            (Slot::Gpu(t), Device::Cpu) => Slot::Host(t.to_vec_f32()),
            _ => return Ok(()),
        };
        *self = moved;
        Ok(())
    }
    fn host_mut(&mut self) -> &mut [f32] {
        match self {
            Slot::Host(v) => v,
            Slot::Gpu(_) => unreachable!("slots follow their parameter's device"),
        }
    }
    fn to_tensor(&self, shape: &[usize]) -> Tensor {
        match self {
            Slot::Host(v) => {
                Tensor::from_vec(v.clone(), shape).expect("slot matches its parameter")
            }
            Slot::Gpu(t) => t.detach(),
        }
    }
    /// Restores from a checkpoint's tensor (on any device).
    fn restore(
        &mut self,
        op: &'static str,
        tensors: &BTreeMap<String, Tensor>,
        key: &str,
    ) -> Result<()> {
        match self {
            Slot::Host(v) => restore(op, tensors, key, v),
            Slot::Gpu(t) => {
                let mut host = vec![0.0; t.numel()];
                restore(op, tensors, key, &mut host)?;
                *t = Tensor::from_vec(host, t.shape())?.to(Device::Gpu)?;
                Ok(())
            }
        }
    }
}

/// The GPU buffer of a tensor known to be on the GPU.
fn gpu_buffer<R>(t: &Tensor, f: impl FnOnce(&GpuBuffer) -> R) -> R {
    match &*t.storage() {
        Storage::Gpu(b) => f(b),
        _ => unreachable!("checked to be on the GPU"),
    }
}

/// The gradient of a GPU parameter, checked like [`grad_values`], left on the GPU.
fn gpu_grad(op: &'static str, name: &str, p: &Tensor) -> Result<Option<Tensor>> {
    let Some(g) = p.grad() else { return Ok(None) };
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
    Ok(Some(g))
}

fn grad_values(op: &'static str, name: &str, p: &Tensor) -> Result<Option<Vec<f32>>> {
    let Some(g) = p.grad() else { return Ok(None) };
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
    Ok(Some(g.to_vec_f32()))
}

fn restore(
    op: &'static str,
    tensors: &BTreeMap<String, Tensor>,
    key: &str,
    into: &mut [f32],
) -> Result<()> {
    let t = tensors
        .get(key)
        .ok_or_else(|| Error::argument(op, format!("checkpoint has no optimizer state '{key}'")))?;
    let v = t.to_vec_f32();
    if v.len() != into.len() {
        return Err(Error::shape(
            op,
            format!(
                "'{key}' holds {} values, the parameter has {}",
                v.len(),
                into.len()
            ),
        ));
    }
    into.copy_from_slice(&v);
    Ok(())
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
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    params: Vec<(String, Tensor)>,
    buffers: Vec<Slot>,
    steps: u64,
}

impl Sgd {
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
        let (lr, mu, wd, first) = (
            self.lr as f32,
            self.momentum as f32,
            self.weight_decay as f32,
            self.steps == 0,
        );
        for ((name, p), buf) in self.params.iter().zip(self.buffers.iter_mut()) {
            buf.follow(p.device(), p.shape())?;
            if let Slot::Gpu(b) = buf {
                let Some(g) = gpu_grad("sgd", name, p)? else {
                    continue;
                };
                p.update_on_gpu(|theta| {
                    b.update_on_gpu(|b| {
                        gpu_buffer(&g, |g| gpu_optim::sgd_step(theta, b, g, lr, mu, wd, first))
                    })
                })??;
                p.zero_grad();
                continue;
            }
            let Some(g) = grad_values("sgd", name, p)? else {
                continue;
            };
            let buf = buf.host_mut();
            p.update_values::<f32>(|theta| {
                theta
                    .par_chunks_mut(CHUNK)
                    .zip(buf.par_chunks_mut(CHUNK))
                    .zip(g.par_chunks(CHUNK))
                    .for_each(|((t, b), g)| {
                        for ((t, b), &g) in t.iter_mut().zip(b.iter_mut()).zip(g) {
                            let g = g + wd * *t;
                            *b = if first || mu == 0.0 { g } else { mu * *b + g };
                            *t -= lr * *b;
                        }
                    })
            })?;
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
            .map(|((name, p), b)| {
                (
                    format!("{prefix}momentum_buffer.{name}"),
                    b.to_tensor(p.shape()),
                )
            })
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
        for ((name, _), b) in self.params.iter().zip(self.buffers.iter_mut()) {
            b.restore("sgd", tensors, &format!("{prefix}momentum_buffer.{name}"))?;
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
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    params: Vec<(String, Tensor)>,
    /// First and second moments per parameter, in f32 like the parameters.
    moments: Vec<(Slot, Slot)>,
    step: u64,
}

impl Adam {
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
        let (b1, b2) = self.betas;
        let bias1 = (1.0 - b1.powi(self.step as i32)) as f32;
        let bias2 = (1.0 - b2.powi(self.step as i32)) as f32;
        let (lr, eps, wd, b1, b2) = (
            self.lr as f32,
            self.eps as f32,
            self.weight_decay as f32,
            b1 as f32,
            b2 as f32,
        );
        for ((name, p), (m, v)) in self.params.iter().zip(self.moments.iter_mut()) {
            m.follow(p.device(), p.shape())?;
            v.follow(p.device(), p.shape())?;
            if let (Slot::Gpu(m), Slot::Gpu(v)) = (&*m, &*v) {
                let Some(g) = gpu_grad("adam", name, p)? else {
                    continue;
                };
                p.update_on_gpu(|theta| {
                    m.update_on_gpu(|m| {
                        v.update_on_gpu(|v| {
                            gpu_buffer(&g, |g| {
                                gpu_optim::adam_step(
                                    theta, m, v, g, lr, b1, b2, eps, wd, bias1, bias2,
                                )
                            })
                        })
                    })
                })???;
                p.zero_grad();
                continue;
            }
            let Some(g) = grad_values("adam", name, p)? else {
                continue;
            };
            let (m, v) = (m.host_mut(), v.host_mut());
            p.update_values::<f32>(|theta| {
                theta
                    .par_chunks_mut(CHUNK)
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .zip(g.par_chunks(CHUNK))
                    .for_each(|(((t, m), v), g)| {
                        for (((t, m), v), &g) in
                            t.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g)
                        {
                            *m = b1 * *m + (1.0 - b1) * g;
                            *v = b2 * *v + (1.0 - b2) * g * g;
                            let update = (*m / bias1) / ((*v / bias2).sqrt() + eps);
                            *t -= lr * (update + wd * *t);
                        }
                    })
            })?;
            p.zero_grad();
        }
        Ok(())
    }
    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }
    fn state(&self, prefix: &str) -> OptimState {
        let mut tensors = Vec::new();
        for ((name, p), (m, v)) in self.params.iter().zip(&self.moments) {
            tensors.push((format!("{prefix}exp_avg.{name}"), m.to_tensor(p.shape())));
            tensors.push((format!("{prefix}exp_avg_sq.{name}"), v.to_tensor(p.shape())));
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
        for ((name, _), (m, v)) in self.params.iter().zip(self.moments.iter_mut()) {
            m.restore("adam", tensors, &format!("{prefix}exp_avg.{name}"))?;
            v.restore("adam", tensors, &format!("{prefix}exp_avg_sq.{name}"))?;
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

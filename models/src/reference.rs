//! The `fmnist_cnn` network of the reference workloads (docs/ARCHITECTURE.md), shared by `cargo bench` and
//! the tests that hold its training step to one read-back on the GPU.

use ferrograd_engine::{Conv2dParams, DType, Device, Result, Rng, Tensor};

/// Conv(1→32, 3x3, pad 1)-ReLU-MaxPool2 → Conv(32→64, 3x3, pad 1)-ReLU-MaxPool2 → Flatten →
/// Linear(3136→128)-ReLU → Linear(128→10), He-initialised, biases zero.
pub struct FmnistCnn {
    pub conv1: (Tensor, Tensor),
    pub conv2: (Tensor, Tensor),
    pub fc1: (Tensor, Tensor),
    pub fc2: (Tensor, Tensor),
}

impl FmnistCnn {
    pub fn new(rng: &mut Rng) -> Result<FmnistCnn> {
        let mut p = |shape: &[usize], fan_in: usize| -> Result<Tensor> {
            Ok(
                Tensor::randn(shape, 0.0, (2.0 / fan_in as f64).sqrt(), DType::F32, rng)?
                    .requires_grad_(),
            )
        };
        let zeros =
            |n: usize| -> Result<Tensor> { Ok(Tensor::zeros(&[n], DType::F32)?.requires_grad_()) };
        Ok(FmnistCnn {
            conv1: (p(&[32, 1, 3, 3], 9)?, zeros(32)?),
            conv2: (p(&[64, 32, 3, 3], 288)?, zeros(64)?),
            fc1: (p(&[3136, 128], 3136)?, zeros(128)?),
            fc2: (p(&[128, 10], 128)?, zeros(10)?),
        })
    }

    pub fn params(&self) -> Vec<(String, Tensor)> {
        let layers = [
            ("conv1", &self.conv1),
            ("conv2", &self.conv2),
            ("fc1", &self.fc1),
            ("fc2", &self.fc2),
        ];
        layers
            .iter()
            .flat_map(|(n, (w, b))| {
                [
                    (format!("{n}.weight"), w.clone()),
                    (format!("{n}.bias"), b.clone()),
                ]
            })
            .collect()
    }

    /// Moves every parameter to `device` (before building the optimizer, or after: the
    /// optimizers' state follows its parameter).
    pub fn move_to(&self, device: Device) -> Result<()> {
        self.params()
            .iter()
            .try_for_each(|(_, p)| p.move_in_place(device))
    }

    /// Logits, and the second ReLU's output (the hvp workload differentiates with respect to it).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let pad1 = Conv2dParams::default().padding(1);
        let h = x
            .conv2d(&self.conv1.0, Some(&self.conv1.1), pad1)?
            .relu()?
            .max_pool2d(2, 2, 0)?;
        let a2 = h.conv2d(&self.conv2.0, Some(&self.conv2.1), pad1)?.relu()?;
        let h = a2.max_pool2d(2, 2, 0)?.flatten(1)?;
        let h = h.matmul(&self.fc1.0)?.add(&self.fc1.1)?.relu()?;
        Ok((h.matmul(&self.fc2.0)?.add(&self.fc2.1)?, a2))
    }

    /// One training step: cross-entropy, backward, `opt.step()`. Returns the loss as a scalar
    /// tensor on the model's device; reading it (`item`) is the step's one read-back.
    pub fn train_step(
        &self,
        opt: &mut dyn ferrograd_nn::optim::Optimizer,
        x: &Tensor,
        labels: &[usize],
    ) -> Result<Tensor> {
        let loss = self.forward(x)?.0.cross_entropy(labels)?;
        loss.backward()?;
        opt.step()?;
        Ok(loss.detach())
    }
}

//! The four generative models of the course's first part, behind one interface that the
//! training loop drives. Each model's `train_step` is its cost function and its update rule,
//! written so the code reads beside the equation in its doc comment.
//!
//! Shared pieces: a convolutional encoder 28x28 → 7x7x64 → vector, and its mirror, a decoder
//! vector → 7x7x64 → 28x28 logits (the sigmoid is applied where probabilities are needed, so
//! losses can use the stable logit forms).

use ferrograd_engine::{
    no_grad, Conv2dParams, ConvTranspose2dParams, DType, Device, Error, Result, Rng, Tensor,
};
use ferrograd_nn::loss;
use ferrograd_nn::nn::{
    self, Activation, Conv2d, ConvTranspose2d, Ctx, Flatten, Init, Linear, Module, Reshape,
    Sequential,
};
use ferrograd_nn::optim::{Adam, Optimizer};
use std::collections::BTreeMap;

/// Pixels of a Fashion-MNIST image.
pub const PIXELS: usize = 28 * 28;

/// Encoder: Conv(1→32, 4, s2, p1)-ReLU → Conv(32→64, 4, s2, p1)-ReLU → Flatten → Linear(3136→`outputs`).
pub fn conv_encoder(
    outputs: usize,
    activation: Activation,
    init: Init,
    rng: &mut Rng,
) -> Result<Sequential> {
    let down = Conv2dParams::default().stride(2).padding(1);
    Ok(Sequential::new()
        .layer(Conv2d::with_init(1, 32, 4, down, true, init, rng)?)
        .layer(activation)
        .layer(Conv2d::with_init(32, 64, 4, down, true, init, rng)?)
        .layer(activation)
        .layer(Flatten)
        .layer(Linear::with_init(64 * 7 * 7, outputs, true, init, rng)?))
}

/// Decoder: Linear(`inputs`→3136)-ReLU → [64, 7, 7] → ConvT(64→32, 4, s2, p1)-ReLU →
/// ConvT(32→1, 4, s2, p1): logits of a 28x28 image.
pub fn conv_decoder(inputs: usize, init: Init, rng: &mut Rng) -> Result<Sequential> {
    let up = ConvTranspose2dParams::default().stride(2).padding(1);
    Ok(Sequential::new()
        .layer(Linear::with_init(inputs, 64 * 7 * 7, true, init, rng)?)
        .layer(Activation::Relu)
        .layer(Reshape(vec![64, 7, 7]))
        .layer(ConvTranspose2d::with_init(64, 32, 4, up, true, init, rng)?)
        .layer(Activation::Relu)
        .layer(ConvTranspose2d::with_init(32, 1, 4, up, true, init, rng)?))
}

/// Weights (not biases, not batch-norm scales) of a module: what λ‖W‖²_F penalises.
pub fn weights_of(m: &dyn Module) -> Vec<Tensor> {
    nn::params_of(m, "")
        .into_iter()
        .filter(|(n, t)| n.ends_with("weight") && t.rank() >= 2)
        .map(|(_, t)| t)
        .collect()
}

/// Losses of one batch by name ("loss" is the one optimised; others are its parts).
pub type Losses = Vec<(&'static str, f64)>;

/// What the training loop needs from a model: the four generative models and the classifier.
pub trait Model {
    /// "ae", "vae", "gan" or "aae".
    fn kind(&self) -> &'static str;
    /// One optimisation step on a batch x ∈ [0, 1]^{N×1×28×28} with its class labels (which
    /// only a classifier uses).
    fn train_step(&mut self, x: &Tensor, labels: &[usize], ctx: &mut Ctx) -> Result<Losses>;
    /// The same losses on a batch, without training (evaluation mode, no tape).
    fn eval_losses(&self, x: &Tensor, labels: &[usize], rng: &mut Rng) -> Result<Losses>;
    /// Re-estimates batch-norm statistics from `split` with the current weights, for models
    /// whose evaluation depends on them (see [`crate::classifier::Classifier`]).
    fn recalibrate(&self, _split: &crate::data::Split, _rng: &mut Rng) -> Result<()> {
        Ok(())
    }
    /// Predicted classes, for models that classify.
    fn predict(&self, _x: &Tensor) -> Option<Result<Vec<usize>>> {
        None
    }
    /// x ↦ reconstruction in [0, 1], for models with an encoder.
    fn reconstruct(&self, _x: &Tensor) -> Option<Result<Tensor>> {
        None
    }
    /// `n` images decoded from samples of the prior, for models that generate.
    fn sample(&self, _n: usize, _rng: &mut Rng) -> Option<Result<Tensor>> {
        None
    }
    /// Decodes (1 − t)·E(a) + t·E(b) for `steps` values of t in [0, 1], for models with a latent code.
    fn interpolate(&self, _a: &Tensor, _b: &Tensor, _steps: usize) -> Option<Result<Tensor>> {
        None
    }
    /// The model as a VAE, for the figures only a VAE has (its likelihood bounds).
    fn as_vae(&self) -> Option<&Vae> {
        None
    }
    /// The model's modules, each with the name prefix its state is saved under.
    fn modules(&self) -> Vec<(&'static str, &dyn Module)>;
    /// The model's optimizers, likewise named.
    fn optimizers(&self) -> Vec<(&'static str, &dyn Optimizer)>;
    /// The same optimizers, mutable (to restore their state).
    fn optimizers_mut(&mut self) -> Vec<(&'static str, &mut dyn Optimizer)>;
    /// Where the model's weights are (that of its first parameter).
    fn device(&self) -> Device {
        self.modules()
            .iter()
            .find_map(|(_, m)| nn::params_of(*m, "").first().map(|(_, p)| p.device()))
            .unwrap_or(Device::Cpu)
    }
    /// Moves every parameter and buffer to `device`; optimizer state follows on its next step.
    fn move_to(&self, device: Device) -> Result<()> {
        for (_, m) in self.modules() {
            nn::move_module(m, device)?;
        }
        Ok(())
    }
    /// Weights, buffers and optimizer state, by name.
    fn state(&self) -> (Vec<(String, Tensor)>, BTreeMap<String, String>) {
        collect_state(&self.modules(), &self.optimizers())
    }
    /// Restores [`Model::state`]: the modules first, then the optimizers.
    fn load_state(
        &mut self,
        tensors: &BTreeMap<String, Tensor>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        for (prefix, m) in self.modules() {
            load_module(m, prefix, tensors)?;
        }
        for (prefix, o) in self.optimizers_mut() {
            o.load_state(prefix, tensors, metadata)?;
        }
        Ok(())
    }
}

/// Copies saved values into a module's parameters and buffers (shapes must match).
pub fn load_module(m: &dyn Module, prefix: &str, tensors: &BTreeMap<String, Tensor>) -> Result<()> {
    for (name, t) in nn::state_of(m, prefix) {
        let saved = tensors
            .get(&name)
            .ok_or_else(|| Error::argument("load", format!("checkpoint has no tensor '{name}'")))?;
        if saved.shape() != t.shape() {
            return Err(Error::shape(
                "load",
                format!(
                    "'{name}' is {:?} in the checkpoint but {:?} in the model",
                    saved.shape(),
                    t.shape()
                ),
            ));
        }
        t.assign(&saved.to_dtype(t.dtype())?.to(t.device())?)?;
    }
    Ok(())
}

/// Module state and optimizer state gathered for a checkpoint.
pub fn collect_state(
    modules: &[(&str, &dyn Module)],
    optimizers: &[(&str, &dyn Optimizer)],
) -> (Vec<(String, Tensor)>, BTreeMap<String, String>) {
    let mut tensors = Vec::new();
    let mut metadata = BTreeMap::new();
    for (prefix, m) in modules {
        tensors.extend(nn::state_of(*m, prefix));
    }
    for (prefix, o) in optimizers {
        let s = o.state(prefix);
        tensors.extend(s.tensors);
        metadata.extend(s.metadata);
    }
    (tensors, metadata)
}

fn batch_size(x: &Tensor) -> Result<usize> {
    x.dim(0)
}

/// Σ over pixels of BCE(σ(logits), x), averaged over the batch: −(1/N) Σₙ Σᵢ [xᵢ log pᵢ + (1 − xᵢ) log(1 − pᵢ)], in nats per image.
pub fn bce_per_image(logits: &Tensor, x: &Tensor) -> Result<Tensor> {
    loss::bce_with_logits(logits, x)?.mul_scalar(PIXELS as f64)
}

// ---- 1. Regularised autoencoder ----------------------------------------------------------------

/// Regularised autoencoder: min over f = D∘E of  E_x[‖x − f(x)‖²] + λ‖W‖²_F  (mean squared error
/// per pixel; the penalty sums the squared weights of every layer).
pub struct Autoencoder {
    pub encoder: Sequential,
    pub decoder: Sequential,
    pub lambda: f64,
    opt: Adam,
}

impl Autoencoder {
    pub fn new(latent: usize, lambda: f64, lr: f64, rng: &mut Rng) -> Result<Autoencoder> {
        let encoder = conv_encoder(latent, Activation::Relu, Init::PytorchDefault, rng)?;
        let decoder = conv_decoder(latent, Init::PytorchDefault, rng)?;
        let mut params = nn::params_of(&encoder, "encoder.");
        params.extend(nn::params_of(&decoder, "decoder."));
        Ok(Autoencoder {
            encoder,
            decoder,
            lambda,
            opt: Adam::new(params, lr),
        })
    }

    fn losses(&self, x: &Tensor, ctx: &mut Ctx) -> Result<(Tensor, Losses)> {
        let recon = self
            .decoder
            .forward(&self.encoder.forward(x, ctx)?, ctx)?
            .sigmoid()?;
        let mse = loss::mse(&recon, x)?;
        let weights = [weights_of(&self.encoder), weights_of(&self.decoder)].concat();
        let penalty = loss::frobenius_penalty(&weights.iter().collect::<Vec<_>>())?;
        let total = mse.add(&penalty.mul_scalar(self.lambda)?)?;
        let parts = vec![
            ("loss", total.item()?),
            ("mse", mse.item()?),
            ("weight_norm_sq", penalty.item()?),
        ];
        Ok((total, parts))
    }
}

impl Model for Autoencoder {
    fn kind(&self) -> &'static str {
        "ae"
    }
    fn train_step(&mut self, x: &Tensor, _labels: &[usize], ctx: &mut Ctx) -> Result<Losses> {
        let (total, parts) = self.losses(x, ctx)?;
        total.backward()?;
        self.opt.step()?;
        Ok(parts)
    }
    fn eval_losses(&self, x: &Tensor, _labels: &[usize], _rng: &mut Rng) -> Result<Losses> {
        no_grad(|| self.losses(x, &mut Ctx::eval()).map(|(_, p)| p))
    }
    fn reconstruct(&self, x: &Tensor) -> Option<Result<Tensor>> {
        Some(no_grad(|| {
            let ctx = &mut Ctx::eval();
            self.decoder
                .forward(&self.encoder.forward(x, ctx)?, ctx)?
                .sigmoid()
        }))
    }
    fn interpolate(&self, a: &Tensor, b: &Tensor, steps: usize) -> Option<Result<Tensor>> {
        Some(no_grad(|| {
            let ctx = &mut Ctx::eval();
            interpolate_codes(
                &self.encoder.forward(a, ctx)?,
                &self.encoder.forward(b, ctx)?,
                steps,
                |h| self.decoder.forward(h, &mut Ctx::eval())?.sigmoid(),
            )
        }))
    }
    fn modules(&self) -> Vec<(&'static str, &dyn Module)> {
        vec![
            ("encoder.", &self.encoder as &dyn Module),
            ("decoder.", &self.decoder),
        ]
    }
    fn optimizers(&self) -> Vec<(&'static str, &dyn Optimizer)> {
        vec![("optim.", &self.opt as &dyn Optimizer)]
    }
    fn optimizers_mut(&mut self) -> Vec<(&'static str, &mut dyn Optimizer)> {
        vec![("optim.", &mut self.opt as &mut dyn Optimizer)]
    }
}

/// Decodes (1 − t)·hₐ + t·h_b for t = 0, 1/(steps−1), …, 1; a and b are single codes [1, d].
fn interpolate_codes(
    ha: &Tensor,
    hb: &Tensor,
    steps: usize,
    decode: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let steps = steps.max(2);
    let codes = (0..steps)
        .map(|i| {
            let t = i as f64 / (steps - 1) as f64;
            ha.mul_scalar(1.0 - t)?.add(&hb.mul_scalar(t)?)
        })
        .collect::<Result<Vec<_>>>()?;
    decode(&Tensor::concat(&codes, 0)?)
}

// ---- 2. Variational autoencoder ----------------------------------------------------------------

/// Variational autoencoder (Kingma & Welling 2014). The encoder gives μ and log σ²; the code is
/// z = μ + σ·ε with ε ~ N(0, I) (the reparameterisation, so gradients flow through μ and σ);
/// the loss per image is
///
///   −E_q[log p(x|z)] + λ·KL(N(μ, σ²) ‖ N(0, I)),
///
/// the reconstruction term a Bernoulli likelihood (BCE summed over pixels). λ = 1 is the negative
/// ELBO; other values give a β-VAE.
pub struct Vae {
    pub encoder: Sequential,
    pub decoder: Sequential,
    pub latent: usize,
    pub lambda: f64,
    opt: Adam,
}

impl Vae {
    pub fn new(latent: usize, lambda: f64, lr: f64, rng: &mut Rng) -> Result<Vae> {
        let encoder = conv_encoder(2 * latent, Activation::Relu, Init::PytorchDefault, rng)?;
        let decoder = conv_decoder(latent, Init::PytorchDefault, rng)?;
        let mut params = nn::params_of(&encoder, "encoder.");
        params.extend(nn::params_of(&decoder, "decoder."));
        Ok(Vae {
            encoder,
            decoder,
            latent,
            lambda,
            opt: Adam::new(params, lr),
        })
    }

    /// μ and log σ², each [N, latent].
    pub fn encode(&self, x: &Tensor, ctx: &mut Ctx) -> Result<(Tensor, Tensor)> {
        let h = self.encoder.forward(x, ctx)?;
        Ok((
            h.narrow(1, 0, self.latent)?,
            h.narrow(1, self.latent, self.latent)?,
        ))
    }

    /// (loss, reconstruction term, KL), per image, for one draw of ε.
    fn objective(&self, x: &Tensor, ctx: &mut Ctx) -> Result<(Tensor, Tensor, Tensor)> {
        let (mu, log_var) = self.encode(x, ctx)?;
        let eps = Tensor::randn(mu.shape(), 0.0, 1.0, mu.dtype(), &mut ctx.rng)?.to(mu.device())?;
        let z = mu.add(&log_var.mul_scalar(0.5)?.exp()?.mul(&eps)?)?;
        let logits = self.decoder.forward(&z, ctx)?;
        let recon = bce_per_image(&logits, x)?;
        let kl = loss::kl_to_standard_normal(&mu, &log_var)?;
        Ok((recon.add(&kl.mul_scalar(self.lambda)?)?, recon, kl))
    }

    /// The negative ELBO in nats per image (BCE summed over pixels + KL, one sample of z), whatever λ.
    pub fn negative_elbo(&self, x: &Tensor, rng: &mut Rng) -> Result<f64> {
        no_grad(|| {
            let mut ctx = Ctx {
                training: false,
                rng: rng.fork(),
            };
            let (_, recon, kl) = self.objective(x, &mut ctx)?;
            Ok(recon.item()? + kl.item()?)
        })
    }
}

/// How test images enter the Bernoulli likelihood p(x|z) = Πᵢ σ(lᵢ)^xᵢ (1 − σ(lᵢ))^(1−xᵢ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LikelihoodData {
    /// The pixel intensities in [0, 1] as they are: the likelihood the VAE was trained on, so
    /// the bounds tighten the same ELBO that training reports. Not a normalised density over
    /// [0, 1]^784, so not comparable with binarised-MNIST figures.
    Intensities,
    /// Each pixel set to 1 with probability equal to its intensity (dynamic binarisation) by a
    /// generator seeded with `seed`, once per image: a probability mass over {0, 1}^784, the
    /// protocol of most published likelihoods.
    Binarized { seed: u64 },
}

impl LikelihoodData {
    /// The images the likelihood is evaluated at. `first_index` is the first image's index in
    /// the test set, so that a binarised image is the same whatever batch it falls in.
    pub fn prepare(self, x: &Tensor, first_index: usize) -> Result<Tensor> {
        match self {
            LikelihoodData::Intensities => Ok(x.clone()),
            LikelihoodData::Binarized { seed } => {
                let values = x.to_vec_f64();
                let per_image = values.len() / batch_size(x)?.max(1);
                let mut out = Vec::with_capacity(values.len());
                for (i, image) in values.chunks(per_image.max(1)).enumerate() {
                    let mut rng = Rng::new(
                        seed ^ ((first_index + i) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    );
                    out.extend(
                        image
                            .iter()
                            .map(|&p| if rng.uniform() < p { 1.0 } else { 0.0 }),
                    );
                }
                Tensor::from_f64s(&out, x.shape(), x.dtype())?.to(x.device())
            }
        }
    }

    pub fn describe(self) -> String {
        match self {
            LikelihoodData::Intensities => "pixel intensities as Bernoulli targets".into(),
            LikelihoodData::Binarized { seed } => format!("dynamic binarisation, seed {seed}"),
        }
    }
}

/// Rows of decoder input the importance-sampling loop decodes at once.
const IWAE_ROWS: usize = 4096;

impl Vae {
    /// Log importance weights log wₖ = log p(x|zₖ) + log p(zₖ) − log q(zₖ|x) with
    /// zₖ = μ(x) + σ(x)·εₖ, for given noise eps [N, K, latent]: per image, K values (f64).
    /// The 2π terms of p(z) and q(z|x) cancel: log p(z) − log q(z|x) = ½Σ(εⱼ² + log σⱼ² − zⱼ²).
    pub fn log_importance_weights_with(
        &self,
        x: &Tensor,
        eps: &[f64],
        k: usize,
    ) -> Result<Vec<Vec<f64>>> {
        no_grad(|| {
            let n = batch_size(x)?;
            let d = self.latent;
            if eps.len() != n * k * d {
                return Err(Error::shape(
                    "log_importance_weights_with",
                    format!(
                        "{} noise values for {n} images × {k} samples × {d}",
                        eps.len()
                    ),
                ));
            }
            let (mu, log_var) = self.encode(x, &mut Ctx::eval())?;
            let (mu, log_var) = (mu.to_vec_f64(), log_var.to_vec_f64());
            let pixels = x.numel() / n.max(1);
            let flat_x = x.reshape(&[n, 1, pixels])?;
            let mut weights = vec![Vec::with_capacity(k); n];
            let chunk = (IWAE_ROWS / n.max(1)).clamp(1, k.max(1));
            for start in (0..k).step_by(chunk) {
                let s = chunk.min(k - start);
                let mut z = Vec::with_capacity(n * s * d);
                let mut prior_over_posterior = Vec::with_capacity(n * s);
                for i in 0..n {
                    for j in start..start + s {
                        let e = &eps[(i * k + j) * d..(i * k + j + 1) * d];
                        let mut log_ratio = 0.0;
                        for c in 0..d {
                            let lv = log_var[i * d + c];
                            let zc = mu[i * d + c] + (0.5 * lv).exp() * e[c];
                            log_ratio += 0.5 * (e[c] * e[c] + lv - zc * zc);
                            z.push(zc);
                        }
                        prior_over_posterior.push(log_ratio);
                    }
                }
                let z = Tensor::from_f64s(&z, &[n * s, d], x.dtype())?.to(x.device())?;
                let logits = self
                    .decoder
                    .forward(&z, &mut Ctx::eval())?
                    .reshape(&[n, s, pixels])?;
                // log p(x|z) = Σᵢ xᵢ·lᵢ − softplus(lᵢ), the Bernoulli log-likelihood in logits.
                let log_likelihood = logits
                    .mul(&flat_x)?
                    .sub(&logits.softplus()?)?
                    .sum(&[2], false)?
                    .to_vec_f64();
                for i in 0..n {
                    for j in 0..s {
                        weights[i]
                            .push(log_likelihood[i * s + j] + prior_over_posterior[i * s + j]);
                    }
                }
            }
            Ok(weights)
        })
    }

    /// The negative ELBO of each image, in nats: −log p(x|z) for one draw z ~ q(z|x), plus the
    /// analytic KL(q(z|x) ‖ N(0, I)) = ½Σⱼ(μⱼ² + σⱼ² − 1 − log σⱼ²). Its batch mean is
    /// [`Vae::negative_elbo`].
    pub fn negative_elbo_per_image(&self, x: &Tensor, rng: &mut Rng) -> Result<Vec<f64>> {
        no_grad(|| {
            let n = batch_size(x)?;
            let ctx = &mut Ctx::eval();
            let (mu, log_var) = self.encode(x, ctx)?;
            let eps = Tensor::randn(mu.shape(), 0.0, 1.0, mu.dtype(), rng)?.to(mu.device())?;
            let z = mu.add(&log_var.mul_scalar(0.5)?.exp()?.mul(&eps)?)?;
            let logits = self
                .decoder
                .forward(&z, ctx)?
                .reshape(&[n, x.numel() / n.max(1)])?;
            let flat_x = x.reshape(&[n, x.numel() / n.max(1)])?;
            let reconstruction = logits
                .softplus()?
                .sub(&logits.mul(&flat_x)?)?
                .sum(&[1], false)?
                .to_vec_f64();
            let kl = mu
                .mul(&mu)?
                .add(&log_var.exp()?)?
                .sub(&log_var)?
                .add_scalar(-1.0)?
                .sum(&[1], false)?
                .mul_scalar(0.5)?
                .to_vec_f64();
            Ok(reconstruction.iter().zip(&kl).map(|(r, k)| r + k).collect())
        })
    }

    /// [`Vae::log_importance_weights_with`] for k fresh draws of ε ~ N(0, I) per image.
    pub fn log_importance_weights(
        &self,
        x: &Tensor,
        k: usize,
        rng: &mut Rng,
    ) -> Result<Vec<Vec<f64>>> {
        let n = batch_size(x)?;
        let eps: Vec<f64> = (0..n * k * self.latent).map(|_| rng.normal()).collect();
        self.log_importance_weights_with(x, &eps, k)
    }
}

/// The importance-weighted bound (Burda et al. 2016) from one image's log weights, using the
/// first k: log (1/k) Σₖ wₖ, by log-sum-exp. k = 1 is the one-sample ELBO estimator; the
/// bound's expectation rises with k toward log p(x).
pub fn iwae_bound(log_weights: &[f64], k: usize) -> f64 {
    let w = &log_weights[..k.min(log_weights.len())];
    let max = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + (w.iter().map(|v| (v - max).exp()).sum::<f64>() / w.len() as f64).ln()
}

impl Model for Vae {
    fn kind(&self) -> &'static str {
        "vae"
    }
    fn as_vae(&self) -> Option<&Vae> {
        Some(self)
    }
    fn train_step(&mut self, x: &Tensor, _labels: &[usize], ctx: &mut Ctx) -> Result<Losses> {
        let (total, recon, kl) = self.objective(x, ctx)?;
        total.backward()?;
        self.opt.step()?;
        Ok(vec![
            ("loss", total.item()?),
            ("reconstruction", recon.item()?),
            ("kl", kl.item()?),
        ])
    }
    fn eval_losses(&self, x: &Tensor, _labels: &[usize], rng: &mut Rng) -> Result<Losses> {
        no_grad(|| {
            let mut ctx = Ctx {
                training: false,
                rng: rng.fork(),
            };
            let (total, recon, kl) = self.objective(x, &mut ctx)?;
            let mse = loss::mse(&self.reconstruct(x).expect("a VAE reconstructs")?, x)?;
            Ok(vec![
                ("loss", total.item()?),
                ("reconstruction", recon.item()?),
                ("kl", kl.item()?),
                ("negative_elbo", recon.item()? + kl.item()?),
                ("mse", mse.item()?),
            ])
        })
    }
    /// Decodes the mean code μ(x).
    fn reconstruct(&self, x: &Tensor) -> Option<Result<Tensor>> {
        Some(no_grad(|| {
            let ctx = &mut Ctx::eval();
            let (mu, _) = self.encode(x, ctx)?;
            self.decoder.forward(&mu, ctx)?.sigmoid()
        }))
    }
    fn sample(&self, n: usize, rng: &mut Rng) -> Option<Result<Tensor>> {
        Some(no_grad(|| {
            let z = Tensor::randn(&[n, self.latent], 0.0, 1.0, DType::F32, rng)?;
            self.decoder
                .forward(&z.to(self.device())?, &mut Ctx::eval())?
                .sigmoid()
        }))
    }
    fn interpolate(&self, a: &Tensor, b: &Tensor, steps: usize) -> Option<Result<Tensor>> {
        Some(no_grad(|| {
            let ctx = &mut Ctx::eval();
            let (ha, hb) = (self.encode(a, ctx)?.0, self.encode(b, ctx)?.0);
            interpolate_codes(&ha, &hb, steps, |h| {
                self.decoder.forward(h, &mut Ctx::eval())?.sigmoid()
            })
        }))
    }
    fn modules(&self) -> Vec<(&'static str, &dyn Module)> {
        vec![
            ("encoder.", &self.encoder as &dyn Module),
            ("decoder.", &self.decoder),
        ]
    }
    fn optimizers(&self) -> Vec<(&'static str, &dyn Optimizer)> {
        vec![("optim.", &self.opt as &dyn Optimizer)]
    }
    fn optimizers_mut(&mut self) -> Vec<(&'static str, &mut dyn Optimizer)> {
        vec![("optim.", &mut self.opt as &mut dyn Optimizer)]
    }
}

/// Clears the gradients a backward pass left on a module it did not mean to train (the
/// discriminator, during the generator's step).
fn zero_grads(m: &dyn Module) {
    for (_, p) in nn::params_of(m, "") {
        p.zero_grad();
    }
}

// ---- 3. GAN ------------------------------------------------------------------------------------

/// Which loss the generator minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeneratorLoss {
    /// E[log(1 − D(G(z)))]: the minimax game as written.
    Minimax,
    /// −E[log D(G(z))]: the same fixed point, with strong gradients early on.
    NonSaturating,
}

/// DCGAN-style GAN (Goodfellow et al. 2014; Radford et al. 2016):
/// min_G max_D  E_x[log D(x)] + E_z[log(1 − D(G(z)))], z ~ N(0, I),
/// trained by alternating one discriminator step and one generator step per batch.
/// G: Linear(z→3136)-BatchNorm-ReLU → [64, 7, 7] → ConvT(64→32)-BatchNorm-ReLU → ConvT(32→1) → sigmoid;
/// D: Conv(1→32)-LeakyReLU(0.2) → Conv(32→64)-BatchNorm-LeakyReLU(0.2) → Linear(3136→1), one logit.
/// Weights N(0, 0.02), Adam(β₁ = 0.5): the DCGAN recipe. Without the batch norms the
/// discriminator stayed near chance and the samples near blobs.
pub struct Gan {
    pub generator: Sequential,
    pub discriminator: Sequential,
    pub latent: usize,
    pub generator_loss: GeneratorLoss,
    opt_g: Adam,
    opt_d: Adam,
}

impl Gan {
    pub fn new(
        latent: usize,
        generator_loss: GeneratorLoss,
        lr: f64,
        rng: &mut Rng,
    ) -> Result<Gan> {
        let init = Init::Normal(0.02);
        let up = ConvTranspose2dParams::default().stride(2).padding(1);
        let generator = Sequential::new()
            .layer(Linear::with_init(latent, 64 * 7 * 7, true, init, rng)?)
            .layer(nn::BatchNorm2d::new(64 * 7 * 7)?)
            .layer(Activation::Relu)
            .layer(Reshape(vec![64, 7, 7]))
            .layer(ConvTranspose2d::with_init(64, 32, 4, up, true, init, rng)?)
            .layer(nn::BatchNorm2d::new(32)?)
            .layer(Activation::Relu)
            .layer(ConvTranspose2d::with_init(32, 1, 4, up, true, init, rng)?)
            .layer(Activation::Sigmoid);
        let down = Conv2dParams::default().stride(2).padding(1);
        let leaky = Activation::LeakyRelu(0.2);
        let discriminator = Sequential::new()
            .layer(Conv2d::with_init(1, 32, 4, down, true, init, rng)?)
            .layer(leaky)
            .layer(Conv2d::with_init(32, 64, 4, down, true, init, rng)?)
            .layer(nn::BatchNorm2d::new(64)?)
            .layer(leaky)
            .layer(Flatten)
            .layer(Linear::with_init(64 * 7 * 7, 1, true, init, rng)?);
        let opt_g = Adam::new(nn::params_of(&generator, "generator."), lr).with_betas(0.5, 0.999);
        let opt_d =
            Adam::new(nn::params_of(&discriminator, "discriminator."), lr).with_betas(0.5, 0.999);
        Ok(Gan {
            generator,
            discriminator,
            latent,
            generator_loss,
            opt_g,
            opt_d,
        })
    }

    fn g_loss(&self, fake_logits: &Tensor) -> Result<Tensor> {
        match self.generator_loss {
            GeneratorLoss::Minimax => loss::generator_loss_minimax(fake_logits),
            GeneratorLoss::NonSaturating => loss::generator_loss_non_saturating(fake_logits),
        }
    }
}

impl Model for Gan {
    fn kind(&self) -> &'static str {
        "gan"
    }
    fn train_step(&mut self, x: &Tensor, _labels: &[usize], ctx: &mut Ctx) -> Result<Losses> {
        let z = Tensor::randn(
            &[batch_size(x)?, self.latent],
            0.0,
            1.0,
            DType::F32,
            &mut ctx.rng,
        )?
        .to(x.device())?;
        let fake = self.generator.forward(&z, ctx)?;
        // Discriminator: −E[log D(x)] − E[log(1 − D(G(z)))], with G held fixed (detached).
        let d_loss = loss::discriminator_loss(
            &self.discriminator.forward(x, ctx)?,
            &self.discriminator.forward(&fake.detach(), ctx)?,
        )?;
        d_loss.backward()?;
        self.opt_d.step()?;
        // Generator: its loss through the updated discriminator; D's gradients are discarded.
        let g_loss = self.g_loss(&self.discriminator.forward(&fake, ctx)?)?;
        g_loss.backward()?;
        self.opt_g.step()?;
        zero_grads(&self.discriminator);
        let (d, g) = (d_loss.item()?, g_loss.item()?);
        Ok(vec![
            ("loss", d + g),
            ("discriminator", d),
            ("generator", g),
        ])
    }
    fn eval_losses(&self, x: &Tensor, _labels: &[usize], rng: &mut Rng) -> Result<Losses> {
        no_grad(|| {
            let ctx = &mut Ctx::eval();
            let z = Tensor::randn(&[batch_size(x)?, self.latent], 0.0, 1.0, DType::F32, rng)?
                .to(x.device())?;
            let fake_logits = self
                .discriminator
                .forward(&self.generator.forward(&z, ctx)?, ctx)?;
            let d = loss::discriminator_loss(&self.discriminator.forward(x, ctx)?, &fake_logits)?
                .item()?;
            let g = self.g_loss(&fake_logits)?.item()?;
            Ok(vec![
                ("loss", d + g),
                ("discriminator", d),
                ("generator", g),
            ])
        })
    }
    fn sample(&self, n: usize, rng: &mut Rng) -> Option<Result<Tensor>> {
        Some(no_grad(|| {
            let z = Tensor::randn(&[n, self.latent], 0.0, 1.0, DType::F32, rng)?;
            self.generator
                .forward(&z.to(self.device())?, &mut Ctx::eval())
        }))
    }
    fn modules(&self) -> Vec<(&'static str, &dyn Module)> {
        vec![
            ("generator.", &self.generator as &dyn Module),
            ("discriminator.", &self.discriminator),
        ]
    }
    fn optimizers(&self) -> Vec<(&'static str, &dyn Optimizer)> {
        vec![
            ("optim_g.", &self.opt_g as &dyn Optimizer),
            ("optim_d.", &self.opt_d),
        ]
    }
    fn optimizers_mut(&mut self) -> Vec<(&'static str, &mut dyn Optimizer)> {
        vec![
            ("optim_g.", &mut self.opt_g as &mut dyn Optimizer),
            ("optim_d.", &mut self.opt_d),
        ]
    }
}

// ---- 4. Adversarial autoencoder ----------------------------------------------------------------

/// The prior p(h) the adversarial autoencoder pulls its codes toward.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Prior {
    /// N(0, I).
    StandardNormal,
    /// An equal mixture of `components` Gaussians (σ = 0.5) whose means lie on a circle of
    /// radius 4 in the first two code dimensions (0 in the others).
    GaussianMixture { components: usize },
}

impl Prior {
    /// `n` samples of dimension `d`.
    pub fn sample(&self, n: usize, d: usize, rng: &mut Rng) -> Result<Tensor> {
        Ok(match *self {
            Prior::StandardNormal => Tensor::randn(&[n, d], 0.0, 1.0, DType::F32, rng)?,
            Prior::GaussianMixture { components } => {
                let k = components.max(1);
                let mut v = Vec::with_capacity(n * d);
                for _ in 0..n {
                    let angle = 2.0 * std::f64::consts::PI * rng.below(k) as f64 / k as f64;
                    for j in 0..d {
                        let centre = match j {
                            0 => 4.0 * angle.cos(),
                            1 => 4.0 * angle.sin(),
                            _ => 0.0,
                        };
                        v.push((centre + 0.5 * rng.normal()) as f32);
                    }
                }
                Tensor::from_vec(v, &[n, d])?
            }
        })
    }
}

/// Adversarial autoencoder (Makhzani et al. 2016): an autoencoder whose codes a discriminator
/// D pulls toward a prior p(h). Per batch:
/// 1. discriminator: min_D −E_{h~p(h)}[log D(h)] − E_x[log(1 − D(E(x)))];
/// 2. autoencoder: min_{E,Dec} E_x[−log p(x | Dec(E(x)))] + λ·(−E_x[log D(E(x))]),
///    the reconstruction a Bernoulli likelihood (BCE summed over pixels, nats per image) and the
///    second term the encoder's effort to make its codes pass for prior samples.
///
/// The paper runs reconstruction and the encoder's regularisation as separate phases. With Adam
/// that makes λ meaningless (each optimizer normalises its own step size), and on
/// Fashion-MNIST the adversarial phase then overwhelmed reconstruction, leaving grey blobs. One
/// objective with λ as a true relative weight keeps both. D is an MLP on codes:
/// Linear(d→64)-ReLU-Linear(64→64)-ReLU-Linear(64→1).
pub struct Aae {
    pub encoder: Sequential,
    pub decoder: Sequential,
    pub discriminator: Sequential,
    pub latent: usize,
    pub lambda: f64,
    pub prior: Prior,
    opt_ae: Adam,
    opt_d: Adam,
}

impl Aae {
    pub fn new(latent: usize, lambda: f64, prior: Prior, lr: f64, rng: &mut Rng) -> Result<Aae> {
        let encoder = conv_encoder(latent, Activation::Relu, Init::PytorchDefault, rng)?;
        let decoder = conv_decoder(latent, Init::PytorchDefault, rng)?;
        let discriminator = Sequential::new()
            .layer(Linear::new(latent, 64, rng)?)
            .layer(Activation::Relu)
            .layer(Linear::new(64, 64, rng)?)
            .layer(Activation::Relu)
            .layer(Linear::new(64, 1, rng)?);
        let mut ae_params = nn::params_of(&encoder, "encoder.");
        ae_params.extend(nn::params_of(&decoder, "decoder."));
        let opt_ae = Adam::new(ae_params, lr);
        let opt_d =
            Adam::new(nn::params_of(&discriminator, "discriminator."), lr).with_betas(0.5, 0.999);
        Ok(Aae {
            encoder,
            decoder,
            discriminator,
            latent,
            lambda,
            prior,
            opt_ae,
            opt_d,
        })
    }

    fn decode(&self, h: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        self.decoder.forward(h, ctx)?.sigmoid()
    }
}

impl Model for Aae {
    fn kind(&self) -> &'static str {
        "aae"
    }
    fn train_step(&mut self, x: &Tensor, _labels: &[usize], ctx: &mut Ctx) -> Result<Losses> {
        let n = batch_size(x)?;
        // 1. Discriminator: prior samples are "real", codes (held fixed) are "generated".
        let codes = self.encoder.forward(x, ctx)?;
        let prior = self
            .prior
            .sample(n, self.latent, &mut ctx.rng)?
            .to(x.device())?;
        let d_loss = loss::discriminator_loss(
            &self.discriminator.forward(&prior, ctx)?,
            &self.discriminator.forward(&codes.detach(), ctx)?,
        )?;
        d_loss.backward()?;
        self.opt_d.step()?;
        // 2. Autoencoder: reconstruction + λ·(codes fool the updated discriminator).
        let recon = bce_per_image(&self.decoder.forward(&codes, ctx)?, x)?;
        let adversarial =
            loss::generator_loss_non_saturating(&self.discriminator.forward(&codes, ctx)?)?;
        let total = recon.add(&adversarial.mul_scalar(self.lambda)?)?;
        total.backward()?;
        self.opt_ae.step()?;
        zero_grads(&self.discriminator);
        Ok(vec![
            ("loss", total.item()?),
            ("reconstruction", recon.item()?),
            ("discriminator", d_loss.item()?),
            ("encoder_adversarial", adversarial.item()?),
        ])
    }
    fn eval_losses(&self, x: &Tensor, _labels: &[usize], rng: &mut Rng) -> Result<Losses> {
        no_grad(|| {
            let ctx = &mut Ctx::eval();
            let codes = self.encoder.forward(x, ctx)?;
            let logits = self.decoder.forward(&codes, ctx)?;
            let recon = bce_per_image(&logits, x)?.item()?;
            let mse = loss::mse(&logits.sigmoid()?, x)?.item()?;
            let prior = self
                .prior
                .sample(batch_size(x)?, self.latent, rng)?
                .to(x.device())?;
            let code_logits = self.discriminator.forward(&codes, ctx)?;
            let d =
                loss::discriminator_loss(&self.discriminator.forward(&prior, ctx)?, &code_logits)?
                    .item()?;
            let e = loss::generator_loss_non_saturating(&code_logits)?.item()?;
            Ok(vec![
                ("loss", recon + self.lambda * e),
                ("reconstruction", recon),
                ("mse", mse),
                ("discriminator", d),
                ("encoder_adversarial", e),
            ])
        })
    }
    fn reconstruct(&self, x: &Tensor) -> Option<Result<Tensor>> {
        Some(no_grad(|| {
            let ctx = &mut Ctx::eval();
            self.decode(&self.encoder.forward(x, ctx)?, ctx)
        }))
    }
    fn sample(&self, n: usize, rng: &mut Rng) -> Option<Result<Tensor>> {
        Some(no_grad(|| {
            let h = self.prior.sample(n, self.latent, rng)?;
            self.decode(&h.to(self.device())?, &mut Ctx::eval())
        }))
    }
    fn interpolate(&self, a: &Tensor, b: &Tensor, steps: usize) -> Option<Result<Tensor>> {
        Some(no_grad(|| {
            let ctx = &mut Ctx::eval();
            interpolate_codes(
                &self.encoder.forward(a, ctx)?,
                &self.encoder.forward(b, ctx)?,
                steps,
                |h| self.decode(h, &mut Ctx::eval()),
            )
        }))
    }
    fn modules(&self) -> Vec<(&'static str, &dyn Module)> {
        vec![
            ("encoder.", &self.encoder as &dyn Module),
            ("decoder.", &self.decoder),
            ("discriminator.", &self.discriminator),
        ]
    }
    fn optimizers(&self) -> Vec<(&'static str, &dyn Optimizer)> {
        vec![
            ("optim_ae.", &self.opt_ae as &dyn Optimizer),
            ("optim_d.", &self.opt_d),
        ]
    }
    fn optimizers_mut(&mut self) -> Vec<(&'static str, &mut dyn Optimizer)> {
        vec![
            ("optim_ae.", &mut self.opt_ae as &mut dyn Optimizer),
            ("optim_d.", &mut self.opt_d),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(rng: &mut Rng) -> Tensor {
        Tensor::rand_uniform(&[4, 1, 28, 28], 0.0, 1.0, DType::F32, rng).unwrap()
    }

    #[test]
    fn every_model_steps_and_round_trips_its_state() {
        let mut rng = Rng::new(0);
        let x = batch(&mut rng);
        let models: Vec<Box<dyn Model>> = vec![
            Box::new(Autoencoder::new(8, 1e-4, 1e-3, &mut rng).unwrap()),
            Box::new(Vae::new(8, 1.0, 1e-3, &mut rng).unwrap()),
            Box::new(Gan::new(8, GeneratorLoss::NonSaturating, 2e-4, &mut rng).unwrap()),
            Box::new(
                Aae::new(
                    8,
                    1.0,
                    Prior::GaussianMixture { components: 10 },
                    1e-3,
                    &mut rng,
                )
                .unwrap(),
            ),
            Box::new(Gan::new(8, GeneratorLoss::Minimax, 2e-4, &mut rng).unwrap()),
            Box::new(Aae::new(8, 10.0, Prior::StandardNormal, 1e-3, &mut rng).unwrap()),
        ];
        for mut m in models {
            let labels = [0, 1, 2, 3];
            let losses = m.train_step(&x, &labels, &mut Ctx::train(1)).unwrap();
            assert!(
                losses.iter().all(|(_, v)| v.is_finite()),
                "{}: {losses:?}",
                m.kind()
            );
            let (tensors, meta) = m.state();
            let map: BTreeMap<String, Tensor> =
                tensors.into_iter().map(|(n, t)| (n, t.detach())).collect();
            let before = m.eval_losses(&x, &labels, &mut Rng::new(5)).unwrap();
            m.train_step(&x, &labels, &mut Ctx::train(2)).unwrap();
            m.load_state(&map, &meta).unwrap();
            assert_eq!(
                m.eval_losses(&x, &labels, &mut Rng::new(5)).unwrap(),
                before,
                "{} state round trip",
                m.kind()
            );
            if let Some(r) = m.reconstruct(&x) {
                assert_eq!(r.unwrap().shape(), &[4, 1, 28, 28]);
            }
            if let Some(s) = m.sample(3, &mut rng) {
                assert_eq!(s.unwrap().shape(), &[3, 1, 28, 28]);
            }
        }
    }
}

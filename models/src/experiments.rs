//! The course's questions answered by measurement:
//!
//! - what the regularised autoencoder's λ does ([`lambda_sweep`]): reconstruction error and
//!   ‖W‖²_F across λ;
//! - the minimax generator loss against the non-saturating one ([`gan_loss_comparison`]):
//!   FID by epoch from the same seed and budget, and what the discriminator says about the
//!   samples at the start, where log(1 − D(G(z))) is flat and its gradient vanishes.

use crate::data::FashionMnist;
use crate::error::{Error, Result};
use crate::evaluation::{FeatureClassifier, QualitySettings};
use crate::generative::{weights_of, Gan, GeneratorLoss, Model};
use crate::quality;
use crate::train::{self, ModelKind, StepInfo, TrainConfig};
use ferrograd_engine::{no_grad, DType, Rng, Tensor};
use ferrograd_nn::loss;
use ferrograd_nn::nn::{self, Ctx, Module};
use std::path::Path;

/// One λ of the sweep: the regulariser's effect on the weights and on the reconstructions.
#[derive(Clone, Debug)]
pub struct LambdaPoint {
    pub lambda: f64,
    /// Reconstruction MSE per pixel on the test set.
    pub test_mse: f64,
    /// Σ_W ‖W‖²_F over every layer's weights (biases excluded, as the penalty does).
    pub weight_norm: f64,
}

/// Trains the autoencoder once per λ (each run in `out/lambda_<λ>`, with the usual pictures),
/// from the same seed and data, and measures each.
pub fn lambda_sweep(
    data: &FashionMnist,
    base: &TrainConfig,
    lambdas: &[f64],
    out: &Path,
    on_step: &mut dyn FnMut(usize, &StepInfo),
) -> Result<Vec<LambdaPoint>> {
    if base.kind != ModelKind::Ae {
        return Err(Error::Invalid {
            message: format!(
                "the λ sweep trains the autoencoder, not a {}",
                base.kind.name()
            ),
        });
    }
    let mut points = Vec::with_capacity(lambdas.len());
    for (i, &lambda) in lambdas.iter().enumerate() {
        let cfg = TrainConfig {
            lambda,
            ..base.clone()
        };
        let run = out.join(format!("lambda_{lambda:e}"));
        let summary = train::train(&cfg, data, &run, false, &mut |s| on_step(i, s))?;
        let test_mse = summary
            .records
            .last()
            .and_then(|r| r.test.get("mse").copied())
            .unwrap_or(f64::NAN);
        let (model, _, _) = train::load_model(
            &run.join("checkpoint.safetensors"),
            ferrograd_engine::Device::Cpu,
        )?;
        let weight_norm = model
            .modules()
            .iter()
            .flat_map(|(_, m)| weights_of(*m))
            .map(|w| w.to_vec_f64().iter().map(|v| v * v).sum::<f64>())
            .sum();
        points.push(LambdaPoint {
            lambda,
            test_mse,
            weight_norm,
        });
    }
    Ok(points)
}

/// What the discriminator makes of the generator's samples at one step of training, and how
/// strongly each generator loss would pull the generator there.
#[derive(Clone, Debug)]
pub struct DiscriminatorProbe {
    pub step: usize,
    /// D(G(z)) over 512 fresh codes: mean and the 10th, 50th and 90th percentiles.
    pub fake_mean: f64,
    pub fake_percentiles: [f64; 3],
    /// D(x) over a batch of real images.
    pub real_mean: f64,
    /// ‖∂L_G/∂θ_G‖ for the minimax loss E[log(1 − D(G(z)))] and the non-saturating
    /// −E[log D(G(z))], at the same weights and codes.
    pub grad_norm_minimax: f64,
    pub grad_norm_non_saturating: f64,
}

/// One GAN run of the comparison.
#[derive(Clone, Debug)]
pub struct GanRun {
    pub loss: GeneratorLoss,
    /// FID against the test set after each epoch, in the feature classifier's space.
    pub fid_by_epoch: Vec<f64>,
    pub probes: Vec<DiscriminatorProbe>,
}

/// Steps at which the discriminator is probed (those beyond an epoch are skipped).
pub const PROBE_STEPS: [usize; 7] = [0, 10, 25, 50, 100, 200, 400];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// The gradient norm of a generator loss w.r.t. the generator's parameters, the
/// discriminator's gradients cleared after.
fn generator_grad_norm(gan: &Gan, z: &Tensor, minimax: bool) -> Result<f64> {
    let ctx = &mut Ctx::eval();
    let logits = gan
        .discriminator
        .forward(&gan.generator.forward(z, ctx)?, ctx)?;
    let l = if minimax {
        loss::generator_loss_minimax(&logits)?
    } else {
        loss::generator_loss_non_saturating(&logits)?
    };
    l.backward()?;
    let mut sum = 0.0;
    for (_, p) in nn::params_of(&gan.generator, "") {
        if let Some(g) = p.grad() {
            sum += g.to_vec_f64().iter().map(|v| v * v).sum::<f64>();
        }
        p.zero_grad();
    }
    for (_, p) in nn::params_of(&gan.discriminator, "") {
        p.zero_grad();
    }
    Ok(sum.sqrt())
}

fn probe(gan: &Gan, step: usize, real: &Tensor, rng: &mut Rng) -> Result<DiscriminatorProbe> {
    let z = Tensor::randn(&[512, gan.latent], 0.0, 1.0, DType::F32, rng)?.to(gan.device())?;
    let (fake, real_d) = no_grad(|| -> Result<(Vec<f64>, Vec<f64>)> {
        let ctx = &mut Ctx::eval();
        let fake = gan
            .discriminator
            .forward(&gan.generator.forward(&z, ctx)?, ctx)?
            .sigmoid()?
            .to_vec_f64();
        let real = gan
            .discriminator
            .forward(real, ctx)?
            .sigmoid()?
            .to_vec_f64();
        Ok((fake, real))
    })?;
    let mut sorted = fake.clone();
    sorted.sort_by(f64::total_cmp);
    let z_grad = z.narrow(0, 0, 256)?;
    Ok(DiscriminatorProbe {
        step,
        fake_mean: fake.iter().sum::<f64>() / fake.len() as f64,
        fake_percentiles: [
            percentile(&sorted, 0.1),
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.9),
        ],
        real_mean: real_d.iter().sum::<f64>() / real_d.len() as f64,
        grad_norm_minimax: generator_grad_norm(gan, &z_grad, true)?,
        grad_norm_non_saturating: generator_grad_norm(gan, &z_grad, false)?,
    })
}

/// Trains the GAN once with each generator loss, from the same seed, data order and budget
/// (`base`'s settings otherwise), probing the discriminator at [`PROBE_STEPS`] and measuring
/// FID on `fid.samples` samples after every epoch.
pub fn gan_loss_comparison(
    data: &FashionMnist,
    base: &TrainConfig,
    features: &FeatureClassifier,
    fid: &QualitySettings,
    on_step: &mut dyn FnMut(GeneratorLoss, &StepInfo),
) -> Result<Vec<GanRun>> {
    let train_split = match base.train_limit {
        Some(n) => data.train.subset(n),
        None => data.train.clone(),
    };
    let test_features = features.features_of_split(&data.test, fid.samples)?;
    let mut runs = Vec::new();
    for loss_kind in [GeneratorLoss::Minimax, GeneratorLoss::NonSaturating] {
        let mut gan = Gan::new(base.latent, loss_kind, base.lr, &mut Rng::new(base.seed))?;
        gan.move_to(base.device)?;
        let mut probe_rng = Rng::new(base.seed ^ 0x9e0b);
        let mut fid_by_epoch = Vec::with_capacity(base.epochs);
        let mut probes = Vec::new();
        let mut global_step = 0usize;
        for epoch in 0..base.epochs {
            let mut ctx = Ctx {
                training: true,
                rng: Rng::new(base.seed ^ ((epoch as u64 + 1) << 20)),
            };
            let batches =
                train_split.batches(base.batch, &mut Rng::new(base.seed + epoch as u64))?;
            let steps = batches.len_batches();
            for (step, (x, labels)) in batches.enumerate() {
                let x = x.to(base.device)?;
                if PROBE_STEPS.contains(&global_step) {
                    probes.push(probe(&gan, global_step, &x, &mut probe_rng)?);
                }
                let losses = gan.train_step(&x, &labels, &mut ctx)?;
                let loss = losses
                    .iter()
                    .find(|(k, _)| *k == "loss")
                    .map_or(f64::NAN, |l| l.1);
                if !loss.is_finite() {
                    return Err(Error::Diverged {
                        message: format!(
                            "the {loss_kind:?} GAN diverged at epoch {}, step {}",
                            epoch + 1,
                            step + 1
                        ),
                    });
                }
                global_step += 1;
                on_step(
                    loss_kind,
                    &StepInfo {
                        epoch,
                        epochs: base.epochs,
                        step,
                        steps,
                        loss,
                        images_per_s: f64::NAN,
                    },
                );
            }
            let mut sample_rng = Rng::new(fid.seed);
            let generated = features.features_of_samples(&gan, fid.samples, &mut sample_rng)?;
            fid_by_epoch.push(quality::fid(&generated, &test_features)?);
        }
        runs.push(GanRun {
            loss: loss_kind,
            fid_by_epoch,
            probes,
        });
    }
    Ok(runs)
}

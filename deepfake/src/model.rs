//! The face-swap network: one encoder E shared by both identities, one decoder per identity,
//! and a latent prior.
//!
//! Why a swap works: E must serve both decoders, so it learns what the two identities' faces
//! have in common (pose, expression, lighting, where the eyes are), while each decoder learns
//! to draw its own person's face from that. D_B(E(x_A)) is then B's face with A's pose.
//!
//! The prior keeps both identities' codes in one region of latent space, so that a code from
//! A is something D_B has seen the like of, and so that h = (1 − t)·h_A + t·h_B stays on the
//! manifold while mixing. Two ways, selectable:
//! - adversarial (Makhzani et al. 2016): a discriminator D on h separates prior samples from
//!   codes; the encoder learns to make its codes pass for prior samples;
//! - variational: E gives μ and log σ², h = μ + σ·ε, and KL(q(h|x) ‖ N(0, I)) is added.
//!
//! The prior matches the codes of both identities together to N(0, I), not each identity's
//! codes to the other's: left alone, E keeps A's and B's codes apart, and D_B, which never saw
//! a code from A's region, answers one with a face that is only partly B's (the README's face
//! swap section measures it). An identity critic on h ([`SwapConfig::identity_weight`]) closes
//! that gap.

use crate::faces::FACE_SIZE;
use ferrograd_engine::{
    no_grad, Conv2dParams, ConvTranspose2dParams, DType, Device, Error, Result, Rng, Tensor,
};
use ferrograd_nn::ema::WeightAverage;
use ferrograd_nn::loss;
use ferrograd_nn::nn::{
    self, Activation, Conv2d, ConvTranspose2d, Ctx, Flatten, Init, Linear, Module, Reshape,
    Sequential,
};
use ferrograd_nn::optim::{Adam, Optimizer};
use std::collections::BTreeMap;

/// Channels after each of the encoder's four stride-2 convolutions (100 → 50 → 25 → 13 → 7).
pub const ENCODER_CHANNELS: [usize; 4] = [32, 64, 128, 256];
/// Side of the encoder's last feature map, and of the decoder's first.
const BOTTOM: usize = 7;
/// The slope of the leaky ReLUs: face-swap models use them so that no unit dies for good.
const SLOPE: f64 = 0.1;

/// How the latent prior p(h) = N(0, I) is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorKind {
    /// A discriminator on h, trained against the encoder.
    Adversarial,
    /// μ and log σ² from the encoder, the reparameterised sample, and KL to N(0, I).
    Variational,
}

impl PriorKind {
    pub fn name(self) -> &'static str {
        match self {
            PriorKind::Adversarial => "adversarial",
            PriorKind::Variational => "vae",
        }
    }
    pub fn parse(s: &str) -> Option<PriorKind> {
        match s {
            "adversarial" | "aae" => Some(PriorKind::Adversarial),
            "vae" | "variational" => Some(PriorKind::Variational),
            _ => None,
        }
    }
}

/// The two identities' names and everything that fixes the network's shape and its training.
#[derive(Clone, Debug, PartialEq)]
pub struct SwapConfig {
    pub latent: usize,
    pub prior: PriorKind,
    /// Weight of the prior term beside the reconstruction loss (mean absolute error per pixel).
    pub prior_weight: f64,
    pub lr: f64,
    /// Weight of the structural dissimilarity ([`loss::dssim`]) added to each face's L1
    /// reconstruction loss: L1 alone trains towards a blur, DSSIM makes blur cost. 0: L1 only.
    pub dssim_weight: f64,
    /// Decay d of the moving average of the encoder's and decoders' weights that swaps,
    /// previews and evaluation draw from ([`WeightAverage`]); 0: no average, they draw from
    /// the last step's weights.
    pub ema_decay: f64,
    /// Weight of the identity-confusion term: a critic on h learns to tell A's codes from B's,
    /// and the encoder is trained so that it cannot (the latent discriminator of Fader
    /// Networks, Lample et al. 2017, with the identity as the attribute). Codes that do not
    /// say whose face they are leave the identity to the decoders, so D_B reads A's pose and
    /// expression from E(x_A) as it reads them from B's codes. 0: no critic.
    pub identity_weight: f64,
    /// How many times a pixel of the eyes counts in the reconstruction loss, L1 and DSSIM
    /// alike ([`crate::faces::EYE_BOX`], moved with each target by the augmentation); 1: as
    /// any other pixel. Blur costs most where identity and glasses are read.
    pub eye_multiplier: f64,
    /// The same for the mouth ([`crate::faces::MOUTH_BOX`]): teeth and open mouths.
    pub mouth_multiplier: f64,
}

impl Default for SwapConfig {
    fn default() -> Self {
        SwapConfig {
            latent: 256,
            prior: PriorKind::Adversarial,
            prior_weight: 0.01,
            lr: 5e-4,
            // The three below, with the cosine schedule, are what the outside judge (dlib's
            // face recognition) rewarded at the 60-minute budget: see the README's face swap.
            dssim_weight: 1.0,
            ema_decay: 0.999,
            identity_weight: 0.1,
            eye_multiplier: 1.0,
            mouth_multiplier: 1.0,
        }
    }
}

/// Conv(k3, s2, p1)-LeakyReLU blocks from 3 channels through `channels`, each halving the side
/// (rounding up): 100 → 50 → 25 → 13 → 7 for four blocks.
pub fn strided_convs(channels: &[usize], rng: &mut Rng) -> Result<Sequential> {
    let down = Conv2dParams::default().stride(2).padding(1);
    let mut net = Sequential::new();
    let mut inputs = 3;
    for &outputs in channels {
        net = net
            .layer(Conv2d::with_init(
                inputs,
                outputs,
                3,
                down,
                true,
                Init::PytorchDefault,
                rng,
            )?)
            .layer(Activation::LeakyRelu(SLOPE));
        inputs = outputs;
    }
    Ok(net)
}

/// Encoder: four strided blocks 3x100x100 → 256x7x7, then Linear to the code (to 2·latent for
/// the variational prior: μ then log σ²).
fn encoder(outputs: usize, rng: &mut Rng) -> Result<Sequential> {
    let last = ENCODER_CHANNELS[ENCODER_CHANNELS.len() - 1];
    Ok(strided_convs(&ENCODER_CHANNELS, rng)?
        .layer(Flatten)
        .layer(Linear::with_init(
            last * BOTTOM * BOTTOM,
            outputs,
            true,
            Init::PytorchDefault,
            rng,
        )?))
}

/// Decoder: Linear(latent → 128x7x7) → ConvT(k3, s2, p1) 7 → 13 → 25 → ConvT(k4, s2, p1)
/// 25 → 50 → 100, LeakyReLU between, three output logits per pixel (the sigmoid is applied by
/// the caller).
fn decoder(latent: usize, rng: &mut Rng) -> Result<Sequential> {
    // Output side of ConvT(k, s2, p1) is 2·(n − 1) − 2 + k: 2n − 1 for k = 3, 2n for k = 4.
    let up = ConvTranspose2dParams::default().stride(2).padding(1);
    let init = Init::PytorchDefault;
    Ok(Sequential::new()
        .layer(Linear::with_init(
            latent,
            128 * BOTTOM * BOTTOM,
            true,
            init,
            rng,
        )?)
        .layer(Activation::LeakyRelu(SLOPE))
        .layer(Reshape(vec![128, BOTTOM, BOTTOM]))
        .layer(ConvTranspose2d::with_init(
            128, 128, 3, up, true, init, rng,
        )?)
        .layer(Activation::LeakyRelu(SLOPE))
        .layer(ConvTranspose2d::with_init(128, 64, 3, up, true, init, rng)?)
        .layer(Activation::LeakyRelu(SLOPE))
        .layer(ConvTranspose2d::with_init(64, 32, 4, up, true, init, rng)?)
        .layer(Activation::LeakyRelu(SLOPE))
        .layer(ConvTranspose2d::with_init(32, 3, 4, up, true, init, rng)?))
}

/// The latent discriminator, and the identity critic: an MLP latent → 256 → 256 → 1 logit.
fn latent_critic(latent: usize, rng: &mut Rng) -> Result<Sequential> {
    Ok(Sequential::new()
        .layer(Linear::new(latent, 256, rng)?)
        .layer(Activation::LeakyRelu(0.2))
        .layer(Linear::new(256, 256, rng)?)
        .layer(Activation::LeakyRelu(0.2))
        .layer(Linear::new(256, 1, rng)?))
}

/// Which identity's decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

/// Losses of one training step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepLosses {
    /// What the encoder and decoders minimise: reconstruction + prior_weight · prior term.
    pub total: f64,
    /// Mean absolute error per pixel of A through D_A and of B through D_B, averaged.
    pub reconstruction_a: f64,
    pub reconstruction_b: f64,
    /// Adversarial: the encoder's −E[log D(E(x))]; variational: KL per image.
    pub prior: f64,
    /// Adversarial only: the discriminator's loss (log 4 ≈ 1.386 when it cannot tell).
    pub discriminator: f64,
    /// DSSIM of both identities' reconstructions, averaged (computed only when
    /// `dssim_weight` > 0; else 0).
    pub structure: f64,
    /// The identity critic's loss (log 4 ≈ 1.386 when it cannot tell A's codes from B's;
    /// computed only when `identity_weight` > 0, else 0).
    pub identity_critic: f64,
    /// The encoder's confusion term BCE(C(h), ½) (log 2 ≈ 0.693 at best; only when
    /// `identity_weight` > 0, else 0).
    pub identity_confusion: f64,
}

/// A critic on the code that tells A's faces from B's, with its optimizer (see
/// [`SwapConfig::identity_weight`]).
pub struct IdentityCritic {
    pub net: Sequential,
    opt: Adam,
}

/// The face-swap model and its optimizers.
pub struct FaceSwap {
    pub config: SwapConfig,
    pub encoder: Sequential,
    pub decoder_a: Sequential,
    pub decoder_b: Sequential,
    /// Only used by the adversarial prior (kept for both, so that checkpoints have one shape).
    pub discriminator: Sequential,
    opt_ae: Adam,
    opt_d: Adam,
    /// Only when `identity_weight` > 0 (so that older checkpoints, without one, still load).
    pub identity_critic: Option<IdentityCritic>,
    /// The moving average of the encoder's and decoders' weights (when `ema_decay` > 0).
    average: Option<WeightAverage>,
}

/// Checkpoint names of the weight average start with this (the training state's prefix, so the
/// average is kept beside the optimizers' state, not in the weights file).
const AVERAGE_PREFIX: &str = "optim_ema.";

impl FaceSwap {
    pub fn new(config: SwapConfig, rng: &mut Rng) -> Result<FaceSwap> {
        let code_outputs = match config.prior {
            PriorKind::Adversarial => config.latent,
            PriorKind::Variational => 2 * config.latent,
        };
        let encoder = encoder(code_outputs, rng)?;
        let decoder_a = decoder(config.latent, rng)?;
        let decoder_b = decoder(config.latent, rng)?;
        let discriminator = latent_critic(config.latent, rng)?;
        let params = autoencoder_params(&encoder, &decoder_a, &decoder_b);
        let average = if config.ema_decay > 0.0 {
            Some(WeightAverage::new(&params, config.ema_decay)?)
        } else {
            None
        };
        // β₁ = 0.5 as in face-swap tools and GANs: the adversarial term moves the target.
        let opt_ae = Adam::new(params, config.lr).with_betas(0.5, 0.999);
        let opt_d = Adam::new(nn::params_of(&discriminator, "discriminator."), config.lr)
            .with_betas(0.5, 0.999);
        let identity_critic = if config.identity_weight > 0.0 {
            let net = latent_critic(config.latent, rng)?;
            let opt = Adam::new(nn::params_of(&net, "identity_critic."), config.lr)
                .with_betas(0.5, 0.999);
            Some(IdentityCritic { net, opt })
        } else {
            None
        };
        Ok(FaceSwap {
            config,
            encoder,
            decoder_a,
            decoder_b,
            discriminator,
            opt_ae,
            opt_d,
            identity_critic,
            average,
        })
    }

    /// Runs `f` with the averaged weights in place when there is an average (see
    /// [`SwapConfig::ema_decay`]), else with the trained ones.
    fn with_inference_weights<R>(&self, f: impl FnOnce() -> Result<R>) -> Result<R> {
        match &self.average {
            Some(average) => average.with_average(
                &autoencoder_params(&self.encoder, &self.decoder_a, &self.decoder_b),
                f,
            ),
            None => f(),
        }
    }

    /// Steps the optimizers have taken (the resume point).
    pub fn steps(&self) -> u64 {
        self.opt_ae.steps()
    }

    fn decoder(&self, side: Side) -> &Sequential {
        match side {
            Side::A => &self.decoder_a,
            Side::B => &self.decoder_b,
        }
    }

    /// The code of each face, [N, latent]: for the variational prior μ and log σ² as well.
    fn code_parts(&self, x: &Tensor, ctx: &mut Ctx) -> Result<(Tensor, Option<Tensor>)> {
        check_faces("FaceSwap::encode", x)?;
        let out = self.encoder.forward(&x.to(self.device())?, ctx)?;
        match self.config.prior {
            PriorKind::Adversarial => Ok((out, None)),
            PriorKind::Variational => {
                let d = self.config.latent;
                Ok((out.narrow(1, 0, d)?, Some(out.narrow(1, d, d)?)))
            }
        }
    }

    /// Where the weights are (the encoder's first parameter's device).
    pub fn device(&self) -> Device {
        nn::params_of(&self.encoder, "")
            .first()
            .map_or(Device::Cpu, |(_, p)| p.device())
    }

    /// Moves every weight and buffer to `device`; the optimizers' state follows on their next step.
    pub fn move_to(&self, device: Device) -> Result<()> {
        for (_, m) in self.modules() {
            nn::move_module(m, device)?;
        }
        Ok(())
    }

    /// h = E(x): the code (for the variational prior, its mean μ: no sampling outside training),
    /// with the averaged weights when there are some.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        self.with_inference_weights(|| no_grad(|| Ok(self.code_parts(x, &mut Ctx::eval())?.0)))
    }

    /// D_side(h) as an image in [0, 1]^{N×3×100×100}, with the averaged weights when there are
    /// some.
    pub fn decode(&self, h: &Tensor, side: Side) -> Result<Tensor> {
        self.with_inference_weights(|| {
            no_grad(|| self.decoder(side).forward(h, &mut Ctx::eval())?.sigmoid())
        })
    }

    /// D_side(E(x)): a reconstruction when `side` is x's identity, a swap otherwise.
    pub fn transfer(&self, x: &Tensor, side: Side) -> Result<Tensor> {
        self.decode(&self.encode(x)?, side)
    }

    /// Decodes h_t = (1 − t)·h_a + t·h_b for `steps` evenly spaced t in [0, 1] with decoder
    /// `side`: [steps, 3, 100, 100]. `a` and `b` are one face each.
    pub fn mix(&self, a: &Tensor, b: &Tensor, steps: usize, side: Side) -> Result<Tensor> {
        if steps < 2 {
            return Err(Error::argument("FaceSwap::mix", "needs at least 2 steps"));
        }
        let (ha, hb) = (self.encode(a)?, self.encode(b)?);
        let codes = (0..steps)
            .map(|i| {
                let t = i as f64 / (steps - 1) as f64;
                ha.mul_scalar(1.0 - t)?.add(&hb.mul_scalar(t)?)
            })
            .collect::<Result<Vec<_>>>()?;
        self.decode(&Tensor::concat(&codes, 0)?, side)
    }

    /// Mixing by concatenation: the first `split` code dimensions from `a`, the rest from `b`,
    /// decoded by `side`. Shows which part of the code carries what.
    pub fn splice(&self, a: &Tensor, b: &Tensor, split: usize, side: Side) -> Result<Tensor> {
        let d = self.config.latent;
        if split > d {
            return Err(Error::argument(
                "FaceSwap::splice",
                format!("split {split} is past the code's {d} dimensions"),
            ));
        }
        let (ha, hb) = (self.encode(a)?, self.encode(b)?);
        let h = Tensor::concat(
            &[ha.narrow(1, 0, split)?, hb.narrow(1, split, d - split)?],
            1,
        )?;
        self.decode(&h, side)
    }

    /// One training step on warped inputs and their un-warped targets of both identities
    /// (equal batch sizes):
    ///
    /// 1. (adversarial prior) discriminator: min_D −E_{h~N(0,I)}[log D(h)] − E_x[log(1 − D(E(x)))]
    ///    with the codes held fixed;
    /// 2. encoder and decoders: min ½(|y_A − D_A(E(x_A))|₁ + |y_B − D_B(E(x_B))|₁) plus
    ///    s·½(DSSIM(D_A(E(x_A)), y_A) + DSSIM(D_B(E(x_B)), y_B)) plus w times the prior
    ///    term, s the `dssim_weight`, the L1 norms as means per pixel and the prior term
    ///    −E_x[log D(E(x))] (adversarial) or KL(N(μ, σ²) ‖ N(0, I)) per image (variational);
    /// 3. (identity critic, when `identity_weight` c > 0) before step 2, the critic C:
    ///    min_C −E[log C(h_A)] − E[log(1 − C(h_B))] with the codes held fixed; in step 2 the
    ///    encoder adds c·BCE(C(h), ½) over both identities' codes, least when C cannot tell.
    pub fn train_step(
        &mut self,
        a: (&Tensor, &Tensor),
        b: (&Tensor, &Tensor),
        ctx: &mut Ctx,
    ) -> Result<StepLosses> {
        self.train_step_weighted(a, b, None, ctx)
    }

    /// [`FaceSwap::train_step`] with each target value's weight in the reconstruction loss,
    /// one tensor of the targets' shape per identity: the L1 terms become Σ w·|y − ŷ| / Σ w and
    /// the DSSIM terms weigh each window's SSIM by w at its centre ([`loss::weighted_l1`],
    /// [`loss::weighted_dssim`]). The losses reported as `reconstruction_a` and `_b` stay the
    /// plain L1, so that runs with and without weights compare.
    pub fn train_step_weighted(
        &mut self,
        (input_a, target_a): (&Tensor, &Tensor),
        (input_b, target_b): (&Tensor, &Tensor),
        weights: Option<(&Tensor, &Tensor)>,
        ctx: &mut Ctx,
    ) -> Result<StepLosses> {
        let n = input_a.dim(0)?;
        if input_b.dim(0)? != n {
            return Err(Error::shape(
                "FaceSwap::train_step",
                format!("batches of A ({n}) and B ({}) differ", input_b.dim(0)?),
            ));
        }
        let device = self.device();
        let (input_a, target_a) = (&input_a.to(device)?, &target_a.to(device)?);
        let (input_b, target_b) = (&input_b.to(device)?, &target_b.to(device)?);
        // Both identities through the one encoder in one pass.
        let (codes, log_var) = self.code_parts(
            &Tensor::concat(&[input_a.clone(), input_b.clone()], 0)?,
            ctx,
        )?;
        let mut losses = StepLosses::default();
        // Only the variational encoder gives log σ².
        let (h, prior_term) = match log_var {
            Some(log_var) => {
                // h = μ + σ·ε, ε ~ N(0, I): the sample stays differentiable in μ and log σ².
                let eps = Tensor::randn(codes.shape(), 0.0, 1.0, DType::F32, &mut ctx.rng)?
                    .to(codes.device())?;
                let h = codes.add(&log_var.mul_scalar(0.5)?.exp()?.mul(&eps)?)?;
                let kl = loss::kl_to_standard_normal(&codes, &log_var)?;
                (h, kl)
            }
            None => {
                let prior = Tensor::randn(codes.shape(), 0.0, 1.0, DType::F32, &mut ctx.rng)?
                    .to(codes.device())?;
                let d_loss = loss::discriminator_loss(
                    &self.discriminator.forward(&prior, ctx)?,
                    &self.discriminator.forward(&codes.detach(), ctx)?,
                )?;
                d_loss.backward()?;
                self.opt_d.step()?;
                losses.discriminator = d_loss.item()?;
                let fool =
                    loss::generator_loss_non_saturating(&self.discriminator.forward(&codes, ctx)?)?;
                (codes, fool)
            }
        };
        let mut confusion = None;
        if let Some(critic) = &mut self.identity_critic {
            let critic_loss = loss::discriminator_loss(
                &critic.net.forward(&h.narrow(0, 0, n)?.detach(), ctx)?,
                &critic.net.forward(&h.narrow(0, n, n)?.detach(), ctx)?,
            )?;
            critic_loss.backward()?;
            critic.opt.step()?;
            losses.identity_critic = critic_loss.item()?;
            let logits = critic.net.forward(&h, ctx)?;
            let undecided = Tensor::full(logits.shape(), 0.5, logits.dtype())?.to(device)?;
            let term = loss::bce_with_logits(&logits, &undecided)?;
            losses.identity_confusion = term.item()?;
            confusion = Some(term);
        }
        let face_a = self
            .decoder_a
            .forward(&h.narrow(0, 0, n)?, ctx)?
            .sigmoid()?;
        let face_b = self
            .decoder_b
            .forward(&h.narrow(0, n, n)?, ctx)?
            .sigmoid()?;
        let (recon_a, recon_b) = (face_a.l1_loss(target_a)?, face_b.l1_loss(target_b)?);
        // The weighted losses read the weights and place them by the faces themselves.
        let mut reconstruction = match weights {
            Some((w_a, w_b)) => loss::weighted_l1(&face_a, target_a, w_a)?
                .add(&loss::weighted_l1(&face_b, target_b, w_b)?)?,
            None => recon_a.add(&recon_b)?,
        }
        .mul_scalar(0.5)?;
        if self.config.dssim_weight > 0.0 {
            let structure = match weights {
                Some((w_a, w_b)) => loss::weighted_dssim(&face_a, target_a, w_a)?
                    .add(&loss::weighted_dssim(&face_b, target_b, w_b)?)?,
                None => loss::dssim(&face_a, target_a)?.add(&loss::dssim(&face_b, target_b)?)?,
            }
            .mul_scalar(0.5)?;
            losses.structure = structure.item()?;
            reconstruction =
                reconstruction.add(&structure.mul_scalar(self.config.dssim_weight)?)?;
        }
        let mut total = reconstruction.add(&prior_term.mul_scalar(self.config.prior_weight)?)?;
        if let Some(confusion) = &confusion {
            total = total.add(&confusion.mul_scalar(self.config.identity_weight)?)?;
        }
        total.backward()?;
        self.opt_ae.step()?;
        if let Some(average) = &mut self.average {
            average.update(&autoencoder_params(
                &self.encoder,
                &self.decoder_a,
                &self.decoder_b,
            ))?;
        }
        // The encoder's adversarial term also reached D's parameters: not D's update.
        for (_, p) in nn::params_of(&self.discriminator, "") {
            p.zero_grad();
        }
        // Likewise the confusion term's gradient in the critic.
        if let Some(critic) = &self.identity_critic {
            for (_, p) in nn::params_of(&critic.net, "") {
                p.zero_grad();
            }
        }
        losses.total = total.item()?;
        losses.reconstruction_a = recon_a.item()?;
        losses.reconstruction_b = recon_b.item()?;
        losses.prior = prior_term.item()?;
        Ok(losses)
    }

    /// Sets both optimizers' learning rate.
    pub fn set_lr(&mut self, lr: f64) {
        self.opt_ae.set_lr(lr);
        self.opt_d.set_lr(lr);
        if let Some(critic) = &mut self.identity_critic {
            critic.opt.set_lr(lr);
        }
    }

    fn modules(&self) -> Vec<(&'static str, &dyn Module)> {
        let mut modules: Vec<(&'static str, &dyn Module)> = vec![
            ("encoder.", &self.encoder),
            ("decoder_a.", &self.decoder_a),
            ("decoder_b.", &self.decoder_b),
            ("discriminator.", &self.discriminator),
        ];
        if let Some(critic) = &self.identity_critic {
            modules.push(("identity_critic.", &critic.net));
        }
        modules
    }

    fn optimizers(&self) -> Vec<(&'static str, &dyn Optimizer)> {
        let mut optimizers: Vec<(&'static str, &dyn Optimizer)> =
            vec![("optim_ae.", &self.opt_ae), ("optim_d.", &self.opt_d)];
        if let Some(critic) = &self.identity_critic {
            optimizers.push(("optim_identity.", &critic.opt));
        }
        optimizers
    }

    /// Weights and optimizer state by name, with the optimizers' metadata.
    pub fn state(&self) -> (Vec<(String, Tensor)>, BTreeMap<String, String>) {
        let (mut tensors, mut metadata) =
            ferrograd_models::generative::collect_state(&self.modules(), &self.optimizers());
        if let Some(average) = &self.average {
            let (averaged, updates) = average.state(AVERAGE_PREFIX);
            tensors.extend(averaged);
            metadata.insert(format!("{AVERAGE_PREFIX}updates"), updates.to_string());
        }
        (tensors, metadata)
    }

    /// Restores [`FaceSwap::state`] (every tensor must be present with its shape).
    pub fn load_state(
        &mut self,
        tensors: &BTreeMap<String, Tensor>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        for (prefix, m) in self.modules() {
            ferrograd_models::generative::load_module(m, prefix, tensors)?;
        }
        self.opt_ae.load_state("optim_ae.", tensors, metadata)?;
        self.opt_d.load_state("optim_d.", tensors, metadata)?;
        if let Some(critic) = &mut self.identity_critic {
            critic
                .opt
                .load_state("optim_identity.", tensors, metadata)?;
        }
        if let Some(average) = &mut self.average {
            let key = format!("{AVERAGE_PREFIX}updates");
            let updates = metadata
                .get(&key)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    Error::argument(
                        "FaceSwap::load_state",
                        format!("metadata '{key}' is missing or not a whole number"),
                    )
                })?;
            average.load_state(AVERAGE_PREFIX, tensors, updates)?;
        }
        Ok(())
    }
}

/// The encoder's and both decoders' parameters, named as in checkpoints: what the
/// autoencoder's optimizer trains and the weight average follows.
fn autoencoder_params(
    encoder: &Sequential,
    decoder_a: &Sequential,
    decoder_b: &Sequential,
) -> Vec<(String, Tensor)> {
    let mut params = nn::params_of(encoder, "encoder.");
    params.extend(nn::params_of(decoder_a, "decoder_a."));
    params.extend(nn::params_of(decoder_b, "decoder_b."));
    params
}

/// Faces must be [N, 3, 100, 100].
fn check_faces(op: &'static str, x: &Tensor) -> Result<()> {
    if x.rank() != 4 || x.shape()[1..] != [3, FACE_SIZE, FACE_SIZE] {
        return Err(Error::shape(
            op,
            format!(
                "faces must be [N, 3, {FACE_SIZE}, {FACE_SIZE}], got {:?}",
                x.shape()
            ),
        ));
    }
    Ok(())
}

//! `ferrograd train ae|vae|gan|aae|classifier`.

use super::Error;
use ferrograd_engine::Device;
use ferrograd_models::classifier::ClassifierActivation;
use ferrograd_models::data::FashionMnist;
use ferrograd_models::generative::{GeneratorLoss, Prior};
use ferrograd_models::train::{self, ranges, LrSchedule, ModelKind, StepInfo, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Model {
    /// Regularised autoencoder: MSE + λ‖W‖²_F
    Ae,
    /// Variational autoencoder: BCE + λ·KL (λ = 1: the ELBO)
    Vae,
    /// DCGAN-style generator and discriminator
    Gan,
    /// Adversarial autoencoder: a discriminator on the codes against a prior
    Aae,
    /// Classifier regularised by an autoencoder: CE + β·reconstruction + λ‖W‖²_F
    Classifier,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ActivationArg {
    Relu,
    Elu,
    Softplus,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ScheduleArg {
    Constant,
    /// lr·½(1 + cos(π·t/T))
    Cosine,
}

impl From<LrSchedule> for ScheduleArg {
    fn from(schedule: LrSchedule) -> Self {
        match schedule {
            LrSchedule::Constant => ScheduleArg::Constant,
            LrSchedule::Cosine => ScheduleArg::Cosine,
        }
    }
}

impl From<ScheduleArg> for LrSchedule {
    fn from(schedule: ScheduleArg) -> Self {
        match schedule {
            ScheduleArg::Constant => LrSchedule::Constant,
            ScheduleArg::Cosine => LrSchedule::Cosine,
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PriorArg {
    /// N(0, I)
    Normal,
    /// 10 Gaussians on a circle
    Mixture,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum GenLossArg {
    NonSaturating,
    Minimax,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Which model to train.
    #[arg(value_enum)]
    pub model: Model,
    #[arg(long, help = with_range("Passes over the training set (default: 5; 12 for the classifier)", ranges::EPOCHS.describe()))]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 128, help = with_range("Images per optimisation step", ranges::BATCH.describe()))]
    pub batch: usize,
    #[arg(long, help = with_range("Learning rate (default: 1e-3; 2e-4 for the GAN)", ranges::LR.describe()))]
    pub lr: Option<f64>,
    /// How the learning rate moves over the run (default: constant; cosine for the classifier).
    #[arg(long, value_enum)]
    pub lr_schedule: Option<ScheduleArg>,
    #[arg(long, help = with_range("λ: weight penalty (ae, default 1e-5), KL weight (vae, 1), adversarial weight (aae, 10)", ranges::LAMBDA.describe()))]
    pub lambda: Option<f64>,
    #[arg(long, help = with_range("Latent code size (default: 16; 64 for the GAN; 8 for the AAE)", ranges::LATENT.describe()))]
    pub latent: Option<usize>,
    /// Seed of the weights, the shuffles and the noise [range: any 64-bit whole number].
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The AAE's prior p(h).
    #[arg(long, value_enum, default_value_t = PriorArg::Normal)]
    pub prior: PriorArg,
    /// The GAN generator's loss.
    #[arg(long, value_enum, default_value_t = GenLossArg::NonSaturating)]
    pub gen_loss: GenLossArg,
    #[arg(long, default_value_t = 0.1, help = with_range("β: the classifier's reconstruction weight (0 turns the autoencoder off)", ranges::BETA.describe()))]
    pub beta: f64,
    /// The classifier's activation after each convolution (smooth ones make exact and
    /// closed-form Grad-CAM++ differ).
    #[arg(long, value_enum, default_value_t = ActivationArg::Relu)]
    pub activation: ActivationArg,
    #[arg(long, help = with_range("Train on the first N training images only (quick runs)", ranges::TRAIN_LIMIT.describe()))]
    pub train_limit: Option<usize>,
    #[arg(long, help = with_range("Evaluate on the first N test images only", ranges::TEST_LIMIT.describe()))]
    pub test_limit: Option<usize>,
    /// Classifier only: train on the training labels randomly permuted by this seed, so the
    /// model can only memorise (the data-randomisation sanity check: `cam --sanity
    /// --random-labels-checkpoint`). The test labels stay true.
    #[arg(long, value_name = "SEED")]
    pub random_labels: Option<u64>,
    /// Output folder (default: runs/<model>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue after the last epoch saved in --out.
    #[arg(long)]
    pub resume: bool,
    /// Fashion-MNIST folder (default: $FASHION_MNIST_DIR, /usr/share/datasets/fashion-mnist, ./data/fashion-mnist).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where to compute: `cpu`, `gpu` or `best` (a hardware GPU when there is one).
    #[arg(long, env = "FERROGRAD_DEVICE", default_value = "best")]
    pub device: String,
}

/// A flag's help with its range, as `--help` prints it.
pub fn with_range(text: &str, range: String) -> String {
    format!("{text} [range: {range}]")
}

/// The device a command runs on, from `--device` (or `FERROGRAD_DEVICE`), said on stderr.
pub fn pick_device(name: &str) -> Result<Device, Error> {
    let device =
        Device::parse(name).map_err(|e| Error::usage(format!("--device {name}: {}", e.message)))?;
    eprintln!("device: {}", device.describe());
    Ok(device)
}

pub fn config(args: &TrainArgs) -> TrainConfig {
    let kind = match args.model {
        Model::Ae => ModelKind::Ae,
        Model::Vae => ModelKind::Vae,
        Model::Gan => ModelKind::Gan,
        Model::Aae => ModelKind::Aae,
        Model::Classifier => ModelKind::Classifier,
    };
    let d = TrainConfig::defaults(kind);
    TrainConfig {
        epochs: args.epochs.unwrap_or(d.epochs),
        batch: args.batch,
        lr: args.lr.unwrap_or(d.lr),
        lr_schedule: args.lr_schedule.map_or(d.lr_schedule, LrSchedule::from),
        lambda: args.lambda.unwrap_or(d.lambda),
        latent: args.latent.unwrap_or(d.latent),
        seed: args.seed,
        prior: match args.prior {
            PriorArg::Normal => Prior::StandardNormal,
            PriorArg::Mixture => Prior::GaussianMixture { components: 10 },
        },
        generator_loss: match args.gen_loss {
            GenLossArg::NonSaturating => GeneratorLoss::NonSaturating,
            GenLossArg::Minimax => GeneratorLoss::Minimax,
        },
        beta: args.beta,
        activation: match args.activation {
            ActivationArg::Relu => ClassifierActivation::Relu,
            ActivationArg::Elu => ClassifierActivation::Elu,
            ActivationArg::Softplus => ClassifierActivation::Softplus,
        },
        train_limit: args.train_limit,
        test_limit: args.test_limit,
        random_labels: args.random_labels,
        ..d
    }
}

pub fn run_train(args: &TrainArgs) -> Result<ExitCode, Error> {
    // Every flag in its range before any work.
    config(args).validate()?;
    let device = pick_device(&args.device)?;
    // Weight decay drives weights toward zero; arithmetic on subnormal floats then slowed the
    // autoencoder's epochs from 13.8 s to 21.8 s. Flushed, they stay at 13.3 s, losses unchanged.
    ferrograd_kernels::flush_subnormals();
    let cfg = TrainConfig {
        device,
        ..config(args)
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(cfg.kind.name()));
    let data = FashionMnist::load(args.data.as_deref())?;
    eprintln!(
        "training {} on {} ({} train / {} test images) into {}",
        cfg.kind.name(),
        data.dir.display(),
        cfg.train_limit
            .unwrap_or(data.train.len)
            .min(data.train.len),
        cfg.test_limit.unwrap_or(data.test.len).min(data.test.len),
        out.display()
    );
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut on_step = |s: &StepInfo| {
        if s.step == 1 {
            bar.set_length(s.steps as u64);
            bar.set_position(0);
            bar.set_prefix(format!("epoch {}/{}", s.epoch, s.epochs));
        }
        bar.set_position(s.step as u64);
        bar.set_message(format!("loss {:.4}, {:.0} img/s", s.loss, s.images_per_s));
    };
    let summary = train::train(&cfg, &data, &out, args.resume, &mut on_step);
    bar.finish_and_clear();
    let summary = summary?;
    for tmp in &summary.removed_temporaries {
        eprintln!("removed {}, left by a run that was killed", tmp.display());
    }
    if summary.resumed_from > 0 {
        eprintln!("resumed after epoch {}", summary.resumed_from);
    }
    if !summary.missing_records.is_empty() {
        eprintln!(
            "warning: metrics.json had no record of epochs {:?} (the file was damaged or removed); \
             the weights are intact, but those epochs' figures are missing from it",
            summary.missing_records
        );
    }
    println!(
        "{:>5} {:>12} {:>12} {:>8} {:>10}",
        "epoch", "train loss", "test loss", "seconds", "images/s"
    );
    for r in &summary.records {
        let get = |m: &std::collections::BTreeMap<String, f64>| {
            m.get("loss").copied().unwrap_or(f64::NAN)
        };
        println!(
            "{:>5} {:>12.5} {:>12.5} {:>8.1} {:>10.0}",
            r.epoch,
            get(&r.train),
            get(&r.test),
            r.seconds,
            r.images_per_s
        );
    }
    println!(
        "wrote {}: checkpoint.safetensors, metrics.json, loss_curves.png and picture grids",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

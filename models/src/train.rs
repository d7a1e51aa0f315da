//! The training loop behind `ferrograd train`, and the evaluation behind `ferrograd eval`.
//!
//! Every epoch ends with the same files in the output folder, each written to a temporary file
//! and renamed, so an interrupted run leaves the last complete epoch intact:
//! `checkpoint.safetensors` (weights, batch-norm buffers, optimizer state, the configuration),
//! `metrics.json` (per-epoch training and test losses), `loss_curves.png`, and picture grids:
//! `reconstructions.png` (inputs above their reconstructions), `samples.png` (decoded prior
//! samples), `interpolation.png` (decodings along a line between two test images' codes).
//!
//! Randomness comes from streams derived from (seed, epoch), never carried over from step to
//! step, so a run resumed from a checkpoint continues exactly as an uninterrupted run would.

use crate::classifier::{Classifier, ClassifierActivation};
use crate::data::{FashionMnist, Split};
use crate::generative::{Aae, Autoencoder, Gan, GeneratorLoss, Losses, Model, Prior, Vae};
use crate::settings::{self, Count, Real};
use crate::Error;
use ferrograd_engine::{Device, Rng, Tensor};
use ferrograd_nn::checkpoint;
use ferrograd_nn::nn::Ctx;
use ferrograd_plot as plot;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The four models of the course's first part, and the classifier of its second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    Ae,
    Vae,
    Gan,
    Aae,
    Classifier,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Ae => "ae",
            ModelKind::Vae => "vae",
            ModelKind::Gan => "gan",
            ModelKind::Aae => "aae",
            ModelKind::Classifier => "classifier",
        }
    }
    pub fn parse(s: &str) -> Result<ModelKind, Error> {
        match s {
            "ae" => Ok(ModelKind::Ae),
            "vae" => Ok(ModelKind::Vae),
            "gan" => Ok(ModelKind::Gan),
            "aae" => Ok(ModelKind::Aae),
            "classifier" => Ok(ModelKind::Classifier),
            _ => Err(Error::Invalid {
                message: format!("unknown model '{s}': expected ae, vae, gan, aae or classifier"),
            }),
        }
    }
}

/// How the learning rate moves over a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrSchedule {
    /// The same rate at every step.
    Constant,
    /// lr_t = lr·½(1 + cos(π·t/T)) over the run's T steps (Loshchilov & Hutter 2017): large
    /// steps early, small ones to settle at the end.
    Cosine,
}

impl LrSchedule {
    pub fn name(self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
        }
    }
    pub fn parse(s: &str) -> Option<LrSchedule> {
        match s {
            "constant" => Some(LrSchedule::Constant),
            "cosine" => Some(LrSchedule::Cosine),
            _ => None,
        }
    }
    /// The rate at step `t` of `total` for base rate `lr`.
    pub fn rate(self, lr: f64, t: usize, total: usize) -> f64 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => {
                let progress = t as f64 / total.max(1) as f64;
                lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

/// Everything that defines a run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub kind: ModelKind,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub lr_schedule: LrSchedule,
    /// λ: the weight penalty (AE), the KL weight (VAE), the adversarial weight (AAE); unused by the GAN.
    pub lambda: f64,
    pub latent: usize,
    pub seed: u64,
    pub prior: Prior,
    pub generator_loss: GeneratorLoss,
    /// β: the classifier's reconstruction weight.
    pub beta: f64,
    /// The classifier's activation after each convolution.
    pub activation: ClassifierActivation,
    /// Train on the first n training images only (quick runs); `None` uses all 60,000.
    pub train_limit: Option<usize>,
    /// Evaluate on the first n test images only; `None` uses all 10,000.
    pub test_limit: Option<usize>,
    /// Train the classifier on its training labels randomly permuted by this seed (class
    /// counts kept, every image-label link broken; the test labels stay true): a model that
    /// can only memorise, for the data-randomisation sanity check of Adebayo et al. 2018.
    pub random_labels: Option<u64>,
    /// Where to train. Not part of a checkpoint: a run may resume on another device.
    pub device: Device,
}

impl TrainConfig {
    /// Sensible settings for each model (batch 128; 5 epochs at a constant rate for the
    /// generative models, 12 with cosine decay for the classifier).
    pub fn defaults(kind: ModelKind) -> TrainConfig {
        let (epochs, lr_schedule) = match kind {
            ModelKind::Classifier => (12, LrSchedule::Cosine),
            _ => (5, LrSchedule::Constant),
        };
        let (lr, lambda, latent) = match kind {
            ModelKind::Ae => (1e-3, 1e-5, 16),
            ModelKind::Vae => (1e-3, 1.0, 16),
            ModelKind::Gan => (2e-4, 0.0, 64),
            // λ = 10 keeps the code discriminator near chance without spoiling reconstruction.
            ModelKind::Aae => (1e-3, 10.0, 8),
            ModelKind::Classifier => (1e-3, 1e-5, 0),
        };
        TrainConfig {
            kind,
            epochs,
            batch: 128,
            lr,
            lr_schedule,
            lambda,
            latent,
            seed: 0,
            prior: Prior::StandardNormal,
            generator_loss: GeneratorLoss::NonSaturating,
            beta: 0.1,
            activation: ClassifierActivation::Relu,
            train_limit: None,
            test_limit: None,
            random_labels: None,
            device: Device::Cpu,
        }
    }

    /// The settings as checkpoint metadata (strings), so `eval` and `--resume` can rebuild the model.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let prior = match self.prior {
            Prior::StandardNormal => "normal".to_string(),
            Prior::GaussianMixture { components } => format!("mixture:{components}"),
        };
        let gen_loss = match self.generator_loss {
            GeneratorLoss::Minimax => "minimax",
            GeneratorLoss::NonSaturating => "non-saturating",
        };
        BTreeMap::from([
            ("model".into(), self.kind.name().into()),
            ("epochs".into(), self.epochs.to_string()),
            ("batch".into(), self.batch.to_string()),
            ("lr".into(), self.lr.to_string()),
            ("lr_schedule".into(), self.lr_schedule.name().into()),
            ("lambda".into(), self.lambda.to_string()),
            ("latent".into(), self.latent.to_string()),
            ("seed".into(), self.seed.to_string()),
            ("prior".into(), prior),
            ("generator_loss".into(), gen_loss.into()),
            ("beta".into(), self.beta.to_string()),
            ("activation".into(), self.activation.name().into()),
            (
                "train_limit".into(),
                self.train_limit.map_or("all".into(), |n| n.to_string()),
            ),
            (
                "test_limit".into(),
                self.test_limit.map_or("all".into(), |n| n.to_string()),
            ),
            (
                "random_labels".into(),
                self.random_labels.map_or("off".into(), |s| s.to_string()),
            ),
        ])
    }

    /// Reads [`TrainConfig::to_metadata`] back from the checkpoint at `origin`: every key must
    /// be present and well formed, and the settings must pass [`TrainConfig::validate`], the
    /// check the command line's flags pass, so a file cannot ask for what a flag may not.
    /// Errors name the file and the key.
    pub fn from_metadata(
        meta: &BTreeMap<String, String>,
        origin: &Path,
    ) -> Result<TrainConfig, Error> {
        if !meta.contains_key("model") {
            return Err(Error::metadata(
                origin,
                format!(
                    "not a checkpoint written by `ferrograd train`: its metadata has no 'model' \
                     key, nor the other settings ferrograd stores ({})",
                    checkpoint::origin_note(meta)
                ),
            ));
        }
        let get = |k: &str| {
            meta.get(k).map(String::as_str).ok_or_else(|| {
                Error::metadata(
                    origin,
                    format!("metadata lacks '{k}', one of the settings `ferrograd train` stores"),
                )
            })
        };
        let malformed = |k: &str, v: &str, what: &str| {
            Error::metadata(origin, format!("metadata '{k}' = '{v}' is not {what}"))
        };
        let whole = |k: &str| -> Result<usize, Error> {
            let v = get(k)?;
            settings::parse_whole(v).ok_or_else(|| malformed(k, v, "a whole number"))
        };
        let real = |k: &str| -> Result<f64, Error> {
            let v = get(k)?;
            v.parse::<f64>().map_err(|_| malformed(k, v, "a number"))
        };
        let limit = |k: &str| -> Result<Option<usize>, Error> {
            match get(k)? {
                "all" => Ok(None),
                v => settings::parse_whole(v)
                    .map(Some)
                    .ok_or_else(|| malformed(k, v, "'all' or a whole number")),
            }
        };
        let prior = match get("prior")? {
            "normal" => Prior::StandardNormal,
            v => match v.strip_prefix("mixture:").and_then(settings::parse_whole) {
                Some(components) => Prior::GaussianMixture { components },
                None => return Err(malformed("prior", v, "'normal' or 'mixture:K'")),
            },
        };
        let generator_loss = match get("generator_loss")? {
            "minimax" => GeneratorLoss::Minimax,
            "non-saturating" => GeneratorLoss::NonSaturating,
            v => return Err(malformed("generator_loss", v, "minimax or non-saturating")),
        };
        let kind =
            ModelKind::parse(get("model")?).map_err(|e| Error::metadata(origin, e.to_string()))?;
        let seed =
            settings::parse_seed("seed", "--seed", get("seed")?).map_err(|e| e.in_file(origin))?;
        let cfg = TrainConfig {
            kind,
            epochs: whole("epochs")?,
            batch: whole("batch")?,
            lr: real("lr")?,
            lr_schedule: LrSchedule::parse(get("lr_schedule")?).ok_or_else(|| {
                malformed(
                    "lr_schedule",
                    get("lr_schedule").unwrap_or(""),
                    "constant or cosine",
                )
            })?,
            lambda: real("lambda")?,
            latent: whole("latent")?,
            seed,
            prior,
            generator_loss,
            beta: real("beta")?,
            activation: ClassifierActivation::parse(get("activation")?).ok_or_else(|| {
                malformed(
                    "activation",
                    get("activation").unwrap_or(""),
                    "relu, elu or softplus",
                )
            })?,
            train_limit: limit("train_limit")?,
            test_limit: limit("test_limit")?,
            // Checkpoints from before the setting existed were trained on the true labels.
            random_labels: match meta.get("random_labels").map(String::as_str) {
                None | Some("off") => None,
                Some(v) => Some(
                    settings::parse_seed("random_labels", "--random-labels", v)
                        .map_err(|e| e.in_file(origin))?,
                ),
            },
            device: Device::Cpu,
        };
        cfg.validate().map_err(|e| e.in_file(origin))?;
        Ok(cfg)
    }

    /// Holds every setting to its range in [`ranges`]: the one check behind both the command
    /// line (before any work) and a loaded checkpoint's metadata. The error names the flag.
    pub fn validate(&self) -> Result<(), Error> {
        use ranges::*;
        EPOCHS.check(self.epochs)?;
        BATCH.check(self.batch)?;
        LR.check(self.lr)?;
        LAMBDA.check(self.lambda)?;
        BETA.check(self.beta)?;
        // The classifier has no latent code: the value is stored but never used.
        if self.kind != ModelKind::Classifier {
            LATENT.check(self.latent)?;
        }
        if let Prior::GaussianMixture { components } = self.prior {
            MIXTURE_COMPONENTS.check(components)?;
        }
        if let Some(n) = self.train_limit {
            TRAIN_LIMIT.check(n)?;
        }
        if let Some(n) = self.test_limit {
            TEST_LIMIT.check(n)?;
        }
        if let (Some(seed), false) = (self.random_labels, self.kind == ModelKind::Classifier) {
            return Err(Error::setting(
                "random_labels",
                "--random-labels",
                seed,
                "applies to the classifier only: the other models have no labels",
            ));
        }
        Ok(())
    }
}

/// The ranges of `ferrograd train`'s numeric settings (the help of each flag quotes them).
/// They are generous for real use and keep absurd values (a billion-wide code, a billion-image
/// batch) from reaching an allocation.
pub mod ranges {
    use super::{Count, Real};

    pub const EPOCHS: Count = Count::new("epochs", "--epochs", 1, 10_000);
    pub const BATCH: Count = Count::new("batch", "--batch", 1, 4096);
    pub const LR: Real = Real::above("lr", "--lr", 0.0, 10.0);
    pub const LAMBDA: Real = Real::closed("lambda", "--lambda", 0.0, 1e4);
    pub const BETA: Real = Real::closed("beta", "--beta", 0.0, 1e4);
    pub const LATENT: Count = Count::new("latent", "--latent", 1, 4096);
    /// Components of the AAE's mixture prior (the command line uses 10).
    pub const MIXTURE_COMPONENTS: Count = Count::new("prior", "--prior", 1, 1000);
    /// A limit above the split's size means the whole split.
    pub const TRAIN_LIMIT: Count = Count::new("train_limit", "--train-limit", 1, usize::MAX);
    pub const TEST_LIMIT: Count = Count::new("test_limit", "--test-limit", 1, usize::MAX);
}

/// The flag a metadata key comes from, for a `--resume` mismatch.
fn flag_of(key: &str) -> String {
    match key {
        "model" => "the model (train's first argument)".into(),
        "generator_loss" => "--gen-loss".into(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

/// A fresh model for `cfg`, its weights drawn from `cfg.seed`.
pub fn build_model(cfg: &TrainConfig) -> ferrograd_engine::Result<Box<dyn Model>> {
    let mut rng = Rng::new(cfg.seed);
    Ok(match cfg.kind {
        ModelKind::Ae => Box::new(Autoencoder::new(cfg.latent, cfg.lambda, cfg.lr, &mut rng)?),
        ModelKind::Vae => Box::new(Vae::new(cfg.latent, cfg.lambda, cfg.lr, &mut rng)?),
        ModelKind::Gan => Box::new(Gan::new(cfg.latent, cfg.generator_loss, cfg.lr, &mut rng)?),
        ModelKind::Aae => Box::new(Aae::new(
            cfg.latent, cfg.lambda, cfg.prior, cfg.lr, &mut rng,
        )?),
        ModelKind::Classifier => Box::new(build_classifier(cfg)?),
    })
}

/// A fresh classifier for `cfg`, its weights drawn from `cfg.seed`.
fn build_classifier(cfg: &TrainConfig) -> ferrograd_engine::Result<Classifier> {
    let mut rng = Rng::new(cfg.seed);
    Classifier::new(cfg.activation, cfg.beta, cfg.lambda, cfg.lr, &mut rng)
}

/// A checkpoint written by `train`, with its settings and epoch, every value checked: the
/// settings as flags are (see [`TrainConfig::from_metadata`]), the epoch a whole number from 1
/// to the planned epochs.
fn open_checkpoint(
    checkpoint_file: &Path,
) -> Result<(checkpoint::Checkpoint, TrainConfig, usize), Error> {
    let ckpt = checkpoint::load_training(checkpoint_file)?;
    let config = TrainConfig::from_metadata(&ckpt.metadata, checkpoint_file)?;
    let text = ckpt.meta("epoch")?;
    let epoch = settings::parse_whole(text)
        .filter(|e| (1..=config.epochs).contains(e))
        .ok_or_else(|| {
            Error::metadata(
                checkpoint_file,
                format!(
                    "metadata 'epoch' = '{text}' is not a whole number from 1 to {} (the epochs \
                     the run planned)",
                    config.epochs
                ),
            )
        })?;
    Ok((ckpt, config, epoch))
}

/// What a checkpoint is loaded for: going on with training needs the optimizer state beside
/// the weights; using the model needs the weights only.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Resume,
    Use,
}

/// Loads `ckpt` into `model` (built from the checkpoint's own settings) after checking that the
/// file holds exactly that model's tensors, with their shapes, all finite: with the optimizer
/// state when it is there (and always to resume), the weights alone otherwise.
fn restore_into(
    model: &mut dyn Model,
    ckpt: &checkpoint::Checkpoint,
    purpose: Purpose,
) -> Result<(), Error> {
    if ckpt.has_optimizer_state() {
        ckpt.check_tensors(&model.state().0)?;
        return model
            .load_state(&ckpt.tensors, &ckpt.metadata)
            .map_err(|e| Error::metadata(&ckpt.path, e.to_string()));
    }
    if purpose == Purpose::Resume {
        return Err(Error::metadata(
            &ckpt.path,
            format!(
                "holds the weights but no optimizer state ({} is missing), and resuming needs \
                 both: put that file back, or train afresh without --resume",
                checkpoint::optimizer_path(&ckpt.path).display()
            ),
        ));
    }
    let weights: Vec<(String, Tensor)> = model
        .state()
        .0
        .into_iter()
        .filter(|(name, _)| !name.starts_with(checkpoint::OPTIMIZER_PREFIX))
        .collect();
    ckpt.check_tensors(&weights)?;
    for (prefix, m) in model.modules() {
        crate::generative::load_module(m, prefix, &ckpt.tensors)
            .map_err(|e| Error::metadata(&ckpt.path, e.to_string()))?;
    }
    Ok(())
}

/// A random stream for one purpose in one epoch, the same on every run with this seed.
fn stream(seed: u64, epoch: usize, purpose: u64) -> Rng {
    Rng::new(
        seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ purpose.wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}
const SHUFFLE: u64 = 1;
const TRAINING: u64 = 2;
const EVALUATION: u64 = 3;
const PICTURES: u64 = 4;
const RECALIBRATION: u64 = 5;

/// Progress of one step, for a progress bar.
pub struct StepInfo {
    pub epoch: usize,
    pub epochs: usize,
    pub step: usize,
    pub steps: usize,
    pub loss: f64,
    pub images_per_s: f64,
}

/// One epoch's record in `metrics.json`.
#[derive(Clone, Debug)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train: BTreeMap<String, f64>,
    pub test: BTreeMap<String, f64>,
    pub seconds: f64,
    pub images_per_s: f64,
}

impl EpochRecord {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "epoch": self.epoch, "train": self.train, "test": self.test,
            "seconds": self.seconds, "images_per_s": self.images_per_s,
        })
    }
    fn from_json(v: &serde_json::Value) -> Option<EpochRecord> {
        let map = |k: &str| -> Option<BTreeMap<String, f64>> {
            v.get(k)?
                .as_object()?
                .iter()
                .map(|(n, x)| Some((n.clone(), x.as_f64()?)))
                .collect()
        };
        Some(EpochRecord {
            epoch: v.get("epoch")?.as_u64()? as usize,
            train: map("train")?,
            test: map("test")?,
            seconds: v.get("seconds")?.as_f64()?,
            images_per_s: v.get("images_per_s")?.as_f64()?,
        })
    }
}

/// Mean of each named loss over batches, weighted by batch size.
#[derive(Default)]
struct Averages {
    sums: BTreeMap<String, f64>,
    count: f64,
}

impl Averages {
    fn add(&mut self, losses: &Losses, n: usize) {
        for (k, v) in losses {
            *self.sums.entry(k.to_string()).or_default() += v * n as f64;
        }
        self.count += n as f64;
    }
    fn means(&self) -> BTreeMap<String, f64> {
        self.sums
            .iter()
            .map(|(k, v)| (k.clone(), v / self.count.max(1.0)))
            .collect()
    }
}

/// The test split's losses, in batches of 500.
pub fn evaluate_split(
    model: &dyn Model,
    split: &Split,
    seed: u64,
) -> Result<BTreeMap<String, f64>, Error> {
    let mut rng = Rng::new(seed);
    let mut avg = Averages::default();
    let indices: Vec<usize> = (0..split.len).collect();
    for chunk in indices.chunks(500) {
        let (x, labels) = split.batch_at(chunk)?;
        let x = x.to(model.device())?;
        avg.add(&model.eval_losses(&x, &labels, &mut rng)?, chunk.len());
    }
    Ok(avg.means())
}

fn checkpoint_path(out: &Path) -> PathBuf {
    out.join("checkpoint.safetensors")
}

/// Writes `text` to `path` atomically ([`checkpoint::write_atomically`]), the error naming it.
fn write_text(path: &Path, text: &str) -> Result<(), Error> {
    checkpoint::write_atomically(path, text.as_bytes()).map_err(|e| Error::File {
        path: path.to_path_buf(),
        message: format!("cannot write: {e}"),
    })
}

/// The picture grids of the current model.
fn save_pictures(
    model: &dyn Model,
    test: &Split,
    out: &Path,
    seed: u64,
    epoch: usize,
) -> Result<(), Error> {
    let images = |t: ferrograd_engine::Tensor| t.to_vec_f32();
    // Up to 16 test images in two rows, each row above its reconstructions.
    let shown = test.len.min(16) / 2 * 2;
    if shown > 0 {
        let (x, _) = test.batch_at(&(0..shown).collect::<Vec<_>>())?;
        if let Some(r) = model.reconstruct(&x.to(model.device())?) {
            let (x, r) = (x.to_vec_f32(), images(r?));
            let row = shown / 2 * PIXELS_PER_IMAGE;
            let grid = [&x[..row], &r[..row], &x[row..], &r[row..]].concat();
            plot::save_image_grid(
                &out.join("reconstructions.png"),
                &grid,
                1,
                28,
                28,
                shown / 2,
                3,
            )?;
        }
    }
    if let Some(s) = model.sample(64, &mut stream(seed, epoch, PICTURES)) {
        plot::save_image_grid(&out.join("samples.png"), &images(s?), 1, 28, 28, 8, 3)?;
    }
    let pairs = [(0usize, 1usize), (2, 3), (4, 5), (6, 7)];
    let mut rows = Vec::new();
    for (a, b) in pairs.into_iter().filter(|&(_, b)| b < test.len) {
        let (xa, xb) = (
            test.batch_at(&[a])?.0.to(model.device())?,
            test.batch_at(&[b])?.0.to(model.device())?,
        );
        match model.interpolate(&xa, &xb, 10) {
            Some(strip) => rows.extend(images(strip?)),
            None => break,
        }
    }
    if !rows.is_empty() {
        plot::save_image_grid(&out.join("interpolation.png"), &rows, 1, 28, 28, 10, 3)?;
    }
    if let Some(counts) = confusion_matrix(model, test)? {
        let accuracy =
            (0..10).map(|c| counts[c * 10 + c]).sum::<usize>() as f64 / test.len.max(1) as f64;
        let title = format!("Test confusion matrix, accuracy {:.2}%", 100.0 * accuracy);
        plot::save_confusion_matrix(
            &out.join("confusion_matrix.png"),
            &counts,
            &crate::data::CLASS_NAMES,
            &title,
        )?;
    }
    Ok(())
}

const PIXELS_PER_IMAGE: usize = 28 * 28;

/// counts[true·10 + predicted] over a split, for models that classify.
pub fn confusion_matrix(model: &dyn Model, split: &Split) -> Result<Option<Vec<usize>>, Error> {
    let mut counts = vec![0usize; 100];
    let indices: Vec<usize> = (0..split.len).collect();
    for chunk in indices.chunks(500) {
        let (x, labels) = split.batch_at(chunk)?;
        let Some(predicted) = model.predict(&x.to(model.device())?) else {
            return Ok(None);
        };
        for (y, p) in labels.iter().zip(predicted?) {
            counts[y * 10 + p] += 1;
        }
    }
    Ok(Some(counts))
}

/// Writes metrics.json for the epochs so far.
fn save_metrics(cfg: &TrainConfig, records: &[EpochRecord], out: &Path) -> Result<(), Error> {
    let json = serde_json::json!({
        "model": cfg.kind.name(),
        "config": cfg.to_metadata(),
        "epochs": records.iter().map(EpochRecord::to_json).collect::<Vec<_>>(),
    });
    let path = out.join("metrics.json");
    let text = serde_json::to_string_pretty(&json).map_err(|e| Error::File {
        path: path.clone(),
        message: format!("cannot write: {e}"),
    })?;
    write_text(&path, &text)
}

/// Draws loss_curves.png for the epochs so far.
fn save_loss_curves(cfg: &TrainConfig, records: &[EpochRecord], out: &Path) -> Result<(), Error> {
    let train: Vec<f64> = records
        .iter()
        .map(|r| r.train.get("loss").copied().unwrap_or(f64::NAN))
        .collect();
    let test: Vec<f64> = records
        .iter()
        .map(|r| r.test.get("loss").copied().unwrap_or(f64::NAN))
        .collect();
    let title = format!("{} loss per epoch", cfg.kind.name().to_uppercase());
    plot::save_line_plot(
        &out.join("loss_curves.png"),
        &title,
        "epoch",
        &[("train", &train), ("test", &test)],
    )?;
    Ok(())
}

/// The records of epochs 1..=`through` in `out`'s metrics.json, and the epochs it has no record
/// of. metrics.json is written before the checkpoint (see [`train`]), so after a crash it may
/// also hold the epoch after the checkpoint's: that one is dropped here and trained again. An
/// epoch is missing only when the file was damaged or removed.
fn records_until(out: &Path, through: usize) -> (Vec<EpochRecord>, Vec<usize>) {
    let metrics = std::fs::read_to_string(out.join("metrics.json")).ok();
    let json: Option<serde_json::Value> = metrics.and_then(|m| serde_json::from_str(&m).ok());
    let mut by_epoch = BTreeMap::new();
    if let Some(epochs) = json
        .as_ref()
        .and_then(|j| j.get("epochs"))
        .and_then(|e| e.as_array())
    {
        for r in epochs.iter().filter_map(EpochRecord::from_json) {
            if (1..=through).contains(&r.epoch) {
                by_epoch.insert(r.epoch, r);
            }
        }
    }
    let missing = (1..=through)
        .filter(|e| !by_epoch.contains_key(e))
        .collect();
    (by_epoch.into_values().collect(), missing)
}

/// Losses as "loss NaN, kl inf, reconstruction 210.3" for a message.
fn describe_losses(losses: &Losses) -> String {
    losses
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first tensor of `tensors` with a value that is not finite, described.
pub fn non_finite_state(tensors: &[(String, Tensor)]) -> Option<String> {
    tensors.iter().find_map(|(name, t)| {
        let values = t.to_vec_f64();
        let bad = values.iter().filter(|v| !v.is_finite()).count();
        let first = values.iter().find(|v| !v.is_finite())?;
        Some(format!(
            "`{name}` holds {bad} non-finite values of {} (such as {first})",
            values.len()
        ))
    })
}

/// What `train` did.
pub struct TrainSummary {
    pub records: Vec<EpochRecord>,
    /// The epoch the run resumed after (0 for a fresh run).
    pub resumed_from: usize,
    /// Epochs before the resume point that metrics.json had no record of (a damaged or removed
    /// file): their figures are lost, the weights are not.
    pub missing_records: Vec<usize>,
    /// Leftover temporary files of killed runs that were removed from the output folder.
    pub removed_temporaries: Vec<PathBuf>,
}

/// Trains `cfg.kind` on `data`, writing the files described in the module docs into `out`.
/// With `resume`, continues after the last epoch saved in `out`'s checkpoint.
///
/// Each epoch ends with, in this order: a check that every weight and optimizer state is
/// finite (a run whose Adam moments overflowed stops here, like one whose loss is NaN, with
/// the last checkpoint intact); metrics.json with the new epoch; the checkpoint; the loss
/// curves and pictures. metrics.json comes first so that a crash between the two writes leaves
/// a record of an epoch the checkpoint lacks (dropped and retrained on resume), never a
/// checkpoint with an epoch the record lacks.
pub fn train(
    cfg: &TrainConfig,
    data: &FashionMnist,
    out: &Path,
    resume: bool,
    on_step: &mut dyn FnMut(&StepInfo),
) -> Result<TrainSummary, Error> {
    cfg.validate().map_err(|e| Error::Invalid {
        message: format!("invalid setting: {e}"),
    })?;
    std::fs::create_dir_all(out).map_err(|e| Error::Invalid {
        message: format!("cannot create output folder {}: {e}", out.display()),
    })?;
    let removed_temporaries =
        checkpoint::remove_stale_temporaries(out).map_err(|e| Error::File {
            path: out.to_path_buf(),
            message: format!("cannot look for leftover temporary files: {e}"),
        })?;
    let mut train_split = cfg
        .train_limit
        .map_or_else(|| data.train.clone(), |n| data.train.subset(n));
    if let Some(seed) = cfg.random_labels {
        Rng::new(seed).shuffle(&mut train_split.labels);
    }
    let test_split = cfg
        .test_limit
        .map_or_else(|| data.test.clone(), |n| data.test.subset(n));
    if train_split.len == 0 || test_split.len == 0 {
        return Err(Error::Data {
            path: Some(data.dir.clone()),
            message: format!(
                "the training or test split is empty ({} / {} images): nothing to train on",
                train_split.len, test_split.len
            ),
        });
    }
    let mut model = build_model(cfg)?;
    model.move_to(cfg.device)?;
    let device = cfg.device;
    let mut records = Vec::new();
    let mut missing_records = Vec::new();
    let mut start = 0;
    // The epoch whose checkpoint is on disk, for the messages of a run that stops.
    let mut saved_epoch: Option<usize> = None;
    let ckpt_path = checkpoint_path(out);
    if resume && checkpoint::probe(&ckpt_path)? {
        let (ckpt, saved, epoch) = open_checkpoint(&ckpt_path)?;
        let comparable = TrainConfig {
            epochs: cfg.epochs,
            device: cfg.device,
            ..saved
        };
        if let Some(diff) =
            settings::differences(&comparable.to_metadata(), &cfg.to_metadata(), &flag_of)
        {
            return Err(Error::Invalid {
                message: format!(
                "{} was made with other settings: {diff}. Resume with the same flags, or choose \
                 another --out",
                ckpt_path.display()
            ),
            });
        }
        if epoch >= cfg.epochs {
            return Err(Error::Invalid {
                message: format!(
                "--epochs {}: {} already holds epoch {epoch}, so there is nothing left to train; \
                 ask for more (--epochs {} or more) to continue",
                cfg.epochs,
                ckpt_path.display(),
                epoch + 1
            ),
            });
        }
        restore_into(&mut *model, &ckpt, Purpose::Resume)?;
        start = epoch;
        saved_epoch = Some(epoch);
        (records, missing_records) = records_until(out, start);
    }
    let kept = |saved: Option<usize>| match saved {
        Some(e) => format!(
            "the checkpoint of epoch {e} in {} is kept",
            ckpt_path.display()
        ),
        None => "no checkpoint was written".to_string(),
    };
    for epoch in start..cfg.epochs {
        let t0 = Instant::now();
        let mut avg = Averages::default();
        let mut ctx = Ctx {
            training: true,
            rng: stream(cfg.seed, epoch, TRAINING),
        };
        let batches = train_split.batches(cfg.batch, &mut stream(cfg.seed, epoch, SHUFFLE))?;
        let steps = batches.len_batches();
        let mut seen = 0usize;
        for (step, (x, labels)) in batches.enumerate() {
            let x = x.to(device)?;
            let n = x.dim(0)?;
            let lr = cfg
                .lr_schedule
                .rate(cfg.lr, epoch * steps + step, cfg.epochs * steps);
            for (_, opt) in model.optimizers_mut() {
                opt.set_lr(lr);
            }
            let losses = model.train_step(&x, &labels, &mut ctx)?;
            let loss = losses
                .iter()
                .find(|(k, _)| *k == "loss")
                .map_or(f64::NAN, |(_, v)| *v);
            if !loss.is_finite() {
                return Err(Error::Diverged { message: format!(
                    "training diverged: loss {loss} at epoch {}, step {} ({}); {}. Try a lower --lr.",
                    epoch + 1,
                    step + 1,
                    describe_losses(&losses),
                    kept(saved_epoch)
                )});
            }
            avg.add(&losses, n);
            seen += n;
            on_step(&StepInfo {
                epoch: epoch + 1,
                epochs: cfg.epochs,
                step: step + 1,
                steps,
                loss,
                images_per_s: seen as f64 / t0.elapsed().as_secs_f64(),
            });
        }
        model.recalibrate(&train_split, &mut stream(cfg.seed, epoch, RECALIBRATION))?;
        let seconds = t0.elapsed().as_secs_f64();
        let test = evaluate_split(
            &*model,
            &test_split,
            stream(cfg.seed, epoch, EVALUATION).next_u64(),
        )?;
        let (tensors, mut metadata) = model.state();
        // A second moment that overflowed to inf leaves the loss finite (the step becomes 0)
        // and the run going nowhere: stop like a NaN loss, before anything is written.
        if let Some(what) = non_finite_state(&tensors) {
            return Err(Error::Diverged {
                message: format!(
                    "training diverged: at the end of epoch {}, {what}; {}. Try a lower --lr or \
                 --lambda.",
                    epoch + 1,
                    kept(saved_epoch)
                ),
            });
        }
        records.push(EpochRecord {
            epoch: epoch + 1,
            train: avg.means(),
            test,
            seconds,
            images_per_s: seen as f64 / seconds,
        });
        // The record first, then the checkpoint it describes (see the doc comment).
        save_metrics(cfg, &records, out)?;
        metadata.extend(cfg.to_metadata());
        metadata.insert("epoch".into(), (epoch + 1).to_string());
        checkpoint::save_training(&ckpt_path, &tensors, &metadata)?;
        saved_epoch = Some(epoch + 1);
        save_loss_curves(cfg, &records, out)?;
        save_pictures(&*model, &test_split, out, cfg.seed, epoch)?;
    }
    Ok(TrainSummary {
        records,
        resumed_from: start,
        missing_records,
        removed_temporaries,
    })
}

/// A checkpoint's test-set figures, for `ferrograd eval`.
pub struct EvalReport {
    pub config: TrainConfig,
    pub epoch: usize,
    pub test: BTreeMap<String, f64>,
}

/// Rebuilds the model saved in `checkpoint_file` and evaluates it on the whole test set:
/// reconstruction MSE for models with an encoder, the negative ELBO (nats per image) for the VAE.
pub fn evaluate(
    checkpoint_file: &Path,
    data: &FashionMnist,
    device: Device,
) -> Result<EvalReport, Error> {
    let (model, config, epoch) = load_model(checkpoint_file, device)?;
    let test = evaluate_split(&*model, &data.test, 0)?;
    Ok(EvalReport {
        config,
        epoch,
        test,
    })
}

/// The model saved in `checkpoint_file`, rebuilt from its own settings and moved to `device`,
/// with those settings and its epoch.
pub fn load_model(
    checkpoint_file: &Path,
    device: Device,
) -> Result<(Box<dyn Model>, TrainConfig, usize), Error> {
    let (ckpt, config, epoch) = open_checkpoint(checkpoint_file)?;
    let mut model = build_model(&config)?;
    restore_into(&mut *model, &ckpt, Purpose::Use)?;
    model.move_to(device)?;
    Ok((model, config, epoch))
}

/// A classifier saved by `train classifier`, with its settings and epoch, for explaining it.
pub fn load_classifier(checkpoint_file: &Path) -> Result<(Classifier, TrainConfig, usize), Error> {
    let (ckpt, config, epoch) = open_checkpoint(checkpoint_file)?;
    if config.kind != ModelKind::Classifier {
        return Err(Error::Invalid {
            message: format!(
                "{} holds a {} model, not a classifier: train one with `ferrograd train \
                 classifier`",
                checkpoint_file.display(),
                config.kind.name()
            ),
        });
    }
    let mut model = build_classifier(&config)?;
    restore_into(&mut model, &ckpt, Purpose::Use)?;
    Ok((model, config, epoch))
}

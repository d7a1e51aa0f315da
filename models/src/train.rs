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

use crate::checkpoint;
use crate::classifier::{Classifier, ClassifierActivation};
use crate::data::{FashionMnist, Split};
use crate::generative::{Aae, Autoencoder, Gan, GeneratorLoss, Losses, Model, Prior, Vae};
use crate::nn::Ctx;
use crate::plot;
use ferrograd_engine::{Device, Rng};
use std::collections::BTreeMap;
use std::fmt;
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
    pub fn parse(s: &str) -> Result<ModelKind, TrainError> {
        match s {
            "ae" => Ok(ModelKind::Ae),
            "vae" => Ok(ModelKind::Vae),
            "gan" => Ok(ModelKind::Gan),
            "aae" => Ok(ModelKind::Aae),
            "classifier" => Ok(ModelKind::Classifier),
            _ => Err(TrainError(format!(
                "unknown model '{s}': expected ae, vae, gan, aae or classifier"
            ))),
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
        ])
    }

    /// Reads [`TrainConfig::to_metadata`] back; every key must be present and well formed.
    pub fn from_metadata(meta: &BTreeMap<String, String>) -> Result<TrainConfig, TrainError> {
        let get = |k: &str| {
            meta.get(k)
                .map(String::as_str)
                .ok_or_else(|| TrainError(format!("checkpoint metadata lacks '{k}'")))
        };
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, TrainError> {
            v.parse().map_err(|_| {
                TrainError(format!(
                    "checkpoint metadata '{k}' = '{v}' is not a valid number"
                ))
            })
        }
        let limit = |k: &str| -> Result<Option<usize>, TrainError> {
            match get(k)? {
                "all" => Ok(None),
                v => num(k, v).map(Some),
            }
        };
        let prior = match get("prior")? {
            "normal" => Prior::StandardNormal,
            v => match v.strip_prefix("mixture:") {
                Some(k) => Prior::GaussianMixture {
                    components: num("prior", k)?,
                },
                None => {
                    return Err(TrainError(format!(
                        "checkpoint metadata 'prior' = '{v}' is neither 'normal' nor 'mixture:K'"
                    )))
                }
            },
        };
        let generator_loss = match get("generator_loss")? {
            "minimax" => GeneratorLoss::Minimax,
            "non-saturating" => GeneratorLoss::NonSaturating,
            v => {
                return Err(TrainError(format!(
                    "checkpoint metadata 'generator_loss' = '{v}' is unknown"
                )))
            }
        };
        Ok(TrainConfig {
            kind: ModelKind::parse(get("model")?)?,
            epochs: num("epochs", get("epochs")?)?,
            batch: num("batch", get("batch")?)?,
            lr: num("lr", get("lr")?)?,
            lr_schedule: LrSchedule::parse(get("lr_schedule")?).ok_or_else(|| {
                TrainError("checkpoint metadata 'lr_schedule' is not constant or cosine".into())
            })?,
            lambda: num("lambda", get("lambda")?)?,
            latent: num("latent", get("latent")?)?,
            seed: num("seed", get("seed")?)?,
            prior,
            generator_loss,
            beta: num("beta", get("beta")?)?,
            activation: ClassifierActivation::parse(get("activation")?).ok_or_else(|| {
                TrainError("checkpoint metadata 'activation' is not relu, elu or softplus".into())
            })?,
            train_limit: limit("train_limit")?,
            test_limit: limit("test_limit")?,
            device: Device::Cpu,
        })
    }

    fn validate(&self) -> Result<(), TrainError> {
        let bad = |what: String| Err(TrainError(format!("invalid setting: {what}")));
        if self.batch == 0 {
            return bad("--batch must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("--lr must be positive, got {}", self.lr));
        }
        if !(self.lambda >= 0.0 && self.lambda.is_finite()) {
            return bad(format!(
                "--lambda must be non-negative, got {}",
                self.lambda
            ));
        }
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return bad(format!("--beta must be non-negative, got {}", self.beta));
        }
        if self.latent == 0 && self.kind != ModelKind::Classifier {
            return bad("--latent must be at least 1".into());
        }
        if matches!(self.prior, Prior::GaussianMixture { components: 0 }) {
            return bad("the mixture prior needs at least one component".into());
        }
        Ok(())
    }
}

/// A failed run or evaluation, with a message that says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainError(pub String);

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for TrainError {}

macro_rules! into_train_error {
    ($($t:ty),*) => {$(
        impl From<$t> for TrainError {
            fn from(e: $t) -> Self {
                TrainError(e.to_string())
            }
        }
    )*};
}
into_train_error!(
    ferrograd_engine::Error,
    crate::data::DataError,
    checkpoint::CheckpointError,
    plot::PlotError,
    std::io::Error,
    serde_json::Error
);

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

/// A checkpoint with the settings and epoch it was saved with.
fn open_checkpoint(
    checkpoint_file: &Path,
) -> Result<(checkpoint::Checkpoint, TrainConfig, usize), TrainError> {
    let ckpt = checkpoint::load(checkpoint_file)?;
    let config = TrainConfig::from_metadata(&ckpt.metadata)?;
    let epoch = ckpt.meta("epoch")?.parse().unwrap_or(0);
    Ok((ckpt, config, epoch))
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
) -> Result<BTreeMap<String, f64>, TrainError> {
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

/// Writes `text` to `path` through a temporary file and a rename.
fn write_atomically(path: &Path, text: &str) -> Result<(), TrainError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| TrainError(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError(format!("{}: {e}", path.display())))
}

/// The picture grids of the current model.
fn save_pictures(
    model: &dyn Model,
    test: &Split,
    out: &Path,
    seed: u64,
    epoch: usize,
) -> Result<(), TrainError> {
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
pub fn confusion_matrix(
    model: &dyn Model,
    split: &Split,
) -> Result<Option<Vec<usize>>, TrainError> {
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

/// Writes metrics.json and the loss curves for the epochs so far.
fn save_metrics(cfg: &TrainConfig, records: &[EpochRecord], out: &Path) -> Result<(), TrainError> {
    let json = serde_json::json!({
        "model": cfg.kind.name(),
        "config": cfg.to_metadata(),
        "epochs": records.iter().map(EpochRecord::to_json).collect::<Vec<_>>(),
    });
    write_atomically(
        &out.join("metrics.json"),
        &serde_json::to_string_pretty(&json)?,
    )?;
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

/// What `train` did.
pub struct TrainSummary {
    pub records: Vec<EpochRecord>,
    /// The epoch the run resumed after (0 for a fresh run).
    pub resumed_from: usize,
}

/// Trains `cfg.kind` on `data`, writing the files described in the module docs into `out`.
/// With `resume`, continues after the last epoch saved in `out`'s checkpoint.
pub fn train(
    cfg: &TrainConfig,
    data: &FashionMnist,
    out: &Path,
    resume: bool,
    on_step: &mut dyn FnMut(&StepInfo),
) -> Result<TrainSummary, TrainError> {
    cfg.validate()?;
    std::fs::create_dir_all(out).map_err(|e| {
        TrainError(format!(
            "cannot create output folder {}: {e}",
            out.display()
        ))
    })?;
    let train_split = cfg
        .train_limit
        .map_or_else(|| data.train.clone(), |n| data.train.subset(n));
    let test_split = cfg
        .test_limit
        .map_or_else(|| data.test.clone(), |n| data.test.subset(n));
    let mut model = build_model(cfg)?;
    model.move_to(cfg.device)?;
    let device = cfg.device;
    let mut records = Vec::new();
    let mut start = 0;
    let ckpt_path = checkpoint_path(out);
    if resume && ckpt_path.exists() {
        let ckpt = checkpoint::load(&ckpt_path)?;
        let saved = TrainConfig::from_metadata(&ckpt.metadata)?;
        let comparable = TrainConfig {
            epochs: cfg.epochs,
            device: cfg.device,
            ..saved.clone()
        };
        if &comparable != cfg {
            return Err(TrainError(format!(
                "{} was made with other settings ({:?}); resume with the same flags, or choose another --out",
                ckpt_path.display(),
                saved.to_metadata()
            )));
        }
        model.load_state(&ckpt.tensors, &ckpt.metadata)?;
        start = ckpt.meta("epoch")?.parse().map_err(|_| {
            TrainError(format!(
                "{}: metadata 'epoch' is not a number",
                ckpt_path.display()
            ))
        })?;
        let metrics = std::fs::read_to_string(out.join("metrics.json")).ok();
        let json: Option<serde_json::Value> = metrics.and_then(|m| serde_json::from_str(&m).ok());
        if let Some(epochs) = json
            .as_ref()
            .and_then(|j| j.get("epochs"))
            .and_then(|e| e.as_array())
        {
            records = epochs
                .iter()
                .filter_map(EpochRecord::from_json)
                .filter(|r| r.epoch <= start)
                .collect();
        }
    }
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
                let kept = if epoch == 0 {
                    "no checkpoint was written yet".to_string()
                } else {
                    format!(
                        "the checkpoint of epoch {epoch} in {} is kept",
                        ckpt_path.display()
                    )
                };
                return Err(TrainError(format!("training diverged: loss {loss} at epoch {}, step {} (all losses: {losses:?}); {kept}. Try a lower --lr.", epoch + 1, step + 1)));
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
        records.push(EpochRecord {
            epoch: epoch + 1,
            train: avg.means(),
            test,
            seconds,
            images_per_s: seen as f64 / seconds,
        });
        // The checkpoint first: the other files describe it.
        let (tensors, mut metadata) = model.state();
        metadata.extend(cfg.to_metadata());
        metadata.insert("epoch".into(), (epoch + 1).to_string());
        checkpoint::save(&ckpt_path, &tensors, &metadata)?;
        save_metrics(cfg, &records, out)?;
        save_pictures(&*model, &test_split, out, cfg.seed, epoch)?;
    }
    Ok(TrainSummary {
        records,
        resumed_from: start,
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
) -> Result<EvalReport, TrainError> {
    let (ckpt, config, epoch) = open_checkpoint(checkpoint_file)?;
    let mut model = build_model(&config)?;
    model.load_state(&ckpt.tensors, &ckpt.metadata)?;
    model.move_to(device)?;
    let test = evaluate_split(&*model, &data.test, 0)?;
    Ok(EvalReport {
        config,
        epoch,
        test,
    })
}

/// A classifier saved by `train classifier`, with its settings and epoch, for explaining it.
pub fn load_classifier(
    checkpoint_file: &Path,
) -> Result<(Classifier, TrainConfig, usize), TrainError> {
    let (ckpt, config, epoch) = open_checkpoint(checkpoint_file)?;
    if config.kind != ModelKind::Classifier {
        return Err(TrainError(format!(
            "{} holds a {} model, not a classifier: train one with `ferrograd train classifier`",
            checkpoint_file.display(),
            config.kind.name()
        )));
    }
    let mut model = build_classifier(&config)?;
    model.load_state(&ckpt.tensors, &ckpt.metadata)?;
    Ok((model, config, epoch))
}

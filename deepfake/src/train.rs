//! Training the face-swap model: batches of both identities, augmented and warped, a preview grid
//! every so many steps, and atomic, resumable checkpoints.
//!
//! Files in the output folder:
//! - `checkpoint.safetensors`: weights, optimizer state, the settings and the step count;
//! - `preview.png` (latest) and `preview_NNNNNN.png`: rows of held-out faces, columns
//!   x, D_A(E(x)), D_B(E(x)), so a reconstruction and a swap sit side by side;
//! - `metrics.json` and `loss_curves.png`: the losses, averaged over each logging interval.

use crate::augment::{augment_pair_and_affine, Augment};
use crate::faces::{
    batch_tensor, feature_weights, list_identities, load_identity, Identity, LoadOptions,
};
use crate::model::{FaceSwap, PriorKind, Side, StepLosses, SwapConfig};
use crate::picture::save_face_grid;
use ferrograd_engine::{Device, Result as EngineResult, Rng, Tensor};
use ferrograd_models::settings::{self, Count, Real};
use ferrograd_models::train::LrSchedule;

use crate::Error;
use ferrograd_nn::checkpoint;
use ferrograd_nn::nn::Ctx;
use ferrograd_plot::save_line_plot;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything a face-swap run depends on.
#[derive(Clone, Debug, PartialEq)]
pub struct DeepfakeConfig {
    pub faces: PathBuf,
    pub a: String,
    pub b: String,
    pub steps: usize,
    /// The first this many of the `steps` are pretraining: both decoders learn to draw the
    /// training faces of every identity in `faces` ([`Pair::pretraining_faces`]), not only
    /// their own, before each learns its own person. DeepFaceLab pretrains on a generic face
    /// set so that a decoder has seen more poses, expressions and lighting than one person's
    /// few hundred photos hold. 0: none.
    pub pretrain_steps: usize,
    /// Faces of each identity per step.
    pub batch: usize,
    pub seed: u64,
    pub model: SwapConfig,
    /// How the learning rate `model.lr` moves over the `steps`.
    pub lr_schedule: LrSchedule,
    /// Steps between preview grids and between checkpoints.
    pub preview_every: usize,
    pub checkpoint_every: usize,
    /// Fraction of each identity's faces held out for evaluation.
    pub held_out_fraction: f64,
    /// At most this many faces per identity (quick runs, tests).
    pub limit: Option<usize>,
    pub skip_bad: bool,
    /// Where to train. Not saved: a run may resume on another device.
    pub device: Device,
}

impl DeepfakeConfig {
    /// The settings of the README's run: George W. Bush and Colin Powell, the two identities with
    /// the most photographs in the shared data (530 and 236), 16,000 steps (58 minutes on 2
    /// cores).
    pub fn defaults(faces: PathBuf) -> DeepfakeConfig {
        DeepfakeConfig {
            faces,
            a: "George_W_Bush".into(),
            b: "Colin_Powell".into(),
            steps: 16_000,
            pretrain_steps: 0,
            batch: 16,
            seed: 0,
            model: SwapConfig::default(),
            lr_schedule: LrSchedule::Cosine,
            preview_every: 500,
            checkpoint_every: 500,
            held_out_fraction: 0.1,
            limit: None,
            skip_bad: false,
            device: Device::Cpu,
        }
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            held_out_fraction: self.held_out_fraction,
            seed: self.seed,
            skip_bad: self.skip_bad,
            limit: self.limit,
            ..LoadOptions::default()
        }
    }

    /// The settings as checkpoint metadata (strings), so that a checkpoint says how it was made.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put("model", "deepfake".into());
        put("faces", self.faces.display().to_string());
        put("a", self.a.clone());
        put("b", self.b.clone());
        put("steps", self.steps.to_string());
        put("pretrain_steps", self.pretrain_steps.to_string());
        put("batch", self.batch.to_string());
        put("seed", self.seed.to_string());
        put("latent", self.model.latent.to_string());
        put("prior", self.model.prior.name().into());
        put("prior_weight", self.model.prior_weight.to_string());
        put("lr", self.model.lr.to_string());
        put("lr_schedule", self.lr_schedule.name().into());
        put("dssim_weight", self.model.dssim_weight.to_string());
        put("ema_decay", self.model.ema_decay.to_string());
        put("identity_weight", self.model.identity_weight.to_string());
        put("eye_multiplier", self.model.eye_multiplier.to_string());
        put("mouth_multiplier", self.model.mouth_multiplier.to_string());
        put("held_out_fraction", self.held_out_fraction.to_string());
        put(
            "limit",
            self.limit.map_or_else(|| "all".into(), |n| n.to_string()),
        );
        m
    }

    /// Reads [`DeepfakeConfig::to_metadata`] back from the checkpoint at `origin`: every key
    /// must be present and well formed, and the settings must pass
    /// [`DeepfakeConfig::validate`], the check the command line's flags pass. Errors name the
    /// file and the key.
    pub fn from_metadata(
        meta: &BTreeMap<String, String>,
        origin: &Path,
    ) -> Result<DeepfakeConfig, Error> {
        let Some(model) = meta.get("model") else {
            return Err(Error::metadata(
                origin,
                format!(
                    "not a face-swap checkpoint of `ferrograd deepfake train`: its metadata has \
                     no 'model' key, nor the other settings ferrograd stores ({})",
                    checkpoint::origin_note(meta)
                ),
            ));
        };
        if model != "deepfake" {
            return Err(Error::metadata(
                origin,
                format!("a '{model}' checkpoint, not a face-swap one"),
            ));
        }
        let get = |k: &str| {
            meta.get(k).map(String::as_str).ok_or_else(|| {
                Error::metadata(
                    origin,
                    format!(
                        "metadata lacks '{k}', one of the settings `ferrograd deepfake train` \
                         stores"
                    ),
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
        let whole_or = |k: &str, missing: usize| -> Result<usize, Error> {
            match meta.get(k) {
                Some(_) => whole(k),
                None => Ok(missing),
            }
        };
        let real = |k: &str| -> Result<f64, Error> {
            let v = get(k)?;
            v.parse::<f64>().map_err(|_| malformed(k, v, "a number"))
        };
        // A setting added later: checkpoints from before it trained as `missing` says.
        let real_or = |k: &str, missing: f64| -> Result<f64, Error> {
            match meta.get(k) {
                Some(_) => real(k),
                None => Ok(missing),
            }
        };
        let prior_name = get("prior")?;
        let prior = PriorKind::parse(prior_name)
            .ok_or_else(|| malformed("prior", prior_name, "adversarial or vae"))?;
        let limit = match get("limit")? {
            "all" => None,
            v => Some(
                settings::parse_whole(v)
                    .ok_or_else(|| malformed("limit", v, "'all' or a whole number"))?,
            ),
        };
        // Checkpoints from before the setting trained at a constant rate.
        let lr_schedule = match meta.get("lr_schedule") {
            None => LrSchedule::Constant,
            Some(v) => LrSchedule::parse(v)
                .ok_or_else(|| malformed("lr_schedule", v, "constant or cosine"))?,
        };
        let seed = settings::parse_seed("seed", "--seed", get("seed")?)
            .map_err(|e| Error::from(e.in_file(origin)))?;
        let cfg = DeepfakeConfig {
            faces: PathBuf::from(get("faces")?),
            a: get("a")?.to_string(),
            b: get("b")?.to_string(),
            steps: whole("steps")?,
            // Before the setting: no pretraining.
            pretrain_steps: whole_or("pretrain_steps", 0)?,
            batch: whole("batch")?,
            seed,
            model: SwapConfig {
                latent: whole("latent")?,
                prior,
                prior_weight: real("prior_weight")?,
                lr: real("lr")?,
                // Before these settings: L1 alone, no average, no critic, every pixel alike.
                dssim_weight: real_or("dssim_weight", 0.0)?,
                ema_decay: real_or("ema_decay", 0.0)?,
                identity_weight: real_or("identity_weight", 0.0)?,
                eye_multiplier: real_or("eye_multiplier", 1.0)?,
                mouth_multiplier: real_or("mouth_multiplier", 1.0)?,
            },
            lr_schedule,
            preview_every: 0,
            checkpoint_every: 0,
            held_out_fraction: real("held_out_fraction")?,
            limit,
            skip_bad: false,
            device: Device::Cpu,
        };
        cfg.validate().map_err(|e| Error::from(e.in_file(origin)))?;
        Ok(cfg)
    }

    /// Holds every setting to its range in [`ranges`], and the two identities to be two: the
    /// one check behind both the command line (before any work) and a loaded checkpoint's
    /// metadata. The error names the flag.
    pub fn validate(&self) -> Result<(), ferrograd_models::Error> {
        use ranges::*;
        for (key, flag, name) in [("a", "--a", &self.a), ("b", "--b", &self.b)] {
            if name.is_empty() {
                return Err(ferrograd_models::Error::setting(
                    key,
                    flag,
                    "''",
                    "must name an identity folder",
                ));
            }
        }
        if self.a == self.b {
            return Err(ferrograd_models::Error::setting(
                "b",
                "--b",
                &self.b,
                "is --a too: a swap needs two identities",
            ));
        }
        STEPS.check(self.steps)?;
        PRETRAIN_STEPS.check(self.pretrain_steps)?;
        if self.pretrain_steps >= self.steps {
            return Err(ferrograd_models::Error::setting(
                "pretrain_steps",
                "--pretrain-steps",
                self.pretrain_steps,
                format!(
                    "leaves none of the {} --steps for the pair itself: pretrain for fewer",
                    self.steps
                ),
            ));
        }
        BATCH.check(self.batch)?;
        LATENT.check(self.model.latent)?;
        LR.check(self.model.lr)?;
        PRIOR_WEIGHT.check(self.model.prior_weight)?;
        DSSIM_WEIGHT.check(self.model.dssim_weight)?;
        EMA_DECAY.check(self.model.ema_decay)?;
        IDENTITY_WEIGHT.check(self.model.identity_weight)?;
        EYE_MULTIPLIER.check(self.model.eye_multiplier)?;
        MOUTH_MULTIPLIER.check(self.model.mouth_multiplier)?;
        PREVIEW_EVERY.check(self.preview_every)?;
        PREVIEW_EVERY.check(self.checkpoint_every)?;
        HELD_OUT.check(self.held_out_fraction)?;
        if let Some(n) = self.limit {
            LIMIT.check(n)?;
        }
        Ok(())
    }
}

/// The ranges of `ferrograd deepfake train`'s numeric settings (the help of each flag quotes
/// them), generous for real use and far below what would exhaust memory.
pub mod ranges {
    use super::{Count, Real};

    pub const STEPS: Count = Count::new("steps", "--steps", 1, 1_000_000);
    /// 0: none; below `steps` too (checked beside it).
    pub const PRETRAIN_STEPS: Count =
        Count::new("pretrain_steps", "--pretrain-steps", 0, 1_000_000);
    /// Faces of each identity per step.
    pub const BATCH: Count = Count::new("batch", "--batch", 1, 256);
    pub const LATENT: Count = Count::new("latent", "--latent", 1, 2048);
    pub const LR: Real = Real::above("lr", "--lr", 0.0, 10.0);
    pub const PRIOR_WEIGHT: Real = Real::closed("prior_weight", "--prior-weight", 0.0, 1e4);
    pub const DSSIM_WEIGHT: Real = Real::closed("dssim_weight", "--dssim-weight", 0.0, 1e4);
    pub const IDENTITY_WEIGHT: Real =
        Real::closed("identity_weight", "--identity-weight", 0.0, 1e4);
    /// 1: an eye pixel counts as any other; below 1 would make blur there cheaper.
    pub const EYE_MULTIPLIER: Real = Real::closed("eye_multiplier", "--eye-multiplier", 1.0, 100.0);
    pub const MOUTH_MULTIPLIER: Real =
        Real::closed("mouth_multiplier", "--mouth-multiplier", 1.0, 100.0);
    /// 0: no weight average; below 1, or it would never move.
    pub const EMA_DECAY: Real = Real {
        below_max: true,
        ..Real::closed("ema_decay", "--ema-decay", 0.0, 1.0)
    };
    /// 0: only at the end.
    pub const PREVIEW_EVERY: Count = Count::new("preview_every", "--preview-every", 0, 1_000_000);
    pub const HELD_OUT: Real = Real::open("held_out_fraction", "--held-out", 0.0, 1.0);
    /// At least one face to train on and one held out.
    pub const LIMIT: Count = Count::new("limit", "--limit", 2, usize::MAX);
    /// Points of a `deepfake mix` sweep (t = 0 and t = 1 at least; one column each).
    pub const MIX_STEPS: Count = Count::new("steps", "--steps", 2, 64);
}

/// The flag a metadata key comes from, for a `--resume` mismatch.
fn flag_of(key: &str) -> String {
    match key {
        "held_out_fraction" => "--held-out".into(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

/// Both identities' faces, loaded and split, and (for pretraining) the other identities'.
pub struct Pair {
    pub a: Identity,
    pub b: Identity,
    /// The other identities in the faces folder with enough photos to load
    /// ([`LoadOptions::min_images`]), split alike; loaded only when the run pretrains.
    pub others: Vec<Identity>,
}

impl Pair {
    pub fn load(cfg: &DeepfakeConfig) -> Result<Pair, Error> {
        let options = cfg.load_options();
        let a = load_identity(&cfg.faces, &cfg.a, &options)?;
        let b = load_identity(&cfg.faces, &cfg.b, &options)?;
        let mut others = Vec::new();
        if cfg.pretrain_steps > 0 {
            for (name, count) in list_identities(&cfg.faces)? {
                if name != cfg.a && name != cfg.b && count >= options.min_images {
                    others.push(load_identity(&cfg.faces, &name, &options)?);
                }
            }
        }
        Ok(Pair { a, b, others })
    }

    /// The faces both decoders learn during pretraining: the training faces of A, of B and of
    /// every other identity loaded. Never a held-out face of A or B, so that the evaluation
    /// stays on faces the model has not seen.
    pub fn pretraining_faces(&self) -> Vec<&[f32]> {
        [&self.a, &self.b]
            .into_iter()
            .chain(&self.others)
            .flat_map(|identity| identity.train.iter().map(Vec::as_slice))
            .collect()
    }

    fn side(&self, side: Side) -> &Identity {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    /// A warning for each identity with fewer than [`MEANINGFUL_HELD_OUT`] held-out faces:
    /// figures on so few faces move by tens of points from one face to the next.
    pub fn small_evaluation_warnings(&self) -> Vec<String> {
        [&self.a, &self.b]
            .iter()
            .filter(|identity| identity.held_out.len() < MEANINGFUL_HELD_OUT)
            .map(|identity| {
                format!(
                    "warning: {} has only {} held-out face{}, too few for its figures to mean much \
                     (one face is {:.0} points); hold out more with --held-out, or use an \
                     identity with more photos",
                    identity.name,
                    identity.held_out.len(),
                    if identity.held_out.len() == 1 { "" } else { "s" },
                    100.0 / identity.held_out.len() as f64
                )
            })
            .collect()
    }
}

/// Held-out faces per identity below which [`Pair::small_evaluation_warnings`] warns.
pub const MEANINGFUL_HELD_OUT: usize = 10;

/// Progress of one step, for a progress bar.
pub struct StepReport<'a> {
    pub step: usize,
    pub steps: usize,
    pub losses: &'a StepLosses,
    pub images_per_s: f64,
}

/// What a run did.
pub struct TrainSummary {
    pub resumed_from: usize,
    pub steps: usize,
    pub seconds: f64,
    pub images_per_s: f64,
    pub last: StepLosses,
}

/// Where `train` keeps its checkpoint inside `out`.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    out.join("checkpoint.safetensors")
}

/// Steps between the points of the loss curves.
const LOG_EVERY: usize = 25;

/// One step's faces of one decoder: warped inputs, targets, and (with a weight map) each
/// target's loss weights.
struct Batch {
    inputs: Tensor,
    targets: Tensor,
    weights: Option<Tensor>,
}

/// Draws one decoder's batch for a step: `batch` of `faces` at random (with replacement), each
/// augmented into a (warped input, target) pair; with `multipliers` (eye, mouth), each
/// target's loss weights ([`feature_weights`]), moved by its affine map so that they stay on
/// its eyes and mouth. The generator depends on (seed, step) only,
/// so a resumed run draws the same batches as an uninterrupted one, with or without weights.
fn draw_batch(
    faces: &[&[f32]],
    batch: usize,
    augment: &Augment,
    multipliers: Option<(f32, f32)>,
    rng: &mut Rng,
) -> EngineResult<Batch> {
    let mut inputs = Vec::with_capacity(batch);
    let mut targets = Vec::with_capacity(batch);
    let mut weights = Vec::new();
    for _ in 0..batch {
        let face = faces[rng.below(faces.len())];
        let (input, target, affine) = augment_pair_and_affine(face, augment, rng)?;
        inputs.push(input);
        targets.push(target);
        if let Some((eye, mouth)) = multipliers {
            weights.push(feature_weights(eye, mouth, affine.source_map()));
        }
    }
    fn refs(v: &[Vec<f32>]) -> Vec<&[f32]> {
        v.iter().map(Vec::as_slice).collect()
    }
    Ok(Batch {
        inputs: batch_tensor(&refs(&inputs))?,
        targets: batch_tensor(&refs(&targets))?,
        weights: multipliers
            .map(|_| batch_tensor(&refs(&weights)))
            .transpose()?,
    })
}

/// The generator of step `step`'s batch and noise.
fn step_rng(seed: u64, step: usize) -> Rng {
    Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (step as u64 + 1))
}

/// Trains (or, with `resume`, continues) the face-swap model described by `cfg` into `out`.
pub fn train(
    cfg: &DeepfakeConfig,
    out: &Path,
    resume: bool,
    on_step: &mut dyn FnMut(&StepReport),
) -> Result<TrainSummary, Error> {
    cfg.validate()?;
    let pair = Pair::load(cfg)?;
    train_on(cfg, &pair, out, resume, on_step)
}

/// Losses as "loss NaN, reconstruction_a 0.21, …" for a message.
fn describe_losses(l: &StepLosses) -> String {
    losses_by_name(l)
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`train`] on faces already loaded.
///
/// At each checkpoint, in this order: a check that every weight and optimizer state is finite
/// (the run stops otherwise, like on a NaN loss, the last checkpoint intact); metrics.json with
/// the history so far; the checkpoint; the curves and previews. metrics.json comes first, so a
/// crash between the two writes leaves history past the checkpoint (dropped and recomputed on
/// resume), never a checkpoint whose steps the history lacks.
pub fn train_on(
    cfg: &DeepfakeConfig,
    pair: &Pair,
    out: &Path,
    resume: bool,
    on_step: &mut dyn FnMut(&StepReport),
) -> Result<TrainSummary, Error> {
    cfg.validate()?;
    std::fs::create_dir_all(out).map_err(|e| Error::Invalid {
        message: format!("cannot create output folder {}: {e}", out.display()),
    })?;
    checkpoint::remove_stale_temporaries(out).map_err(|e| {
        Error::file(
            out,
            format!("cannot look for leftover temporary files: {e}"),
        )
    })?;
    let mut model = FaceSwap::new(cfg.model.clone(), &mut Rng::new(cfg.seed))?;
    model.move_to(cfg.device)?;
    let ckpt_path = checkpoint_path(out);
    let mut history: Vec<BTreeMap<String, f64>> = Vec::new();
    // The step whose checkpoint is on disk, for the messages of a run that stops.
    let mut saved_step: Option<usize> = None;
    if resume && checkpoint::probe(&ckpt_path)? {
        let ckpt = checkpoint::load_training(&ckpt_path)?;
        let saved = DeepfakeConfig::from_metadata(&ckpt.metadata, &ckpt_path)?;
        // A cosine schedule is planned over the run's steps: another length would bend it.
        if saved.lr_schedule == LrSchedule::Cosine && cfg.steps != saved.steps {
            return Err(Error::Invalid {
                message: format!(
                    "{} was trained with a cosine learning-rate schedule planned over {} steps: \
                     resume with --steps {} (a run at --lr-schedule constant can be extended)",
                    ckpt_path.display(),
                    saved.steps,
                    saved.steps
                ),
            });
        }
        let comparable = DeepfakeConfig {
            steps: cfg.steps,
            preview_every: cfg.preview_every,
            checkpoint_every: cfg.checkpoint_every,
            skip_bad: cfg.skip_bad,
            faces: cfg.faces.clone(),
            device: cfg.device,
            ..saved.clone()
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
        crate::eval::restore(&mut model, &ckpt, &saved)?;
        let done = model.steps() as usize;
        if done >= cfg.steps {
            return Err(Error::Invalid {
                message: format!(
                    "--steps {}: {} already holds step {done}, so there is nothing left to train; \
                 ask for more (--steps {} or more) to continue",
                    cfg.steps,
                    ckpt_path.display(),
                    done + 1
                ),
            });
        }
        saved_step = Some(done);
        history = read_history(out, done);
    }
    let kept = |saved: Option<usize>| match saved {
        Some(step) => format!(
            "the checkpoint of step {step} in {} is kept",
            ckpt_path.display()
        ),
        None => "no checkpoint was written".to_string(),
    };
    let start = model.steps() as usize;
    let augment = Augment::default();
    let (eye, mouth) = (cfg.model.eye_multiplier, cfg.model.mouth_multiplier);
    // No weights when every pixel counts alike: the plain losses, and no per-step cost.
    let multipliers = (eye != 1.0 || mouth != 1.0).then_some((eye as f32, mouth as f32));
    fn own(identity: &Identity) -> Vec<&[f32]> {
        identity.train.iter().map(Vec::as_slice).collect()
    }
    let (faces_a, faces_b) = (own(&pair.a), own(&pair.b));
    let generic = if start < cfg.pretrain_steps {
        pair.pretraining_faces()
    } else {
        Vec::new()
    };
    let t0 = Instant::now();
    let mut interval = Averages::default();
    let mut last = StepLosses::default();
    for step in start..cfg.steps {
        model.set_lr(cfg.lr_schedule.rate(cfg.model.lr, step, cfg.steps));
        let mut rng = step_rng(cfg.seed, step);
        // While pretraining, both decoders draw from the one pool of every identity's faces.
        let (pool_a, pool_b) = if step < cfg.pretrain_steps {
            (&generic, &generic)
        } else {
            (&faces_a, &faces_b)
        };
        let a = draw_batch(pool_a, cfg.batch, &augment, multipliers, &mut rng)?;
        let b = draw_batch(pool_b, cfg.batch, &augment, multipliers, &mut rng)?;
        let mut ctx = Ctx {
            training: true,
            rng: rng.fork(),
        };
        let losses = model.train_step_weighted(
            (&a.inputs, &a.targets),
            (&b.inputs, &b.targets),
            a.weights.as_ref().zip(b.weights.as_ref()),
            &mut ctx,
        )?;
        if !losses.total.is_finite() {
            return Err(Error::Diverged {
                message: format!(
                    "training diverged at step {} ({}); {}. Try a lower --lr.",
                    step + 1,
                    describe_losses(&losses),
                    kept(saved_step)
                ),
            });
        }
        interval.add(&losses);
        let done = step + 1;
        on_step(&StepReport {
            step: done,
            steps: cfg.steps,
            losses: &losses,
            images_per_s: (done - start) as f64 * 2.0 * cfg.batch as f64
                / t0.elapsed().as_secs_f64(),
        });
        last = losses;
        if done % LOG_EVERY == 0 || done == cfg.steps {
            let mut record = interval.means();
            record.insert("step".into(), done as f64);
            history.push(record);
            interval = Averages::default();
        }
        let at_end = done == cfg.steps;
        if at_end || (cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0) {
            let (tensors, mut metadata) = model.state();
            // An optimizer moment that overflowed to inf leaves the loss finite and the
            // weights frozen: stop like a NaN loss, before anything is written.
            if let Some(what) = ferrograd_models::train::non_finite_state(&tensors) {
                return Err(Error::Diverged {
                    message: format!(
                        "training diverged: at step {done}, {what}; {}. Try a lower --lr.",
                        kept(saved_step)
                    ),
                });
            }
            // The history first, then the checkpoint it describes (see the doc comment).
            save_history_json(cfg, &history, out)?;
            metadata.extend(cfg.to_metadata());
            checkpoint::save_training(&ckpt_path, &tensors, &metadata)?;
            saved_step = Some(done);
            save_loss_curves(cfg, &history, out)?;
        }
        if at_end || (cfg.preview_every > 0 && done % cfg.preview_every == 0) {
            save_preview(&model, pair, &out.join(format!("preview_{done:06}.png")))?;
            save_preview(&model, pair, &out.join("preview.png"))?;
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let done_steps = cfg.steps.saturating_sub(start);
    Ok(TrainSummary {
        resumed_from: start,
        steps: done_steps,
        seconds,
        images_per_s: done_steps as f64 * 2.0 * cfg.batch as f64 / seconds.max(1e-9),
        last,
    })
}

/// Faces shown in a preview, per identity.
const PREVIEW_FACES: usize = 4;

/// Rows: the first held-out faces of A then of B. Columns: the face, its reconstruction by its
/// own decoder, and its swap through the other one.
pub fn save_preview(model: &FaceSwap, pair: &Pair, path: &Path) -> Result<(), Error> {
    let mut rows: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut titles = Vec::new();
    for side in [Side::A, Side::B] {
        let identity = pair.side(side);
        let faces: Vec<&[f32]> = identity
            .held_out
            .iter()
            .take(PREVIEW_FACES)
            .map(|f| f.as_slice())
            .collect();
        let x = batch_tensor(&faces)?;
        let own = model.transfer(&x, side)?.to_vec_f32();
        let swapped = model.transfer(&x, side.other())?.to_vec_f32();
        let size = own.len() / faces.len();
        for (i, face) in faces.iter().enumerate() {
            rows.push(vec![
                face.to_vec(),
                own[i * size..(i + 1) * size].to_vec(),
                swapped[i * size..(i + 1) * size].to_vec(),
            ]);
            titles.push(side.name().to_uppercase());
        }
    }
    let row_refs: Vec<Vec<&[f32]>> = rows
        .iter()
        .map(|r| r.iter().map(|f| f.as_slice()).collect())
        .collect();
    let title_refs: Vec<&str> = titles.iter().map(String::as_str).collect();
    save_face_grid(
        path,
        &row_refs,
        &["face", "own decoder", "other decoder"],
        &title_refs,
        1,
    )?;
    Ok(())
}

/// Running sums of the step losses over one logging interval.
#[derive(Default)]
struct Averages {
    sums: BTreeMap<String, f64>,
    count: usize,
}

impl Averages {
    fn add(&mut self, l: &StepLosses) {
        for (k, v) in losses_by_name(l) {
            *self.sums.entry(k.to_string()).or_default() += v;
        }
        self.count += 1;
    }
    fn means(&self) -> BTreeMap<String, f64> {
        self.sums
            .iter()
            .map(|(k, v)| (k.clone(), v / self.count.max(1) as f64))
            .collect()
    }
}

fn losses_by_name(l: &StepLosses) -> [(&'static str, f64); 8] {
    [
        ("loss", l.total),
        ("reconstruction_a", l.reconstruction_a),
        ("reconstruction_b", l.reconstruction_b),
        ("prior", l.prior),
        ("discriminator", l.discriminator),
        ("structure", l.structure),
        ("identity_critic", l.identity_critic),
        ("identity_confusion", l.identity_confusion),
    ]
}

/// Writes `metrics.json`: the settings and the loss history.
fn save_history_json(
    cfg: &DeepfakeConfig,
    history: &[BTreeMap<String, f64>],
    out: &Path,
) -> Result<(), Error> {
    let json = serde_json::json!({
        "model": "deepfake",
        "config": cfg.to_metadata(),
        "log_every": LOG_EVERY,
        "history": history,
    });
    let text = serde_json::to_string_pretty(&json).expect("JSON of numbers and strings");
    let path = out.join("metrics.json");
    checkpoint::write_atomically(&path, text.as_bytes())
        .map_err(|e| Error::file(&path, format!("cannot write: {e}")))
}

/// Draws `loss_curves.png` from the loss history.
fn save_loss_curves(
    cfg: &DeepfakeConfig,
    history: &[BTreeMap<String, f64>],
    out: &Path,
) -> Result<(), Error> {
    let column = |key: &str| -> Vec<f64> {
        history
            .iter()
            .map(|r| r.get(key).copied().unwrap_or(f64::NAN))
            .collect()
    };
    let (ra, rb) = (column("reconstruction_a"), column("reconstruction_b"));
    let mut series: Vec<(&str, &[f64])> = vec![
        ("reconstruction A (L1)", &ra),
        ("reconstruction B (L1)", &rb),
    ];
    let d = column("discriminator");
    if cfg.model.prior == PriorKind::Adversarial {
        series.push(("latent discriminator", &d));
    }
    let critic = column("identity_critic");
    if cfg.model.identity_weight > 0.0 {
        series.push(("identity critic (log 4: cannot tell)", &critic));
    }
    save_line_plot(
        &out.join("loss_curves.png"),
        &format!("face swap {} / {}", cfg.a, cfg.b),
        &format!("x {LOG_EVERY} steps"),
        &series,
    )?;
    Ok(())
}

/// The loss history of an earlier run, up to `steps` (what the checkpoint holds).
fn read_history(out: &Path, steps: usize) -> Vec<BTreeMap<String, f64>> {
    let text = std::fs::read_to_string(out.join("metrics.json")).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    json.get("history")
        .and_then(|h| h.as_array())
        .map(|records| {
            records
                .iter()
                .filter_map(|r| {
                    let map: BTreeMap<String, f64> = r
                        .as_object()?
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                        .collect();
                    (map.get("step").copied()? <= steps as f64).then_some(map)
                })
                .collect()
        })
        .unwrap_or_default()
}

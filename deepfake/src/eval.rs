//! Figures of a trained face-swap model on the held-out faces of both identities.
//!
//! - reconstruction through the face's own decoder: MAE, PSNR and SSIM, and the PSNR on
//!   training faces beside it, whose difference is what the model memorised rather than
//!   learned;
//! - the cycle error |x_A − D_A(E(D_B(E(x_A))))|: a swap and a swap back should return the face;
//! - the identity score: the fraction of swapped faces A → B that an A-vs-B classifier, trained
//!   here from scratch on the real training crops, labels B (and B → A labelled A), reported
//!   with that classifier's own accuracy on the real held-out faces.

use crate::faces::{batch_tensor, Identity};
use crate::identity::{IdentityClassifier, IdentitySettings};
use crate::model::{FaceSwap, Side};
use crate::quality::{mae, psnr, ssim};
use crate::train::{DeepfakeConfig, Pair};
use crate::Error;
use ferrograd_engine::Rng;
use ferrograd_nn::checkpoint;
use std::path::Path;

/// A trained model with the settings it was trained with.
pub struct Loaded {
    pub config: DeepfakeConfig,
    pub model: FaceSwap,
    /// Training steps taken.
    pub steps: u64,
}

/// Loads a checkpoint written by [`crate::train::train`], every value checked: the settings as
/// the flags are ([`DeepfakeConfig::from_metadata`]), the tensors against the model those
/// settings describe (names, shapes, all finite), the step count against the planned steps.
pub fn load(path: &Path) -> Result<Loaded, Error> {
    let ckpt = checkpoint::load_training(path)?;
    let config = DeepfakeConfig::from_metadata(&ckpt.metadata, path)?;
    let mut model = FaceSwap::new(config.model.clone(), &mut Rng::new(config.seed))?;
    restore(&mut model, &ckpt, &config)?;
    let steps = model.steps();
    Ok(Loaded {
        config,
        model,
        steps,
    })
}

/// Loads `ckpt` into `model` (built from `config`, the checkpoint's own settings) after
/// checking that the file holds exactly that model's tensors, with their shapes, all finite,
/// and that its step count lies between 1 and the planned steps.
pub fn restore(
    model: &mut FaceSwap,
    ckpt: &checkpoint::Checkpoint,
    config: &DeepfakeConfig,
) -> Result<(), Error> {
    let path = &ckpt.path;
    if !ckpt.has_optimizer_state() {
        // The step count, which the swap's figures are reported against, is the optimizer's.
        return Err(Error::metadata(
            path,
            format!(
                "holds the weights but not the training state beside them ({} is missing): \
                 keep the two files together",
                checkpoint::optimizer_path(path).display()
            ),
        ));
    }
    ckpt.check_tensors(&model.state().0)?;
    model
        .load_state(&ckpt.tensors, &ckpt.metadata)
        .map_err(|e| Error::metadata(path, e.to_string()))?;
    let steps = model.steps();
    if !(1..=config.steps as u64).contains(&steps) {
        return Err(Error::metadata(
            path,
            format!(
                "metadata 'optim_ae.step' = '{steps}' is not a step count from 1 to {} (the \
                 steps the run planned)",
                config.steps
            ),
        ));
    }
    Ok(())
}

/// Per-identity figures on its held-out faces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SideFigures {
    pub faces: usize,
    pub mae: f64,
    pub psnr_db: f64,
    pub ssim: f64,
    /// Reconstruction PSNR on up to [`TRAINING_SAMPLE`] of the identity's training faces, as
    /// they are (unaugmented): far above `psnr_db`, the model fits faces it has seen better
    /// than it generalises.
    pub training_psnr_db: f64,
    pub training_faces: usize,
    /// Mean |x − D_own(E(D_other(E(x))))|.
    pub cycle_mae: f64,
    /// Fraction of this identity's faces, swapped to the other, that the classifier labels as
    /// the other identity.
    pub identity_score: f64,
}

/// What `deepfake eval` prints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalReport {
    pub a: SideFigures,
    pub b: SideFigures,
    /// The identity classifier's accuracy on the real held-out faces of both identities.
    pub classifier_accuracy: f64,
    pub classifier_steps: usize,
}

impl EvalReport {
    pub fn to_json(&self, cfg: &DeepfakeConfig, steps: u64) -> serde_json::Value {
        let side = |s: &SideFigures, name: &str| {
            serde_json::json!({
                "identity": name,
                "held_out_faces": s.faces,
                "reconstruction_mae": s.mae,
                "reconstruction_psnr_db": s.psnr_db,
                "reconstruction_ssim": s.ssim,
                "training_faces_sampled": s.training_faces,
                "training_reconstruction_psnr_db": s.training_psnr_db,
                "cycle_mae": s.cycle_mae,
                "identity_score": s.identity_score,
            })
        };
        serde_json::json!({
            "steps": steps,
            "a": side(&self.a, &cfg.a),
            "b": side(&self.b, &cfg.b),
            "identity_classifier": {
                "held_out_accuracy": self.classifier_accuracy,
                "training_steps": self.classifier_steps,
            },
        })
    }
}

impl EvalReport {
    /// Writes [`EvalReport::to_json`] to `path` atomically.
    pub fn save(&self, path: &Path, cfg: &DeepfakeConfig, steps: u64) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(&self.to_json(cfg, steps))
            .expect("JSON of numbers and strings");
        checkpoint::write_atomically(path, text.as_bytes())
            .map_err(|e| Error::file(path, format!("cannot write: {e}")))
    }
}

/// Faces decoded per forward pass.
const CHUNK: usize = 32;

/// D_to(E(x)) of every face, in chunks, as separate images.
fn transfer_all(model: &FaceSwap, faces: &[Vec<f32>], to: Side) -> Result<Vec<Vec<f32>>, Error> {
    let mut out = Vec::with_capacity(faces.len());
    for chunk in faces.chunks(CHUNK) {
        let refs: Vec<&[f32]> = chunk.iter().map(|f| f.as_slice()).collect();
        let y = model.transfer(&batch_tensor(&refs)?, to)?.to_vec_f32();
        let size = y.len() / chunk.len();
        out.extend(y.chunks_exact(size).map(<[f32]>::to_vec));
    }
    Ok(out)
}

/// Training faces whose reconstructions [`SideFigures::training_psnr_db`] averages: evenly
/// spaced over the identity's training faces, enough for a mean to 0.1 dB or so.
pub const TRAINING_SAMPLE: usize = 96;

/// Up to `n` faces evenly spaced through `faces`, the first included.
fn evenly_spaced(faces: &[Vec<f32>], n: usize) -> Vec<Vec<f32>> {
    let stride = faces.len().div_ceil(n).max(1);
    faces.iter().step_by(stride).cloned().collect()
}

fn side_figures(
    model: &FaceSwap,
    identity: &Identity,
    own: Side,
    judge: &IdentityClassifier,
) -> Result<SideFigures, Error> {
    use crate::faces::FACE_SIZE;
    let faces = &identity.held_out;
    let n = faces.len() as f64;
    let seen = evenly_spaced(&identity.train, TRAINING_SAMPLE);
    let seen_recon = transfer_all(model, &seen, own)?;
    let training_psnr_db = seen
        .iter()
        .zip(&seen_recon)
        .map(|(x, y)| psnr(x, y))
        .sum::<f64>()
        / seen.len() as f64;
    let recon = transfer_all(model, faces, own)?;
    let swapped = transfer_all(model, faces, own.other())?;
    let back = transfer_all(model, &swapped, own)?;
    let mean = |f: &dyn Fn(usize) -> f64| (0..faces.len()).map(f).sum::<f64>() / n;
    Ok(SideFigures {
        faces: faces.len(),
        mae: mean(&|i| mae(&faces[i], &recon[i])),
        psnr_db: mean(&|i| psnr(&faces[i], &recon[i])),
        ssim: mean(&|i| ssim(&faces[i], &recon[i], 3, FACE_SIZE, FACE_SIZE)),
        training_psnr_db,
        training_faces: seen.len(),
        cycle_mae: mean(&|i| mae(&faces[i], &back[i])),
        identity_score: judge.fraction_labelled(&swapped, own == Side::A)?,
    })
}

/// Writes the faces an outside judge (`benches/face_judge.py`) needs into `dir`, as 100x100
/// PNGs: for each identity `a` and `b`, `<side>/train/NNNN.png` (its training faces, as the
/// model saw them) and, for each held-out face, `<side>/held_out/NNNN_real.png`,
/// `NNNN_reconstruction.png` (its own decoder) and `NNNN_swap.png` (the other identity's
/// decoder), with `faces.json` naming the identities and the counts. Returns the files written.
pub fn write_judge_images(model: &FaceSwap, pair: &Pair, dir: &Path) -> Result<usize, Error> {
    use crate::picture::save_face;
    let mut written = 0;
    let mut sides = serde_json::Map::new();
    for (side, identity) in [(Side::A, &pair.a), (Side::B, &pair.b)] {
        let root = dir.join(side.name());
        for (i, face) in identity.train.iter().enumerate() {
            save_face(&root.join("train").join(format!("{i:04}.png")), face)?;
            written += 1;
        }
        let recon = transfer_all(model, &identity.held_out, side)?;
        let swapped = transfer_all(model, &identity.held_out, side.other())?;
        for (i, ((real, own), swap)) in identity
            .held_out
            .iter()
            .zip(&recon)
            .zip(&swapped)
            .enumerate()
        {
            let held = root.join("held_out");
            save_face(&held.join(format!("{i:04}_real.png")), real)?;
            save_face(&held.join(format!("{i:04}_reconstruction.png")), own)?;
            save_face(&held.join(format!("{i:04}_swap.png")), swap)?;
            written += 3;
        }
        sides.insert(
            side.name().to_string(),
            serde_json::json!({
                "identity": identity.name,
                "train": identity.train.len(),
                "held_out": identity.held_out.len(),
            }),
        );
    }
    let path = dir.join("faces.json");
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(sides))
        .expect("JSON values serialise");
    checkpoint::write_atomically(&path, text.as_bytes())
        .map_err(|e| Error::file(&path, format!("cannot write: {e}")))?;
    Ok(written + 1)
}

/// Evaluates `model` on `pair`'s held-out faces, training the identity classifier first
/// (`on_classifier_step` sees its steps, for a progress bar).
pub fn evaluate(
    model: &FaceSwap,
    pair: &Pair,
    settings: &IdentitySettings,
    on_classifier_step: impl FnMut(usize, f64),
) -> Result<EvalReport, Error> {
    let judge =
        IdentityClassifier::train(&pair.a.train, &pair.b.train, settings, on_classifier_step)?;
    let classifier_accuracy = judge.accuracy(&pair.a.held_out, &pair.b.held_out)?;
    Ok(EvalReport {
        a: side_figures(model, &pair.a, Side::A, &judge)?,
        b: side_figures(model, &pair.b, Side::B, &judge)?,
        classifier_accuracy,
        classifier_steps: settings.steps,
    })
}

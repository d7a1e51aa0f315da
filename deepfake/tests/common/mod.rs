//! Fixtures shared by the face-swap training tests.

use ferrograd_deepfake::model::SwapConfig;
use ferrograd_deepfake::train::DeepfakeConfig;
use ferrograd_models::train::LrSchedule;
use std::path::PathBuf;

/// The shared LFW folder, or `None` (with a note) where it is missing.
pub fn lfw() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/lfw");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: no faces at {}", dir.display());
        None
    }
}

/// A tiny model on a few faces: seconds per run.
pub fn tiny(faces: PathBuf, steps: usize) -> DeepfakeConfig {
    DeepfakeConfig {
        steps,
        batch: 2,
        // With the DSSIM term, the weight average, the identity critic and the eye and mouth
        // multipliers, so that resuming and loading are checked with every part of the state
        // and of the loss (the command-line tests train with the defaults).
        model: SwapConfig {
            latent: 8,
            dssim_weight: 1.0,
            ema_decay: 0.9,
            identity_weight: 0.1,
            eye_multiplier: 3.0,
            mouth_multiplier: 2.0,
            ..SwapConfig::default()
        },
        // A constant rate, so that a run can be resumed past its planned steps (a cosine run
        // cannot: `a_cosine_run_resumes_bit_for_bit_and_keeps_its_length`).
        lr_schedule: LrSchedule::Constant,
        preview_every: 2,
        checkpoint_every: 2,
        held_out_fraction: 0.25,
        limit: Some(24),
        ..DeepfakeConfig::defaults(faces)
    }
}

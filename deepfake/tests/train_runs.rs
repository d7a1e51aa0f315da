//! Whole face-swap runs on a few real faces: files, resuming, settings checks, evaluation.

use ferrograd_deepfake::eval;
use ferrograd_deepfake::identity::IdentitySettings;
use ferrograd_deepfake::train::{self, checkpoint_path, DeepfakeConfig, Pair};
use ferrograd_models::train::LrSchedule;
use std::path::Path;
mod common;

use common::{lfw, tiny};

#[test]
fn a_run_writes_its_files_and_resumes_bit_for_bit() {
    let Some(faces) = lfw() else { return };
    let straight = tempfile::tempdir().unwrap();
    let cfg = tiny(faces.clone(), 4);
    let pair = Pair::load(&cfg).unwrap();
    assert_eq!((pair.a.train.len(), pair.a.held_out.len()), (18, 6));
    let summary = train::train_on(&cfg, &pair, straight.path(), false, &mut |_| {}).unwrap();
    assert_eq!(summary.steps, 4);
    for file in [
        "checkpoint.safetensors",
        "metrics.json",
        "loss_curves.png",
        "preview.png",
        "preview_000002.png",
        "preview_000004.png",
    ] {
        assert!(straight.path().join(file).is_file(), "{file} missing");
    }

    // Two steps, then two more from the checkpoint: the same weights as four at once.
    let split = tempfile::tempdir().unwrap();
    train::train_on(
        &tiny(faces.clone(), 2),
        &pair,
        split.path(),
        false,
        &mut |_| {},
    )
    .unwrap();
    let resumed = train::train_on(&cfg, &pair, split.path(), true, &mut |_| {}).unwrap();
    assert_eq!(resumed.resumed_from, 2);
    assert_eq!(
        weights_after(straight.path(), 4),
        weights_after(split.path(), 4)
    );
    let history: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(split.path().join("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(history["config"]["a"], "George_W_Bush");

    // Other settings in the same folder: refused, naming the checkpoint.
    let other = DeepfakeConfig {
        seed: 9,
        ..tiny(faces, 6)
    };
    let err = train::train_on(&other, &pair, split.path(), true, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("other settings") && err.contains("checkpoint.safetensors"),
        "{err}"
    );
}

/// Every tensor of the checkpoint in `dir` (weights and optimizer state) by name, after
/// checking that it holds `steps` steps.
fn weights_after(dir: &Path, steps: u64) -> Vec<(String, Vec<f32>)> {
    let loaded = eval::load(&checkpoint_path(dir)).unwrap();
    assert_eq!(loaded.steps, steps);
    let (tensors, _) = loaded.model.state();
    tensors
        .into_iter()
        .map(|(name, t)| (name, t.to_vec_f32()))
        .collect()
}

/// Trains `cfg` (4 steps, a checkpoint every 2) straight through, and again from the straight
/// run's checkpoint of step 2, copied aside while step 3 reports, so that both runs have the
/// same settings and schedule. Returns the two folders: straight, resumed.
fn straight_and_resumed_from_step_2(
    cfg: &DeepfakeConfig,
    pair: &Pair,
) -> (tempfile::TempDir, tempfile::TempDir) {
    let straight = tempfile::tempdir().unwrap();
    let split = tempfile::tempdir().unwrap();
    train::train_on(cfg, pair, straight.path(), false, &mut |report| {
        if report.step == 3 {
            for file in [
                "checkpoint.safetensors",
                "checkpoint.optimizer.safetensors",
                "metrics.json",
            ] {
                std::fs::copy(straight.path().join(file), split.path().join(file)).unwrap();
            }
        }
    })
    .unwrap();
    let resumed = train::train_on(cfg, pair, split.path(), true, &mut |_| {}).unwrap();
    assert_eq!(resumed.resumed_from, 2);
    (straight, split)
}

/// The weights after a fresh run of `cfg`.
fn weights_of_a_run(cfg: &DeepfakeConfig, pair: &Pair) -> Vec<(String, Vec<f32>)> {
    let dir = tempfile::tempdir().unwrap();
    train::train_on(cfg, pair, dir.path(), false, &mut |_| {}).unwrap();
    weights_after(dir.path(), cfg.steps as u64)
}

#[test]
fn a_cosine_run_resumes_bit_for_bit_and_keeps_its_length() {
    let Some(faces) = lfw() else { return };
    let cfg = DeepfakeConfig {
        lr_schedule: LrSchedule::Cosine,
        ..tiny(faces.clone(), 4)
    };
    let pair = Pair::load(&cfg).unwrap();
    let (straight, split) = straight_and_resumed_from_step_2(&cfg, &pair);
    let cosine = weights_after(straight.path(), 4);
    assert_eq!(cosine, weights_after(split.path(), 4));

    // The schedule moved the weights: a constant rate ends elsewhere.
    assert_ne!(cosine, weights_of_a_run(&tiny(faces.clone(), 4), &pair));

    // Resuming a cosine run over another length would bend its schedule: refused, naming --steps.
    let longer = DeepfakeConfig {
        lr_schedule: LrSchedule::Cosine,
        ..tiny(faces, 6)
    };
    let err = train::train_on(&longer, &pair, split.path(), true, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cosine") && err.contains("--steps 4"), "{err}");
}

#[test]
fn pretraining_draws_every_identity_and_resumes_bit_for_bit_across_its_end() {
    let Some(faces) = lfw() else { return };
    // Steps 1 to 3 pretrain, step 4 trains the pair.
    let cfg = DeepfakeConfig {
        pretrain_steps: 3,
        ..tiny(faces.clone(), 4)
    };
    let pair = Pair::load(&cfg).unwrap();
    let others: Vec<&str> = pair.others.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(others, ["Tony_Blair"]);
    // 24 faces a person, a quarter held out: 18 training faces of each of the three.
    assert_eq!(pair.pretraining_faces().len(), 3 * 18);
    // No held-out face of the pair is in the pool.
    let pool = pair.pretraining_faces();
    for face in pair.a.held_out.iter().chain(&pair.b.held_out) {
        assert!(!pool.contains(&face.as_slice()));
    }
    // Without pretraining, the other identities are not loaded.
    assert!(Pair::load(&tiny(faces.clone(), 4))
        .unwrap()
        .others
        .is_empty());

    // Resumed from step 2, mid-pretraining, past the pretraining's end: the same weights as
    // the straight run.
    let (straight, split) = straight_and_resumed_from_step_2(&cfg, &pair);
    let pretrained = weights_after(straight.path(), 4);
    assert_eq!(pretrained, weights_after(split.path(), 4));
    let loaded = eval::load(&checkpoint_path(straight.path())).unwrap();
    assert_eq!(loaded.config.pretrain_steps, 3);

    // Pretraining drew other faces: the same seed without it ends elsewhere.
    assert_ne!(pretrained, weights_of_a_run(&tiny(faces.clone(), 4), &pair));

    // Resuming with another pretraining length is refused, naming the flag.
    let other = DeepfakeConfig {
        pretrain_steps: 1,
        ..tiny(faces.clone(), 4)
    };
    let err = train::train_on(&other, &pair, split.path(), true, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--pretrain-steps"), "{err}");

    // Pretraining for the whole run would leave the pair untrained: refused before any work.
    let all = DeepfakeConfig {
        pretrain_steps: 4,
        ..tiny(faces, 4)
    };
    let err = all.validate().err().unwrap().to_string();
    assert!(
        err.contains("--pretrain-steps") && err.contains("4"),
        "{err}"
    );
}

#[test]
fn evaluation_reports_finite_figures() {
    let Some(faces) = lfw() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny(faces, 2);
    let pair = Pair::load(&cfg).unwrap();
    train::train_on(&cfg, &pair, dir.path(), false, &mut |_| {}).unwrap();
    let loaded = eval::load(&checkpoint_path(dir.path())).unwrap();
    assert_eq!(loaded.config.a, cfg.a);
    let settings = IdentitySettings {
        steps: 3,
        per_identity: 2,
        ..IdentitySettings::default()
    };
    let mut steps_seen = 0;
    let report = eval::evaluate(&loaded.model, &pair, &settings, |_, _| steps_seen += 1).unwrap();
    assert_eq!(steps_seen, 3);
    for side in [&report.a, &report.b] {
        assert_eq!(side.faces, 6);
        assert!(side.mae > 0.0 && side.mae < 1.0, "{side:?}");
        assert!(side.psnr_db.is_finite() && side.psnr_db > 0.0, "{side:?}");
        // 24 faces, 6 held out: every one of the 18 training faces is sampled.
        assert_eq!(side.training_faces, 18);
        assert!(
            side.training_psnr_db.is_finite() && side.training_psnr_db > 0.0,
            "{side:?}"
        );
        assert!(side.ssim > -1.0 && side.ssim < 1.0, "{side:?}");
        assert!((0.0..=1.0).contains(&side.identity_score), "{side:?}");
        assert!(side.cycle_mae > 0.0, "{side:?}");
    }
    assert!((0.0..=1.0).contains(&report.classifier_accuracy));
}

#[test]
fn a_checkpoint_of_another_model_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.safetensors");
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("model".to_string(), "classifier".to_string());
    ferrograd_nn::checkpoint::save(&path, &[], &meta).unwrap();
    let err = eval::load(&path).err().unwrap().to_string();
    assert!(err.contains("x.safetensors"), "{err}");
}

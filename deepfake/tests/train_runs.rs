//! Whole face-swap runs on a few real faces: files, resuming, settings checks, evaluation.

use ferrograd_deepfake::eval;
use ferrograd_deepfake::identity::IdentitySettings;
use ferrograd_deepfake::train::{self, checkpoint_path, DeepfakeConfig, Pair};
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
    let a = eval::load(&checkpoint_path(straight.path())).unwrap();
    let b = eval::load(&checkpoint_path(split.path())).unwrap();
    assert_eq!(a.steps, 4);
    assert_eq!(b.steps, 4);
    let (ta, _) = a.model.state();
    let (tb, _) = b.model.state();
    for ((na, x), (nb, y)) in ta.iter().zip(&tb) {
        assert_eq!(na, nb);
        assert_eq!(
            x.to_vec_f32(),
            y.to_vec_f32(),
            "{na} differs after resuming"
        );
    }
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

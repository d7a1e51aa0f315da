//! Training runs end to end on a small synthetic dataset: resuming gives the same weights as an
//! uninterrupted run, a diverging run stops with a message naming epoch and step, and every
//! output file is written.

mod common;

use common::synthetic;
use ferrograd_models::data::FashionMnist;
use ferrograd_models::train::{self, LrSchedule, ModelKind, TrainConfig};
use ferrograd_nn::checkpoint;
use std::path::Path;

/// 96 training and 32 test images.
fn data() -> FashionMnist {
    FashionMnist {
        train: synthetic(96, 1, 1.0),
        test: synthetic(32, 2, 1.0),
        dir: "synthetic".into(),
    }
}

fn config(kind: ModelKind, epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: 32,
        latent: 4,
        ..TrainConfig::defaults(kind)
    }
}

fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let ckpt = checkpoint::load_training(&dir.join("checkpoint.safetensors")).unwrap();
    ckpt.tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.to_vec_f32()))
        .collect()
}

#[test]
fn resume_after_an_interruption_ends_with_the_same_weights() {
    for kind in [ModelKind::Vae, ModelKind::Gan, ModelKind::Classifier] {
        let (whole, split) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // A 1-epoch run stands in for a 3-epoch run interrupted after epoch 1. That holds only
        // at a constant rate: a cosine schedule spans the run's planned length.
        let constant = |epochs| TrainConfig {
            lr_schedule: LrSchedule::Constant,
            ..config(kind, epochs)
        };
        train::train(&constant(3), &data(), whole.path(), false, &mut |_| {}).unwrap();
        // "Interrupted" after epoch 1, then resumed to 3.
        train::train(&constant(1), &data(), split.path(), false, &mut |_| {}).unwrap();
        let resumed = train::train(&constant(3), &data(), split.path(), true, &mut |_| {}).unwrap();
        assert_eq!(resumed.resumed_from, 1);
        assert_eq!(
            resumed.records.len(),
            3,
            "metrics keep the epochs before the interruption"
        );
        assert_eq!(
            weights(whole.path()),
            weights(split.path()),
            "{kind:?}: resumed weights differ"
        );
    }
}

#[test]
fn every_output_file_is_written_and_losses_fall() {
    let out = tempfile::tempdir().unwrap();
    let summary = train::train(
        &config(ModelKind::Ae, 4),
        &data(),
        out.path(),
        false,
        &mut |_| {},
    )
    .unwrap();
    for f in [
        "checkpoint.safetensors",
        "metrics.json",
        "loss_curves.png",
        "reconstructions.png",
        "interpolation.png",
    ] {
        assert!(out.path().join(f).is_file(), "{f} missing");
    }
    let test_loss = |i: usize| summary.records[i].test["loss"];
    assert!(
        test_loss(3) < test_loss(0),
        "test loss {} -> {}",
        test_loss(0),
        test_loss(3)
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("metrics.json")).unwrap())
            .unwrap();
    assert_eq!(metrics["epochs"].as_array().unwrap().len(), 4);
    let report = train::evaluate(
        &out.path().join("checkpoint.safetensors"),
        &data(),
        ferrograd_engine::Device::Cpu,
    )
    .unwrap();
    assert_eq!(report.epoch, 4);
    assert!(
        (report.test["mse"] - summary.records[3].test["mse"]).abs() < 1e-6,
        "eval agrees with the run's last test figure"
    );
}

#[test]
fn a_diverging_run_stops_naming_epoch_and_step() {
    // Pixels of a million: the VAE's KL term overflows on the first step. (A learning rate of
    // 1e12, the old way to diverge, is now refused as out of --lr's range.)
    let out = tempfile::tempdir().unwrap();
    let mut huge = data();
    for split in [&mut huge.train, &mut huge.test] {
        split.images.iter_mut().for_each(|v| *v *= 1e6);
    }
    let err = train::train(
        &config(ModelKind::Vae, 2),
        &huge,
        out.path(),
        false,
        &mut |_| {},
    )
    .err()
    .expect("images of a million diverge");
    assert!(
        err.to_string().contains("diverged") && err.to_string().contains("epoch 1, step"),
        "{err}"
    );
    // The losses as words, not a Rust debug list; no claim of a checkpoint that is not there.
    assert!(
        err.to_string().contains("kl inf") && !err.to_string().contains("(\""),
        "{err}"
    );
    assert!(
        err.to_string().contains("no checkpoint was written"),
        "{err}"
    );
}

#[test]
fn resuming_with_other_settings_is_refused() {
    let out = tempfile::tempdir().unwrap();
    train::train(
        &config(ModelKind::Ae, 1),
        &data(),
        out.path(),
        false,
        &mut |_| {},
    )
    .unwrap();
    let other = TrainConfig {
        latent: 5,
        ..config(ModelKind::Ae, 2)
    };
    let err = train::train(&other, &data(), out.path(), true, &mut |_| {})
        .err()
        .expect("mismatch");
    assert!(err.to_string().contains("other settings"), "{err}");
}

#[test]
fn the_classifier_learns_the_synthetic_classes_and_draws_its_confusion_matrix() {
    let out = tempfile::tempdir().unwrap();
    // Batch 8, so batch norm's running statistics get enough updates to describe the weights.
    let cfg = TrainConfig {
        batch: 8,
        ..config(ModelKind::Classifier, 12)
    };
    let summary = train::train(&cfg, &data(), out.path(), false, &mut |_| {}).unwrap();
    for r in &summary.records {
        eprintln!(
            "epoch {}: train accuracy {:.3}, test accuracy {:.3}",
            r.epoch, r.train["accuracy"], r.test["accuracy"]
        );
    }
    let accuracy = summary.records.last().unwrap().test["accuracy"];
    // Ten blob positions, 96 training images: far above the 10% of guessing.
    assert!(accuracy > 0.5, "accuracy {accuracy}");
    assert!(out.path().join("confusion_matrix.png").is_file());
}

#[test]
fn a_tiny_test_split_still_gets_its_pictures() {
    // Fewer test images than the picture grids show: no panic, smaller grids.
    let out = tempfile::tempdir().unwrap();
    let small = FashionMnist {
        train: synthetic(16, 1, 1.0),
        test: synthetic(3, 2, 1.0),
        dir: "synthetic".into(),
    };
    train::train(
        &config(ModelKind::Vae, 1),
        &small,
        out.path(),
        false,
        &mut |_| {},
    )
    .unwrap();
    assert!(out.path().join("reconstructions.png").is_file());
    assert!(out.path().join("interpolation.png").is_file());
}

#[test]
fn the_cosine_rate_falls_from_lr_to_zero_over_the_planned_steps() {
    let rate = |t| LrSchedule::Cosine.rate(1e-3, t, 100);
    assert_eq!(rate(0), 1e-3);
    assert!((rate(50) - 0.5e-3).abs() < 1e-15);
    assert!(rate(100).abs() < 1e-18);
    assert!(
        (1..=100).all(|t| rate(t) < rate(t - 1)),
        "strictly decreasing"
    );
    assert_eq!(LrSchedule::Constant.rate(1e-3, 77, 100), 1e-3);
}

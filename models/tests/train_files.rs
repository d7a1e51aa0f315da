//! What `train` does with the files in its output folder and the checkpoints it is given: every
//! loaded value validated like a flag, a crash between the record and the checkpoint losing no
//! epoch, leftovers of killed runs removed, the same bytes from the same run, and a run whose
//! optimizer state overflowed stopped before it writes.
#![cfg(unix)] // FIFOs, device nodes, sockets and symbolic links

mod common;

use common::synthetic;
use ferrograd_engine::{Device, Tensor};
use ferrograd_models::data::FashionMnist;
use ferrograd_models::train::{self, LrSchedule, ModelKind, TrainConfig};
use ferrograd_models::Error;
use ferrograd_nn::checkpoint;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// 64 training and 16 test images.
fn data() -> FashionMnist {
    FashionMnist {
        train: synthetic(64, 1, 1.0),
        test: synthetic(16, 2, 1.0),
        dir: "synthetic".into(),
    }
}

fn config(kind: ModelKind, epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: 32,
        latent: 4,
        lr_schedule: LrSchedule::Constant,
        ..TrainConfig::defaults(kind)
    }
}

fn run(cfg: &TrainConfig, out: &Path, resume: bool) -> Result<train::TrainSummary, Error> {
    train::train(cfg, &data(), out, resume, &mut |_| {})
}

fn ckpt_path(out: &Path) -> std::path::PathBuf {
    out.join("checkpoint.safetensors")
}

/// The epochs metrics.json records, in file order.
fn recorded_epochs(out: &Path) -> Vec<u64> {
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    json["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect()
}

fn saved_epoch(out: &Path) -> String {
    checkpoint::load(&ckpt_path(out)).unwrap().metadata["epoch"].clone()
}

/// Rewrites the checkpoint at `path` with `edit` applied to its tensors and metadata.
fn rewrite(
    path: &Path,
    edit: impl FnOnce(&mut BTreeMap<String, Tensor>, &mut BTreeMap<String, String>),
) {
    let mut ckpt = checkpoint::load_training(path).unwrap();
    edit(&mut ckpt.tensors, &mut ckpt.metadata);
    let tensors: Vec<(String, Tensor)> = ckpt.tensors.into_iter().collect();
    checkpoint::save_training(path, &tensors, &ckpt.metadata).unwrap();
}

/// Copies a checkpoint with the optimizer state beside it.
fn copy_checkpoint(from: &Path, to: &Path) {
    fs::copy(from, to).unwrap();
    fs::copy(
        checkpoint::optimizer_path(from),
        checkpoint::optimizer_path(to),
    )
    .unwrap();
}

/// An AE checkpoint after two epochs, in a folder of its own.
fn trained_ae() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run(&config(ModelKind::Ae, 2), dir.path(), false).unwrap();
    dir
}

fn eval_error(path: &Path) -> String {
    match train::evaluate(path, &data(), Device::Cpu) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn loaded_settings_are_held_to_the_flags_ranges_naming_file_and_key() {
    let dir = trained_ae();
    let path = ckpt_path(dir.path());
    let cases: [(&str, &str, &[&str]); 7] = [
        (
            "latent",
            "1000000000",
            &["'latent'", "1000000000", "--latent", "4,096"],
        ),
        ("batch", "1000000000", &["'batch'", "--batch"]),
        ("lr", "inf", &["'lr'", "--lr"]),
        ("epoch", "abc", &["'epoch'", "'abc'"]),
        ("epoch", "0", &["'epoch'", "'0'"]),
        ("seed", "-3", &["'seed'", "'-3'"]),
        ("optim.step", "-1", &["'optim.step'", "'-1'"]),
    ];
    for (key, value, needles) in cases {
        let bad = dir.path().join(format!("bad-{key}.safetensors"));
        copy_checkpoint(&path, &bad);
        rewrite(&bad, |_, meta| {
            meta.insert(key.into(), value.into());
        });
        let err = eval_error(&bad);
        assert!(err.contains(&format!("bad-{key}.safetensors")), "{err}");
        for needle in needles {
            assert!(err.contains(needle), "{key}={value}: {err}");
        }
    }
}

#[test]
fn a_resume_from_a_damaged_step_count_is_refused_not_restarted() {
    // optim.step = -1 used to parse as 0: Adam's bias correction restarted, silently.
    let dir = trained_ae();
    rewrite(&ckpt_path(dir.path()), |_, meta| {
        meta.insert("optim.step".into(), "-1".into());
    });
    let err = run(&config(ModelKind::Ae, 3), dir.path(), true)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("'optim.step' = '-1'"), "{err}");
}

#[test]
fn every_tensor_is_checked_against_the_model_the_settings_describe() {
    let dir = trained_ae();
    let path = ckpt_path(dir.path());

    let bad = dir.path().join("shape.safetensors");
    copy_checkpoint(&path, &bad);
    rewrite(&bad, |tensors, _| {
        let t = Tensor::from_vec(vec![0.0f32; 12], &[3, 4]).unwrap();
        tensors.insert("optim.exp_avg.decoder.0.weight".into(), t);
    });
    let err = eval_error(&bad);
    assert!(
        err.contains("shape.safetensors")
            && err.contains("optim.exp_avg.decoder.0.weight")
            && err.contains("[3, 4]"),
        "{err}"
    );

    let bad = dir.path().join("extra.safetensors");
    copy_checkpoint(&path, &bad);
    rewrite(&bad, |tensors, _| {
        tensors.insert(
            "stowaway".into(),
            Tensor::from_vec(vec![1.0f32], &[1]).unwrap(),
        );
    });
    assert!(eval_error(&bad).contains("`stowaway`"));

    // A VAE whose decoder is all NaN used to print an ELBO.
    let vae = tempfile::tempdir().unwrap();
    run(&config(ModelKind::Vae, 1), vae.path(), false).unwrap();
    rewrite(&ckpt_path(vae.path()), |tensors, _| {
        for (name, t) in tensors.iter_mut() {
            if name.starts_with("decoder.") {
                *t = Tensor::from_vec(vec![f32::NAN; t.numel()], t.shape()).unwrap();
            }
        }
    });
    let err = eval_error(&ckpt_path(vae.path()));
    assert!(
        err.contains("decoder.") && err.contains("non-finite") && err.contains("NaN"),
        "{err}"
    );
}

#[test]
fn a_safetensors_file_without_ferrograd_settings_says_what_it_lacks_and_who_wrote_it() {
    let dir = trained_ae();
    let path = ckpt_path(dir.path());
    rewrite(&path, |_, meta| {
        *meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    });
    let err = eval_error(&path);
    assert!(
        err.contains("checkpoint.safetensors")
            && err.contains("no 'model' key")
            && err.contains("PyTorch"),
        "{err}"
    );
    rewrite(&path, |_, meta| meta.clear());
    assert!(eval_error(&path).contains("no metadata at all"));
}

#[test]
fn a_resume_mismatch_names_each_differing_flag_with_both_values() {
    let dir = trained_ae();
    let other = TrainConfig {
        latent: 5,
        lr: 2e-3,
        ..config(ModelKind::Ae, 3)
    };
    let err = run(&other, dir.path(), true).err().unwrap().to_string();
    assert!(err.contains("--latent 4 in the checkpoint, 5 now"), "{err}");
    assert!(
        err.contains("--lr 0.001 in the checkpoint, 0.002 now"),
        "{err}"
    );
    assert!(!err.contains("batch"), "only what differs: {err}");
}

#[test]
fn a_dangling_link_or_a_loop_as_the_checkpoint_is_an_error_not_a_fresh_start() {
    for make in ["dangling", "loop"] {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = ckpt_path(dir.path());
        match make {
            "dangling" => std::os::unix::fs::symlink(dir.path().join("gone"), &ckpt).unwrap(),
            _ => std::os::unix::fs::symlink(&ckpt, &ckpt).unwrap(),
        }
        let err = run(&config(ModelKind::Ae, 1), dir.path(), true)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("checkpoint.safetensors") && err.contains("symbolic link"),
            "{err}"
        );
        assert!(
            !dir.path().join("metrics.json").exists(),
            "{make}: nothing trained"
        );
    }
}

#[test]
fn nothing_to_do_is_refused() {
    let dir = trained_ae();
    // The checkpoint holds epoch 2: --epochs 2 (or fewer) on resume trains nothing.
    let err = run(&config(ModelKind::Ae, 2), dir.path(), true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("--epochs 2") && err.contains("--epochs 3 or more"),
        "{err}"
    );
    for cfg in [
        config(ModelKind::Ae, 0),
        TrainConfig {
            train_limit: Some(0),
            ..config(ModelKind::Ae, 1)
        },
        TrainConfig {
            test_limit: Some(0),
            ..config(ModelKind::Ae, 1)
        },
    ] {
        let out = tempfile::tempdir().unwrap();
        let err = run(&cfg, out.path(), false).err().unwrap().to_string();
        assert!(err.contains("invalid setting: --"), "{err}");
        assert!(!ckpt_path(out.path()).exists());
    }
}

/// Trains `cfg` into `out`, making the write of `victim` fail in epoch `at` (1-based): a folder
/// where the atomic write puts its temporary file, as a full disk would fail it.
fn run_failing_at(cfg: &TrainConfig, out: &Path, victim: &str, at: usize) -> Error {
    let blocker = out.join(format!("{victim}.tmp-{}", std::process::id()));
    let mut on_step = |s: &train::StepInfo| {
        if s.epoch == at && s.step == 1 {
            fs::create_dir_all(&blocker).unwrap();
        }
    };
    let err = train::train(cfg, &data(), out, false, &mut on_step)
        .err()
        .expect("the write fails");
    fs::remove_dir(&blocker).unwrap();
    err
}

#[test]
fn a_crash_between_the_record_and_the_checkpoint_loses_no_epoch() {
    let cfg = config(ModelKind::Ae, 4);
    let whole = tempfile::tempdir().unwrap();
    run(&cfg, whole.path(), false).unwrap();

    // The record of epoch 3 fails to be written: the checkpoint must not move past it.
    let a = tempfile::tempdir().unwrap();
    let err = run_failing_at(&cfg, a.path(), "metrics.json", 3);
    assert!(err.to_string().contains("metrics.json"), "{err}");
    assert_eq!(saved_epoch(a.path()), "2");
    assert_eq!(recorded_epochs(a.path()), [1, 2]);

    // The checkpoint of epoch 3 fails after its record was written: the record is ahead.
    let b = tempfile::tempdir().unwrap();
    let err = run_failing_at(&cfg, b.path(), "checkpoint.safetensors", 3);
    assert!(err.to_string().contains("checkpoint.safetensors"), "{err}");
    assert_eq!(saved_epoch(b.path()), "2");
    assert_eq!(recorded_epochs(b.path()), [1, 2, 3]);

    for dir in [&a, &b] {
        let resumed = run(&cfg, dir.path(), true).unwrap();
        assert_eq!(resumed.resumed_from, 2);
        assert!(resumed.missing_records.is_empty());
        assert_eq!(
            recorded_epochs(dir.path()),
            [1, 2, 3, 4],
            "every epoch, once"
        );
        assert_eq!(
            fs::read(ckpt_path(dir.path())).unwrap(),
            fs::read(ckpt_path(whole.path())).unwrap(),
            "the same checkpoint as an uninterrupted run"
        );
    }
}

#[test]
fn a_record_lost_to_something_else_is_reported_not_hidden() {
    // The state the old write order left after a crash: the checkpoint of epoch 2, the record
    // of epoch 1 only.
    let dir = trained_ae();
    let json = fs::read_to_string(dir.path().join("metrics.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["epochs"].as_array_mut().unwrap().truncate(1);
    fs::write(dir.path().join("metrics.json"), v.to_string()).unwrap();
    let resumed = run(&config(ModelKind::Ae, 3), dir.path(), true).unwrap();
    assert_eq!(resumed.missing_records, [2]);
}

#[test]
fn temporary_files_left_by_a_killed_run_are_removed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("checkpoint.safetensors.tmp-99999999");
    let foreign = dir.path().join("my-notes.txt");
    fs::write(&stale, vec![0u8; 1 << 16]).unwrap();
    fs::write(&foreign, b"mine").unwrap();
    let summary = run(&config(ModelKind::Ae, 1), dir.path(), false).unwrap();
    assert!(!stale.exists());
    assert_eq!(summary.removed_temporaries, [stale]);
    assert!(foreign.exists(), "files that are not ours stay");
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn identical_runs_write_identical_checkpoints() {
    for kind in [ModelKind::Ae, ModelKind::Aae] {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        run(&config(kind, 2), one.path(), false).unwrap();
        run(&config(kind, 2), two.path(), false).unwrap();
        assert_eq!(
            fs::read(ckpt_path(one.path())).unwrap(),
            fs::read(ckpt_path(two.path())).unwrap(),
            "{kind:?}"
        );
    }
}

/// Images of magnitude 1e14: the AAE's reconstruction loss stays finite, but its gradients
/// square to more than f32 holds, so Adam's second moment overflows to inf.
fn overflowing() -> FashionMnist {
    FashionMnist {
        train: synthetic(64, 1, 1e14),
        test: synthetic(16, 2, 1e14),
        dir: "synthetic".into(),
    }
}

#[test]
fn an_overflowed_optimizer_state_stops_the_run_before_it_writes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(ModelKind::Aae, 2);
    let err = train::train(&cfg, &overflowing(), dir.path(), false, &mut |_| {})
        .err()
        .expect("the run stops")
        .to_string();
    assert!(
        err.contains("exp_avg_sq") && err.contains("inf") && err.contains("epoch 1"),
        "{err}"
    );
    assert!(
        err.contains("no checkpoint was written") && !err.contains("kept"),
        "{err}"
    );
    assert!(!ckpt_path(dir.path()).exists() && !dir.path().join("metrics.json").exists());

    // With a checkpoint on disk (epoch 1 on ordinary images), the message says it is kept,
    // and it is.
    let kept = tempfile::tempdir().unwrap();
    train::train(
        &config(ModelKind::Aae, 1),
        &data(),
        kept.path(),
        false,
        &mut |_| {},
    )
    .unwrap();
    let before = fs::read(ckpt_path(kept.path())).unwrap();
    let err = train::train(&cfg, &overflowing(), kept.path(), true, &mut |_| {})
        .err()
        .expect("the run stops")
        .to_string();
    assert!(
        err.contains("the checkpoint of epoch 1") && err.contains("is kept"),
        "{err}"
    );
    assert_eq!(fs::read(ckpt_path(kept.path())).unwrap(), before);
}

#[test]
fn the_weights_file_holds_the_model_alone_and_is_enough_to_use_it_but_not_to_resume() {
    let dir = trained_ae();
    let path = ckpt_path(dir.path());
    let weights = checkpoint::load(&path).unwrap();
    assert!(
        !weights.has_optimizer_state(),
        "optimizer state in the weights file: {:?}",
        weights.tensors.keys().collect::<Vec<_>>()
    );
    let optimizer = checkpoint::load(&checkpoint::optimizer_path(&path)).unwrap();
    assert!(optimizer.tensors.keys().all(|k| k.starts_with("optim.")));
    assert!(!optimizer.tensors.is_empty());

    fs::remove_file(checkpoint::optimizer_path(&path)).unwrap();
    train::evaluate(&path, &data(), Device::Cpu).expect("the weights alone evaluate");
    let err = run(&config(ModelKind::Ae, 3), dir.path(), true)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("checkpoint.optimizer.safetensors") && err.contains("resum"),
        "{err}"
    );
}

//! What `deepfake train` does with its output folder and what `swap`, `mix` and `eval` do with
//! the checkpoints they are given: every loaded value validated like a flag, a crash between the
//! history and the checkpoint losing no record, leftovers of killed runs removed, the same
//! bytes from the same run, and an overflowed optimizer state stopping the run before it writes.
#![cfg(unix)] // FIFOs, device nodes, sockets and symbolic links

mod common;

use common::lfw;
use ferrograd_deepfake::eval;
use ferrograd_deepfake::train::{self, checkpoint_path, DeepfakeConfig, Pair, StepReport};
use ferrograd_engine::Tensor;
use ferrograd_models::train::LrSchedule;
use ferrograd_nn::checkpoint;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// [`common::tiny`] with fewer faces and no previews.
fn tiny(faces: PathBuf, steps: usize) -> DeepfakeConfig {
    DeepfakeConfig {
        preview_every: 0,
        limit: Some(8),
        ..common::tiny(faces, steps)
    }
}

/// The history's steps in metrics.json, in file order.
fn recorded_steps(out: &Path) -> Vec<u64> {
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["step"].as_f64().unwrap() as u64)
        .collect()
}

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

fn load_error(path: &Path) -> String {
    match eval::load(path) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn loaded_settings_and_tensors_are_validated_naming_file_and_key() {
    let Some(faces) = lfw() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny(faces, 2);
    let pair = Pair::load(&cfg).unwrap();
    train::train_on(&cfg, &pair, dir.path(), false, &mut |_| {}).unwrap();
    let good = checkpoint_path(dir.path());
    eval::load(&good).unwrap();

    let cases: [(&str, &str, &[&str]); 12] = [
        // Used to abort swap, mix and eval in 0.2 s.
        ("latent", "1000000000", &["'latent'", "--latent", "2,048"]),
        // Used to train the identity judge on one person.
        ("b", "George_W_Bush", &["'b'", "--b", "two identities"]),
        ("batch", "0", &["'batch'", "--batch"]),
        (
            "held_out_fraction",
            "1",
            &["'held_out_fraction'", "--held-out"],
        ),
        ("optim_ae.step", "-1", &["'optim_ae.step'", "'-1'"]),
        ("dssim_weight", "-1", &["'dssim_weight'", "--dssim-weight"]),
        (
            "lr_schedule",
            "step",
            &["'lr_schedule'", "constant or cosine"],
        ),
        (
            "identity_weight",
            "nan",
            &["'identity_weight'", "--identity-weight"],
        ),
        ("steps", "1", &["'optim_ae.step'", "from 1 to 1"]),
        (
            "eye_multiplier",
            "0.5",
            &["'eye_multiplier'", "--eye-multiplier"],
        ),
        (
            "mouth_multiplier",
            "two",
            &["'mouth_multiplier'", "a number"],
        ),
        // The run's 2 steps all pretraining: the pair never trained.
        (
            "pretrain_steps",
            "2",
            &["'pretrain_steps'", "--pretrain-steps", "leaves none"],
        ),
    ];
    for (key, value, needles) in cases {
        let bad = dir.path().join(format!("bad-{key}.safetensors"));
        copy_checkpoint(&good, &bad);
        rewrite(&bad, |_, meta| {
            meta.insert(key.into(), value.into());
        });
        let err = load_error(&bad);
        assert!(err.contains(&format!("bad-{key}.safetensors")), "{err}");
        for needle in needles {
            assert!(err.contains(needle), "{key}={value}: {err}");
        }
    }

    // A checkpoint from before the DSSIM term and the schedule (no keys) trained on L1 alone
    // at a constant rate.
    let older = dir.path().join("older.safetensors");
    copy_checkpoint(&good, &older);
    rewrite(&older, |_, meta| {
        meta.remove("dssim_weight");
        meta.remove("lr_schedule");
        meta.remove("eye_multiplier");
        meta.remove("mouth_multiplier");
        meta.remove("pretrain_steps");
    });
    let older = eval::load(&older).unwrap().config;
    assert_eq!(older.model.dssim_weight, 0.0);
    assert_eq!(older.lr_schedule, LrSchedule::Constant);
    // ... and weighed every pixel alike.
    assert_eq!(
        (older.model.eye_multiplier, older.model.mouth_multiplier),
        (1.0, 1.0)
    );
    // ... and did not pretrain.
    assert_eq!(older.pretrain_steps, 0);

    let bad = dir.path().join("shape.safetensors");
    copy_checkpoint(&good, &bad);
    rewrite(&bad, |tensors, _| {
        tensors.insert(
            "decoder_b.0.bias".into(),
            Tensor::from_vec(vec![0.0f32; 3], &[3]).unwrap(),
        );
    });
    let err = load_error(&bad);
    assert!(
        err.contains("`decoder_b.0.bias`") && err.contains("[3]"),
        "{err}"
    );

    let bad = dir.path().join("nan.safetensors");
    copy_checkpoint(&good, &bad);
    rewrite(&bad, |tensors, _| {
        let t = tensors.get_mut("decoder_a.0.weight").unwrap();
        *t = Tensor::from_vec(vec![f32::NAN; t.numel()], t.shape()).unwrap();
    });
    let err = load_error(&bad);
    assert!(
        err.contains("`decoder_a.0.weight`") && err.contains("non-finite"),
        "{err}"
    );

    let bad = dir.path().join("pt.safetensors");
    copy_checkpoint(&good, &bad);
    rewrite(&bad, |_, meta| {
        *meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    });
    let err = load_error(&bad);
    assert!(
        err.contains("no 'model' key") && err.contains("PyTorch"),
        "{err}"
    );
}

/// Trains `cfg` on `pair` into `out`, making the write of `victim` at step `at` fail: a folder
/// where the atomic write puts its temporary file, as a full disk would fail it.
fn run_failing_at(cfg: &DeepfakeConfig, pair: &Pair, out: &Path, victim: &str, at: usize) {
    let blocker = out.join(format!("{victim}.tmp-{}", std::process::id()));
    let mut on_step = |s: &StepReport| {
        if s.step == at {
            fs::create_dir_all(&blocker).unwrap();
        }
    };
    let err = train::train_on(cfg, pair, out, false, &mut on_step)
        .err()
        .expect("the write fails")
        .to_string();
    assert!(err.contains(victim), "{err}");
    fs::remove_dir(&blocker).unwrap();
}

#[test]
fn a_crash_between_the_history_and_the_checkpoint_loses_no_record() {
    let Some(faces) = lfw() else { return };
    let cfg = tiny(faces, 4);
    let pair = Pair::load(&cfg).unwrap();
    let whole = tempfile::tempdir().unwrap();
    train::train_on(&cfg, &pair, whole.path(), false, &mut |_| {}).unwrap();
    assert_eq!(recorded_steps(whole.path()), [4]);

    for victim in ["metrics.json", "checkpoint.safetensors"] {
        let dir = tempfile::tempdir().unwrap();
        run_failing_at(&cfg, &pair, dir.path(), victim, 4);
        assert_eq!(
            eval::load(&checkpoint_path(dir.path())).unwrap().steps,
            2,
            "{victim}"
        );
        let resumed = train::train_on(&cfg, &pair, dir.path(), true, &mut |_| {}).unwrap();
        assert_eq!(resumed.resumed_from, 2);
        assert_eq!(
            recorded_steps(dir.path()),
            [4],
            "{victim}: the last record, once"
        );
        assert_eq!(
            fs::read(checkpoint_path(dir.path())).unwrap(),
            fs::read(checkpoint_path(whole.path())).unwrap(),
            "{victim}: the same bytes as an uninterrupted run"
        );
    }
}

#[test]
fn leftovers_are_removed_and_identical_runs_write_identical_checkpoints() {
    let Some(faces) = lfw() else { return };
    let cfg = tiny(faces, 2);
    let pair = Pair::load(&cfg).unwrap();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let stale = two.path().join("preview.png.tmp-99999999");
    fs::write(&stale, b"half a picture").unwrap();
    train::train_on(&cfg, &pair, one.path(), false, &mut |_| {}).unwrap();
    train::train_on(&cfg, &pair, two.path(), false, &mut |_| {}).unwrap();
    assert!(!stale.exists(), "the stale temporary file is removed");
    assert_eq!(
        fs::read(checkpoint_path(one.path())).unwrap(),
        fs::read(checkpoint_path(two.path())).unwrap()
    );

    // Nothing left to do on resume is refused, not reported as done.
    let err = train::train_on(&cfg, &pair, one.path(), true, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("--steps 2") && err.contains("--steps 3 or more"),
        "{err}"
    );
}

#[test]
fn a_dangling_link_as_the_checkpoint_is_an_error_not_a_fresh_start() {
    let Some(faces) = lfw() else { return };
    let cfg = tiny(faces, 2);
    let pair = Pair::load(&cfg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone"), checkpoint_path(dir.path())).unwrap();
    let err = train::train_on(&cfg, &pair, dir.path(), true, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("symbolic link") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!dir.path().join("metrics.json").exists(), "nothing trained");
}

#[test]
fn an_overflowed_optimizer_state_stops_the_run_and_says_whether_a_checkpoint_is_kept() {
    let Some(faces) = lfw() else { return };
    // L1 alone: the DSSIM term squares the faces and would overflow first.
    let l1_only = |steps| {
        let mut cfg = tiny(faces.clone(), steps);
        cfg.model.dssim_weight = 0.0;
        cfg
    };
    let cfg = l1_only(4);
    let pair = Pair::load(&cfg).unwrap();
    // Faces of magnitude 1e30: the L1 loss stays finite, Adam's second moment does not.
    let mut huge = Pair {
        a: pair.a.clone(),
        b: pair.b.clone(),
        others: Vec::new(),
    };
    for face in huge.a.train.iter_mut().chain(huge.b.train.iter_mut()) {
        face.iter_mut().for_each(|v| *v *= 1e30);
    }
    let dir = tempfile::tempdir().unwrap();
    let err = train::train_on(&cfg, &huge, dir.path(), false, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("exp_avg_sq") && err.contains("inf") && err.contains("step 2"),
        "{err}"
    );
    assert!(
        err.contains("no checkpoint was written") && !err.contains("kept"),
        "{err}"
    );
    assert!(!checkpoint_path(dir.path()).exists());

    // Two ordinary steps first: then the message says the checkpoint of step 2 is kept.
    let kept = tempfile::tempdir().unwrap();
    train::train_on(&l1_only(2), &pair, kept.path(), false, &mut |_| {}).unwrap();
    let before = fs::read(checkpoint_path(kept.path())).unwrap();
    let err = train::train_on(&cfg, &huge, kept.path(), true, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("the checkpoint of step 2") && err.contains("is kept"),
        "{err}"
    );
    assert_eq!(fs::read(checkpoint_path(kept.path())).unwrap(), before);
}

#[test]
fn too_few_held_out_faces_are_warned_about_and_enough_are_not() {
    let Some(faces) = lfw() else { return };
    // 24 faces with a quarter held out: 6 each, under the 10 that make a figure mean much.
    let pair = Pair::load(&common::tiny(faces.clone(), 2)).unwrap();
    let warnings = pair.small_evaluation_warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("George_W_Bush has only 6 held-out faces")
            && warnings[0].contains("--held-out"),
        "{warnings:?}"
    );
    // One line of prose: no run of spaces left by a broken string continuation.
    assert!(!warnings[0].contains("  "), "{warnings:?}");
    let enough = DeepfakeConfig {
        limit: Some(40),
        ..common::tiny(faces, 2)
    };
    assert!(Pair::load(&enough)
        .unwrap()
        .small_evaluation_warnings()
        .is_empty());
}

//! `ferrograd eval` as a user runs it on small checkpoints: the VAE's likelihood bounds and
//! every sampler's quality figures are printed, named by their feature classifier, and written
//! to eval.json; a model that does not sample gets none.

use std::path::Path;
use std::process::Command;

const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

fn ferrograd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferrograd"))
        .args(args)
        .env("FERROGRAD_DEVICE", "cpu")
        .output()
        .expect("the binary runs")
}

fn ok(args: &[&str]) -> String {
    let out = ferrograd(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn train(model: &str, out: &Path) {
    ok(&[
        "train",
        model,
        "--epochs",
        "1",
        "--train-limit",
        "256",
        "--test-limit",
        "64",
        "--out",
        out.to_str().unwrap(),
    ]);
}

#[test]
fn eval_prints_and_writes_the_bounds_and_the_sample_quality() {
    if !Path::new(FASHION_MNIST).is_dir() {
        eprintln!("skipped: no Fashion-MNIST at {FASHION_MNIST}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (vae, gan, clf) = (
        tmp.path().join("vae"),
        tmp.path().join("gan"),
        tmp.path().join("classifier"),
    );
    train("vae", &vae);
    train("gan", &gan);
    train("classifier", &clf);
    let features = clf.join("checkpoint.safetensors");
    let small = [
        "--features",
        features.to_str().unwrap(),
        "--samples",
        "120",
        "--kid-subsets",
        "4",
        "--kid-subset-size",
        "50",
    ];
    let vae_ckpt = vae.join("checkpoint.safetensors");
    let mut args = vec![
        "eval",
        vae_ckpt.to_str().unwrap(),
        "--iwae",
        "1,8",
        "--iwae-images",
        "6",
    ];
    args.extend(small);
    let printed = ok(&args);
    for needle in [
        "IWAE, K = 1 ",
        "IWAE, K = 8 ",
        "negative ELBO",
        "fmnist-classifier@",
        "samples vs test",
        "test vs train (floor)",
        "precision",
        "recall",
    ] {
        assert!(printed.contains(needle), "no '{needle}' in\n{printed}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vae.join("eval.json")).unwrap()).unwrap();
    let bounds = json["likelihood"]["negative_iwae_bounds"]
        .as_array()
        .unwrap();
    assert_eq!(bounds.len(), 2);
    assert_eq!(json["likelihood"]["images"], 6);
    // The bound tightens with K: −L_8 below −L_1 (the seed is fixed, so this is one fixed draw).
    let (k1, k8) = (
        bounds[0]["nats"].as_f64().unwrap(),
        bounds[1]["nats"].as_f64().unwrap(),
    );
    assert!(
        k1.is_finite() && k8.is_finite() && k8 < k1,
        "−L_1 {k1}, −L_8 {k8}"
    );
    let q = &json["sample_quality"];
    assert!(q["feature_classifier"]
        .as_str()
        .unwrap()
        .starts_with("fmnist-classifier@"));
    assert_eq!(q["samples_vs_test"]["samples"], 120);
    for key in ["fid", "kid", "kid_standard_error", "precision", "recall"] {
        assert!(
            q["samples_vs_test"][key].as_f64().unwrap().is_finite(),
            "{key}"
        );
        assert!(
            q["test_vs_train"][key].as_f64().unwrap().is_finite(),
            "{key}"
        );
    }
    // An untrained-ish generator is farther from the test set than the training set is.
    assert!(
        q["samples_vs_test"]["fid"].as_f64().unwrap() > q["test_vs_train"]["fid"].as_f64().unwrap()
    );

    let gan_ckpt = gan.join("checkpoint.safetensors");
    let mut args = vec!["eval", gan_ckpt.to_str().unwrap()];
    args.extend(small);
    let printed = ok(&args);
    assert!(printed.contains("samples vs test") && !printed.contains("IWAE"));

    // The classifier does not sample: no quality figures, and no error.
    let printed = ok(&["eval", features.to_str().unwrap()]);
    assert!(!printed.contains("samples vs test"), "{printed}");
}

#[test]
fn a_feature_checkpoint_that_is_not_a_classifier_is_refused_by_name() {
    if !Path::new(FASHION_MNIST).is_dir() {
        eprintln!("skipped: no Fashion-MNIST at {FASHION_MNIST}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let vae = tmp.path().join("vae");
    train("vae", &vae);
    let ckpt = vae.join("checkpoint.safetensors");
    let out = ferrograd(&[
        "eval",
        ckpt.to_str().unwrap(),
        "--iwae",
        "0",
        "--features",
        ckpt.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not a classifier"), "{err}");
}

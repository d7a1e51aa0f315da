//! A whole `ferrograd cam` run on a tiny classifier and a made-up test split: the files it
//! writes and what they hold.

mod common;

use ferrograd_cam::maps::INPUT_LAYER;
use ferrograd_cam::render::Colormap;
use ferrograd_cam::run::{
    explain_examples, metrics_table, save_metrics, test_set_metrics, CamSettings, MetricsRow,
};
use ferrograd_cam::{Method, Score};
use ferrograd_engine::Rng;
use ferrograd_models::classifier::{Classifier, ClassifierActivation};
use ferrograd_models::data::Split;

fn split(n: usize, rng: &mut Rng) -> Split {
    Split {
        images: (0..n * 784).map(|_| rng.uniform() as f32).collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        len: n,
    }
}

fn settings() -> CamSettings {
    CamSettings {
        classes: vec![7, 9],
        images_per_class: 2,
        layers: vec![0, 1, 2],
        methods: Method::ALL.to_vec(),
        score: Score::ExpLogit,
        colormap: Colormap::Viridis,
        curve_steps: 4,
        road: false,
        raw: false,
    }
}

/// Narrow blocks keep the exact method quick.
fn tiny_classifier(rng: &mut Rng) -> Classifier {
    Classifier::with_channels([3, 4, 5], ClassifierActivation::Relu, 0.1, 0.0, 1e-3, rng).unwrap()
}

#[test]
fn a_run_writes_the_grid_and_one_record_per_map() {
    let mut rng = Rng::new(1);
    let model = tiny_classifier(&mut rng);
    let test = split(30, &mut rng);
    let out = std::env::temp_dir().join(format!("ferrograd-cam-run-{}", std::process::id()));
    let mut calls = 0;
    let records =
        explain_examples(&model, &test, &settings(), &out, &mut |_, _, _| calls += 1).unwrap();
    // 2 classes × 2 images × (CAM at conv3 + 7 layer methods × 3 layers + 2 input-level
    // methods once) = 96 maps.
    assert_eq!(records.len(), 96);
    assert!(calls >= 96, "progress is reported");
    assert!(records
        .iter()
        .all(|r| r.class == r.label && [7, 9].contains(&r.class)));
    assert!(records
        .iter()
        .all(|r| r.method != Method::Cam || r.layer == 2));
    assert!(records
        .iter()
        .all(|r| r.method.is_input_level() == (r.layer == INPUT_LAYER)));
    let grid = image::open(out.join("grid.png")).unwrap();
    assert!(
        grid.width() > 25 * 28 * 4 && grid.height() > 4 * 28 * 4,
        "{}x{}",
        grid.width(),
        grid.height()
    );
    // One readable picture per (class, layer): rows are that class's images, columns the input
    // and each method there (the input-level ones included), 112 px per map.
    for class in ["sneaker", "boot"] {
        for layer in ["conv1", "conv2", "conv3"] {
            let pic = image::open(out.join(format!("grid_{class}_{layer}.png"))).unwrap();
            let methods_here = if layer == "conv3" { 10 } else { 9 };
            assert!(
                pic.width() as usize >= (1 + methods_here) * 28 * 4 && pic.height() >= 2 * 28 * 4,
                "{class} {layer}: {}x{}",
                pic.width(),
                pic.height()
            );
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cam.json")).unwrap()).unwrap();
    let maps = json["maps"].as_array().unwrap();
    assert_eq!(maps.len(), 96);
    assert_eq!(maps.iter().filter(|m| m["layer"] == "input").count(), 8);
    for key in [
        "layer",
        "class",
        "method",
        "probability",
        "masked_probability",
        "deletion_auc",
        "insertion_auc",
    ] {
        assert!(
            maps.iter().all(|m| !m[key].is_null()),
            "every map has '{key}'"
        );
    }

    let metrics =
        test_set_metrics(&model, &test, &settings(), 6, 2, None, &mut |_, _, _| {}).unwrap();
    let rows = &metrics.rows;
    assert_eq!(rows.len(), 24);
    // gradcam++exact and gradcam++exact-clamped, each beside gradcam++ at the three layers.
    assert_eq!(metrics.closed_vs_exact.len(), 6);
    for r in rows {
        let want = if r.method.is_exact() { 2 } else { 6 };
        assert_eq!(
            r.summary.images, want,
            "{:?} at layer {}",
            r.method, r.layer
        );
        assert!((0.0..=100.0).contains(&r.summary.increase_in_confidence));
    }
    let table = save_metrics(&metrics, Score::ExpLogit, &out).unwrap();
    // The rows' table, a blank line, and the comparison's table.
    assert_eq!(table.lines().count(), 2 + 24 + 1 + 2 + 6, "{table}");
    assert!(out.join("metrics.json").exists());
    let cam: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cam.json")).unwrap()).unwrap();
    assert_eq!(cam["metrics"]["rows"].as_array().unwrap().len(), 24);
    assert_eq!(
        cam["metrics"]["closed_form_vs_exact"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn bad_settings_are_errors_that_say_what_is_wrong() {
    let mut rng = Rng::new(1);
    let model = tiny_classifier(&mut rng);
    let test = split(12, &mut rng);
    let out = std::env::temp_dir().join(format!("ferrograd-cam-bad-{}", std::process::id()));
    let run = |s: CamSettings| explain_examples(&model, &test, &s, &out, &mut |_, _, _| {});
    let e = run(CamSettings {
        classes: vec![12],
        ..settings()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("class 12 does not exist"), "{e}");
    let e = run(CamSettings {
        layers: vec![3],
        ..settings()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("layer 3 does not exist"), "{e}");
    let e = run(CamSettings {
        methods: vec![],
        ..settings()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("at least one"), "{e}");
    let few = Split {
        images: test.images[..784].to_vec(),
        labels: vec![0],
        len: 1,
    };
    let e = explain_examples(&model, &few, &settings(), &out, &mut |_, _, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("no image of class 7"), "{e}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn settings_out_of_range_or_with_no_map_to_draw_are_refused_naming_the_flag() {
    let refused = |s: CamSettings, needles: &[&str]| {
        let e = s.validate().unwrap_err().to_string();
        for n in needles {
            assert!(e.contains(n), "{e}");
        }
    };
    // A billion curve steps would build a billion-image curve: refused before any work.
    refused(
        CamSettings {
            curve_steps: 1_000_000_000,
            ..settings()
        },
        &["--curve-steps 1000000000", "784"],
    );
    refused(
        CamSettings {
            curve_steps: 0,
            ..settings()
        },
        &["--curve-steps 0"],
    );
    refused(
        CamSettings {
            images_per_class: 0,
            ..settings()
        },
        &["--images 0"],
    );
    refused(
        CamSettings {
            images_per_class: 1_000_000,
            ..settings()
        },
        &["--images 1000000", "32"],
    );
    refused(
        CamSettings {
            classes: vec![7, 7],
            ..settings()
        },
        &["--classes", "twice"],
    );
    refused(
        CamSettings {
            classes: vec![],
            ..settings()
        },
        &["--classes"],
    );
    // CAM has a map only at the last layer: CAM at conv1 is zero maps.
    refused(
        CamSettings {
            methods: vec![Method::Cam],
            layers: vec![0],
            ..settings()
        },
        &["no map to draw", "conv1"],
    );
    let s = settings();
    s.validate_metrics(10, 1).unwrap();
    for (images, exact, needle) in [
        (0, 1, "--metrics-images 0"),
        (1_000_000_000, 1, "--metrics-images 1000000000"),
        (10, 0, "--exact-images 0"),
    ] {
        let e = s.validate_metrics(images, exact).unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    }
    // Without the exact method, no exact image is needed.
    CamSettings {
        methods: vec![Method::GradCam],
        ..settings()
    }
    .validate_metrics(10, 0)
    .unwrap();
}

/// The batched metrics give the figures of scoring each map on its own, image by image, as
/// `score_image` defines them (the batching changes only rounding: f32 products summed in
/// another order).
#[test]
fn batched_metrics_equal_scoring_each_map_alone() {
    use ferrograd_cam::metrics::{score_image, Summary};
    use ferrograd_cam::run::{class_probability, heat_map, METRICS_BATCH};
    use ferrograd_engine::no_grad;
    use ferrograd_models::classifier::argmax_rows;
    use ferrograd_nn::nn::Ctx;

    let mut rng = Rng::new(11);
    let model = tiny_classifier(&mut rng);
    // More images than one batch, and a last batch that is not full.
    let images = METRICS_BATCH + 3;
    let mut test = split(images, &mut rng);
    // Images of different brightness and contrast, so that the model predicts more than one
    // class: a batch scored for one class would otherwise pass unnoticed.
    for (i, image) in test.images.chunks_mut(784).enumerate() {
        let (gain, offset) = (0.2 + 0.8 * (i % 7) as f32 / 6.0, 0.1 * (i % 3) as f32);
        image
            .iter_mut()
            .for_each(|v| *v = (*v * gain + offset).min(1.0));
    }
    let predicted: std::collections::BTreeSet<usize> = (0..images)
        .map(|i| {
            let (x, _) = test.batch_at(&[i]).unwrap();
            no_grad(|| argmax_rows(&model.logits(&x, &mut Ctx::eval()).unwrap())).unwrap()[0]
        })
        .collect();
    assert!(
        predicted.len() >= 2,
        "the model predicts only {predicted:?}"
    );
    let settings = settings();
    let exact_images = 2;
    let rows = test_set_metrics(
        &model,
        &test,
        &settings,
        images,
        exact_images,
        None,
        &mut |_, _, _| {},
    )
    .unwrap()
    .rows;
    assert_eq!(rows.len(), settings.columns().len());
    for row in &rows {
        let seen = if row.method.is_exact() {
            exact_images
        } else {
            images
        };
        let mut alone = Vec::new();
        for index in 0..seen {
            let (x, _) = test.batch_at(&[index]).unwrap();
            let pixels = x.to_vec_f32();
            let class =
                no_grad(|| argmax_rows(&model.logits(&x, &mut Ctx::eval()).unwrap())).unwrap()[0];
            let heat = heat_map(
                &model,
                &x,
                class,
                row.layer,
                row.method,
                settings.score,
                &mut |_, _| {},
            )
            .unwrap();
            alone.push(
                score_image(
                    &pixels,
                    &heat,
                    class,
                    settings.curve_steps,
                    &mut |imgs, n, c| class_probability(&model, imgs, n, c),
                )
                .unwrap(),
            );
        }
        let want = Summary::of(&alone);
        let got = &row.summary;
        assert_eq!(
            got.images, want.images,
            "{:?} at layer {}",
            row.method, row.layer
        );
        for (name, g, w) in [
            ("average drop", got.average_drop, want.average_drop),
            (
                "increase in confidence",
                got.increase_in_confidence,
                want.increase_in_confidence,
            ),
            ("deletion", got.deletion_auc, want.deletion_auc),
            ("insertion", got.insertion_auc, want.insertion_auc),
        ] {
            assert!(
                (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{:?} at layer {}: {name} {g} batched, {w} alone",
                row.method,
                row.layer
            );
        }
    }
}

#[test]
fn raw_json_holds_enough_to_recompute_every_weighted_map_and_the_exact_weights() {
    let mut rng = Rng::new(5);
    let model = tiny_classifier(&mut rng);
    let test = split(30, &mut rng);
    let out = std::env::temp_dir().join(format!("ferrograd-cam-raw-{}", std::process::id()));
    let settings = CamSettings {
        raw: true,
        images_per_class: 1,
        ..settings()
    };
    explain_examples(&model, &test, &settings, &out, &mut |_, _, _| {}).unwrap();
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("raw.json")).unwrap()).unwrap();
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let mut checked_exact = 0;
    for m in raw["maps"].as_array().unwrap() {
        let method = m["method"].as_str().unwrap();
        assert!(m["y"].as_f64().unwrap().is_finite());
        if ["saliency", "smoothgrad", "layercam"].contains(&method) {
            continue;
        }
        let (a, w, map) = (
            floats(&m["activation"]),
            floats(&m["weights"]),
            floats(&m["map"]),
        );
        let positions = map.len();
        // map = ReLU(Σ_k w_k A^k) (CAM without the ReLU).
        for p in 0..positions {
            let sum: f64 = w
                .iter()
                .enumerate()
                .map(|(k, wk)| wk * a[k * positions + p])
                .sum();
            let want = if method == "cam" { sum } else { sum.max(0.0) };
            assert!(
                (map[p] - want).abs() < 1e-5 * (1.0 + want.abs()),
                "{method} at {p}"
            );
        }
        if method.starts_with("gradcam++exact") {
            // α = d2 / (2·d2 + Σ_ab A_ab·d3), w_k = Σ_ij α·ReLU(d1): the paper's equations on
            // the file's numbers alone (α clamped to [0, ½] for the clamped variant).
            let clamped = method == "gradcam++exact-clamped";
            let (d1, d2, d3) = (floats(&m["d1"]), floats(&m["d2"]), floats(&m["d3"]));
            for (k, wk) in w.iter().enumerate() {
                let channel: f64 = a[k * positions..(k + 1) * positions].iter().sum();
                let recomputed: f64 = (k * positions..(k + 1) * positions)
                    .map(|e| {
                        let den = 2.0 * d2[e] + channel * d3[e];
                        let alpha = if den != 0.0 { d2[e] / den } else { 0.0 };
                        let alpha = if clamped {
                            alpha.clamp(0.0, 0.5)
                        } else {
                            alpha
                        };
                        alpha * d1[e].max(0.0)
                    })
                    .sum();
                assert!((wk - recomputed).abs() < 1e-12 * (1.0 + wk.abs()), "w_{k}");
            }
            checked_exact += 1;
        }
    }
    assert!(checked_exact > 0, "the exact maps were in raw.json");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn road_scores_every_map_when_asked_and_only_then() {
    let mut rng = Rng::new(8);
    let model = tiny_classifier(&mut rng);
    let test = split(12, &mut rng);
    let settings = CamSettings {
        methods: vec![Method::GradCam, Method::GradCamPlusPlusExact],
        layers: vec![2],
        road: true,
        ..settings()
    };
    let rows = test_set_metrics(&model, &test, &settings, 5, 2, None, &mut |_, _, _| {})
        .unwrap()
        .rows;
    for r in &rows {
        let road = r.road.expect("ROAD was asked for");
        for (m, se) in [road.morf, road.lerf] {
            assert!(
                (0.0..=1.0).contains(&m) && se.is_finite(),
                "{:?}: {road:?}",
                r.method
            );
        }
        assert!(r.summary.standard_errors.iter().all(|s| s.is_finite()));
    }
    let table = metrics_table(&rows);
    assert!(table.contains("ROAD MoRF"), "{table}");
    let without = CamSettings {
        road: false,
        ..settings
    };
    let rows = test_set_metrics(&model, &test, &without, 5, 2, None, &mut |_, _, _| {})
        .unwrap()
        .rows;
    assert!(rows.iter().all(|r| r.road.is_none()));
    assert!(!metrics_table(&rows).contains("ROAD"));
}

/// The comparison pairs each exact column with the closed form at its own layer: over the
/// same images, the mean of the paired differences is the difference of the two rows' means,
/// and its rank correlation is that of the two maps, recomputed here image by image.
#[test]
fn closed_vs_exact_pairs_the_same_images_at_the_same_layer() {
    // Softplus and the softmax score: the closed form is not the exact answer, so the two
    // columns differ and a pairing across layers would show. In f64 the batched maps of the
    // run and the single ones here agree far below any tie.
    let model = common::classifier(ClassifierActivation::Softplus, 5);
    let test = split(6, &mut Rng::new(6));
    let settings = CamSettings {
        methods: vec![Method::GradCamPlusPlus, Method::GradCamPlusPlusExact],
        layers: vec![0, 1, 2],
        score: Score::Softmax,
        road: true,
        ..settings()
    };
    let images = 6;
    let metrics = test_set_metrics(
        &model,
        &test,
        &settings,
        images,
        images,
        None,
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!(metrics.closed_vs_exact.len(), 3);
    for c in &metrics.closed_vs_exact {
        assert_eq!(c.images, images);
        let row = |method: Method| {
            metrics
                .rows
                .iter()
                .find(|r| r.method == method && r.layer == c.layer)
                .unwrap()
        };
        let (exact, closed) = (
            row(Method::GradCamPlusPlusExact),
            row(Method::GradCamPlusPlus),
        );
        let (e, k) = (&exact.summary, &closed.summary);
        for (got, want) in [
            (c.differences[0].0, e.average_drop - k.average_drop),
            (
                c.differences[1].0,
                e.increase_in_confidence - k.increase_in_confidence,
            ),
            (c.differences[2].0, e.deletion_auc - k.deletion_auc),
            (c.differences[3].0, e.insertion_auc - k.insertion_auc),
        ] {
            assert!(
                (got - want).abs() < 1e-9,
                "layer {}: {got} vs {want}",
                c.layer
            );
        }
        let (er, kr) = (exact.road.unwrap(), closed.road.unwrap());
        let road = c.road_differences.unwrap();
        assert!((road[0].0 - (er.morf.0 - kr.morf.0)).abs() < 1e-9);
        assert!((road[1].0 - (er.lerf.0 - kr.lerf.0)).abs() < 1e-9);
        // The rank correlation, recomputed from the two maps of each image.
        let mut correlations = Vec::new();
        for i in 0..images {
            let x = ferrograd_engine::Tensor::from_f64s(
                &test.images[i * 784..(i + 1) * 784]
                    .iter()
                    .map(|&v| v as f64)
                    .collect::<Vec<_>>(),
                &[1, 1, 28, 28],
                ferrograd_engine::DType::F64,
            )
            .unwrap();
            let class = ferrograd_models::classifier::argmax_rows(
                &ferrograd_engine::no_grad(|| model.logits(&x, &mut ferrograd_nn::nn::Ctx::eval()))
                    .unwrap(),
            )
            .unwrap()[0];
            let heat = |method| {
                ferrograd_cam::run::heat_map(
                    &model,
                    &x,
                    class,
                    c.layer,
                    method,
                    Score::Softmax,
                    &mut |_, _| {},
                )
                .unwrap()
            };
            correlations.push(ferrograd_cam::sanity::spearman(
                &heat(Method::GradCamPlusPlus),
                &heat(Method::GradCamPlusPlusExact),
            ));
        }
        let mean = correlations.iter().sum::<f64>() / images as f64;
        assert!(
            (c.rank_correlation.0 - mean).abs() < 1e-6,
            "layer {}: {:?} vs {mean}",
            c.layer,
            c.rank_correlation
        );
    }
}

/// A run cut short and resumed from its per-image log gives the figures of one uninterrupted
/// run, without redoing the images the log holds; a log written with other settings is
/// refused, naming the setting.
#[test]
fn an_interrupted_metrics_run_resumes_from_its_log() {
    use ferrograd_cam::metrics_log::MetricsLog;
    let mut rng = Rng::new(9);
    let model = tiny_classifier(&mut rng);
    let test = split(40, &mut rng);
    let dir = std::env::temp_dir().join(format!("ferrograd-cam-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let settings = CamSettings {
        methods: vec![
            Method::GradCam,
            Method::GradCamPlusPlus,
            Method::GradCamPlusPlusExact,
        ],
        layers: vec![1, 2],
        road: true,
        ..settings()
    };
    let log = |resume| MetricsLog {
        path: dir.join("metrics_images.jsonl"),
        resume,
        model: "tiny".into(),
    };
    let (images, exact_images) = (40, 35);
    let whole = test_set_metrics(
        &model,
        &test,
        &settings,
        images,
        exact_images,
        Some(&log(false)),
        &mut |_, _, _| {},
    )
    .unwrap();
    let text = std::fs::read_to_string(dir.join("metrics_images.jsonl")).unwrap();
    assert_eq!(
        text.lines().count(),
        1 + images,
        "a header and a line per image"
    );
    // Cut after the first batch of 32 images and half of the next line.
    let lines: Vec<&str> = text.lines().collect();
    let mut cut = lines[..1 + 32].join("\n");
    cut.push('\n');
    cut.push_str(&lines[33][..lines[33].len() / 2]);
    std::fs::write(dir.join("metrics_images.jsonl"), cut).unwrap();
    let mut first_start = None;
    let resumed = test_set_metrics(
        &model,
        &test,
        &settings,
        images,
        exact_images,
        Some(&log(true)),
        &mut |_, done, _| {
            first_start.get_or_insert(done);
        },
    )
    .unwrap();
    assert_eq!(first_start, Some(32), "the logged images are not redone");
    // Every figure bit for bit; the seconds per map are wall times and differ run to run.
    let figures = |rows: &[MetricsRow]| {
        rows.iter()
            .map(|r| format!("{:?} {} {:?} {:?}", r.method, r.layer, r.summary, r.road))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        figures(&resumed.rows),
        figures(&whole.rows),
        "the same figures"
    );
    assert_eq!(
        format!(
            "{:?}",
            resumed
                .closed_vs_exact
                .iter()
                .map(|c| (c.images, c.rank_correlation, c.differences))
                .collect::<Vec<_>>()
        ),
        format!(
            "{:?}",
            whole
                .closed_vs_exact
                .iter()
                .map(|c| (c.images, c.rank_correlation, c.differences))
                .collect::<Vec<_>>()
        )
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("metrics_images.jsonl"))
            .unwrap()
            .lines()
            .count(),
        1 + images
    );
    // Another score is another experiment: refused, by name.
    let other = CamSettings {
        score: Score::Softmax,
        ..settings.clone()
    };
    let err = test_set_metrics(
        &model,
        &test,
        &other,
        images,
        exact_images,
        Some(&log(true)),
        &mut |_, _, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("'score'") && err.contains("--resume"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

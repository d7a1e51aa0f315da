//! The face-swap network: shapes, one step of each prior, state round trips, mixing.

use ferrograd_deepfake::model::{FaceSwap, PriorKind, Side, SwapConfig};
use ferrograd_engine::{DType, Rng, Tensor};
use ferrograd_nn::nn::{Ctx, Module};
use std::collections::BTreeMap;

fn faces(n: usize, seed: u64) -> Tensor {
    Tensor::rand_uniform(&[n, 3, 100, 100], 0.0, 1.0, DType::F32, &mut Rng::new(seed)).unwrap()
}

fn small(prior: PriorKind) -> FaceSwap {
    FaceSwap::new(
        SwapConfig {
            latent: 16,
            prior,
            prior_weight: 0.01,
            lr: 1e-3,
            dssim_weight: 0.0,
            ema_decay: 0.0,
            identity_weight: 0.0,
            eye_multiplier: 1.0,
            mouth_multiplier: 1.0,
        },
        &mut Rng::new(3),
    )
    .unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    a.to_vec_f64()
        .iter()
        .zip(b.to_vec_f64())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn codes_and_faces_have_the_documented_shapes() {
    let model = small(PriorKind::Adversarial);
    let x = faces(2, 1);
    assert_eq!(model.encode(&x).unwrap().shape(), &[2, 16]);
    for side in [Side::A, Side::B] {
        let y = model.transfer(&x, side).unwrap();
        assert_eq!(y.shape(), &[2, 3, 100, 100]);
        assert!(y.to_vec_f64().iter().all(|v| (0.0..=1.0).contains(v)));
    }
    let err = model
        .encode(&Tensor::zeros(&[1, 3, 64, 64], DType::F32).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[N, 3, 100, 100]") && err.contains("64"),
        "{err}"
    );
}

#[test]
fn each_prior_trains_and_its_state_round_trips() {
    for prior in [PriorKind::Adversarial, PriorKind::Variational] {
        let mut model = small(prior);
        let (a, b) = (faces(2, 1), faces(2, 2));
        let step = |m: &mut FaceSwap, seed| {
            m.train_step((&a, &a), (&b, &b), &mut Ctx::train(seed))
                .unwrap()
        };
        let first = step(&mut model, 1);
        assert!(first.total.is_finite() && first.reconstruction_a > 0.0);
        if prior == PriorKind::Adversarial {
            // Untrained, the discriminator is near chance: log 4 ≈ 1.386.
            assert!((first.discriminator - 4f64.ln()).abs() < 0.3, "{first:?}");
        } else {
            assert_eq!(first.discriminator, 0.0);
        }
        let (tensors, meta) = model.state();
        let saved: BTreeMap<String, Tensor> =
            tensors.into_iter().map(|(n, t)| (n, t.detach())).collect();
        let before = model.transfer(&a, Side::B).unwrap();
        let next = step(&mut model, 2);
        assert!(max_abs_diff(&before, &model.transfer(&a, Side::B).unwrap()) > 0.0);
        model.load_state(&saved, &meta).unwrap();
        assert_eq!(model.steps(), 1);
        assert_eq!(
            max_abs_diff(&before, &model.transfer(&a, Side::B).unwrap()),
            0.0
        );
        // The restored optimizer takes the very same second step.
        assert_eq!(step(&mut model, 2), next, "{prior:?}");
    }
}

/// Faces of one flat colour each: learnable in a few steps (noise is not: an untrained
/// decoder's 0.5 is already its best guess).
fn flat(colours: &[[f32; 3]]) -> Tensor {
    let plane = 100 * 100;
    let v: Vec<f32> = colours
        .iter()
        .flat_map(|c| c.iter().flat_map(move |&v| std::iter::repeat_n(v, plane)))
        .collect();
    Tensor::from_vec(v, &[colours.len(), 3, 100, 100]).unwrap()
}

#[test]
fn a_few_steps_on_one_batch_lower_the_reconstruction_error() {
    let mut model = small(PriorKind::Adversarial);
    let a = flat(&[[0.9, 0.8, 0.7], [0.8, 0.6, 0.5]]);
    let b = flat(&[[0.1, 0.2, 0.1], [0.2, 0.1, 0.3]]);
    let mut losses = Vec::new();
    for seed in 0..8 {
        let l = model
            .train_step((&a, &a), (&b, &b), &mut Ctx::train(seed))
            .unwrap();
        losses.push(l.reconstruction_a + l.reconstruction_b);
    }
    assert!(
        losses[7] < 0.5 * losses[0],
        "reconstruction did not fall: {losses:?}"
    );
}

#[test]
fn the_dssim_term_is_in_the_total_and_steps_lower_it() {
    let mut model = FaceSwap::new(
        SwapConfig {
            latent: 16,
            lr: 1e-3,
            dssim_weight: 2.0,
            identity_weight: 0.0,
            ..SwapConfig::default()
        },
        &mut Rng::new(3),
    )
    .unwrap();
    let (a, b) = (faces(2, 1), faces(2, 2));
    let mut structure = Vec::new();
    for seed in 0..6 {
        let l = model
            .train_step((&a, &a), (&b, &b), &mut Ctx::train(seed))
            .unwrap();
        // total = ½(L1_A + L1_B) + s·DSSIM + w·prior, with s = 2 and w = 0.01.
        let want =
            0.5 * (l.reconstruction_a + l.reconstruction_b) + 2.0 * l.structure + 0.01 * l.prior;
        assert!((l.total - want).abs() < 1e-5, "{l:?}");
        assert!(l.structure > 0.0 && l.structure <= 1.0, "{l:?}");
        structure.push(l.structure);
    }
    assert!(structure[5] < structure[0], "{structure:?}");
    // Without the weight the term is not computed.
    let l1_only = small(PriorKind::Adversarial)
        .train_step((&a, &a), (&b, &b), &mut Ctx::train(0))
        .unwrap();
    assert_eq!(l1_only.structure, 0.0);
}

#[test]
fn uniform_loss_weights_train_as_none_and_weights_on_a_region_favour_it() {
    let config = SwapConfig {
        latent: 16,
        lr: 1e-3,
        ema_decay: 0.0,
        ..SwapConfig::default()
    };
    let (a, b) = (faces(2, 1), faces(2, 2));
    let ones = Tensor::full(a.shape(), 1.0, DType::F32).unwrap();
    let mut plain = FaceSwap::new(config.clone(), &mut Rng::new(3)).unwrap();
    let mut weighted = FaceSwap::new(config.clone(), &mut Rng::new(3)).unwrap();
    for seed in 0..3 {
        let p = plain
            .train_step((&a, &a), (&b, &b), &mut Ctx::train(seed))
            .unwrap();
        let w = weighted
            .train_step_weighted(
                (&a, &a),
                (&b, &b),
                Some((&ones, &ones)),
                &mut Ctx::train(seed),
            )
            .unwrap();
        assert!((p.total - w.total).abs() < 1e-5, "{p:?} vs {w:?}");
        assert!((p.structure - w.structure).abs() < 1e-5, "{p:?} vs {w:?}");
    }
    // Weight 50 on the top half: after the same steps, the top half of A's reconstruction is
    // nearer its target than with uniform weights, and the bottom half further.
    let top = |weight: f32| {
        let mut w = vec![1.0f32; 2 * 3 * 100 * 100];
        for plane in w.chunks_exact_mut(100 * 100) {
            plane[..50 * 100].fill(weight);
        }
        Tensor::from_vec(w, a.shape()).unwrap()
    };
    let halves_error = |weight: f32| {
        let mut model = FaceSwap::new(config.clone(), &mut Rng::new(3)).unwrap();
        let w = top(weight);
        for seed in 0..25 {
            model
                .train_step_weighted((&a, &a), (&b, &b), Some((&w, &w)), &mut Ctx::train(seed))
                .unwrap();
        }
        let y = model.transfer(&a, Side::A).unwrap().to_vec_f32();
        let x = a.to_vec_f32();
        let (mut upper, mut lower) = (0.0, 0.0);
        for (i, (p, t)) in y.iter().zip(&x).enumerate() {
            let e = f64::from((p - t).abs());
            if (i % (100 * 100)) < 50 * 100 {
                upper += e;
            } else {
                lower += e;
            }
        }
        (upper, lower)
    };
    let (uniform, favoured) = (halves_error(1.0), halves_error(50.0));
    assert!(favoured.0 < uniform.0, "{favoured:?} vs {uniform:?}");
    assert!(favoured.1 > uniform.1, "{favoured:?} vs {uniform:?}");
}

#[test]
fn with_a_weight_average_swaps_draw_from_it_and_it_is_saved() {
    let config = SwapConfig {
        latent: 16,
        lr: 1e-3,
        ema_decay: 0.9,
        ..SwapConfig::default()
    };
    let mut model = FaceSwap::new(config.clone(), &mut Rng::new(3)).unwrap();
    let (a, b) = (faces(2, 1), faces(2, 2));
    for seed in 0..3 {
        model
            .train_step((&a, &a), (&b, &b), &mut Ctx::train(seed))
            .unwrap();
    }
    let raw = || {
        ferrograd_engine::no_grad(|| {
            let h = model.encoder.forward(&a, &mut Ctx::eval())?;
            model.decoder_a.forward(&h, &mut Ctx::eval())?.sigmoid()
        })
        .unwrap()
    };
    let before = raw();
    let averaged = model.transfer(&a, Side::A).unwrap();
    assert!(
        max_abs_diff(&averaged, &before) > 1e-4,
        "the average is the last step"
    );
    assert_eq!(
        max_abs_diff(&raw(), &before),
        0.0,
        "the trained weights came back"
    );

    let (tensors, metadata) = model.state();
    assert!(tensors
        .iter()
        .any(|(n, _)| n == "optim_ema.decoder_b.0.weight"));
    assert_eq!(metadata["optim_ema.updates"], "3");
    let mut restored = FaceSwap::new(config, &mut Rng::new(99)).unwrap();
    let map: BTreeMap<String, Tensor> = tensors.into_iter().collect();
    restored.load_state(&map, &metadata).unwrap();
    assert_eq!(
        max_abs_diff(&restored.transfer(&a, Side::A).unwrap(), &averaged),
        0.0
    );
}

/// Two identities the code can tell apart at a glance: light faces (A) and dark ones (B).
fn light_and_dark() -> (Tensor, Tensor) {
    (
        flat(&[[0.9, 0.8, 0.7], [0.8, 0.7, 0.6]]),
        flat(&[[0.1, 0.2, 0.1], [0.2, 0.1, 0.2]]),
    )
}

/// The identity critic's mean loss over the last quarter of `steps` steps with identity
/// weight `weight`, and the last step's losses.
fn critic_after(weight: f64, steps: u64) -> (f64, ferrograd_deepfake::model::StepLosses) {
    let mut model = FaceSwap::new(
        SwapConfig {
            latent: 16,
            lr: 1e-3,
            identity_weight: weight,
            dssim_weight: 0.0,
            ema_decay: 0.0,
            ..SwapConfig::default()
        },
        &mut Rng::new(3),
    )
    .unwrap();
    let (a, b) = light_and_dark();
    let mut last = Default::default();
    let mut late = Vec::new();
    for seed in 0..steps {
        last = model
            .train_step((&a, &a), (&b, &b), &mut Ctx::train(seed))
            .unwrap();
        if seed >= steps - steps / 4 {
            late.push(last.identity_critic);
        }
    }
    (late.iter().sum::<f64>() / late.len() as f64, last)
}

#[test]
fn the_identity_critic_learns_to_tell_and_the_confusion_term_hides_the_identity() {
    // Barely weighted, the critic learns to tell light codes from dark ones.
    let (told, l) = critic_after(1e-6, 120);
    // The total holds the confusion term: ½(L1_A + L1_B) + w·prior + c·BCE(C(h), ½).
    let want = 0.5 * (l.reconstruction_a + l.reconstruction_b)
        + 0.01 * l.prior
        + 1e-6 * l.identity_confusion;
    assert!((l.total - want).abs() < 1e-5, "{l:?}");
    assert!(l.identity_confusion >= 2f64.ln() - 1e-6, "{l:?}");
    // Weighted, the encoder keeps its codes from saying whose face it is: the critic stays
    // near chance (log 4 ≈ 1.386).
    let (hidden, _) = critic_after(10.0, 120);
    assert!(
        told < 0.5 && hidden > 1.2,
        "critic loss with the term barely weighted {told}, weighted {hidden}"
    );
    // Without the weight there is no critic, and nothing of it is saved.
    let model = small(PriorKind::Adversarial);
    assert!(model.identity_critic.is_none());
    let (tensors, _) = model.state();
    assert!(tensors.iter().all(|(n, _)| !n.contains("identity")));
}

#[test]
fn mixing_ends_at_each_face_and_splicing_picks_code_dimensions() {
    let model = small(PriorKind::Adversarial);
    let (a, b) = (faces(1, 7), faces(1, 8));
    let strip = model.mix(&a, &b, 5, Side::A).unwrap();
    assert_eq!(strip.shape(), &[5, 3, 100, 100]);
    let first = strip.narrow(0, 0, 1).unwrap();
    let last = strip.narrow(0, 4, 1).unwrap();
    assert!(max_abs_diff(&first, &model.transfer(&a, Side::A).unwrap()) < 1e-6);
    assert!(max_abs_diff(&last, &model.transfer(&b, Side::A).unwrap()) < 1e-6);
    // All dimensions from a: a's own decoding; none: b's.
    let all_a = model.splice(&a, &b, 16, Side::B).unwrap();
    let all_b = model.splice(&a, &b, 0, Side::B).unwrap();
    assert!(max_abs_diff(&all_a, &model.transfer(&a, Side::B).unwrap()) < 1e-6);
    assert!(max_abs_diff(&all_b, &model.transfer(&b, Side::B).unwrap()) < 1e-6);
    let half = model.splice(&a, &b, 8, Side::B).unwrap();
    assert!(max_abs_diff(&half, &all_a) > 0.0 && max_abs_diff(&half, &all_b) > 0.0);
    assert!(model.mix(&a, &b, 1, Side::A).is_err());
    assert!(model.splice(&a, &b, 17, Side::A).is_err());
}

#[test]
fn batches_of_different_sizes_are_refused() {
    let mut model = small(PriorKind::Adversarial);
    let err = model
        .train_step(
            (&faces(2, 1), &faces(2, 1)),
            (&faces(3, 2), &faces(3, 2)),
            &mut Ctx::train(0),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("(2)") && err.contains("(3)"), "{err}");
}

/// `deepfake eval --write-images`: every face as a 100x100 PNG that reads back as the face (to
/// one step of 8 bits), the held-out ones beside their reconstruction and swap, and a manifest.
#[test]
fn the_judge_images_are_the_faces_pixel_for_pixel() {
    use ferrograd_deepfake::faces::Identity;
    use ferrograd_deepfake::train::Pair;
    let model = small(PriorKind::Adversarial);
    let face_list = |n, seed| -> Vec<Vec<f32>> {
        let t = faces(n, seed).to_vec_f32();
        t.chunks(3 * 100 * 100).map(<[f32]>::to_vec).collect()
    };
    let identity = |name: &str, seed| Identity {
        name: name.into(),
        train: face_list(3, seed),
        held_out: face_list(2, seed + 1),
        skipped: Vec::new(),
    };
    let pair = Pair {
        a: identity("Ann", 10),
        b: identity("Bob", 20),
        others: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let files = ferrograd_deepfake::eval::write_judge_images(&model, &pair, dir.path()).unwrap();
    assert_eq!(files, 2 * (3 + 2 * 3) + 1);
    let png = image::open(dir.path().join("b/held_out/0001_real.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(png.dimensions(), (100, 100));
    let face = &pair.b.held_out[1];
    for (y, x, c) in [(0, 0, 0), (17, 83, 1), (99, 99, 2), (50, 3, 0)] {
        let want = face[c * 10_000 + y * 100 + x];
        let got = f32::from(png.get_pixel(x as u32, y as u32)[c]) / 255.0;
        assert!(
            (got - want).abs() <= 0.5 / 255.0 + 1e-6,
            "({y}, {x}, {c}): {got} vs {want}"
        );
    }
    let swap = image::open(dir.path().join("a/held_out/0000_swap.png"))
        .unwrap()
        .to_rgb8();
    let expected = model
        .transfer(
            &Tensor::from_vec(pair.a.held_out[0].clone(), &[1, 3, 100, 100]).unwrap(),
            Side::B,
        )
        .unwrap()
        .to_vec_f32();
    let got = f32::from(swap.get_pixel(40, 60)[1]) / 255.0;
    let want = expected[10_000 + 60 * 100 + 40].clamp(0.0, 1.0);
    assert!((got - want).abs() <= 0.5 / 255.0 + 1e-6, "{got} vs {want}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("faces.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["b"]["identity"], "Bob");
    assert_eq!(manifest["a"]["held_out"], 2);
}

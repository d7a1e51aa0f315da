//! The VAE's importance-weighted bounds: K = 1 is the ELBO estimator, the bound rises with K,
//! and binarised test images are reproducible.

use ferrograd_engine::{DType, Rng, Tensor};
use ferrograd_models::generative::{iwae_bound, LikelihoodData, Model, Vae};
use ferrograd_nn::nn::{self, Ctx, Module};
use std::f64::consts::PI;

const LATENT: usize = 4;

/// A small untrained VAE in f64, so the comparisons hold to rounding.
fn vae_f64(seed: u64) -> Vae {
    let vae = Vae::new(LATENT, 1.0, 1e-3, &mut Rng::new(seed)).unwrap();
    for (prefix, module) in vae.modules() {
        for (_, t) in nn::state_of(module, prefix) {
            t.cast_in_place(DType::F64).unwrap();
        }
    }
    vae
}

fn images(n: usize, rng: &mut Rng) -> Tensor {
    let values: Vec<f64> = (0..n * 784).map(|_| rng.uniform()).collect();
    Tensor::from_vec(values, &[n, 1, 28, 28]).unwrap()
}

fn softplus(l: f64) -> f64 {
    l.max(0.0) + (-l.abs()).exp().ln_1p()
}

#[test]
fn k_equal_1_is_the_one_sample_elbo_estimator_with_the_same_noise() {
    let mut rng = Rng::new(1);
    let vae = vae_f64(2);
    let n = 3;
    let x = images(n, &mut rng);
    let eps: Vec<f64> = (0..n * LATENT).map(|_| rng.normal()).collect();
    let weights = vae.log_importance_weights_with(&x, &eps, 1).unwrap();

    // The same estimator written out with every density in full (2π terms included).
    let (mu, log_var) = vae.encode(&x, &mut Ctx::eval()).unwrap();
    let (mu, log_var) = (mu.to_vec_f64(), log_var.to_vec_f64());
    let z: Vec<f64> = (0..n * LATENT)
        .map(|i| mu[i] + (0.5 * log_var[i]).exp() * eps[i])
        .collect();
    let logits = vae
        .decoder
        .forward(
            &Tensor::from_vec(z.clone(), &[n, LATENT]).unwrap(),
            &mut Ctx::eval(),
        )
        .unwrap()
        .to_vec_f64();
    let pixels = x.to_vec_f64();
    for i in 0..n {
        let log_px: f64 = (0..784)
            .map(|p| {
                let (l, t) = (logits[i * 784 + p], pixels[i * 784 + p]);
                t * -softplus(-l) + (1.0 - t) * -softplus(l)
            })
            .sum();
        let log_normal =
            |v: f64, m: f64, lv: f64| -0.5 * ((2.0 * PI).ln() + lv + (v - m).powi(2) / lv.exp());
        let (log_pz, log_qz): (f64, f64) = (0..LATENT)
            .map(|j| {
                let k = i * LATENT + j;
                (
                    log_normal(z[k], 0.0, 0.0),
                    log_normal(z[k], mu[k], log_var[k]),
                )
            })
            .fold((0.0, 0.0), |(a, b), (c, d)| (a + c, b + d));
        let elbo_estimate = log_px + log_pz - log_qz;
        assert_eq!(weights[i].len(), 1);
        assert!(
            (weights[i][0] - elbo_estimate).abs() < 1e-9 * elbo_estimate.abs(),
            "image {i}: log w {} against the ELBO estimator {elbo_estimate}",
            weights[i][0]
        );
        assert_eq!(iwae_bound(&weights[i], 1), weights[i][0]);
    }
}

#[test]
fn k_equal_1_averages_to_the_elbo_with_the_analytic_kl() {
    // E_q[log p(x|z) + log p(z) − log q(z|x)] = E_q[log p(x|z)] − KL: the sampled and the
    // analytic forms agree in expectation.
    let mut rng = Rng::new(3);
    let vae = vae_f64(4);
    let x = images(1, &mut rng);
    let draws = 3000;
    let sampled: Vec<f64> = vae.log_importance_weights(&x, draws, &mut rng).unwrap()[0].clone();
    let analytic: Vec<f64> = (0..draws)
        .map(|_| -vae.negative_elbo_per_image(&x, &mut rng).unwrap()[0])
        .collect();
    let stats = |v: &[f64]| {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
        (m, var / v.len() as f64)
    };
    let ((ms, vs), (ma, va)) = (stats(&sampled), stats(&analytic));
    let se = (vs + va).sqrt();
    assert!(
        (ms - ma).abs() < 4.0 * se,
        "sampled-KL mean {ms} against analytic-KL mean {ma} (s.e. {se})"
    );
}

#[test]
fn the_bound_does_not_decrease_with_k_on_a_fixed_seed() {
    let mut rng = Rng::new(5);
    let vae = vae_f64(6);
    let x = images(12, &mut rng);
    let weights = vae
        .log_importance_weights(&x, 256, &mut Rng::new(7))
        .unwrap();
    let mean_bound = |k: usize| weights.iter().map(|w| iwae_bound(w, k)).sum::<f64>() / 12.0;
    let bounds: Vec<f64> = [1, 4, 16, 64, 256].iter().map(|&k| mean_bound(k)).collect();
    for pair in bounds.windows(2) {
        assert!(
            pair[1] >= pair[0],
            "bounds by K = 1, 4, 16, 64, 256: {bounds:?}"
        );
    }
    assert!(
        bounds[4] > bounds[0] + 1e-6,
        "the bound must tighten: {bounds:?}"
    );
}

#[test]
fn iwae_bound_is_the_log_mean_of_the_weights() {
    let w = [1.0f64.ln(), 3.0f64.ln(), 8.0f64.ln()];
    assert!((iwae_bound(&w, 2) - 2.0f64.ln()).abs() < 1e-15);
    assert!((iwae_bound(&w, 3) - 4.0f64.ln()).abs() < 1e-15);
    // Large log weights do not overflow.
    assert!((iwae_bound(&[1000.0, 1000.0], 2) - 1000.0).abs() < 1e-12);
}

#[test]
fn binarised_images_depend_only_on_the_seed_and_the_image_index() {
    let mut rng = Rng::new(8);
    let x = images(4, &mut rng);
    let data = LikelihoodData::Binarized { seed: 42 };
    let all = data.prepare(&x, 10).unwrap().to_vec_f64();
    assert!(all.iter().all(|&v| v == 0.0 || v == 1.0));
    // Image 12 of the set, prepared alone, is the same as within the batch.
    let alone = data
        .prepare(&x.narrow(0, 2, 1).unwrap(), 12)
        .unwrap()
        .to_vec_f64();
    assert_eq!(&all[2 * 784..3 * 784], &alone[..]);
    // The share of ones follows the intensities (mean 0.5 here).
    let ones = all.iter().sum::<f64>() / all.len() as f64;
    assert!((ones - 0.5).abs() < 0.03, "share of ones {ones}");
    assert_eq!(
        LikelihoodData::Intensities
            .prepare(&x, 0)
            .unwrap()
            .to_vec_f64(),
        x.to_vec_f64()
    );
}

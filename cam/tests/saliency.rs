//! Saliency and SmoothGrad against what they must equal: a finite-difference input gradient,
//! and each other when the noise is 0.

mod common;
use common::{classifier, image};

use ferrograd_cam::maps::Score;
use ferrograd_cam::saliency::{saliency, smooth_grad};
use ferrograd_engine::{no_grad, Rng, Tensor};
use ferrograd_models::classifier::ClassifierActivation;
use ferrograd_nn::nn::Ctx;

#[test]
fn saliency_is_the_magnitude_of_a_finite_difference_input_gradient() {
    // Softplus keeps the network smooth, so central differences converge.
    let model = classifier(ClassifierActivation::Softplus, 1);
    let x = image(2);
    let ours = saliency(&model, &x, 4, Score::Softmax).unwrap();
    let y = |pixels: &[f64]| -> f64 {
        let t = Tensor::from_vec(pixels.to_vec(), &[1, 1, 28, 28]).unwrap();
        no_grad(|| Score::Softmax.of_logits(&model.logits(&t, &mut Ctx::eval())?, 4))
            .unwrap()
            .to_vec_f64()[0]
    };
    let pixels = x.to_vec_f64();
    let eps = 1e-5;
    let scale = ours.map.iter().fold(0.0f64, |m, v| m.max(*v));
    assert!(scale > 0.0, "an all-zero saliency map checks nothing");
    // Every 7th pixel keeps the test quick while covering the whole image.
    for p in (0..784).step_by(7) {
        let (mut up, mut down) = (pixels.clone(), pixels.clone());
        up[p] += eps;
        down[p] -= eps;
        let fd = ((y(&up) - y(&down)) / (2.0 * eps)).abs();
        assert!(
            (ours.map[p] - fd).abs() <= 1e-6 * scale,
            "pixel {p}: {} against finite differences {fd}",
            ours.map[p]
        );
    }
}

#[test]
fn smooth_grad_with_no_noise_is_saliency_and_with_noise_differs() {
    let model = classifier(ClassifierActivation::Softplus, 3);
    let x = image(4);
    let plain = saliency(&model, &x, 2, Score::ExpLogit).unwrap();
    let quiet = smooth_grad(&model, &x, 2, Score::ExpLogit, 5, 0.0, &mut Rng::new(5)).unwrap();
    for (a, b) in quiet.map.iter().zip(&plain.map) {
        assert!(
            (a - b).abs() <= 1e-12 * b.abs().max(1e-12),
            "{a} against {b}"
        );
    }
    let noisy = smooth_grad(&model, &x, 2, Score::ExpLogit, 5, 0.2, &mut Rng::new(5)).unwrap();
    let moved = noisy
        .map
        .iter()
        .zip(&plain.map)
        .filter(|(a, b)| (*a - *b).abs() > 1e-9)
        .count();
    assert!(
        moved > 700,
        "noise σ = 0.2 moved only {moved} of 784 pixels"
    );
}

#[test]
fn smooth_grad_refuses_no_samples_and_negative_noise() {
    let model = classifier(ClassifierActivation::Softplus, 6);
    let x = image(7);
    assert!(smooth_grad(&model, &x, 0, Score::Logit, 0, 0.1, &mut Rng::new(1)).is_err());
    assert!(smooth_grad(&model, &x, 0, Score::Logit, 4, -0.1, &mut Rng::new(1)).is_err());
}

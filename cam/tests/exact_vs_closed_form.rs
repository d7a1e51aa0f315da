//! What makes "exact" mean something: where the network after the layer is piecewise linear
//! and Y = exp(logit), the exact Grad-CAM++ must equal the closed form; with a smooth
//! activation or the softmax score it must not, and its derivatives must match finite
//! differences. All in f64 on small random classifiers, at every layer.

use ferrograd_cam::{Method, Score, Target};
use ferrograd_engine::{grad, no_grad, DType, Rng, Tensor};
use ferrograd_models::classifier::{Classifier, ClassifierActivation};
use ferrograd_nn::nn::Ctx;

/// Narrow blocks keep the exact method's one-copy-per-element batches small.
const CHANNELS: [usize; 3] = [3, 4, 5];

fn classifier(activation: ClassifierActivation, seed: u64) -> Classifier {
    let mut rng = Rng::new(seed);
    let model = Classifier::with_channels(CHANNELS, activation, 0.1, 0.0, 1e-3, &mut rng).unwrap();
    model.cast(DType::F64).unwrap();
    model
}

/// A smooth random "image" (values in [0, 1]) in f64.
fn image(seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::rand_uniform(&[1, 1, 28, 28], 0.0, 1.0, DType::F64, &mut rng).unwrap()
}

/// The classes ranked by the model's logits for `x`, most likely first: explaining the
/// predicted class is what maps are for, and its map is rarely empty.
fn ranked_classes(model: &Classifier, x: &Tensor) -> Vec<usize> {
    let logits = no_grad(|| model.logits(x, &mut Ctx::eval()))
        .unwrap()
        .to_vec_f64();
    let mut classes: Vec<usize> = (0..logits.len()).collect();
    classes.sort_by(|&i, &j| logits[j].total_cmp(&logits[i]));
    classes
}

/// The largest difference between two maps, each scaled by its own maximum (the rendering
/// normalizes maps, so a positive factor between them does not matter).
fn normalized_difference(a: &[f64], b: &[f64]) -> f64 {
    let scale = |m: &[f64]| {
        // An empty map stays empty (rather than 0/0).
        let top = m.iter().cloned().fold(0.0, f64::max);
        let top = if top > 0.0 { top } else { 1.0 };
        m.iter().map(|v| v / top).collect::<Vec<_>>()
    };
    let (a, b) = (scale(a), scale(b));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn exact_equals_closed_form_for_a_piecewise_linear_network_and_exp_logit() {
    let model = classifier(ClassifierActivation::Relu, 1);
    let x = image(2);
    let ranked = ranked_classes(&model, &x);
    for layer in 0..3 {
        for class in [ranked[0], ranked[1]] {
            let target = Target {
                model: &model,
                layer,
                class,
                score: Score::ExpLogit,
            };
            let closed = target.explain(&x, Method::GradCamPlusPlus).unwrap();
            let exact = target.explain(&x, Method::GradCamPlusPlusExact).unwrap();
            assert!(
                closed.map.iter().any(|&v| v > 0.0),
                "layer {layer} class {class}: an all-zero map would prove nothing"
            );
            // The exact weights carry the factor Y = exp(S) that the closed form cancels.
            let y = no_grad(|| target.score_of(&target.activation(&x).unwrap(), Score::ExpLogit))
                .unwrap()
                .item()
                .unwrap();
            for (k, (e, c)) in exact.weights.iter().zip(&closed.weights).enumerate() {
                assert!(
                    (e - y * c).abs() <= 1e-10 * (1.0 + (y * c).abs()),
                    "layer {layer} class {class} channel {k}: exact {e} vs Y·closed {}",
                    y * c
                );
            }
            let d = normalized_difference(&exact.map, &closed.map);
            assert!(d < 1e-12, "layer {layer} class {class}: maps differ by {d}");
        }
    }
}

/// Finite-difference estimates of one element's second and third derivatives, with the size
/// of their rounding noise.
struct Estimate {
    second: f64,
    third: f64,
    /// Rounding noise of each: the gradients' rounding through the network, taken as
    /// 100·ε·|g|, divided by h and h².
    second_noise: f64,
    third_noise: f64,
}

/// Central differences, along one element, of that element's first derivative (the engine's
/// first-order gradient, itself checked by the gradient-check suite), as PyTorch's
/// gradgradcheck differences analytical gradients:
///   ∂²Y ≈ (g(a+h) − g(a−h))/2h,   ∂³Y ≈ (g(a+h) − 2g(a) + g(a−h))/h².
fn finite_differences(target: &Target, a: &Tensor, element: usize, h: f64) -> Estimate {
    let values = a.to_vec_f64();
    let slope_at = |offset: f64| {
        let mut v = values.clone();
        v[element] += offset;
        let shifted = Tensor::from_f64s(&v, a.shape(), DType::F64)
            .unwrap()
            .requires_grad_();
        let y = target.score_of(&shifted, target.score).unwrap();
        grad(&[&y.sum_all().unwrap()], &[&shifted], None, false).unwrap()[0].to_vec_f64()[element]
    };
    let (g0, g1, g_1) = (slope_at(0.0), slope_at(h), slope_at(-h));
    let rounding = 100.0 * f64::EPSILON * g0.abs().max(g1.abs()).max(g_1.abs());
    Estimate {
        second: (g1 - g_1) / (2.0 * h),
        third: (g1 - 2.0 * g0 + g_1) / (h * h),
        second_noise: rounding / h,
        third_noise: rounding / (h * h),
    }
}

#[test]
fn exact_differs_from_closed_form_with_smooth_activations_or_softmax_and_matches_finite_differences(
) {
    let cases = [
        (ClassifierActivation::Softplus, Score::ExpLogit),
        (ClassifierActivation::Elu, Score::ExpLogit),
        (ClassifierActivation::Relu, Score::Softmax),
    ];
    for (seed, (activation, score)) in cases.into_iter().enumerate() {
        let model = classifier(activation, 10 + seed as u64);
        let x = image(20 + seed as u64);
        // The softmax saturates for the top class of a confident model (p ≈ 1 leaves
        // derivatives below the finite differences' noise); the runner-up is not saturated.
        let class = ranked_classes(&model, &x)[if score == Score::Softmax { 1 } else { 0 }];
        for layer in 0..3 {
            let target = Target {
                model: &model,
                layer,
                class,
                score,
            };
            let what = format!("{activation:?}, {score:?}, layer {layer}");
            let closed = target.explain(&x, Method::GradCamPlusPlus).unwrap();
            let exact = target.explain(&x, Method::GradCamPlusPlusExact).unwrap();
            let d = normalized_difference(&exact.map, &closed.map);
            // After conv3 come only pooling and the linear head: with Y = exp(z) nothing
            // smooth follows the layer, and the shortcut is exact there too.
            let smooth_after = score == Score::Softmax || layer < 2;
            if smooth_after {
                assert!(
                    d > 1e-3,
                    "{what}: exact and closed form agree ({d}); nothing tested"
                );
            } else {
                assert!(
                    d < 1e-12,
                    "{what}: linear after the layer, yet maps differ by {d}"
                );
            }

            let a = target.activation(&x).unwrap();
            let diagonal = target.exact_diagonal(&a, &mut |_, _| {}).unwrap();
            let n = a.numel();
            // Elements spread over the map, and the one with the largest second derivative
            // (where a wrong third derivative would show most).
            let largest = (0..n)
                .max_by(|&i, &j| {
                    diagonal.second[i]
                        .abs()
                        .total_cmp(&diagonal.second[j].abs())
                })
                .unwrap();
            // ELU's second derivative jumps at 0 and max-pooling switches its winner: a finite
            // difference whose stencil straddles such a point measures the jump, not the
            // derivative. Ties sit exactly at the point where ReLU zeros meet in a pooling
            // window: there Y has no second derivative at all. Estimates at steps h and 2h
            // agree only where Y is smooth over the stencil, so elements where they disagree
            // are skipped, and at least half must remain.
            // Elements that lost their pooling window have no derivative of any order: draw
            // from those that reach the score.
            let live: Vec<usize> = (0..n).filter(|&e| diagonal.first[e] != 0.0).collect();
            assert!(
                live.len() >= 16,
                "{what}: only {} elements reach the score",
                live.len()
            );
            let elements: Vec<usize> = (0..16)
                .map(|i| live[i * (live.len() - 1) / 15])
                .chain([largest])
                .collect();
            let (mut checked, mut checked_nonzero) = (0, 0);
            for &element in &elements {
                // Large enough that rounding stays small next to ∂³Y; Richardson extrapolation
                // below removes the truncation error that a larger step brings.
                let h = 1e-3;
                let fine = finite_differences(&target, &a, element, h);
                let coarse = finite_differences(&target, &a, element, 2.0 * h);
                let smooth = (fine.second - coarse.second).abs()
                    <= 1e-3 * fine.second.abs() + 10.0 * coarse.second_noise
                    && (fine.third - coarse.third).abs()
                        <= 0.1 * fine.third.abs() + 10.0 * coarse.third_noise;
                if !smooth {
                    continue;
                }
                checked += 1;
                // Richardson extrapolation cancels the h² truncation error of both estimates.
                let second = (4.0 * fine.second - coarse.second) / 3.0;
                let third = (4.0 * fine.third - coarse.third) / 3.0;
                let (s, t) = (diagonal.second[element], diagonal.third[element]);
                assert!(
                    (s - second).abs() <= 1e-7 * s.abs() + 2.0 * coarse.second_noise,
                    "{what}, element {element}: ∂²Y exact {s} vs finite differences {second}"
                );
                assert!(
                    (t - third).abs() <= 1e-4 * t.abs() + 2.0 * coarse.third_noise,
                    "{what}, element {element}: ∂³Y exact {t} vs finite differences {third}"
                );
                if s.abs() > 10.0 * coarse.second_noise && t.abs() > 10.0 * coarse.third_noise {
                    checked_nonzero += 1;
                }
            }
            assert!(
                2 * checked >= elements.len(),
                "{what}: only {checked} of {} elements had a smooth neighbourhood",
                elements.len()
            );
            // (Where nothing smooth follows, ∂³Y = Y·g³ is tiny and the agreement with the
            // closed form above to 1e-12 is the sharper check.)
            assert!(
                checked_nonzero >= 3 || !smooth_after,
                "{what}: fewer than 3 elements had derivatives above the rounding noise"
            );
        }
    }
}

#[test]
fn grad_cam_is_relu_of_cam_over_positions_at_the_last_layer_with_the_logit() {
    // With global average pooling then a linear head, ∂z_c/∂A^k_ij = w^c_k/(HW) everywhere.
    let model = classifier(ClassifierActivation::Relu, 5);
    let x = image(6);
    let target = Target {
        model: &model,
        layer: 2,
        class: ranked_classes(&model, &x)[0],
        score: Score::Logit,
    };
    let cam = target.explain(&x, Method::Cam).unwrap();
    let grad_cam = target.explain(&x, Method::GradCam).unwrap();
    let positions = (cam.height * cam.width) as f64;
    assert!(
        cam.map.iter().any(|&v| v > 0.0),
        "an empty Grad-CAM would prove little"
    );
    for (c, g) in cam.map.iter().zip(&grad_cam.map) {
        assert!((c.max(0.0) / positions - g).abs() < 1e-12, "{c} vs {g}");
    }
}

#[test]
fn cam_elsewhere_than_the_last_layer_and_bad_targets_are_errors_that_say_why() {
    let model = classifier(ClassifierActivation::Relu, 5);
    let x = image(6);
    let target = |layer, class| Target {
        model: &model,
        layer,
        class,
        score: Score::Logit,
    };
    let e = target(1, 0)
        .explain(&x, Method::Cam)
        .unwrap_err()
        .to_string();
    assert!(e.contains("last layer") && e.contains("conv2"), "{e}");
    let e = target(3, 0)
        .explain(&x, Method::GradCam)
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 3 does not exist"), "{e}");
    let e = target(0, 10)
        .explain(&x, Method::GradCam)
        .unwrap_err()
        .to_string();
    assert!(e.contains("class 10 does not exist"), "{e}");
    let two = Tensor::zeros(&[2, 1, 28, 28], DType::F64).unwrap();
    let e = target(0, 0)
        .explain(&two, Method::GradCam)
        .unwrap_err()
        .to_string();
    assert!(e.contains("one image"), "{e}");
}

#[test]
fn skipping_elements_that_lose_their_pooling_window_changes_nothing() {
    let model = classifier(ClassifierActivation::Softplus, 8);
    let x = image(9);
    for layer in 0..2 {
        let target = Target {
            model: &model,
            layer,
            class: 2,
            score: Score::Softmax,
        };
        let a = target.activation(&x).unwrap();
        let skipping = target.exact_diagonal(&a, &mut |_, _| {}).unwrap();
        let score = |batch: &Tensor| target.score_of(batch, Score::Softmax);
        let every = ferrograd_cam::diagonal_derivatives(&a, &score, 512, &mut |_, _| {}).unwrap();
        assert_eq!(skipping, every, "layer {layer}");
        let zeros = every.first.iter().filter(|&&v| v == 0.0).count();
        assert!(
            4 * zeros >= 3 * a.numel(),
            "layer {layer}: 3 in 4 elements lose their window"
        );
    }
}

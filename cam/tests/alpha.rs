//! The exact Grad-CAM++'s α: in the paper's setting (ReLU after the layer, Y = exp(logit)) it
//! stays in [0, ½], so the clamped remedy changes nothing; with a smooth network it leaves
//! that range, and the clamped variant is then a different map, never a silent substitute.

mod common;
use common::{classifier, image};

use ferrograd_cam::maps::{plus_plus_alpha, Method, Score, Target};
use ferrograd_engine::Tensor;
use ferrograd_models::classifier::ClassifierActivation;

/// α of every element that counts: those with ∂Y/∂a > 0, the only ones w_k = Σ α·ReLU(∂Y/∂a)
/// sees. (Where ∂Y/∂a < 0 the paper's α = 1/(2 + Σ A·g) leaves [0, ½] too, harmlessly.)
fn alphas(target: &Target, x: &Tensor) -> Vec<f64> {
    let a = target.activation(x).unwrap();
    let positions = a.dim(2).unwrap() * a.dim(3).unwrap();
    let d = target.taylor_diagonal(&a, &mut |_, _| {}).unwrap();
    plus_plus_alpha(&a.to_vec_f64(), &d.second, &d.third, positions)
        .into_iter()
        .zip(&d.first)
        .filter(|(_, g)| **g > 0.0)
        .map(|(a, _)| a)
        .collect()
}

#[test]
fn in_the_papers_setting_alpha_stays_in_its_range_and_clamping_changes_nothing() {
    let model = classifier(ClassifierActivation::Relu, 1);
    for layer in 0..3 {
        let target = Target {
            model: &model,
            layer,
            class: 4,
            score: Score::ExpLogit,
        };
        let x = image(2 + layer as u64);
        let alpha = alphas(&target, &x);
        assert!(!alpha.is_empty());
        assert!(
            alpha.iter().all(|a| (0.0..=0.5).contains(a)),
            "layer {layer}"
        );
        let plain = target.explain(&x, Method::GradCamPlusPlusExact).unwrap();
        let clamped = target
            .explain(&x, Method::GradCamPlusPlusExactClamped)
            .unwrap();
        assert_eq!(plain.map, clamped.map, "layer {layer}");
    }
}

#[test]
fn with_a_smooth_network_alpha_leaves_the_range_and_the_clamped_map_differs() {
    let model = classifier(ClassifierActivation::Softplus, 3);
    let mut outside = 0;
    let mut differed = 0;
    for layer in 0..2 {
        for seed in 0..3 {
            let target = Target {
                model: &model,
                layer,
                class: 1,
                score: Score::Softmax,
            };
            let x = image(10 + seed);
            let alpha = alphas(&target, &x);
            let out = alpha.iter().filter(|a| !(0.0..=0.5).contains(*a)).count();
            outside += out;
            let plain = target.explain(&x, Method::GradCamPlusPlusExact).unwrap();
            let clamped = target
                .explain(&x, Method::GradCamPlusPlusExactClamped)
                .unwrap();
            if out > 0 && plain.weights != clamped.weights {
                differed += 1;
            }
        }
    }
    assert!(
        outside > 0,
        "softplus with the softmax score: some α outside [0, ½]"
    );
    assert!(
        differed > 0,
        "where α leaves the range, clamping changes the weights"
    );
}

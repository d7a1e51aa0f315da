//! The cascading-randomisation sanity check separates a method that explains the model from
//! one that only shows the input.

use ferrograd_cam::maps::{Method, Score};
use ferrograd_cam::run::heat_map;
use ferrograd_cam::sanity::{cascading_randomization, randomized, spearman, MapFn, STAGES};
use ferrograd_engine::{DType, Rng, Tensor};
use ferrograd_models::classifier::{Classifier, ClassifierActivation};
use ferrograd_nn::nn;

fn classifier(seed: u64) -> ferrograd_engine::Result<Classifier> {
    let mut rng = Rng::new(seed);
    let model = Classifier::with_channels(
        [3, 4, 5],
        ClassifierActivation::Relu,
        0.1,
        0.0,
        1e-3,
        &mut rng,
    )?;
    model.cast(DType::F64)?;
    Ok(model)
}

fn images() -> Vec<(Tensor, usize)> {
    (0..6)
        .map(|i| {
            let x = Tensor::rand_uniform(&[1, 1, 28, 28], 0.0, 1.0, DType::F64, &mut Rng::new(i))
                .unwrap();
            (x, (i as usize) % 10)
        })
        .collect()
}

#[test]
fn spearman_ranks_with_ties() {
    assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]) - 1.0).abs() < 1e-15);
    assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-15);
    // Monotone but not linear: still 1.
    assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 8.0, 27.0, 64.0]) - 1.0).abs() < 1e-15);
    // Ties share their average rank: ranks (1.5, 1.5, 3) against (1, 2, 3).
    let r = spearman(&[5.0, 5.0, 7.0], &[1.0, 2.0, 3.0]);
    assert!((r - 0.866_025_403_784_438_6).abs() < 1e-12, "{r}");
}

#[test]
fn the_cascade_randomises_from_the_head_down() {
    let trained = classifier(1).unwrap();
    let same = |a: &dyn nn::Module, b: &dyn nn::Module| {
        nn::state_of(a, "")
            .iter()
            .zip(nn::state_of(b, ""))
            .all(|((_, x), (_, y))| x.to_vec_f64() == y.to_vec_f64())
    };
    for stage in 0..STAGES.len() {
        let r = randomized(&trained, classifier(100 + stage as u64).unwrap(), stage).unwrap();
        assert!(
            !same(&trained.head, &r.head),
            "stage {stage}: the head is random"
        );
        for (i, (t, b)) in trained.blocks.iter().zip(&r.blocks).enumerate() {
            let random = stage >= 3 - i;
            assert_eq!(!same(t, b), random, "stage {stage}, block {i}");
        }
    }
}

#[test]
fn grad_cam_passes_and_a_map_that_ignores_the_weights_fails() {
    let trained = classifier(1).unwrap();
    let fresh = |stage: usize| classifier(100 + stage as u64);
    let images = images();
    let grad_cam = |m: &Classifier, x: &Tensor, c: usize| {
        heat_map(m, x, c, 1, Method::GradCam, Score::ExpLogit, &mut |_, _| {})
    };
    let row = cascading_randomization(
        &trained, &fresh, None, &images, &grad_cam, "gradcam", "conv2",
    )
    .unwrap();
    assert!(row.passes(), "Grad-CAM: {:?}", row.correlations);
    // A test double that draws the image itself, whatever the model: an edge detector in
    // disguise, the failure Adebayo et al. found in guided backpropagation.
    let the_input = |_: &Classifier, x: &Tensor, _: usize| Ok(x.to_vec_f64());
    let row =
        cascading_randomization(&trained, &fresh, None, &images, &the_input, "input", "-").unwrap();
    assert!(!row.passes(), "the input as a map: {:?}", row.correlations);
    assert!(row
        .correlations
        .iter()
        .all(|&(m, _)| (m - 1.0).abs() < 1e-12));
}

/// The data-randomisation test: a model of other weights (standing in for one trained on
/// permuted labels) moves Grad-CAM's maps, the same model leaves them identical, and a map that
/// ignores the model correlates 1 whatever the model.
#[test]
fn the_random_labels_test_tells_a_map_of_the_model_from_one_of_the_input() {
    let trained = classifier(1).unwrap();
    let other = classifier(7).unwrap();
    let images = images();
    let grad_cam = |m: &Classifier, x: &Tensor, c: usize| {
        heat_map(m, x, c, 1, Method::GradCam, Score::ExpLogit, &mut |_, _| {})
    };
    let fresh = |stage: usize| classifier(100 + stage as u64);
    // The data-randomisation figure of a row whose random-labels model is `model`.
    let random_labels = |model: &Classifier, map: &MapFn<'_>| {
        cascading_randomization(&trained, &fresh, Some(model), &images, map, "m", "l")
            .unwrap()
            .random_labels
            .expect("asked for")
    };
    let (same, se) = random_labels(&trained, &grad_cam);
    assert!(
        (same - 1.0).abs() < 1e-12 && se.abs() < 1e-12,
        "{same} ± {se}"
    );
    let (moved, _) = random_labels(&other, &grad_cam);
    assert!(moved < 0.5, "Grad-CAM on other weights: {moved}");
    let the_input = |_: &Classifier, x: &Tensor, _: usize| Ok(x.to_vec_f64());
    let (kept, _) = random_labels(&other, &the_input);
    assert!((kept - 1.0).abs() < 1e-12, "{kept}");
}

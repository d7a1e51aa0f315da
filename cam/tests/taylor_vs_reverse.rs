//! The Taylor-mode diagonals (what the exact Grad-CAM++ uses) against the independent judge:
//! the engine's third-order reverse mode on perturbed copies ([`diagonal_derivatives`]), for
//! every activation, layer and score, on small random classifiers whose batch norms carry
//! random statistics (so that their scale is not 1).

use ferrograd_cam::{diagonal_derivatives, Diagonal, Score, Target};
use ferrograd_engine::{DType, Rng, Tensor};
use ferrograd_models::classifier::{Classifier, ClassifierActivation};
use ferrograd_nn::nn::Module;

const CHANNELS: [usize; 3] = [3, 4, 5];

fn classifier(activation: ClassifierActivation, dtype: DType, seed: u64) -> Classifier {
    let mut rng = Rng::new(seed);
    let model = Classifier::with_channels(CHANNELS, activation, 0.1, 0.0, 1e-3, &mut rng).unwrap();
    for block in &model.blocks {
        block.for_each_batch_norm(&mut |bn| {
            let c = bn.weight.numel();
            let draw = |lo: f64, hi: f64, rng: &mut Rng| {
                Tensor::rand_uniform(&[c], lo, hi, DType::F32, rng).unwrap()
            };
            bn.running_mean.assign(&draw(-0.5, 0.5, &mut rng)).unwrap();
            bn.running_var.assign(&draw(0.3, 2.0, &mut rng)).unwrap();
            bn.weight.assign(&draw(0.5, 1.5, &mut rng)).unwrap();
            bn.bias.assign(&draw(-0.3, 0.3, &mut rng)).unwrap();
        });
    }
    model.cast(dtype).unwrap();
    model
}

fn image(dtype: DType, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::rand_uniform(&[1, 1, 28, 28], 0.0, 1.0, dtype, &mut rng).unwrap()
}

/// The largest difference of each order, relative to that order's largest magnitude.
fn deviation(got: &Diagonal, want: &Diagonal) -> [f64; 3] {
    let orders = [
        (&got.first, &want.first),
        (&got.second, &want.second),
        (&got.third, &want.third),
    ];
    orders.map(|(g, w)| {
        let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = g
            .iter()
            .zip(w)
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        if scale > 0.0 {
            worst / scale
        } else {
            worst
        }
    })
}

/// Taylor mode against the judge for one model; returns the largest deviation seen.
fn compare(model: &Classifier, x: &Tensor, what: &str, tolerance: f64) -> f64 {
    let mut largest: f64 = 0.0;
    for layer in 0..3 {
        for score in Score::ALL {
            let target = Target {
                model,
                layer,
                class: 3,
                score,
            };
            let a = target.activation(x).unwrap();
            // Where Y is piecewise linear in A (the logit after ReLUs, or after conv3 whatever
            // the activation), the judge's second sweep would find nothing left to
            // differentiate and refuse; adding 0·Σa³ keeps every order in the graph and
            // changes no derivative.
            let judge = |batch: &Tensor| {
                let b = batch.dim(0)?;
                let nothing = batch
                    .mul(batch)?
                    .mul(batch)?
                    .reshape(&[b, batch.numel() / b])?
                    .sum(&[1], false)?
                    .mul_scalar(0.0)?;
                target.score_of(batch, score)?.add(&nothing)
            };
            let want = diagonal_derivatives(&a, &judge, 1024, &mut |_, _| {}).unwrap();
            let mut reported = 0;
            let got = target
                .taylor_diagonal(&a, &mut |done, total| {
                    assert!(done <= total);
                    reported = done;
                })
                .unwrap();
            assert!(reported > 0, "progress is reported");
            let d = deviation(&got, &want);
            let case = format!("{what}, layer {layer}, {score:?}");
            assert!(
                d.iter().all(|&v| v <= tolerance),
                "{case}: relative deviations {d:?} (tolerance {tolerance})"
            );
            // Zeros where the judge has them (elements that lose their pooling window).
            for (e, w) in want.first.iter().enumerate() {
                if *w == 0.0 {
                    assert_eq!(got.first[e], 0.0, "{case}: element {e}");
                }
            }
            // Something to compare: every order is non-zero somewhere, except where the
            // network after the layer is piecewise linear and the score is the logit.
            let linear = layer == 2 || model_is_relu(what);
            let orders = [&want.first, &want.second, &want.third];
            for (m, values) in orders.iter().enumerate() {
                let nonzero = values.iter().filter(|v| v.abs() > 1e-12).count();
                if m == 0 || !(linear && score == Score::Logit) {
                    assert!(nonzero > 0, "{case}: order {} is all zero", m + 1);
                }
            }
            largest = largest.max(d.into_iter().fold(0.0, f64::max));
        }
    }
    largest
}

fn model_is_relu(what: &str) -> bool {
    what.starts_with("Relu")
}

#[test]
fn taylor_mode_matches_reverse_mode_in_f64_for_every_activation_layer_and_score() {
    let activations = [
        ClassifierActivation::Relu,
        ClassifierActivation::Elu,
        ClassifierActivation::Softplus,
    ];
    for (i, activation) in activations.into_iter().enumerate() {
        let model = classifier(activation, DType::F64, 40 + i as u64);
        let x = image(DType::F64, 50 + i as u64);
        let largest = compare(&model, &x, &format!("{activation:?} f64"), 1e-10);
        println!("{activation:?}: largest relative deviation {largest:.2e}");
    }
}

#[test]
fn taylor_mode_matches_reverse_mode_in_f32() {
    let model = classifier(ClassifierActivation::Softplus, DType::F32, 60);
    let x = image(DType::F32, 61);
    let largest = compare(&model, &x, "Softplus f32", 1e-4);
    println!("f32: largest relative deviation {largest:.2e}");
}

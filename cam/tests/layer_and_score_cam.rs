//! Layer-CAM and Score-CAM against direct recomputations from their definitions, on a small
//! classifier in f64: the library's batched, shared code paths must give the textbook maps.

mod common;
use common::{classifier, image};

use ferrograd_cam::maps::{explain_batch, Method, Score, Target};
use ferrograd_cam::render::upsample_bilinear;
use ferrograd_engine::{grad, no_grad, DType, Tensor};
use ferrograd_models::classifier::ClassifierActivation;
use ferrograd_nn::nn::Ctx;

fn close(ours: &[f64], want: &[f64], what: &str) {
    assert_eq!(ours.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-12 * scale,
            "{what}[{i}]: {a} against {b}"
        );
    }
}

#[test]
fn layer_cam_is_the_elementwise_positive_gradient_times_the_activation() {
    let model = classifier(ClassifierActivation::Relu, 1);
    let x = image(2);
    for layer in 0..3 {
        for score in Score::ALL {
            let target = Target {
                model: &model,
                layer,
                class: 3,
                score,
            };
            let ours = target.explain(&x, Method::LayerCam).unwrap();
            // By definition, from the image: A = the layer's map, g = ∂Y/∂A through the rest.
            let maps = no_grad(|| model.activations(&x, &mut Ctx::eval())).unwrap();
            let a = maps[layer].detach().requires_grad_();
            let y = score
                .of_logits(&model.logits_from(layer, &a, &mut Ctx::eval()).unwrap(), 3)
                .unwrap()
                .sum_all()
                .unwrap();
            let g = grad(&[&y], &[&a], None, false).unwrap()[0].to_vec_f64();
            let av = a.to_vec_f64();
            let (k, positions) = (a.dim(1).unwrap(), ours.height * ours.width);
            let want: Vec<f64> = (0..positions)
                .map(|p| {
                    (0..k)
                        .map(|c| g[c * positions + p].max(0.0) * av[c * positions + p])
                        .sum::<f64>()
                        .max(0.0)
                })
                .collect();
            close(
                &ours.map,
                &want,
                &format!("layer {layer}, {}", score.name()),
            );
            // The batched path gives the same map.
            let batched =
                explain_batch(&model, &x, &[3], score, &[(Method::LayerCam, layer)]).unwrap();
            close(&batched[0][0].map, &want, "explain_batch");
        }
    }
}

#[test]
fn score_cam_weights_are_the_score_gains_of_the_masked_inputs() {
    let model = classifier(ClassifierActivation::Relu, 3);
    let x = image(4);
    let pixels = x.to_vec_f64();
    let score_of = |input: &Tensor| -> f64 {
        no_grad(|| Score::Softmax.of_logits(&model.logits(input, &mut Ctx::eval())?, 5))
            .unwrap()
            .to_vec_f64()[0]
    };
    let baseline = score_of(&Tensor::zeros(&[1, 1, 28, 28], DType::F64).unwrap());
    for layer in 0..3 {
        let target = Target {
            model: &model,
            layer,
            class: 5,
            score: Score::Softmax,
        };
        let ours = target.explain(&x, Method::ScoreCam).unwrap();
        let a = target.activation(&x).unwrap();
        let (k, h, w) = (a.dim(1).unwrap(), a.dim(2).unwrap(), a.dim(3).unwrap());
        let av = a.to_vec_f64();
        // One masked image at a time, each mask normalised by hand.
        let weights: Vec<f64> = (0..k)
            .map(|c| {
                let up = upsample_bilinear(&av[c * h * w..(c + 1) * h * w], h, w, 28, 28);
                let (lo, hi) = up
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(l, u), &v| (l.min(v), u.max(v)));
                let masked: Vec<f64> = pixels
                    .iter()
                    .zip(&up)
                    .map(|(p, m)| {
                        if hi > lo {
                            p * (m - lo) / (hi - lo)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                score_of(&Tensor::from_vec(masked, &[1, 1, 28, 28]).unwrap()) - baseline
            })
            .collect();
        close(&ours.weights, &weights, &format!("layer {layer} weights"));
        let want: Vec<f64> = (0..h * w)
            .map(|p| {
                (0..k)
                    .map(|c| weights[c] * av[c * h * w + p])
                    .sum::<f64>()
                    .max(0.0)
            })
            .collect();
        close(&ours.map, &want, &format!("layer {layer} map"));
        let batched = explain_batch(
            &model,
            &x,
            &[5],
            Score::Softmax,
            &[(Method::ScoreCam, layer)],
        )
        .unwrap();
        close(&batched[0][0].map, &want, "explain_batch");
    }
}

#[test]
fn the_pytorch_grad_cam_variant_is_that_librarys_formula() {
    // grad_cam_plusplus.py: aij = g² / (2g² + Σ A·g³ + 1e-6), aij = 0 where g = 0,
    // weights = Σ ReLU(g)·aij, cam = ReLU(Σ w A); written out here from the logit's gradient.
    let model = classifier(ClassifierActivation::Relu, 5);
    let x = image(6);
    for layer in 0..3 {
        let target = Target {
            model: &model,
            layer,
            class: 2,
            score: Score::ExpLogit,
        };
        let ours = target
            .explain(&x, Method::GradCamPlusPlusPytorchGradCam)
            .unwrap();
        let a = target.activation(&x).unwrap().requires_grad_();
        let logit = Score::Logit
            .of_logits(&model.logits_from(layer, &a, &mut Ctx::eval()).unwrap(), 2)
            .unwrap()
            .sum_all()
            .unwrap();
        let g = grad(&[&logit], &[&a], None, false).unwrap()[0].to_vec_f64();
        let av = a.to_vec_f64();
        let (k, positions) = (a.dim(1).unwrap(), ours.height * ours.width);
        let weights: Vec<f64> = (0..k)
            .map(|c| {
                let sum_a: f64 = av[c * positions..(c + 1) * positions].iter().sum();
                (c * positions..(c + 1) * positions)
                    .map(|e| {
                        let aij = if g[e] != 0.0 {
                            g[e].powi(2) / (2.0 * g[e].powi(2) + sum_a * g[e].powi(3) + 1e-6)
                        } else {
                            0.0
                        };
                        g[e].max(0.0) * aij
                    })
                    .sum()
            })
            .collect();
        close(&ours.weights, &weights, &format!("layer {layer} weights"));
        let batched = explain_batch(
            &model,
            &x,
            &[2],
            Score::ExpLogit,
            &[(Method::GradCamPlusPlusPytorchGradCam, layer)],
        )
        .unwrap();
        close(&batched[0][0].weights, &weights, "explain_batch");
    }
}

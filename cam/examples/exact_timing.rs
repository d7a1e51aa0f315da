//! Wall time of the exact Grad-CAM++ for one image at each layer, on the course's classifier
//! at its real width (weights from a fixed seed, as the `cam` reference benchmark builds it:
//! the cost does not depend on training).
//!
//! ```text
//! cargo run --release -p ferrograd-cam --example exact_timing -- [ACTIVATIONS] [LAYERS] [SCORE]
//! ```
//!
//! e.g. `-- relu,softplus 0,1,2 exp-logit` (the defaults: every activation, every layer,
//! exp-logit). Prints one line per (activation, layer): seconds for `explain`.

use ferrograd_cam::{Method, Score, Target};
use ferrograd_engine::{DType, Result, Rng, Tensor};
use ferrograd_models::classifier::{Classifier, ClassifierActivation, LAYER_NAMES};
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let activations: Vec<ClassifierActivation> = args
        .first()
        .map_or("relu,elu,softplus", String::as_str)
        .split(',')
        .map(|s| ClassifierActivation::parse(s).expect("relu, elu or softplus"))
        .collect();
    let layers: Vec<usize> = args
        .get(1)
        .map_or("0,1,2", String::as_str)
        .split(',')
        .map(|s| s.parse().expect("a layer index 0..2"))
        .collect();
    let score = Score::parse(args.get(2).map_or("exp-logit", String::as_str))
        .expect("logit, exp-logit or softmax");
    for activation in activations {
        // The benchmark's construction: the model, then the image, from one generator.
        let mut rng = Rng::new(5);
        let model = Classifier::new(activation, 0.1, 1e-5, 1e-3, &mut rng)?;
        let x = Tensor::rand_uniform(&[1, 1, 28, 28], 0.0, 1.0, DType::F32, &mut rng)?;
        for &layer in &layers {
            let target = Target {
                model: &model,
                layer,
                class: 7,
                score,
            };
            let start = Instant::now();
            let explanation = target.explain(&x, Method::GradCamPlusPlusExact)?;
            let secs = start.elapsed().as_secs_f64();
            let top = explanation.map.iter().cloned().fold(0.0, f64::max);
            println!(
                "{} {} {}: {secs:.3} s (map max {top:.4e})",
                activation.name(),
                LAYER_NAMES[layer],
                score.name()
            );
        }
    }
    Ok(())
}

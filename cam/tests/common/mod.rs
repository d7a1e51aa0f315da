//! What the method tests share: a small classifier and a random image, both in f64, so that
//! comparisons hold to rounding.

#![allow(dead_code)]

use ferrograd_engine::{DType, Rng, Tensor};
use ferrograd_models::classifier::{Classifier, ClassifierActivation};

/// Narrow blocks (3-4-5 channels) keep every method quick; weights from `seed`, cast to f64.
pub fn classifier(activation: ClassifierActivation, seed: u64) -> Classifier {
    let mut rng = Rng::new(seed);
    let model = Classifier::with_channels([3, 4, 5], activation, 0.1, 0.0, 1e-3, &mut rng).unwrap();
    model.cast(DType::F64).unwrap();
    model
}

/// A random 28x28 "image" with values in [0, 1], in f64.
pub fn image(seed: u64) -> Tensor {
    Tensor::rand_uniform(&[1, 1, 28, 28], 0.0, 1.0, DType::F64, &mut Rng::new(seed)).unwrap()
}

//! Maps in the input's own pixels, from the gradient of the class score with respect to the
//! image: no layer, no channel weights.
//!
//! - Vanilla saliency (Simonyan et al. 2014): M = max_c |∂Y/∂x_c|, the largest magnitude over
//!   the input's channels at each pixel.
//! - SmoothGrad (Smilkov et al. 2017): the same of the gradient averaged over n noisy copies,
//!   (1/n) Σ_i ∂Y/∂x (x + ε_i), ε_i ~ N(0, (σ·(max x − min x))²): the noise is a fraction σ of
//!   the image's range, as the paper and tf-keras-vis set it. Averaging cancels the gradient's
//!   pixel-to-pixel jitter that makes vanilla saliency speckled.
//!
//! The n copies go through the network as one batch (in evaluation mode the images do not
//! interact, so the gradient of Σ_i Y_i at copy i is copy i's own).

use crate::maps::Score;
use ferrograd_engine::{grad, Error, Result, Rng, Tensor};
use ferrograd_models::classifier::Classifier;
use ferrograd_nn::nn::Ctx;

/// An input-resolution map, row-major `height`x`width`.
#[derive(Clone, Debug, PartialEq)]
pub struct InputMap {
    pub map: Vec<f64>,
    pub height: usize,
    pub width: usize,
}

/// ∂Y/∂x for each image of a batch [B, C, H, W], all scored for `class`.
fn input_gradients(
    model: &Classifier,
    images: &Tensor,
    class: usize,
    score: Score,
) -> Result<Vec<f64>> {
    let x = images.detach().requires_grad_();
    let y = score
        .of_logits(&model.logits(&x, &mut Ctx::eval())?, class)?
        .sum_all()?;
    Ok(grad(&[&y], &[&x], None, false)?[0].to_vec_f64())
}

/// max over channels of |g| for one image's gradient g [C, H, W].
fn max_abs_over_channels(g: &[f64], channels: usize, plane: usize) -> Vec<f64> {
    (0..plane)
        .map(|p| {
            (0..channels)
                .map(|c| g[c * plane + p].abs())
                .fold(0.0, f64::max)
        })
        .collect()
}

fn check(image: &Tensor) -> Result<(usize, usize, usize)> {
    if image.rank() != 4 || image.dim(0)? != 1 {
        return Err(Error::shape(
            "saliency",
            format!("one image [1, C, H, W] at a time, got {:?}", image.shape()),
        ));
    }
    Ok((image.dim(1)?, image.dim(2)?, image.dim(3)?))
}

/// Vanilla saliency of one image [1, C, H, W] for `class`.
pub fn saliency(
    model: &Classifier,
    image: &Tensor,
    class: usize,
    score: Score,
) -> Result<InputMap> {
    let (c, h, w) = check(image)?;
    let g = input_gradients(model, image, class, score)?;
    Ok(InputMap {
        map: max_abs_over_channels(&g, c, h * w),
        height: h,
        width: w,
    })
}

/// SmoothGrad of one image with `samples` noisy copies at noise level `sigma` (a fraction of
/// the image's range; 0 gives vanilla saliency exactly), drawn from `rng`.
pub fn smooth_grad(
    model: &Classifier,
    image: &Tensor,
    class: usize,
    score: Score,
    samples: usize,
    sigma: f64,
    rng: &mut Rng,
) -> Result<InputMap> {
    let (c, h, w) = check(image)?;
    if samples == 0 || !(sigma.is_finite() && sigma >= 0.0) {
        return Err(Error::argument(
            "smooth_grad",
            format!("needs at least one sample and a noise level σ ≥ 0, got {samples} and {sigma}"),
        ));
    }
    let x = image.to_vec_f64();
    let (lo, hi) = x
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, u), &v| {
            (l.min(v), u.max(v))
        });
    let spread = sigma * (hi - lo);
    let mut batch = Vec::with_capacity(samples * x.len());
    for _ in 0..samples {
        batch.extend(x.iter().map(|v| v + spread * rng.normal()));
    }
    let batch = Tensor::from_f64s(&batch, &[samples, c, h, w], image.dtype())?.to(image.device())?;
    let g = input_gradients(model, &batch, class, score)?;
    let per_image = c * h * w;
    let mut mean = vec![0.0; per_image];
    for copy in g.chunks(per_image) {
        mean.iter_mut()
            .zip(copy)
            .for_each(|(m, v)| *m += v / samples as f64);
    }
    Ok(InputMap {
        map: max_abs_over_channels(&mean, c, h * w),
        height: h,
        width: w,
    })
}

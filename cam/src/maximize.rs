//! Activation maximisation (Erhan et al. 2009; keras-vis's `visualize_activation`): the input
//! that maximises a class score, found by gradient ascent from noise, with the regularisers that
//! keep it image-like.
//!
//! The image is x = σ(u) (so it stays in [0, 1]); each step ascends
//!
//!   J(x) = Y_c(jitter(x)) − λ_tv·TV(x) − λ_l2·‖x‖²,  TV(x) = Σ (x_{i+1,j} − x_ij)² + (x_{i,j+1} − x_ij)²,
//!
//! in u with Adam. The jitter shifts the image by a random whole number of pixels each step
//! (with wrap-around), so a pattern must work wherever it sits: without it the ascent finds
//! pixel-exact adversarial texture.

use crate::maps::Score;
use ferrograd_engine::{grad, Error, Result, Rng, Tensor};
use ferrograd_models::classifier::Classifier;
use ferrograd_nn::nn::Ctx;

/// The ascent's settings.
#[derive(Clone, Copy, Debug)]
pub struct MaximizeSettings {
    pub steps: usize,
    /// Adam's step size in u.
    pub lr: f64,
    /// λ_tv: the weight of total variation (smoothness).
    pub total_variation: f64,
    /// λ_l2: the weight of ‖x‖² (keeps the background dark).
    pub l2: f64,
    /// The largest shift, in pixels, each way (0 turns jitter off).
    pub jitter: usize,
    pub score: Score,
}

impl Default for MaximizeSettings {
    fn default() -> Self {
        MaximizeSettings {
            steps: 200,
            lr: 0.05,
            total_variation: 0.3,
            l2: 0.01,
            jitter: 2,
            score: Score::Logit,
        }
    }
}

/// The image found, [h·w] in [0, 1], and the class score Y_c(x) (unjittered) after every step.
pub struct Maximized {
    pub image: Vec<f64>,
    pub height: usize,
    pub width: usize,
    pub scores: Vec<f64>,
}

/// `v` [h, w] shifted by (dy, dx) with wrap-around; `unshift` with the negated shift undoes it.
fn shift(v: &[f64], h: usize, w: usize, dy: isize, dx: isize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for i in 0..h {
        for j in 0..w {
            let si = (i as isize + dy).rem_euclid(h as isize) as usize;
            let sj = (j as isize + dx).rem_euclid(w as isize) as usize;
            out[si * w + sj] = v[i * w + j];
        }
    }
    out
}

fn sigmoid(u: f64) -> f64 {
    1.0 / (1.0 + (-u).exp())
}

/// Y_c and ∂J/∂x for one 1-channel image x [h, w] (the jitter's shift applied before the
/// network and undone on the gradient).
fn objective_gradient(
    model: &Classifier,
    x: &[f64],
    (h, w): (usize, usize),
    class: usize,
    settings: &MaximizeSettings,
    (dy, dx): (isize, isize),
) -> Result<Vec<f64>> {
    let shifted = shift(x, h, w, dy, dx);
    let leaf = Tensor::from_f64s(&shifted, &[1, 1, h, w], model.head.weight.dtype())?
        .to(model.head.weight.device())?
        .requires_grad_();
    let y = settings
        .score
        .of_logits(&model.logits(&leaf, &mut Ctx::eval())?, class)?
        .sum_all()?;
    // The regularisers are shift-invariant (TV with wrap-around differs only at the border,
    // so it is taken on the shifted image too, where the gradient is computed).
    let img = leaf.reshape(&[h, w])?;
    let dv = img.narrow(0, 1, h - 1)?.sub(&img.narrow(0, 0, h - 1)?)?;
    let dh = img.narrow(1, 1, w - 1)?.sub(&img.narrow(1, 0, w - 1)?)?;
    let tv = dv.mul(&dv)?.sum_all()?.add(&dh.mul(&dh)?.sum_all()?)?;
    let l2 = img.mul(&img)?.sum_all()?;
    let j = y
        .sub(&tv.mul_scalar(settings.total_variation)?)?
        .sub(&l2.mul_scalar(settings.l2)?)?;
    let g = grad(&[&j], &[&leaf], None, false)?[0].to_vec_f64();
    Ok(shift(&g, h, w, -dy, -dx))
}

/// The class score of one image x [h, w].
fn score_of(
    model: &Classifier,
    x: &[f64],
    (h, w): (usize, usize),
    class: usize,
    score: Score,
) -> Result<f64> {
    let t = Tensor::from_f64s(x, &[1, 1, h, w], model.head.weight.dtype())?
        .to(model.head.weight.device())?;
    let y =
        ferrograd_engine::no_grad(|| score.of_logits(&model.logits(&t, &mut Ctx::eval())?, class))?;
    Ok(y.to_vec_f64()[0])
}

/// Ascends class `class`'s score from a noise image drawn from `rng` (28×28, one channel).
pub fn maximize_class(
    model: &Classifier,
    class: usize,
    settings: &MaximizeSettings,
    rng: &mut Rng,
) -> Result<Maximized> {
    let classes = model.head.weight.dim(0)?;
    if class >= classes {
        return Err(Error::argument(
            "maximize_class",
            format!("class {class} does not exist: the classifier has {classes}"),
        ));
    }
    if settings.steps == 0 || !(settings.lr > 0.0 && settings.lr.is_finite()) {
        return Err(Error::argument(
            "maximize_class",
            format!(
                "needs steps ≥ 1 and a positive finite lr, got {} and {}",
                settings.steps, settings.lr
            ),
        ));
    }
    let (h, w) = (28, 28);
    // Start near grey with a little noise: u = small normal values, x = σ(u) ≈ 0.5.
    let mut u: Vec<f64> = (0..h * w).map(|_| 0.1 * rng.normal()).collect();
    let (mut m, mut v) = (vec![0.0; h * w], vec![0.0; h * w]);
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    let mut scores = Vec::with_capacity(settings.steps);
    let j = settings.jitter as isize;
    for t in 1..=settings.steps {
        let x: Vec<f64> = u.iter().map(|&a| sigmoid(a)).collect();
        let shift_by = if j > 0 {
            (
                rng.below(2 * settings.jitter + 1) as isize - j,
                rng.below(2 * settings.jitter + 1) as isize - j,
            )
        } else {
            (0, 0)
        };
        let gx = objective_gradient(model, &x, (h, w), class, settings, shift_by)?;
        // Chain through x = σ(u), then an Adam step up the gradient.
        for e in 0..h * w {
            let gu = gx[e] * x[e] * (1.0 - x[e]);
            m[e] = b1 * m[e] + (1.0 - b1) * gu;
            v[e] = b2 * v[e] + (1.0 - b2) * gu * gu;
            let m_hat = m[e] / (1.0 - b1.powi(t as i32));
            let v_hat = v[e] / (1.0 - b2.powi(t as i32));
            u[e] += settings.lr * m_hat / (v_hat.sqrt() + eps);
        }
        let x: Vec<f64> = u.iter().map(|&a| sigmoid(a)).collect();
        scores.push(score_of(model, &x, (h, w), class, settings.score)?);
    }
    Ok(Maximized {
        image: u.iter().map(|&a| sigmoid(a)).collect(),
        height: h,
        width: w,
        scores,
    })
}

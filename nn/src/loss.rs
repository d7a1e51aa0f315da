//! The course's cost functions, each as the equation it implements. Reductions: "mean" is over
//! every element; per-example sums (the VAE's) say so.

use ferrograd_engine::{Conv2dParams, Error, Result, Tensor};

/// Mean squared error: (1/n) Σᵢ (xᵢ − yᵢ)².
pub fn mse(prediction: &Tensor, target: &Tensor) -> Result<Tensor> {
    prediction.mse_loss(target)
}

/// Mean absolute error: (1/n) Σᵢ |xᵢ − yᵢ|.
pub fn l1(prediction: &Tensor, target: &Tensor) -> Result<Tensor> {
    prediction.l1_loss(target)
}

/// Binary cross-entropy of probabilities p against targets y ∈ [0, 1]:
/// −(1/n) Σᵢ [yᵢ log pᵢ + (1 − yᵢ) log(1 − pᵢ)], with p clamped to [ε, 1 − ε] (ε = 1e-7) so
/// that a saturated sigmoid gives a large finite loss, not infinity.
pub fn bce(probability: &Tensor, target: &Tensor) -> Result<Tensor> {
    if probability.shape() != target.shape() {
        return Err(Error::shape(
            "bce",
            format!(
                "probabilities {:?} and targets {:?} differ",
                probability.shape(),
                target.shape()
            ),
        ));
    }
    const EPS: f64 = 1e-7;
    let p = probability.clamp(EPS, 1.0 - EPS)?;
    let one_minus_p = p.neg()?.add_scalar(1.0)?;
    let one_minus_y = target.neg()?.add_scalar(1.0)?;
    target
        .mul(&p.log()?)?
        .add(&one_minus_y.mul(&one_minus_p.log()?)?)?
        .mean_all()?
        .neg()
}

/// Binary cross-entropy on logits s (p = σ(s)), computed stably as mean(softplus(s) − s·y).
pub fn bce_with_logits(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    logits.binary_cross_entropy_with_logits(target)
}

/// Σ_W ‖W‖²_F = Σ_W Σᵢⱼ W²ᵢⱼ over the given weight tensors (pass weights, not biases): the
/// regularised autoencoder's penalty, multiplied by λ by the caller.
pub fn frobenius_penalty(weights: &[&Tensor]) -> Result<Tensor> {
    lp_penalty(weights, 2.0)
}

/// Σ_W ‖W‖ᵖ_p = Σ_W Σᵢⱼ |Wᵢⱼ|ᵖ (p = 2 is the squared Frobenius norm, p = 1 the lasso).
pub fn lp_penalty(weights: &[&Tensor], p: f64) -> Result<Tensor> {
    if !(p > 0.0 && p.is_finite()) {
        return Err(Error::argument(
            "lp_penalty",
            format!("p must be positive and finite, got {p}"),
        ));
    }
    let first = weights
        .first()
        .ok_or_else(|| Error::argument("lp_penalty", "no weight tensors given"))?;
    let mut total = Tensor::full_on(&[], 0.0, first.dtype(), first.device())?;
    for w in weights {
        // |w|² is written w·w so its derivatives stay exact at w = 0.
        let term = if p == 2.0 {
            w.mul(w)?
        } else {
            w.abs()?.powf(p)?
        };
        total = total.add(&term.sum_all()?)?;
    }
    Ok(total)
}

/// KL(N(μ, σ²) ‖ N(0, I)) in closed form, summed over latent dimensions and averaged over the
/// batch: (1/N) Σₙ −½ Σⱼ (1 + log σ²ₙⱼ − μ²ₙⱼ − σ²ₙⱼ). `mu` and `log_var` are [N, d].
pub fn kl_to_standard_normal(mu: &Tensor, log_var: &Tensor) -> Result<Tensor> {
    if mu.shape() != log_var.shape() || mu.rank() != 2 {
        return Err(Error::shape(
            "kl_to_standard_normal",
            format!(
                "mu {:?} and log_var {:?} must be the same [N, d]",
                mu.shape(),
                log_var.shape()
            ),
        ));
    }
    let n = mu.shape()[0].max(1) as f64;
    let inner = log_var
        .add_scalar(1.0)?
        .sub(&mu.mul(mu)?)?
        .sub(&log_var.exp()?)?;
    inner.sum_all()?.mul_scalar(-0.5 / n)
}

/// The discriminator's loss on logits D = σ(s): −E[log D(x)] − E[log(1 − D(G(z)))], i.e. binary
/// cross-entropy with label 1 for real samples and 0 for generated ones. The adversarial
/// autoencoder uses it with prior samples as "real" and encoder codes as "generated".
pub fn discriminator_loss(real_logits: &Tensor, fake_logits: &Tensor) -> Result<Tensor> {
    // −log σ(s) = softplus(−s);  −log(1 − σ(s)) = softplus(s)
    real_logits
        .neg()?
        .softplus()?
        .mean_all()?
        .add(&fake_logits.softplus()?.mean_all()?)
}

/// The generator's minimax loss, the value it minimises in the original game:
/// E[log(1 − D(G(z)))] = −E[softplus(s)]. Its gradient vanishes when D rejects G's samples
/// confidently, which is why the non-saturating form is the usual choice.
pub fn generator_loss_minimax(fake_logits: &Tensor) -> Result<Tensor> {
    fake_logits.softplus()?.mean_all()?.neg()
}

/// The generator's non-saturating loss: −E[log D(G(z))] = E[softplus(−s)]. The adversarial
/// autoencoder's encoder minimises the same thing on its codes, to make them pass for prior
/// samples.
pub fn generator_loss_non_saturating(fake_logits: &Tensor) -> Result<Tensor> {
    fake_logits.neg()?.softplus()?.mean_all()
}

/// Side of SSIM's Gaussian window (Wang et al. 2004).
pub const SSIM_WINDOW: usize = 11;
/// Standard deviation of SSIM's Gaussian window, in pixels.
pub const SSIM_SIGMA: f64 = 1.5;
/// SSIM's stabilisers for a dynamic range L = 1: C₁ = (0.01·L)², C₂ = (0.03·L)².
const SSIM_C1: f64 = 1e-4;
const SSIM_C2: f64 = 9e-4;

/// Structural dissimilarity of two image batches [N, C, H, W] with values in [0, 1]:
/// DSSIM = (1 − SSIM)/2, SSIM averaged over images, channels and every position where the
/// 11x11 Gaussian window (σ = 1.5) fits,
///
/// SSIM(x, y) = (2μₓμ_y + C₁)(2σₓ_y + C₂) / ((μₓ² + μ_y² + C₁)(σₓ² + σ_y² + C₂)),
///
/// μ, σ², σₓ_y the window-weighted means, variances and covariance. L1 alone is minimised by
/// the per-pixel median of what a face might be, which is a blur; DSSIM compares local
/// contrast and structure, so a blurred face costs (faceswap's default reconstruction loss).
/// The window is separable: each moment is filtered by an 11x1 then a 1x11 depthwise
/// convolution, so the whole loss is differentiable to any order by the engine's own ops.
pub fn dssim(prediction: &Tensor, target: &Tensor) -> Result<Tensor> {
    let ssim = ssim_map("dssim", prediction, target)?.mean_all()?;
    ssim.neg()?.add_scalar(1.0)?.mul_scalar(0.5)
}

/// [`dssim`] with each position's SSIM weighted: DSSIM_w = (1 − Σ w·SSIM / Σ w)/2, where w is
/// `weights` (the images' shape, non-negative, not all 0) cut to the positions where the
/// window fits, at its centre pixel. Uniform weights give [`dssim`]; weights of 3 on the eyes
/// make a blurred eye cost three times what the same blur costs on a cheek (faceswap's eye and
/// mouth multipliers).
pub fn weighted_dssim(prediction: &Tensor, target: &Tensor, weights: &Tensor) -> Result<Tensor> {
    const OP: &str = "weighted_dssim";
    let map = ssim_map(OP, prediction, target)?;
    let values = checked_weights(OP, weights, prediction)?;
    // The weight of each window's centre pixel, cut from the values the check already read.
    let [images, channels, height, width] = [0, 1, 2, 3].map(|i| prediction.shape()[i]);
    let [rows, columns] = [2, 3].map(|i| map.shape()[i]);
    let margin = SSIM_WINDOW / 2;
    let mut centres = Vec::with_capacity(images * channels * rows * columns);
    for plane in values.chunks_exact(height * width) {
        for row in plane.chunks_exact(width).skip(margin).take(rows) {
            centres.extend_from_slice(&row[margin..margin + columns]);
        }
    }
    let total: f64 = centres.iter().sum();
    if total <= 0.0 {
        return Err(Error::argument(
            OP,
            "the weights are 0 wherever the SSIM window fits: nothing would be compared",
        ));
    }
    let w = Tensor::from_f64s(&centres, map.shape(), prediction.dtype())?.to(prediction.device())?;
    let ssim = map.mul(&w)?.sum_all()?.mul_scalar(1.0 / total)?;
    ssim.neg()?.add_scalar(1.0)?.mul_scalar(0.5)
}

/// Weighted mean absolute error Σ w·|p − t| / Σ w, for `weights` of the images' shape,
/// non-negative and not all 0. Uniform weights give the plain mean absolute error.
pub fn weighted_l1(prediction: &Tensor, target: &Tensor, weights: &Tensor) -> Result<Tensor> {
    const OP: &str = "weighted_l1";
    if prediction.shape() != target.shape() {
        return Err(Error::shape(
            OP,
            format!(
                "prediction {:?} and target {:?} differ",
                prediction.shape(),
                target.shape()
            ),
        ));
    }
    let values = checked_weights(OP, weights, prediction)?;
    let total: f64 = values.iter().sum();
    if total <= 0.0 {
        return Err(Error::argument(OP, "the weights are all 0"));
    }
    let w = Tensor::from_f64s(&values, prediction.shape(), prediction.dtype())?
        .to(prediction.device())?;
    prediction
        .sub(target)?
        .abs()?
        .mul(&w)?
        .sum_all()?
        .mul_scalar(1.0 / total)
}

/// The values of `weights`, after checking that they have the prediction's shape and that
/// none is negative or not finite. Weights are constants: no gradient reaches them.
fn checked_weights(op: &'static str, weights: &Tensor, prediction: &Tensor) -> Result<Vec<f64>> {
    let shape = prediction.shape();
    if weights.shape() != shape {
        return Err(Error::shape(
            op,
            format!(
                "weights {:?} must have the images' shape {shape:?}",
                weights.shape()
            ),
        ));
    }
    let values = weights.to_vec_f64();
    if let Some(bad) = values.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
        return Err(Error::argument(
            op,
            format!("weights must be finite and at least 0, found {bad}"),
        ));
    }
    Ok(values)
}

/// SSIM at every position where the window fits: [N, C, H − 10, W − 10] (see [`dssim`]).
fn ssim_map(op: &'static str, prediction: &Tensor, target: &Tensor) -> Result<Tensor> {
    if prediction.shape() != target.shape() || prediction.rank() != 4 {
        return Err(Error::shape(
            op,
            format!(
                "needs two [N, C, H, W] batches of one shape, got {:?} and {:?}",
                prediction.shape(),
                target.shape()
            ),
        ));
    }
    let [_, channels, height, width] = [0, 1, 2, 3].map(|i| prediction.shape()[i]);
    if height < SSIM_WINDOW || width < SSIM_WINDOW {
        return Err(Error::shape(
            op,
            format!(
                "{height}x{width} images are smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} window"
            ),
        ));
    }
    let half = (SSIM_WINDOW as f64 - 1.0) / 2.0;
    let taps: Vec<f64> = (0..SSIM_WINDOW)
        .map(|i| (-(i as f64 - half).powi(2) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let total: f64 = taps.iter().sum();
    let taps: Vec<f64> = (0..channels)
        .flat_map(|_| taps.iter().map(|t| t / total))
        .collect();
    let to_input = |t: Tensor| t.to(prediction.device());
    let column = to_input(Tensor::from_f64s(
        &taps,
        &[channels, 1, SSIM_WINDOW, 1],
        prediction.dtype(),
    )?)?;
    let row = column.reshape(&[channels, 1, 1, SSIM_WINDOW])?;
    let depthwise = Conv2dParams::default().groups(channels);
    let filter = |t: &Tensor| -> Result<Tensor> {
        t.conv2d(&column, None, depthwise)?
            .conv2d(&row, None, depthwise)
    };
    let (x, y) = (prediction, target);
    let (mean_x, mean_y) = (filter(x)?, filter(y)?);
    let (mean_xx, mean_yy, mean_xy) = (
        mean_x.mul(&mean_x)?,
        mean_y.mul(&mean_y)?,
        mean_x.mul(&mean_y)?,
    );
    let var_x = filter(&x.mul(x)?)?.sub(&mean_xx)?;
    let var_y = filter(&y.mul(y)?)?.sub(&mean_yy)?;
    let cov = filter(&x.mul(y)?)?.sub(&mean_xy)?;
    let numerator = mean_xy
        .mul_scalar(2.0)?
        .add_scalar(SSIM_C1)?
        .mul(&cov.mul_scalar(2.0)?.add_scalar(SSIM_C2)?)?;
    let denominator = mean_xx
        .add(&mean_yy)?
        .add_scalar(SSIM_C1)?
        .mul(&var_x.add(&var_y)?.add_scalar(SSIM_C2)?)?;
    numerator.div(&denominator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrograd_engine::DType;

    fn t(v: &[f64], shape: &[usize]) -> Tensor {
        Tensor::from_f64s(v, shape, DType::F64).unwrap()
    }

    #[test]
    fn losses_match_their_formulas() {
        let p = t(&[0.9, 0.2], &[2]);
        let y = t(&[1.0, 0.0], &[2]);
        let want = -((0.9f64).ln() + (0.8f64).ln()) / 2.0;
        assert!((bce(&p, &y).unwrap().item().unwrap() - want).abs() < 1e-12);
        // bce_with_logits at s = logit(p) agrees with bce at p.
        let s = t(&[(0.9f64 / 0.1).ln(), (0.2f64 / 0.8).ln()], &[2]);
        assert!((bce_with_logits(&s, &y).unwrap().item().unwrap() - want).abs() < 1e-12);
        // KL of N(μ, σ²) to N(0, 1): ½(σ² + μ² − 1 − log σ²) per dimension.
        let (mu, lv) = (t(&[0.5, -1.0], &[1, 2]), t(&[0.2, -0.3], &[1, 2]));
        let kl: f64 = [(0.5f64, 0.2f64), (-1.0, -0.3)]
            .iter()
            .map(|&(m, l)| 0.5 * (l.exp() + m * m - 1.0 - l))
            .sum();
        assert!((kl_to_standard_normal(&mu, &lv).unwrap().item().unwrap() - kl).abs() < 1e-12);
        // Frobenius: Σ w².
        let w = t(&[1.0, -2.0, 3.0], &[3]);
        assert_eq!(frobenius_penalty(&[&w, &w]).unwrap().item().unwrap(), 28.0);
        assert!((lp_penalty(&[&w], 1.0).unwrap().item().unwrap() - 6.0).abs() < 1e-12);
    }

    #[test]
    fn gan_losses_match_log_d() {
        let s = t(&[0.3, -1.2], &[2]);
        let d: Vec<f64> = [0.3f64, -1.2]
            .iter()
            .map(|v| 1.0 / (1.0 + (-v).exp()))
            .collect();
        let mean = |f: &dyn Fn(f64) -> f64| d.iter().map(|&x| f(x)).sum::<f64>() / 2.0;
        let close = |a: Tensor, b: f64| assert!((a.item().unwrap() - b).abs() < 1e-12);
        close(
            generator_loss_minimax(&s).unwrap(),
            mean(&|x| (1.0 - x).ln()),
        );
        close(
            generator_loss_non_saturating(&s).unwrap(),
            -mean(&|x| x.ln()),
        );
        close(
            discriminator_loss(&s, &s).unwrap(),
            -mean(&|x| x.ln()) - mean(&|x| (1.0 - x).ln()),
        );
    }

    #[test]
    fn dssim_is_zero_for_equal_images_and_half_for_a_negated_structure() {
        let mut rng = ferrograd_engine::Rng::new(4);
        let x = Tensor::rand_uniform(&[2, 3, 14, 12], 0.0, 1.0, DType::F64, &mut rng).unwrap();
        assert!(dssim(&x, &x).unwrap().item().unwrap().abs() < 1e-12);
        // y = 1 − x keeps every mean of 0.5-centred noise near 0.5 and negates the covariance:
        // SSIM ≈ −1 on the structure term, so DSSIM is near 1.
        let y = x.neg().unwrap().add_scalar(1.0).unwrap();
        let d = dssim(&x, &y).unwrap().item().unwrap();
        assert!(d > 0.8 && d <= 1.0, "{d}");
        let small = Tensor::zeros(&[1, 1, 10, 20], DType::F64).unwrap();
        assert!(dssim(&small, &small).is_err());
        assert!(dssim(&x, &x.narrow(0, 0, 1).unwrap()).is_err());
    }

    #[test]
    fn dssim_derivatives_match_finite_differences_to_second_order() {
        let mut rng = ferrograd_engine::Rng::new(5);
        let x = Tensor::rand_uniform(&[1, 2, 12, 13], 0.0, 1.0, DType::F64, &mut rng).unwrap();
        let y = Tensor::rand_uniform(&[1, 2, 12, 13], 0.0, 1.0, DType::F64, &mut rng).unwrap();
        let outcomes =
            ferrograd_engine::gradcheck::check_derivatives(|t| dssim(&t[0], &t[1]), &[x, y], 2, 0)
                .unwrap();
        for (order, o) in outcomes.iter().enumerate() {
            assert!(o.passed(), "order {}: {:?}", order + 1, o.failure);
        }
    }

    #[test]
    fn uniform_weights_give_the_plain_losses_and_zero_weights_leave_pixels_out() {
        let mut rng = ferrograd_engine::Rng::new(6);
        let shape = [2, 3, 14, 12];
        let x = Tensor::rand_uniform(&shape, 0.0, 1.0, DType::F64, &mut rng).unwrap();
        let y = Tensor::rand_uniform(&shape, 0.0, 1.0, DType::F64, &mut rng).unwrap();
        let threes = Tensor::full(&shape, 3.0, DType::F64).unwrap();
        let value = |t: Result<Tensor>| t.unwrap().item().unwrap();
        let (plain_l1, plain_dssim) = (value(x.l1_loss(&y)), value(dssim(&x, &y)));
        assert!((value(weighted_l1(&x, &y, &threes)) - plain_l1).abs() < 1e-12);
        assert!((value(weighted_dssim(&x, &y, &threes)) - plain_dssim).abs() < 1e-12);
        // Weight 1 on the first image only: the losses of that image alone.
        let first = Tensor::concat(
            &[
                Tensor::full(&[1, 3, 14, 12], 1.0, DType::F64).unwrap(),
                Tensor::zeros(&[1, 3, 14, 12], DType::F64).unwrap(),
            ],
            0,
        )
        .unwrap();
        let (x0, y0) = (x.narrow(0, 0, 1).unwrap(), y.narrow(0, 0, 1).unwrap());
        let want_l1 = value(x0.l1_loss(&y0));
        let want_dssim = value(dssim(&x0, &y0));
        assert!((value(weighted_l1(&x, &y, &first)) - want_l1).abs() < 1e-12);
        assert!((value(weighted_dssim(&x, &y, &first)) - want_dssim).abs() < 1e-12);
    }

    #[test]
    fn weights_are_checked() {
        let shape = [1, 1, 12, 12];
        let x = Tensor::full(&shape, 0.5, DType::F64).unwrap();
        let zeros = Tensor::zeros(&shape, DType::F64).unwrap();
        let negative = Tensor::full(&shape, -1.0, DType::F64).unwrap();
        let nan = Tensor::full(&shape, f64::NAN, DType::F64).unwrap();
        let wrong = Tensor::full(&[1, 1, 12, 11], 1.0, DType::F64).unwrap();
        for loss in [weighted_l1, weighted_dssim] {
            for (weights, says) in [
                (&zeros, "0"),
                (&negative, "at least 0, found -1"),
                (&nan, "found NaN"),
                (&wrong, "the images' shape"),
            ] {
                let err = loss(&x, &x, weights).unwrap_err().to_string();
                assert!(err.contains(says), "{err}");
            }
        }
    }

    #[test]
    fn weighted_losses_match_finite_differences_to_second_order() {
        let mut rng = ferrograd_engine::Rng::new(7);
        let shape = [1, 2, 12, 13];
        let x = Tensor::rand_uniform(&shape, 0.0, 1.0, DType::F64, &mut rng).unwrap();
        let y = Tensor::rand_uniform(&shape, 0.0, 1.0, DType::F64, &mut rng).unwrap();
        let w = Tensor::rand_uniform(&shape, 0.5, 3.0, DType::F64, &mut rng).unwrap();
        for (name, loss) in [
            (
                "weighted_l1",
                weighted_l1 as fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
            ),
            ("weighted_dssim", weighted_dssim),
        ] {
            let outcomes = ferrograd_engine::gradcheck::check_derivatives(
                {
                    let w = w.clone();
                    move |t| loss(&t[0], &t[1], &w)
                },
                &[x.clone(), y.clone()],
                2,
                0,
            )
            .unwrap();
            for (order, o) in outcomes.iter().enumerate() {
                assert!(o.passed(), "{name} order {}: {:?}", order + 1, o.failure);
            }
        }
    }
}

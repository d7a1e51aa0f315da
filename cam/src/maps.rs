//! CAM, Grad-CAM, Grad-CAM++ (closed form and exact), Layer-CAM and Score-CAM for one image,
//! one class, one layer.
//!
//! Notation: A^k_ij is channel k of the target layer's activation map at position (i, j),
//! Y the class score, g = ∂Y/∂A. Every map but Layer-CAM's is ReLU(Σ_k w_k A^k) for channel weights w_k
//! that the methods choose differently (CAM keeps the sign: it has no ReLU).
//!
//! The exact Grad-CAM++ needs ∂Y/∂a, ∂²Y/∂a², ∂³Y/∂a³ for every element a of A: it pushes the
//! Taylor series of the network along each element ([`crate::taylor`]), sharing the forward
//! value and the reverse-mode adjoints of the logits among all elements.

use crate::exact::{diagonal_derivatives_at, Diagonal};
use crate::taylor::taylor_diagonal;
use ferrograd_engine::{grad, no_grad, Error, Result, Tensor};
use ferrograd_models::classifier::{Classifier, LAYER_NAMES};
use ferrograd_nn::nn::Ctx;

/// Which map to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Zhou et al. 2016: M = Σ_k w_k^c A^k with the head's weights w^c (last layer only: the
    /// head must follow the layer directly, through global average pooling).
    Cam,
    /// Selvaraju et al. 2017: w_k = mean_ij ∂Y/∂A^k_ij.
    GradCam,
    /// Chattopadhyay et al. 2018 with the exponential shortcut (what pytorch-grad-cam and
    /// tf-keras-vis compute): assume Y = exp(S) with S piecewise linear in A, so that
    /// ∂²Y/∂A² = Y·g², ∂³Y/∂A³ = Y·g³ with g = ∂S/∂A, and Y cancels from α.
    GradCamPlusPlus,
    /// Grad-CAM++ with the true diagonal ∂²Y/∂A², ∂³Y/∂A³ of the chosen score, by univariate
    /// Taylor mode along each element of A (see [`crate::taylor`]; [`crate::exact`]'s
    /// reverse mode gives the same numbers, much more slowly).
    GradCamPlusPlusExact,
    /// The exact Grad-CAM++ with each α clamped to the paper's range [0, ½]: a remedy, named as
    /// one, for the elements whose true-derivative denominator 2·∂²Y + Σ A·∂³Y crosses zero
    /// (α then takes any value, of either sign, and can empty or swamp a map). The unmodified
    /// formula stays `gradcam++exact`.
    GradCamPlusPlusExactClamped,
    /// The closed form exactly as pytorch-grad-cam computes it (`GradCAMPlusPlus`, v1.5): the
    /// same powers of g, but 1e-6 added to α's denominator and α = 0 where g = 0. The epsilon
    /// moves maps where Σ A·g³ and g² are small; this variant exists to compare with that
    /// library number for number.
    GradCamPlusPlusPytorchGradCam,
    /// Jiang et al. 2021: each element weighted by its own positive gradient,
    /// M_ij = ReLU(Σ_k ReLU(∂Y/∂A^k_ij)·A^k_ij). Not a channel-weighted sum, so it keeps
    /// detail at shallow layers where one weight per channel blurs.
    LayerCam,
    /// Wang et al. 2020: no gradient. Channel k's map, upsampled to the input and min-max
    /// normalised to H_k ∈ [0, 1], masks the input; its weight is the score gain it keeps,
    /// w_k = Y(X ∘ H_k) − Y(X_b) with the all-zero baseline X_b (the paper's "channel-wise
    /// increase of confidence"). One forward pass per channel, batched.
    ScoreCam,
    /// Simonyan et al. 2014: max over input channels of |∂Y/∂x|, in the input's pixels
    /// (see [`crate::saliency`]).
    Saliency,
    /// Smilkov et al. 2017: saliency of the gradient averaged over [`SMOOTHGRAD_SAMPLES`]
    /// noisy copies, noise σ = [`SMOOTHGRAD_SIGMA`] of the image's range.
    SmoothGrad,
}

/// The pseudo-layer of the maps drawn in the input's own pixels (saliency, SmoothGrad).
pub const INPUT_LAYER: usize = usize::MAX;
/// SmoothGrad's noisy copies per image.
pub const SMOOTHGRAD_SAMPLES: usize = 25;
/// SmoothGrad's noise, as a fraction of the image's range (the paper finds 10–20% best).
pub const SMOOTHGRAD_SIGMA: f64 = 0.15;

/// A layer's name, "input" for [`INPUT_LAYER`].
pub fn layer_name(layer: usize) -> &'static str {
    if layer == INPUT_LAYER {
        "input"
    } else {
        LAYER_NAMES[layer]
    }
}

impl Method {
    pub const ALL: [Method; 10] = [
        Method::Cam,
        Method::GradCam,
        Method::GradCamPlusPlus,
        Method::GradCamPlusPlusExact,
        Method::GradCamPlusPlusExactClamped,
        Method::GradCamPlusPlusPytorchGradCam,
        Method::LayerCam,
        Method::ScoreCam,
        Method::Saliency,
        Method::SmoothGrad,
    ];
    /// Whether the map needs the exact diagonal derivatives (milliseconds to seconds per map,
    /// one image at a time).
    pub fn is_exact(self) -> bool {
        matches!(
            self,
            Method::GradCamPlusPlusExact | Method::GradCamPlusPlusExactClamped
        )
    }
    /// Whether the map is in the input's pixels rather than at a layer.
    pub fn is_input_level(self) -> bool {
        matches!(self, Method::Saliency | Method::SmoothGrad)
    }
    /// The name on the command line and in `cam.json`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Cam => "cam",
            Method::GradCam => "gradcam",
            Method::GradCamPlusPlus => "gradcam++",
            Method::GradCamPlusPlusExact => "gradcam++exact",
            Method::GradCamPlusPlusExactClamped => "gradcam++exact-clamped",
            Method::GradCamPlusPlusPytorchGradCam => "gradcam++pytorch-grad-cam",
            Method::LayerCam => "layercam",
            Method::ScoreCam => "scorecam",
            Method::Saliency => "saliency",
            Method::SmoothGrad => "smoothgrad",
        }
    }
    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == s)
    }
    /// CAM needs the head right after the layer; the gradient methods work at any layer; the
    /// input-level methods only at [`INPUT_LAYER`].
    pub fn applies_to(self, layer: usize) -> bool {
        if self.is_input_level() || layer == INPUT_LAYER {
            return self.is_input_level() && layer == INPUT_LAYER;
        }
        self != Method::Cam || layer == LAYER_NAMES.len() - 1
    }
}

/// The class score Y that the gradient methods differentiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    /// Y = z_c, the class logit.
    Logit,
    /// Y = exp(z_c): the score the Grad-CAM++ paper assumes for its closed form.
    ExpLogit,
    /// Y = softmax(z)_c, the class probability.
    Softmax,
}

impl Score {
    pub const ALL: [Score; 3] = [Score::Logit, Score::ExpLogit, Score::Softmax];
    pub fn name(self) -> &'static str {
        match self {
            Score::Logit => "logit",
            Score::ExpLogit => "exp-logit",
            Score::Softmax => "softmax",
        }
    }
    pub fn parse(s: &str) -> Option<Score> {
        Score::ALL.into_iter().find(|m| m.name() == s)
    }
    /// Y for each row of logits [B, classes]: a \[B\] tensor.
    pub fn of_logits(self, logits: &Tensor, class: usize) -> Result<Tensor> {
        let b = logits.dim(0)?;
        let pick = |t: &Tensor| t.narrow(1, class, 1)?.reshape(&[b]);
        match self {
            Score::Logit => pick(logits),
            Score::ExpLogit => pick(logits)?.exp(),
            Score::Softmax => pick(&logits.softmax(-1)?),
        }
    }
    /// Y for each row of logits [B, classes], row i scored for its own class `classes[i]`: a
    /// \[B\] tensor (a one-hot mask picks each row's class, so the gradient reaches only it).
    pub fn of_logits_per_row(self, logits: &Tensor, classes: &[usize]) -> Result<Tensor> {
        let (b, n) = (logits.dim(0)?, logits.dim(1)?);
        if classes.len() != b || classes.iter().any(|&c| c >= n) {
            return Err(Error::argument(
                "cam",
                format!(
                    "{} classes for {b} rows of {n} logits: one in 0..{n} per row",
                    classes.len()
                ),
            ));
        }
        let mut one_hot = vec![0.0; b * n];
        for (i, &c) in classes.iter().enumerate() {
            one_hot[i * n + c] = 1.0;
        }
        let one_hot = Tensor::from_f64s(&one_hot, &[b, n], logits.dtype())?.to(logits.device())?;
        let transformed = match self {
            Score::Logit => logits.clone(),
            Score::ExpLogit => logits.exp()?,
            Score::Softmax => logits.softmax(-1)?,
        };
        transformed.mul(&one_hot)?.sum(&[1], false)
    }
    /// The score whose gradient the closed form uses as g = ∂S/∂A: the logit for Y = z_c and
    /// Y = exp(z_c) (the shortcut's S), the probability itself for softmax (as pytorch-grad-cam
    /// does when its target is a softmax output).
    fn closed_form_base(self) -> Score {
        match self {
            Score::Logit | Score::ExpLogit => Score::Logit,
            Score::Softmax => Score::Softmax,
        }
    }
}

/// A map at the target layer's resolution, before upsampling or normalization.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// Row-major, `height`x`width`.
    pub map: Vec<f64>,
    pub height: usize,
    pub width: usize,
    /// The channel weights w_k that made the map.
    pub weights: Vec<f64>,
    /// For `gradcam++exact`, the diagonal derivatives ∂Y/∂a, ∂²Y/∂a², ∂³Y/∂a³ of every element
    /// of A (row-major [K, h, w]) the weights came from, so a reader can recompute α and w.
    pub diagonal: Option<Diagonal>,
}

/// What to explain: a trained classifier, a layer (0, 1, 2 for conv1..conv3), a class.
pub struct Target<'a> {
    pub model: &'a Classifier,
    pub layer: usize,
    pub class: usize,
    pub score: Score,
}

/// Elements per batch of [`Target::exact_diagonal`] (the reverse-mode method): each is one copy
/// of the network from the layer on.
pub const EXACT_CHUNK: usize = 256;

impl Target<'_> {
    fn check(&self, image: &Tensor) -> Result<()> {
        const OP: &str = "cam";
        if self.layer >= LAYER_NAMES.len() {
            return Err(Error::argument(
                OP,
                format!(
                    "layer {} does not exist: the classifier has conv1..conv3 (0..2)",
                    self.layer
                ),
            ));
        }
        let classes = self.model.head.weight.dim(0)?;
        if self.class >= classes {
            return Err(Error::argument(
                OP,
                format!(
                    "class {} does not exist: the classifier has {classes}",
                    self.class
                ),
            ));
        }
        if image.rank() != 4 || image.dim(0)? != 1 {
            return Err(Error::shape(
                OP,
                format!("one image [1, C, H, W] at a time, got {:?}", image.shape()),
            ));
        }
        Ok(())
    }

    /// A = the layer's activation map for `image`, a detached leaf [1, K, H, W].
    pub fn activation(&self, image: &Tensor) -> Result<Tensor> {
        self.check(image)?;
        let maps = no_grad(|| self.model.activations(image, &mut Ctx::eval()))?;
        Ok(maps[self.layer].detach())
    }

    /// Y for a batch of activation maps [B, K, H, W]: the network from the layer on.
    pub fn score_of(&self, a: &Tensor, score: Score) -> Result<Tensor> {
        let logits = self.model.logits_from(self.layer, a, &mut Ctx::eval())?;
        score.of_logits(&logits, self.class)
    }

    /// g = ∂Y/∂A at A for the given score.
    fn gradient(&self, a: &Tensor, score: Score) -> Result<Vec<f64>> {
        let a = a.detach().requires_grad_();
        let y = self.score_of(&a, score)?;
        Ok(grad(&[&y.sum_all()?], &[&a], None, false)?[0].to_vec_f64())
    }

    /// The exact diagonals of the score's first three derivatives at A, by the generic
    /// reverse-mode method of [`crate::exact`] (third-order reverse sweeps over perturbed
    /// copies of A): the judge of [`Target::taylor_diagonal`], which `explain` uses.
    pub fn exact_diagonal(
        &self,
        a: &Tensor,
        on_chunk: &mut dyn FnMut(usize, usize),
    ) -> Result<Diagonal> {
        let score = |batch: &Tensor| self.score_of(batch, self.score);
        let live = self.pooling_winners(a)?;
        diagonal_derivatives_at(a, &score, &live, EXACT_CHUNK, on_chunk)
    }

    /// The same diagonals by univariate Taylor mode (see [`crate::taylor`]): one forward value
    /// shared by all elements, series pushed for each, reverse-mode adjoints for what is linear.
    /// What [`Target::explain`] uses; [`Target::exact_diagonal`] is its independent judge.
    pub fn taylor_diagonal(
        &self,
        a: &Tensor,
        on_chunk: &mut dyn FnMut(usize, usize),
    ) -> Result<Diagonal> {
        taylor_diagonal(self.model, self.layer, self.class, self.score, a, on_chunk)
    }

    /// The elements of A that can move Y. conv1 and conv2 feed a 2x2 max-pooling: an element
    /// below its window's maximum does not reach the pooled value under a small change, so all
    /// its derivatives are exactly 0 — three quarters of the map, skipped. The winners are read
    /// from the engine's own max-pool gradient, so ties break exactly as in the network.
    fn pooling_winners(&self, a: &Tensor) -> Result<Vec<usize>> {
        if self.layer + 1 >= LAYER_NAMES.len() {
            return Ok((0..a.numel()).collect());
        }
        let a = a.detach().requires_grad_();
        let pooled = a.max_pool2d(2, 2, 0)?.sum_all()?;
        let routed = grad(&[&pooled], &[&a], None, false)?[0].to_vec_f64();
        Ok((0..routed.len()).filter(|&e| routed[e] != 0.0).collect())
    }

    /// The map of `method` for `image` [1, 1, 28, 28].
    pub fn explain(&self, image: &Tensor, method: Method) -> Result<Explanation> {
        self.explain_with_progress(image, method, &mut |_, _| {})
    }

    /// [`Target::explain`], reporting the exact method's progress as (elements done, total).
    pub fn explain_with_progress(
        &self,
        image: &Tensor,
        method: Method,
        on_chunk: &mut dyn FnMut(usize, usize),
    ) -> Result<Explanation> {
        if method.is_input_level() {
            return self.explain_input(image, method);
        }
        let a = self.activation(image)?;
        let (k, h, w) = (a.dim(1)?, a.dim(2)?, a.dim(3)?);
        let values = a.to_vec_f64();
        let weights = match method {
            Method::Cam => {
                if !method.applies_to(self.layer) {
                    return Err(Error::argument(
                        "cam",
                        format!(
                            "CAM is defined at the last layer ({}) only: its weights are the \
                             head's, which follow that layer through global average pooling; \
                             use gradcam or gradcam++ at {}",
                            LAYER_NAMES[LAYER_NAMES.len() - 1],
                            LAYER_NAMES[self.layer]
                        ),
                    ));
                }
                cam_weights(self.model, self.class, k)
            }
            Method::GradCam => grad_cam_weights(&self.gradient(&a, self.score)?, h * w),
            Method::GradCamPlusPlus => closed_form_plus_plus_weights(
                &values,
                &self.gradient(&a, self.score.closed_form_base())?,
                h * w,
            ),
            Method::GradCamPlusPlusPytorchGradCam => pytorch_grad_cam_plus_plus_weights(
                &values,
                &self.gradient(&a, self.score.closed_form_base())?,
                h * w,
            ),
            Method::GradCamPlusPlusExact | Method::GradCamPlusPlusExactClamped => {
                let d = self.taylor_diagonal(&a, on_chunk)?;
                let mut alpha = plus_plus_alpha(&values, &d.second, &d.third, h * w);
                if method == Method::GradCamPlusPlusExactClamped {
                    alpha.iter_mut().for_each(|v| *v = v.clamp(0.0, 0.5));
                }
                let weights = plus_plus_weights_from_alpha(&alpha, &d.first, h * w);
                return Ok(Explanation {
                    diagonal: Some(d),
                    ..explanation(method, &values, weights, h, w)
                });
            }
            Method::LayerCam => {
                return Ok(layer_cam(&values, &self.gradient(&a, self.score)?, h, w));
            }
            Method::Saliency | Method::SmoothGrad => unreachable!("drawn by explain_input"),
            Method::ScoreCam => score_cam_weights(
                self.model,
                image,
                &values,
                (k, h, w),
                self.score,
                self.class,
            )?,
        };
        Ok(explanation(method, &values, weights, h, w))
    }
}

impl Target<'_> {
    /// Saliency or SmoothGrad, in the input's pixels (the target's layer is not used).
    /// SmoothGrad's noise comes from a fixed seed, so a map is the same on every run.
    fn explain_input(&self, image: &Tensor, method: Method) -> Result<Explanation> {
        let on_input = Target { layer: 0, ..*self };
        on_input.check(image)?;
        let m = match method {
            Method::Saliency => {
                crate::saliency::saliency(self.model, image, self.class, self.score)?
            }
            _ => crate::saliency::smooth_grad(
                self.model,
                image,
                self.class,
                self.score,
                SMOOTHGRAD_SAMPLES,
                SMOOTHGRAD_SIGMA,
                &mut ferrograd_engine::Rng::new(0),
            )?,
        };
        Ok(Explanation {
            map: m.map,
            height: m.height,
            width: m.width,
            weights: Vec::new(),
            diagonal: None,
        })
    }
}

/// Layer-CAM's map M_ij = ReLU(Σ_k ReLU(g^k_ij)·A^k_ij). Its `weights` are each channel's mean
/// ReLU(g), for reference: the map is not Σ_k w_k A^k.
fn layer_cam(a: &[f64], g: &[f64], h: usize, w: usize) -> Explanation {
    let positions = h * w;
    let mut map = vec![0.0; positions];
    for (ak, gk) in a.chunks(positions).zip(g.chunks(positions)) {
        for ((m, av), gv) in map.iter_mut().zip(ak).zip(gk) {
            *m += gv.max(0.0) * av;
        }
    }
    map.iter_mut().for_each(|v| *v = v.max(0.0));
    let weights = g
        .chunks(positions)
        .map(|gk| gk.iter().map(|v| v.max(0.0)).sum::<f64>() / positions as f64)
        .collect();
    Explanation {
        map,
        height: h,
        width: w,
        weights,
        diagonal: None,
    }
}

/// The input masks of Score-CAM for one image's activation map A [K, h, w]: each channel
/// bilinearly upsampled to the image's size and min-max normalised to [0, 1] (a constant
/// channel gives an all-zero mask: it shows nothing).
pub fn score_cam_masks(
    a: &[f64],
    (k, h, w): (usize, usize, usize),
    out_h: usize,
    out_w: usize,
) -> Vec<f64> {
    let mut masks = Vec::with_capacity(k * out_h * out_w);
    for ak in a.chunks(h * w).take(k) {
        let up = crate::render::upsample_bilinear(ak, h, w, out_h, out_w);
        let (lo, hi) = up
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if hi > lo {
            masks.extend(up.iter().map(|v| (v - lo) / (hi - lo)));
        } else {
            masks.extend(std::iter::repeat_n(0.0, up.len()));
        }
    }
    masks
}

/// Score-CAM's weights w_k = Y(X ∘ H_k) − Y(0) for one image X [1, C, H, W]: the K masked
/// copies and the baseline go through the network in one batch.
fn score_cam_weights(
    model: &Classifier,
    image: &Tensor,
    a: &[f64],
    (k, h, w): (usize, usize, usize),
    score: Score,
    class: usize,
) -> Result<Vec<f64>> {
    let (c, ih, iw) = (image.dim(1)?, image.dim(2)?, image.dim(3)?);
    let masks = score_cam_masks(a, (k, h, w), ih, iw);
    let x = image.to_vec_f64();
    let plane = ih * iw;
    // K masked copies, then the all-zero baseline.
    let mut batch = Vec::with_capacity((k + 1) * c * plane);
    for mask in masks.chunks(plane) {
        for channel in x.chunks(plane) {
            batch.extend(channel.iter().zip(mask).map(|(v, m)| v * m));
        }
    }
    batch.extend(std::iter::repeat_n(0.0, c * plane));
    let batch = Tensor::from_f64s(&batch, &[k + 1, c, ih, iw], image.dtype())?.to(image.device())?;
    let y =
        no_grad(|| score.of_logits(&model.logits(&batch, &mut Ctx::eval())?, class))?.to_vec_f64();
    let baseline = y[k];
    Ok(y[..k].iter().map(|v| v - baseline).collect())
}

/// CAM's weights: the head's row for the class.
fn cam_weights(model: &Classifier, class: usize, channels: usize) -> Vec<f64> {
    let head = model.head.weight.to_vec_f64();
    head[class * channels..(class + 1) * channels].to_vec()
}

/// Grad-CAM's weights: w_k = mean_ij g^k_ij.
fn grad_cam_weights(g: &[f64], positions: usize) -> Vec<f64> {
    g.chunks(positions)
        .map(|gk| gk.iter().sum::<f64>() / positions as f64)
        .collect()
}

/// Grad-CAM++'s weights by the exponential shortcut: ∂²Y/∂A² ∝ g², ∂³Y/∂A³ ∝ g³.
fn closed_form_plus_plus_weights(a: &[f64], g: &[f64], positions: usize) -> Vec<f64> {
    let second: Vec<f64> = g.iter().map(|v| v * v).collect();
    let third: Vec<f64> = g.iter().map(|v| v * v * v).collect();
    plus_plus_weights(a, g, &second, &third, positions)
}

/// pytorch-grad-cam's Grad-CAM++ weights (`grad_cam_plusplus.py`): α = g² / (2g² + Σ_ab A_ab·g³
/// + 1e-6), α = 0 where g = 0, w_k = Σ_ij ReLU(g)·α.
pub fn pytorch_grad_cam_plus_plus_weights(a: &[f64], g: &[f64], positions: usize) -> Vec<f64> {
    const EPS: f64 = 1e-6;
    a.chunks(positions)
        .enumerate()
        .map(|(k, ak)| {
            let channel_sum: f64 = ak.iter().sum();
            (k * positions..(k + 1) * positions)
                .map(|e| {
                    let (g2, g3) = (g[e] * g[e], g[e] * g[e] * g[e]);
                    let alpha = if g[e] != 0.0 {
                        g2 / (2.0 * g2 + channel_sum * g3 + EPS)
                    } else {
                        0.0
                    };
                    g[e].max(0.0) * alpha
                })
                .sum()
        })
        .collect()
}

/// The map Σ_k w_k A^k, through a ReLU for every method but CAM.
fn explanation(method: Method, a: &[f64], weights: Vec<f64>, h: usize, w: usize) -> Explanation {
    let mut map = weighted_sum(a, &weights, h * w);
    if method != Method::Cam {
        map.iter_mut().for_each(|v| *v = v.max(0.0));
    }
    Explanation {
        map,
        height: h,
        width: w,
        weights,
        diagonal: None,
    }
}

/// The closed-form maps (CAM, Grad-CAM, Grad-CAM++) of a batch of images [B, 1, 28, 28], image
/// i explained for `classes[i]`, for each (method, layer) of `columns`: result\[column\]\[image\].
/// The same maps [`Target::explain`] draws one image at a time, from one forward pass and one
/// backward pass per (layer, score) for the whole batch: in eval mode the images do not
/// interact, so the gradient of Σᵢ Yᵢ at image i is image i's own ∂Yᵢ/∂A.
pub fn explain_batch(
    model: &Classifier,
    images: &Tensor,
    classes: &[usize],
    score: Score,
    columns: &[(Method, usize)],
) -> Result<Vec<Vec<Explanation>>> {
    for &(method, layer) in columns {
        if method.is_exact() || !method.applies_to(layer) || (layer >= 3 && layer != INPUT_LAYER) {
            return Err(Error::argument(
                "cam",
                format!(
                    "explain_batch draws the closed-form maps only, each where it applies; got \
                     {} at layer {layer}",
                    method.name()
                ),
            ));
        }
    }
    let b = images.dim(0)?;
    let activations = no_grad(|| model.activations(images, &mut Ctx::eval()))?;
    // ∂(Σᵢ Yᵢ)/∂A for a layer and score, computed once however many columns need it.
    let mut gradients: Vec<((usize, Score), Vec<f64>)> = Vec::new();
    let mut gradient = |layer: usize, score: Score| -> Result<Vec<f64>> {
        if let Some((_, g)) = gradients.iter().find(|(key, _)| *key == (layer, score)) {
            return Ok(g.clone());
        }
        let a = activations[layer].detach().requires_grad_();
        let logits = model.logits_from(layer, &a, &mut Ctx::eval())?;
        let y = score.of_logits_per_row(&logits, classes)?.sum_all()?;
        let g = grad(&[&y], &[&a], None, false)?[0].to_vec_f64();
        gradients.push(((layer, score), g.clone()));
        Ok(g)
    };
    let mut out = Vec::with_capacity(columns.len());
    for &(method, layer) in columns {
        if method.is_input_level() {
            // One image at a time: SmoothGrad's copies already fill a batch.
            let maps = (0..b)
                .map(|i| {
                    let target = Target {
                        model,
                        layer,
                        class: classes[i],
                        score,
                    };
                    target.explain(&images.narrow(0, i, 1)?, method)
                })
                .collect::<Result<Vec<_>>>()?;
            out.push(maps);
            continue;
        }
        let a = &activations[layer];
        let (k, h, w) = (a.dim(1)?, a.dim(2)?, a.dim(3)?);
        let per_image = k * h * w;
        let values = a.to_vec_f64();
        let g = match method {
            Method::GradCam | Method::LayerCam => Some(gradient(layer, score)?),
            Method::GradCamPlusPlus | Method::GradCamPlusPlusPytorchGradCam => {
                Some(gradient(layer, score.closed_form_base())?)
            }
            _ => None,
        };
        let maps = (0..b)
            .map(|i| {
                let ai = &values[i * per_image..(i + 1) * per_image];
                let gi = g.as_ref().map(|g| &g[i * per_image..(i + 1) * per_image]);
                let weights = match (method, gi) {
                    (Method::GradCam, Some(gi)) => grad_cam_weights(gi, h * w),
                    (Method::GradCamPlusPlus, Some(gi)) => {
                        closed_form_plus_plus_weights(ai, gi, h * w)
                    }
                    (Method::GradCamPlusPlusPytorchGradCam, Some(gi)) => {
                        pytorch_grad_cam_plus_plus_weights(ai, gi, h * w)
                    }
                    (Method::LayerCam, Some(gi)) => return Ok(layer_cam(ai, gi, h, w)),
                    (Method::ScoreCam, _) => score_cam_weights(
                        model,
                        &images.narrow(0, i, 1)?,
                        ai,
                        (k, h, w),
                        score,
                        classes[i],
                    )?,
                    _ => cam_weights(model, classes[i], k),
                };
                Ok(explanation(method, ai, weights, h, w))
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(maps);
    }
    Ok(out)
}

/// Σ_k w_k A^k for A [K, positions] (row-major).
fn weighted_sum(a: &[f64], weights: &[f64], positions: usize) -> Vec<f64> {
    let mut map = vec![0.0; positions];
    for (ak, wk) in a.chunks(positions).zip(weights) {
        for (m, v) in map.iter_mut().zip(ak) {
            *m += wk * v;
        }
    }
    map
}

/// Grad-CAM++'s α for every element of A (paper eq. 19), from the diagonal derivatives:
///
///   α^k_ij = ∂²Y/∂(A^k_ij)² / (2·∂²Y/∂(A^k_ij)² + Σ_ab A^k_ab · ∂³Y/∂(A^k_ij)³).
///
/// A zero denominator gives α = 0, as pytorch-grad-cam chooses: the element then adds nothing
/// to w_k. (When both the numerator and the denominator vanish, as with the raw logit of a
/// piecewise-linear network where every second and third derivative is 0, α has no value at
/// all; 0 says "no evidence", and the map is empty: the reason the paper introduced exp.)
///
/// Under the paper's assumption (Y = exp(S), S piecewise linear) α = 1/(2 + Σ_ab A_ab·g), in
/// [0, ½] wherever g = ∂S/∂a > 0, the only elements w_k sees. With the true derivatives of a
/// smooth network the denominator can cross zero there too, and α leaves that range, even in
/// sign.
pub fn plus_plus_alpha(a: &[f64], second: &[f64], third: &[f64], positions: usize) -> Vec<f64> {
    a.chunks(positions)
        .enumerate()
        .flat_map(|(k, ak)| {
            let channel_sum: f64 = ak.iter().sum();
            (k * positions..(k + 1) * positions).map(move |e| {
                let denominator = 2.0 * second[e] + channel_sum * third[e];
                if denominator != 0.0 {
                    second[e] / denominator
                } else {
                    0.0
                }
            })
        })
        .collect()
}

/// w_k = Σ_ij α^k_ij · ReLU(∂Y/∂A^k_ij) (paper eq. 5 with eq. 20's ReLU).
pub fn plus_plus_weights_from_alpha(alpha: &[f64], first: &[f64], positions: usize) -> Vec<f64> {
    alpha
        .chunks(positions)
        .zip(first.chunks(positions))
        .map(|(ak, gk)| ak.iter().zip(gk).map(|(a, g)| a * g.max(0.0)).sum())
        .collect()
}

/// Grad-CAM++'s channel weights from the diagonal derivatives (paper eqs. 19, 5, 20).
fn plus_plus_weights(
    a: &[f64],
    first: &[f64],
    second: &[f64],
    third: &[f64],
    positions: usize,
) -> Vec<f64> {
    plus_plus_weights_from_alpha(
        &plus_plus_alpha(a, second, third, positions),
        first,
        positions,
    )
}

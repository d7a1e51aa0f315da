//! The exact diagonal derivatives of a class score for the classifier, by univariate Taylor
//! mode ("jets") along each element of the activation map, with the linear rest of each order
//! folded into reverse-mode adjoints.
//!
//! **Jets.** Move the map along one element only, A + t·e_i. Every tensor of the network after
//! the layer becomes a truncated power series in t, h(t) = h₀ + h₁t + h₂t² + h₃t³ + O(t⁴), and
//! so does the score: Y(t) = Y₀ + Y₁t + Y₂t² + Y₃t³, whence the three numbers Grad-CAM++ needs,
//!
//!   ∂Y/∂a_i = Y₁,   ∂²Y/∂a_i² = 2·Y₂,   ∂³Y/∂a_i³ = 6·Y₃.
//!
//! h₀ is the ordinary forward value, the same for every direction: it is computed once per
//! image. The coefficients follow from those of the layer's input x by
//!
//! - a linear map L (convolution, batch norm in evaluation, pooling, the head), whose constant
//!   part (bias, shift) moves h₀ only: h_m = L(x_m) for m = 1, 2, 3;
//! - an elementwise σ, with σ', σ'', σ''' taken at x₀:
//!   h₁ = σ'·x₁,
//!   h₂ = σ'·x₂ + σ''·x₁²/2,
//!   h₃ = σ'·x₃ + σ''·x₁x₂ + σ'''·x₁³/6;
//! - a max-pooling: each window's winner is chosen by x₀ (ties broken as the engine's
//!   max_pool2d breaks them, read from its own gradient), and its coefficients pass through;
//! - the score, from the logits' series z_c(t): Y = z_c itself; Y = exp(z_c) by the series of
//!   exp, exp(u)ₘ = e^{u₀}·(1, u₁, u₂ + u₁²/2, u₃ + u₁u₂ + u₁³/6)ₘ; Y = softmax(z)_c = E_c/Σ_j E_j
//!   with E_j = exp(z_j − max z₀) by the same series and the quotient q = a/b from b·q = a:
//!   q₀ = a₀/b₀, q_m = (a_m − Σ_{k<m} q_k·b_{m−k})/b₀.
//!
//! The activations' derivatives, as the engine differentiates its own ops: ReLU: 1\[x > 0\],
//! 0, 0; ELU(α): 1 for x > 0, else α·eˣ, and σ'' = σ''' = α·eˣ·1\[x ≤ 0\] (the engine's ELU is
//! relu(x) + α(e^min(x,0) − 1), its derivative α at 0); softplus: s = sigmoid(x), s(1 − s),
//! s(1 − s)(1 − 2s).
//!
//! **Adjoints for what is linear.** In each order m ≥ 1 the series obeys
//! h_m = σ'·x_m + s_m at every activation, with a *source* s_m that involves lower orders only
//! (s₁ = 0, s₂ = σ''x₁²/2, s₃ = σ''x₁x₂ + σ'''x₁³/6), and h_m = L(x_m) elsewhere. Order m is
//! therefore carried to the logits by the network's first-order Jacobian, so with g_j^c =
//! ∂z_c/∂(output of activation j) at h₀ (one reverse sweep per logit the score needs, once per
//! image) and g_0^c = ∂z_c/∂A,
//!
//!   z_{c,1} = g_0^c\[i\],   z_{c,m} = Σ_j ⟨g_j^c, s_{m,j}⟩  (m = 2, 3).
//!
//! Only x₁ and x₂ are pushed forward, and only as far as the last activation with σ'' ≠ 0;
//! x₃ never is. In a ReLU network every source vanishes: the derivatives come from the
//! gradients of the logits alone (z_{c,2} = z_{c,3} = 0), with no push at all.
//!
//! **Cones.** A direction moves one element; a k×k convolution spreads it over a window k − 1
//! larger, a pooling halves the window. Each direction's coefficients are kept on its window
//! only, and all channels of one start position share a window, so they are pushed together and
//! the per-position factors (σ', σ''/2, the adjoints) are gathered once for them. A convolution
//! on a window is computed as the stride-1 *transposed* convolution with the flipped weight:
//! it multiplies only the taps that land on the window (a convolution padded by k − 1 would
//! multiply its zero padding too, twice the work on a 5x5 window). Window cells outside the map
//! do not exist in the network: the factors gathered there are 0, and a convolution that would
//! read such cells zeroes them first.
//!
//! **Cost.** At conv1 (6,272 live elements of the course's classifier) a ReLU network needs
//! only the adjoints; a smooth one pushes x₁ and x₂ through conv2's second convolution and both
//! of conv3's, which is 2·4.7 M multiply-adds per element, almost all of the time.
//!
//! The network read is the one [`Classifier::logits_from`] runs (blocks of convolution, batch
//! norm and activation layers, 2x2 max-pooling after all but the last block, global average
//! pooling and the linear head); its layers are found by downcasting the blocks' modules.

use crate::exact::Diagonal;
use crate::maps::Score;
use ferrograd_engine::{
    grad, grad_with, no_grad, ConvTranspose2dParams, Error, GradModeGuard, GradOptions, Result,
    Tensor,
};
use ferrograd_models::classifier::Classifier;
use ferrograd_nn::nn::{Activation, BatchNorm2d, Conv2d, Ctx, Linear, Module};
use std::any::Any;
use std::sync::Arc;

const OP: &str = "taylor";

/// Directions pushed together (a chunk of positions, all channels of each).
pub const TAYLOR_CHUNK: usize = 256;

/// One step of the network after the expansion map.
enum Step<'a> {
    Conv(&'a Conv2d),
    BatchNorm(&'a BatchNorm2d),
    Act(Activation),
    /// Max-pooling with kernel = stride, no padding.
    MaxPool(usize),
    GlobalAvgPool,
    Linear(&'a Linear),
}

impl<'a> Step<'a> {
    fn of(layer: &'a dyn Module) -> Result<Step<'a>> {
        let any: &dyn Any = layer;
        if let Some(conv) = any.downcast_ref::<Conv2d>() {
            let p = conv.params;
            if p.stride != (1, 1) || p.dilation != (1, 1) || p.groups != 1 {
                return Err(Error::argument(
                    OP,
                    format!(
                        "convolutions of stride 1, dilation 1 and one group only, got {:?}, {:?} \
                         and {}",
                        p.stride, p.dilation, p.groups
                    ),
                ));
            }
            Ok(Step::Conv(conv))
        } else if let Some(bn) = any.downcast_ref::<BatchNorm2d>() {
            Ok(Step::BatchNorm(bn))
        } else if let Some(&act) = any.downcast_ref::<Activation>() {
            match act {
                Activation::Relu | Activation::Elu(_) | Activation::Softplus => Ok(Step::Act(act)),
                other => Err(Error::argument(
                    OP,
                    format!("no jet rule for the activation {other:?} (relu, elu, softplus)"),
                )),
            }
        } else {
            Err(Error::argument(
                OP,
                "the blocks may hold convolutions, batch norms and activations only",
            ))
        }
    }
}

/// The classifier from a layer's activation map on, as [`Classifier::logits_from`] runs it.
struct Network<'a> {
    /// The max-pooling kernel that follows the map directly, if one does.
    lead_pool: Option<usize>,
    steps: Vec<Step<'a>>,
}

impl<'a> Network<'a> {
    fn after(model: &'a Classifier, layer: usize) -> Result<Network<'a>> {
        let blocks = model.blocks.len();
        if layer >= blocks {
            return Err(Error::argument(OP, format!("layer {layer} does not exist")));
        }
        let mut lead_pool = None;
        let mut steps = Vec::new();
        for i in layer..blocks {
            if i > layer {
                for l in &model.blocks[i].layers {
                    steps.push(Step::of(l.as_ref())?);
                }
            }
            if i + 1 < blocks {
                if i == layer {
                    lead_pool = Some(2);
                } else {
                    steps.push(Step::MaxPool(2));
                }
            }
        }
        steps.push(Step::GlobalAvgPool);
        steps.push(Step::Linear(&model.head));
        Ok(Network { lead_pool, steps })
    }
}

/// For a max-pooling of `x` [1, C, H, W] (kernel = stride = k): the flat index in x of each
/// output's winner, read from the engine's own gradient (each output routes its tag there).
fn winners(x: &Tensor, k: usize) -> Result<Vec<usize>> {
    let _recording = GradModeGuard::new(true);
    let x = x.detach().requires_grad_();
    let pooled = x.max_pool2d(k, k, 0)?;
    let n = pooled.numel();
    let tags = Tensor::arange(1.0, (n + 1) as f64, 1.0, x.dtype())?
        .to(x.device())?
        .reshape(pooled.shape())?;
    let routed = grad_with(
        &[&pooled],
        &[&x],
        GradOptions {
            grad_outputs: Some(&[&tags]),
            ..Default::default()
        },
    )?
    .remove(0)
    .expect("the pooling depends on its input")
    .to_vec_f64();
    let mut out = vec![usize::MAX; n];
    for (i, &t) in routed.iter().enumerate() {
        if t != 0.0 {
            out[t as usize - 1] = i;
        }
    }
    if out.contains(&usize::MAX) {
        return Err(Error::argument(OP, "a pooling window has no winner (NaN?)"));
    }
    Ok(out)
}

/// Batch norm's linear part in evaluation, γ/√(σ² + ε), as [1, C, 1, 1].
fn scale_of(bn: &BatchNorm2d) -> Result<Tensor> {
    let c = bn.weight.numel();
    bn.weight
        .mul(&bn.running_var.add_scalar(bn.eps)?.rsqrt()?)?
        .reshape(&[1, c, 1, 1])
}

/// For a convolution weight W [C_out, C_in, k_h, k_w] (times `scale` [1, C_out, 1, 1] per
/// output channel), the weight W' [C_in, C_out, k_h, k_w] of the stride-1 transposed
/// convolution equal to the *full* convolution with W (padding k − 1, every output the input
/// touches): W'[c, o, a, b] = W[o, c, k_h − 1 − a, k_w − 1 − b]. A transposed convolution
/// multiplies only the taps that land on the input (each input cell spreads over its k×k
/// footprint), where the full convolution would multiply the zero padding too.
fn full_conv_weight(weight: &Tensor, scale: Option<&Tensor>) -> Result<Tensor> {
    let [o, c, kh, kw] = [0, 1, 2, 3].map(|i| weight.shape()[i]);
    let weight = match scale {
        Some(s) => weight.mul(&s.reshape(&[o, 1, 1, 1])?)?,
        None => weight.detach(),
    };
    let mut idx = Vec::with_capacity(o * c * kh * kw);
    for ci in 0..c {
        for oi in 0..o {
            for a in 0..kh {
                for b in 0..kw {
                    idx.push(((oi * c + ci) * kh + kh - 1 - a) * kw + kw - 1 - b);
                }
            }
        }
    }
    weight.gather_flat(Arc::new(idx), &[c, o, kh, kw])
}

/// `t` flattened with one 0 appended: the target of gathers whose missing cells read 0.
fn with_zero(t: &Tensor) -> Result<Tensor> {
    t.reshape(&[t.numel()])?.pad(&[(0, 1)])
}

/// σ'(x₀), σ''(x₀), σ'''(x₀), the last two `None` where they vanish everywhere.
fn derivatives(act: Activation, x0: &Tensor) -> Result<(Tensor, Option<Tensor>, Option<Tensor>)> {
    let positive = x0.ones_like().relu_backward(x0)?; // 1[x > 0]
    match act {
        Activation::Relu => Ok((positive, None, None)),
        Activation::Elu(alpha) => {
            let rest = positive.neg()?.add_scalar(1.0)?; // 1[x ≤ 0]
                                                         // α·e^min(x, 0)·1[x ≤ 0]
            let curve = x0
                .relu_backward(&rest)?
                .exp()?
                .mul_scalar(alpha)?
                .mul(&rest)?;
            Ok((positive.add(&curve)?, Some(curve.clone()), Some(curve)))
        }
        Activation::Softplus => {
            let s = x0.sigmoid()?;
            let d2 = s.mul(&s.neg()?.add_scalar(1.0)?)?;
            let d3 = d2.mul(&s.mul_scalar(-2.0)?.add_scalar(1.0)?)?;
            Ok((s, Some(d2), Some(d3)))
        }
        other => Err(Error::argument(
            OP,
            format!("no jet rule for the activation {other:?}"),
        )),
    }
}

/// What an activation contributes, at h₀.
struct ActAt {
    /// (C, H, W) of its map.
    shape: (usize, usize, usize),
    /// σ'(x₀), flat with a 0 appended.
    slope: Tensor,
    /// σ''(x₀)/2, flat with a 0 appended; `None` for a piecewise-linear activation.
    half_curve: Option<Tensor>,
    /// P = g_j ⊙ σ''/2 and R = g_j ⊙ σ'''/6 for each logit of the score: [C·H·W + 1, logits]
    /// (a zero row last). `None` where σ'' (σ''') vanishes.
    p: Option<Tensor>,
    r: Option<Tensor>,
}

/// What each step needs from h₀.
enum Prepared {
    Nothing,
    /// A convolution's linear part, as the weight [C_in, C_out, k, k] of the transposed
    /// convolution that computes it on a window (see [`Jets::conv`]), with the scale of a batch
    /// norm right after it folded in.
    Conv(Tensor),
    /// Batch norm's linear part γ/√(σ² + ε), [1, C, 1, 1] (where no convolution precedes it).
    Scale(Tensor),
    Act(ActAt),
    /// The pooling's winners (flat in its input [C, H, W]), its input's (H, W) and kernel.
    Pool {
        winners: Vec<usize>,
        input: (usize, usize),
        kernel: usize,
    },
}

/// Everything the directions share: the expansion point.
struct Point {
    /// (K, H, W) of the map the jets start from (A, or A pooled by the lead pooling).
    start: (usize, usize, usize),
    /// Which element of A each start element is (the lead pooling's winners).
    from_a: Option<Vec<usize>>,
    /// The logits at A.
    logits: Vec<f64>,
    /// ∂z_c/∂(start map) for each logit of the score, \[logit\]\[element\].
    first: Vec<Vec<f64>>,
    prepared: Vec<Prepared>,
}

fn expand(net: &Network, a: &Tensor, needed: &[usize]) -> Result<Point> {
    let _recording = GradModeGuard::new(true);
    let reps = needed.len();
    let base = a.detach();
    let mut shape = base.shape().to_vec();
    shape[0] = reps;
    let copies = base.broadcast_to(&shape)?.detach().requires_grad_();
    let ctx = &mut Ctx::eval();
    let (start, from_a) = match net.lead_pool {
        Some(k) => (copies.max_pool2d(k, k, 0)?, Some(winners(&base, k)?)),
        None => (copies.clone(), None),
    };
    let mut h = start.clone();
    let mut outputs = Vec::new();
    let mut prepared = Vec::new();
    for step in &net.steps {
        prepared.push(match step {
            Step::Conv(conv) => {
                h = conv.forward(&h, ctx)?;
                Prepared::Nothing
            }
            Step::BatchNorm(bn) => {
                h = bn.forward(&h, ctx)?;
                Prepared::Scale(no_grad(|| scale_of(bn))?)
            }
            Step::Act(act) => {
                let x0 = h.narrow(0, 0, 1)?.detach();
                h = act.forward(&h, ctx)?;
                outputs.push(h.clone());
                let (d1, d2, d3) = no_grad(|| derivatives(*act, &x0))?;
                let shape = (x0.dim(1)?, x0.dim(2)?, x0.dim(3)?);
                // P and R wait for the adjoints below.
                Prepared::Act(ActAt {
                    shape,
                    slope: d1,
                    half_curve: d2,
                    p: None,
                    r: d3,
                })
            }
            Step::MaxPool(k) => {
                let x0 = h.narrow(0, 0, 1)?.detach();
                let w = winners(&x0, *k)?;
                h = h.max_pool2d(*k, *k, 0)?;
                Prepared::Pool {
                    winners: w,
                    input: (x0.dim(2)?, x0.dim(3)?),
                    kernel: *k,
                }
            }
            Step::GlobalAvgPool => {
                h = h.global_avg_pool2d()?;
                Prepared::Nothing
            }
            Step::Linear(linear) => {
                h = linear.forward(&h, ctx)?;
                Prepared::Nothing
            }
        });
    }
    if h.rank() != 2 || h.dim(0)? != reps {
        return Err(Error::shape(
            OP,
            format!("the logits must be [{reps}, classes], got {:?}", h.shape()),
        ));
    }
    let classes = h.dim(1)?;
    let picks: Vec<usize> = needed
        .iter()
        .enumerate()
        .map(|(r, &c)| r * classes + c)
        .collect();
    let picked = h.gather_flat(Arc::new(picks), &[reps])?.sum_all()?;
    let mut inputs = vec![&start];
    inputs.extend(outputs.iter());
    let mut grads = grad(&[&picked], &inputs, None, false)?.into_iter();
    let first_grad = grads.next().expect("one gradient per input");
    let per = first_grad.numel() / reps;
    let first_values = first_grad.to_vec_f64();
    let first = first_values.chunks(per).map(<[f64]>::to_vec).collect();
    no_grad(|| -> Result<()> {
        for (prep, adjoint) in prepared
            .iter_mut()
            .filter(|p| matches!(p, Prepared::Act(_)))
            .zip(grads)
        {
            let Prepared::Act(at) = prep else {
                unreachable!("filtered")
            };
            let n = at.slope.numel();
            // g ⊙ factor, [reps, C, H, W] → [C·H·W + 1, reps].
            let rows = |factor: &Tensor, scale: f64| -> Result<Tensor> {
                adjoint
                    .mul(factor)?
                    .mul_scalar(scale)?
                    .reshape(&[reps, n])?
                    .transpose(0, 1)?
                    .pad(&[(0, 1), (0, 0)])
            };
            at.p = at.half_curve.as_ref().map(|d2| rows(d2, 0.5)).transpose()?;
            at.r = at.r.as_ref().map(|d3| rows(d3, 1.0 / 6.0)).transpose()?;
            at.half_curve = at
                .half_curve
                .as_ref()
                .map(|d2| with_zero(&d2.mul_scalar(0.5)?))
                .transpose()?;
            at.slope = with_zero(&at.slope)?;
        }
        Ok(())
    })?;
    // Each convolution's weight for the jets, a batch norm that follows folded in.
    no_grad(|| -> Result<()> {
        for i in 0..net.steps.len() {
            if let Step::Conv(conv) = &net.steps[i] {
                let scale = match prepared.get(i + 1) {
                    Some(Prepared::Scale(scale)) => Some(scale.clone()),
                    _ => None,
                };
                prepared[i] = Prepared::Conv(full_conv_weight(&conv.weight, scale.as_ref())?);
                if scale.is_some() {
                    prepared[i + 1] = Prepared::Nothing;
                }
            }
        }
        Ok(())
    })?;
    let start_shape = (start.dim(1)?, start.dim(2)?, start.dim(3)?);
    Ok(Point {
        start: start_shape,
        from_a,
        logits: h.narrow(0, 0, 1)?.to_vec_f64(),
        first,
        prepared,
    })
}

/// The coefficients x₁, x₂ of a chunk of directions, each kept on its window. Directions come
/// in groups, one per start position: direction g·K + k moves channel k at position g, and the
/// group's window sits at `origins[g]` (top-left; it may reach past the map's edges).
struct Jets {
    x1: Tensor,
    x2: Option<Tensor>,
    /// Directions per group (the start map's channels).
    per_group: usize,
    origins: Vec<(isize, isize)>,
    /// (h, w) of every window.
    size: (usize, usize),
    /// (H, W) of the map.
    map: (usize, usize),
    /// Whether cells outside the map may hold values (after a convolution on the window).
    stray: bool,
}

impl Jets {
    /// The first-order seeds of a chunk: one 1x1 window per start position (flat index into the
    /// H·W map) and one direction per channel, x₁ = e_k; x₂ is zero until an activation. The
    /// tensor takes the dtype and device of `like`.
    fn seeds(
        positions: &[usize],
        channels: usize,
        (height, width): (usize, usize),
        like: &Tensor,
    ) -> Result<Jets> {
        let k = channels;
        let groups = positions.len();
        let mut one_hot = vec![0.0; groups * k * k];
        for d in 0..groups * k {
            one_hot[d * k + d % k] = 1.0;
        }
        let x1 =
            Tensor::from_f64s(&one_hot, &[groups * k, k, 1, 1], like.dtype())?.to(like.device())?;
        Ok(Jets {
            x1,
            x2: None,
            per_group: k,
            origins: positions
                .iter()
                .map(|&p| ((p / width) as isize, (p % width) as isize))
                .collect(),
            size: (1, 1),
            map: (height, width),
            stray: false,
        })
    }

    fn groups(&self) -> usize {
        self.origins.len()
    }

    /// The map position of cell (u, v) of group g's window, if it lies in the map.
    fn position(&self, g: usize, u: usize, v: usize) -> Option<usize> {
        let (oy, ox) = self.origins[g];
        let (y, x) = (oy + u as isize, ox + v as isize);
        let (h, w) = (self.map.0 as isize, self.map.1 as isize);
        (0 <= y && y < h && 0 <= x && x < w).then(|| (y * w + x) as usize)
    }

    /// A per-position factor map (C channels, flat, 0 appended) on each group's window:
    /// [groups, 1, C, h, w], to broadcast over the group's directions.
    fn factor(&self, flat: &Tensor, channels: usize) -> Result<Tensor> {
        let (h, w) = self.size;
        let plane = self.map.0 * self.map.1;
        let missing = channels * plane;
        let mut idx = Vec::with_capacity(self.groups() * channels * h * w);
        for g in 0..self.groups() {
            let cells: Vec<Option<usize>> =
                (0..h * w).map(|c| self.position(g, c / w, c % w)).collect();
            for ch in 0..channels {
                idx.extend(cells.iter().map(|p| p.map_or(missing, |p| ch * plane + p)));
            }
        }
        flat.gather_flat(Arc::new(idx), &[self.groups(), 1, channels, h, w])
    }

    /// Rows of a [C·H·W + 1, logits] map on each group's window: [groups, C·h·w, logits].
    fn rows(&self, table: &Tensor, channels: usize) -> Result<Tensor> {
        let (h, w) = self.size;
        let logits = table.dim(1)?;
        let plane = self.map.0 * self.map.1;
        let missing = channels * plane;
        let mut idx = Vec::with_capacity(self.groups() * channels * h * w * logits);
        for g in 0..self.groups() {
            let cells: Vec<Option<usize>> =
                (0..h * w).map(|c| self.position(g, c / w, c % w)).collect();
            for ch in 0..channels {
                for p in &cells {
                    let row = p.map_or(missing, |p| ch * plane + p);
                    idx.extend((0..logits).map(|l| row * logits + l));
                }
            }
        }
        table.gather_flat(Arc::new(idx), &[self.groups(), channels * h * w, logits])
    }

    /// x ⊙ factor, the factor [groups, 1, C, h, w] shared by a group's directions.
    fn times(&self, x: &Tensor, factor: &Tensor) -> Result<Tensor> {
        let shape = x.shape().to_vec();
        let (c, h, w) = (shape[1], shape[2], shape[3]);
        x.reshape(&[self.groups(), self.per_group, c, h, w])?
            .mul(factor)?
            .reshape(&shape)
    }

    /// Σ over each direction's window of x ⊙ rows: [groups·K, C, h, w] → [groups, K, logits].
    fn dot(&self, x: &Tensor, rows: &Tensor) -> Result<Tensor> {
        let per = x.numel() / x.dim(0)?;
        x.reshape(&[self.groups(), self.per_group, per])?
            .matmul(rows)
    }

    /// Zeroes the cells outside the map (before a step that would read them).
    fn clean(&mut self) -> Result<()> {
        if !self.stray {
            return Ok(());
        }
        let inside = with_zero(&Tensor::full_on(
            &[1, self.map.0, self.map.1],
            1.0,
            self.x1.dtype(),
            self.x1.device(),
        )?)?;
        let mask = self.factor(&inside, 1)?;
        let (h, w) = self.size;
        let mask = mask.reshape(&[self.groups(), 1, 1, h, w])?;
        self.x1 = self.times(&self.x1, &mask)?;
        self.x2 = self.x2.as_ref().map(|x| self.times(x, &mask)).transpose()?;
        self.stray = false;
        Ok(())
    }

    /// The linear part of a stride-1 convolution: the window grows by k − 1, every cell the
    /// input touches, computed as the transposed convolution with `weight` (see
    /// [`full_conv_weight`]).
    fn conv(&mut self, conv: &Conv2d, weight: &Tensor) -> Result<()> {
        self.clean()?;
        let (kh, kw) = (conv.weight.dim(2)?, conv.weight.dim(3)?);
        let (ph, pw) = conv.params.padding;
        let params = ConvTranspose2dParams::default();
        self.x1 = self.x1.conv_transpose2d(weight, None, params)?;
        self.x2 = self
            .x2
            .as_ref()
            .map(|x| x.conv_transpose2d(weight, None, params))
            .transpose()?;
        for o in &mut self.origins {
            o.0 += ph as isize - (kh as isize - 1);
            o.1 += pw as isize - (kw as isize - 1);
        }
        self.size = (self.size.0 + kh - 1, self.size.1 + kw - 1);
        self.map = (self.map.0 + 2 * ph + 1 - kh, self.map.1 + 2 * pw + 1 - kw);
        self.stray = true;
        Ok(())
    }

    /// Max-pooling by h₀'s winners: each output cell takes its winner's coefficients.
    fn pool(&mut self, winners: &[usize], input: (usize, usize), k: usize) -> Result<()> {
        let (h, w) = self.size;
        let c = self.x1.dim(1)?;
        let out_map = (input.0 / k, input.1 / k);
        let span = |o: isize, len: usize| {
            ((o + len as isize - 1).div_euclid(k as isize) - o.div_euclid(k as isize) + 1) as usize
        };
        let size = self.origins.iter().fold((1, 1), |s, &(oy, ox)| {
            (s.0.max(span(oy, h)), s.1.max(span(ox, w)))
        });
        let origins: Vec<(isize, isize)> = self
            .origins
            .iter()
            .map(|&(oy, ox)| (oy.div_euclid(k as isize), ox.div_euclid(k as isize)))
            .collect();
        let (in_plane, out_plane) = (input.0 * input.1, out_map.0 * out_map.1);
        let window = c * h * w;
        let directions = self.x1.dim(0)?;
        let missing = directions * window;
        let mut idx = Vec::with_capacity(directions * c * size.0 * size.1);
        for (g, &(py, px)) in origins.iter().enumerate() {
            // The source cell, within a direction's window, of each output cell.
            let mut cells = Vec::with_capacity(c * size.0 * size.1);
            for ch in 0..c {
                for u in 0..size.0 {
                    for v in 0..size.1 {
                        let (r, s) = (py + u as isize, px + v as isize);
                        let inside =
                            0 <= r && r < out_map.0 as isize && 0 <= s && s < out_map.1 as isize;
                        let cell = inside.then(|| {
                            let won = winners[ch * out_plane + r as usize * out_map.1 + s as usize];
                            let (wy, wx) = ((won % in_plane) / input.1, won % input.1);
                            let (oy, ox) = self.origins[g];
                            let (dy, dx) = (wy as isize - oy, wx as isize - ox);
                            (0 <= dy && dy < h as isize && 0 <= dx && dx < w as isize)
                                .then(|| ch * h * w + dy as usize * w + dx as usize)
                        });
                        cells.push(cell.flatten());
                    }
                }
            }
            for k in 0..self.per_group {
                let base = (g * self.per_group + k) * window;
                idx.extend(cells.iter().map(|p| p.map_or(missing, |p| base + p)));
            }
        }
        let idx = Arc::new(idx);
        let shape = [directions, c, size.0, size.1];
        self.x1 = with_zero(&self.x1)?.gather_flat(idx.clone(), &shape)?;
        self.x2 = self
            .x2
            .as_ref()
            .map(|x| with_zero(x)?.gather_flat(idx.clone(), &shape))
            .transpose()?;
        self.origins = origins;
        self.size = size;
        self.map = out_map;
        self.stray = false;
        Ok(())
    }
}

/// Adds `term` to an optional running sum.
fn accumulate(sum: &mut Option<Tensor>, term: Tensor) -> Result<()> {
    *sum = Some(match sum.take() {
        Some(s) => s.add(&term)?,
        None => term,
    });
    Ok(())
}

/// z₂ and z₃ of the needed logits for a chunk of start positions, each [groups, K, logits].
fn push(
    net: &Network,
    point: &Point,
    positions: &[usize],
    dtype_of: &Tensor,
    last: usize,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let (k, height, width) = point.start;
    let mut jets = Jets::seeds(positions, k, (height, width), dtype_of)?;
    let (mut z2, mut z3) = (None, None);
    for (i, (step, prep)) in net
        .steps
        .iter()
        .zip(&point.prepared)
        .enumerate()
        .take(last + 1)
    {
        match (step, prep) {
            (Step::Conv(conv), Prepared::Conv(weight)) => jets.conv(conv, weight)?,
            (Step::BatchNorm(_), Prepared::Nothing) => {}
            (Step::BatchNorm(_), Prepared::Scale(scale)) => {
                jets.x1 = jets.x1.mul(scale)?;
                jets.x2 = jets.x2.as_ref().map(|x| x.mul(scale)).transpose()?;
            }
            (Step::Act(_), Prepared::Act(at)) => {
                let channels = at.shape.0;
                let square = at
                    .half_curve
                    .is_some()
                    .then(|| jets.x1.mul(&jets.x1))
                    .transpose()?;
                // Sources against the adjoints: z₂ += ⟨P, x₁²⟩, z₃ += ⟨P, 2x₁x₂⟩ + ⟨R, x₁³⟩.
                if let (Some(p), Some(sq)) = (&at.p, &square) {
                    let p = jets.rows(p, channels)?;
                    accumulate(&mut z2, jets.dot(sq, &p)?)?;
                    if let Some(x2) = &jets.x2 {
                        let cross = jets.dot(&jets.x1.mul(x2)?, &p)?.mul_scalar(2.0)?;
                        accumulate(&mut z3, cross)?;
                    }
                    if let Some(r) = &at.r {
                        let r = jets.rows(r, channels)?;
                        accumulate(&mut z3, jets.dot(&sq.mul(&jets.x1)?, &r)?)?;
                    }
                }
                if i == last {
                    break;
                }
                // h₁ = σ'x₁, h₂ = σ'x₂ + (σ''/2)·x₁².
                let slope = jets.factor(&at.slope, channels)?;
                let mut x2 = jets
                    .x2
                    .as_ref()
                    .map(|x| jets.times(x, &slope))
                    .transpose()?;
                if let (Some(hc), Some(sq)) = (&at.half_curve, &square) {
                    let term = jets.times(sq, &jets.factor(hc, channels)?)?;
                    accumulate(&mut x2, term)?;
                }
                jets.x1 = jets.times(&jets.x1, &slope)?;
                jets.x2 = x2;
                jets.stray = false;
            }
            (
                Step::MaxPool(_),
                Prepared::Pool {
                    winners,
                    input,
                    kernel,
                },
            ) => jets.pool(winners, *input, *kernel)?,
            _ => {
                return Err(Error::argument(
                    OP,
                    "no jet push past global pooling or the head before the last activation",
                ))
            }
        }
    }
    Ok((z2, z3))
}

/// exp of a series: e^{u₀}·(1, u₁, u₂ + u₁²/2, u₃ + u₁u₂ + u₁³/6).
fn exp_series(u: [f64; 4]) -> [f64; 4] {
    let e = u[0].exp();
    [
        e,
        e * u[1],
        e * (u[2] + u[1] * u[1] / 2.0),
        e * (u[3] + u[1] * u[2] + u[1] * u[1] * u[1] / 6.0),
    ]
}

/// a/b of two series: q₀ = a₀/b₀, q_m = (a_m − Σ_{k<m} q_k·b_{m−k})/b₀.
fn quotient_series(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    let mut q = [0.0; 4];
    for m in 0..4 {
        let known: f64 = (0..m).map(|k| q[k] * b[m - k]).sum();
        q[m] = (a[m] - known) / b[0];
    }
    q
}

/// Y's series from the series of the needed logits (`class` is the explained class's index
/// among them).
fn score_series(score: Score, class: usize, z: &[[f64; 4]]) -> [f64; 4] {
    match score {
        Score::Logit => z[class],
        Score::ExpLogit => exp_series(z[class]),
        Score::Softmax => {
            let top = z.iter().map(|s| s[0]).fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<[f64; 4]> = z
                .iter()
                .map(|&s| exp_series([s[0] - top, s[1], s[2], s[3]]))
                .collect();
            let mut total = [0.0; 4];
            for s in &e {
                for (t, v) in total.iter_mut().zip(s) {
                    *t += v;
                }
            }
            quotient_series(e[class], total)
        }
    }
}

/// The exact diagonals ∂Y/∂a, ∂²Y/∂a², ∂³Y/∂a³ of `score` for `class` at every element of
/// `a`, the activation map [1, K, H, W] of block `layer` of `model`, by the jets of the module
/// docs. Elements that lose their max-pooling window get 0 (every derivative is exactly 0
/// there). `on_chunk(done, total)` reports the directions pushed.
pub fn taylor_diagonal(
    model: &Classifier,
    layer: usize,
    class: usize,
    score: Score,
    a: &Tensor,
    on_chunk: &mut dyn FnMut(usize, usize),
) -> Result<Diagonal> {
    if a.rank() != 4 || a.dim(0)? != 1 {
        return Err(Error::shape(
            OP,
            format!(
                "the map must be one item, [1, K, H, W], got {:?}",
                a.shape()
            ),
        ));
    }
    let net = Network::after(model, layer)?;
    let classes = model.head.weight.dim(0)?;
    let (needed, class_at): (Vec<usize>, usize) = match score {
        Score::Logit | Score::ExpLogit => (vec![class], 0),
        Score::Softmax => ((0..classes).collect(), class),
    };
    let point = expand(&net, a, &needed)?;
    let (k, height, width) = point.start;
    let plane = height * width;
    let starts = k * plane;
    let reps = needed.len();
    // z_m for every start element, [element][logit][m].
    let mut z = vec![vec![[0.0; 4]; reps]; starts];
    for (e, zs) in z.iter_mut().enumerate() {
        for (r, s) in zs.iter_mut().enumerate() {
            *s = [point.logits[needed[r]], point.first[r][e], 0.0, 0.0];
        }
    }
    let last = net
        .steps
        .iter()
        .zip(&point.prepared)
        .rposition(|(_, p)| matches!(p, Prepared::Act(at) if at.half_curve.is_some()));
    if let Some(last) = last {
        let per_chunk = (TAYLOR_CHUNK / k).max(1);
        let positions: Vec<usize> = (0..plane).collect();
        let mut done = 0;
        no_grad(|| -> Result<()> {
            for chunk in positions.chunks(per_chunk) {
                let (z2, z3) = push(&net, &point, chunk, a, last)?;
                for (m, zm) in [(2, z2), (3, z3)] {
                    let Some(zm) = zm else { continue };
                    // [groups, K, logits]
                    let values = zm.to_vec_f64();
                    for (g, &p) in chunk.iter().enumerate() {
                        for ch in 0..k {
                            for r in 0..reps {
                                z[ch * plane + p][r][m] = values[(g * k + ch) * reps + r];
                            }
                        }
                    }
                }
                done += chunk.len() * k;
                on_chunk(done, starts);
            }
            Ok(())
        })?;
    } else {
        on_chunk(starts, starts);
    }
    let n = a.numel();
    let mut out = Diagonal {
        first: vec![0.0; n],
        second: vec![0.0; n],
        third: vec![0.0; n],
    };
    for (e, zs) in z.iter().enumerate() {
        let y = score_series(score, class_at, zs);
        let at = point.from_a.as_ref().map_or(e, |w| w[e]);
        out.first[at] = y[1];
        out.second[at] = 2.0 * y[2];
        out.third[at] = 6.0 * y[3];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrograd_engine::{Conv2dParams, DType, Rng};
    use ferrograd_nn::nn::Init;

    /// Two convolutions in a row on windows (the second must first zero the cells the first
    /// put outside the map) against the engine's convolutions of one-hot maps, at corners,
    /// edges and inside, with and without padding.
    #[test]
    fn convolutions_on_windows_equal_convolutions_of_the_whole_map() {
        let mut rng = Rng::new(3);
        let (k, height, width) = (2, 6, 5);
        for padding in [1, 0] {
            let params = Conv2dParams::default().padding(padding);
            let convs: Vec<Conv2d> = [(k, 3), (3, 2)]
                .into_iter()
                .map(|(i, o)| {
                    let c =
                        Conv2d::with_init(i, o, 3, params, false, Init::KaimingNormal, &mut rng)
                            .unwrap();
                    c.weight.cast_in_place(DType::F64).unwrap();
                    c
                })
                .collect();
            let positions = [0, 4, 7, 13, 29];
            let like = Tensor::zeros(&[1], DType::F64).unwrap();
            let mut jets = Jets::seeds(&positions, k, (height, width), &like).unwrap();
            for conv in &convs {
                jets.conv(conv, &full_conv_weight(&conv.weight, None).unwrap())
                    .unwrap();
            }
            let got = jets.x1.to_vec_f64();
            let (h, w) = jets.size;
            let channels = jets.x1.dim(1).unwrap();
            for (g, &p) in positions.iter().enumerate() {
                for ch in 0..k {
                    let mut map = vec![0.0; k * height * width];
                    map[ch * height * width + p] = 1.0;
                    let mut whole =
                        Tensor::from_f64s(&map, &[1, k, height, width], DType::F64).unwrap();
                    for conv in &convs {
                        whole = whole.conv2d(&conv.weight, None, params).unwrap();
                    }
                    let (oh, ow) = (whole.dim(2).unwrap(), whole.dim(3).unwrap());
                    assert_eq!(jets.map, (oh, ow));
                    let want = whole.to_vec_f64();
                    let d = g * k + ch;
                    let mut seen = 0.0;
                    for c in 0..channels {
                        for y in 0..oh {
                            for x in 0..ow {
                                let (u, v) = (
                                    y as isize - jets.origins[g].0,
                                    x as isize - jets.origins[g].1,
                                );
                                let inside =
                                    (0..h as isize).contains(&u) && (0..w as isize).contains(&v);
                                let value = if inside {
                                    got[((d * channels + c) * h + u as usize) * w + v as usize]
                                } else {
                                    0.0
                                };
                                let truth = want[(c * oh + y) * ow + x];
                                assert!(
                                    (value - truth).abs() < 1e-12,
                                    "padding {padding}, position {p}, channel {ch}: \
                                     ({c}, {y}, {x}) {value} vs {truth}"
                                );
                                seen += truth.abs();
                            }
                        }
                    }
                    assert!(
                        seen > 0.0,
                        "a direction that reaches nothing proves nothing"
                    );
                }
            }
        }
    }
}

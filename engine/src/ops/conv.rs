//! 2-D convolution and transposed convolution, with stride, padding, dilation and groups.
//!
//! Three primitives over one [`ConvGeometry`], closed under differentiation. With y = conv(x, w):
//!
//! | primitive                    | value               | ∂/∂(first)             | ∂/∂(second)             |
//! |------------------------------|---------------------|------------------------|-------------------------|
//! | `Conv(x, w)`                 | y                   | `InputGrad(G, w)`      | `WeightGrad(x, G)`      |
//! | `InputGrad(dy, w)` (= conv_transpose) | dx        | `Conv(G, w)`           | `WeightGrad(G, dy)`     |
//! | `WeightGrad(x, dy)`          | dw                  | `InputGrad(dy, G)`     | `Conv(x, G)`            |
//!
//! (G is the incoming gradient of each row's value.) Each entry follows from the one identity
//! ⟨conv(x, w), dy⟩ = ⟨x, InputGrad(dy, w)⟩ = ⟨w, WeightGrad(x, dy)⟩, so derivatives of any
//! order through convolutions are again convolutions.

use crate::autograd::BackwardOp;
use crate::backend::ConvKind as Kind;
use crate::checks::{self, CheckCase, OpCheck};
use crate::error::{Error, Result};
use crate::limits::{check_buffer, checked_alloc};
use crate::tensor::Tensor;
use crate::Storage;
use ferrograd_kernels::conv::ConvGeometry;

/// Hyper-parameters of [`Tensor::conv2d`]; `Default` is stride 1, no padding, no dilation, one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Step between output positions (rows, columns); the output is about input / stride.
    pub stride: (usize, usize),
    /// Zero rows (top and bottom) and columns (left and right) around the input.
    pub padding: (usize, usize),
    /// Spacing between kernel taps (rows, columns): tap (r, s) of output (p, q) reads input
    /// (p·stride + r·dilation − padding, …); 1 is a dense kernel.
    pub dilation: (usize, usize),
    /// Channel groups G: input and output channels split into G blocks, block g of the output
    /// seeing only block g of the input (G = C is a depthwise convolution).
    pub groups: usize,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dParams {
    /// The same stride `s` along both axes.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = (s, s);
        self
    }
    /// The same padding `p` on all four sides.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = (p, p);
        self
    }
    /// The same dilation `d` along both axes.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = (d, d);
        self
    }
    /// `g` channel groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// Hyper-parameters of [`Tensor::conv_transpose2d`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    /// The stride of the convolution this is the adjoint of: the output is about input · stride.
    pub stride: (usize, usize),
    /// The padding of that convolution: rows and columns removed from each side of the output.
    pub padding: (usize, usize),
    /// Extra rows/columns on the bottom/right of the output, to pick among the input sizes a
    /// strided convolution maps to the same output size. Must be below stride or dilation.
    pub output_padding: (usize, usize),
    /// Spacing between kernel taps, as in [`Conv2dParams::dilation`].
    pub dilation: (usize, usize),
    /// Channel groups, as in [`Conv2dParams::groups`].
    pub groups: usize,
}

impl Default for ConvTranspose2dParams {
    fn default() -> Self {
        ConvTranspose2dParams {
            stride: (1, 1),
            padding: (0, 0),
            output_padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl ConvTranspose2dParams {
    /// The same stride `s` along both axes.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = (s, s);
        self
    }
    /// The same padding `p` on all four sides.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = (p, p);
        self
    }
    /// The same output padding `p` along both axes.
    pub fn output_padding(mut self, p: usize) -> Self {
        self.output_padding = (p, p);
        self
    }
    /// The same dilation `d` along both axes.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = (d, d);
        self
    }
    /// `g` channel groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

struct ConvOp {
    kind: Kind,
    geom: ConvGeometry,
}

impl BackwardOp for ConvOp {
    fn name(&self) -> &'static str {
        match self.kind {
            Kind::Forward => "conv2d",
            Kind::InputGrad => "conv2d_input_grad",
            Kind::WeightGrad => "conv2d_weight_grad",
        }
    }
    fn backward(
        &self,
        inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let (p, q) = (&inputs[0], &inputs[1]);
        let geom = &self.geom;
        let want = |t: &Tensor| t.requires_grad();
        let (dp, dq) = match self.kind {
            Kind::Forward => (
                want(p)
                    .then(|| apply(Kind::InputGrad, geom, g, q))
                    .transpose()?,
                want(q)
                    .then(|| apply(Kind::WeightGrad, geom, p, g))
                    .transpose()?,
            ),
            Kind::InputGrad => (
                want(p)
                    .then(|| apply(Kind::Forward, geom, g, q))
                    .transpose()?,
                want(q)
                    .then(|| apply(Kind::WeightGrad, geom, g, p))
                    .transpose()?,
            ),
            Kind::WeightGrad => (
                want(p)
                    .then(|| apply(Kind::InputGrad, geom, q, g))
                    .transpose()?,
                want(q)
                    .then(|| apply(Kind::Forward, geom, p, g))
                    .transpose()?,
            ),
        };
        Ok(vec![dp, dq])
    }
}

/// Runs one primitive and records it. Operands are (x, w), (dy, w) or (x, dy) by kind.
fn apply(kind: Kind, geom: &ConvGeometry, p: &Tensor, q: &Tensor) -> Result<Tensor> {
    p.same_device("conv2d", q)?;
    p.same_dtype("conv2d", q)?;
    let g = geom;
    let out = Storage::conv(kind, g, &p.storage(), &q.storage())?;
    let shape = match kind {
        Kind::Forward => vec![g.batch, g.out_channels, g.out_h, g.out_w],
        Kind::InputGrad => vec![g.batch, g.in_channels, g.in_h, g.in_w],
        Kind::WeightGrad => vec![
            g.out_channels,
            g.in_channels / g.groups,
            g.kernel_h,
            g.kernel_w,
        ],
    };
    Ok(Tensor::from_op(
        out,
        shape,
        ConvOp { kind, geom: *geom },
        vec![p.clone(), q.clone()],
    ))
}

/// Checks what a convolution of `geom` will allocate before it runs: the input and output
/// images, and on the CPU one image's im2col buffer (Cg·R·S × P·Q values).
fn check_sizes(op: &'static str, geom: &ConvGeometry, x: &Tensor) -> Result<()> {
    let g = geom;
    for shape in [
        [g.batch, g.out_channels, g.out_h, g.out_w],
        [g.batch, g.in_channels, g.in_h, g.in_w],
    ] {
        checked_alloc(op, &shape, x.dtype(), x.device())?;
    }
    if x.device() == crate::Device::Gpu && !g.fits_gpu() {
        return Err(Error::argument(
            op,
            format!(
                "on the GPU every size, stride, padding and dilation must be below 2^28: {g:?}"
            ),
        ));
    }
    if x.device() == crate::Device::Cpu {
        check_buffer(
            op,
            "one image's im2col buffer",
            g.col_len(),
            x.dtype(),
            x.device(),
        )?;
    }
    Ok(())
}

fn rank4(op: &'static str, what: &str, t: &Tensor) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(t.shape()).map_err(|_| {
        Error::shape(
            op,
            format!("{what} must have 4 axes, got shape {:?}", t.shape()),
        )
    })
}

fn check_positive(
    op: &'static str,
    weight: &Tensor,
    stride: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
) -> Result<()> {
    if weight.shape()[2] == 0 || weight.shape()[3] == 0 {
        return Err(Error::shape(
            op,
            format!("weight {:?} has an empty kernel", weight.shape()),
        ));
    }
    if stride.0 == 0 || stride.1 == 0 || dilation.0 == 0 || dilation.1 == 0 || groups == 0 {
        return Err(Error::argument(
            op,
            format!(
                "stride {stride:?}, dilation {dilation:?} and groups {groups} must be positive"
            ),
        ));
    }
    Ok(())
}

fn add_bias(op: &'static str, y: Tensor, bias: Option<&Tensor>, channels: usize) -> Result<Tensor> {
    match bias {
        None => Ok(y),
        Some(b) => {
            if b.shape() != [channels] {
                return Err(Error::shape(
                    op,
                    format!(
                        "bias of shape {:?} for {channels} output channels",
                        b.shape()
                    ),
                ));
            }
            y.add(&b.reshape(&[1, channels, 1, 1])?)
        }
    }
}

impl Tensor {
    /// Cross-correlation as in PyTorch's `conv2d`: x `[N, C, H, W]`, weight `[K, C/groups, R, S]`,
    /// optional bias `[K]` → `[N, K, P, Q]` with P = ⌊(H + 2·pad − dil·(R − 1) − 1)/stride⌋ + 1.
    ///
    /// `y[n, k, p, q] = b[k] + Σ_(c,r,s) w[k, c, r, s] · x[n, g·C/G + c, p·sh + r·dh − ph,
    /// q·sw + s·dw − pw]` over the channels c of k's group g, taps outside the input reading 0.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: Conv2dParams,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d";
        let [n, c, h, w] = rank4(OP, "input", self)?;
        let [k, cg, r, s] = rank4(OP, "weight", weight)?;
        check_positive(OP, weight, p.stride, p.dilation, p.groups)?;
        if c % p.groups != 0 || k % p.groups != 0 || cg.checked_mul(p.groups) != Some(c) {
            return Err(Error::shape(OP, format!("input {:?} and weight {:?} with {} groups: need C = groups·(weight axis 1) and K divisible by groups", self.shape(), weight.shape(), p.groups)));
        }
        let out_h = ConvGeometry::conv_out_len(h, r, p.stride.0, p.padding.0, p.dilation.0);
        let out_w = ConvGeometry::conv_out_len(w, s, p.stride.1, p.padding.1, p.dilation.1);
        let (Some(out_h), Some(out_w)) = (out_h, out_w) else {
            return Err(Error::shape(
                OP,
                format!(
                    "kernel {r}x{s} with dilation {:?} does not fit input {:?} padded by {:?}",
                    p.dilation,
                    self.shape(),
                    p.padding
                ),
            ));
        };
        let geom = ConvGeometry {
            batch: n,
            in_channels: c,
            in_h: h,
            in_w: w,
            out_channels: k,
            kernel_h: r,
            kernel_w: s,
            out_h,
            out_w,
            stride: p.stride,
            padding: p.padding,
            dilation: p.dilation,
            groups: p.groups,
        };
        check_sizes(OP, &geom, self)?;
        add_bias(OP, apply(Kind::Forward, &geom, self, weight)?, bias, k)
    }

    /// Transposed convolution as in PyTorch's `conv_transpose2d`: x `[N, C, H, W]`, weight
    /// `[C, K/groups, R, S]`, optional bias `[K]` → `[N, K, H', W']` with
    /// H' = (H − 1)·stride − 2·pad + dil·(R − 1) + output_padding + 1. It is the adjoint
    /// (input gradient) of the convolution with the same weight and parameters.
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: ConvTranspose2dParams,
    ) -> Result<Tensor> {
        const OP: &str = "conv_transpose2d";
        let [n, c, h, w] = rank4(OP, "input", self)?;
        let [wc, kg, r, s] = rank4(OP, "weight", weight)?;
        check_positive(OP, weight, p.stride, p.dilation, p.groups)?;
        if wc != c || c % p.groups != 0 {
            return Err(Error::shape(OP, format!("input {:?} and weight {:?} with {} groups: weight axis 0 must equal C and C be divisible by groups", self.shape(), weight.shape(), p.groups)));
        }
        for (op_, st, dl) in [
            (p.output_padding.0, p.stride.0, p.dilation.0),
            (p.output_padding.1, p.stride.1, p.dilation.1),
        ] {
            if op_ >= st && op_ >= dl {
                return Err(Error::argument(
                    OP,
                    format!(
                        "output_padding {:?} must be smaller than stride {:?} or dilation {:?}",
                        p.output_padding, p.stride, p.dilation
                    ),
                ));
            }
        }
        // (len − 1)·stride + dil·(k − 1) + output_padding + 1 − 2·pad, when positive.
        let size = |len: usize, k: usize, st: usize, pad: usize, dil: usize, op_: usize| {
            (len - 1)
                .checked_mul(st)?
                .checked_add(dil.checked_mul(k - 1)?)?
                .checked_add(op_)?
                .checked_add(1)?
                .checked_sub(pad.checked_mul(2)?)
                .filter(|&v| v > 0)
        };
        let out_h = if h == 0 {
            None
        } else {
            size(
                h,
                r,
                p.stride.0,
                p.padding.0,
                p.dilation.0,
                p.output_padding.0,
            )
        };
        let out_w = if w == 0 {
            None
        } else {
            size(
                w,
                s,
                p.stride.1,
                p.padding.1,
                p.dilation.1,
                p.output_padding.1,
            )
        };
        let (Some(out_h), Some(out_w)) = (out_h, out_w) else {
            return Err(Error::shape(OP, format!("input {:?} with kernel {r}x{s}, stride {:?} and padding {:?} gives an empty output", self.shape(), p.stride, p.padding)));
        };
        let Some(k) = kg.checked_mul(p.groups) else {
            return Err(Error::shape(
                OP,
                format!(
                    "weight {:?} with {} groups: the output channels overflow",
                    weight.shape(),
                    p.groups
                ),
            ));
        };
        // The convolution whose input gradient this is: its input is our output, and back.
        let geom = ConvGeometry {
            batch: n,
            in_channels: k,
            in_h: out_h,
            in_w: out_w,
            out_channels: c,
            kernel_h: r,
            kernel_w: s,
            out_h: h,
            out_w: w,
            stride: p.stride,
            padding: p.padding,
            dilation: p.dilation,
            groups: p.groups,
        };
        check_sizes(OP, &geom, self)?;
        add_bias(OP, apply(Kind::InputGrad, &geom, self, weight)?, bias, k)
    }
}

// ---- gradient-check cases ------------------------------------------------------------------

/// Drawn convolution hyper-parameters, small enough for third-order f64 checks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConvDraw {
    pub batch: usize,
    pub groups: usize,
    pub in_per_group: usize,
    pub out_per_group: usize,
    pub kernel: (usize, usize),
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub size: (usize, usize),
}

impl ConvDraw {
    pub(crate) fn random(r: &mut crate::Rng) -> ConvDraw {
        let kernel = (1 + r.below(3), 1 + r.below(3));
        let dilation = 1 + r.below(2);
        // The dilated kernel's span; inputs at least one larger so every geometry is valid.
        let span = (dilation * (kernel.0 - 1) + 1, dilation * (kernel.1 - 1) + 1);
        ConvDraw {
            batch: 1 + r.below(2),
            groups: 1 + r.below(2),
            in_per_group: 1 + r.below(2),
            out_per_group: 1 + r.below(2),
            kernel,
            stride: 1 + r.below(2),
            padding: r.below(2),
            dilation,
            size: (span.0 + 1 + r.below(2), span.1 + 1 + r.below(2)),
        }
    }

    /// conv2d case: inputs x, w, bias.
    pub(crate) fn conv2d_case(self, r: &mut crate::Rng) -> CheckCase {
        let p = Conv2dParams {
            stride: (self.stride, self.stride),
            padding: (self.padding, self.padding),
            dilation: (self.dilation, self.dilation),
            groups: self.groups,
        };
        let c = self.in_per_group * self.groups;
        let k = self.out_per_group * self.groups;
        let x = checks::random_values(
            &[self.batch, c, self.size.0, self.size.1],
            checks::Domain::Any,
            r,
        );
        let w = checks::random_values(
            &[k, self.in_per_group, self.kernel.0, self.kernel.1],
            checks::Domain::Any,
            r,
        );
        let b = checks::random_values(&[k], checks::Domain::Any, r);
        CheckCase::new(format!("conv2d {self:?}"), vec![x, w, b], move |t| {
            t[0].conv2d(&t[1], Some(&t[2]), p)
        })
    }

    /// conv_transpose2d case with a valid output_padding: inputs x, w, bias.
    pub(crate) fn conv_transpose2d_case(self, r: &mut crate::Rng) -> CheckCase {
        let limit = self.stride.max(self.dilation);
        let output_padding = r.below(limit);
        // Padding up to half the dilated kernel's span keeps the output non-empty for any
        // input size: (H − 1)·stride + span − 2·pad ≥ 1.
        let span = self.dilation * (self.kernel.0.min(self.kernel.1) - 1) + 1;
        let padding = self.padding.min((span - 1) / 2);
        let p = ConvTranspose2dParams {
            stride: (self.stride, self.stride),
            padding: (padding, padding),
            output_padding: (output_padding, output_padding),
            dilation: (self.dilation, self.dilation),
            groups: self.groups,
        };
        let c = self.in_per_group * self.groups;
        let k = self.out_per_group * self.groups;
        let x = checks::random_values(
            &[self.batch, c, self.size.0 - 1, self.size.1 - 1],
            checks::Domain::Any,
            r,
        );
        let w = checks::random_values(
            &[c, self.out_per_group, self.kernel.0, self.kernel.1],
            checks::Domain::Any,
            r,
        );
        let b = checks::random_values(&[k], checks::Domain::Any, r);
        CheckCase::new(
            format!("conv_transpose2d {self:?} output_padding {output_padding}"),
            vec![x, w, b],
            move |t| t[0].conv_transpose2d(&t[1], Some(&t[2]), p),
        )
    }
}

pub(crate) fn checks() -> Vec<OpCheck> {
    vec![
        OpCheck::new("conv2d", 3, |r| ConvDraw::random(r).conv2d_case(r)),
        OpCheck::new("conv_transpose2d", 3, |r| {
            ConvDraw::random(r).conv_transpose2d_case(r)
        }),
    ]
}

#[cfg(test)]
#[path = "conv_combinations.rs"]
mod conv_combinations;

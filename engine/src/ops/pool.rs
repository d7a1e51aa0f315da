//! Pooling and resampling of [N, C, H, W] maps: max and average pooling, global average
//! pooling, nearest up-sampling and pixel shuffle, each built from a primitive of another file
//! so its derivatives of every order come from there.

use crate::checks::{self, CheckCase, OpCheck};
use crate::error::{Error, Result};
use crate::indices::Indices;
use crate::limits::checked_alloc;
use crate::ops::conv::Conv2dParams;
use crate::ops::shape::Planes;
use crate::tensor::Tensor;
use ferrograd_kernels::conv::ConvGeometry;
use std::sync::Arc;

fn dims4(op: &'static str, t: &Tensor) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(t.shape()).map_err(|_| {
        Error::shape(
            op,
            format!("input must be [N, C, H, W], got shape {:?}", t.shape()),
        )
    })
}

/// Hyper-parameters of [`Tensor::max_pool2d_with`] and [`Tensor::avg_pool2d_with`], as
/// PyTorch's `MaxPool2d`/`AvgPool2d`: a (height, width) pair for the kernel, stride, padding
/// and dilation, `ceil_mode`, and (average pooling only) `count_include_pad`.
///
/// [`Pool2d::new`] gives stride = kernel, no padding, no dilation, floor mode, padding
/// counted; the setters taking one `usize` set both axes, the `_hw` ones each axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// (kh, kw), the window's size.
    pub kernel: (usize, usize),
    /// (sh, sw), the step between windows (PyTorch's default: the kernel).
    pub stride: (usize, usize),
    /// (ph, pw), implicit padding on each side (−∞ for max, zeros for average).
    pub padding: (usize, usize),
    /// (dh, dw), the spacing of the window's taps.
    pub dilation: (usize, usize),
    /// Output size rounded up instead of down: a last, partial window is kept as long as it
    /// starts inside the input or its left padding.
    pub ceil_mode: bool,
    /// Average pooling divides by the whole window, zero padding included (true, PyTorch's
    /// default), or only by the count of taps inside the input (false). Taps of a ceil-mode
    /// overhang beyond the right padding never count.
    pub count_include_pad: bool,
}

impl Pool2d {
    /// A kernel×kernel window with stride = kernel.
    pub fn new(kernel: usize) -> Self {
        Pool2d::new_hw(kernel, kernel)
    }
    /// A kh×kw window with stride (kh, kw).
    pub fn new_hw(kh: usize, kw: usize) -> Self {
        Pool2d {
            kernel: (kh, kw),
            stride: (kh, kw),
            padding: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
            count_include_pad: true,
        }
    }
    /// The same stride on both axes.
    pub fn stride(self, s: usize) -> Self {
        self.stride_hw(s, s)
    }
    /// The stride per axis.
    pub fn stride_hw(mut self, sh: usize, sw: usize) -> Self {
        self.stride = (sh, sw);
        self
    }
    /// The same padding on both axes.
    pub fn padding(self, p: usize) -> Self {
        self.padding_hw(p, p)
    }
    /// The padding per axis.
    pub fn padding_hw(mut self, ph: usize, pw: usize) -> Self {
        self.padding = (ph, pw);
        self
    }
    /// The same dilation on both axes.
    pub fn dilation(self, d: usize) -> Self {
        self.dilation_hw(d, d)
    }
    /// The dilation per axis.
    pub fn dilation_hw(mut self, dh: usize, dw: usize) -> Self {
        self.dilation = (dh, dw);
        self
    }
    /// Rounds the output size up (see [`Pool2d::ceil_mode`](#structfield.ceil_mode)).
    pub fn ceil_mode(mut self, on: bool) -> Self {
        self.ceil_mode = on;
        self
    }
    /// Counts padding in the average's divisor or not.
    pub fn count_include_pad(mut self, on: bool) -> Self {
        self.count_include_pad = on;
        self
    }

    /// Output length along one axis, as PyTorch computes it:
    /// ⌊(in + 2·pad − dil·(k − 1) − 1 + (ceil ? stride − 1 : 0)) / stride⌋ + 1, less one in
    /// ceil mode when the last window would start at or past in + pad. `None` when the dilated
    /// window does not fit the padded input or a size overflows.
    pub fn out_len(
        input: usize,
        k: usize,
        stride: usize,
        pad: usize,
        dil: usize,
        ceil: bool,
    ) -> Option<usize> {
        let span = dil.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
        let padded = input.checked_add(pad.checked_mul(2)?)?;
        if padded < span || stride == 0 {
            return None;
        }
        let num = padded - span;
        let mut out = if ceil {
            num.div_ceil(stride) + 1
        } else {
            num / stride + 1
        };
        if ceil && (out - 1).checked_mul(stride)? >= input + pad {
            out -= 1;
        }
        Some(out)
    }
}

/// How many taps start + t·dil (0 ≤ t < k) of a window fall in [lo, hi).
fn taps_in(start: i128, dil: i128, k: i128, lo: i128, hi: i128) -> usize {
    // t ≥ ⌈(lo − start)/dil⌉ and t ≤ ⌊(hi − 1 − start)/dil⌋.
    let first = (lo - start + dil - 1).div_euclid(dil).max(0);
    let last = (hi - 1 - start).div_euclid(dil).min(k - 1);
    (last - first + 1).max(0) as usize
}

/// For each output position along one axis, the window's count of taps in [lo, hi) (lo and
/// hi relative to the unpadded input).
fn window_counts(
    out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    lo: i128,
    hi: i128,
) -> Vec<usize> {
    (0..out)
        .map(|o| {
            let start = o as i128 * stride as i128 - pad as i128;
            taps_in(start, dil as i128, k as i128, lo, hi)
        })
        .collect()
}

/// Window geometry shared by the pools, validated as PyTorch does: kernel, stride and
/// dilation positive, padding at most half the kernel, an image plane that is not empty, and
/// no window wholly in the padding (it would have no max, and nothing to average).
fn pool_geometry(op: &'static str, x: &Tensor, p: &Pool2d) -> Result<ConvGeometry> {
    let [n, c, h, w] = dims4(op, x)?;
    let (kh, kw) = p.kernel;
    if [kh, kw, p.stride.0, p.stride.1, p.dilation.0, p.dilation.1].contains(&0) {
        return Err(Error::argument(
            op,
            format!(
                "kernel {:?}, stride {:?} and dilation {:?} must be positive",
                p.kernel, p.stride, p.dilation
            ),
        ));
    }
    if p.padding.0 > kh / 2 || p.padding.1 > kw / 2 {
        return Err(Error::argument(
            op,
            format!(
                "padding {:?} must be at most half the kernel {:?}",
                p.padding, p.kernel
            ),
        ));
    }
    if h == 0 || w == 0 {
        return Err(Error::shape(
            op,
            format!("input {:?} has an empty image plane", x.shape()),
        ));
    }
    let (Some(out_h), Some(out_w)) = (
        Pool2d::out_len(h, kh, p.stride.0, p.padding.0, p.dilation.0, p.ceil_mode),
        Pool2d::out_len(w, kw, p.stride.1, p.padding.1, p.dilation.1, p.ceil_mode),
    ) else {
        return Err(Error::shape(
            op,
            format!(
                "a {kh}x{kw} window dilated by {:?} does not fit input {:?} padded by {:?}",
                p.dilation,
                x.shape(),
                p.padding
            ),
        ));
    };
    checked_alloc(op, &[n, c, out_h, out_w], x.dtype(), x.device())?;
    let g = ConvGeometry {
        batch: n,
        in_channels: c,
        in_h: h,
        in_w: w,
        out_channels: c,
        kernel_h: kh,
        kernel_w: kw,
        out_h,
        out_w,
        stride: p.stride,
        padding: p.padding,
        dilation: p.dilation,
        groups: c,
    };
    let empty_window = |out, k, s, pad, dil, len: usize| {
        window_counts(out, k, s, pad, dil, 0, len as i128).contains(&0)
    };
    // (With no planes the output sizes are unchecked by the allocation limit, and may be huge.)
    if n * c > 0
        && (empty_window(out_h, kh, p.stride.0, p.padding.0, p.dilation.0, h)
            || empty_window(out_w, kw, p.stride.1, p.padding.1, p.dilation.1, w))
    {
        return Err(Error::argument(
            op,
            format!(
                "a window of {p:?} over input {:?} lies wholly in the padding",
                x.shape()
            ),
        ));
    }
    if x.device() == crate::Device::Gpu && !g.fits_gpu() {
        return Err(Error::argument(
            op,
            format!("on the GPU the kernel, stride and padding must be below 2^28: {g:?}"),
        ));
    }
    Ok(g)
}

/// The leading `shape` box of a convolution's output (which may have a row or column more
/// than a ceil-mode pool keeps).
fn fit(y: Tensor, shape: &[usize; 4]) -> Result<Tensor> {
    if y.shape() == shape {
        return Ok(y);
    }
    y.slice(&shape.map(|d| (0, d)))
}

impl Tensor {
    /// Max over each kernel×kernel window; padding never wins. The derivative flows to the
    /// window's maximum: a gather of the arg-max positions.
    pub fn max_pool2d(&self, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
        self.max_pool2d_with(&Pool2d::new(kernel).stride(stride).padding(padding))
    }

    /// Max pooling with the full [`Pool2d`] options: outᵢⱼ = max over the taps
    /// (i·sh − ph + a·dh, j·sw − pw + b·dw), 0 ≤ a < kh, 0 ≤ b < kw, inside the input (padding
    /// and a ceil-mode overhang never win; the first maximum wins ties). `count_include_pad`
    /// is ignored. The derivative flows to each window's maximum: a gather of the arg-max
    /// positions, whose adjoint is a scatter-add.
    pub fn max_pool2d_with(&self, p: &Pool2d) -> Result<Tensor> {
        let g = pool_geometry("max_pool2d", self, p)?;
        let idx = self.storage().max_pool_argmax(&g);
        Ok(self.gather_flat_trusted(
            idx,
            &[g.batch, g.in_channels, g.out_h, g.out_w],
            Some(Planes {
                gathered: g.out_h * g.out_w,
                source: g.in_h * g.in_w,
            }),
        ))
    }

    /// Mean over each window, zero padding counted (PyTorch's count_include_pad): a depthwise
    /// convolution with a constant 1/k² kernel.
    pub fn avg_pool2d(&self, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
        self.avg_pool2d_with(&Pool2d::new(kernel).stride(stride).padding(padding))
    }

    /// Average pooling with the full [`Pool2d`] options: outᵢⱼ = (Σ of the window's taps
    /// inside the input) / countᵢⱼ, where count is the window's taps inside the padded input
    /// [−pad, in + pad) when `count_include_pad` (kh·kw except for ceil-mode overhangs), else
    /// its taps inside the input. The sum is a depthwise convolution with a ones kernel (the
    /// input padded on the right first when a ceil-mode window overhangs), the division by the
    /// constant counts a broadcast multiply: linear, so derivatives of every order.
    pub fn avg_pool2d_with(&self, p: &Pool2d) -> Result<Tensor> {
        const OP: &str = "avg_pool2d";
        let g = pool_geometry(OP, self, p)?;
        let c = g.in_channels;
        let out_shape = [g.batch, c, g.out_h, g.out_w];
        if c == 0 || g.batch == 0 {
            // Nothing to average (and a depthwise convolution of 0 groups does not exist).
            return Ok(self.gather_flat_trusted(Indices::host(Arc::default()), &out_shape, None));
        }
        let (kh, kw) = p.kernel;
        // Extra zeros on the bottom/right so that every ceil-mode window fits the convolution.
        let extra = |out: usize, k: usize, s: usize, pad: usize, dil: usize, len: usize| {
            ((out - 1) * s + dil * (k - 1) + 1).saturating_sub(len + 2 * pad)
        };
        let eh = extra(g.out_h, kh, p.stride.0, p.padding.0, p.dilation.0, g.in_h);
        let ew = extra(g.out_w, kw, p.stride.1, p.padding.1, p.dilation.1, g.in_w);
        let x = if eh + ew > 0 {
            self.pad(&[(0, 0), (0, 0), (0, eh), (0, ew)])?
        } else {
            self.clone()
        };
        let counts = |out, k, s, pad, dil, len: usize| {
            let (lo, hi) = if p.count_include_pad {
                (-(pad as i128), (len + pad) as i128)
            } else {
                (0, len as i128)
            };
            window_counts(out, k, s, pad, dil, lo, hi)
        };
        let ch = counts(g.out_h, kh, p.stride.0, p.padding.0, p.dilation.0, g.in_h);
        let cw = counts(g.out_w, kw, p.stride.1, p.padding.1, p.dilation.1, g.in_w);
        let uniform = ch.iter().all(|&v| v == kh) && cw.iter().all(|&v| v == kw);
        let conv_params = Conv2dParams {
            stride: p.stride,
            padding: p.padding,
            dilation: p.dilation,
            groups: c,
        };
        let on = |e: Error| Error::new(OP, e.kind, e.message);
        if uniform {
            // Every window divides by kh·kw: fold it into the kernel.
            let weight = Tensor::full_on(
                &[c, 1, kh, kw],
                1.0 / (kh as f64 * kw as f64),
                self.dtype(),
                self.device(),
            )
            .map_err(on)?;
            let y = x.conv2d(&weight, None, conv_params)?;
            return fit(y, &out_shape);
        }
        let weight =
            Tensor::full_on(&[c, 1, kh, kw], 1.0, self.dtype(), self.device()).map_err(on)?;
        let sums = fit(x.conv2d(&weight, None, conv_params)?, &out_shape)?;
        let inv: Vec<f64> = ch
            .iter()
            .flat_map(|&a| cw.iter().map(move |&b| 1.0 / (a as f64 * b as f64)))
            .collect();
        let inv = Tensor::from_f64s(&inv, &[1, 1, g.out_h, g.out_w], self.dtype())
            .and_then(|t| t.to(self.device()))
            .map_err(on)?;
        sums.mul(&inv)
    }

    /// [N, C, H, W] → [N, C]: the mean of each channel's map.
    pub fn global_avg_pool2d(&self) -> Result<Tensor> {
        dims4("global_avg_pool2d", self)?;
        self.mean(&[2, 3], false)
    }

    /// Each pixel repeated into a scale×scale block.
    pub fn upsample_nearest2d(&self, scale: usize) -> Result<Tensor> {
        const OP: &str = "upsample_nearest2d";
        let [n, c, h, w] = dims4(OP, self)?;
        if scale == 0 {
            return Err(Error::argument(OP, "scale must be positive"));
        }
        let (Some(oh), Some(ow)) = (h.checked_mul(scale), w.checked_mul(scale)) else {
            return Err(Error::shape(
                OP,
                format!("{:?} scaled by {scale} overflows", self.shape()),
            ));
        };
        let len = checked_alloc(OP, &[n, c, oh, ow], self.dtype(), self.device())?;
        let mut idx = Vec::with_capacity(len);
        if len > 0 {
            for plane in 0..n * c {
                for i in 0..oh {
                    idx.extend((0..ow).map(|j| (plane * h + i / scale) * w + j / scale));
                }
            }
        }
        // Each output plane reads only its own input plane (a promise worth nothing, and
        // whose sizes may not even be countable, when there are no values).
        let planes = (len > 0).then_some(Planes {
            gathered: oh * ow,
            source: h * w,
        });
        Ok(self.gather_flat_trusted(Indices::host(Arc::new(idx)), &[n, c, oh, ow], planes))
    }

    /// [N, C·r², H, W] → [N, C, H·r, W·r]: sub-pixel up-sampling, a reshape and a permutation.
    pub fn pixel_shuffle(&self, r: usize) -> Result<Tensor> {
        const OP: &str = "pixel_shuffle";
        let [n, cr2, h, w] = dims4(OP, self)?;
        let r2 = r.checked_mul(r).filter(|&r2| r2 > 0 && cr2 % r2 == 0);
        let (Some(r2), Some(oh), Some(ow)) = (r2, h.checked_mul(r), w.checked_mul(r)) else {
            return Err(Error::shape(
                OP,
                format!(
                    "factor {r}: the channels of {:?} must be divisible by r² (and r positive)",
                    self.shape()
                ),
            ));
        };
        let c = cr2 / r2;
        self.reshape(&[n, c, r, r, h, w])?
            .permute(&[0, 1, 4, 2, 5, 3])?
            .reshape(&[n, c, oh, ow])
    }
}

/// A map shape and pooling options with separate heights and widths, dilation, ceil mode
/// and either divisor, redrawn until the geometry is valid.
fn pool_case(r: &mut crate::Rng) -> (Vec<usize>, Pool2d) {
    loop {
        let shape = vec![
            1 + r.below(2),
            1 + r.below(2),
            2 + r.below(5),
            2 + r.below(5),
        ];
        let (kh, kw) = (1 + r.below(3), 1 + r.below(3));
        let p = Pool2d::new_hw(kh, kw)
            .stride_hw(1 + r.below(3), 1 + r.below(3))
            .padding_hw(r.below(kh / 2 + 1), r.below(kw / 2 + 1))
            .dilation_hw(1 + r.below(2), 1 + r.below(2))
            .ceil_mode(r.uniform() < 0.5)
            .count_include_pad(r.uniform() < 0.5);
        let probe = Tensor::zeros(&shape, crate::DType::F64).expect("small shape");
        if pool_geometry("pool_case", &probe, &p).is_ok() {
            return (shape, p);
        }
    }
}

pub(crate) fn checks() -> Vec<OpCheck> {
    fn map_shape(r: &mut crate::Rng) -> Vec<usize> {
        vec![
            1 + r.below(2),
            1 + r.below(2),
            3 + r.below(3),
            3 + r.below(3),
        ]
    }
    vec![
        OpCheck::new("max_pool2d", 3, |r| {
            let shape = map_shape(r);
            let (k, s) = (2 + r.below(2), 1 + r.below(2));
            let p = r.below(k / 2 + 1);
            let x = checks::distinct_values(&shape, r);
            CheckCase::new(
                format!("max_pool2d {shape:?} k{k} s{s} p{p}"),
                vec![x],
                move |t| t[0].max_pool2d(k, s, p),
            )
        }),
        OpCheck::new("avg_pool2d", 3, |r| {
            let shape = map_shape(r);
            let (k, s) = (1 + r.below(3), 1 + r.below(2));
            let p = r.below(k / 2 + 1);
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            CheckCase::new(
                format!("avg_pool2d {shape:?} k{k} s{s} p{p}"),
                vec![x],
                move |t| t[0].avg_pool2d(k, s, p),
            )
        }),
        OpCheck::new("max_pool2d_with", 3, |r| {
            let (shape, p) = pool_case(r);
            let x = checks::distinct_values(&shape, r);
            CheckCase::new(format!("max_pool2d {shape:?} {p:?}"), vec![x], move |t| {
                t[0].max_pool2d_with(&p)
            })
        }),
        OpCheck::new("avg_pool2d_with", 3, |r| {
            let (shape, p) = pool_case(r);
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            CheckCase::new(format!("avg_pool2d {shape:?} {p:?}"), vec![x], move |t| {
                t[0].avg_pool2d_with(&p)
            })
        }),
        OpCheck::new("global_avg_pool2d", 3, |r| {
            let shape = map_shape(r);
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            CheckCase::new(format!("global_avg_pool2d {shape:?}"), vec![x], |t| {
                t[0].global_avg_pool2d()
            })
        }),
        OpCheck::new("upsample_nearest2d", 2, |r| {
            let shape = map_shape(r);
            let s = 1 + r.below(3);
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            CheckCase::new(
                format!("upsample_nearest2d {shape:?} x{s}"),
                vec![x],
                move |t| t[0].upsample_nearest2d(s),
            )
        }),
        OpCheck::new("pixel_shuffle", 2, |r| {
            let f = 1 + r.below(2);
            let shape = vec![
                1 + r.below(2),
                (1 + r.below(2)) * f * f,
                2 + r.below(2),
                2 + r.below(2),
            ];
            let x = checks::random_values(&shape, checks::Domain::Any, r);
            CheckCase::new(format!("pixel_shuffle {shape:?} r{f}"), vec![x], move |t| {
                t[0].pixel_shuffle(f)
            })
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    fn nine() -> Tensor {
        let v: Vec<f64> = (1..=9).map(f64::from).collect();
        Tensor::from_f64s(&v, &[1, 1, 3, 3], DType::F64).unwrap()
    }

    #[test]
    fn ceil_mode_keeps_the_partial_last_window_as_pytorch() {
        let x = nine();
        let p = Pool2d::new(2).ceil_mode(true);
        let m = x.max_pool2d_with(&p).unwrap();
        assert_eq!(m.shape(), &[1, 1, 2, 2]);
        assert_eq!(m.to_vec_f64(), vec![5.0, 6.0, 8.0, 9.0]);
        // The overhang past the input (and its zero padding) is never counted.
        let a = x.avg_pool2d_with(&p).unwrap();
        assert_eq!(a.to_vec_f64(), vec![3.0, 4.5, 7.5, 9.0]);
        assert_eq!(Pool2d::out_len(3, 2, 2, 0, 1, false), Some(1));
        // The last window would start in the right padding: dropped.
        assert_eq!(Pool2d::out_len(4, 2, 3, 1, 1, true), Some(2));
        assert_eq!(Pool2d::out_len(5, 3, 2, 1, 1, true), Some(3));
    }

    #[test]
    fn count_include_pad_chooses_the_divisor() {
        let x = nine();
        let p = Pool2d::new(3).stride(2).padding(1);
        let incl = x.avg_pool2d_with(&p).unwrap().to_vec_f64();
        let excl = x
            .avg_pool2d_with(&p.count_include_pad(false))
            .unwrap()
            .to_vec_f64();
        let sums = [12.0, 16.0, 24.0, 28.0];
        for i in 0..4 {
            assert!((incl[i] - sums[i] / 9.0).abs() < 1e-12, "{incl:?}");
            assert!((excl[i] - sums[i] / 4.0).abs() < 1e-12, "{excl:?}");
        }
        // The thin wrapper is the default options.
        assert_eq!(x.avg_pool2d(3, 2, 1).unwrap().to_vec_f64(), incl);
    }

    #[test]
    fn separate_heights_widths_and_dilation() {
        let x = Tensor::from_f64s(
            &(0..20).map(f64::from).collect::<Vec<_>>(),
            &[1, 1, 4, 5],
            DType::F64,
        )
        .unwrap();
        // 1x2 windows dilated by 2 along the width, stride (2, 1).
        let p = Pool2d::new_hw(1, 2).stride_hw(2, 1).dilation_hw(1, 2);
        let m = x.max_pool2d_with(&p).unwrap();
        assert_eq!(m.shape(), &[1, 1, 2, 3]);
        assert_eq!(m.to_vec_f64(), vec![2.0, 3.0, 4.0, 12.0, 13.0, 14.0]);
        let a = x.avg_pool2d_with(&p).unwrap();
        assert_eq!(a.to_vec_f64(), vec![1.0, 2.0, 3.0, 11.0, 12.0, 13.0]);
        // A window with every tap in the padding is an error, not a made-up value.
        let e = x
            .max_pool2d_with(&Pool2d::new(2).padding(1).dilation(5))
            .unwrap_err();
        assert!(e.to_string().starts_with("max_pool2d:"), "{e}");
        assert!(x.max_pool2d_with(&Pool2d::new(0)).is_err());
        assert!(x.avg_pool2d_with(&Pool2d::new(2).padding(2)).is_err());
    }
}

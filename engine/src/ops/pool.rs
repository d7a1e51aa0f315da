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

/// Window geometry shared by the pools, validated as PyTorch does: padding at most half the
/// window, and an image plane that is not empty (a window of nothing but padding has no max).
fn pool_geometry(
    op: &'static str,
    x: &Tensor,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Result<ConvGeometry> {
    let [n, c, h, w] = dims4(op, x)?;
    if kernel == 0 || stride == 0 {
        return Err(Error::argument(
            op,
            format!("kernel {kernel} and stride {stride} must be positive"),
        ));
    }
    if padding > kernel / 2 {
        return Err(Error::argument(
            op,
            format!("padding {padding} must be at most half the kernel {kernel}"),
        ));
    }
    if h == 0 || w == 0 {
        return Err(Error::shape(
            op,
            format!("input {:?} has an empty image plane", x.shape()),
        ));
    }
    let (Some(out_h), Some(out_w)) = (
        ConvGeometry::conv_out_len(h, kernel, stride, padding, 1),
        ConvGeometry::conv_out_len(w, kernel, stride, padding, 1),
    ) else {
        return Err(Error::shape(
            op,
            format!(
                "a {kernel}x{kernel} window does not fit input {:?} padded by {padding}",
                x.shape()
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
        kernel_h: kernel,
        kernel_w: kernel,
        out_h,
        out_w,
        stride: (stride, stride),
        padding: (padding, padding),
        dilation: (1, 1),
        groups: c,
    };
    if x.device() == crate::Device::Gpu && !g.fits_gpu() {
        return Err(Error::argument(
            op,
            format!("on the GPU the kernel, stride and padding must be below 2^28: {g:?}"),
        ));
    }
    Ok(g)
}

impl Tensor {
    /// Max over each kernel×kernel window; padding never wins. The derivative flows to the
    /// window's maximum: a gather of the arg-max positions.
    pub fn max_pool2d(&self, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
        let g = pool_geometry("max_pool2d", self, kernel, stride, padding)?;
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
        const OP: &str = "avg_pool2d";
        let g = pool_geometry(OP, self, kernel, stride, padding)?;
        let c = g.in_channels;
        let out_shape = [g.batch, c, g.out_h, g.out_w];
        if c == 0 || g.batch == 0 {
            // Nothing to average (and a depthwise convolution of 0 groups does not exist).
            return Ok(self.gather_flat_trusted(Indices::host(Arc::default()), &out_shape, None));
        }
        let weight = Tensor::full_on(
            &[c, 1, kernel, kernel],
            1.0 / (kernel as f64 * kernel as f64),
            self.dtype(),
            self.device(),
        )
        .map_err(|e| Error::new(OP, e.kind, e.message))?;
        self.conv2d(
            &weight,
            None,
            Conv2dParams::default()
                .stride(stride)
                .padding(padding)
                .groups(c),
        )
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

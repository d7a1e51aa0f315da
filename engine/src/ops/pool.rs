//! Pooling and resampling of [N, C, H, W] maps: max and average pooling, global average
//! pooling, nearest up-sampling and pixel shuffle, each built from a primitive of another file
//! so its derivatives of every order come from there.

use crate::checks::{self, CheckCase, OpCheck};
use crate::error::{Error, Result};
use crate::indices::Indices;
use crate::ops::conv::Conv2dParams;
use crate::ops::shape::Planes;
use crate::tensor::Tensor;
use crate::{with_storage, Storage};
use ferrograd_kernels::conv::{max_pool2d_argmax, ConvGeometry};
use ferrograd_kernels::gpu::conv as gpu_conv;
use std::sync::Arc;

fn dims4(op: &'static str, t: &Tensor) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(t.shape()).map_err(|_| {
        Error::shape(
            op,
            format!("input must be [N, C, H, W], got shape {:?}", t.shape()),
        )
    })
}

/// Window geometry shared by the pools, validated as PyTorch does (padding at most half the window).
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
    if 2 * padding > kernel {
        return Err(Error::argument(
            op,
            format!("padding {padding} must be at most half the kernel {kernel}"),
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
    Ok(ConvGeometry {
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
    })
}

impl Tensor {
    /// Max over each kernel×kernel window; padding never wins. The derivative flows to the
    /// window's maximum: a gather of the arg-max positions.
    pub fn max_pool2d(&self, kernel: usize, stride: usize, padding: usize) -> Result<Tensor> {
        let g = pool_geometry("max_pool2d", self, kernel, stride, padding)?;
        let idx = match &*self.storage() {
            Storage::Gpu(b) => Indices::Gpu(Arc::new(gpu_conv::max_pool2d_argmax(&g, b))),
            s => Indices::host(Arc::new(with_storage!(s, v => max_pool2d_argmax(&g, v)))),
        };
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
        let g = pool_geometry("avg_pool2d", self, kernel, stride, padding)?;
        let c = g.in_channels;
        let weight = Tensor::full(
            &[c, 1, kernel, kernel],
            1.0 / (kernel * kernel) as f64,
            self.dtype(),
        )?
        .to(self.device())?;
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
        let [n, c, h, w] = dims4("upsample_nearest2d", self)?;
        if scale == 0 {
            return Err(Error::argument(
                "upsample_nearest2d",
                "scale must be positive",
            ));
        }
        let (oh, ow) = (h * scale, w * scale);
        let mut idx = Vec::with_capacity(n * c * oh * ow);
        for plane in 0..n * c {
            for i in 0..oh {
                idx.extend((0..ow).map(|j| (plane * h + i / scale) * w + j / scale));
            }
        }
        // Each output plane reads only its own input plane.
        Ok(self.gather_flat_trusted(
            Indices::host(Arc::new(idx)),
            &[n, c, oh, ow],
            Some(Planes {
                gathered: oh * ow,
                source: h * w,
            }),
        ))
    }

    /// [N, C·r², H, W] → [N, C, H·r, W·r]: sub-pixel up-sampling, a reshape and a permutation.
    pub fn pixel_shuffle(&self, r: usize) -> Result<Tensor> {
        let [n, cr2, h, w] = dims4("pixel_shuffle", self)?;
        if r == 0 || cr2 % (r * r) != 0 {
            return Err(Error::shape(
                "pixel_shuffle",
                format!(
                    "channels of {:?} must be divisible by r² = {}",
                    self.shape(),
                    r * r
                ),
            ));
        }
        let c = cr2 / (r * r);
        self.reshape(&[n, c, r, r, h, w])?
            .permute(&[0, 1, 4, 2, 5, 3])?
            .reshape(&[n, c, h * r, w * r])
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

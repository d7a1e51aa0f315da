//! 2-D convolution lowered to matrix multiply (im2col / col2im), and max-pool windows.
//!
//! One geometry, three kernels. With x: [N, C, H, W], w: [K, C/G, R, S] and y: [N, K, P, Q]
//! (G groups, Cg = C/G, Kg = K/G):
//!
//! - [`conv2d_forward`]:   y\[n,g\]  = W_g · im2col(x\[n,g\])                 ([Kg, Cg·R·S] · [Cg·R·S, P·Q])
//! - [`conv2d_backward_input`]: dx\[n,g\] = col2im(W_gᵀ · dy\[n,g\]), the transposed convolution
//! - [`conv2d_backward_weight`]: dW_g = Σ_n dy\[n,g\] · im2col(x\[n,g\])ᵀ
//!
//! The three are bilinear and each is the adjoint of another in one argument, so the engine
//! differentiates any of them with the other two, to any order. Images are spread over rayon's
//! threads; with fewer images than threads, the matrix products are parallel instead.

use crate::matmul::{gemm, GemmShape, MatRef};
use crate::{pool, Real};
use rayon::prelude::*;

/// The shape of one convolution, all sizes explicit, so a transposed convolution can use the
/// same kernels with its own output size (output_padding included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    /// N, the images in the batch.
    pub batch: usize,
    /// C, the input channels.
    pub in_channels: usize,
    /// H, the input height.
    pub in_h: usize,
    /// W, the input width.
    pub in_w: usize,
    /// K, the output channels.
    pub out_channels: usize,
    /// R, the kernel height.
    pub kernel_h: usize,
    /// S, the kernel width.
    pub kernel_w: usize,
    /// P, the output height: ⌊(H + 2·pad − dil·(R − 1) − 1)/stride⌋ + 1 for a forward convolution.
    pub out_h: usize,
    /// Q, the output width (likewise).
    pub out_w: usize,
    /// (vertical, horizontal) step between windows.
    pub stride: (usize, usize),
    /// (top/bottom, left/right) zero padding.
    pub padding: (usize, usize),
    /// (vertical, horizontal) spacing of the kernel's taps.
    pub dilation: (usize, usize),
    /// G: channels split into G groups, each convolved with its own K/G filters.
    pub groups: usize,
}

impl ConvGeometry {
    /// Output size of a convolution along one axis: ⌊(in + 2·pad − dil·(k − 1) − 1) / stride⌋ + 1,
    /// or `None` when the dilated kernel does not fit in the padded input, the kernel or the
    /// stride is 0, or a size overflows.
    pub fn conv_out_len(
        input: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
        dil: usize,
    ) -> Option<usize> {
        let span = dil.checked_mul(kernel.checked_sub(1)?)?.checked_add(1)?;
        let padded = input.checked_add(pad.checked_mul(2)?)?;
        if padded < span || stride == 0 {
            None
        } else {
            Some((padded - span) / stride + 1)
        }
    }

    /// The bound below which the GPU shaders take every size and parameter: they compute
    /// addresses in `u32` and tap positions in `i32`, with sums of a few such values.
    pub const GPU_LIMIT: usize = 1 << 28;

    /// Whether every size and parameter is below [`ConvGeometry::GPU_LIMIT`].
    pub fn fits_gpu(&self) -> bool {
        [
            self.batch,
            self.in_channels,
            self.in_h,
            self.in_w,
            self.out_channels,
            self.kernel_h,
            self.kernel_w,
            self.out_h,
            self.out_w,
            self.stride.0,
            self.stride.1,
            self.padding.0,
            self.padding.1,
            self.dilation.0,
            self.dilation.1,
            self.groups,
        ]
        .iter()
        .all(|&v| v < Self::GPU_LIMIT)
    }

    /// Elements of one image's column matrix (Cg·R·S rows of P·Q): the im2col buffer the CPU
    /// kernels allocate; `None` if it overflows.
    pub fn col_len(&self) -> Option<usize> {
        self.in_group_channels()
            .checked_mul(self.kernel_h)?
            .checked_mul(self.kernel_w)?
            .checked_mul(self.out_h)?
            .checked_mul(self.out_w)
    }
    fn in_group_channels(&self) -> usize {
        self.in_channels / self.groups
    }
    fn out_group_channels(&self) -> usize {
        self.out_channels / self.groups
    }
    /// Rows of one group's column matrix: Cg·R·S.
    fn col_rows(&self) -> usize {
        self.in_group_channels() * self.kernel_h * self.kernel_w
    }
    fn out_plane(&self) -> usize {
        self.out_h * self.out_w
    }
    fn in_image(&self) -> usize {
        self.in_channels * self.in_h * self.in_w
    }
    fn out_image(&self) -> usize {
        self.out_channels * self.out_plane()
    }
    /// N·C·H·W, the values of the input.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_image()
    }
    /// N·K·P·Q, the values of the output.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_image()
    }
    /// K·(C/G)·R·S, the values of the weight.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.col_rows()
    }
}

/// The output positions `o` whose tap `k` lands inside the input along one axis:
/// 0 ≤ o·stride + k·dil − pad < len, as a half-open range of o (empty if none).
#[inline]
fn valid_outputs(
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    len: usize,
    out_len: usize,
) -> (usize, usize) {
    let offset = (k * dil) as isize - pad as isize; // input position of o = 0
    let lo = if offset >= 0 {
        0
    } else {
        ((-offset) as usize).div_ceil(stride)
    };
    let hi = if (len as isize) <= offset {
        0
    } else {
        ((len as isize - offset) as usize).div_ceil(stride)
    };
    (lo.min(out_len), hi.min(out_len).max(lo.min(out_len)))
}

/// Unfold one group of one image: `col[(c·R + r)·S + s, p·Q + q] = x[c, p·sh + r·dh − ph, q·sw + s·dw − pw]`
/// (zero outside the image). Each (tap, output row) copies one strided run of the input row.
fn im2col<T: Real>(g: &ConvGeometry, x_group: &[T], col: &mut [T]) {
    let (r_len, s_len) = (g.kernel_h, g.kernel_w);
    let plane = g.out_plane();
    let (sw, pw, dw) = (g.stride.1, g.padding.1, g.dilation.1);
    for c in 0..g.in_group_channels() {
        let x_c = &x_group[c * g.in_h * g.in_w..(c + 1) * g.in_h * g.in_w];
        for r in 0..r_len {
            let (p_lo, p_hi) =
                valid_outputs(r, g.stride.0, g.padding.0, g.dilation.0, g.in_h, g.out_h);
            for s in 0..s_len {
                let row = &mut col[((c * r_len + r) * s_len + s) * plane..][..plane];
                let (q_lo, q_hi) = valid_outputs(s, sw, pw, dw, g.in_w, g.out_w);
                for p in 0..g.out_h {
                    let dst = &mut row[p * g.out_w..(p + 1) * g.out_w];
                    if p < p_lo || p >= p_hi || q_lo >= q_hi {
                        dst.iter_mut().for_each(|v| *v = T::ZERO);
                        continue;
                    }
                    let ih = p * g.stride.0 + r * g.dilation.0 - g.padding.0;
                    let x_row = &x_c[ih * g.in_w..(ih + 1) * g.in_w];
                    dst[..q_lo].iter_mut().for_each(|v| *v = T::ZERO);
                    dst[q_hi..].iter_mut().for_each(|v| *v = T::ZERO);
                    let first = q_lo * sw + s * dw - pw;
                    if sw == 1 {
                        dst[q_lo..q_hi].copy_from_slice(&x_row[first..first + q_hi - q_lo]);
                    } else {
                        for (v, iw) in dst[q_lo..q_hi].iter_mut().zip((first..).step_by(sw)) {
                            *v = x_row[iw];
                        }
                    }
                }
            }
        }
    }
}

/// Fold columns back onto one group of one image, summing overlaps: the adjoint of [`im2col`].
fn col2im<T: Real>(g: &ConvGeometry, col: &[T], x_group: &mut [T]) {
    let (r_len, s_len) = (g.kernel_h, g.kernel_w);
    let plane = g.out_plane();
    let (sw, pw, dw) = (g.stride.1, g.padding.1, g.dilation.1);
    for c in 0..g.in_group_channels() {
        let x_c = &mut x_group[c * g.in_h * g.in_w..(c + 1) * g.in_h * g.in_w];
        for r in 0..r_len {
            let (p_lo, p_hi) =
                valid_outputs(r, g.stride.0, g.padding.0, g.dilation.0, g.in_h, g.out_h);
            for s in 0..s_len {
                let row = &col[((c * r_len + r) * s_len + s) * plane..][..plane];
                let (q_lo, q_hi) = valid_outputs(s, sw, pw, dw, g.in_w, g.out_w);
                if q_lo >= q_hi {
                    continue;
                }
                for p in p_lo..p_hi {
                    let ih = p * g.stride.0 + r * g.dilation.0 - g.padding.0;
                    let x_row = &mut x_c[ih * g.in_w..(ih + 1) * g.in_w];
                    let src = &row[p * g.out_w + q_lo..p * g.out_w + q_hi];
                    let first = q_lo * sw + s * dw - pw;
                    for (&v, iw) in src.iter().zip((first..).step_by(sw)) {
                        x_row[iw] += v;
                    }
                }
            }
        }
    }
}

/// Whether to spread images over threads (else parallelise inside each product).
fn per_image_parallel(g: &ConvGeometry) -> bool {
    g.batch >= rayon::current_num_threads()
}

/// y = conv2d(x, w) without bias. x: [N, C, H, W], w: [K, C/G, R, S] → y: [N, K, P, Q].
pub fn conv2d_forward<T: Real>(g: &ConvGeometry, x: &[T], w: &[T]) -> Vec<T> {
    assert_eq!(x.len(), g.input_len(), "conv2d_forward: input length");
    assert_eq!(w.len(), g.weight_len(), "conv2d_forward: weight length");
    let mut y = pool::take(g.output_len());
    if y.is_empty() {
        return y;
    }
    if g.in_image() == 0 || g.col_rows() == 0 {
        // No input value reaches the output (no channels, or an empty image under padding):
        // every output is an empty sum.
        y.iter_mut().for_each(|v| *v = T::ZERO);
        return y;
    }
    let (rows, plane, kg) = (g.col_rows(), g.out_plane(), g.out_group_channels());
    let cg_len = g.in_group_channels() * g.in_h * g.in_w;
    let by_image = per_image_parallel(g);
    let one_image = |x_n: &[T], y_n: &mut [T], col: &mut Vec<T>| {
        for grp in 0..g.groups {
            im2col(g, &x_n[grp * cg_len..(grp + 1) * cg_len], col);
            let w_g = &w[grp * kg * rows..(grp + 1) * kg * rows];
            let y_g = &mut y_n[grp * kg * plane..(grp + 1) * kg * plane];
            gemm(
                GemmShape {
                    m: kg,
                    n: plane,
                    k: rows,
                },
                MatRef::row_major(w_g, rows),
                MatRef::row_major(col, plane),
                y_g,
                false,
                !by_image,
            );
        }
    };
    let col_len = rows * plane;
    if by_image {
        y.par_chunks_mut(g.out_image())
            .zip(x.par_chunks(g.in_image()))
            .for_each_init(
                || pool::Scratch::new(col_len),
                |col, (y_n, x_n)| one_image(x_n, y_n, col),
            );
    } else {
        let mut col = pool::Scratch::new(col_len);
        for (y_n, x_n) in y.chunks_mut(g.out_image()).zip(x.chunks(g.in_image())) {
            one_image(x_n, y_n, &mut col);
        }
    }
    y
}

/// dx = ∂⟨y, dy⟩/∂x for y = conv2d(x, w): the transposed convolution of dy with w.
/// dy: [N, K, P, Q], w: [K, C/G, R, S] → dx: [N, C, H, W].
pub fn conv2d_backward_input<T: Real>(g: &ConvGeometry, dy: &[T], w: &[T]) -> Vec<T> {
    assert_eq!(
        dy.len(),
        g.output_len(),
        "conv2d_backward_input: output-gradient length"
    );
    assert_eq!(
        w.len(),
        g.weight_len(),
        "conv2d_backward_input: weight length"
    );
    let mut dx = pool::take_zeroed(g.input_len());
    if dx.is_empty() || dy.is_empty() {
        return dx;
    }
    let (rows, plane, kg) = (g.col_rows(), g.out_plane(), g.out_group_channels());
    let cg_len = g.in_group_channels() * g.in_h * g.in_w;
    let by_image = per_image_parallel(g);
    let one_image = |dy_n: &[T], dx_n: &mut [T], col: &mut Vec<T>| {
        for grp in 0..g.groups {
            let w_g = &w[grp * kg * rows..(grp + 1) * kg * rows];
            let dy_g = &dy_n[grp * kg * plane..(grp + 1) * kg * plane];
            // col = W_gᵀ (rows x kg) · dy_g (kg x plane)
            gemm(
                GemmShape {
                    m: rows,
                    n: plane,
                    k: kg,
                },
                MatRef::transposed(w_g, rows),
                MatRef::row_major(dy_g, plane),
                col,
                false,
                !by_image,
            );
            col2im(g, col, &mut dx_n[grp * cg_len..(grp + 1) * cg_len]);
        }
    };
    let col_len = rows * plane;
    if by_image {
        dx.par_chunks_mut(g.in_image())
            .zip(dy.par_chunks(g.out_image()))
            .for_each_init(
                || pool::Scratch::new(col_len),
                |col, (dx_n, dy_n)| one_image(dy_n, dx_n, col),
            );
    } else {
        let mut col = pool::Scratch::new(col_len);
        for (dx_n, dy_n) in dx.chunks_mut(g.in_image()).zip(dy.chunks(g.out_image())) {
            one_image(dy_n, dx_n, &mut col);
        }
    }
    dx
}

/// dw = ∂⟨y, dy⟩/∂w for y = conv2d(x, w). x: [N, C, H, W], dy: [N, K, P, Q] → dw: [K, C/G, R, S].
pub fn conv2d_backward_weight<T: Real>(g: &ConvGeometry, x: &[T], dy: &[T]) -> Vec<T> {
    assert_eq!(
        x.len(),
        g.input_len(),
        "conv2d_backward_weight: input length"
    );
    assert_eq!(
        dy.len(),
        g.output_len(),
        "conv2d_backward_weight: output-gradient length"
    );
    let w_len = g.weight_len();
    let (rows, plane, kg) = (g.col_rows(), g.out_plane(), g.out_group_channels());
    let cg_len = g.in_group_channels() * g.in_h * g.in_w;
    if w_len == 0 || g.batch == 0 || plane == 0 || g.in_image() == 0 {
        return vec![T::ZERO; w_len];
    }
    let by_image = per_image_parallel(g);
    let one_image = |x_n: &[T], dy_n: &[T], dw: &mut Vec<T>, col: &mut Vec<T>| {
        for grp in 0..g.groups {
            im2col(g, &x_n[grp * cg_len..(grp + 1) * cg_len], col);
            let dy_g = &dy_n[grp * kg * plane..(grp + 1) * kg * plane];
            let dw_g = &mut dw[grp * kg * rows..(grp + 1) * kg * rows];
            // dW_g (kg x rows) += dy_g (kg x plane) · colᵀ (plane x rows)
            gemm(
                GemmShape {
                    m: kg,
                    n: rows,
                    k: plane,
                },
                MatRef::row_major(dy_g, plane),
                MatRef::transposed(col, plane),
                dw_g,
                true,
                !by_image,
            );
        }
    };
    let col_len = rows * plane;
    if by_image {
        // One contiguous run of images per thread, each summing its own partial; the partials
        // are then added in order. Fixed split points make the sum the same on every run
        // (gradient checks demand bit-identical reruns), which rayon's fold does not promise.
        let per_thread = g.batch.div_ceil(rayon::current_num_threads());
        let partials: Vec<Vec<T>> = x
            .par_chunks(per_thread * g.in_image())
            .zip(dy.par_chunks(per_thread * g.out_image()))
            .map(|(xs, dys)| {
                let (mut dw, mut col) = (vec![T::ZERO; w_len], pool::Scratch::new(col_len));
                for (x_n, dy_n) in xs.chunks(g.in_image()).zip(dys.chunks(g.out_image())) {
                    one_image(x_n, dy_n, &mut dw, &mut col);
                }
                dw
            })
            .collect();
        let mut partials = partials.into_iter();
        let mut dw = partials.next().expect("batch > 0");
        for p in partials {
            dw.iter_mut().zip(&p).for_each(|(a, b)| *a += *b);
        }
        dw
    } else {
        let mut dw = vec![T::ZERO; w_len];
        let mut col = pool::Scratch::new(col_len);
        for (x_n, dy_n) in x.chunks(g.in_image()).zip(dy.chunks(g.out_image())) {
            one_image(x_n, dy_n, &mut dw, &mut col);
        }
        dw
    }
}

/// For each max-pool window (same geometry fields as a convolution with one kernel per channel),
/// the flat index into x of its largest element (the first on ties; a NaN wins and stays);
/// padding never wins. x: [N, C, H, W]. `out_h`/`out_w` may exceed the convolution's output
/// size (ceil-mode pooling): taps past the input's end are skipped like padding.
pub fn max_pool2d_argmax<T: Real>(g: &ConvGeometry, x: &[T]) -> Vec<usize> {
    let (h, w) = (g.in_h, g.in_w);
    let mut idx = vec![0usize; g.batch * g.in_channels * g.out_plane()];
    if idx.is_empty() {
        return idx;
    }
    // Per output row and column, the window's taps inside the input (computed once). The
    // in-range taps t satisfy 0 ≤ start + t·dil < len, solved for t rather than tried one by
    // one: a window may be far larger than the input, all but a few taps in the padding.
    let span = |o: usize, stride: usize, pad: usize, dil: usize, k: usize, len: usize| {
        let (start, dil) = (o as i128 * stride as i128 - pad as i128, dil as i128);
        let first = if start >= 0 {
            0
        } else {
            (-start + dil - 1) / dil
        };
        let last = if start >= len as i128 {
            0
        } else {
            ((len as i128 - 1 - start) / dil + 1).min(k as i128)
        };
        (first..last.max(first))
            .map(|t| (start + t * dil) as usize)
            .collect::<Vec<usize>>()
    };
    let rows: Vec<Vec<usize>> = (0..g.out_h)
        .map(|p| span(p, g.stride.0, g.padding.0, g.dilation.0, g.kernel_h, h))
        .collect();
    let cols: Vec<Vec<usize>> = (0..g.out_w)
        .map(|q| span(q, g.stride.1, g.padding.1, g.dilation.1, g.kernel_w, w))
        .collect();
    let (kh, kw, (sh, sw), (dh, dw)) = (g.kernel_h, g.kernel_w, g.stride, g.dilation);
    // Windows wholly inside the input: no padding and no ceil-mode overhang past the end.
    let unpadded = g.padding == (0, 0)
        && (g.out_h - 1) * sh + dh * (kh - 1) < h
        && (g.out_w - 1) * sw + dw * (kw - 1) < w;
    let one_plane = |plane: usize, out: &mut [usize]| {
        // Locals, not captures: writes to `out` could alias captured values, which the
        // compiler would then reload on every iteration.
        let (h, w, kh, kw, sh, sw, dh, dw, out_h, out_w) =
            (h, w, kh, kw, sh, sw, dh, dw, g.out_h, g.out_w);
        let x_plane = &x[plane * h * w..(plane + 1) * h * w];
        let base = plane * h * w;
        if unpadded
            && (kh, kw, sh, sw, dh, dw) == (2, 2, 2, 2, 1, 1)
            && !x_plane.iter().any(|v| v.is_nan())
        {
            // The usual 2x2/2 pool over a NaN-free plane, written as independent compares so
            // the compiler can vectorise across windows: left vs right in each row (left wins
            // ties), then top vs bottom (top wins), which is row-major "first maximum".
            for p in 0..out_h {
                let top = &x_plane[2 * p * w..][..2 * out_w];
                let bottom = &x_plane[(2 * p + 1) * w..][..2 * out_w];
                for (q, o) in out[p * out_w..(p + 1) * out_w].iter_mut().enumerate() {
                    let (a, b, c, d) =
                        (top[2 * q], top[2 * q + 1], bottom[2 * q], bottom[2 * q + 1]);
                    let (top_right, bottom_right) = (b > a, d > c);
                    let (top_max, bottom_max) = (
                        if top_right { b } else { a },
                        if bottom_right { d } else { c },
                    );
                    let use_bottom = bottom_max > top_max;
                    let right = if use_bottom { bottom_right } else { top_right };
                    *o = base + (2 * p + use_bottom as usize) * w + 2 * q + right as usize;
                }
            }
            return;
        }
        if unpadded {
            // Every window is whole: plain index arithmetic, values in registers. Only the
            // index is returned, so the value can follow `max` (no branch), and the index
            // moves by a conditional move: on random data a branch here mispredicts half the
            // time and costs more than the loads. The first NaN, once seen, holds the index.
            for p in 0..out_h {
                for (q, o) in out[p * out_w..(p + 1) * out_w].iter_mut().enumerate() {
                    let first = p * sh * w + q * sw;
                    let (mut best, mut best_i) = (x_plane[first], first);
                    let mut nan_seen = best.is_nan();
                    for r in 0..kh {
                        for c in 0..kw {
                            let i = first + r * dh * w + c * dw;
                            let v = x_plane[i];
                            let better = !nan_seen & ((v > best) | v.is_nan());
                            nan_seen |= v.is_nan();
                            best = best.max(v);
                            best_i = std::hint::select_unpredictable(better, i, best_i);
                        }
                    }
                    *o = base + best_i;
                }
            }
            return;
        }
        for (p, ihs) in rows.iter().enumerate() {
            for (q, iws) in cols.iter().enumerate() {
                let o = &mut out[p * g.out_w + q];
                if ihs.is_empty() || iws.is_empty() {
                    // Only reachable with a window wholly in the padding, which callers reject.
                    *o = base;
                    continue;
                }
                let mut best_i = ihs[0] * w + iws[0];
                let mut best = x_plane[best_i];
                for &ih in ihs {
                    for &iw in iws {
                        let i = ih * w + iw;
                        let v = x_plane[i];
                        if (v > best || v.is_nan()) && !best.is_nan() {
                            best = v;
                            best_i = i;
                        }
                    }
                }
                *o = base + best_i;
            }
        }
    };
    if g.out_plane() == 0 {
        return idx;
    }
    if idx.len() >= crate::PARALLEL_THRESHOLD {
        idx.par_chunks_mut(g.out_plane())
            .enumerate()
            .for_each(|(pl, out)| one_plane(pl, out));
    } else {
        idx.chunks_mut(g.out_plane())
            .enumerate()
            .for_each(|(pl, out)| one_plane(pl, out));
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct seven-loop convolution, the definition the lowered kernels must match.
    fn conv_direct(g: &ConvGeometry, x: &[f64], w: &[f64]) -> Vec<f64> {
        let (cg, kg) = (g.in_channels / g.groups, g.out_channels / g.groups);
        let mut y = vec![0.0; g.output_len()];
        for n in 0..g.batch {
            for k in 0..g.out_channels {
                let grp = k / kg;
                for p in 0..g.out_h {
                    for q in 0..g.out_w {
                        let mut acc = 0.0;
                        for c in 0..cg {
                            for r in 0..g.kernel_h {
                                for s in 0..g.kernel_w {
                                    let ih = (p * g.stride.0 + r * g.dilation.0) as isize
                                        - g.padding.0 as isize;
                                    let iw = (q * g.stride.1 + s * g.dilation.1) as isize
                                        - g.padding.1 as isize;
                                    if ih < 0
                                        || iw < 0
                                        || ih >= g.in_h as isize
                                        || iw >= g.in_w as isize
                                    {
                                        continue;
                                    }
                                    let xc = grp * cg + c;
                                    acc += x[((n * g.in_channels + xc) * g.in_h + ih as usize)
                                        * g.in_w
                                        + iw as usize]
                                        * w[((k * cg + c) * g.kernel_h + r) * g.kernel_w + s];
                                }
                            }
                        }
                        y[((n * g.out_channels + k) * g.out_h + p) * g.out_w + q] = acc;
                    }
                }
            }
        }
        y
    }

    /// [batch, channels, height, out channels, kernel, stride, pad, dilation, groups].
    fn geometry(p: [usize; 9]) -> ConvGeometry {
        let [batch, c, h, k, r, stride, pad, dil, groups] = p;
        let out = ConvGeometry::conv_out_len(h, r, stride, pad, dil).unwrap();
        ConvGeometry {
            batch,
            in_channels: c,
            in_h: h,
            in_w: h + 1,
            out_channels: k,
            kernel_h: r,
            kernel_w: r,
            out_h: out,
            out_w: ConvGeometry::conv_out_len(h + 1, r, stride, pad, dil).unwrap(),
            stride: (stride, stride),
            padding: (pad, pad),
            dilation: (dil, dil),
            groups,
        }
    }

    fn values(n: usize, seed: f64) -> Vec<f64> {
        (0..n).map(|i| ((i as f64 + seed) * 0.731).sin()).collect()
    }

    #[test]
    fn max_pool_argmax_takes_first_of_ties_propagates_nan_and_ignores_padding() {
        let pool = |h: usize, w: usize, k: usize, stride: usize, pad: usize| ConvGeometry {
            batch: 1,
            in_channels: 1,
            in_h: h,
            in_w: w,
            out_channels: 1,
            kernel_h: k,
            kernel_w: k,
            out_h: ConvGeometry::conv_out_len(h, k, stride, pad, 1).unwrap(),
            out_w: ConvGeometry::conv_out_len(w, k, stride, pad, 1).unwrap(),
            stride: (stride, stride),
            padding: (pad, pad),
            dilation: (1, 1),
            groups: 1,
        };
        // 2x4 input, 2x2 windows: [1 3 | 5 5]
        //                         [2 0 | 5 4]
        let x = [1.0f32, 3.0, 5.0, 5.0, 2.0, 0.0, 5.0, 4.0];
        assert_eq!(max_pool2d_argmax(&pool(2, 4, 2, 2, 0), &x), vec![1, 2]);
        let mut with_nan = x;
        with_nan[4] = f32::NAN;
        with_nan[7] = f32::NAN;
        assert_eq!(
            max_pool2d_argmax(&pool(2, 4, 2, 2, 0), &with_nan),
            vec![4, 7]
        );
        // 3x3 windows, stride 1, padding 1, all values negative: padding (zero) never wins.
        let neg: Vec<f64> = (0..9).map(|i| -1.0 - i as f64).collect();
        assert_eq!(
            max_pool2d_argmax(&pool(3, 3, 3, 1, 1), &neg),
            vec![0, 0, 1, 0, 0, 1, 3, 3, 4]
        );
    }

    #[test]
    fn lowered_conv_matches_direct_definition_and_adjoints_hold() {
        for &p in &[
            [1, 1, 5, 1, 3, 1, 0, 1, 1],
            [3, 4, 6, 6, 3, 2, 1, 1, 2],
            [2, 6, 7, 3, 2, 1, 2, 2, 3],
            [5, 2, 4, 4, 1, 3, 0, 1, 1],
        ] {
            let g = geometry(p);
            let x = values(g.input_len(), 0.5);
            let w = values(g.weight_len(), 1.5);
            let y = conv2d_forward(&g, &x, &w);
            let want = conv_direct(&g, &x, &w);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "{g:?}");
            }
            // <conv(x, w), dy> = <x, conv_bwd_input(dy, w)> = <w, conv_bwd_weight(x, dy)>
            let dy = values(g.output_len(), 2.5);
            let lhs: f64 = y.iter().zip(&dy).map(|(a, b)| a * b).sum();
            let dx = conv2d_backward_input(&g, &dy, &w);
            let via_x: f64 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
            let dw = conv2d_backward_weight(&g, &x, &dy);
            let via_w: f64 = w.iter().zip(&dw).map(|(a, b)| a * b).sum();
            assert!((lhs - via_x).abs() < 1e-9 * (1.0 + lhs.abs()), "{g:?}");
            assert!((lhs - via_w).abs() < 1e-9 * (1.0 + lhs.abs()), "{g:?}");
        }
    }
}

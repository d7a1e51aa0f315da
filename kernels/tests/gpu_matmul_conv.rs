//! GPU matrix product, convolutions and max-pool argmax against their CPU twins, on random
//! small shapes (lavapipe runs these tiled kernels one invocation at a time, so sizes stay
//! small), plus fixed shapes that cross the 64×64×16 tiles and degenerate m = 1 or n = 1.
#![cfg(feature = "gpu")]

mod gpu_common;

use ferrograd_kernels::conv::{self as cpu_conv, ConvGeometry};
use ferrograd_kernels::elementwise::broadcast_strides;
use ferrograd_kernels::gpu::{conv as gpu_conv, matmul as gpu_mm, Gpu};
use ferrograd_kernels::matmul::{gemm, GemmShape, MatRef};
use ferrograd_kernels::numel;
use gpu_common::{assert_close, gpu_or_skip};
use proptest::prelude::*;

fn values(n: usize, seed: u64) -> Vec<f32> {
    // A cheap deterministic spread over [−1, 1].
    (0..n)
        .map(|i| {
            let h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
            let h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            ((h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// The CPU reference: one `gemm` per output batch index, operands picked by broadcast strides.
#[allow(clippy::too_many_arguments)]
fn cpu_batched_matmul(
    a: &[f32],
    a_batch: &[usize],
    transpose_a: bool,
    b: &[f32],
    b_batch: &[usize],
    transpose_b: bool,
    out_batch: &[usize],
    (m, n, k): (usize, usize, usize),
) -> Vec<f32> {
    let (sa, sb) = (
        broadcast_strides(a_batch, out_batch),
        broadcast_strides(b_batch, out_batch),
    );
    let mut c = vec![0.0; numel(out_batch) * m * n];
    for z in 0..numel(out_batch) {
        let (mut rem, mut ia, mut ib) = (z, 0, 0);
        for d in (0..out_batch.len()).rev() {
            let i = rem % out_batch[d];
            rem /= out_batch[d];
            ia += i * sa[d];
            ib += i * sb[d];
        }
        let a_z = &a[ia * m * k..(ia + 1) * m * k];
        let b_z = &b[ib * k * n..(ib + 1) * k * n];
        gemm(
            GemmShape { m, n, k },
            if transpose_a {
                MatRef::transposed(a_z, m)
            } else {
                MatRef::row_major(a_z, k)
            },
            if transpose_b {
                MatRef::transposed(b_z, k)
            } else {
                MatRef::row_major(b_z, n)
            },
            &mut c[z * m * n..(z + 1) * m * n],
            false,
            false,
        );
    }
    c
}

#[allow(clippy::too_many_arguments)]
fn check_matmul(
    gpu: &Gpu,
    a_batch: &[usize],
    transpose_a: bool,
    b_batch: &[usize],
    transpose_b: bool,
    out_batch: &[usize],
    (m, n, k): (usize, usize, usize),
    seed: u64,
) {
    let a = values(numel(a_batch) * m * k, seed);
    let b = values(numel(b_batch) * k * n, !seed);
    let got = gpu.read_f32(&gpu_mm::batched_matmul(
        &gpu.upload_f32(&a),
        a_batch,
        transpose_a,
        &gpu.upload_f32(&b),
        b_batch,
        transpose_b,
        out_batch,
        m,
        n,
        k,
    ));
    let want = cpu_batched_matmul(
        &a,
        a_batch,
        transpose_a,
        &b,
        b_batch,
        transpose_b,
        out_batch,
        (m, n, k),
    );
    assert_close(
        &format!("matmul {a_batch:?}{transpose_a} · {b_batch:?}{transpose_b} → {out_batch:?} (m, n, k) = ({m}, {n}, {k})"),
        &got,
        &want,
    );
}

/// A geometry from [batch, groups, Cg, Kg, H, W, R, S, stride, pad, dilation], or `None`
/// when the dilated kernel does not fit the padded input.
/// A max-pool geometry with PyTorch's ceil-mode output size, or `None` when a window does
/// not fit, the padding is over half the kernel, or a window lies wholly outside the input.
fn ceil_pool_geometry(
    h: usize,
    w: usize,
    (kh, kw): (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    dil: (usize, usize),
) -> Option<ConvGeometry> {
    let out = |len: usize, k: usize, s: usize, p: usize, d: usize| -> Option<usize> {
        if p > k / 2 {
            return None;
        }
        let span = d * (k - 1) + 1;
        let num = (len + 2 * p).checked_sub(span)?;
        let mut o = num.div_ceil(s) + 1;
        if (o - 1) * s >= len + p {
            o -= 1;
        }
        // Every window must hold a tap inside the input.
        (0..o)
            .all(|i| {
                (0..k).any(|t| (0..len as isize).contains(&((i * s + t * d) as isize - p as isize)))
            })
            .then_some(o)
    };
    Some(ConvGeometry {
        batch: 2,
        in_channels: 2,
        in_h: h,
        in_w: w,
        out_channels: 2,
        kernel_h: kh,
        kernel_w: kw,
        out_h: out(h, kh, stride.0, pad.0, dil.0)?,
        out_w: out(w, kw, stride.1, pad.1, dil.1)?,
        stride,
        padding: pad,
        dilation: dil,
        groups: 2,
    })
}

fn geometry(p: [usize; 11]) -> Option<ConvGeometry> {
    let [batch, groups, cg, kg, h, w, r, s, stride, pad, dil] = p;
    Some(ConvGeometry {
        batch,
        in_channels: groups * cg,
        in_h: h,
        in_w: w,
        out_channels: groups * kg,
        kernel_h: r,
        kernel_w: s,
        out_h: ConvGeometry::conv_out_len(h, r, stride, pad, dil)?,
        out_w: ConvGeometry::conv_out_len(w, s, stride, pad, dil)?,
        stride: (stride, stride),
        padding: (pad, pad),
        dilation: (dil, dil),
        groups,
    })
}

fn check_conv(gpu: &Gpu, g: &ConvGeometry, seed: u64) {
    let x = values(g.input_len(), seed);
    let w = values(g.weight_len(), seed ^ 0x5555);
    let dy = values(g.output_len(), seed ^ 0xAAAA);
    let (gx, gw, gdy) = (gpu.upload_f32(&x), gpu.upload_f32(&w), gpu.upload_f32(&dy));
    assert_close(
        &format!("conv2d_forward {g:?}"),
        &gpu.read_f32(&gpu_conv::conv2d_forward(g, &gx, &gw)),
        &cpu_conv::conv2d_forward(g, &x, &w),
    );
    assert_close(
        &format!("conv2d_backward_input {g:?}"),
        &gpu.read_f32(&gpu_conv::conv2d_backward_input(g, &gdy, &gw)),
        &cpu_conv::conv2d_backward_input(g, &dy, &w),
    );
    assert_close(
        &format!("conv2d_backward_weight {g:?}"),
        &gpu.read_f32(&gpu_conv::conv2d_backward_weight(g, &gx, &gdy)),
        &cpu_conv::conv2d_backward_weight(g, &x, &dy),
    );
}

fn check_argmax(gpu: &Gpu, g: &ConvGeometry, x: &[f32]) {
    let got = gpu.read_u32(&gpu_conv::max_pool2d_argmax(g, &gpu.upload_f32(x)));
    let want: Vec<u32> = cpu_conv::max_pool2d_argmax(g, x)
        .into_iter()
        .map(|i| i as u32)
        .collect();
    assert_eq!(got, want, "max_pool2d_argmax {g:?} on {x:?}");
}

/// A batch shape and two operand batch shapes that broadcast to it: a suffix of it with
/// some axes set to 1.
fn batches() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>)> {
    (
        prop::collection::vec(1usize..=3, 0..=2),
        0usize..=2,
        0usize..=2,
        any::<u8>(),
    )
        .prop_map(|(out, keep_a, keep_b, mask)| {
            let part = |keep: usize, bits: u8| -> Vec<usize> {
                let keep = keep.min(out.len());
                out[out.len() - keep..]
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| if bits >> i & 1 == 1 { 1 } else { d })
                    .collect()
            };
            (part(keep_a, mask), part(keep_b, mask >> 4), out)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn batched_matmul_matches_cpu(
        (a_batch, b_batch, out_batch) in batches(),
        m in 1usize..=20,
        n in 1usize..=20,
        k in 1usize..=20,
        transpose_a in any::<bool>(),
        transpose_b in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let Some(gpu) = gpu_or_skip() else { return Ok(()) };
        check_matmul(gpu, &a_batch, transpose_a, &b_batch, transpose_b, &out_batch, (m, n, k), seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn convolutions_match_cpu(
        batch in 1usize..=3,
        groups in 1usize..=3,
        cg in 1usize..=3,
        kg in 1usize..=3,
        h in 1usize..=9,
        w in 1usize..=9,
        r in 1usize..=4,
        s in 1usize..=4,
        stride in 1usize..=3,
        pad in 0usize..=2,
        dil in 1usize..=2,
        seed in any::<u64>(),
    ) {
        let g = geometry([batch, groups, cg, kg, h, w, r, s, stride, pad, dil]);
        prop_assume!(g.is_some());
        let Some(gpu) = gpu_or_skip() else { return Ok(()) };
        check_conv(gpu, &g.unwrap(), seed);
    }

    #[test]
    fn max_pool_argmax_matches_cpu_on_distinct_values(
        batch in 1usize..=2,
        channels in 1usize..=3,
        h in 1usize..=9,
        w in 1usize..=9,
        r in 1usize..=4,
        s in 1usize..=4,
        stride in 1usize..=3,
        pad in 0usize..=2,
        dil in 1usize..=2,
        seed in any::<u64>(),
    ) {
        let g = geometry([batch, 1, channels, channels, h, w, r, s, stride, pad, dil]);
        prop_assume!(g.is_some());
        let Some(gpu) = gpu_or_skip() else { return Ok(()) };
        let g = g.unwrap();
        // Distinct values: the ranks of random keys, centred so that many are negative (the
        // padding, read as nothing rather than 0, must still never win).
        let keys = values(g.input_len(), seed);
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&i, &j| keys[i].total_cmp(&keys[j]));
        let mut x = vec![0.0f32; keys.len()];
        for (rank, &i) in order.iter().enumerate() {
            x[i] = rank as f32 - (keys.len() / 2) as f32;
        }
        check_argmax(gpu, &g, &x);
    }

    /// Ceil-mode pooling (PyTorch's output size): the last window may overhang the input's
    /// end, past the padding; separate heights and widths for every parameter.
    #[test]
    fn max_pool_argmax_matches_cpu_in_ceil_mode(
        h in 1usize..=7,
        w in 1usize..=7,
        r in 1usize..=3,
        s in 1usize..=3,
        stride in (1usize..=3, 1usize..=3),
        pad in (0usize..=1, 0usize..=1),
        dil in (1usize..=2, 1usize..=2),
        seed in any::<u64>(),
    ) {
        let g = ceil_pool_geometry(h, w, (r, s), stride, pad, dil);
        prop_assume!(g.is_some());
        let Some(gpu) = gpu_or_skip() else { return Ok(()) };
        let g = g.unwrap();
        let x: Vec<f32> = values(g.input_len(), seed);
        check_argmax(gpu, &g, &x);
    }

    #[test]
    fn max_pool_argmax_matches_cpu_on_ties_and_nans(
        h in 2usize..=6,
        w in 2usize..=6,
        r in 1usize..=3,
        stride in 1usize..=2,
        pad in 0usize..=1,
        levels in prop::collection::vec(0u8..5, 72),
    ) {
        let g = geometry([2, 1, 3, 3, h, w, r, r, stride, pad, 1]);
        prop_assume!(g.is_some());
        let Some(gpu) = gpu_or_skip() else { return Ok(()) };
        let g = g.unwrap();
        // Few levels, so windows tie; level 4 is a NaN.
        let x: Vec<f32> = (0..g.input_len())
            .map(|i| match levels[i % levels.len()] {
                4 => f32::NAN,
                l => l as f32 - 2.0,
            })
            .collect();
        check_argmax(gpu, &g, &x);
    }
}

#[test]
fn matmul_sizes_off_the_tile_grid() {
    let Some(gpu) = gpu_or_skip() else { return };
    // Two row tiles, two column tiles, three reduction tiles, none of them full.
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        check_matmul(gpu, &[2], ta, &[1], tb, &[2], (70, 65, 33), 7);
    }
    check_matmul(gpu, &[], false, &[], false, &[], (129, 67, 17), 8);
}

#[test]
fn matmul_with_a_single_row_or_column() {
    let Some(gpu) = gpu_or_skip() else { return };
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        check_matmul(gpu, &[3], ta, &[3], tb, &[3], (1, 100, 37), 1);
        check_matmul(gpu, &[], ta, &[2], tb, &[2], (45, 1, 20), 2);
        check_matmul(gpu, &[1], ta, &[], tb, &[1], (1, 1, 50), 3);
        check_matmul(gpu, &[2, 1], ta, &[3], tb, &[2, 3], (9, 11, 1), 4);
    }
}

#[test]
fn matmul_with_empty_reduction_is_zero() {
    let Some(gpu) = gpu_or_skip() else { return };
    let empty = gpu.upload_f32(&[]);
    let c = gpu_mm::batched_matmul(&empty, &[2], false, &empty, &[2], true, &[2], 3, 4, 0);
    assert_eq!(gpu.read_f32(&c), vec![0.0; 24]);
}

#[test]
fn convolutions_off_the_tile_grid() {
    let Some(gpu) = gpu_or_skip() else { return };
    // 70 output channels (two row tiles); 2·24·24 = 1,152 output pixels (18 column tiles,
    // and a weight-gradient reduction long enough to be split into chunks).
    check_conv(
        gpu,
        &geometry([2, 1, 4, 70, 24, 24, 3, 3, 1, 1, 1]).unwrap(),
        11,
    );
    // Groups, strides and dilation with 66 input channels per group (two row tiles of the
    // input gradient) and a 4×4 kernel.
    check_conv(
        gpu,
        &geometry([2, 2, 66, 5, 11, 13, 4, 4, 2, 2, 2]).unwrap(),
        12,
    );
    // A 1×1 output from a 1×1 input, and a single output channel.
    check_conv(
        gpu,
        &geometry([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1]).unwrap(),
        13,
    );
    check_conv(
        gpu,
        &geometry([3, 1, 5, 1, 7, 6, 2, 3, 3, 0, 1]).unwrap(),
        14,
    );
}

#[test]
fn max_pool_argmax_edge_cases() {
    let Some(gpu) = gpu_or_skip() else { return };
    let pool = |h, w, k, stride, pad| geometry([1, 1, 1, 1, h, w, k, k, stride, pad, 1]).unwrap();
    // 2x4 input, 2x2 windows: [1 3 | 5 5] / [2 0 | 5 4]: first of ties, then NaNs win and stay.
    let x = [1.0f32, 3.0, 5.0, 5.0, 2.0, 0.0, 5.0, 4.0];
    check_argmax(gpu, &pool(2, 4, 2, 2, 0), &x);
    let mut with_nan = x;
    with_nan[4] = f32::NAN;
    with_nan[7] = f32::NAN;
    let got = gpu.read_u32(&gpu_conv::max_pool2d_argmax(
        &pool(2, 4, 2, 2, 0),
        &gpu.upload_f32(&with_nan),
    ));
    assert_eq!(got, vec![4, 7]);
    // All values negative, padding 1: the padding never wins.
    let neg: Vec<f32> = (0..9).map(|i| -1.0 - i as f32).collect();
    let got = gpu.read_u32(&gpu_conv::max_pool2d_argmax(
        &pool(3, 3, 3, 1, 1),
        &gpu.upload_f32(&neg),
    ));
    assert_eq!(got, vec![0, 0, 1, 0, 0, 1, 3, 3, 4]);
}

//! (Unit tests of `conv.rs`, beside it because they read its private `ConvDraw`.)
//! Convolutions across their hyper-parameters: every combination of stride, padding, dilation
//! and groups (and output_padding for the transposed form) at order 1, random draws at order 2,
//! and the adjoint identity ⟨conv2d(x, w), y⟩ = ⟨x, conv_transpose2d(y, w)⟩.

use super::ConvDraw;
use crate::gradcheck::{check_order, Tolerances};
use crate::{Conv2dParams, ConvTranspose2dParams, DType, Rng, Tensor};
use proptest::prelude::*;

fn draw(
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
    kernel: (usize, usize),
) -> ConvDraw {
    let span = (dilation * (kernel.0 - 1) + 1, dilation * (kernel.1 - 1) + 1);
    ConvDraw {
        batch: 2,
        groups,
        in_per_group: 2,
        out_per_group: 1 + groups % 2,
        kernel,
        stride,
        padding,
        dilation,
        size: (span.0 + 2, span.1 + 1),
    }
}

fn assert_passes(case: crate::checks::CheckCase, order: usize, rng: &mut Rng) {
    let outcome = check_order(
        case.f.clone(),
        &case.inputs,
        order,
        Tolerances::default(),
        rng,
    )
    .expect("check runs");
    assert!(
        outcome.passed(),
        "{} order {order}: {:?}",
        case.label,
        outcome.failure
    );
}

#[test]
fn every_conv2d_combination_at_first_order() {
    let mut rng = Rng::new(11);
    for stride in 1..=3 {
        for padding in 0..=2 {
            for dilation in 1..=2 {
                for groups in 1..=3 {
                    for kernel in [(1, 1), (2, 3), (3, 3)] {
                        assert_passes(
                            draw(stride, padding, dilation, groups, kernel).conv2d_case(&mut rng),
                            1,
                            &mut rng,
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_conv_transpose2d_combination_at_first_order() {
    let mut rng = Rng::new(12);
    for stride in 1..=3 {
        for padding in 0..=1 {
            for dilation in 1..=2 {
                for groups in 1..=2 {
                    // conv_transpose2d_case draws each valid output_padding (below stride or
                    // dilation); several draws per geometry cover them.
                    for _ in 0..stride.max(dilation) {
                        assert_passes(
                            draw(stride, padding, dilation, groups, (3, 2))
                                .conv_transpose2d_case(&mut rng),
                            1,
                            &mut rng,
                        );
                    }
                }
            }
        }
    }
}

fn conv_draws() -> impl Strategy<Value = ConvDraw> {
    (
        1usize..=2,
        1usize..=3,
        1usize..=2,
        1usize..=2,
        (1usize..=3, 1usize..=3),
        1usize..=3,
        0usize..=2,
        1usize..=2,
        (1usize..=2, 1usize..=2),
    )
        .prop_map(
            |(
                batch,
                groups,
                in_per_group,
                out_per_group,
                kernel,
                stride,
                padding,
                dilation,
                extra,
            )| {
                let span = (dilation * (kernel.0 - 1) + 1, dilation * (kernel.1 - 1) + 1);
                ConvDraw {
                    batch,
                    groups,
                    in_per_group,
                    out_per_group,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    size: (span.0 + extra.0, span.1 + extra.1),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_second_order_on_random_geometry(d in conv_draws(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        assert_passes(d.conv2d_case(&mut rng), 2, &mut rng);
    }

    #[test]
    fn conv_transpose2d_second_order_on_random_geometry(d in conv_draws(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        assert_passes(d.conv_transpose2d_case(&mut rng), 2, &mut rng);
    }

    /// conv_transpose2d is the adjoint of conv2d: ⟨conv2d(x, w), y⟩ = ⟨x, conv_transpose2d(y, w)⟩.
    #[test]
    fn conv_transpose2d_is_the_adjoint_of_conv2d(d in conv_draws(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let (c, k) = (d.in_per_group * d.groups, d.out_per_group * d.groups);
        let x = Tensor::randn(&[d.batch, c, d.size.0, d.size.1], 0.0, 1.0, DType::F64, &mut rng)?;
        let w = Tensor::randn(&[k, d.in_per_group, d.kernel.0, d.kernel.1], 0.0, 1.0, DType::F64, &mut rng)?;
        let p = Conv2dParams { stride: (d.stride, d.stride), padding: (d.padding, d.padding), dilation: (d.dilation, d.dilation), groups: d.groups };
        let conv = x.conv2d(&w, None, p).unwrap();
        let y = Tensor::randn(conv.shape(), 0.0, 1.0, DType::F64, &mut rng)?;
        // The output_padding that maps y's size back to x's exactly.
        let span = |k: usize| d.dilation * (k - 1) + 1;
        let op = ((d.size.0 + 2 * d.padding - span(d.kernel.0)) % d.stride, (d.size.1 + 2 * d.padding - span(d.kernel.1)) % d.stride);
        let pt = ConvTranspose2dParams { stride: p.stride, padding: p.padding, output_padding: op, dilation: p.dilation, groups: p.groups };
        let back = y.conv_transpose2d(&w, None, pt).unwrap();
        prop_assert_eq!(back.shape(), x.shape());
        let lhs: f64 = conv.to_vec_f64().iter().zip(y.to_vec_f64()).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.to_vec_f64().iter().zip(back.to_vec_f64()).map(|(a, b)| a * b).sum();
        prop_assert!((lhs - rhs).abs() <= 1e-10 * (1.0 + lhs.abs()), "{} vs {}", lhs, rhs);
    }
}

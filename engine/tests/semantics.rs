//! Autodiff semantics a user relies on without reading the source: every op's output is its own
//! node, `grad` refuses what it cannot answer, NaN propagates, empty reductions give what
//! PyTorch gives, and f32 sums keep their digits.

use ferrograd_engine::{
    grad, grad_with, no_grad, DType, Device, ErrorKind, GradOptions, Result, Rng, Tensor,
};

fn t64(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_f64s(values, shape, DType::F64).unwrap()
}

fn gpu_or_skip() -> Option<Device> {
    match Device::gpu() {
        Ok(d) => Some(d),
        Err(e) if std::env::var("FERROGRAD_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("skipped on the GPU: {e}");
            None
        }
        Err(e) => panic!("FERROGRAD_REQUIRE_GPU=1 but there is no GPU: {e}"),
    }
}

// ---- every op's output is its own node ---------------------------------------------------

/// Each way an op can have nothing to change. With v = op(x) and L = Σ v·x, ∂L/∂v must be x
/// (v's own uses) and ∂L/∂x must be 2x (both uses); an op that returned x itself would give
/// 2x for the first.
#[test]
fn ops_that_change_nothing_still_return_their_own_node() {
    type NoOp = (&'static str, Vec<usize>, fn(&Tensor) -> Result<Tensor>);
    let forms: Vec<NoOp> = vec![
        ("reshape to the same shape", vec![2, 3], |x| {
            x.reshape(&[2, 3])
        }),
        ("the identity permutation", vec![2, 3], |x| {
            x.permute(&[0, 1])
        }),
        ("transpose(d, d)", vec![2, 3], |x| x.transpose(1, 1)),
        ("transpose(-1, 1)", vec![2, 3], |x| x.transpose(-1, 1)),
        ("broadcast_to the same shape", vec![2, 3], |x| {
            x.broadcast_to(&[2, 3])
        }),
        ("concat of one tensor", vec![2, 3], |x| {
            Tensor::concat(std::slice::from_ref(x), 1)
        }),
        ("sum over a size-1 axis, keepdim", vec![2, 1], |x| {
            x.sum(&[1], true)
        }),
        ("sum_to the same shape", vec![2, 3], |x| x.sum_to(&[2, 3])),
        ("sum_all of a rank-0 tensor", vec![], |x| x.sum_all()),
        ("max_all of a rank-0 tensor", vec![], |x| x.max_all()),
        ("max over a size-1 axis, keepdim", vec![3, 1], |x| {
            x.max(&[1], true)
        }),
        ("flatten of a rank-1 tensor", vec![4], |x| x.flatten(0)),
        ("to_dtype of its own dtype", vec![2, 3], |x| {
            x.to_dtype(DType::F64)
        }),
        ("to its own device", vec![2, 3], |x| x.to(Device::Cpu)),
        ("dropout when not training", vec![2, 3], |x| {
            x.dropout(0.5, false, &mut Rng::new(0))
        }),
        ("dropout with p = 0", vec![2, 3], |x| {
            x.dropout(0.0, true, &mut Rng::new(0))
        }),
    ];
    for (what, shape, op) in forms {
        let n: usize = shape.iter().product();
        let values: Vec<f64> = (0..n).map(|i| 0.5 + i as f64).collect();
        let x = t64(&values, &shape).requires_grad_();
        let v = op(&x).unwrap();
        assert_ne!(v.id(), x.id(), "{what}: returned its input");
        let loss = v.mul(&x).unwrap().sum_all().unwrap();
        let g = grad(&[&loss], &[&v, &x], None, false).unwrap();
        assert_eq!(g[0].to_vec_f64(), values, "{what}: ∂L/∂v");
        let twice: Vec<f64> = values.iter().map(|v| 2.0 * v).collect();
        assert_eq!(g[1].to_vec_f64(), twice, "{what}: ∂L/∂x");
    }
}

// ---- grad refuses what it cannot answer --------------------------------------------------

#[test]
fn grad_refuses_an_unused_input_unless_allowed() {
    let x = t64(&[0.5, -1.0], &[2]).requires_grad_();
    let unused = t64(&[1.0], &[1]).requires_grad_();
    let y = x.exp().unwrap().sum_all().unwrap();
    let e = grad(&[&y], &[&x, &unused], None, false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Autograd);
    assert!(
        e.message.contains("input 1") && e.message.contains("not used"),
        "{e}"
    );
    let options = GradOptions {
        allow_unused: true,
        ..GradOptions::default()
    };
    let g = grad_with(&[&y], &[&x, &unused], options).unwrap();
    assert!(g[1].is_none());
    let ex: Vec<f64> = x.to_vec_f64().iter().map(|v| v.exp()).collect();
    assert_eq!(g[0].as_ref().unwrap().to_vec_f64(), ex);
}

#[test]
fn grad_refuses_inputs_and_outputs_that_do_not_require_gradients() {
    let x = t64(&[0.5, -1.0], &[2]).requires_grad_();
    let constant = t64(&[2.0, 3.0], &[2]);
    let y = x.mul(&constant).unwrap().sum_all().unwrap();
    let e = grad(&[&y], &[&constant], None, false).unwrap_err();
    assert!(
        e.message.contains("input 0") && e.message.contains("does not require gradients"),
        "{e}"
    );
    let frozen = no_grad(|| x.exp().unwrap().sum_all().unwrap());
    let e = grad(&[&frozen], &[&x], None, false).unwrap_err();
    assert!(e.message.contains("output 0"), "{e}");
    let e = grad(&[], &[&x], None, false).unwrap_err();
    assert!(e.message.contains("no outputs"), "{e}");
}

/// A forgotten `create_graph` used to give silent zero Hessians.
#[test]
fn a_second_derivative_needs_create_graph() {
    let x = t64(&[0.7], &[]).requires_grad_();
    let y = x.powf(3.0).unwrap();
    let d1 = grad(&[&y], &[&x], None, false).unwrap().remove(0);
    let e = grad(&[&d1], &[&x], None, false).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Autograd);
    assert!(e.message.contains("create_graph"), "{e}");
    let d1 = grad(&[&y], &[&x], None, true).unwrap().remove(0);
    let d2 = grad(&[&d1], &[&x], None, false).unwrap().remove(0);
    assert!((d2.item().unwrap() - 6.0 * 0.7).abs() < 1e-12);
}

/// An input reached only through piecewise-constant ops has a zero derivative, not none.
#[test]
fn an_input_reached_through_a_mask_gets_zeros() {
    let g = t64(&[1.0, 2.0], &[2]).requires_grad_();
    let x = t64(&[0.5, -0.5], &[2]).requires_grad_();
    let y = g.relu_backward(&x).unwrap().sum_all().unwrap();
    let d = grad(&[&y], &[&x], None, false).unwrap().remove(0);
    assert_eq!(d.to_vec_f64(), vec![0.0, 0.0]);
}

// ---- NaN propagates ------------------------------------------------------------------------

/// Every op that masks or compares, on the device given: a NaN input gives a NaN output where
/// it is read. Its derivative there is NaN for the pointwise ops (a mask of NaN is NaN), and
/// for the maxima the gradient flows to the NaN, which is the maximum of every group it is in.
fn nan_propagates_on(device: Device) {
    let dtype = if device == Device::Gpu {
        DType::F32
    } else {
        DType::F64
    };
    let values = [f64::NAN, 1.5, -2.0, 0.25];
    let x = || {
        Tensor::from_f64s(&values, &[1, 1, 2, 2], dtype)
            .unwrap()
            .to(device)
            .unwrap()
            .requires_grad_()
    };
    // (op, its derivative at the NaN: None for NaN)
    type Probe = (&'static str, fn(&Tensor) -> Result<Tensor>, Option<f64>);
    let probes: Vec<Probe> = vec![
        ("relu", |x| x.relu(), None),
        ("leaky_relu", |x| x.leaky_relu(0.1), None),
        ("clamp", |x| x.clamp(-1.0, 1.0), None),
        ("elu", |x| x.elu(1.0), None),
        ("abs", |x| x.abs(), None),
        ("softplus", |x| x.softplus(), None),
        ("sigmoid", |x| x.sigmoid(), None),
        ("logsumexp", |x| x.logsumexp(&[3], false), None),
        ("softmax", |x| x.softmax(-1), None),
        ("max", |x| x.max(&[2, 3], false), Some(1.0)),
        ("max_all", |x| x.max_all(), Some(1.0)),
        ("max_pool2d", |x| x.max_pool2d(2, 2, 0), Some(1.0)),
        // Stride 1 and padding 1 over 2x2: the NaN at (0, 0) is in four windows.
        ("max_pool2d, padded", |x| x.max_pool2d(2, 1, 1), Some(4.0)),
        // g·1[x > 0] as a function of x is piecewise constant: zero derivative...
        (
            "relu_backward",
            |x| x.ones_like().relu_backward(x),
            Some(0.0),
        ),
    ];
    for (what, op, derivative) in probes {
        let x = x();
        let y = op(&x).unwrap();
        let out = y.to_vec_f64();
        assert!(
            out.iter().any(|v| v.is_nan()),
            "{what} on {device}: {out:?} lost the NaN"
        );
        let d = grad(&[&y.sum_all().unwrap()], &[&x], None, false).unwrap();
        let d = d[0].to_vec_f64()[0];
        match derivative {
            None => assert!(
                d.is_nan(),
                "{what} on {device}: the derivative at NaN is {d}"
            ),
            Some(want) => assert_eq!(d, want, "{what} on {device}: the derivative at NaN"),
        }
    }
    // ...but its value at a NaN x is NaN whatever g is, and 0 (not NaN) where x ≤ 0 even for
    // an infinite g.
    let g = Tensor::from_f64s(&[1.0, f64::INFINITY, f64::INFINITY], &[3], dtype)
        .unwrap()
        .to(device)
        .unwrap();
    let xs = Tensor::from_f64s(&[f64::NAN, -1.0, 2.0], &[3], dtype)
        .unwrap()
        .to(device)
        .unwrap();
    let masked = g.relu_backward(&xs).unwrap().to_vec_f64();
    assert!(masked[0].is_nan(), "on {device}: {masked:?}");
    assert_eq!(&masked[1..], &[0.0, f64::INFINITY], "on {device}");
    // The finding that started this: a NaN weight through matmul, relu and sum.
    let w = Tensor::from_f64s(&[f64::NAN, 1.0, 2.0, -1.0], &[2, 2], dtype)
        .unwrap()
        .to(device)
        .unwrap();
    let a = Tensor::from_f64s(&[-1.0, 0.5, 0.25, 2.0], &[2, 2], dtype)
        .unwrap()
        .to(device)
        .unwrap();
    let loss = a.matmul(&w).unwrap().relu().unwrap().sum_all().unwrap();
    assert!(loss.item().unwrap().is_nan(), "on {device}");
}

#[test]
fn nan_propagates_through_every_op_that_masks_or_compares() {
    nan_propagates_on(Device::Cpu);
    if let Some(gpu) = gpu_or_skip() {
        nan_propagates_on(gpu);
    }
}

// ---- empty reductions ----------------------------------------------------------------------

#[test]
fn empty_reductions_give_what_the_math_gives() {
    let empty = Tensor::zeros(&[0], DType::F64).unwrap().requires_grad_();
    let empty_rows = Tensor::zeros(&[0, 3], DType::F64).unwrap();
    assert!(empty.mean_all().unwrap().item().unwrap().is_nan());
    assert!(empty.mean(&[0], false).unwrap().item().unwrap().is_nan());
    assert!(empty.var(&[0], false).unwrap().item().unwrap().is_nan());
    assert!(empty.mse_loss(&empty).unwrap().item().unwrap().is_nan());
    assert_eq!(empty.sum_all().unwrap().item().unwrap(), 0.0);
    assert!(empty_rows
        .mean(&[0], false)
        .unwrap()
        .to_vec_f64()
        .iter()
        .all(|v| v.is_nan()));
    assert_eq!(
        empty_rows.sum(&[0], false).unwrap().to_vec_f64(),
        vec![0.0; 3]
    );
    assert_eq!(
        empty.logsumexp(&[0], false).unwrap().item().unwrap(),
        f64::NEG_INFINITY
    );
    // The max of nothing is undefined: an error naming the axis, not a panic or a −∞.
    let e = empty.max_all().unwrap_err();
    assert!(e.message.contains("empty"), "{e}");
    // A max over a non-empty axis of an empty tensor is an empty result.
    assert_eq!(empty_rows.max(&[1], false).unwrap().shape(), &[0]);
    // The gradient of an empty mean is empty, not an error.
    let g = grad(&[&empty.mean_all().unwrap()], &[&empty], None, false).unwrap();
    assert_eq!(g[0].shape(), &[0]);
}

#[test]
fn logsumexp_of_infinities() {
    let x = t64(
        &[f64::NEG_INFINITY, f64::NEG_INFINITY, f64::INFINITY, 1.0],
        &[2, 2],
    );
    let lse = x.logsumexp(&[1], false).unwrap().to_vec_f64();
    assert_eq!(lse, vec![f64::NEG_INFINITY, f64::INFINITY]);
    if let Some(gpu) = gpu_or_skip() {
        let lse = x
            .to_dtype(DType::F32)
            .unwrap()
            .to(gpu)
            .unwrap()
            .logsumexp(&[1], false)
            .unwrap()
            .to_vec_f64();
        assert_eq!(lse, vec![f64::NEG_INFINITY, f64::INFINITY]);
    }
}

// ---- f32 sums keep their digits ------------------------------------------------------------

/// 10⁵ values of size ~1 whose exact sum is about 100: against the f64 sum, every f32
/// reduction (sum, mean, an axis sum) on each device stays within 1e-6 relative. A running f32
/// total misses by about 10⁻⁴ here (the test shows it can fail by computing one).
#[test]
fn f32_sums_of_many_cancelling_values_match_f64() {
    let n = 100_000;
    let mut rng = Rng::new(7);
    let values: Vec<f64> = (0..n).map(|_| rng.uniform() * 2.0 - 1.0 + 1e-3).collect();
    let as_f32: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let exact: f64 = as_f32.iter().map(|&v| v as f64).sum();
    let running: f32 = as_f32.iter().sum();
    assert!(
        ((running as f64 - exact) / exact).abs() > 1e-6,
        "the data must defeat a running f32 sum"
    );
    let mut devices = vec![Device::Cpu];
    devices.extend(gpu_or_skip());
    for device in devices {
        let x = Tensor::from_vec(as_f32.clone(), &[n])
            .unwrap()
            .to(device)
            .unwrap();
        let sum = x.sum_all().unwrap().item().unwrap();
        let mean = x.mean_all().unwrap().item().unwrap() * n as f64;
        let rows: f64 = x
            .reshape(&[100, 1000])
            .unwrap()
            .sum(&[0], false)
            .unwrap()
            .to_vec_f64()
            .iter()
            .sum();
        for (what, got) in [("sum_all", sum), ("mean_all", mean), ("axis-0 sums", rows)] {
            let rel = ((got - exact) / exact).abs();
            assert!(
                rel < 1e-6,
                "{what} on {device}: {got} against {exact} ({rel:.1e})"
            );
        }
    }
}

// ---- the math ops' edge cases --------------------------------------------------------------

/// ∂Π/∂xᵢ is the product of the others, also where x has zeros (a rule of Π/xᵢ gives NaN).
#[test]
fn prod_is_right_with_zeros() {
    let x = t64(&[2.0, 0.0, 3.0, 0.0, 0.0, 5.0], &[2, 3]).requires_grad_();
    let p = x.prod(&[1], false).unwrap();
    assert_eq!(p.to_vec_f64(), vec![0.0, 0.0]);
    let g = grad(&[&p.sum_all().unwrap()], &[&x], None, false).unwrap();
    assert_eq!(g[0].to_vec_f64(), vec![0.0, 6.0, 0.0, 0.0, 0.0, 0.0]);
    let y = t64(&[2.0, 0.0, 3.0, 4.0, 7.0], &[5]).requires_grad_();
    let g = grad(&[&y.prod_all().unwrap()], &[&y], None, false).unwrap();
    assert_eq!(g[0].to_vec_f64(), vec![0.0, 168.0, 0.0, 0.0, 0.0]);
    // Over an empty axis: 1, as in PyTorch.
    let e = Tensor::zeros(&[0, 2], DType::F64).unwrap();
    assert_eq!(e.prod(&[0], false).unwrap().to_vec_f64(), vec![1.0, 1.0]);
}

/// Ties split the gradient ½/½ between the operands, as PyTorch does.
#[test]
fn maximum_and_minimum_split_ties() {
    let a = t64(&[1.0, 2.0, 3.0], &[3]).requires_grad_();
    let b = t64(&[2.0, 2.0, 1.0], &[3]).requires_grad_();
    let mx = a.maximum(&b).unwrap();
    assert_eq!(mx.to_vec_f64(), vec![2.0, 2.0, 3.0]);
    let g = grad(&[&mx.sum_all().unwrap()], &[&a, &b], None, false).unwrap();
    assert_eq!(g[0].to_vec_f64(), vec![0.0, 0.5, 1.0]);
    assert_eq!(g[1].to_vec_f64(), vec![1.0, 0.5, 0.0]);
    let mn = a.minimum(&b).unwrap();
    assert_eq!(mn.to_vec_f64(), vec![1.0, 2.0, 1.0]);
    let g = grad(&[&mn.sum_all().unwrap()], &[&a, &b], None, false).unwrap();
    assert_eq!(g[0].to_vec_f64(), vec![1.0, 0.5, 0.0]);
    assert_eq!(g[1].to_vec_f64(), vec![0.0, 0.5, 1.0]);
    assert!(a.maximum(&t64(&[1.0, 2.0], &[2])).is_err());
}

/// The branch not taken reaches neither the value nor the gradient, even when it is ∞ or NaN.
#[test]
fn where_does_not_leak_the_branch_not_taken() {
    let c = t64(&[1.0, 0.0, -3.0, 0.0], &[4]);
    let a = t64(&[1.0, f64::INFINITY, 3.0, f64::NAN], &[4]).requires_grad_();
    let b = t64(&[f64::NAN, 20.0, f64::NEG_INFINITY, 40.0], &[4]).requires_grad_();
    let w = c.where_(&a, &b).unwrap();
    assert_eq!(w.to_vec_f64(), vec![1.0, 20.0, 3.0, 40.0]);
    // log of the chosen values; its gradient would be NaN if the ∞/NaN entries leaked.
    let loss = w.log().unwrap().sum_all().unwrap();
    let g = grad(&[&loss], &[&a, &b], None, false).unwrap();
    assert_eq!(g[0].to_vec_f64(), vec![1.0, 0.0, 1.0 / 3.0, 0.0]);
    assert_eq!(g[1].to_vec_f64(), vec![0.0, 1.0 / 20.0, 0.0, 1.0 / 40.0]);
    // Broadcasting over the three operands; a gradient summed back to b's shape.
    let c = t64(&[1.0, 0.0], &[2, 1]);
    let a = t64(&[1.0, 2.0, 3.0], &[3]).requires_grad_();
    let b = t64(&[9.0], &[]).requires_grad_();
    let w = c.where_(&a, &b).unwrap();
    assert_eq!(w.shape(), &[2, 3]);
    assert_eq!(w.to_vec_f64(), vec![1.0, 2.0, 3.0, 9.0, 9.0, 9.0]);
    let g = grad(&[&w.sum_all().unwrap()], &[&a, &b], None, false).unwrap();
    assert_eq!(g[0].to_vec_f64(), vec![1.0, 1.0, 1.0]);
    assert_eq!(g[1].to_vec_f64(), vec![3.0]);
    assert!(t64(&[1.0, 0.0], &[2]).where_(&a, &b).is_err());
}

#[test]
fn argmax_argmin_min_and_unbiased_var() {
    let x = t64(&[3.0, 1.0, 4.0, 1.0, 5.0, 9.0], &[2, 3]);
    assert_eq!(x.argmax(1).unwrap(), vec![2, 2]);
    assert_eq!(x.argmin(-1).unwrap(), vec![1, 0]);
    assert_eq!(x.argmax(0).unwrap(), vec![0, 1, 1]);
    assert_eq!(x.argmin(0).unwrap(), vec![1, 0, 0]);
    assert_eq!(x.min(&[1], false).unwrap().to_vec_f64(), vec![1.0, 1.0]);
    assert_eq!(x.min_all().unwrap().item().unwrap(), 1.0);
    assert!(x.argmax(2).is_err());
    let empty = Tensor::zeros(&[2, 0], DType::F64).unwrap();
    assert_eq!(empty.argmax(1).unwrap_err().kind, ErrorKind::Shape);
    assert!(empty.min(&[1], false).is_err());
    assert_eq!(empty.min_all().unwrap_err().op, "min");
    assert!(x.min(&[], false).is_err());
    let v = t64(&[1.0, 2.0, 3.0, 4.0], &[4]);
    let unbiased = v.var_with(&[0], true, false).unwrap().item().unwrap();
    assert!((unbiased - 5.0 / 3.0).abs() < 1e-15);
    assert_eq!(
        v.var_with(&[0], false, false).unwrap().item().unwrap(),
        1.25
    );
    assert_eq!(v.var(&[0], false).unwrap().item().unwrap(), 1.25);
    let s = v.std(&[0], true, false).unwrap().item().unwrap();
    assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
    // One element, unbiased: 0/0.
    assert!(t64(&[1.0], &[1])
        .var_with(&[0], true, false)
        .unwrap()
        .item()
        .unwrap()
        .is_nan());
}

//! The autodiff API as a PyTorch user expects it, and its errors.

use ferrograd_engine::{grad, grad_with, no_grad, DType, ErrorKind, GradOptions, Rng, Tensor};

fn t(values: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_f64s(values, shape, DType::F64).unwrap()
}

#[test]
fn tensors_are_send_and_sync_and_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tensor>();
    let x = t(&[1.0, 2.0, 3.0], &[3]).requires_grad_();
    let y = std::thread::spawn({
        let x = x.clone();
        move || x.mul(&x).unwrap().sum_all().unwrap()
    })
    .join()
    .unwrap();
    y.backward().unwrap();
    assert_eq!(x.grad().unwrap().to_vec_f64(), vec![2.0, 4.0, 6.0]);
}

#[test]
fn backward_accumulates_on_leaves_until_zeroed() {
    let x = t(&[3.0], &[1]).requires_grad_();
    for _ in 0..2 {
        x.mul(&x).unwrap().sum_all().unwrap().backward().unwrap();
    }
    assert_eq!(x.grad().unwrap().to_vec_f64(), vec![12.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
}

#[test]
fn grad_reaches_inner_tensors_and_says_none_for_unused_ones_when_allowed() {
    let x = t(&[0.5, -1.0], &[2]).requires_grad_();
    let unused = t(&[1.0], &[1]).requires_grad_();
    let inner = x.exp().unwrap();
    let y = inner.mul(&inner).unwrap().sum_all().unwrap();
    let g = grad(&[&y], &[&inner], None, false).unwrap();
    let want: Vec<f64> = inner.to_vec_f64().iter().map(|v| 2.0 * v).collect();
    assert_eq!(g[0].to_vec_f64(), want);
    assert!(grad(&[&y], &[&inner, &unused], None, false).is_err());
    let options = GradOptions {
        allow_unused: true,
        ..GradOptions::default()
    };
    let g = grad_with(&[&y], &[&inner, &unused], options).unwrap();
    assert_eq!(g[0].as_ref().unwrap().to_vec_f64(), want);
    assert!(g[1].is_none());
}

#[test]
fn no_grad_and_detach_record_nothing() {
    let x = t(&[1.0], &[1]).requires_grad_();
    let y = no_grad(|| x.exp().unwrap());
    assert!(!y.requires_grad() && y.is_leaf());
    let z = x.exp().unwrap().detach();
    assert!(!z.requires_grad());
    let e = y.backward().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Autograd);
}

#[test]
fn errors_name_the_op_and_the_shapes() {
    let a = Tensor::zeros(&[3, 4], DType::F32).unwrap();
    let b = Tensor::zeros(&[5, 6], DType::F32).unwrap();
    assert_eq!(
        a.matmul(&b).unwrap_err().to_string(),
        "matmul: [3, 4] x [5, 6]: inner dimensions 4 and 5 differ"
    );
    let c = Tensor::zeros(&[4, 2], DType::F64).unwrap();
    let e = a.matmul(&c).unwrap_err();
    assert_eq!(e.kind, ErrorKind::DType);
    assert!(e.to_string().starts_with("matmul:"), "{e}");
    let x = Tensor::zeros(&[1, 3, 5, 5], DType::F32).unwrap();
    let w = Tensor::zeros(&[2, 2, 3, 3], DType::F32).unwrap();
    let e = x.conv2d(&w, None, Default::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("conv2d: input [1, 3, 5, 5] and weight [2, 2, 3, 3]"),
        "{e}"
    );
    let logits = Tensor::zeros(&[2, 3], DType::F32).unwrap();
    assert!(logits
        .cross_entropy(&[0, 3])
        .unwrap_err()
        .to_string()
        .contains("label 3 at row 1 is out of range for 3 classes"));
    assert!(Tensor::from_vec(vec![1.0f32; 5], &[2, 3]).is_err());
    assert!(a
        .sum(&[2], false)
        .unwrap_err()
        .to_string()
        .contains("axis 2 is out of range"));
    assert!(Tensor::zeros(&[0, 3], DType::F32)
        .unwrap()
        .add(&Tensor::zeros(&[3], DType::F32).unwrap())
        .is_ok());
    assert!(x
        .conv2d(
            &Tensor::zeros(&[2, 3, 0, 3], DType::F32).unwrap(),
            None,
            Default::default()
        )
        .is_err());
}

#[test]
fn same_seed_gives_the_same_tensors() {
    let a = Tensor::randn(&[16], 0.0, 1.0, DType::F32, &mut Rng::new(42)).unwrap();
    let b = Tensor::randn(&[16], 0.0, 1.0, DType::F32, &mut Rng::new(42)).unwrap();
    assert_eq!(a.to_vec_f32(), b.to_vec_f32());
    let r = Tensor::arange(0.0, 5.0, 2.0, DType::F64).unwrap();
    assert_eq!(r.to_vec_f64(), vec![0.0, 2.0, 4.0]);
}

#[test]
fn third_derivative_through_a_small_cnn_matches_finite_differences_of_the_second() {
    // d³/dx³ of Σ tanh(conv(x, w))², elementwise-diagonal along a direction, by nesting grad.
    let mut rng = Rng::new(9);
    let x = Tensor::randn(&[1, 1, 4, 4], 0.0, 1.0, DType::F64, &mut rng)
        .unwrap()
        .requires_grad_();
    let w = Tensor::randn(&[2, 1, 3, 3], 0.0, 0.5, DType::F64, &mut rng).unwrap();
    let v = Tensor::randn(&[1, 1, 4, 4], 0.0, 1.0, DType::F64, &mut rng).unwrap();
    let f = |x: &Tensor| {
        x.conv2d(&w, None, Default::default())
            .unwrap()
            .tanh()
            .unwrap()
            .powf(2.0)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    // s(x) = vᵀ∇²f(x) v, by two nested grads; then ∇s by a third.
    let second = |x: &Tensor, create: bool| {
        let g = grad(&[&f(x)], &[x], None, true).unwrap().remove(0);
        let gv = g.mul(&v).unwrap().sum_all().unwrap();
        let h = grad(&[&gv], &[x], None, true).unwrap().remove(0);
        let s = h.mul(&v).unwrap().sum_all().unwrap();
        (
            s.clone(),
            if create {
                Some(grad(&[&s], &[x], None, false).unwrap().remove(0))
            } else {
                None
            },
        )
    };
    let (_, third) = second(&x, true);
    let third = third.unwrap().to_vec_f64();
    let base = x.to_vec_f64();
    let eps = 1e-5;
    for i in 0..base.len() {
        let at = |d: f64| {
            let mut vals = base.clone();
            vals[i] += d;
            let xi = t(&vals, &[1, 1, 4, 4]).requires_grad_();
            second(&xi, false).0.item().unwrap()
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        assert!(
            (third[i] - numeric).abs() < 1e-6 * (1.0 + numeric.abs()),
            "element {i}: {} vs {numeric}",
            third[i]
        );
    }
}

#[test]
fn batch_norm_running_statistics_follow_pytorch() {
    use ferrograd_engine::{batch_norm, BatchNormState};
    // x: [4, 1], values 1, 2, 3, 6: batch mean 3, biased var 3.5, unbiased var 14/3.
    let x = t(&[1.0, 2.0, 3.0, 6.0], &[4, 1]);
    let (gamma, beta) = (t(&[2.0], &[1]), t(&[0.5], &[1]));
    let (rm, rv) = (t(&[0.0], &[1]), t(&[1.0], &[1]));
    let state = || {
        Some(BatchNormState {
            running_mean: &rm,
            running_var: &rv,
            momentum: 0.1,
        })
    };
    let y = batch_norm(&x, &gamma, &beta, state(), true, 0.0).unwrap();
    let want: Vec<f64> = [1.0, 2.0, 3.0, 6.0]
        .iter()
        .map(|v| 2.0 * (v - 3.0) / 3.5f64.sqrt() + 0.5)
        .collect();
    for (a, b) in y.to_vec_f64().iter().zip(&want) {
        assert!((a - b).abs() < 1e-12);
    }
    assert!((rm.item().unwrap() - 0.3).abs() < 1e-12);
    assert!((rv.item().unwrap() - (0.9 + 0.1 * 14.0 / 3.0)).abs() < 1e-12);
    // Inference uses the running statistics, and leaves them alone.
    let y = batch_norm(&x, &gamma, &beta, state(), false, 0.0).unwrap();
    let var = 0.9 + 0.1 * 14.0 / 3.0;
    assert!((y.to_vec_f64()[0] - (2.0 * (1.0 - 0.3) / f64::sqrt(var) + 0.5)).abs() < 1e-12);
    assert!((rm.item().unwrap() - 0.3).abs() < 1e-12);
}

//! A custom op defined outside the engine, through its public API only: its values, its
//! derivatives of orders 1–3 against finite differences, its GPU kernel against its CPU one,
//! and a training run that uses it.

use ferrograd_custom_op::{fused_silu, train_circle_classifier, FusedSilu};
use ferrograd_engine::gradcheck::check_derivatives;
use ferrograd_engine::{grad, CustomOp, DType, Device, Element, Result, Rng, Tensor, WgslKernel};

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = Rng::new(seed);
    Tensor::randn(shape, 0.0, 1.5, DType::F64, &mut rng).unwrap()
}

#[test]
fn the_values_are_x_times_sigmoid_x() {
    let x = random(&[3, 5], 1);
    let fused = fused_silu(&x).unwrap().to_vec_f64();
    let composed = x.mul(&x.sigmoid().unwrap()).unwrap().to_vec_f64();
    for (a, b) in fused.iter().zip(&composed) {
        assert!((a - b).abs() < 1e-15, "{a} against {b}");
    }
    assert_eq!(
        Tensor::from_f64s(&[1e4, -1e4], &[2], DType::F64)
            .and_then(|t| fused_silu(&t))
            .unwrap()
            .to_vec_f64(),
        vec![1e4, -0.0],
        "no overflow at the extremes"
    );
}

#[test]
fn derivatives_of_orders_1_to_3_pass_the_engines_gradcheck() {
    for seed in 0..4 {
        let x = random(&[2, 3], seed);
        // Inside a composition, as an op is used: the check differentiates through both.
        let outcomes =
            check_derivatives(|t| fused_silu(&t[0])?.mul(&t[0].tanh()?), &[x], 3, seed).unwrap();
        for (order, o) in outcomes.iter().enumerate() {
            assert!(o.passed(), "order {}: {:?}", order + 1, o.failure);
        }
    }
}

/// The checker must be able to fail on this op too: the same kernel with a derivative rule
/// off by a factor fails at order 1.
#[test]
fn a_wrong_rule_for_the_same_kernel_fails_the_check() {
    struct Wrong;
    impl CustomOp for Wrong {
        fn name(&self) -> &'static str {
            "wrong_silu"
        }
        fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
            FusedSilu.output_shape(inputs)
        }
        fn cpu_forward<T: Element>(&self, inputs: &[&[T]], out: &mut [T]) -> Result<()> {
            FusedSilu.cpu_forward(inputs, out)
        }
        fn backward(&self, x: &[Tensor], y: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
            let right = FusedSilu.backward(x, y, g)?;
            Ok(vec![Some(right[0].as_ref().unwrap().mul_scalar(1.01)?)])
        }
    }
    let outcomes = check_derivatives(
        |t| Tensor::custom(Wrong, &[&t[0]]),
        &[random(&[4], 9)],
        1,
        0,
    )
    .unwrap();
    assert!(!outcomes[0].passed());
}

#[test]
fn training_with_it_lowers_the_loss() {
    let losses = train_circle_classifier(150, 3).unwrap();
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < 0.5 * first && last < 0.3, "loss {first} -> {last}");
}

fn gpu_or_skip() -> Option<Device> {
    match Device::gpu() {
        Ok(d) => Some(d),
        Err(e) if std::env::var("FERROGRAD_REQUIRE_GPU").as_deref() != Ok("1") => {
            eprintln!("skipped: {e}");
            None
        }
        Err(e) => panic!("FERROGRAD_REQUIRE_GPU=1 but there is no GPU: {e}"),
    }
}

#[test]
fn the_wgsl_kernel_matches_the_cpu_one_and_gradients_flow_on_the_gpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    let x = random(&[7, 33], 4).to_dtype(DType::F32).unwrap();
    let on_gpu = x.to(gpu).unwrap().requires_grad_();
    let y = fused_silu(&on_gpu).unwrap();
    assert_eq!(y.device(), Device::Gpu);
    let (cpu, got) = (fused_silu(&x).unwrap().to_vec_f64(), y.to_vec_f64());
    for (a, b) in got.iter().zip(&cpu) {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} against {b}");
    }
    let g = grad(&[&y.sum_all().unwrap()], &[&on_gpu], None, false).unwrap();
    let xr = x.requires_grad_();
    let want = grad(
        &[&fused_silu(&xr).unwrap().sum_all().unwrap()],
        &[&xr],
        None,
        false,
    )
    .unwrap();
    for (a, b) in g[0].to_vec_f64().iter().zip(want[0].to_vec_f64()) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} against {b}");
    }
}

/// A shader that does not compile is an error with the compiler's message, not a panic.
#[test]
fn a_broken_shader_is_an_error_that_says_so() {
    let Some(gpu) = gpu_or_skip() else { return };
    struct Broken;
    impl CustomOp for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
            Ok(inputs[0].to_vec())
        }
        fn cpu_forward<T: Element>(&self, _: &[&[T]], _: &mut [T]) -> Result<()> {
            Ok(())
        }
        fn wgsl(&self) -> Option<WgslKernel> {
            Some(WgslKernel {
                source: "@compute @workgroup_size(256) fn main() { let a: u32 = nope; }".into(),
                entry: "main",
                params: Vec::new(),
            })
        }
        fn backward(&self, _: &[Tensor], _: &Tensor, _: &Tensor) -> Result<Vec<Option<Tensor>>> {
            Ok(vec![None])
        }
    }
    let x = Tensor::ones(&[4], DType::F32).unwrap().to(gpu).unwrap();
    let e = Tensor::custom(Broken, &[&x]).unwrap_err();
    assert!(e.to_string().contains("does not compile"), "{e}");
}

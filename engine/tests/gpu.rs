//! The engine on the GPU: every op's derivatives of orders 1 and 2 (3 where the op has them)
//! computed there in f32 against the CPU's f64, and the device rules.
//!
//! Skipped without a GPU, unless `FERROGRAD_REQUIRE_GPU=1` (as in CI, on lavapipe) makes a
//! missing adapter a failure.
#![cfg(feature = "gpu")]

use ferrograd_engine::gradcheck::run_case_on;
use ferrograd_engine::{checks, DType, Device, ErrorKind, Tensor};
use proptest::prelude::*;

fn gpu_or_skip() -> Option<Device> {
    match Device::gpu() {
        Ok(d) => Some(d),
        Err(e) => {
            if std::env::var("FERROGRAD_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("FERROGRAD_REQUIRE_GPU=1 but there is no GPU: {e}");
            }
            eprintln!("skipped: {e}");
            None
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2))]

    /// Every registered op, at every order it is checked at on the CPU up to 3.
    #[test]
    fn every_op_matches_the_cpu_to_f32_rounding(seed in any::<u64>()) {
        let Some(device) = gpu_or_skip() else { return Ok(()) };
        let mut failures = Vec::new();
        for check in checks::all() {
            for order in 1..=check.max_order.min(3) {
                match run_case_on(device, &check, order, seed, 0) {
                    Ok((label, outcome)) => {
                        if let Some(why) = outcome.failure {
                            failures.push(format!("{} order {order} ({label}): {why}", check.op));
                        }
                    }
                    Err(e) => failures.push(format!("{} order {order}: error: {e}", check.op)),
                }
            }
        }
        prop_assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

/// The worst-conditioned derivatives of the registry, over many seeds: batch norm and std
/// normalise by a spread, and each once failed here when a case drew two values per group
/// (their derivatives then vanish only through cancellation, which f32 cannot resolve). A
/// sampler that drifts back to such draws fails this test rather than the proptest above at
/// random.
#[test]
fn normalising_ops_match_the_cpu_over_many_seeds() {
    let Some(device) = gpu_or_skip() else { return };
    for op in ["batch_norm", "channel_var", "std", "var"] {
        let check = checks::all()
            .into_iter()
            .find(|c| c.op == op)
            .expect("registered");
        for seed in (0..60).chain([14031231922768405714, 17848694760431013708]) {
            for order in 1..=3 {
                let (label, outcome) = run_case_on(device, &check, order, seed, 0).unwrap();
                assert!(
                    outcome.passed(),
                    "{op} seed {seed}, order {order}, {label}: {:?}",
                    outcome.failure
                );
            }
        }
    }
}

#[test]
fn mixing_devices_is_an_error_naming_both() {
    let Some(gpu) = gpu_or_skip() else { return };
    let a = Tensor::ones(&[2, 3], DType::F32).unwrap();
    let b = a.to(gpu).unwrap();
    let err = a.add(&b).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Device);
    assert!(
        err.message.contains("cpu") && err.message.contains("gpu"),
        "{err}"
    );
    let err = b.matmul(&a.reshape(&[3, 2]).unwrap()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Device, "{err}");
}

#[test]
fn f64_cannot_go_to_the_gpu_and_values_come_back_intact() {
    let Some(gpu) = gpu_or_skip() else { return };
    let x = Tensor::from_f64s(&[1.0, 2.0], &[2], DType::F64).unwrap();
    assert_eq!(x.to(gpu).unwrap_err().kind, ErrorKind::DType);
    let y = x.to_dtype(DType::F32).unwrap().to(gpu).unwrap();
    assert_eq!(y.device(), Device::Gpu);
    assert_eq!(y.to_vec_f32(), vec![1.0, 2.0]);
    assert_eq!(y.to(Device::Cpu).unwrap().device(), Device::Cpu);
}

#[test]
fn gradients_flow_back_across_devices() {
    let Some(gpu) = gpu_or_skip() else { return };
    // f(x) = Σ (x on the GPU)² · 3, differentiated with respect to the CPU leaf x.
    let x = Tensor::from_vec(vec![1.0f32, -2.0, 0.5], &[3])
        .unwrap()
        .requires_grad_();
    let y = x
        .to(gpu)
        .unwrap()
        .powf(2.0)
        .unwrap()
        .mul_scalar(3.0)
        .unwrap()
        .sum_all()
        .unwrap();
    y.backward().unwrap();
    let g = x.grad().unwrap();
    assert_eq!(g.device(), Device::Cpu);
    assert_eq!(g.to_vec_f32(), vec![6.0, -12.0, 3.0]);
}

#[test]
fn device_names_parse_and_junk_is_refused() {
    assert_eq!(Device::parse("cpu").unwrap(), Device::Cpu);
    let err = Device::parse("tpu").unwrap_err();
    assert!(err.message.contains("cpu, gpu or best"), "{err}");
}

/// argmax/argmin read back from the GPU's arg-max kernel agree with the CPU, and where_
/// keeps ∞ in the branch not taken out of the result there too.
#[test]
fn arg_extrema_and_where_on_the_gpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    let v = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0, 8.0];
    let cpu = Tensor::from_f64s(&v, &[3, 4], DType::F32).unwrap();
    let x = cpu.to(gpu).unwrap();
    for axis in [0, 1, -1] {
        assert_eq!(x.argmax(axis).unwrap(), cpu.argmax(axis).unwrap());
        assert_eq!(x.argmin(axis).unwrap(), cpu.argmin(axis).unwrap());
    }
    assert_eq!(x.argmax(1).unwrap(), vec![2, 1, 3]);
    let c = Tensor::from_f64s(&[1.0, 0.0, 2.0], &[3], DType::F32)
        .unwrap()
        .to(gpu)
        .unwrap();
    let a = Tensor::from_f64s(&[1.0, f32::INFINITY as f64, 3.0], &[3], DType::F32)
        .unwrap()
        .to(gpu)
        .unwrap();
    let b = Tensor::from_f64s(&[f64::NAN, 7.0, 0.0], &[3], DType::F32)
        .unwrap()
        .to(gpu)
        .unwrap();
    assert_eq!(c.where_(&a, &b).unwrap().to_vec_f64(), vec![1.0, 7.0, 3.0]);
}

#[test]
fn gather_and_scatter_add_take_an_index_on_either_device() {
    let Some(gpu) = gpu_or_skip() else { return };
    let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])
        .unwrap()
        .to(gpu)
        .unwrap();
    let idx = Tensor::from_vec(vec![2.0f32, 0.0, 1.0, 1.0], &[2, 2]).unwrap();
    for index in [idx.clone(), idx.to(gpu).unwrap()] {
        let g = x.gather(1, &index).unwrap();
        assert_eq!(g.device(), Device::Gpu);
        assert_eq!(g.to_vec_f32(), vec![3.0, 1.0, 5.0, 5.0]);
        let s = x.scatter_add(1, &index, &g).unwrap();
        assert_eq!(s.to_vec_f32(), vec![2.0, 2.0, 6.0, 4.0, 15.0, 6.0]);
    }
}

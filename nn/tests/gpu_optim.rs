//! The optimizers step GPU parameters through the engine's fused kernels, keep their state on
//! the parameter's device (following it when it moves), and agree with the CPU.
//! Skipped without a GPU, unless `FERROGRAD_REQUIRE_GPU=1` (as in CI, on lavapipe).
#![cfg(feature = "gpu")]

use ferrograd_engine::{Device, Tensor};
use ferrograd_nn::optim::{Adam, Optimizer, Sgd};

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

/// Six steps on L = Σ (θ − 3)², moving the parameter to `devices[t]` before step t.
fn run(make: &dyn Fn(Tensor) -> Box<dyn Optimizer>, devices: &[Device]) -> (Vec<f32>, Vec<f32>) {
    let p = Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 4.0], &[2, 2])
        .unwrap()
        .requires_grad_();
    p.move_in_place(devices[0]).unwrap();
    let mut opt = make(p.clone());
    for &d in devices {
        p.move_in_place(d).unwrap();
        p.sub_scalar(3.0)
            .unwrap()
            .powf(2.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        opt.step().unwrap();
        assert_eq!(p.device(), d);
        for (name, t) in opt.state("o.").tensors {
            assert_eq!(t.device(), d, "{name} follows its parameter");
            assert_eq!(t.shape(), &[2, 2], "{name}");
        }
    }
    let state = opt.state("o.").tensors;
    (p.to_vec_f32(), state[0].1.to_vec_f32())
}

fn close(a: &[f32], b: &[f32]) {
    assert!(
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + y.abs())),
        "{a:?} vs {b:?}"
    );
}

#[test]
fn gpu_steps_agree_with_the_cpu_and_state_follows_the_parameter() {
    let Some(gpu) = gpu_or_skip() else { return };
    let cpu = Device::Cpu;
    let sgd = |p: Tensor| -> Box<dyn Optimizer> {
        Box::new(Sgd::new(vec![("w".into(), p)], 0.05, 0.9, 0.01))
    };
    let adamw = |p: Tensor| -> Box<dyn Optimizer> {
        Box::new(Adam::adamw(vec![("w".into(), p)], 0.1, 0.01))
    };
    for make in [&sgd as &dyn Fn(Tensor) -> Box<dyn Optimizer>, &adamw] {
        let (want_p, want_s) = run(make, &[cpu; 6]);
        let (p, s) = run(make, &[gpu; 6]);
        close(&p, &want_p);
        close(&s, &want_s);
        let (p, s) = run(make, &[cpu, cpu, gpu, gpu, cpu, gpu]);
        close(&p, &want_p);
        close(&s, &want_s);
    }
}

//! A training step of the `fmnist_cnn` reference workload runs wholly on the GPU: the only
//! bytes that come back are the loss, the pool serves every buffer after the first steps,
//! and the numbers agree with the CPU's.

use ferrograd_engine::{DType, Device, Rng, Tensor};
use ferrograd_kernels::gpu;
use ferrograd_models::reference::FmnistCnn;
use ferrograd_nn::optim::Adam;

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

/// The transfer counters are per process: the tests that read them take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A small batch (lavapipe is slow) of the real input shape, and its labels.
fn batch(rng: &mut Rng, n: usize) -> (Tensor, Vec<usize>) {
    (
        Tensor::randn(&[n, 1, 28, 28], 0.0, 1.0, DType::F32, rng).unwrap(),
        (0..n).map(|_| rng.below(10)).collect(),
    )
}

#[test]
fn a_training_step_reads_back_only_the_loss() {
    let Some(gpu_device) = gpu_or_skip() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::new(7);
    let net = FmnistCnn::new(&mut rng).unwrap();
    net.move_to(gpu_device).unwrap();
    let mut opt = Adam::new(net.params(), 1e-3);
    let (x, labels) = batch(&mut rng, 4);
    let x = x.to(gpu_device).unwrap();

    // Two warm-up steps fill the buffer pool and compile the pipelines.
    for _ in 0..2 {
        net.train_step(&mut opt, &x, &labels)
            .unwrap()
            .item()
            .unwrap();
    }
    let (reads, allocations) = (gpu::readback_count(), gpu::buffer_allocations());
    let loss = net.train_step(&mut opt, &x, &labels).unwrap();
    assert_eq!(
        gpu::readback_count(),
        reads,
        "the step itself (forward, backward, Adam) read nothing back"
    );
    let value = loss.item().unwrap();
    assert!(value.is_finite());
    assert_eq!(
        gpu::readback_count(),
        reads + 1,
        "reading the loss is the one read-back"
    );
    assert_eq!(
        gpu::buffer_allocations(),
        allocations,
        "a steady step takes every buffer from the pool"
    );
    for (name, p) in net.params() {
        assert_eq!(p.device(), Device::Gpu, "{name} stayed on the GPU");
    }
}

#[test]
fn gpu_training_follows_the_cpu() {
    let Some(gpu_device) = gpu_or_skip() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let run = |device: Device| {
        let mut rng = Rng::new(11);
        let net = FmnistCnn::new(&mut rng).unwrap();
        net.move_to(device).unwrap();
        let mut opt = Adam::new(net.params(), 1e-3);
        let (x, labels) = batch(&mut rng, 3);
        let x = x.to(device).unwrap();
        let losses: Vec<f64> = (0..3)
            .map(|_| {
                net.train_step(&mut opt, &x, &labels)
                    .unwrap()
                    .item()
                    .unwrap()
            })
            .collect();
        (losses, net.fc2.0.to_vec_f32())
    };
    let (cpu_losses, cpu_w) = run(Device::Cpu);
    let (gpu_losses, gpu_w) = run(gpu_device);
    for (c, g) in cpu_losses.iter().zip(&gpu_losses) {
        assert!(
            (c - g).abs() <= 1e-4 * c.abs().max(1.0),
            "losses {cpu_losses:?} vs {gpu_losses:?}"
        );
    }
    let diff: f64 = cpu_w
        .iter()
        .zip(&gpu_w)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = cpu_w
        .iter()
        .map(|a| (*a as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        diff <= 1e-4 * norm,
        "fc2 weights after 3 Adam steps: ‖Δ‖ = {diff:e}, ‖w‖ = {norm:e}"
    );
}

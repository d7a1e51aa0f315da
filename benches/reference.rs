//! The reference workloads of docs/ARCHITECTURE.md, one JSON object per line.
//!
//! `cargo bench` runs them all; `cargo bench -- --quick` runs fewer repetitions (under three
//! minutes on two cores). Each figure is the median of repeated runs after warm-up.
//! `benches/torch_reference.py` prints the same lines for PyTorch on the same machine.
//!
//! Positional arguments name the groups to run: `fmnist_cnn`, `conv`, `matmul`, `op_overhead`,
//! `hvp`, `cam`, `cam_exact`, `deepfake`, `course`, `peak_rss`. A group's full name selects
//! that group only (`cam` does not select `cam_exact`); any other argument selects the groups
//! whose names start with it.
//!
//! - `course`: one training step of each of the course's models as `ferrograd train` runs it
//!   (the CLI's default settings, batch 128): `classifier_train`, `vae_train`, `gan_train`,
//!   `aae_train`; and `classifier_infer`, the classifier's logits in evaluation mode.
//! - `cam_exact`: the exact Grad-CAM++ for one image at conv1, conv2 and conv3 (once per layer,
//!   in seconds). With `--quick` only conv3 runs unless `--cam-layers=conv1,conv2,conv3` (or
//!   `--cam-layers=all`, or `FERROGRAD_CAM_LAYERS`) asks for more.

use ferrograd::engine::{
    grad, no_grad, Conv2dParams, ConvTranspose2dParams, DType, Device, Result, Rng, Tensor,
};
use ferrograd_nn::optim::Adam;
use std::sync::OnceLock;
use std::time::Instant;

/// Repetitions: at least `runs` timed runs, and more until `min_secs` of them have run, so
/// that sub-millisecond workloads get enough samples for a stable median.
#[derive(Clone, Copy)]
struct Reps {
    warmup: usize,
    runs: usize,
    min_secs: f64,
}

/// The device of this run (`--device cpu|gpu|best`; the CPU by default).
static DEVICE: OnceLock<Device> = OnceLock::new();

fn device() -> Device {
    *DEVICE.get().unwrap_or(&Device::Cpu)
}

/// `t` on the run's device, still a leaf (and requiring gradients if `t` did).
fn on_device(t: Tensor) -> Tensor {
    let requires = t.requires_grad();
    let moved = t.to(device()).expect("f32 tensors move").detach();
    if requires {
        moved.requires_grad_()
    } else {
        moved
    }
}

/// Waits for the GPU's queued work, so a timing covers the work and not only its recording.
fn sync() {
    if device() == Device::Gpu {
        ferrograd_kernels::gpu::context()
            .expect("the GPU is open")
            .synchronize();
    }
}

/// Median wall time of `f` in milliseconds.
fn median_ms(reps: Reps, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..reps.warmup {
        f()?;
    }
    sync();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < reps.runs || start.elapsed().as_secs_f64() < reps.min_secs {
        let t = Instant::now();
        f()?;
        sync();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

use ferrograd_models::reference::FmnistCnn as Cnn;

fn batch(rng: &mut Rng, n: usize) -> (Tensor, Vec<usize>) {
    (
        Tensor::randn(&[n, 1, 28, 28], 0.0, 1.0, DType::F32, rng).unwrap(),
        (0..n).map(|_| rng.below(10)).collect(),
    )
}

fn train_step(net: &Cnn, opt: &mut Adam, x: &Tensor, labels: &[usize]) -> Result<f64> {
    net.train_step(opt, x, labels)?.item()
}

fn emit(json: String) {
    println!("{json}");
}

fn fmnist_cnn(reps: Reps) -> Result<()> {
    let mut rng = Rng::new(0);
    let net = Cnn::new(&mut rng)?;
    net.move_to(device())?;
    let mut opt = Adam::new(net.params(), 1e-3);
    let (x, labels) = batch(&mut rng, 128);
    let x = on_device(x);
    let ms = median_ms(reps, || train_step(&net, &mut opt, &x, &labels).map(|_| ()))?;
    emit(format!(
        r#"{{"name":"fmnist_cnn_train","images_per_s":{:.1},"ms":{ms:.3}}}"#,
        128e3 / ms
    ));
    let ms = median_ms(reps, || no_grad(|| net.forward(&x).map(|_| ())))?;
    emit(format!(
        r#"{{"name":"fmnist_cnn_infer","images_per_s":{:.1},"ms":{ms:.3}}}"#,
        128e3 / ms
    ));
    Ok(())
}

fn conv_benches(reps: Reps) -> Result<()> {
    let mut rng = Rng::new(1);
    for [n, c, h, w, k, r, s, stride, pad] in [
        [128, 32, 14, 14, 64, 3, 3, 1, 1],
        [64, 3, 100, 100, 64, 5, 5, 2, 2],
        [32, 128, 25, 25, 256, 5, 5, 2, 2],
    ] {
        let x = on_device(
            Tensor::randn(&[n, c, h, w], 0.0, 1.0, DType::F32, &mut rng)?.requires_grad_(),
        );
        let wt = on_device(
            Tensor::randn(&[k, c, r, s], 0.0, 0.1, DType::F32, &mut rng)?.requires_grad_(),
        );
        let p = Conv2dParams::default().stride(stride).padding(pad);
        let y = no_grad(|| x.conv2d(&wt, None, p))?;
        let (oh, ow) = (y.shape()[2], y.shape()[3]);
        let flops = 2.0 * (n * k * c * r * s * oh * ow) as f64;
        let g = on_device(Tensor::randn(y.shape(), 0.0, 1.0, DType::F32, &mut rng)?);
        let shape = format!("[{n},{c},{h},{w},{k},{r},{s},{stride},{pad}]");
        let fwd = median_ms(reps, || no_grad(|| x.conv2d(&wt, None, p).map(|_| ())))?;
        emit(format!(
            r#"{{"name":"conv2d","shape":{shape},"pass":"fwd","ms":{fwd:.3},"gflops":{:.1}}}"#,
            flops / fwd / 1e6
        ));
        let both = median_ms(reps, || {
            grad(&[&x.conv2d(&wt, None, p)?], &[&x, &wt], Some(&[&g]), false).map(|_| ())
        })?;
        emit(format!(
            r#"{{"name":"conv2d","shape":{shape},"pass":"fwd_bwd","ms":{both:.3},"gflops":{:.1}}}"#,
            flops / both / 1e6
        ));
    }
    for [n, c, h, w, k, r, s, stride, pad] in [
        [64, 128, 8, 8, 64, 4, 4, 2, 1],
        [32, 256, 13, 13, 128, 4, 4, 2, 1],
    ] {
        let x = on_device(
            Tensor::randn(&[n, c, h, w], 0.0, 1.0, DType::F32, &mut rng)?.requires_grad_(),
        );
        let wt = on_device(
            Tensor::randn(&[c, k, r, s], 0.0, 0.1, DType::F32, &mut rng)?.requires_grad_(),
        );
        let p = ConvTranspose2dParams::default().stride(stride).padding(pad);
        let y = no_grad(|| x.conv_transpose2d(&wt, None, p))?;
        let flops = 2.0 * (n * c * k * r * s * h * w) as f64;
        let g = on_device(Tensor::randn(y.shape(), 0.0, 1.0, DType::F32, &mut rng)?);
        let shape = format!("[{n},{c},{h},{w},{k},{r},{s},{stride},{pad}]");
        let fwd = median_ms(reps, || {
            no_grad(|| x.conv_transpose2d(&wt, None, p).map(|_| ()))
        })?;
        emit(format!(
            r#"{{"name":"conv_transpose2d","shape":{shape},"pass":"fwd","ms":{fwd:.3},"gflops":{:.1}}}"#,
            flops / fwd / 1e6
        ));
        let both = median_ms(reps, || {
            grad(
                &[&x.conv_transpose2d(&wt, None, p)?],
                &[&x, &wt],
                Some(&[&g]),
                false,
            )
            .map(|_| ())
        })?;
        emit(format!(
            r#"{{"name":"conv_transpose2d","shape":{shape},"pass":"fwd_bwd","ms":{both:.3},"gflops":{:.1}}}"#,
            flops / both / 1e6
        ));
    }
    Ok(())
}

fn matmul_benches(reps: Reps) -> Result<()> {
    let mut rng = Rng::new(2);
    for n in [512usize, 2048] {
        let a = on_device(Tensor::randn(&[n, n], 0.0, 1.0, DType::F32, &mut rng)?);
        let b = on_device(Tensor::randn(&[n, n], 0.0, 1.0, DType::F32, &mut rng)?);
        let ms = median_ms(reps, || a.matmul(&b).map(|_| ()))?;
        emit(format!(
            r#"{{"name":"matmul","shape":[{n},{n},{n}],"ms":{ms:.3},"gflops":{:.1}}}"#,
            2.0 * (n * n * n) as f64 / ms / 1e6
        ));
    }
    Ok(())
}

/// x ← x·1.0001 + 0.5, 10,000 times (20,000 ops), then backward; time per op.
fn op_overhead(reps: Reps) -> Result<()> {
    const LINES: usize = 10_000;
    let mut fwd = Vec::new();
    let mut bwd = Vec::new();
    for i in 0..reps.warmup + reps.runs {
        let x = Tensor::ones(&[1], DType::F32)?.requires_grad_();
        let t = Instant::now();
        let mut y = x.clone();
        for _ in 0..LINES {
            y = y.mul_scalar(1.0001)?.add_scalar(0.5)?;
        }
        let f = t.elapsed().as_secs_f64();
        let t = Instant::now();
        y.sum_all()?.backward()?;
        let b = t.elapsed().as_secs_f64();
        drop(y);
        if i >= reps.warmup {
            fwd.push(f);
            bwd.push(b);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e6 / (2 * LINES) as f64
    };
    emit(format!(
        r#"{{"name":"op_overhead","us_per_op_fwd":{:.3},"us_per_op_bwd":{:.3}}}"#,
        median(&mut fwd),
        median(&mut bwd)
    ));
    Ok(())
}

/// Class-0 logit at batch 1; its gradient with respect to the second ReLU's output (create_graph);
/// then the gradient of (that gradient · v): a Hessian–vector product.
fn hvp(reps: Reps) -> Result<()> {
    let mut rng = Rng::new(3);
    let net = Cnn::new(&mut rng)?;
    net.move_to(device())?;
    let (x, _) = batch(&mut rng, 1);
    let x = on_device(x);
    let v = on_device(Tensor::randn(
        &[1, 64, 14, 14],
        0.0,
        1.0,
        DType::F32,
        &mut rng,
    )?);
    let ms = median_ms(reps, || {
        let (logits, a2) = net.forward(&x)?;
        let score = logits.narrow(1, 0, 1)?.sum_all()?;
        let g = grad(&[&score], &[&a2], None, true)?.remove(0);
        let gv = g.mul(&v)?.sum_all()?;
        grad(&[&gv], &[&a2], None, false).map(|_| ())
    })?;
    emit(format!(r#"{{"name":"hvp","ms":{ms:.3}}}"#));
    Ok(())
}

/// The model and the image of the CAM workloads: the course's classifier at its real width
/// with `ferrograd train classifier`'s defaults (ReLU), weights from a fixed seed (the cost does
/// not depend on training), and one uniform 28x28 image.
fn cam_setup() -> Result<(ferrograd_models::classifier::Classifier, Tensor)> {
    use ferrograd_models::classifier::{Classifier, ClassifierActivation};
    let mut rng = Rng::new(5);
    let model = Classifier::new(ClassifierActivation::Relu, 0.1, 1e-5, 1e-3, &mut rng)?;
    let x = Tensor::rand_uniform(&[1, 1, 28, 28], 0.0, 1.0, DType::F32, &mut rng)?;
    Ok((model, x))
}

/// The CAM workloads' target: class 7 with `ferrograd cam`'s default score, Y = exp(z_c).
fn cam_target(
    model: &ferrograd_models::classifier::Classifier,
    layer: usize,
) -> ferrograd_cam::Target<'_> {
    ferrograd_cam::Target {
        model,
        layer,
        class: 7,
        score: ferrograd_cam::Score::ExpLogit,
    }
}

/// Seconds of one exact Grad-CAM++ per layer, measured once per process: the `cam` and
/// `cam_exact` groups time the same call, so whichever runs first measures it for both.
type ExactTimes = [Option<f64>; 3];

fn exact_seconds(
    model: &ferrograd_models::classifier::Classifier,
    x: &Tensor,
    layer: usize,
    cache: &mut ExactTimes,
) -> Result<f64> {
    if let Some(s) = cache[layer] {
        return Ok(s);
    }
    let once = Reps {
        warmup: 0,
        runs: 1,
        min_secs: 0.0,
    };
    let method = ferrograd_cam::Method::GradCamPlusPlusExact;
    let target = cam_target(model, layer);
    let s = median_ms(once, || target.explain(x, method).map(|_| ()))? / 1e3;
    cache[layer] = Some(s);
    Ok(s)
}

/// Each CAM method for one image at each of the classifier's three layers. The exact
/// Grad-CAM++ runs once: it takes seconds.
fn cam_methods(reps: Reps, exact: &mut ExactTimes) -> Result<()> {
    use ferrograd_cam::Method;
    use ferrograd_models::classifier::LAYER_NAMES;
    let (model, x) = cam_setup()?;
    for method in Method::ALL {
        for (layer, name) in LAYER_NAMES.iter().enumerate() {
            if !method.applies_to(layer) {
                continue;
            }
            let target = cam_target(&model, layer);
            let ms = if method == Method::GradCamPlusPlusExact {
                exact_seconds(&model, &x, layer, exact)? * 1e3
            } else {
                median_ms(reps, || target.explain(&x, method).map(|_| ()))?
            };
            emit(format!(
                r#"{{"name":"cam","method":"{}","layer":"{name}","ms":{ms:.2}}}"#,
                method.name()
            ));
        }
    }
    Ok(())
}

/// The exact Grad-CAM++ for one image at each of `layers` (0..2 for conv1..conv3), once per
/// layer: `cam_exact`, whose twin is `bench_cam_exact` in `benches/torch_reference.py`.
fn cam_exact(layers: &[usize], exact: &mut ExactTimes) -> Result<()> {
    use ferrograd_models::classifier::LAYER_NAMES;
    let (model, x) = cam_setup()?;
    for &layer in layers {
        let s = exact_seconds(&model, &x, layer, exact)?;
        emit(format!(
            r#"{{"name":"cam_exact","layer":"{}","s":{s:.3}}}"#,
            LAYER_NAMES[layer]
        ));
    }
    Ok(())
}

/// A batch of the course's training data in shape: `n` uniform images in [0, 1] (the
/// reconstruction losses need targets there) and uniform labels.
fn course_batch(rng: &mut Rng, n: usize) -> Result<(Tensor, Vec<usize>)> {
    let x = Tensor::rand_uniform(&[n, 1, 28, 28], 0.0, 1.0, DType::F32, rng)?;
    Ok((on_device(x), (0..n).map(|_| rng.below(10)).collect()))
}

/// Median time of the model's own `train_step` (what `ferrograd train <kind>` runs per batch,
/// losses read back included), emitted as `<name>`.
fn course_train_step(
    name: &str,
    model: &mut dyn ferrograd_models::generative::Model,
    batch: usize,
    reps: Reps,
) -> Result<()> {
    use ferrograd_nn::nn::Ctx;
    let mut rng = Rng::new(12);
    let (x, labels) = course_batch(&mut rng, batch)?;
    model.move_to(device())?;
    let mut ctx = Ctx::train(13);
    let ms = median_ms(reps, || model.train_step(&x, &labels, &mut ctx).map(|_| ()))?;
    emit(format!(
        r#"{{"name":"{name}","batch":{batch},"images_per_s":{:.1},"ms":{ms:.3}}}"#,
        batch as f64 / (ms / 1e3)
    ));
    Ok(())
}

/// The course's models with the settings `ferrograd train` uses by default
/// ([`TrainConfig::defaults`](ferrograd_models::train::TrainConfig::defaults), the values the
/// CLI's flags fall back to), built as [`build_model`](ferrograd_models::train::build_model)
/// builds them: the classifier (ReLU, β = 0.1, λ = 1e-5, Adam lr 1e-3), the VAE (latent 16,
/// λ = 1, lr 1e-3), the GAN (latent 64, non-saturating generator loss, lr 2e-4, β₁ = 0.5) and
/// the AAE (latent 8, λ = 10, N(0, I) prior, lr 1e-3), batch 128. One step each, and the
/// classifier's logits in evaluation mode under `no_grad` (`classifier_infer`, batch 128: what
/// `predict` and the CAM commands run; the decoder is not run). The learning-rate schedule's
/// per-step `set_lr` is left out (it only stores a number).
fn course(reps: Reps) -> Result<()> {
    use ferrograd_models::classifier::Classifier;
    use ferrograd_models::train::{build_model, ModelKind, TrainConfig};
    use ferrograd_nn::nn::Ctx;
    let cfg = TrainConfig::defaults(ModelKind::Classifier);
    // `build_model` boxes the classifier; `classifier_infer` needs its `logits`, so build it
    // as `build_model` does (Classifier::new from the configuration, seeded by cfg.seed).
    let mut classifier = Classifier::new(
        cfg.activation,
        cfg.beta,
        cfg.lambda,
        cfg.lr,
        &mut Rng::new(cfg.seed),
    )?;
    course_train_step("classifier_train", &mut classifier, cfg.batch, reps)?;
    const INFER_BATCH: usize = 128;
    let (x, _) = course_batch(&mut Rng::new(14), INFER_BATCH)?;
    let ms = median_ms(reps, || {
        no_grad(|| classifier.logits(&x, &mut Ctx::eval()).map(|_| ()))
    })?;
    emit(format!(
        r#"{{"name":"classifier_infer","batch":{INFER_BATCH},"images_per_s":{:.1},"ms":{ms:.3}}}"#,
        INFER_BATCH as f64 / (ms / 1e3)
    ));
    drop(classifier);
    for (name, kind) in [
        ("vae_train", ModelKind::Vae),
        ("gan_train", ModelKind::Gan),
        ("aae_train", ModelKind::Aae),
    ] {
        let cfg = TrainConfig::defaults(kind);
        let mut model = build_model(&cfg)?;
        course_train_step(name, &mut *model, cfg.batch, reps)?;
    }
    Ok(())
}

/// One face-swap training step (`deepfake_train`): 16 faces of each identity (3x100x100), the
/// latent discriminator's step and the encoder-decoders' step, as `ferrograd deepfake train`
/// takes them (augmentation excluded: it is timed separately as `deepfake_augment`).
fn deepfake_step(reps: Reps) -> Result<()> {
    use ferrograd_deepfake::augment::{augment_pair, Augment};
    use ferrograd_deepfake::model::{FaceSwap, SwapConfig};
    use ferrograd_nn::nn::Ctx;
    const PER_IDENTITY: usize = 16;
    let mut rng = Rng::new(11);
    // The L1-only step, as the PyTorch twin takes it (the default recipe adds DSSIM, +29%).
    let l1_only = SwapConfig {
        dssim_weight: 0.0,
        ema_decay: 0.0,
        identity_weight: 0.0,
        ..SwapConfig::default()
    };
    let mut model = FaceSwap::new(l1_only, &mut rng)?;
    model.move_to(device())?;
    let faces = |rng: &mut Rng| {
        on_device(
            Tensor::rand_uniform(&[PER_IDENTITY, 3, 100, 100], 0.0, 1.0, DType::F32, rng).unwrap(),
        )
    };
    let (a, b) = (faces(&mut rng), faces(&mut rng));
    let mut seed = 0;
    let ms = median_ms(reps, || {
        seed += 1;
        model
            .train_step((&a, &a), (&b, &b), &mut Ctx::train(seed))
            .map(|_| ())
    })?;
    let images = 2 * PER_IDENTITY;
    emit(format!(
        r#"{{"name":"deepfake_train","batch":{images},"images_per_s":{:.1},"ms":{ms:.1}}}"#,
        images as f64 / (ms / 1e3)
    ));
    let face = a.narrow(0, 0, 1)?.to_vec_f32();
    let augment = Augment::default();
    let ms = median_ms(reps, || {
        for _ in 0..images {
            augment_pair(&face, &augment, &mut rng)?;
        }
        Ok(())
    })?;
    emit(format!(
        r#"{{"name":"deepfake_augment","batch":{images},"ms":{ms:.1}}}"#
    ));
    Ok(())
}

/// Peak resident memory (VmHWM) of this process, in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// 100 training steps in a fresh process, so the peak is the training run's alone.
fn peak_rss_child() -> Result<()> {
    let mut rng = Rng::new(0);
    let net = Cnn::new(&mut rng)?;
    net.move_to(device())?;
    let mut opt = Adam::new(net.params(), 1e-3);
    let (x, labels) = batch(&mut rng, 128);
    let x = on_device(x);
    for _ in 0..100 {
        train_step(&net, &mut opt, &x, &labels)?;
    }
    match peak_rss_mib() {
        Some(mib) => emit(format!(
            r#"{{"name":"peak_rss","mib":{mib:.1},"steps":100}}"#
        )),
        None => eprintln!("peak_rss: /proc/self/status has no VmHWM on this system"),
    }
    Ok(())
}

/// The workload groups positional arguments select.
const GROUPS: [&str; 10] = [
    "fmnist_cnn",
    "conv",
    "matmul",
    "op_overhead",
    "hvp",
    "cam",
    "cam_exact",
    "deepfake",
    "course",
    "peak_rss",
];

/// The value of `--flag value` or `--flag=value`.
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            let prefix = format!("{flag}=");
            args.iter()
                .find_map(|a| a.strip_prefix(prefix.as_str()).map(str::to_string))
        })
}

/// "conv1,conv3" (or "all") as layer indices.
fn parse_layers(list: &str) -> Result<Vec<usize>> {
    use ferrograd_models::classifier::LAYER_NAMES;
    if list == "all" {
        return Ok((0..LAYER_NAMES.len()).collect());
    }
    list.split(',')
        .map(|name| {
            LAYER_NAMES.iter().position(|l| *l == name).ok_or_else(|| {
                ferrograd::Error::argument(
                    "bench",
                    format!("--cam-layers: '{name}' is not one of conv1, conv2, conv3, all"),
                )
            })
        })
        .collect()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--peak-rss-child") {
        return peak_rss_child();
    }
    let quick = args.iter().any(|a| a == "--quick");
    let reps = if quick {
        Reps {
            warmup: 1,
            runs: 3,
            min_secs: 0.3,
        }
    } else {
        Reps {
            warmup: 3,
            runs: 11,
            min_secs: 1.0,
        }
    };
    // `--cam-layers conv1,conv2,conv3` (or `=all`, or FERROGRAD_CAM_LAYERS): the layers of
    // `cam_exact`; by default all three, conv3 alone with --quick.
    let cam_layers_arg =
        flag_value(&args, "--cam-layers").or_else(|| std::env::var("FERROGRAD_CAM_LAYERS").ok());
    let cam_layers = match &cam_layers_arg {
        Some(list) => parse_layers(list)?,
        None if quick => vec![2],
        None => vec![0, 1, 2],
    };
    // `--device gpu` (or `--device=gpu`, or FERROGRAD_DEVICE) runs the workloads on the GPU.
    let device_arg = flag_value(&args, "--device")
        .or_else(|| std::env::var("FERROGRAD_DEVICE").ok())
        .unwrap_or_else(|| "cpu".into());
    let device = Device::parse(&device_arg)?;
    DEVICE.set(device).expect("set once");
    let adapter = match device {
        Device::Gpu => ferrograd_kernels::gpu::context()
            .map(|g| g.adapter_name())
            .unwrap_or_default(),
        Device::Cpu => String::new(),
    };
    emit(format!(
        r#"{{"name":"meta","engine":"ferrograd","version":"{}","threads":{},"device":"{device}","adapter":"{}","quick":{quick}}}"#,
        env!("CARGO_PKG_VERSION"),
        rayon::current_num_threads(),
        adapter.replace('"', "'")
    ));
    // Positional arguments select workload groups (cargo passes `--bench`; skip flags and the
    // values of `--device` and `--cam-layers`). A group's full name selects that group only;
    // anything else selects every group whose name starts with it.
    let values: Vec<&String> = ["--device", "--cam-layers"]
        .iter()
        .filter_map(|flag| args.iter().position(|a| a == flag))
        .filter_map(|i| args.get(i + 1))
        .collect();
    let filters: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--") && !values.contains(a))
        .collect();
    let wanted = |name: &str| {
        filters.is_empty()
            || filters.iter().any(|f| {
                name == f.as_str()
                    || (name.starts_with(f.as_str()) && !GROUPS.contains(&f.as_str()))
            })
    };
    if wanted("fmnist_cnn") {
        fmnist_cnn(reps)?;
    }
    if wanted("conv") {
        conv_benches(reps)?;
    }
    if wanted("matmul") {
        matmul_benches(reps)?;
    }
    // These measure the CPU path's bookkeeping and memory; on the GPU they are not run.
    let cpu_only = device == Device::Cpu;
    if wanted("op_overhead") && cpu_only {
        op_overhead(reps)?;
    }
    if wanted("hvp") {
        hvp(reps)?;
    }
    let mut exact = ExactTimes::default();
    if wanted("cam") && cpu_only {
        cam_methods(reps, &mut exact)?;
    }
    if wanted("cam_exact") && cpu_only {
        cam_exact(&cam_layers, &mut exact)?;
    }
    if wanted("deepfake") {
        deepfake_step(reps)?;
    }
    if wanted("course") {
        course(reps)?;
    }
    if !wanted("peak_rss") || !cpu_only {
        return Ok(());
    }
    let exe =
        std::env::current_exe().map_err(|e| ferrograd::Error::argument("bench", e.to_string()))?;
    let out = std::process::Command::new(exe)
        .arg("--peak-rss-child")
        .output()
        .map_err(|e| ferrograd::Error::argument("bench", e.to_string()))?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    Ok(())
}

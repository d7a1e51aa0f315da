//! `ferrograd experiment lambda-sweep|gan-losses`: the course's questions answered by
//! measurement, each writing a table (markdown and JSON) and a plot.

use super::train::pick_device;
use super::Error;
use ferrograd_models::data::FashionMnist;
use ferrograd_models::evaluation::{FeatureClassifier, QualitySettings};
use ferrograd_models::experiments::{self, GanRun, LambdaPoint};
use ferrograd_models::generative::GeneratorLoss;
use ferrograd_models::train::{ModelKind, TrainConfig};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum ExperimentCommand {
    /// Train the regularised autoencoder at several λ and measure the test reconstruction
    /// error and ‖W‖²_F at each.
    LambdaSweep(LambdaSweepArgs),
    /// Train the GAN with the minimax and the non-saturating generator loss from the same seed
    /// and budget: FID by epoch, and the discriminator's view of the samples at the start.
    GanLosses(GanLossesArgs),
}

#[derive(clap::Args)]
pub struct LambdaSweepArgs {
    /// The λ values (the weight penalty's factor), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,1e-5,1e-4,1e-3,1e-2,1e-1"
    )]
    pub lambdas: Vec<f64>,
    /// Epochs per run.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Output folder: one run per λ in it, and the table and plots.
    #[arg(long, default_value = "runs/lambda_sweep")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

/// The flags both experiments share.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Train on the first N training images only.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Seed of the weights, the data order, the noise and the samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Fashion-MNIST folder (as for train).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where to compute: `cpu`, `gpu` or `best`.
    #[arg(long, env = "FERROGRAD_DEVICE", default_value = "best")]
    pub device: String,
}

#[derive(clap::Args)]
pub struct GanLossesArgs {
    /// Epochs per run.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Samples for each epoch's FID (and test images they are compared with).
    #[arg(long, default_value_t = 5000)]
    pub fid_samples: usize,
    /// The feature classifier (a `train classifier` checkpoint).
    #[arg(long, default_value = "runs/classifier/checkpoint.safetensors")]
    pub features: PathBuf,
    /// Output folder for the table and plots.
    #[arg(long, default_value = "runs/gan_losses")]
    pub out: PathBuf,
    #[command(flatten)]
    pub run: RunArgs,
}

pub fn run(command: &ExperimentCommand) -> Result<ExitCode, Error> {
    match command {
        ExperimentCommand::LambdaSweep(args) => run_lambda_sweep(args),
        ExperimentCommand::GanLosses(args) => run_gan_losses(args),
    }
}

fn create(out: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(out).map_err(|e| Error::CreateFolder {
        path: out.to_path_buf(),
        message: e.to_string(),
    })
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    ferrograd_nn::checkpoint::write_atomically(path, text.as_bytes()).map_err(|e| Error::File {
        path: path.to_path_buf(),
        message: format!("cannot write: {e}"),
    })
}

/// Loads the data, creates the output folder, and gives `kind`'s default settings with the
/// shared flags applied.
fn prepare(
    kind: ModelKind,
    epochs: usize,
    out: &Path,
    run: &RunArgs,
) -> Result<(FashionMnist, TrainConfig), Error> {
    let device = pick_device(&run.device)?;
    ferrograd_kernels::flush_subnormals();
    let data = FashionMnist::load(run.data.as_deref())?;
    create(out)?;
    let base = TrainConfig {
        epochs,
        seed: run.seed,
        train_limit: run.train_limit,
        device,
        ..TrainConfig::defaults(kind)
    };
    Ok((data, base))
}

/// Prints the table and writes it as `<stem>.md`, with the figures as `<stem>.json`.
fn write_results(
    out: &Path,
    stem: &str,
    table: &str,
    json: &serde_json::Value,
) -> Result<(), Error> {
    print!("{table}");
    write(&out.join(format!("{stem}.md")), table)?;
    write(
        &out.join(format!("{stem}.json")),
        &serde_json::to_string_pretty(json).expect("JSON values serialise"),
    )
}

fn run_lambda_sweep(args: &LambdaSweepArgs) -> Result<ExitCode, Error> {
    if args.epochs == 0 {
        return Err(Error::usage("--epochs 0: train at least one epoch per λ"));
    }
    if args.lambdas.is_empty() || args.lambdas.iter().any(|l| !(l.is_finite() && *l >= 0.0)) {
        return Err(Error::usage(format!(
            "--lambdas {:?}: give one or more finite values ≥ 0",
            args.lambdas
        )));
    }
    let (data, base) = prepare(ModelKind::Ae, args.epochs, &args.out, &args.run)?;
    let runs = args.lambdas.len();
    let bar = super::deepfake::bar(0, "λ sweep");
    let points = experiments::lambda_sweep(&data, &base, &args.lambdas, &args.out, &mut |i, s| {
        bar.set_length((runs * s.epochs * s.steps) as u64);
        bar.set_position(((i * s.epochs + s.epoch) * s.steps + s.step + 1) as u64);
        bar.set_message(format!("λ = {}", lambda_text(args.lambdas[i])));
    });
    bar.finish_and_clear();
    let points = points?;
    let table = lambda_table(&points);
    let json = serde_json::json!({
        "epochs": args.epochs,
        "train_images": args.run.train_limit.unwrap_or(data.train.len),
        "seed": args.run.seed,
        "points": points.iter().map(|p| serde_json::json!({
            "lambda": p.lambda, "test_mse": p.test_mse, "weight_norm_squared": p.weight_norm,
        })).collect::<Vec<_>>(),
    });
    write_results(&args.out, "lambda_sweep", &table, &json)?;
    // The plots' 5x7 font is ASCII: no λ, ‖ or ².
    let labels: Vec<String> = points.iter().map(|p| lambda_text(p.lambda)).collect();
    let x_label = format!("lambda = {}", labels.join(", "));
    let mse: Vec<f64> = points.iter().map(|p| p.test_mse).collect();
    let norms: Vec<f64> = points.iter().map(|p| p.weight_norm.log10()).collect();
    ferrograd_plot::save_line_plot(
        &args.out.join("lambda_mse.png"),
        "Test reconstruction MSE per pixel against lambda",
        &x_label,
        &[("test MSE", &mse)],
    )?;
    ferrograd_plot::save_line_plot(
        &args.out.join("lambda_weights.png"),
        "log10 of the squared Frobenius norm of the weights against lambda",
        &x_label,
        &[("log10 sum ||W||_F^2", &norms)],
    )?;
    println!(
        "wrote {}: lambda_sweep.md, lambda_sweep.json, lambda_mse.png, lambda_weights.png and one run per λ",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// λ as the table and plots print it: 0, 1e-5, 0.0005 → 5e-4.
fn lambda_text(lambda: f64) -> String {
    if lambda == 0.0 {
        "0".into()
    } else {
        format!("{lambda:e}")
    }
}

/// The sweep as a markdown table.
pub fn lambda_table(points: &[LambdaPoint]) -> String {
    let mut s = String::from("| λ | test MSE per pixel | Σ‖W‖²_F |\n| ---: | ---: | ---: |\n");
    for p in points {
        s += &format!(
            "| {} | {:.5} | {:.4} |\n",
            lambda_text(p.lambda),
            p.test_mse,
            p.weight_norm
        );
    }
    s
}

fn loss_name(loss: GeneratorLoss) -> &'static str {
    match loss {
        GeneratorLoss::Minimax => "minimax",
        GeneratorLoss::NonSaturating => "non-saturating",
    }
}

fn run_gan_losses(args: &GanLossesArgs) -> Result<ExitCode, Error> {
    if args.epochs == 0 {
        return Err(Error::usage("--epochs 0: train at least one epoch"));
    }
    if args.fid_samples < 2 {
        return Err(Error::usage(format!(
            "--fid-samples {}: FID needs at least 2 samples",
            args.fid_samples
        )));
    }
    let features = FeatureClassifier::load(&args.features)?;
    let (data, base) = prepare(ModelKind::Gan, args.epochs, &args.out, &args.run)?;
    let settings = QualitySettings {
        samples: args.fid_samples,
        seed: args.run.seed,
        ..QualitySettings::default()
    };
    let bar = super::deepfake::bar(0, "GAN losses");
    let runs =
        experiments::gan_loss_comparison(&data, &base, &features, &settings, &mut |loss, s| {
            let run = if loss == GeneratorLoss::Minimax { 0 } else { 1 };
            bar.set_length((2 * s.epochs * s.steps) as u64);
            bar.set_position(((run * s.epochs + s.epoch) * s.steps + s.step + 1) as u64);
            bar.set_message(loss_name(loss));
        });
    bar.finish_and_clear();
    let runs = runs?;
    let table = gan_tables(&runs, &features.name, args.fid_samples);
    let json = serde_json::json!({
        "epochs": args.epochs,
        "train_images": args.run.train_limit.unwrap_or(data.train.len),
        "seed": args.run.seed,
        "feature_classifier": features.name,
        "fid_samples": args.fid_samples,
        "runs": runs.iter().map(|r| serde_json::json!({
            "generator_loss": loss_name(r.loss),
            "fid_by_epoch": r.fid_by_epoch,
            "probes": r.probes.iter().map(|p| serde_json::json!({
                "step": p.step,
                "d_fake_mean": p.fake_mean,
                "d_fake_p10_p50_p90": p.fake_percentiles,
                "d_real_mean": p.real_mean,
                "generator_grad_norm_minimax": p.grad_norm_minimax,
                "generator_grad_norm_non_saturating": p.grad_norm_non_saturating,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    write_results(&args.out, "gan_losses", &table, &json)?;
    let series: Vec<(&str, &[f64])> = runs
        .iter()
        .map(|r| (loss_name(r.loss), r.fid_by_epoch.as_slice()))
        .collect();
    ferrograd_plot::save_line_plot(
        &args.out.join("gan_fid.png"),
        &format!("FID by epoch ({})", features.name),
        "epoch",
        &series,
    )?;
    println!(
        "wrote {}: gan_losses.md, gan_losses.json, gan_fid.png",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// FID by epoch for both runs, then each run's discriminator probes, as markdown.
pub fn gan_tables(runs: &[GanRun], feature_classifier: &str, samples: usize) -> String {
    let epochs = runs.iter().map(|r| r.fid_by_epoch.len()).max().unwrap_or(0);
    let mut s = format!(
        "FID against the test set ({samples} samples, features of {feature_classifier}):\n\n| generator loss |"
    );
    for e in 1..=epochs {
        s += &format!(" epoch {e} |");
    }
    s += "\n| --- |";
    s += &" ---: |".repeat(epochs);
    s += "\n";
    for r in runs {
        s += &format!("| {} |", loss_name(r.loss));
        for f in &r.fid_by_epoch {
            s += &format!(" {f:.2} |");
        }
        s += "\n";
    }
    for r in runs {
        s += &format!(
            "\nThe discriminator at the start, {} run (D(G(z)) over 512 codes; the generator's \
             gradient norm under each loss at the same weights):\n\n\
             | step | mean D(G(z)) | p10 / p50 / p90 | mean D(x) | ‖∇‖ minimax | ‖∇‖ non-saturating |\n\
             | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            loss_name(r.loss)
        );
        for p in &r.probes {
            s += &format!(
                "| {} | {:.4} | {:.4} / {:.4} / {:.4} | {:.4} | {:.4} | {:.4} |\n",
                p.step,
                p.fake_mean,
                p.fake_percentiles[0],
                p.fake_percentiles[1],
                p.fake_percentiles[2],
                p.real_mean,
                p.grad_norm_minimax,
                p.grad_norm_non_saturating
            );
        }
    }
    s
}

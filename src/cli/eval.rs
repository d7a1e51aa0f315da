//! `ferrograd eval CHECKPOINT`: a checkpoint's test-set figures, printed and written to
//! `eval.json` beside it.

use super::train::pick_device;
use super::Error;
use ferrograd_models::data::FashionMnist;
use ferrograd_models::evaluation::{self, FeatureClassifier, QualitySettings, SamplerReport};
use ferrograd_models::generative::LikelihoodData;
use ferrograd_models::train;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where `ferrograd train classifier` writes by default: the feature classifier unless
/// `--features` names another.
const DEFAULT_FEATURES: &str = "runs/classifier/checkpoint.safetensors";

#[derive(clap::Args)]
pub struct EvalArgs {
    /// A checkpoint written by `ferrograd train`.
    pub checkpoint: PathBuf,
    /// Fashion-MNIST folder (as for train).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where to compute: `cpu`, `gpu` or `best` (a hardware GPU when there is one).
    #[arg(long, env = "FERROGRAD_DEVICE", default_value = "best")]
    pub device: String,
    /// VAE: the sample counts K of the importance-weighted bounds (every K from the same
    /// draws; 0 or an empty list skips them).
    #[arg(long, value_delimiter = ',', default_value = "1,64,5000")]
    pub iwae: Vec<usize>,
    /// VAE: how many test images (the first ones) the bounds and the ELBO beside them use.
    /// K = 5,000 decodes 5,000 codes per image.
    #[arg(long, default_value_t = 1000)]
    pub iwae_images: usize,
    /// VAE: evaluate the likelihood at dynamically binarised test images (each pixel 1 with
    /// probability equal to its intensity, from this seed) instead of the intensities the VAE
    /// was trained on.
    #[arg(long)]
    pub binarize: Option<u64>,
    /// VAE, GAN, AAE: the classifier checkpoint whose penultimate layer is the feature space of
    /// FID, KID, precision and recall. Default: runs/classifier/checkpoint.safetensors when it
    /// exists.
    #[arg(long)]
    pub features: Option<PathBuf>,
    /// Samples drawn for the sample-quality figures (and real images they are compared with).
    #[arg(long, default_value_t = 10_000)]
    pub samples: usize,
    /// KID: random subsets, and rows in each.
    #[arg(long, default_value_t = 100)]
    pub kid_subsets: usize,
    #[arg(long, default_value_t = 1000)]
    pub kid_subset_size: usize,
    /// Seed of the samples, the codes z and the KID subsets.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Refuses settings that leave a figure with nothing to compute, before any file is read.
fn validate(args: &EvalArgs) -> Result<(), Error> {
    let too_small = [
        ("--iwae-images", args.iwae_images, 1),
        ("--samples", args.samples, 2),
        ("--kid-subsets", args.kid_subsets, 1),
        ("--kid-subset-size", args.kid_subset_size, 2),
    ];
    for (flag, value, least) in too_small {
        if value < least {
            return Err(Error::usage(format!(
                "{flag} {value}: it must be at least {least}"
            )));
        }
    }
    Ok(())
}

pub fn run(args: &EvalArgs) -> Result<ExitCode, Error> {
    validate(args)?;
    let device = pick_device(&args.device)?;
    ferrograd_kernels::flush_subnormals();
    let data = FashionMnist::load(args.data.as_deref())?;
    // One load serves the test losses and the figures below.
    let (model, config, epoch) = train::load_model(&args.checkpoint, device)?;
    let test_losses = train::evaluate_split(&*model, &data.test, 0)?;
    println!(
        "{} after epoch {epoch}, on the {} test images:",
        config.kind.name(),
        data.test.len
    );
    let show = |key: &str, label: &str| {
        if let Some(v) = test_losses.get(key) {
            println!("  {label:<34} {v:.5}");
        }
    };
    show("mse", "reconstruction MSE (per pixel)");
    show("negative_elbo", "negative ELBO (nats per image)");
    show("reconstruction", "reconstruction BCE (nats per image)");
    show("kl", "KL to N(0, I) (nats per image)");
    show("discriminator", "discriminator loss");
    show("generator", "generator loss");
    show("encoder_adversarial", "encoder adversarial loss");
    show("accuracy", "classification accuracy");
    show("cross_entropy", "cross-entropy");

    let mut json = serde_json::json!({
        "checkpoint": args.checkpoint.display().to_string(),
        "model": config.kind.name(),
        "epoch": epoch,
        "test_losses": test_losses,
    });
    if let Some(vae) = model.as_vae() {
        let ks: Vec<usize> = args.iwae.iter().copied().filter(|&k| k > 0).collect();
        if !ks.is_empty() {
            let data_kind = match args.binarize {
                Some(seed) => LikelihoodData::Binarized { seed },
                None => LikelihoodData::Intensities,
            };
            let images = args.iwae_images.min(data.test.len);
            let bar = super::deepfake::bar(images, "importance-weighted bounds");
            let iwae = evaluation::iwae_report(
                vae,
                &data.test,
                &ks,
                images,
                data_kind,
                args.seed,
                |done| bar.set_position(done as u64),
            )?;
            bar.finish_and_clear();
            print_iwae(&iwae);
            json["likelihood"] = iwae.to_json();
        }
    }
    if model
        .sample(1, &mut ferrograd_engine::Rng::new(0))
        .is_some()
    {
        match feature_classifier(args.features.as_deref())? {
            Some(features) => {
                let settings = QualitySettings {
                    samples: args.samples,
                    kid_subsets: args.kid_subsets,
                    kid_subset_size: args.kid_subset_size,
                    seed: args.seed,
                    ..QualitySettings::default()
                };
                eprintln!(
                    "sample quality: {} samples against the test set in the features of {}",
                    settings.samples, features.name
                );
                let quality = evaluation::sampler_report(
                    &*model,
                    &features,
                    &data.test,
                    &data.train,
                    &settings,
                )?;
                print_quality(&quality);
                json["sample_quality"] = quality.to_json();
            }
            None => println!(
                "  (no sample-quality figures: no classifier at {DEFAULT_FEATURES}; train one \
                 with `ferrograd train classifier` or name one with --features)"
            ),
        }
    }
    let out = args
        .checkpoint
        .parent()
        .unwrap_or(Path::new("."))
        .join("eval.json");
    let text = serde_json::to_string_pretty(&json).expect("JSON values serialise");
    ferrograd_nn::checkpoint::write_atomically(&out, text.as_bytes()).map_err(|e| Error::File {
        path: out.clone(),
        message: format!("cannot write: {e}"),
    })?;
    println!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn feature_classifier(explicit: Option<&Path>) -> Result<Option<FeatureClassifier>, Error> {
    match explicit {
        Some(path) => Ok(Some(FeatureClassifier::load(path)?)),
        None if Path::new(DEFAULT_FEATURES).exists() => {
            Ok(Some(FeatureClassifier::load(Path::new(DEFAULT_FEATURES))?))
        }
        None => Ok(None),
    }
}

fn print_iwae(r: &evaluation::IwaeReport) {
    println!(
        "  likelihood on the first {} test images ({}), nats per image, ± standard error:",
        r.images,
        r.data.describe()
    );
    println!(
        "    negative ELBO                    {:.3} ± {:.3}",
        r.negative_elbo.mean, r.negative_elbo.standard_error
    );
    for (k, e) in &r.bounds {
        println!(
            "    −log p(x) ≤ (IWAE, K = {k:<5})    {:.3} ± {:.3}",
            e.mean, e.standard_error
        );
    }
}

fn print_quality(q: &SamplerReport) {
    println!(
        "  sample quality in the features of {} (lower FID/KID is better):",
        q.feature_classifier
    );
    for (label, s) in [
        ("samples vs test", &q.samples),
        ("test vs train (floor)", &q.floor),
    ] {
        println!(
            "    {label:<22} FID {:8.3}   KID {:.5} ± {:.5}   precision {:.3}   recall {:.3}",
            s.fid, s.kid.mean, s.kid.standard_error, s.precision, s.recall
        );
    }
}

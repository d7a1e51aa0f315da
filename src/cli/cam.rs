//! `ferrograd cam`: class activation maps of a trained classifier.

use super::train::pick_device;
use super::train::with_range;
use super::Error;
use ferrograd_cam::render::Colormap;
use ferrograd_cam::run::{self, ranges, CamSettings};
use ferrograd_cam::{Method, Score};
use ferrograd_models::classifier::LAYER_NAMES;
use ferrograd_models::data::FashionMnist;
use ferrograd_models::generative::Model;
use ferrograd_models::train::load_classifier;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ScoreArg {
    /// Y = z_c
    Logit,
    /// Y = exp(z_c), the score Grad-CAM++'s closed form assumes
    ExpLogit,
    /// Y = softmax(z)_c
    Softmax,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum DtypeArg {
    F32,
    F64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum ColormapArg {
    Viridis,
    Jet,
}

#[derive(clap::Args)]
pub struct CamArgs {
    /// A checkpoint written by `ferrograd train classifier`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Classes to explain (0-9, each at most once), comma-separated: 7 is sneaker, 9 ankle boot.
    #[arg(long, value_delimiter = ',', default_value = "7,9")]
    pub classes: Vec<usize>,
    #[arg(long, default_value_t = 8, help = with_range("Test images per class (the first ones of that class)", ranges::IMAGES.describe()))]
    pub images: usize,
    /// Target layers, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "conv1,conv2,conv3")]
    pub layers: Vec<String>,
    /// Methods, comma-separated: saliency, smoothgrad (drawn in the input's pixels), cam,
    /// gradcam, gradcam++, gradcam++exact, gradcam++exact-clamped, gradcam++pytorch-grad-cam,
    /// layercam, scorecam.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cam,gradcam,gradcam++,gradcam++exact"
    )]
    pub method: Vec<String>,
    /// The class score the gradient methods differentiate.
    #[arg(long, value_enum, default_value_t = ScoreArg::ExpLogit)]
    pub score: ScoreArg,
    #[arg(long, value_enum, default_value_t = ColormapArg::Viridis)]
    pub colormap: ColormapArg,
    /// Also measure Average Drop, Increase in Confidence and deletion/insertion AUC over the
    /// test set, and print the table.
    #[arg(long)]
    pub metrics: bool,
    #[arg(long, default_value_t = 500, help = with_range("Test images the metrics use (the first ones; about 0.23 s each for the seven closed-form maps on 2 cores, so all 10,000 take about 40 minutes)", ranges::METRICS_IMAGES.describe()))]
    pub metrics_images: usize,
    #[arg(long, default_value_t = 100, help = with_range("Of those, how many the exact method sees (milliseconds per map for a ReLU classifier, up to about 2 s at conv1 for a smooth one)", ranges::EXACT_IMAGES.describe()))]
    pub exact_images: usize,
    #[arg(long, default_value_t = 28, help = with_range("Steps of the deletion and insertion curves", ranges::CURVE_STEPS.describe()))]
    pub curve_steps: usize,
    /// Also find, by gradient ascent from noise, the inputs that maximise each class of
    /// --classes (activation maximisation, with total-variation and L2 regularisers and
    /// jitter), four seeds per class: maximize.png (a row per class) and maximize.json.
    #[arg(long)]
    pub maximize: bool,
    /// The element type of the whole computation: f64 gives the exact Grad-CAM++ its full
    /// precision (in f32 its α is ill-conditioned where the denominator 2·∂²Y + Σ A·∂³Y nears 0,
    /// and maps of a smooth classifier move by up to a few percent).
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
    /// With --metrics, also score every map by ROAD (remove and debias: the most and the
    /// least relevant pixels replaced by noisy linear imputation at percentiles 10–90).
    #[arg(long)]
    pub road: bool,
    /// With --metrics: carry on a run that was interrupted, after the images its per-image log
    /// (metrics_images.jsonl in --out) already holds; the flags must be those it was started
    /// with. Without it, the log starts afresh.
    #[arg(long, requires = "metrics")]
    pub resume: bool,
    /// Also examine the exact Grad-CAM++'s α at every layer over this many test images: the
    /// share outside the paper's range [0, ½], of negative denominators, the largest |α|, and
    /// the share of maps that come out empty, with α unmodified and clamped; alpha.json.
    #[arg(long)]
    pub alpha_report: Option<usize>,
    /// Also write raw.json: every map before upsampling and normalisation, with the layer's
    /// activations, the channel weights, the score Y, and the exact method's diagonal
    /// derivatives d1, d2, d3, so each map can be recomputed without this program.
    #[arg(long)]
    pub raw: bool,
    /// Also run the sanity check of Adebayo et al. 2018 on every method and layer: the rank
    /// correlation of the maps on the trained model and on copies randomised from the head
    /// down; sanity.json and a table.
    #[arg(long)]
    pub sanity: bool,
    /// With --sanity, also run the data-randomisation test against this checkpoint: the same
    /// classifier trained on permuted labels (`ferrograd train classifier --random-labels
    /// SEED`), whose maps a faithful method must not reproduce.
    #[arg(long, requires = "sanity", value_name = "CHECKPOINT")]
    pub random_labels_checkpoint: Option<PathBuf>,
    /// Test images the sanity check explains (the first ones, each for its label).
    #[arg(long, default_value_t = 16)]
    pub sanity_images: usize,
    /// Output folder.
    #[arg(long, default_value = "runs/cam")]
    pub out: PathBuf,
    /// Fashion-MNIST folder (as for train).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where to compute: `cpu`, `gpu` or `best` (a hardware GPU when there is one).
    #[arg(long, env = "FERROGRAD_DEVICE", default_value = "best")]
    pub device: String,
}

fn settings(args: &CamArgs) -> Result<CamSettings, Error> {
    let layers = args
        .layers
        .iter()
        .map(|name| {
            LAYER_NAMES.iter().position(|l| l == name).ok_or_else(|| {
                Error::usage(format!(
                    "--layers: unknown layer '{name}'; the classifier has {}",
                    LAYER_NAMES.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let methods = args
        .method
        .iter()
        .map(|name| {
            Method::parse(name).ok_or_else(|| {
                let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                Error::usage(format!(
                    "--method: unknown method '{name}'; choose from {}",
                    names.join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CamSettings {
        classes: args.classes.clone(),
        images_per_class: args.images,
        layers,
        methods,
        score: match args.score {
            ScoreArg::Logit => Score::Logit,
            ScoreArg::ExpLogit => Score::ExpLogit,
            ScoreArg::Softmax => Score::Softmax,
        },
        colormap: match args.colormap {
            ColormapArg::Viridis => Colormap::Viridis,
            ColormapArg::Jet => Colormap::Jet,
        },
        curve_steps: args.curve_steps,
        road: args.road,
        raw: args.raw,
    })
}

fn bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

pub fn run(args: &CamArgs) -> Result<ExitCode, Error> {
    // Every flag checked before any work.
    let settings = settings(args)?;
    settings.validate()?;
    if args.metrics {
        settings.validate_metrics(args.metrics_images, args.exact_images)?;
    }
    if args.alpha_report == Some(0) {
        return Err(Error::usage("--alpha-report 0: examine at least one image"));
    }
    if args.sanity && args.sanity_images == 0 {
        return Err(Error::usage(
            "--sanity-images 0: the sanity check needs at least one image",
        ));
    }
    let device = pick_device(&args.device)?;
    ferrograd_kernels::flush_subnormals();
    let (model, config, epoch) = load_classifier(&args.checkpoint)?;
    if matches!(args.dtype, DtypeArg::F64) {
        model.cast(ferrograd_engine::DType::F64)?;
    }
    model.move_to(device)?;
    let data = FashionMnist::load(args.data.as_deref())?;
    eprintln!(
        "explaining {} (classifier, {} activation, epoch {epoch}) with Y = {} into {}",
        args.checkpoint.display(),
        config.activation.name(),
        settings.score.name(),
        args.out.display()
    );
    if args.maximize {
        maximize(&model, &args.classes, &args.out)?;
    }
    let progress = bar();
    progress.set_prefix("maps");
    let records = run::explain_examples(
        &model,
        &data.test,
        &settings,
        &args.out,
        &mut |what, done, total| {
            progress.set_length(total as u64);
            progress.set_position(done as u64);
            progress.set_message(what.to_string());
        },
    );
    progress.finish_and_clear();
    let records = records?;
    println!(
        "wrote {} and {} ({} maps)",
        args.out.join("grid.png").display(),
        args.out.join("cam.json").display(),
        records.len()
    );
    if args.metrics {
        let progress = bar();
        progress.set_prefix("metrics");
        let rows = run::test_set_metrics(
            &model,
            &data.test,
            &settings,
            args.metrics_images,
            args.exact_images,
            Some(&metrics_log(args)?),
            &mut |_, done, total| {
                progress.set_length(total as u64);
                progress.set_position(done as u64);
            },
        );
        progress.finish_and_clear();
        let table = run::save_metrics(&rows?, settings.score, &args.out)?;
        super::print_stdout(&format!(
            "faithfulness over the first test images (Y = {}), written to {}:\n\n{table}",
            settings.score.name(),
            args.out.join("metrics.json").display()
        ))?;
    }
    if let Some(images) = args.alpha_report {
        let progress = bar();
        progress.set_prefix("alpha");
        let rows = run::alpha_report(
            &model,
            &data.test,
            &settings,
            images,
            &mut |what, done, total| {
                progress.set_length(total as u64);
                progress.set_position(done as u64);
                progress.set_message(what.to_string());
            },
        );
        progress.finish_and_clear();
        let table = run::save_alpha_report(&rows?, settings.score, &args.out)?;
        super::print_stdout(&format!(
            "the exact Grad-CAM++'s α (Y = {}), each image for its predicted class, written to {}:\n\n{table}",
            settings.score.name(),
            args.out.join("alpha.json").display()
        ))?;
    }
    if args.sanity {
        let progress = bar();
        progress.set_prefix("sanity");
        let fresh = |stage: usize| {
            let mut rng = ferrograd_engine::Rng::new(0x5a17 + stage as u64);
            let random = ferrograd_models::classifier::Classifier::new(
                config.activation,
                config.beta,
                config.lambda,
                config.lr,
                &mut rng,
            )?;
            random.cast(model.head.weight.dtype())?;
            random.move_to(device)?;
            Ok(random)
        };
        let random_labels = match &args.random_labels_checkpoint {
            Some(path) => Some(load_random_labels_model(path, &config, &model, device)?),
            None => None,
        };
        let rows = run::sanity_checks(
            &model,
            &fresh,
            random_labels.as_ref(),
            &data.test,
            &settings,
            args.sanity_images,
            &mut |what, done, total| {
                progress.set_length(total as u64);
                progress.set_position(done as u64);
                progress.set_message(what.to_string());
            },
        );
        progress.finish_and_clear();
        let table = run::save_sanity(&rows?, args.sanity_images, &args.out)?;
        super::print_stdout(&format!(
            "sanity check (Adebayo et al. 2018) over the first {} test images: rank correlation \
             between the trained model's maps and those of copies randomised from the head down, \
             written to {}:\n\n{table}",
            args.sanity_images,
            args.out.join("sanity.json").display()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--random-labels-checkpoint`: a classifier of the same architecture as the one explained,
/// trained on permuted labels, in the same element type and on the same device.
fn load_random_labels_model(
    path: &std::path::Path,
    explained: &ferrograd_models::train::TrainConfig,
    model: &ferrograd_models::classifier::Classifier,
    device: ferrograd_engine::Device,
) -> Result<ferrograd_models::classifier::Classifier, Error> {
    let (random, config, _) = load_classifier(path)?;
    if config.random_labels.is_none() {
        return Err(Error::usage(format!(
            "--random-labels-checkpoint {}: that classifier was trained on the true labels;              train one with `ferrograd train classifier --random-labels SEED`",
            path.display()
        )));
    }
    if config.activation != explained.activation {
        return Err(Error::usage(format!(
            "--random-labels-checkpoint {}: that classifier uses {}, the one explained {};              the test compares the same architecture",
            path.display(),
            config.activation.name(),
            explained.activation.name()
        )));
    }
    random.cast(model.head.weight.dtype())?;
    random.move_to(device)?;
    Ok(random)
}

/// The per-image log of `--metrics`, named for the checkpoint's bytes and the element type
/// so that `--resume` never mixes two models' figures.
fn metrics_log(args: &CamArgs) -> Result<ferrograd_cam::metrics_log::MetricsLog, Error> {
    let bytes = std::fs::read(&args.checkpoint).map_err(|e| Error::File {
        path: args.checkpoint.clone(),
        message: format!("cannot read: {e}"),
    })?;
    Ok(ferrograd_cam::metrics_log::MetricsLog {
        path: args.out.join("metrics_images.jsonl"),
        resume: args.resume,
        model: format!(
            "{:016x} {}",
            ferrograd_models::evaluation::fnv1a64(&bytes),
            match args.dtype {
                DtypeArg::F32 => "f32",
                DtypeArg::F64 => "f64",
            }
        ),
    })
}

/// Seeds per class of `--maximize`: the columns of maximize.png.
const MAXIMIZE_SEEDS: usize = 4;

/// `--maximize`: one ascent per (class, seed), drawn as a grid and recorded with the scores.
fn maximize(
    model: &ferrograd_models::classifier::Classifier,
    classes: &[usize],
    out: &std::path::Path,
) -> Result<(), Error> {
    use ferrograd_cam::maximize::{maximize_class, MaximizeSettings};
    std::fs::create_dir_all(out).map_err(|e| Error::CreateFolder {
        path: out.to_path_buf(),
        message: e.to_string(),
    })?;
    let settings = MaximizeSettings::default();
    let progress = bar();
    progress.set_prefix("maximize");
    progress.set_length((classes.len() * MAXIMIZE_SEEDS) as u64);
    let mut images = Vec::new();
    let mut records = Vec::new();
    for &class in classes {
        for seed in 0..MAXIMIZE_SEEDS {
            let run = maximize_class(
                model,
                class,
                &settings,
                &mut ferrograd_engine::Rng::new(seed as u64),
            )?;
            images.extend(run.image.iter().map(|&v| v as f32));
            records.push(serde_json::json!({
                "class": class,
                "seed": seed,
                "score_start": run.scores[0],
                "score_end": run.scores[run.scores.len() - 1],
            }));
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    let png = out.join("maximize.png");
    ferrograd_plot::save_image_grid(&png, &images, 1, 28, 28, MAXIMIZE_SEEDS, 4)?;
    let json = serde_json::json!({
        "score": settings.score.name(),
        "steps": settings.steps,
        "lr": settings.lr,
        "total_variation": settings.total_variation,
        "l2": settings.l2,
        "jitter": settings.jitter,
        "runs": records,
    });
    let path = out.join("maximize.json");
    ferrograd_nn::checkpoint::write_atomically(
        &path,
        serde_json::to_string_pretty(&json)
            .expect("JSON values serialise")
            .as_bytes(),
    )
    .map_err(|e| Error::File {
        path: path.clone(),
        message: format!("cannot write: {e}"),
    })?;
    println!(
        "wrote {} (a row per class of --classes, {MAXIMIZE_SEEDS} seeds each) and {}",
        png.display(),
        path.display()
    );
    Ok(())
}

//! `ferrograd deepfake train|swap|mix|eval|convert`.

use super::train::pick_device;
use super::train::{with_range, ScheduleArg};
use super::Error;
use ferrograd_deepfake::convert;
use ferrograd_deepfake::eval::{self, EvalReport};
use ferrograd_deepfake::faces::{
    batch_tensor, default_faces_dir, face_from_picture, load_face, CropBox, FACE_SIZE, LFW_SIZE,
};
use ferrograd_deepfake::identity::IdentitySettings;
use ferrograd_deepfake::model::{PriorKind, Side, SwapConfig};
use ferrograd_deepfake::picture::{save_before_after, save_face_grid, save_face_strip};
use ferrograd_deepfake::train::{self, ranges, DeepfakeConfig, Pair, StepReport};
use ferrograd_deepfake::Error as DeepfakeError;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum DeepfakeCommand {
    /// Train the shared encoder and the two decoders on two identities' faces.
    Train(TrainArgs),
    /// Swap one face to the other identity: D_to(E(x)).
    Swap(SwapArgs),
    /// A strip of decoded mixtures (1 − t)·E(a) + t·E(b) of two faces.
    Mix(MixArgs),
    /// Held-out reconstruction MAE/PSNR/SSIM, cycle error, and the identity score.
    Eval(EvalArgs),
    /// Replace the face in a photograph (or a folder of them) and write the full-size result:
    /// crop, swap, colour-match to the original skin, blend back with a feathered mask.
    Convert(ConvertArgs),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum PriorArg {
    /// A discriminator on the code against N(0, I)
    Adversarial,
    /// μ, log σ² and KL to N(0, I)
    Vae,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Folder of faces in LFW's layout (<Name>/<Name>_NNNN.jpg) (default: $FERROGRAD_FACES, ../shared/data/lfw).
    #[arg(long)]
    pub faces: Option<PathBuf>,
    /// Identity A (a folder name under --faces).
    #[arg(long, default_value = "George_W_Bush")]
    pub a: String,
    /// Identity B.
    #[arg(long, default_value = "Colin_Powell")]
    pub b: String,
    #[arg(long, default_value_t = run_defaults().steps, help = with_range("Training steps (16,000, about an hour on 2 cores, give the figures in the README)", ranges::STEPS.describe()))]
    pub steps: usize,
    #[arg(long, default_value_t = run_defaults().pretrain_steps, help = with_range("Of the --steps, how many first train both decoders on the faces of every identity in --faces (DeepFaceLab's pretraining; 0: none)", ranges::PRETRAIN_STEPS.describe()))]
    pub pretrain_steps: usize,
    #[arg(long, default_value_t = run_defaults().batch, help = with_range("Faces of each identity per step", ranges::BATCH.describe()))]
    pub batch: usize,
    #[arg(long, default_value_t = SwapConfig::default().lr, help = with_range("Learning rate", ranges::LR.describe()))]
    pub lr: f64,
    /// How the learning rate moves over the run.
    #[arg(long, value_enum, default_value_t = ScheduleArg::from(run_defaults().lr_schedule))]
    pub lr_schedule: ScheduleArg,
    #[arg(long, default_value_t = SwapConfig::default().latent, help = with_range("Size of the shared latent code", ranges::LATENT.describe()))]
    pub latent: usize,
    /// How the latent prior N(0, I) is enforced.
    #[arg(long, value_enum, default_value_t = PriorArg::Adversarial)]
    pub prior: PriorArg,
    #[arg(long, help = with_range("Weight of the prior term beside the reconstruction (default: 0.01 adversarial, 1e-4 vae)", ranges::PRIOR_WEIGHT.describe()))]
    pub prior_weight: Option<f64>,
    #[arg(long, default_value_t = SwapConfig::default().dssim_weight, help = with_range("Weight of the structural dissimilarity (DSSIM) added to the L1 reconstruction loss (0: L1 only)", ranges::DSSIM_WEIGHT.describe()))]
    pub dssim_weight: f64,
    #[arg(long, default_value_t = SwapConfig::default().ema_decay, help = with_range("Decay of the moving average of the weights that previews, swaps and eval draw from (0: none, the last step's weights)", ranges::EMA_DECAY.describe()))]
    pub ema_decay: f64,
    #[arg(long, default_value_t = SwapConfig::default().identity_weight, help = with_range("Weight of the identity-confusion term: a critic on the code tells A's faces from B's, and the encoder learns to leave it unable to (0: no critic)", ranges::IDENTITY_WEIGHT.describe()))]
    pub identity_weight: f64,
    #[arg(long, default_value_t = SwapConfig::default().eye_multiplier, help = with_range("How many times an eye pixel counts in the reconstruction loss (1: as any other)", ranges::EYE_MULTIPLIER.describe()))]
    pub eye_multiplier: f64,
    #[arg(long, default_value_t = SwapConfig::default().mouth_multiplier, help = with_range("How many times a mouth pixel counts in the reconstruction loss (1: as any other)", ranges::MOUTH_MULTIPLIER.describe()))]
    pub mouth_multiplier: f64,
    /// Seed of the weights, the held-out split and the batches [range: any 64-bit whole number].
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = run_defaults().preview_every, help = with_range("Steps between preview grids and checkpoints (0: only at the end)", ranges::PREVIEW_EVERY.describe()))]
    pub preview_every: usize,
    #[arg(long, default_value_t = run_defaults().held_out_fraction, help = with_range("Fraction of each identity's faces held out for evaluation", ranges::HELD_OUT.describe()))]
    pub held_out: f64,
    #[arg(long, help = with_range("Use at most this many faces per identity (quick runs)", ranges::LIMIT.describe()))]
    pub limit: Option<usize>,
    /// Skip unreadable images with a warning instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
    /// Continue from the checkpoint in --out.
    #[arg(long)]
    pub resume: bool,
    /// Output folder (default: runs/deepfake).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where to compute: `cpu`, `gpu` or `best` (a hardware GPU when there is one).
    #[arg(long, env = "FERROGRAD_DEVICE", default_value = "best")]
    pub device: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum SideArg {
    A,
    B,
}

impl SideArg {
    fn side(self) -> Side {
        match self {
            SideArg::A => Side::A,
            SideArg::B => Side::B,
        }
    }
}

#[derive(clap::Args)]
pub struct SwapArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// A face photograph (250x250 LFW images are cropped as in training; others give their
    /// largest centred square, with a note: `convert --box` places the face in any photo).
    #[arg(long)]
    pub input: PathBuf,
    /// Whose decoder draws the face.
    #[arg(long, value_enum)]
    pub to: SideArg,
    /// The output PNG: the input crop beside the swapped face.
    #[arg(long)]
    pub out: PathBuf,
    /// Where to compute: `cpu`, `gpu` or `best` (a hardware GPU when there is one).
    #[arg(long, env = "FERROGRAD_DEVICE", default_value = "best")]
    pub device: String,
}

#[derive(clap::Args)]
pub struct ConvertArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// A photograph (JPEG or PNG), or a folder of them (converted in name order, as video
    /// frames are numbered).
    #[arg(long)]
    pub input: PathBuf,
    /// Whose face to put in.
    #[arg(long, value_enum)]
    pub to: SideArg,
    /// Output folder: each photo as <name>.png, and strip.png (the first photos before and
    /// after).
    #[arg(long)]
    pub out: PathBuf,
    /// The face's square box in pixels, LEFT,TOP,SIDE,SIDE (eyebrows to chin, ear to ear).
    /// Needed unless the photos are LFW-aligned 250x250, whose box (65,70,120,120) is the
    /// default.
    #[arg(long = "box", value_name = "LEFT,TOP,WIDTH,HEIGHT", value_parser = convert::parse_box)]
    pub face_box: Option<CropBox>,
    /// Keep the network's colours instead of matching them to the original face's.
    #[arg(long)]
    pub no_colour_match: bool,
    /// Where to compute: `cpu`, `gpu` or `best` (a hardware GPU when there is one).
    #[arg(long, env = "FERROGRAD_DEVICE", default_value = "best")]
    pub device: String,
}

#[derive(clap::Args)]
pub struct MixArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The face at t = 0.
    #[arg(long)]
    pub a: PathBuf,
    /// The face at t = 1.
    #[arg(long)]
    pub b: PathBuf,
    #[arg(long, default_value_t = 8, help = with_range("Points of the sweep t = 0 … 1", ranges::MIX_STEPS.describe()))]
    pub steps: usize,
    /// Which decoder draws the mixtures (default: both, one row each). The picture's columns:
    /// a, then h_t = (1 − t)·E(a) + t·E(b) decoded for t = 0 … 1, then b.
    #[arg(long, value_enum)]
    pub decoder: Option<SideArg>,
    /// Also mix by concatenation: h = [E(a) first round((1 − t)·d) dimensions, E(b) the rest].
    #[arg(long)]
    pub splice: bool,
    #[arg(long)]
    pub out: PathBuf,
    /// Where to compute: `cpu`, `gpu` or `best` (a hardware GPU when there is one).
    #[arg(long, env = "FERROGRAD_DEVICE", default_value = "best")]
    pub device: String,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Faces folder (default: the one the checkpoint was trained on).
    #[arg(long)]
    pub faces: Option<PathBuf>,
    #[arg(long, default_value_t = 1500, help = with_range("Training steps of the identity classifier (1,500 reach 100% on the held-out Bush and Powell faces; 300 only 77%)", ferrograd_deepfake::identity::ranges::CLASSIFIER_STEPS.describe()))]
    pub classifier_steps: usize,
    /// Also write the faces an outside judge needs into this folder: each identity's training
    /// faces, and each held-out face with its reconstruction and its swap, as 100x100 PNGs
    /// (`benches/face_judge.py` reads them).
    #[arg(long, value_name = "DIR")]
    pub write_images: Option<PathBuf>,
    /// Where to compute: `cpu`, `gpu` or `best` (a hardware GPU when there is one).
    #[arg(long, env = "FERROGRAD_DEVICE", default_value = "best")]
    pub device: String,
}

pub fn run(command: &DeepfakeCommand) -> Result<ExitCode, Error> {
    ferrograd_kernels::flush_subnormals();
    match command {
        DeepfakeCommand::Train(args) => run_train(args),
        DeepfakeCommand::Swap(args) => run_swap(args),
        DeepfakeCommand::Mix(args) => run_mix(args),
        DeepfakeCommand::Eval(args) => run_eval(args),
        DeepfakeCommand::Convert(args) => run_convert(args),
    }
}

pub(super) fn bar(len: usize, prefix: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// The library's defaults, which the flags' defaults are (the faces folder aside).
fn run_defaults() -> DeepfakeConfig {
    DeepfakeConfig::defaults(PathBuf::new())
}

pub fn config(args: &TrainArgs) -> DeepfakeConfig {
    let prior = match args.prior {
        PriorArg::Adversarial => PriorKind::Adversarial,
        PriorArg::Vae => PriorKind::Variational,
    };
    let default_weight = match prior {
        PriorKind::Adversarial => SwapConfig::default().prior_weight,
        PriorKind::Variational => 1e-4,
    };
    DeepfakeConfig {
        a: args.a.clone(),
        b: args.b.clone(),
        steps: args.steps,
        pretrain_steps: args.pretrain_steps,
        batch: args.batch,
        seed: args.seed,
        model: SwapConfig {
            latent: args.latent,
            prior,
            prior_weight: args.prior_weight.unwrap_or(default_weight),
            lr: args.lr,
            dssim_weight: args.dssim_weight,
            ema_decay: args.ema_decay,
            identity_weight: args.identity_weight,
            eye_multiplier: args.eye_multiplier,
            mouth_multiplier: args.mouth_multiplier,
        },
        lr_schedule: args.lr_schedule.into(),
        preview_every: args.preview_every,
        checkpoint_every: args.preview_every,
        held_out_fraction: args.held_out,
        limit: args.limit,
        skip_bad: args.skip_bad,
        ..DeepfakeConfig::defaults(args.faces.clone().unwrap_or_else(default_faces_dir))
    }
}

fn run_train(args: &TrainArgs) -> Result<ExitCode, Error> {
    // Every flag in its range before any work.
    config(args).validate()?;
    let device = pick_device(&args.device)?;
    let cfg = DeepfakeConfig {
        device,
        ..config(args)
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/deepfake"));
    let pair = Pair::load(&cfg)?;
    for warning in pair.small_evaluation_warnings() {
        eprintln!("{warning}");
    }
    eprintln!(
        "face swap {} ({} train / {} held out) <-> {} ({} / {}) from {} into {}",
        cfg.a,
        pair.a.train.len(),
        pair.a.held_out.len(),
        cfg.b,
        pair.b.train.len(),
        pair.b.held_out.len(),
        cfg.faces.display(),
        out.display()
    );
    if cfg.pretrain_steps > 0 {
        eprintln!(
            "pretraining: the first {} steps, both decoders draw from {} training faces of {} identities",
            cfg.pretrain_steps,
            pair.pretraining_faces().len(),
            2 + pair.others.len()
        );
    }
    let progress = bar(cfg.steps, "train");
    let mut on_step = |s: &StepReport| {
        progress.set_position(s.step as u64);
        progress.set_message(format!(
            "L1 A {:.4} B {:.4}, prior {:.3}, {:.1} img/s",
            s.losses.reconstruction_a, s.losses.reconstruction_b, s.losses.prior, s.images_per_s
        ));
    };
    let summary = train::train_on(&cfg, &pair, &out, args.resume, &mut on_step);
    progress.finish_and_clear();
    let summary = summary?;
    if summary.resumed_from > 0 {
        eprintln!("resumed after step {}", summary.resumed_from);
    }
    println!(
        "{} steps in {:.1} s ({:.1} images/s); last step: L1 A {:.4}, B {:.4}, prior {:.4}, discriminator {:.4}",
        summary.steps,
        summary.seconds,
        summary.images_per_s,
        summary.last.reconstruction_a,
        summary.last.reconstruction_b,
        summary.last.prior,
        summary.last.discriminator
    );
    println!(
        "wrote {}: checkpoint.safetensors, preview.png (rows: held-out faces; columns: face, own decoder, other decoder), metrics.json, loss_curves.png",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// One face file as a [1, 3, 100, 100] batch and its pixels.
fn face_batch(path: &Path) -> Result<(ferrograd_engine::Tensor, Vec<f32>), DeepfakeError> {
    let face = load_face(path)?;
    Ok((batch_tensor(&[face.as_slice()])?, face))
}

fn run_swap(args: &SwapArgs) -> Result<ExitCode, Error> {
    let device = pick_device(&args.device)?;
    let loaded = eval::load(&args.checkpoint)?;
    loaded.model.move_to(device)?;
    let photo = convert::load_photo(&args.input)?;
    let (width, height) = photo.picture.dimensions();
    if (width, height) != (LFW_SIZE, LFW_SIZE) {
        eprintln!(
            "note: {} is {width}x{height}, not an LFW-aligned {LFW_SIZE}x{LFW_SIZE} photo, so its              largest centred square was taken as the face; to place the face yourself and get              the whole photo back, use `ferrograd deepfake convert --box`",
            args.input.display()
        );
    }
    if photo.grayscale {
        eprintln!(
            "note: {} is grayscale; it was converted to RGB and the swapped face is in colour",
            args.input.display()
        );
    }
    // The photo is decoded once: the face is cut from the picture just read.
    let face = face_from_picture(&photo.picture)
        .map_err(|message| DeepfakeError::face(&args.input, message))?;
    let x = batch_tensor(&[face.as_slice()])?;
    let swapped = loaded.model.transfer(&x, args.to.side())?.to_vec_f32();
    let to_name = match args.to {
        SideArg::A => &loaded.config.a,
        SideArg::B => &loaded.config.b,
    };
    save_face_strip(
        &args.out,
        &[face.as_slice(), swapped.as_slice()],
        &["input".to_string(), format!("as {to_name}")],
        2,
    )?;
    println!(
        "wrote {}: the input's {FACE_SIZE}x{FACE_SIZE} crop and D_{}(E(x))",
        args.out.display(),
        args.to.side().name()
    );
    Ok(ExitCode::SUCCESS)
}

/// Photos shown in the before/after strip, at most.
const STRIP_PHOTOS: usize = 4;

fn run_convert(args: &ConvertArgs) -> Result<ExitCode, Error> {
    let photos = convert::list_photos(&args.input)?;
    let device = pick_device(&args.device)?;
    let loaded = eval::load(&args.checkpoint)?;
    loaded.model.move_to(device)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| DeepfakeError::file(&args.out, format!("cannot create: {e}")))?;
    let outputs = convert::output_paths(&photos, &args.out)?;
    let to_name = match args.to {
        SideArg::A => &loaded.config.a,
        SideArg::B => &loaded.config.b,
    };
    let progress = bar(photos.len(), "convert");
    if photos.len() == 1 {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut strip: Vec<(convert::RgbImage, convert::RgbImage)> = Vec::new();
    let mut grayscale = Vec::new();
    for (photo_path, output) in photos.iter().zip(&outputs) {
        let photo = convert::load_photo(photo_path)?;
        if photo.grayscale {
            grayscale.push(photo_path.clone());
        }
        let face_box = convert::face_box(photo_path, photo.picture.dimensions(), args.face_box)?;
        let converted = convert::convert_photo(
            &loaded.model,
            &photo.picture,
            face_box,
            args.to.side(),
            !args.no_colour_match,
        )?;
        ferrograd_plot::save_png(output, &converted.result)?;
        if strip.len() < STRIP_PHOTOS {
            strip.push((photo.picture, converted.result));
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    for path in &grayscale {
        eprintln!(
            "note: {} is grayscale; it was converted to RGB and the swapped face is in colour",
            path.display()
        );
    }
    let strip_path = args.out.join("strip.png");
    let pairs: Vec<(&convert::RgbImage, &convert::RgbImage)> =
        strip.iter().map(|(b, a)| (b, a)).collect();
    save_before_after(&strip_path, &pairs, ["photo", &format!("as {to_name}")])?;
    println!(
        "converted {} photo{} to {to_name} into {} (and {}: the first {} before and after)",
        photos.len(),
        if photos.len() == 1 { "" } else { "s" },
        args.out.display(),
        strip_path.display(),
        pairs.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_mix(args: &MixArgs) -> Result<ExitCode, Error> {
    ranges::MIX_STEPS.check(args.steps)?;
    let device = pick_device(&args.device)?;
    let loaded = eval::load(&args.checkpoint)?;
    loaded.model.move_to(device)?;
    let (a, face_a) = face_batch(&args.a)?;
    let (b, face_b) = face_batch(&args.b)?;
    let sides = match args.decoder {
        Some(d) => vec![d.side()],
        None => vec![Side::A, Side::B],
    };
    // One row per decoder: a, the mixtures for t = 0 … 1, b.
    let mut rows: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut row_titles = Vec::new();
    for side in sides {
        let mixed = loaded.model.mix(&a, &b, args.steps, side)?.to_vec_f32();
        let size = mixed.len() / args.steps;
        let mut row = vec![face_a.clone()];
        row.extend(mixed.chunks_exact(size).map(<[f32]>::to_vec));
        row.push(face_b.clone());
        rows.push(row);
        row_titles.push(format!("D_{}", side.name()));
        if args.splice {
            // Concatenation: the first round((1 − t)·d) code dimensions from a, the rest from b.
            let d = loaded.config.model.latent;
            let mut row = vec![face_a.clone()];
            for i in 0..args.steps {
                let t = i as f64 / (args.steps - 1) as f64;
                let split = ((1.0 - t) * d as f64).round() as usize;
                row.push(loaded.model.splice(&a, &b, split, side)?.to_vec_f32());
            }
            row.push(face_b.clone());
            rows.push(row);
            row_titles.push(format!("cat {}", side.name()));
        }
    }
    let mut titles = vec!["a".to_string()];
    titles.extend((0..args.steps).map(|i| format!("t={:.2}", i as f64 / (args.steps - 1) as f64)));
    titles.push("b".to_string());
    let row_refs: Vec<Vec<&[f32]>> = rows
        .iter()
        .map(|r| r.iter().map(Vec::as_slice).collect())
        .collect();
    let title_refs: Vec<&str> = titles.iter().map(String::as_str).collect();
    let row_title_refs: Vec<&str> = row_titles.iter().map(String::as_str).collect();
    save_face_grid(&args.out, &row_refs, &title_refs, &row_title_refs, 1)?;
    println!("wrote {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}

fn run_eval(args: &EvalArgs) -> Result<ExitCode, Error> {
    let settings = IdentitySettings {
        steps: args.classifier_steps,
        ..IdentitySettings::default()
    };
    settings.validate()?;
    let device = pick_device(&args.device)?;
    let loaded = eval::load(&args.checkpoint)?;
    loaded.model.move_to(device)?;
    let mut cfg = loaded.config.clone();
    if let Some(faces) = &args.faces {
        cfg.faces = faces.clone();
    }
    // The evaluation is on the pair alone: the pretraining identities need not load.
    cfg.pretrain_steps = 0;
    let pair = Pair::load(&cfg)?;
    for warning in pair.small_evaluation_warnings() {
        eprintln!("{warning}");
    }
    let progress = bar(settings.steps, "identity classifier");
    let report = eval::evaluate(&loaded.model, &pair, &settings, |step, loss| {
        progress.set_position(step as u64 + 1);
        progress.set_message(format!("cross-entropy {loss:.3}"));
    });
    progress.finish_and_clear();
    let report = report?;
    print_report(&report, &cfg, loaded.steps);
    let path = args
        .checkpoint
        .parent()
        .unwrap_or(Path::new("."))
        .join("eval.json");
    report.save(&path, &cfg, loaded.steps)?;
    println!("wrote {}", path.display());
    if let Some(dir) = &args.write_images {
        let files = eval::write_judge_images(&loaded.model, &pair, dir)?;
        println!("wrote {files} files into {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &EvalReport, cfg: &DeepfakeConfig, steps: u64) {
    let (head_a, head_b) = (format!("A {}", cfg.a), format!("B {}", cfg.b));
    let width = head_a.len().max(head_b.len()).max(14);
    println!("face swap after {steps} steps, on the held-out faces:");
    let row = |label: &str, a: String, b: String| println!("{label:<28} {a:>width$} {b:>width$}");
    row("", head_a, head_b);
    row(
        "held-out faces",
        r.a.faces.to_string(),
        r.b.faces.to_string(),
    );
    row(
        "reconstruction MAE",
        format!("{:.4}", r.a.mae),
        format!("{:.4}", r.b.mae),
    );
    row(
        "reconstruction PSNR (dB)",
        format!("{:.2}", r.a.psnr_db),
        format!("{:.2}", r.b.psnr_db),
    );
    row(
        "  on training faces (dB)",
        format!("{:.2}", r.a.training_psnr_db),
        format!("{:.2}", r.b.training_psnr_db),
    );
    row(
        "reconstruction SSIM",
        format!("{:.4}", r.a.ssim),
        format!("{:.4}", r.b.ssim),
    );
    row(
        "cycle MAE (swap, swap back)",
        format!("{:.4}", r.a.cycle_mae),
        format!("{:.4}", r.b.cycle_mae),
    );
    row(
        "swapped, labelled as target",
        format!("{:.1}% as B", 100.0 * r.a.identity_score),
        format!("{:.1}% as A", 100.0 * r.b.identity_score),
    );
    println!(
        "identity classifier: {:.1}% accuracy on the real held-out faces ({} training steps)",
        100.0 * r.classifier_accuracy,
        r.classifier_steps
    );
}

//! `ferrograd course`: every part of the project, end to end, on the best device, then a
//! report.
//!
//! Each step of the course is an ordinary command line (`train vae --epochs 2 …`) run through
//! the same dispatch as the program's own commands, so the report can show the command that
//! reproduces each figure, and a reader who runs it gets the same numbers. The figures are read
//! back from the files those commands write (`metrics.json`, `eval.json`, the PNGs).
//!
//! The default settings are scaled to finish in about a quarter of an hour on a 2-core CPU;
//! `--full` uses the settings that reach the quality targets (hours on such a CPU).

use super::gradcheck;
use super::report::{self, CourseRun, Figure, PartRun, Status, StepRun};
use super::Error;
use super::{Cli, Command};
use clap::Parser;
use ferrograd_engine::Device;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct CourseArgs {
    /// The settings that reach each part's quality targets (5–12 epochs on all of
    /// Fashion-MNIST, 16,000 face-swap steps: hours on a 2-core CPU) instead of the short tour.
    #[arg(long)]
    pub full: bool,
    /// Where the report goes (index.html, summary.json and the pictures).
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// Where the runs' checkpoints and files go.
    #[arg(long, default_value = "runs/course")]
    pub runs: PathBuf,
    /// Fashion-MNIST folder (default: $FASHION_MNIST_DIR, then Debian's
    /// /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// LFW folder (default: $FERROGRAD_FACES, then ../shared/data/lfw).
    #[arg(long)]
    pub faces: Option<PathBuf>,
    /// Only these parts (1 gradient checks, 2 generative models, 3 classifier and maps, 4 face
    /// swap, 5 the generative models judged in the classifier's features, which needs parts 2
    /// and 3's runs); all by default.
    #[arg(long, value_delimiter = ',')]
    pub parts: Vec<usize>,
    /// Where to compute: `cpu`, `gpu` or `best` (a hardware GPU when there is one).
    #[arg(long, env = "FERROGRAD_DEVICE", default_value = "best")]
    pub device: String,
}

/// What a part needs besides the code.
#[derive(Clone, Copy, PartialEq)]
enum Needs {
    Nothing,
    FashionMnist,
    Faces,
}

/// One command line of the course, with a guess of its duration (seconds on 2 cores) for the
/// time-left estimate.
struct Step {
    label: String,
    argv: Vec<String>,
    estimate_s: f64,
}

struct Part {
    number: usize,
    title: &'static str,
    needs: Needs,
    steps: Vec<Step>,
}

fn step(label: &str, estimate_s: f64, argv: &[&str]) -> Step {
    Step {
        label: label.to_string(),
        argv: argv.iter().map(|s| s.to_string()).collect(),
        estimate_s,
    }
}

/// The course's command lines. Sizes come from measured times on 2 cores: an epoch of the
/// generative models on 60,000 images takes 13–40 s, a classifier epoch 130–140 s, a face-swap
/// step 0.18 s, the faithfulness metrics 0.25 s per test image, an exact Grad-CAM++ map
/// milliseconds (ReLU) to seconds (smooth activations).
fn plan(args: &CourseArgs, device: Device) -> Vec<Part> {
    let runs = args.runs.display().to_string();
    let dev = device.to_string();
    let data: Vec<String> = args
        .data
        .iter()
        .flat_map(|d| ["--data".to_string(), d.display().to_string()])
        .collect();
    let faces: Vec<String> = args
        .faces
        .iter()
        .flat_map(|d| ["--faces".to_string(), d.display().to_string()])
        .collect();
    let with = |mut s: Step, extra: &[String]| {
        s.argv.extend(extra.iter().cloned());
        s
    };
    let full = args.full;

    let mut gradchecks = vec![step(
        "every op, orders 1-3, f64 against finite differences",
        2.0,
        &["gradcheck", "--cases", if full { "4" } else { "2" }],
    )];
    if device == Device::Gpu {
        gradchecks.push(step(
            "every op, orders 1-3, on the GPU in f32 against the CPU's f64",
            5.0,
            &[
                "gradcheck",
                "--cases",
                if full { "4" } else { "2" },
                "--device",
                "gpu",
            ],
        ));
    }

    let (epochs, limits): (&str, Vec<&str>) = if full {
        ("5", vec![])
    } else {
        ("2", vec!["--train-limit", "15000", "--test-limit", "2000"])
    };
    let generative = ["ae", "vae", "gan", "aae"]
        .iter()
        .map(|m| {
            let out = format!("{runs}/{m}");
            let mut argv = vec![
                "train", m, "--epochs", epochs, "--out", &out, "--device", &dev,
            ];
            argv.extend(limits.iter().copied());
            // Measured on 2 cores: 4.5 s (ae, vae, aae) and 14 s (gan) per 20,000 images.
            let per_epoch = if *m == "gan" { 21.0 } else { 7.0 };
            let estimate = if full {
                5.0 * 3.0 * per_epoch
            } else {
                2.0 * 0.75 * per_epoch + 3.0
            };
            with(step(&format!("train {m}"), estimate, &argv), &data)
        })
        .collect();

    let classifier_out = format!("{runs}/classifier");
    let checkpoint = format!("{classifier_out}/checkpoint.safetensors");
    let cam_out = format!("{runs}/cam");
    let mut classifier_argv = vec![
        "train",
        "classifier",
        "--out",
        &classifier_out,
        "--device",
        &dev,
    ];
    if !full {
        // Two epochs on all 60,000 images, the cosine schedule from twice the default rate:
        // 91.4% on the 10,000 test images (one epoch is 87.6–88.2%, and two at the default
        // 1e-3 stop at 90.5%, with train accuracy as low: too few steps, not too little data).
        classifier_argv.extend(["--epochs", "2", "--lr", "0.002"]);
    }
    let mut cam_argv = vec![
        "cam",
        "--checkpoint",
        &checkpoint,
        "--metrics",
        "--sanity",
        "--sanity-images",
        "8",
        "--out",
        &cam_out,
        "--device",
        &dev,
    ];
    cam_argv.extend(if full {
        // The whole test set, every method, with ROAD: about 2.6 hours on 2 cores.
        [
            "--images",
            "8",
            "--metrics-images",
            "10000",
            "--exact-images",
            "10000",
            "--road",
            "--method",
            "saliency,smoothgrad,cam,gradcam,gradcam++,gradcam++exact,scorecam,layercam",
        ]
        .as_slice()
    } else {
        [
            "--images",
            "2",
            "--metrics-images",
            "100",
            "--exact-images",
            "20",
        ]
        .as_slice()
    });
    // With the softmax score the closed form is not the exact answer, even for a ReLU network.
    let softmax_out = format!("{runs}/cam_softmax");
    let comparison_images = if full { "2000" } else { "64" };
    let softmax_argv = vec![
        "cam",
        "--checkpoint",
        &checkpoint,
        "--score",
        "softmax",
        "--method",
        "gradcam++,gradcam++exact",
        "--images",
        "1",
        "--metrics",
        "--metrics-images",
        comparison_images,
        "--exact-images",
        comparison_images,
        "--out",
        &softmax_out,
        "--device",
        &dev,
    ];
    let classifier = vec![
        with(
            step(
                "train the autoencoder-regularised classifier",
                if full { 12.0 * 140.0 } else { 2.0 * 140.0 },
                &classifier_argv,
            ),
            &data,
        ),
        with(
            step(
                "CAM, Grad-CAM, Grad-CAM++ (closed form and exact) on conv1-conv3, and their metrics",
                if full { 10000.0 * 0.9 + 60.0 } else { 100.0 * 0.25 + 10.0 },
                &cam_argv,
            ),
            &data,
        ),
        with(
            step(
                "Grad-CAM++ in closed form against the exact one, with the softmax score",
                if full { 2000.0 * 0.1 } else { 64.0 * 0.1 + 5.0 },
                &softmax_argv,
            ),
            &data,
        ),
    ];

    let swap_out = format!("{runs}/deepfake");
    let swap_ckpt = format!("{swap_out}/checkpoint.safetensors");
    // The tour's face swap gets what the classifier's 91% leaves of ten minutes: 600 steps at
    // about 0.21 s (800 L1-only steps at 0.15 s brought the tour to 10 min including the build).
    let steps = if full { "16000" } else { "600" };
    let identity_steps = if full { "1500" } else { "800" };
    let faces_dir = args
        .faces
        .clone()
        .unwrap_or_else(ferrograd_deepfake::faces::default_faces_dir);
    let first_picture = |who: &str| first_picture(&faces_dir.join(who));
    let (a_face, b_face) = (
        first_picture("George_W_Bush"),
        first_picture("Colin_Powell"),
    );
    let mix_out = format!("{swap_out}/mix.png");
    let swap_png = format!("{swap_out}/swap.png");
    let convert_out = format!("{swap_out}/convert");
    let mut deepfake = vec![
        with(
            step(
                "train the face swap (shared encoder, two decoders, adversarial prior)",
                if full { 16000.0 * 0.22 } else { 600.0 * 0.21 },
                &[
                    "deepfake",
                    "train",
                    "--steps",
                    steps,
                    "--preview-every",
                    steps,
                    "--out",
                    &swap_out,
                    "--device",
                    &dev,
                ],
            ),
            &faces,
        ),
        with(
            step(
                "evaluate on the held-out faces",
                if full { 150.0 } else { 80.0 },
                &[
                    "deepfake",
                    "eval",
                    "--checkpoint",
                    &swap_ckpt,
                    "--classifier-steps",
                    identity_steps,
                    "--device",
                    &dev,
                ],
            ),
            &faces,
        ),
    ];
    if let (Some(a), Some(b)) = (&a_face, &b_face) {
        let (a, b) = (a.display().to_string(), b.display().to_string());
        deepfake.push(step(
            "mix two faces' codes (interpolation and concatenation)",
            5.0,
            &[
                "deepfake",
                "mix",
                "--checkpoint",
                &swap_ckpt,
                "--a",
                &a,
                "--b",
                &b,
                "--splice",
                "--out",
                &mix_out,
                "--device",
                &dev,
            ],
        ));
        deepfake.push(step(
            "swap one face",
            2.0,
            &[
                "deepfake",
                "swap",
                "--checkpoint",
                &swap_ckpt,
                "--input",
                &a,
                "--to",
                "b",
                "--out",
                &swap_png,
                "--device",
                &dev,
            ],
        ));
        deepfake.push(step(
            "convert a photograph: swap, colour-match, blend back",
            2.0,
            &[
                "deepfake",
                "convert",
                "--checkpoint",
                &swap_ckpt,
                "--input",
                &a,
                "--to",
                "b",
                "--out",
                &convert_out,
                "--device",
                &dev,
            ],
        ));
    }

    // Part 5 judges part 2's samplers in the features of part 3's classifier, and answers two
    // of the course's questions by experiment.
    let features = checkpoint.clone();
    let (iwae, iwae_images, samples, kid_subsets, kid_size): (&str, &str, &str, &str, &str) =
        if full {
            ("1,64,5000", "1000", "10000", "100", "1000")
        } else {
            ("1,64,1000", "100", "2000", "50", "500")
        };
    let mut judged: Vec<Step> = ["vae", "gan", "aae"]
        .iter()
        .map(|m| {
            let ckpt = format!("{runs}/{m}/checkpoint.safetensors");
            let mut argv = vec![
                "eval",
                &ckpt,
                "--features",
                &features,
                "--samples",
                samples,
                "--kid-subsets",
                kid_subsets,
                "--kid-subset-size",
                kid_size,
                "--device",
                &dev,
            ];
            if *m == "vae" {
                argv.extend(["--iwae", iwae, "--iwae-images", iwae_images]);
            }
            let estimate = if full { 60.0 } else { 12.0 }
                + if *m == "vae" {
                    if full {
                        240.0
                    } else {
                        6.0
                    }
                } else {
                    0.0
                };
            let label = if *m == "vae" {
                format!("{m}: likelihood bounds, FID, KID, precision and recall")
            } else {
                format!("{m}: FID, KID, precision and recall")
            };
            with(step(&label, estimate, &argv), &data)
        })
        .collect();
    let sweep_out = format!("{runs}/lambda_sweep");
    let mut sweep_argv = vec![
        "experiment",
        "lambda-sweep",
        "--out",
        &sweep_out,
        "--device",
        &dev,
    ];
    if !full {
        sweep_argv.extend([
            "--epochs",
            "1",
            "--train-limit",
            "10000",
            "--lambdas",
            "0,1e-4,1e-3,1e-2,1e-1",
        ]);
    }
    judged.push(with(
        step(
            "what λ does: the autoencoder's reconstruction error and ‖W‖² across λ",
            if full { 6.0 * 2.0 * 12.0 } else { 5.0 * 4.0 },
            &sweep_argv,
        ),
        &data,
    ));
    let gan_losses_out = format!("{runs}/gan_losses");
    let mut gan_losses_argv = vec![
        "experiment",
        "gan-losses",
        "--features",
        &features,
        "--out",
        &gan_losses_out,
        "--device",
        &dev,
    ];
    if !full {
        gan_losses_argv.extend([
            "--epochs",
            "2",
            "--train-limit",
            "15000",
            "--fid-samples",
            "2000",
        ]);
    }
    judged.push(with(
        step(
            "the GAN's minimax loss against the non-saturating one",
            if full {
                2.0 * 5.0 * 30.0
            } else {
                2.0 * 2.0 * 8.0 + 6.0
            },
            &gan_losses_argv,
        ),
        &data,
    ));

    vec![
        Part {
            number: 1,
            title: "Gradient checks",
            needs: Needs::Nothing,
            steps: gradchecks,
        },
        Part {
            number: 2,
            title: "Generative models on Fashion-MNIST",
            needs: Needs::FashionMnist,
            steps: generative,
        },
        Part {
            number: 3,
            title: "The classifier and its class activation maps",
            needs: Needs::FashionMnist,
            steps: classifier,
        },
        Part {
            number: 4,
            title: "Face swap",
            needs: Needs::Faces,
            steps: deepfake,
        },
        Part {
            number: 5,
            title: "The generative models judged by numbers",
            needs: Needs::FashionMnist,
            steps: judged,
        },
    ]
}

/// The alphabetically first picture of an identity's folder, if it has one.
fn first_picture(dir: &Path) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    files.sort();
    files.into_iter().next()
}

/// Why a part's data is missing, and how to get it; `None` when it is there.
fn missing_data(needs: Needs, args: &CourseArgs) -> Option<String> {
    match needs {
        Needs::Nothing => None,
        Needs::FashionMnist => ferrograd_models::data::FashionMnist::load(args.data.as_deref())
            .err()
            .map(|e| {
                format!(
                    "Fashion-MNIST is not there ({e}). Install it with `sudo apt-get install dataset-fashion-mnist` (Debian, Ubuntu), or pass --data DIR with the four idx files"
                )
            }),
        Needs::Faces => {
            let dir = args
                .faces
                .clone()
                .unwrap_or_else(ferrograd_deepfake::faces::default_faces_dir);
            let missing: Vec<&str> = ["George_W_Bush", "Colin_Powell"]
                .into_iter()
                .filter(|who| first_picture(&dir.join(who)).is_none())
                .collect();
            (!missing.is_empty()).then(|| {
                format!(
                    "the LFW faces of {} are not in {}. Get LFW (lfw-deepfunneled or lfw, one folder per person) and pass --faces DIR or set FERROGRAD_FACES; the project's copy is ../shared/data/lfw",
                    missing.join(" and "),
                    dir.display()
                )
            })
        }
    }
}

fn minutes(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

pub fn run(args: &CourseArgs) -> Result<ExitCode, Error> {
    let device = super::train::pick_device(&args.device)?;
    ferrograd_kernels::flush_subnormals();
    let started = Instant::now();
    let started_at = report::utc_now();
    let mut parts = plan(args, device);
    if !args.parts.is_empty() {
        if let Some(bad) = args.parts.iter().find(|p| !(1..=5).contains(*p)) {
            return Err(Error::usage(format!(
                "--parts: no part {bad}; the parts are 1, 2, 3, 4 and 5"
            )));
        }
        parts.retain(|p| args.parts.contains(&p.number));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| Error::CreateFolder {
        path: args.out.clone(),
        message: e.to_string(),
    })?;

    // Parts whose data is missing are skipped up front, so the estimate counts only what runs.
    let skips: Vec<Option<String>> = parts.iter().map(|p| missing_data(p.needs, args)).collect();
    let mut planned: f64 = parts
        .iter()
        .zip(&skips)
        .filter(|(_, s)| s.is_none())
        .flat_map(|(p, _)| p.steps.iter().map(|s| s.estimate_s))
        .sum();
    let (mut estimated_done, mut actual_done) = (0.0f64, 0.0f64);
    let total_parts = parts.len();
    let mut runs = Vec::new();
    for (index, (part, skip)) in parts.iter().zip(skips).enumerate() {
        let header = format!("part {}/{total_parts}: {}", index + 1, part.title);
        if let Some(reason) = skip {
            eprintln!("\n━━ {header}: skipped: {reason}");
            runs.push(PartRun {
                number: part.number,
                title: part.title.to_string(),
                status: Status::Skipped(reason),
                steps: Vec::new(),
                figures: Vec::new(),
                summary: Value::Null,
            });
            continue;
        }
        let mut steps = Vec::new();
        let mut failure = None;
        for (k, s) in part.steps.iter().enumerate() {
            // Time left: the remaining estimates, scaled by how the estimates have fared so far.
            let pace = if estimated_done > 0.0 {
                actual_done / estimated_done
            } else {
                1.0
            };
            eprintln!(
                "\n━━ {header} · step {}/{}: {} · {} elapsed · about {} left\n   $ ferrograd {}",
                k + 1,
                part.steps.len(),
                s.label,
                minutes(started.elapsed().as_secs_f64()),
                minutes((planned - estimated_done) * pace),
                s.argv.join(" ")
            );
            let t0 = Instant::now();
            let outcome = run_step(&s.argv);
            let seconds = t0.elapsed().as_secs_f64();
            estimated_done += s.estimate_s;
            actual_done += seconds;
            steps.push(StepRun {
                label: s.label.clone(),
                command: format!("ferrograd {}", s.argv.join(" ")),
                seconds,
                output: outcome.as_ref().ok().cloned().unwrap_or_default(),
            });
            if let Err(why) = outcome {
                eprintln!("   step failed: {why}");
                failure = Some(format!("{}: {why}", s.label));
                // The part's later steps need this one's files: count them as done.
                let rest: f64 = part.steps[k + 1..].iter().map(|s| s.estimate_s).sum();
                planned -= rest;
                break;
            }
        }
        let (figures, summary) = collect(part.number, &steps, args);
        runs.push(PartRun {
            number: part.number,
            title: part.title.to_string(),
            status: match failure {
                None => Status::Ran,
                Some(why) => Status::Failed(why),
            },
            steps,
            figures,
            summary,
        });
    }
    let course = CourseRun {
        version: env!("CARGO_PKG_VERSION").to_string(),
        device: device.describe(),
        full: args.full,
        started_at,
        seconds: started.elapsed().as_secs_f64(),
        parts: runs,
    };
    report::write(&args.out, &course)?;
    let all_ran = course.parts.iter().all(|p| matches!(p.status, Status::Ran));
    eprintln!(
        "\n{} in {}: {}",
        if all_ran {
            "every part ran"
        } else {
            "not every part ran"
        },
        minutes(course.seconds),
        course
            .parts
            .iter()
            .map(|p| format!("{} {}", p.number, p.status.word()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "wrote {} and {}",
        args.out.join("index.html").display(),
        args.out.join("summary.json").display()
    );
    Ok(if all_ran {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one command line in this process. The gradient check returns its table (the report
/// shows it); the others write files that [`collect`] reads.
fn run_step(argv: &[String]) -> Result<String, Error> {
    let cli =
        Cli::try_parse_from(std::iter::once("ferrograd".to_string()).chain(argv.iter().cloned()))
            .map_err(|e| Error::usage(e.to_string()))?;
    if let Command::Gradcheck(args) = &cli.command {
        let start = Instant::now();
        let rows = gradcheck::check_all(args)?;
        let device = Device::parse(&args.device)?;
        let table = gradcheck::table(&rows, device, start.elapsed().as_secs_f64());
        print!("{table}");
        return if rows.iter().all(|r| r.failure.is_none()) {
            Ok(table)
        } else {
            Err(Error::StepFailed {
                message: "some derivatives failed their check (see the table)".into(),
            })
        };
    }
    match super::run(&cli.command) {
        Ok(code) if code == ExitCode::SUCCESS => Ok(String::new()),
        Ok(_) => Err(Error::StepFailed {
            message: "the command reported failure".into(),
        }),
        Err(e) => Err(e),
    }
}

fn read_json(path: &Path) -> Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

/// The pictures and numbers of a part, from the files its commands wrote.
fn collect(part: usize, steps: &[StepRun], args: &CourseArgs) -> (Vec<Figure>, Value) {
    let runs = &args.runs;
    let picture = |path: PathBuf, caption: &str| Figure {
        path,
        caption: caption.to_string(),
    };
    let keep = |figures: Vec<Figure>| -> Vec<Figure> {
        figures.into_iter().filter(|f| f.path.exists()).collect()
    };
    match part {
        1 => {
            let tables: Vec<&str> = steps.iter().map(|s| s.output.as_str()).collect();
            let summaries: Vec<Value> = tables.iter().map(|t| gradcheck_summary(t)).collect();
            (Vec::new(), json!({ "checks": summaries }))
        }
        2 => {
            let mut figures = Vec::new();
            let mut models = serde_json::Map::new();
            for m in ["ae", "vae", "gan", "aae"] {
                let dir = runs.join(m);
                let metrics = read_json(&dir.join("metrics.json"));
                let last = metrics["epochs"]
                    .as_array()
                    .and_then(|e| e.last())
                    .cloned()
                    .unwrap_or(Value::Null);
                models.insert(m.to_string(), last);
                figures.extend(keep(vec![
                    picture(
                        dir.join("reconstructions.png"),
                        &format!(
                            "{m}: test images (rows 1, 3) above their reconstructions (rows 2, 4)"
                        ),
                    ),
                    picture(
                        dir.join("samples.png"),
                        &format!("{m}: decoded samples of the prior"),
                    ),
                    picture(
                        dir.join("interpolation.png"),
                        &format!("{m}: decoding (1 − t)·E(a) + t·E(b)"),
                    ),
                    picture(
                        dir.join("loss_curves.png"),
                        &format!("{m}: losses by epoch"),
                    ),
                ]));
            }
            (figures, Value::Object(models))
        }
        3 => {
            let metrics = read_json(&runs.join("classifier/metrics.json"));
            let last = metrics["epochs"]
                .as_array()
                .and_then(|e| e.last())
                .cloned()
                .unwrap_or(Value::Null);
            let cam = read_json(&runs.join("cam/metrics.json"));
            let sanity = read_json(&runs.join("cam/sanity.json"));
            let closed_vs_exact = read_json(&runs.join("cam_softmax/metrics.json"));
            let figures = keep(vec![
                picture(runs.join("cam/grid.png"), "Maps of three layers by four methods, for two classes (columns: the image, then method × layer)"),
                picture(runs.join("cam/grid_sneaker_conv3.png"), "Sneakers at conv3, larger: each row an image with the predicted class and its probability, each column a method"),
                picture(runs.join("cam/grid_sneaker_conv1.png"), "The same at conv1, where the methods disagree most"),
                picture(runs.join("classifier/confusion_matrix.png"), "Test confusion matrix"),
                picture(runs.join("classifier/loss_curves.png"), "Classifier losses by epoch"),
                picture(runs.join("classifier/reconstructions.png"), "The regularising autoencoder's reconstructions"),
            ]);
            (
                figures,
                json!({
                    "classifier": last,
                    "cam_metrics": cam["rows"],
                    "cam_sanity": sanity,
                    "cam_closed_vs_exact": closed_vs_exact,
                    "cam_full_test_set": full_test_set_reference(),
                }),
            )
        }
        4 => {
            let dir = runs.join("deepfake");
            let eval = read_json(&dir.join("eval.json"));
            let figures = keep(vec![
                picture(dir.join("preview.png"), "Held-out faces (rows): the face, its own decoder, the other decoder (the swap)"),
                picture(dir.join("mix.png"), "Mixing two faces' codes: interpolation (D_A, D_B) and concatenation (cat) rows"),
                picture(dir.join("swap.png"), "One face swapped"),
                picture(dir.join("convert/strip.png"), "A photograph converted: the face swapped, colour-matched to the original skin and blended back with a feathered mask"),
                picture(dir.join("loss_curves.png"), "Face-swap losses by step"),
            ]);
            (figures, json!({ "evaluation": eval }))
        }
        5 => {
            let figures = keep(vec![
                picture(
                    runs.join("lambda_sweep/lambda_mse.png"),
                    "The autoencoder's test reconstruction MSE across λ",
                ),
                picture(
                    runs.join("lambda_sweep/lambda_weights.png"),
                    "log10 Σ‖W‖²_F across λ",
                ),
                picture(
                    runs.join("gan_losses/gan_fid.png"),
                    "FID by epoch: the minimax generator loss against the non-saturating one",
                ),
            ]);
            let evals: serde_json::Map<String, Value> = ["vae", "gan", "aae"]
                .iter()
                .map(|m| (m.to_string(), read_json(&runs.join(m).join("eval.json"))))
                .collect();
            (
                figures,
                json!({
                    "evaluations": evals,
                    "lambda_sweep": read_json(&runs.join("lambda_sweep/lambda_sweep.json")),
                    "gan_losses": read_json(&runs.join("gan_losses/gan_losses.json")),
                }),
            )
        }
        _ => (Vec::new(), Value::Null),
    }
}

/// The numbers of a printed gradient-check table: checks, ops, failures, the worst ratio.
fn gradcheck_summary(table: &str) -> Value {
    let device = table
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("device: "))
        .unwrap_or("");
    let rows: Vec<Value> = table
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 7 && (f[6] == "pass" || f[6] == "FAIL")).then(|| {
                json!({
                    "op": f[0],
                    "order": f[1].parse::<u64>().unwrap_or(0),
                    "worst_ratio": f[5].parse::<f64>().unwrap_or(f64::NAN),
                    "passed": f[6] == "pass",
                })
            })
        })
        .collect();
    let worst = rows
        .iter()
        .filter_map(|r| r["worst_ratio"].as_f64())
        .fold(0.0f64, f64::max);
    let failed = rows.iter().filter(|r| r["passed"] == false).count();
    let ops: std::collections::BTreeSet<&str> =
        rows.iter().filter_map(|r| r["op"].as_str()).collect();
    json!({
        "device": device,
        "checks": rows.len(),
        "ops": ops.len(),
        "failed": failed,
        "worst_err_over_tol": worst,
        "rows": rows,
    })
}

/// The faithfulness table over all 10,000 test images as measured once on the default
/// classifier (`docs/results/cam_full_test_set.json`, built into the program so that every
/// report can show it), for the reports of runs that measure fewer images themselves.
fn full_test_set_reference() -> Value {
    serde_json::from_str(include_str!("../../docs/results/cam_full_test_set.json"))
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The built-in reference table parses, covers the whole test set for every method and
    /// layer, and pairs each exact layer with the closed form.
    #[test]
    fn the_full_test_set_reference_is_whole() {
        let reference = full_test_set_reference();
        let rows = reference["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 18);
        for r in rows {
            assert_eq!(r["images"], 10_000, "{r}");
            assert!(r["road_morf_standard_error"].as_f64().unwrap() > 0.0, "{r}");
        }
        assert_eq!(
            reference["closed_form_vs_exact"].as_array().unwrap().len(),
            3
        );
        let mut h = String::new();
        super::super::report::cam_tables(&json!({ "cam_full_test_set": reference }), &mut h);
        assert!(
            h.contains("all 10,000 test images") && h.contains("scorecam"),
            "{h}"
        );
    }
}

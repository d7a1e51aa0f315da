//! The command line against inputs a careless or hostile user gives it: numbers out of range
//! (memory bombs among them), empty work, checkpoints whose metadata lies, outputs that are not
//! regular files, damaged pictures. Each must end with exit code 2 and a sentence on stderr
//! that names the flag or the file, never with a signal, and never touch what it must not.
#![cfg(unix)] // FIFOs, device nodes, sockets and symbolic links

use std::fs;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ferrograd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrograd"))
        .args(args)
        .env("FERROGRAD_DEVICE", "cpu")
        .output()
        .expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that `args` is refused: exit code 2 (a signal has no code), and stderr names every
/// one of `needles`.
fn refused(args: &[&str], needles: &[&str]) -> String {
    let out = ferrograd(args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: {:?}\n{err}",
        out.status
    );
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: no '{needle}' in\n{err}");
    }
    err
}

fn fashion_mnist() -> Option<&'static str> {
    let dir = "/usr/share/datasets/fashion-mnist";
    if Path::new(dir).is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: no Fashion-MNIST at {dir}");
        None
    }
}

fn lfw() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/lfw");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: no faces at {}", dir.display());
        None
    }
}

#[test]
fn memory_bombs_are_refused_before_any_work_naming_the_flag() {
    for (args, flag) in [
        (
            &["train", "vae", "--latent", "1000000000"][..],
            "--latent 1000000000",
        ),
        (
            &["deepfake", "train", "--batch", "1000000000"][..],
            "--batch 1000000000",
        ),
        (
            &["cam", "--checkpoint", "none", "--curve-steps", "1000000000"][..],
            "--curve-steps 1000000000",
        ),
        (
            &[
                "deepfake",
                "mix",
                "--checkpoint",
                "none",
                "--a",
                "x",
                "--b",
                "y",
                "--out",
                "o",
                "--steps",
                "1000000000",
            ][..],
            "--steps 1000000000",
        ),
    ] {
        let err = refused(args, &[flag, "must be from"]);
        // Refused before the data, the device or the checkpoint were even looked at.
        assert!(!err.contains("device:") && !err.contains("none:"), "{err}");
    }
}

#[test]
fn every_numeric_flag_is_held_to_its_range() {
    let cases: &[(&[&str], &str)] = &[
        (&["train", "ae", "--epochs", "100000"], "--epochs 100000"),
        (&["train", "ae", "--batch", "0"], "--batch 0"),
        (&["train", "gan", "--lr", "0"], "--lr 0"),
        (&["train", "gan", "--lr", "NaN"], "--lr NaN"),
        (&["train", "vae", "--lambda=-1"], "--lambda -1"),
        (
            &["train", "classifier", "--beta", "1e9"],
            "--beta 1000000000",
        ),
        (&["train", "aae", "--latent", "0"], "--latent 0"),
        (&["deepfake", "train", "--steps", "0"], "--steps 0"),
        (
            &["deepfake", "train", "--latent", "1000000"],
            "--latent 1000000",
        ),
        (&["deepfake", "train", "--lr", "inf"], "--lr inf"),
        (
            &["deepfake", "train", "--prior-weight=-0.5"],
            "--prior-weight -0.5",
        ),
        (&["deepfake", "train", "--held-out", "1"], "--held-out 1"),
        (&["deepfake", "train", "--limit", "1"], "--limit 1"),
        (
            &["deepfake", "train", "--preview-every", "9999999"],
            "--preview-every 9999999",
        ),
        (
            &[
                "deepfake",
                "train",
                "--a",
                "Tony_Blair",
                "--b",
                "Tony_Blair",
            ],
            "two identities",
        ),
        (
            &["cam", "--checkpoint", "x", "--images", "1000"],
            "--images 1000",
        ),
        (
            &[
                "cam",
                "--checkpoint",
                "x",
                "--metrics",
                "--metrics-images",
                "100000000",
            ],
            "--metrics-images 100000000",
        ),
        (&["gradcheck", "--cases", "1000000"], "--cases 1000000"),
        (&["gradcheck", "--max-order", "4"], "--max-order 4"),
        (
            &[
                "deepfake",
                "eval",
                "--checkpoint",
                "x",
                "--classifier-steps",
                "10000000",
            ],
            "--classifier-steps 10000000",
        ),
        (&["course", "--parts", "6"], "--parts"),
    ];
    for (args, needle) in cases {
        refused(args, &[needle]);
    }
}

#[test]
fn empty_work_is_refused() {
    let cases: &[(&[&str], &str)] = &[
        (&["train", "ae", "--epochs", "0"], "--epochs 0"),
        (&["train", "ae", "--train-limit", "0"], "--train-limit 0"),
        (&["train", "ae", "--test-limit", "0"], "--test-limit 0"),
        (&["gradcheck", "--cases", "0"], "--cases 0"),
        (&["gradcheck", "--max-order", "0"], "--max-order 0"),
        (&["cam", "--checkpoint", "x", "--images", "0"], "--images 0"),
        (
            &[
                "cam",
                "--checkpoint",
                "x",
                "--method",
                "cam",
                "--layers",
                "conv1,conv2",
            ],
            "no map to draw",
        ),
        (
            &[
                "cam",
                "--checkpoint",
                "x",
                "--metrics",
                "--exact-images",
                "0",
            ],
            "--exact-images 0",
        ),
        (
            &[
                "deepfake",
                "eval",
                "--checkpoint",
                "x",
                "--classifier-steps",
                "0",
            ],
            "--classifier-steps 0",
        ),
        (
            &[
                "deepfake",
                "mix",
                "--checkpoint",
                "x",
                "--a",
                "a",
                "--b",
                "b",
                "--out",
                "o",
                "--steps",
                "1",
            ],
            "--steps 1",
        ),
        (
            &[
                "cam",
                "--checkpoint",
                "x",
                "--sanity",
                "--sanity-images",
                "0",
            ],
            "--sanity-images 0",
        ),
        (
            &["cam", "--checkpoint", "x", "--alpha-report", "0"],
            "--alpha-report 0",
        ),
        (&["eval", "x", "--samples", "1"], "--samples 1"),
        (&["eval", "x", "--iwae-images", "0"], "--iwae-images 0"),
        (&["eval", "x", "--kid-subsets", "0"], "--kid-subsets 0"),
        (
            &["eval", "x", "--kid-subset-size", "1"],
            "--kid-subset-size 1",
        ),
        (
            &["experiment", "lambda-sweep", "--epochs", "0"],
            "--epochs 0",
        ),
        (
            &["experiment", "lambda-sweep", "--lambdas", "1e-3,nan"],
            "--lambdas",
        ),
        (&["experiment", "gan-losses", "--epochs", "0"], "--epochs 0"),
        (
            &["experiment", "gan-losses", "--fid-samples", "1"],
            "--fid-samples 1",
        ),
        (&["train", "ae", "--random-labels", "1"], "classifier only"),
        (&["cam", "--checkpoint", "x", "--resume"], "--metrics"),
        (
            &[
                "cam",
                "--checkpoint",
                "x",
                "--random-labels-checkpoint",
                "y",
            ],
            "--sanity",
        ),
    ];
    for (args, needle) in cases {
        refused(args, &[needle]);
    }
}

#[test]
fn the_help_quotes_each_range() {
    let help = String::from_utf8_lossy(&ferrograd(&["train", "--help"]).stdout).into_owned();
    assert!(help.contains("[range: from 1 to 4,096]"), "{help}");
    assert!(
        help.contains("[range: more than 0 and at most 10]"),
        "{help}"
    );
    let help = String::from_utf8_lossy(&ferrograd(&["cam", "--help"]).stdout).into_owned();
    assert!(help.contains("[range: from 1 to 784]"), "{help}");
}

/// Rewrites metadata keys of the checkpoint at `from` into `to`.
fn with_metadata(from: &Path, to: &Path, pairs: &[(&str, &str)]) {
    let mut ckpt = ferrograd_nn::checkpoint::load_training(from).unwrap();
    for (k, v) in pairs {
        ckpt.metadata.insert(k.to_string(), v.to_string());
    }
    let tensors: Vec<_> = ckpt.tensors.into_iter().collect();
    ferrograd_nn::checkpoint::save_training(to, &tensors, &ckpt.metadata).unwrap();
}

#[test]
fn train_checkpoints_are_the_same_bytes_and_lying_metadata_is_refused() {
    let Some(data) = fashion_mnist() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let quick = |out: &Path| {
        let out = out.to_str().unwrap().to_string();
        let args = [
            "train",
            "ae",
            "--epochs",
            "1",
            "--train-limit",
            "256",
            "--test-limit",
            "64",
            "--latent",
            "4",
            "--data",
            data,
            "--out",
            &out,
        ];
        let run = ferrograd(&args);
        assert!(run.status.success(), "{}", stderr(&run));
    };
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    quick(&one);
    quick(&two);
    let ckpt = one.join("checkpoint.safetensors");
    assert_eq!(
        fs::read(&ckpt).unwrap(),
        fs::read(two.join("checkpoint.safetensors")).unwrap(),
        "two identical runs, two identical checkpoints"
    );

    // A resume with other flags names the one that differs, with both values.
    let err = refused(
        &[
            "train",
            "ae",
            "--epochs",
            "2",
            "--train-limit",
            "256",
            "--test-limit",
            "64",
            "--latent",
            "5",
            "--data",
            data,
            "--out",
            one.to_str().unwrap(),
            "--resume",
        ],
        &["--latent 4 in the checkpoint, 5 now"],
    );
    assert!(!err.contains("{"), "no settings map dumped: {err}");

    let bad = tmp.path().join("bad.safetensors");
    for (key, value) in [("latent", "1000000000"), ("epoch", "abc")] {
        with_metadata(&ckpt, &bad, &[(key, value)]);
        let b = bad.to_str().unwrap();
        refused(
            &["eval", b, "--data", data],
            &["bad.safetensors", &format!("'{key}'"), value],
        );
    }
}

/// A two-step face-swap checkpoint made with the command line, in `dir`.
fn tiny_face_swap(faces: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("df");
    let run = ferrograd(&[
        "deepfake",
        "train",
        "--faces",
        faces.to_str().unwrap(),
        "--steps",
        "2",
        "--batch",
        "2",
        "--latent",
        "8",
        "--limit",
        "8",
        "--held-out",
        "0.25",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    out.join("checkpoint.safetensors")
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[test]
fn outputs_that_are_not_regular_files_are_written_into_or_refused_never_replaced() {
    let Some(faces) = lfw() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_face_swap(&faces, tmp.path());
    let ckpt = ckpt.to_str().unwrap();
    let face = faces.join("George_W_Bush/George_W_Bush_0001.jpg");
    let face = face.to_str().unwrap();
    let other = faces.join("Colin_Powell/Colin_Powell_0001.jpg");
    let other = other.to_str().unwrap();

    // A FIFO: the picture goes into it, and it is still a FIFO.
    let fifo = tmp.path().join("picture.fifo");
    mkfifo(&fifo);
    for args in [
        vec![
            "deepfake",
            "swap",
            "--checkpoint",
            ckpt,
            "--input",
            face,
            "--to",
            "b",
        ],
        vec![
            "deepfake",
            "mix",
            "--checkpoint",
            ckpt,
            "--a",
            face,
            "--b",
            other,
            "--steps",
            "3",
        ],
    ] {
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                fs::File::open(fifo)
                    .unwrap()
                    .read_to_end(&mut bytes)
                    .unwrap();
                bytes
            })
        };
        let mut args = args;
        args.extend(["--out", fifo.to_str().unwrap()]);
        let run = ferrograd(&args);
        // Checked before joining: had the FIFO been renamed over, the reader would wait forever.
        assert!(
            fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(),
            "{args:?} replaced the FIFO"
        );
        if !run.status.success() {
            // Unblock the reader, which waits for a writer to open the FIFO.
            drop(fs::OpenOptions::new().write(true).open(&fifo));
            let _ = reader.join();
            panic!("{args:?}: {}", stderr(&run));
        }
        let bytes = reader.join().unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "a PNG came through the FIFO"
        );
    }

    // A device node like /dev/null (made here, never the real one): written into, kept.
    let device = tmp.path().join("null");
    let made = Command::new("mknod")
        .args([device.to_str().unwrap(), "c", "1", "3"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if made {
        let run = ferrograd(&[
            "deepfake",
            "swap",
            "--checkpoint",
            ckpt,
            "--input",
            face,
            "--to",
            "a",
            "--out",
            device.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
        assert!(fs::symlink_metadata(&device)
            .unwrap()
            .file_type()
            .is_char_device());
    } else {
        eprintln!("skipped the device node: cannot mknod here (not privileged)");
    }

    // A socket is neither a file nor a stream: refused, left as it was.
    let socket = tmp.path().join("out.png");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    refused(
        &[
            "deepfake",
            "swap",
            "--checkpoint",
            ckpt,
            "--input",
            face,
            "--to",
            "a",
            "--out",
            socket.to_str().unwrap(),
        ],
        &["out.png", "a socket", "not a regular file"],
    );
    assert!(fs::symlink_metadata(&socket)
        .unwrap()
        .file_type()
        .is_socket());
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn face_swap_checkpoints_that_lie_and_damaged_pictures_get_sentences() {
    let Some(faces) = lfw() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_face_swap(&faces, tmp.path());
    let face = faces.join("George_W_Bush/George_W_Bush_0001.jpg");
    let face = face.to_str().unwrap();
    let out = tmp.path().join("out.png");
    let out = out.to_str().unwrap();

    // metadata latent = 10^9 aborted swap, mix and eval; a == b trained the judge on one person.
    let bad = tmp.path().join("bad.safetensors");
    let b = bad.to_str().unwrap();
    for (key, value, needle) in [
        ("latent", "1000000000", "--latent"),
        ("b", "George_W_Bush", "two identities"),
    ] {
        with_metadata(&ckpt, &bad, &[(key, value)]);
        for args in [
            vec![
                "deepfake",
                "swap",
                "--checkpoint",
                b,
                "--input",
                face,
                "--to",
                "a",
                "--out",
                out,
            ],
            vec![
                "deepfake",
                "mix",
                "--checkpoint",
                b,
                "--a",
                face,
                "--b",
                face,
                "--out",
                out,
            ],
            vec![
                "deepfake",
                "eval",
                "--checkpoint",
                b,
                "--classifier-steps",
                "1",
            ],
        ] {
            refused(&args, &["bad.safetensors", &format!("'{key}'"), needle]);
        }
    }
    assert!(!Path::new(out).exists());

    // A PNG whose first chunk is IDAT: a sentence, not the decoder's debug struct.
    let png = tmp.path().join("damaged.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 2]);
    bytes.extend_from_slice(b"IDATxx");
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    fs::write(&png, bytes).unwrap();
    let ckpt = ckpt.to_str().unwrap();
    let err = refused(
        &[
            "deepfake",
            "swap",
            "--checkpoint",
            ckpt,
            "--input",
            png.to_str().unwrap(),
            "--to",
            "a",
            "--out",
            out,
        ],
        &["damaged.png", "PNG data is damaged", "IDAT"],
    );
    assert!(!err.contains('{') && !err.contains("critical"), "{err}");
}

#[test]
fn convert_writes_whole_photographs_and_refuses_faces_it_cannot_place() {
    let Some(faces) = lfw() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_face_swap(&faces, tmp.path());
    let ckpt = ckpt.to_str().unwrap();
    // A folder of frames: two LFW photos and a grayscale copy of one.
    let frames = tmp.path().join("frames");
    fs::create_dir(&frames).unwrap();
    for (i, name) in ["George_W_Bush_0001.jpg", "George_W_Bush_0002.jpg"]
        .iter()
        .enumerate()
    {
        fs::copy(
            faces.join("George_W_Bush").join(name),
            frames.join(format!("frame_{i}.jpg")),
        )
        .unwrap();
    }
    image::open(frames.join("frame_0.jpg"))
        .unwrap()
        .to_luma8()
        .save(frames.join("frame_2.png"))
        .unwrap();
    let out = tmp.path().join("converted");
    let convert = |input: &Path, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "deepfake",
            "convert",
            "--checkpoint",
            ckpt,
            "--input",
            input.to_str().unwrap(),
            "--to",
            "b",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let args = convert(&frames, &out, &[]);
    let run = ferrograd(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("frame_2.png is grayscale"),
        "{}",
        stderr(&run)
    );
    for i in 0..3 {
        let before = image::open(frames.join(if i < 2 {
            format!("frame_{i}.jpg")
        } else {
            "frame_2.png".to_string()
        }))
        .unwrap()
        .to_rgb8();
        let after = image::open(out.join(format!("frame_{i}.png")))
            .unwrap()
            .to_rgb8();
        assert_eq!(after.dimensions(), (250, 250));
        // The corners are far outside the face box: untouched.
        assert_eq!(after.get_pixel(3, 3), before.get_pixel(3, 3));
        assert_ne!(after, before, "frame {i} unchanged");
    }
    assert!(out.join("strip.png").is_file());

    // A photo that is not LFW-aligned needs a box, and the box must fit.
    let wide = tmp.path().join("wide.png");
    image::RgbImage::from_pixel(400, 300, image::Rgb([120, 90, 80]))
        .save(&wide)
        .unwrap();
    let single = tmp.path().join("single");
    let args = convert(&wide, &single, &[]);
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["wide.png", "400x300", "--box"],
    );
    let args = convert(&wide, &single, &["--box", "350,10,100,100"]);
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["wide.png", "reaches past"],
    );
    let args = convert(&wide, &single, &["--box", "1,2,3"]);
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["--box", "LEFT,TOP,WIDTH,HEIGHT"],
    );
    let args = convert(&wide, &single, &["--box", "150,100,100,100"]);
    let run = ferrograd(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(
        image::open(single.join("wide.png"))
            .unwrap()
            .to_rgb8()
            .dimensions(),
        (400, 300)
    );
    // `swap` takes the centred square of such a photo, and says so.
    let crop_out = tmp.path().join("swap.png");
    let run = ferrograd(&[
        "deepfake",
        "swap",
        "--checkpoint",
        ckpt,
        "--input",
        wide.to_str().unwrap(),
        "--to",
        "a",
        "--out",
        crop_out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("400x300, not an LFW-aligned"),
        "{}",
        stderr(&run)
    );
    // Writing into the photos' own folder would overwrite frame_2.png: refused, nothing lost.
    let frame_2 = fs::read(frames.join("frame_2.png")).unwrap();
    let args = convert(&frames, &frames, &[]);
    refused(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        &["frame_2.png", "overwritten"],
    );
    assert_eq!(fs::read(frames.join("frame_2.png")).unwrap(), frame_2);
}

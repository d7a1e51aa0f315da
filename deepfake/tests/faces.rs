//! Loading faces: crops, splits, and the errors a wrong folder or a bad file gives.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ferrograd_deepfake::faces::{
    batch_tensor, default_faces_dir, list_identities, load_face, load_identity, LoadOptions,
    FACE_LEN, FACE_SIZE, LFW_CROP,
};
use image::{Rgb, RgbImage};

/// The shared LFW subset, or None (with a note) where this checkout has no copy.
fn lfw() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/lfw");
    if root.join("George_W_Bush").is_dir() {
        Some(root)
    } else {
        eprintln!("skipped: no LFW faces at {}", root.display());
        None
    }
}

fn save_picture(path: &Path, width: u32, height: u32, colour: impl Fn(u32, u32) -> [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_fn(width, height, |x, y| Rgb(colour(x, y)))
        .save(path)
        .unwrap();
}

/// The value of channel `c` at (x, y) of a CHW face.
fn at(face: &[f32], c: usize, x: usize, y: usize) -> f32 {
    face[c * FACE_SIZE * FACE_SIZE + y * FACE_SIZE + x]
}

/// Asserts that every pixel of `face` at least `margin` from the edges has colour `rgb`.
fn assert_colour_inside(face: &[f32], rgb: [u8; 3], margin: usize) {
    assert_eq!(face.len(), FACE_LEN);
    for y in margin..FACE_SIZE - margin {
        for x in margin..FACE_SIZE - margin {
            for (c, &byte) in rgb.iter().enumerate() {
                let got = at(face, c, x, y);
                let want = f32::from(byte) / 255.0;
                assert!(
                    (got - want).abs() <= 1.5 / 255.0,
                    "pixel ({x}, {y}) channel {c} is {got}, want {want}"
                );
            }
        }
    }
}

/// An identity folder `<root>/<name>/` of `count` small PNGs, picture i a flat colour that
/// encodes i (red = 8 i), so a loaded face says which file it came from.
fn coloured_identity(root: &Path, name: &str, count: usize) {
    for i in 0..count {
        let path = root.join(name).join(format!("{name}_{:04}.png", i + 1));
        save_picture(&path, 40, 40, |_, _| [(8 * i) as u8, 100, 50]);
    }
}

/// Which picture of [`coloured_identity`] a face is.
fn picture_index(face: &[f32]) -> usize {
    (at(face, 0, 50, 50) * 255.0 / 8.0).round() as usize
}

fn options(min_images: usize) -> LoadOptions {
    LoadOptions {
        min_images,
        ..LoadOptions::default()
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let opts = LoadOptions::default();
    assert_eq!(opts.min_images, 20);
    assert_eq!(opts.held_out_fraction, 0.1);
    assert!(!opts.skip_bad);
    assert_eq!(opts.limit, None);
    assert_eq!(
        (LFW_CROP.left, LFW_CROP.top, LFW_CROP.width, LFW_CROP.height),
        (65, 70, 120, 120)
    );
}

#[test]
fn faces_dir_comes_from_the_environment_or_the_shared_folder() {
    // The only test that touches this variable.
    std::env::set_var("FERROGRAD_FACES", "/somewhere/faces");
    assert_eq!(default_faces_dir(), PathBuf::from("/somewhere/faces"));
    std::env::remove_var("FERROGRAD_FACES");
    assert_eq!(default_faces_dir(), PathBuf::from("../shared/data/lfw"));
}

#[test]
fn a_missing_faces_folder_is_named_with_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("no-faces-here");
    let err = load_identity(&root, "George_W_Bush", &LoadOptions::default()).unwrap_err();
    assert_eq!(err.path().unwrap(), root);
    let text = err.to_string();
    assert!(text.starts_with(&root.display().to_string()), "{text}");
    for needle in [
        "no such folder",
        "--faces",
        "FERROGRAD_FACES",
        "<Name>_0001.jpg",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
    assert!(list_identities(&root).is_err());

    // A file where the folder should be.
    let file = dir.path().join("faces.txt");
    std::fs::write(&file, "not a folder").unwrap();
    let err = load_identity(&file, "X", &LoadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("is not a folder"), "{err}");
}

#[test]
fn a_missing_identity_lists_the_ones_there() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..12 {
        coloured_identity(dir.path(), &format!("Person_{i:02}"), 1 + i % 3);
    }
    let err = load_identity(dir.path(), "Nobody", &LoadOptions::default()).unwrap_err();
    assert_eq!(err.path().unwrap(), dir.path().join("Nobody"));
    let text = err.to_string();
    assert!(text.contains("\"Nobody\""), "{text}");
    assert!(text.contains("there are 12"), "{text}");
    assert!(text.contains("Person_00 (1 images)"), "{text}");
    assert!(text.contains("Person_09 (1 images)"), "{text}");
    assert!(
        !text.contains("Person_10"),
        "only ten names are shown: {text}"
    );
    assert!(text.contains("and 2 more"), "{text}");
    // Names are folder names, not paths out of the faces folder.
    for name in ["", "..", "../Person_00", "Person_00/.."] {
        let err = load_identity(dir.path(), name, &LoadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("there are 12"), "{name:?}: {err}");
    }

    if let Some(lfw) = lfw() {
        let err = load_identity(&lfw, "Bush", &LoadOptions::default()).unwrap_err();
        for name in ["Colin_Powell", "George_W_Bush", "Tony_Blair"] {
            assert!(err.to_string().contains(name), "{name} missing from: {err}");
        }
    }
}

#[test]
fn list_identities_counts_pictures_sorted_by_name() {
    let dir = tempfile::tempdir().unwrap();
    coloured_identity(dir.path(), "Bea", 3);
    coloured_identity(dir.path(), "Al", 2);
    std::fs::write(dir.path().join("Bea/notes.txt"), "not a picture").unwrap();
    std::fs::write(dir.path().join("README.md"), "a file, not an identity").unwrap();
    std::fs::create_dir(dir.path().join("Empty")).unwrap();
    let found = list_identities(dir.path()).unwrap();
    let want = [("Al", 2), ("Bea", 3), ("Empty", 0)];
    let want: Vec<(String, usize)> = want.iter().map(|&(n, c)| (n.to_string(), c)).collect();
    assert_eq!(found, want);

    if let Some(lfw) = lfw() {
        let found = list_identities(&lfw).unwrap();
        let want = [
            ("Colin_Powell", 236),
            ("George_W_Bush", 530),
            ("Tony_Blair", 144),
        ];
        let want: Vec<(String, usize)> = want.iter().map(|&(n, c)| (n.to_string(), c)).collect();
        assert_eq!(found, want);
    }
}

#[test]
fn too_few_pictures_says_how_many_were_found_and_needed() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("Few");
    std::fs::create_dir(&folder).unwrap();
    match lfw() {
        Some(lfw) => {
            for n in 1..=2 {
                let file = format!("George_W_Bush_{n:04}.jpg");
                std::fs::copy(lfw.join("George_W_Bush").join(&file), folder.join(file)).unwrap();
            }
        }
        None => coloured_identity(dir.path(), "Few", 2),
    }
    let err = load_identity(dir.path(), "Few", &options(5)).unwrap_err();
    assert_eq!(err.path().unwrap(), folder);
    assert!(err.to_string().contains("found 2 images"), "{err}");
    assert!(err.to_string().contains("at least 5"), "{err}");

    // Two pictures are enough when asked for two: one to train on, one held out.
    let two = load_identity(dir.path(), "Few", &options(2)).unwrap();
    assert_eq!((two.train.len(), two.held_out.len()), (1, 1));
}

#[test]
fn a_corrupt_picture_is_named_or_skipped_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    coloured_identity(dir.path(), "X", 6);
    // Rename the PNGs to .jpg: the format is guessed from the contents, not the name.
    for i in 1..=6 {
        let png = dir.path().join(format!("X/X_{i:04}.png"));
        std::fs::rename(&png, png.with_extension("jpg")).unwrap();
    }
    let bad = dir.path().join("X/X_0003.jpg");
    std::fs::write(&bad, b"\x13\x37 these bytes are no picture at all \x00\xff").unwrap();

    let err = load_identity(dir.path(), "X", &options(3)).unwrap_err();
    assert_eq!(err.path().unwrap(), bad);
    assert!(err.to_string().contains("X_0003.jpg"), "{err}");
    assert!(err.to_string().contains("not an image"), "{err}");

    let opts = LoadOptions {
        skip_bad: true,
        ..options(3)
    };
    let identity = load_identity(dir.path(), "X", &opts).unwrap();
    assert_eq!(identity.train.len() + identity.held_out.len(), 5);
    assert_eq!(identity.skipped.len(), 1);
    assert_eq!(identity.skipped[0].path().unwrap(), bad);
    let indices: BTreeSet<usize> = identity
        .train
        .iter()
        .chain(&identity.held_out)
        .map(|face| picture_index(face))
        .collect();
    assert_eq!(
        indices,
        BTreeSet::from([0, 1, 3, 4, 5]),
        "picture 2 is the bad one"
    );

    // A real JPEG cut short is corrupt, not "not an image".
    if let Some(lfw) = lfw() {
        let bytes = std::fs::read(lfw.join("George_W_Bush/George_W_Bush_0001.jpg")).unwrap();
        let cut = dir.path().join("cut.jpg");
        std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
        let err = load_face(&cut).unwrap_err();
        assert_eq!(err.path().unwrap(), cut);
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}

#[test]
fn load_face_says_what_is_wrong_with_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jpg");
    let err = load_face(&missing).unwrap_err();
    assert_eq!(err.path().unwrap(), missing);
    assert!(err.to_string().contains("cannot open"), "{err}");

    let tiny = dir.path().join("tiny.png");
    save_picture(&tiny, 20, 64, |_, _| [1, 2, 3]);
    let err = load_face(&tiny).unwrap_err();
    assert!(
        err.to_string().contains("too small") && err.to_string().contains("20x64"),
        "{err}"
    );

    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    assert!(load_face(&empty)
        .unwrap_err()
        .to_string()
        .contains("not an image"));
}

#[test]
fn a_250_pixel_picture_gives_the_lfw_face_box() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lfw.png");
    let inside = [200, 30, 60];
    let outside = [10, 220, 100];
    save_picture(&path, 250, 250, |x, y| {
        let in_x = (LFW_CROP.left..LFW_CROP.left + LFW_CROP.width).contains(&x);
        let in_y = (LFW_CROP.top..LFW_CROP.top + LFW_CROP.height).contains(&y);
        if in_x && in_y {
            inside
        } else {
            outside
        }
    });
    let face = load_face(&path).unwrap();
    assert_colour_inside(&face, inside, 2);
    assert!(face.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn other_pictures_give_their_largest_centred_square() {
    let dir = tempfile::tempdir().unwrap();
    let inside = [240, 200, 10];
    let outside = [0, 0, 255];
    // Wide: the square is x 50..250; tall: y 60..260.
    let wide = dir.path().join("wide.png");
    save_picture(&wide, 300, 200, |x, _| {
        if (50..250).contains(&x) {
            inside
        } else {
            outside
        }
    });
    assert_colour_inside(&load_face(&wide).unwrap(), inside, 2);
    let tall = dir.path().join("tall.jpg");
    save_picture(&tall, 180, 300, |_, y| {
        if (60..240).contains(&y) {
            inside
        } else {
            outside
        }
    });
    // JPEG blurs colour edges (4:2:0 chroma), so stay further inside and allow more.
    let face = load_face(&tall).unwrap();
    for y in 10..90 {
        for x in 10..90 {
            for (c, &byte) in inside.iter().enumerate() {
                let got = at(&face, c, x, y) * 255.0;
                assert!(
                    (got - f32::from(byte)).abs() < 12.0,
                    "({x}, {y}, {c}): {got}"
                );
            }
        }
    }
    // A 250x250 picture is an LFW crop, but 251x251 is centre-cropped whole.
    let square = dir.path().join("square.png");
    save_picture(&square, 251, 251, |x, y| {
        if x < 3 || y < 3 || x > 247 || y > 247 {
            outside
        } else {
            inside
        }
    });
    let face = load_face(&square).unwrap();
    assert_colour_inside(&face, inside, 3);
    assert!(at(&face, 2, 0, 50) > 0.5, "the blue border is kept");
}

#[test]
fn the_split_is_seeded_disjoint_and_sized() {
    let dir = tempfile::tempdir().unwrap();
    coloured_identity(dir.path(), "Split", 30);
    let opts = LoadOptions {
        min_images: 20,
        held_out_fraction: 0.2,
        seed: 7,
        ..LoadOptions::default()
    };
    let indices = |faces: &[Vec<f32>]| faces.iter().map(|f| picture_index(f)).collect::<Vec<_>>();

    let identity = load_identity(dir.path(), "Split", &opts).unwrap();
    assert_eq!(identity.name, "Split");
    assert!(identity.skipped.is_empty());
    let train = indices(&identity.train);
    let held = indices(&identity.held_out);
    assert_eq!((train.len(), held.len()), (24, 6));
    assert!(
        train.windows(2).all(|w| w[0] < w[1]),
        "file order: {train:?}"
    );
    assert!(held.windows(2).all(|w| w[0] < w[1]), "file order: {held:?}");
    let train_set: BTreeSet<usize> = train.iter().copied().collect();
    let held_set: BTreeSet<usize> = held.iter().copied().collect();
    assert!(train_set.is_disjoint(&held_set));
    assert_eq!(train_set.union(&held_set).count(), 30);

    let again = load_identity(dir.path(), "Split", &opts).unwrap();
    assert_eq!(indices(&again.held_out), held);
    assert_eq!(again.train, identity.train);
    let other_seed = LoadOptions {
        seed: 8,
        ..opts.clone()
    };
    let other = load_identity(dir.path(), "Split", &other_seed).unwrap();
    assert_ne!(
        indices(&other.held_out),
        held,
        "another seed, another split"
    );

    // A limit takes a seeded subset and holds out part of the full run's held-out faces.
    let limited = LoadOptions {
        limit: Some(10),
        ..opts.clone()
    };
    let small = load_identity(dir.path(), "Split", &limited).unwrap();
    assert_eq!((small.train.len(), small.held_out.len()), (8, 2));
    assert!(indices(&small.held_out)
        .iter()
        .all(|i| held_set.contains(i)));

    // At least one face is held out even when the fraction rounds to none.
    let tiny_fraction = LoadOptions {
        held_out_fraction: 0.001,
        ..opts.clone()
    };
    let one = load_identity(dir.path(), "Split", &tiny_fraction).unwrap();
    assert_eq!(one.held_out.len(), 1);

    let bad_fraction = LoadOptions {
        held_out_fraction: 1.0,
        ..opts
    };
    let err = load_identity(dir.path(), "Split", &bad_fraction).unwrap_err();
    assert!(err.to_string().contains("held-out fraction"), "{err}");
}

#[test]
fn batch_tensor_stacks_faces_and_checks_lengths() {
    let a = vec![0.25f32; FACE_LEN];
    let b = vec![0.75f32; FACE_LEN];
    let batch = batch_tensor(&[&a, &b]).unwrap();
    assert_eq!(batch.shape(), &[2, 3, FACE_SIZE, FACE_SIZE]);
    let values = batch.to_vec_f32();
    assert_eq!(values[FACE_LEN - 1], 0.25);
    assert_eq!(values[FACE_LEN], 0.75);

    let short = vec![0.0f32; FACE_LEN - 1];
    let err = batch_tensor(&[&a, &short]).unwrap_err();
    assert!(
        err.message.contains("face 1") && err.message.contains("29999"),
        "{err}"
    );
    assert!(batch_tensor(&[]).is_err());
}

#[test]
fn loads_lfw_george_w_bush() {
    let Some(lfw) = lfw() else { return };
    let start = Instant::now();
    let bush = load_identity(&lfw, "George_W_Bush", &LoadOptions::default()).unwrap();
    eprintln!(
        "loaded George_W_Bush (530 images) in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    assert_eq!((bush.train.len(), bush.held_out.len()), (477, 53));
    assert!(bush.skipped.is_empty());
    for face in bush.train.iter().chain(&bush.held_out) {
        assert_eq!(face.len(), FACE_LEN);
        assert!(face.iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // Real faces, not flat colour: the centre differs from the corner.
    let face = &bush.train[0];
    let spread = face.iter().cloned().fold(f32::MIN, f32::max)
        - face.iter().cloned().fold(f32::MAX, f32::min);
    assert!(spread > 0.5, "spread {spread}");
}

#[test]
fn cut_short_pictures_are_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("whole.png");
    save_picture(&png, 64, 64, |x, y| [(x * 4) as u8, (y * 4) as u8, 7]);
    let jpg = dir.path().join("whole.jpg");
    save_picture(&jpg, 64, 64, |x, y| [(x * 4) as u8, (y * 4) as u8, 7]);
    for whole in [png, jpg] {
        assert!(load_face(&whole).is_ok());
        let bytes = std::fs::read(&whole).unwrap();
        let cut = dir.path().join(format!(
            "cut-{}",
            whole.file_name().unwrap().to_str().unwrap()
        ));
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = load_face(&cut).unwrap_err();
        assert_eq!(err.path().unwrap(), cut);
        assert!(err.to_string().contains("corrupt"), "{err}");
    }
}

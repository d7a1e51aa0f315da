//! Convert: the face box, the colour space, the colour matching and the paste-back geometry.

use ferrograd_deepfake::convert::{
    blend_mask, convert_photo, face_box, lab_statistics, lab_to_srgb, load_photo, match_colour,
    output_paths, parse_box, paste_face, scale_mask, srgb_to_lab, RgbImage,
};
use ferrograd_deepfake::faces::{crop_face, CropBox, FACE_LEN, FACE_SIZE, LFW_CROP};
use ferrograd_deepfake::model::{FaceSwap, Side, SwapConfig};
use ferrograd_engine::Rng;
use std::path::{Path, PathBuf};

/// A smooth, structured 250x250 picture (no two rows or columns alike), so that a misplaced or
/// mirrored paste shows.
fn smooth_picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (u, v) = (x as f64 / width as f64, y as f64 / height as f64);
        let r = 0.5 + 0.4 * (6.0 * u + 1.0).sin() * (3.0 * v).cos();
        let g = 0.5 + 0.4 * (5.0 * v + 2.0 * u).sin();
        let b = 0.2 + 0.6 * u * v;
        image::Rgb([r, g, b].map(|c| (c * 255.0).round() as u8))
    })
}

fn random_face(rng: &mut Rng, low: f32, high: f32) -> Vec<f32> {
    (0..FACE_LEN)
        .map(|_| low + (high - low) * rng.uniform() as f32)
        .collect()
}

#[test]
fn lab_matches_published_values_and_inverts_even_out_of_gamut() {
    // sRGB white is L* 100 with no chroma; sRGB red is (53.24, 80.09, 67.20) in every table of
    // CIE L*a*b* under D65; mid grey 0.5 is L* 53.39.
    let close = |x: [f64; 3], y: [f64; 3], tol: f64| {
        (0..3).all(|i| (x[i] - y[i]).abs() < tol) || panic!("{x:?} vs {y:?}")
    };
    close(srgb_to_lab([1.0, 1.0, 1.0]), [100.0, 0.0, 0.0], 1e-3);
    close(srgb_to_lab([1.0, 0.0, 0.0]), [53.24, 80.09, 67.20], 0.01);
    close(srgb_to_lab([0.5, 0.5, 0.5]), [53.39, 0.0, 0.0], 0.01);
    close(srgb_to_lab([0.0, 0.0, 0.0]), [0.0, 0.0, 0.0], 1e-9);
    for rgb in [
        [0.2, 0.7, 0.1],
        [0.001, 0.002, 0.9],
        [-0.1, 0.5, 1.2],
        [1.3, -0.02, 0.0],
    ] {
        close(lab_to_srgb(srgb_to_lab(rgb)), rgb, 1e-9);
    }
}

#[test]
fn colour_matching_gives_the_reference_statistics_under_the_mask() {
    let mut rng = Rng::new(7);
    let mask = blend_mask();
    // A pale, low-contrast face matched to a darker, contrasty reference.
    let face = random_face(&mut rng, 0.55, 0.75);
    let mut reference = random_face(&mut rng, 0.1, 0.6);
    for value in &mut reference[..FACE_SIZE * FACE_SIZE] {
        *value = (*value + 0.2).min(0.9); // redder than it is green or blue
    }
    let before = lab_statistics(&face, &mask);
    let want = lab_statistics(&reference, &mask);
    let matched = match_colour(&face, &reference, &mask).unwrap();
    let got = lab_statistics(&matched, &mask);
    for c in 0..3 {
        assert!(
            (before[c].0 - want[c].0).abs() > 1.0,
            "the test needs unlike faces"
        );
        assert!(
            (got[c].0 - want[c].0).abs() < 1e-3,
            "channel {c} mean {got:?} vs {want:?}"
        );
        assert!(
            (got[c].1 - want[c].1).abs() < 1e-3,
            "channel {c} std {got:?} vs {want:?}"
        );
    }
    // Matching a face to itself changes it by no more than f32 rounding.
    let same = match_colour(&reference, &reference, &mask).unwrap();
    let worst = same
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "{worst}");
    assert!(match_colour(&face, &reference, &vec![0.0; FACE_SIZE * FACE_SIZE]).is_err());
    assert!(match_colour(&face[1..], &reference, &mask).is_err());
}

#[test]
fn the_blend_mask_covers_the_face_and_fades_to_zero_at_the_crop_edge() {
    let mask = blend_mask();
    let at = |x: usize, y: usize| mask[y * FACE_SIZE + x];
    assert_eq!(at(50, 50), 1.0);
    assert_eq!(at(30, 30), 1.0);
    for i in 0..FACE_SIZE {
        for (x, y) in [(i, 0), (i, FACE_SIZE - 1), (0, i), (FACE_SIZE - 1, i)] {
            assert_eq!(at(x, y), 0.0, "border pixel ({x}, {y})");
        }
    }
    assert!(mask.iter().all(|m| (0.0..=1.0).contains(m)));
    assert!(
        mask.iter().any(|&m| m > 0.1 && m < 0.9),
        "no feathered edge"
    );
}

#[test]
fn a_swap_by_the_own_decoder_changes_nothing_outside_the_mask() {
    let mut rng = Rng::new(3);
    let model = FaceSwap::new(
        SwapConfig {
            latent: 8,
            ..SwapConfig::default()
        },
        &mut rng,
    )
    .unwrap();
    let picture = smooth_picture(250, 250);
    for face_box in [
        LFW_CROP,
        CropBox {
            left: 10,
            top: 31,
            width: 77,
            height: 77,
        },
    ] {
        let converted = convert_photo(&model, &picture, face_box, Side::A, true).unwrap();
        let mask = scale_mask(&blend_mask(), face_box.width, face_box.height);
        let (mut untouched, mut changed) = (0, 0);
        for (x, y, pixel) in converted.result.enumerate_pixels() {
            let inside = (face_box.left..face_box.left + face_box.width).contains(&x)
                && (face_box.top..face_box.top + face_box.height).contains(&y);
            let m = if inside {
                mask[((y - face_box.top) * face_box.width + x - face_box.left) as usize]
            } else {
                0.0
            };
            if m == 0.0 {
                assert_eq!(
                    pixel,
                    picture.get_pixel(x, y),
                    "({x}, {y}) outside the mask"
                );
                untouched += 1;
            } else if pixel != picture.get_pixel(x, y) {
                changed += 1;
            }
        }
        // The untrained decoder's face is nothing like the picture: most of the mask changes.
        let masked = mask.iter().filter(|&&m| m > 0.0).count();
        assert!(
            changed * 2 > masked,
            "{changed} of {masked} masked pixels changed"
        );
        assert!(untouched > 250 * 250 - masked - 1);
    }
}

#[test]
fn pasting_the_crop_back_returns_the_photo_and_a_misplaced_paste_does_not() {
    let picture = smooth_picture(250, 250);
    let mask = vec![1.0f32; FACE_SIZE * FACE_SIZE];
    let crop = crop_face(&picture, LFW_CROP);
    let mean_error = |pasted: &RgbImage| {
        let mut total = 0.0;
        for y in LFW_CROP.top..LFW_CROP.top + LFW_CROP.height {
            for x in LFW_CROP.left..LFW_CROP.left + LFW_CROP.width {
                for c in 0..3 {
                    let d = f64::from(pasted.get_pixel(x, y).0[c])
                        - f64::from(picture.get_pixel(x, y).0[c]);
                    total += d.abs();
                }
            }
        }
        total / f64::from(3 * LFW_CROP.width * LFW_CROP.height)
    };
    let back = paste_face(&picture, LFW_CROP, &crop, &mask).unwrap();
    let aligned = mean_error(&back);
    // The same crop mirrored left-right, and the crop of a box 4 pixels to the right.
    let plane = FACE_SIZE * FACE_SIZE;
    let mirrored: Vec<f32> = (0..FACE_LEN)
        .map(|i| {
            let (c, y, x) = (i / plane, i % plane / FACE_SIZE, i % FACE_SIZE);
            crop[c * plane + y * FACE_SIZE + FACE_SIZE - 1 - x]
        })
        .collect();
    let shifted = crop_face(
        &picture,
        CropBox {
            left: LFW_CROP.left + 4,
            ..LFW_CROP
        },
    );
    let mirrored_error = mean_error(&paste_face(&picture, LFW_CROP, &mirrored, &mask).unwrap());
    let shifted_error = mean_error(&paste_face(&picture, LFW_CROP, &shifted, &mask).unwrap());
    assert!(aligned < 1.0, "{aligned} grey levels off on average");
    assert!(
        shifted_error > 3.0 * aligned && mirrored_error > 3.0 * aligned,
        "aligned {aligned}, shifted {shifted_error}, mirrored {mirrored_error}"
    );
    let past_the_edge = CropBox {
        left: 200,
        ..LFW_CROP
    };
    assert!(paste_face(&picture, past_the_edge, &crop, &mask).is_err());
}

#[test]
fn the_face_box_is_lfw_s_or_given_and_checked() {
    let path = Path::new("photo.jpg");
    assert_eq!(face_box(path, (250, 250), None).unwrap(), LFW_CROP);
    let err = face_box(path, (400, 300), None).unwrap_err().to_string();
    assert!(
        err.contains("photo.jpg") && err.contains("400x300") && err.contains("--box"),
        "{err}"
    );
    let given = parse_box("100, 50,120,120").unwrap();
    assert_eq!(face_box(path, (400, 300), Some(given)).unwrap(), given);
    for (text, needle) in [
        ("300,50,120,120", "reaches past"),
        ("10,10,120,100", "not square"),
        ("10,10,20,20", "too small"),
    ] {
        let err = face_box(path, (400, 300), Some(parse_box(text).unwrap()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle) && err.contains("photo.jpg"), "{err}");
    }
    for text in ["1,2,3", "a,b,c,d", "1,2,3,4,5", "-1,0,64,64"] {
        assert!(parse_box(text)
            .unwrap_err()
            .contains("LEFT,TOP,WIDTH,HEIGHT"));
    }
}

#[test]
fn grayscale_photos_are_read_as_rgb_and_said_to_be_grayscale() {
    let dir = tempfile::tempdir().unwrap();
    let gray = dir.path().join("gray.png");
    image::GrayImage::from_fn(64, 48, |x, y| image::Luma([(x * 3 + y) as u8]))
        .save(&gray)
        .unwrap();
    let photo = load_photo(&gray).unwrap();
    assert!(photo.grayscale);
    assert_eq!(photo.picture.dimensions(), (64, 48));
    assert_eq!(photo.picture.get_pixel(10, 5).0, [35, 35, 35]);
    let colour = dir.path().join("colour.png");
    smooth_picture(64, 48).save(&colour).unwrap();
    assert!(!load_photo(&colour).unwrap().grayscale);
}

#[test]
fn outputs_never_collide_or_overwrite_a_photo() {
    let dir = tempfile::tempdir().unwrap();
    let touch = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, b"x").unwrap();
        path
    };
    let (a, b) = (touch("frame_001.jpg"), touch("frame_002.jpg"));
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let paths = output_paths(&[a.clone(), b.clone()], &out).unwrap();
    let names: Vec<PathBuf> = paths
        .iter()
        .map(|p| p.file_name().unwrap().into())
        .collect();
    assert_eq!(
        names,
        [
            PathBuf::from("frame_001.png"),
            PathBuf::from("frame_002.png")
        ]
    );
    let twin = touch("frame_001.png");
    let err = output_paths(&[a.clone(), twin.clone()], &out)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("frame_001.jpg") && err.contains("rename"),
        "{err}"
    );
    // Into the photos' own folder: the PNG frame would be overwritten by its own conversion.
    let err = output_paths(&[a, twin], dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("overwritten"), "{err}");
}

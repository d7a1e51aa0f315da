//! Face-swap augmentation: the affine part moves pixels where the formulas say, the warp is
//! smooth and real, and a seed fixes every pair.

use ferrograd_deepfake::augment::{
    affine_only, augment_pair, augment_pair_and_affine, resample, Affine, Augment, Displacement,
};
use ferrograd_deepfake::faces::{feature_weights, EYE_BOX, FACE_LEN, FACE_SIZE, MOUTH_BOX};
use ferrograd_engine::Rng;

const S: usize = FACE_SIZE;

/// A face with detail everywhere and distinct channels, values in [0, 1].
fn textured_face() -> Vec<f32> {
    let mut face = vec![0.0f32; FACE_LEN];
    for c in 0..3 {
        for y in 0..S {
            for x in 0..S {
                let (xf, yf) = (x as f32, y as f32);
                let value = 0.5
                    + 0.25 * (xf * 0.31 + c as f32).sin()
                    + 0.2 * (yf * 0.17 + xf * 0.05 * c as f32).cos();
                face[c * S * S + y * S + x] = value;
            }
        }
    }
    face
}

/// Uniform noise in [0, 1]: the hardest case for staying in range.
fn noise_face(seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..FACE_LEN).map(|_| rng.uniform() as f32).collect()
}

fn at(face: &[f32], c: usize, x: usize, y: usize) -> f32 {
    face[c * S * S + y * S + x]
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn mean_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

fn mirrored(face: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; FACE_LEN];
    for c in 0..3 {
        for y in 0..S {
            for x in 0..S {
                out[c * S * S + y * S + x] = at(face, c, S - 1 - x, y);
            }
        }
    }
    out
}

#[test]
fn none_changes_nothing() {
    let face = textured_face();
    let mut rng = Rng::new(1);
    for _ in 0..3 {
        let (input, target) = augment_pair(&face, &Augment::none(), &mut rng).unwrap();
        assert!(max_difference(&input, &face) <= 1e-6);
        assert!(max_difference(&target, &face) <= 1e-6);
    }
    let only = affine_only(&face, &Augment::none(), &mut rng).unwrap();
    assert!(max_difference(&only, &face) <= 1e-6);
}

#[test]
fn flip_mirrors_exactly() {
    let face = textured_face();
    let flip = Affine {
        flip: true,
        ..Affine::IDENTITY
    };
    let out = resample(&face, &flip, None).unwrap();
    assert_eq!(out, mirrored(&face));

    // With only flipping on, each draw is the face or its mirror, and both come up.
    let cfg = Augment {
        flip: true,
        ..Augment::none()
    };
    let mut rng = Rng::new(5);
    let (mut same, mut mirror) = (0, 0);
    for _ in 0..40 {
        let (input, target) = augment_pair(&face, &cfg, &mut rng).unwrap();
        assert_eq!(input, target);
        if target == face {
            same += 1;
        } else {
            assert_eq!(target, mirrored(&face));
            mirror += 1;
        }
    }
    assert!(same > 5 && mirror > 5, "{same} kept, {mirror} mirrored");
}

#[test]
fn shift_and_rotation_move_pixels_where_the_formula_says() {
    let face = textured_face();
    // A shift of t = (3, -2) moves the picture right 3 and up 2: out(x, y) = face(x - 3, y + 2).
    let shift = Affine {
        shift_x: 3.0,
        shift_y: -2.0,
        ..Affine::IDENTITY
    };
    let out = resample(&face, &shift, None).unwrap();
    for c in 0..3 {
        for y in 0..S - 2 {
            for x in 3..S {
                assert_eq!(at(&out, c, x, y), at(&face, c, x - 3, y + 2));
            }
        }
        // Clamp to edge: the uncovered left columns repeat the face's first column.
        assert_eq!(at(&out, c, 0, 10), at(&face, c, 0, 12));
    }

    // 90 degrees about the centre maps pixel centres onto pixel centres:
    // q = c + R(-90°)(p - c) gives out(x, y) = face(y, S - 1 - x).
    let quarter = Affine {
        rotation_degrees: 90.0,
        ..Affine::IDENTITY
    };
    let out = resample(&face, &quarter, None).unwrap();
    for c in 0..3 {
        for y in 0..S {
            for x in 0..S {
                let want = at(&face, c, y, S - 1 - x);
                assert!((at(&out, c, x, y) - want).abs() < 1e-5, "({x}, {y}, {c})");
            }
        }
    }

    // Zoom 2 about the centre c = 49.5: out(p) = face(c + (p - c) / 2), so pixel (49, 49) reads
    // the face at (49.25, 49.25), a quarter of the way from pixel 49 to pixel 50 on each axis.
    let zoom = Affine {
        scale: 2.0,
        ..Affine::IDENTITY
    };
    let out = resample(&face, &zoom, None).unwrap();
    let want = 0.75 * at(&face, 0, 49, 49) + 0.25 * at(&face, 0, 50, 49);
    let want = 0.75 * want + 0.25 * (0.75 * at(&face, 0, 49, 50) + 0.25 * at(&face, 0, 50, 50));
    assert!((at(&out, 0, 49, 49) - want).abs() < 1e-6);
}

#[test]
fn without_warp_the_input_is_the_target() {
    let face = textured_face();
    let cfg = Augment {
        warp: 0.0,
        ..Augment::default()
    };
    let mut rng = Rng::new(11);
    for _ in 0..5 {
        let (input, target) = augment_pair(&face, &cfg, &mut rng).unwrap();
        assert_eq!(input, target);
        assert!(
            mean_difference(&target, &face) > 1e-3,
            "the affine part moved the face"
        );
    }
    // A lattice with no interior points has nothing to move.
    let border_only = Augment {
        grid: 2,
        ..Augment::default()
    };
    let (input, target) = augment_pair(&face, &border_only, &mut rng).unwrap();
    assert_eq!(input, target);
}

#[test]
fn the_warp_is_smooth_real_and_pinned_at_the_border() {
    let cfg = Augment::default();
    let mut rng = Rng::new(3);
    for _ in 0..10 {
        let field = Displacement::sample(&cfg, &mut rng);
        let mut largest = 0.0f32;
        let mut steepest = 0.0f32;
        for d in [&field.dx, &field.dy] {
            for y in 0..S {
                for x in 0..S {
                    let here = d[y * S + x];
                    largest = largest.max(here.abs());
                    if x + 1 < S {
                        steepest = steepest.max((d[y * S + x + 1] - here).abs());
                    }
                    if y + 1 < S {
                        steepest = steepest.max((d[(y + 1) * S + x] - here).abs());
                    }
                    if x == 0 || y == 0 || x == S - 1 || y == S - 1 {
                        assert!(here.abs() < 1e-6, "border ({x}, {y}) moved by {here}");
                    }
                }
            }
        }
        // Control points move by N(0, 2.5²) pixels and lie 24.75 pixels apart, so the field
        // changes by a small part of its size from one pixel to the next (independent noise
        // per pixel would change by more than its size), and by under a pixel, so p + D(p) never
        // folds over itself.
        assert!(largest > 1.0, "largest displacement {largest}");
        assert!(
            steepest < 0.2 * largest && steepest < 1.0,
            "neighbouring pixels' displacements differ by {steepest}, the largest is {largest}"
        );
    }

    let face = textured_face();
    let (input, target) = augment_pair(&face, &cfg, &mut Rng::new(4)).unwrap();
    assert!(
        mean_difference(&input, &target) > 0.01,
        "the warp changes the input"
    );
}

#[test]
fn outputs_stay_in_range() {
    let cfg = Augment {
        rotation_degrees: 30.0,
        scale: 0.2,
        shift: 0.2,
        warp: 0.08,
        ..Augment::default()
    };
    let mut rng = Rng::new(9);
    for seed in 0..5 {
        let face = noise_face(seed);
        let (input, target) = augment_pair(&face, &cfg, &mut rng).unwrap();
        for value in input.iter().chain(&target) {
            assert!((0.0..=1.0).contains(value), "{value}");
        }
    }
}

#[test]
fn a_seed_fixes_the_pair() {
    let face = textured_face();
    let cfg = Augment::default();
    let first = augment_pair(&face, &cfg, &mut Rng::new(42)).unwrap();
    let again = augment_pair(&face, &cfg, &mut Rng::new(42)).unwrap();
    let other = augment_pair(&face, &cfg, &mut Rng::new(43)).unwrap();
    assert_eq!(first, again);
    assert_ne!(first.0, other.0);
    assert_ne!(first.1, other.1);

    // Successive pairs from one generator differ.
    let mut rng = Rng::new(42);
    let a = augment_pair(&face, &cfg, &mut rng).unwrap();
    let b = augment_pair(&face, &cfg, &mut rng).unwrap();
    assert_ne!(a, b);
}

#[test]
fn bad_input_is_an_error() {
    let mut rng = Rng::new(0);
    let err = augment_pair(&[0.5; 10], &Augment::default(), &mut rng).unwrap_err();
    assert!(
        err.message.contains("30000") && err.message.contains("not 10"),
        "{err}"
    );
    assert!(affine_only(&[], &Augment::default(), &mut rng).is_err());

    let face = textured_face();
    for cfg in [
        Augment {
            warp: f64::NAN,
            ..Augment::default()
        },
        Augment {
            rotation_degrees: -1.0,
            ..Augment::default()
        },
        Augment {
            scale: 1.0,
            ..Augment::default()
        },
    ] {
        let err = augment_pair(&face, &cfg, &mut rng).unwrap_err();
        assert_eq!(err.op, "augment_pair");
    }
}

#[test]
fn the_pair_with_its_affine_is_the_pair_and_the_loss_weights_follow_that_affine() {
    let face = textured_face();
    let cfg = Augment::default();
    let (input, target) = augment_pair(&face, &cfg, &mut Rng::new(8)).unwrap();
    let (input2, target2, affine) = augment_pair_and_affine(&face, &cfg, &mut Rng::new(8)).unwrap();
    assert_eq!((input, target), (input2, target2.clone()));
    assert_eq!(resample(&face, &affine, None).unwrap(), target2);

    // Unmoved: the eye multiplier exactly on the eye box, the mouth's on the mouth box.
    let still = feature_weights(3.0, 2.0, |x, y| (x, y));
    assert_eq!(still.len(), FACE_LEN);
    for c in 0..3 {
        for y in 0..S {
            for x in 0..S {
                let within = |b: ferrograd_deepfake::faces::CropBox| {
                    (b.left as usize..(b.left + b.width) as usize).contains(&x)
                        && (b.top as usize..(b.top + b.height) as usize).contains(&y)
                };
                let want = if within(EYE_BOX) {
                    3.0
                } else if within(MOUTH_BOX) {
                    2.0
                } else {
                    1.0
                };
                assert_eq!(at(&still, c, x, y), want, "({x}, {y})");
            }
        }
    }
    // Shifted 6 px right and 4 down, the weights move with the face.
    let shift = Affine {
        shift_x: 6.0,
        shift_y: 4.0,
        ..Affine::IDENTITY
    };
    let moved = feature_weights(3.0, 2.0, shift.source_map());
    for y in 4..S {
        for x in 6..S {
            assert_eq!(
                at(&moved, 0, x, y),
                at(&still, 0, x - 6, y - 4),
                "({x}, {y})"
            );
        }
    }
}

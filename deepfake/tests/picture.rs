//! Face grids and strips: faces land in equal cells in order, titles are drawn where asked, and
//! bad input is an error that leaves no file.

use std::path::Path;

use ferrograd_deepfake::faces::{FACE_LEN, FACE_SIZE};
use ferrograd_deepfake::picture::{save_face_grid, save_face_strip};
use image::RgbImage;

/// A face of one flat colour.
fn flat(rgb: [u8; 3]) -> Vec<f32> {
    let plane = FACE_SIZE * FACE_SIZE;
    let mut face = vec![0.0; FACE_LEN];
    for (c, &byte) in rgb.iter().enumerate() {
        face[c * plane..(c + 1) * plane].fill(f32::from(byte) / 255.0);
    }
    face
}

/// The bounding box (left, top, right, bottom) of the pixels of colour `rgb`, and their count.
fn find(picture: &RgbImage, rgb: [u8; 3]) -> Option<((u32, u32, u32, u32), usize)> {
    let mut found: Option<(u32, u32, u32, u32)> = None;
    let mut count = 0;
    for (x, y, pixel) in picture.enumerate_pixels() {
        if pixel.0 == rgb {
            count += 1;
            found = Some(match found {
                None => (x, y, x, y),
                Some((l, t, r, b)) => (l.min(x), t.min(y), r.max(x), b.max(y)),
            });
        }
    }
    found.map(|b| (b, count))
}

/// Whether any pixel in the rectangle is dark text.
fn has_text(picture: &RgbImage, left: u32, top: u32, right: u32, bottom: u32) -> bool {
    (top..bottom).any(|y| (left..right).any(|x| picture.get_pixel(x, y).0 == [30, 30, 30]))
}

const COLOURS: [[u8; 3]; 6] = [
    [200, 10, 10],
    [10, 200, 10],
    [10, 10, 200],
    [200, 200, 10],
    [10, 200, 200],
    [200, 10, 200],
];

#[test]
fn grid_puts_each_face_in_its_cell_with_titles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/grid.png");
    let faces: Vec<Vec<f32>> = COLOURS.iter().map(|&c| flat(c)).collect();
    let rows = vec![
        vec![&faces[0][..], &faces[1][..], &faces[2][..]],
        vec![&faces[3][..], &faces[4][..], &faces[5][..]],
    ];
    let scale = 2;
    save_face_grid(
        &path,
        &rows,
        &[
            "original",
            "reconstruction",
            "swap with a very long title here",
        ],
        &["Bush", "Powell"],
        scale,
    )
    .unwrap();
    let picture = image::open(&path).unwrap().to_rgb8();
    let cell = (FACE_SIZE * scale) as u32;

    let boxes: Vec<(u32, u32, u32, u32)> = COLOURS
        .iter()
        .map(|&c| {
            let (b, count) = find(&picture, c).expect("every face is drawn");
            assert_eq!((b.2 - b.0 + 1, b.3 - b.1 + 1), (cell, cell), "{c:?}: {b:?}");
            assert_eq!(count, (cell * cell) as usize, "{c:?} is one solid square");
            b
        })
        .collect();
    for r in 0..2 {
        for c in 0..3 {
            let b = boxes[r * 3 + c];
            assert_eq!(b.1, boxes[r * 3].1, "a row shares its top");
            assert_eq!(b.0, boxes[c].0, "a column shares its left");
            if c > 0 {
                assert!(b.0 > boxes[r * 3 + c - 1].2, "columns left to right");
            }
        }
    }
    assert!(boxes[3].1 > boxes[0].3, "rows top to bottom");
    let (left, top) = (boxes[0].0, boxes[0].1);
    // Titles above every column, and left of the rows.
    for b in &boxes[..3] {
        assert!(
            has_text(&picture, b.0, 0, b.2 + 1, top),
            "title above {b:?}"
        );
    }
    assert!(has_text(&picture, 0, top, left, top + cell));
    assert!(has_text(&picture, 0, boxes[3].1, left, boxes[3].3));
    // The long title is cut to its column: nothing drawn past the picture's right margin.
    assert!(!has_text(&picture, boxes[2].2 + 1, 0, picture.width(), top));
}

#[test]
fn titles_are_optional_and_values_are_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.png");
    let mut face = flat([0, 0, 0]);
    face[0] = 7.0; // red of pixel (0, 0) above 1: drawn as 255
    face[1] = f32::NAN; // red of pixel (1, 0): drawn as 0
    save_face_grid(&path, &[vec![&face[..]]], &[], &[], 1).unwrap();
    let picture = image::open(&path).unwrap().to_rgb8();
    assert_eq!(
        picture.dimensions(),
        (112, 112),
        "a 6-pixel margin and no title band"
    );
    assert_eq!(picture.get_pixel(6, 6).0, [255, 0, 0]);
    assert_eq!(picture.get_pixel(7, 6).0, [0, 0, 0]);
    assert!(!has_text(&picture, 0, 0, 112, 112));
}

#[test]
fn strip_labels_every_face() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strip.png");
    let faces: Vec<Vec<f32>> = COLOURS[..5].iter().map(|&c| flat(c)).collect();
    let refs: Vec<&[f32]> = faces.iter().map(Vec::as_slice).collect();
    let labels: Vec<String> = (0..5).map(|i| format!("t={:.2}", i as f64 / 4.0)).collect();
    save_face_strip(&path, &refs, &labels, 1).unwrap();
    let picture = image::open(&path).unwrap().to_rgb8();
    let top = find(&picture, COLOURS[0]).unwrap().0 .1;
    let mut last_right = 0;
    for &c in &COLOURS[..5] {
        let (b, _) = find(&picture, c).unwrap();
        assert_eq!(b.1, top, "one row");
        assert!(b.0 > last_right);
        last_right = b.2;
        assert!(
            has_text(&picture, b.0, 0, b.2 + 1, b.1),
            "label above {c:?}"
        );
    }
}

#[test]
fn bad_input_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.png");
    let face = flat([1, 2, 3]);
    let short = [0.5f32; 10];
    let expect_error = |result: Result<(), _>, needle: &str| {
        let err: ferrograd_plot::Error = result.unwrap_err();
        assert_eq!(err.path, path);
        assert!(err.message.contains(needle), "{needle:?} not in: {err}");
        assert!(!Path::new(&path).exists());
    };
    expect_error(save_face_grid(&path, &[], &[], &[], 1), "at least one face");
    expect_error(
        save_face_grid(
            &path,
            &[vec![&face[..]], vec![&face[..], &face[..]]],
            &[],
            &[],
            1,
        ),
        "row 1 has 2 faces",
    );
    expect_error(
        save_face_grid(&path, &[vec![&face[..], &short[..]]], &[], &[], 1),
        "row 0, column 1 has 10 values",
    );
    expect_error(
        save_face_grid(&path, &[vec![&face[..]]], &["a", "b"], &[], 1),
        "2 column titles for 1 columns",
    );
    expect_error(
        save_face_grid(&path, &[vec![&face[..]]], &[], &["a", "b"], 1),
        "2 row titles for 1 rows",
    );
    expect_error(
        save_face_grid(&path, &[vec![&face[..]]], &[], &[], 0),
        "scale",
    );
    expect_error(
        save_face_strip(&path, &[&face[..]], &["a".into(), "b".into()], 1),
        "2 labels for 1 faces",
    );
    let many = vec![&face[..]; 400];
    expect_error(save_face_strip(&path, &many, &[], 1), "too large");
}

//! Pictures of faces: labelled grids (rows of originals, reconstructions and swaps, say) and
//! labelled strips (an interpolation from one face to another), saved as PNG.
//!
//! Drawn with `ferrograd_plot`'s pixel tools and its 5x7 font, and saved atomically like every
//! other picture, so a crash mid-save leaves the previous file whole.

use std::path::Path;

use ferrograd_plot::{
    chw_pixel, draw_magnified, draw_text, fit_text, save_png, text_width, Error as PlotError,
    GLYPH_HEIGHT, TEXT_COLOUR, WHITE,
};
use image::RgbImage;

use crate::faces::{FACE_LEN, FACE_SIZE};

/// White space around the picture and between titles and faces, in pixels.
const MARGIN: usize = 6;
/// White space between faces, in pixels.
const GAP: usize = 4;
/// Larger magnifications give no more detail, only bigger files.
const MAX_SCALE: usize = 16;
/// Either side of a picture at most, in pixels.
const MAX_SIDE: usize = 1 << 15;

/// Saves one CHW face in [0, 1] (3x100x100) as a 100x100 PNG, pixel for pixel (values outside
/// are clamped): what a tool outside the project reads.
pub fn save_face(path: &Path, face: &[f32]) -> Result<(), PlotError> {
    if face.len() != FACE_LEN {
        return Err(PlotError::new(
            path,
            format!(
                "a 3x{FACE_SIZE}x{FACE_SIZE} face has {FACE_LEN} values, not {}",
                face.len()
            ),
        ));
    }
    let plane = FACE_SIZE * FACE_SIZE;
    let picture = RgbImage::from_fn(FACE_SIZE as u32, FACE_SIZE as u32, |x, y| {
        chw_pixel(face, plane, y as usize * FACE_SIZE + x as usize)
    });
    save_png(path, &picture)
}

/// Saves a grid of faces as PNG: `rows[r][c]` is a CHW face in [0, 1] (3x100x100; values
/// outside are clamped, NaN drawn black), each magnified `scale` times (nearest), with
/// `column_titles` centred above the columns and `row_titles` left of the rows. Either list may
/// be empty for no titles; otherwise it needs one title per column (row). Titles too wide for
/// their column are cut short with "..".
pub fn save_face_grid(
    path: &Path,
    rows: &[Vec<&[f32]>],
    column_titles: &[&str],
    row_titles: &[&str],
    scale: usize,
) -> Result<(), PlotError> {
    let fail = |message: String| PlotError::new(path, message);
    if !(1..=MAX_SCALE).contains(&scale) {
        return Err(fail(format!("scale must be 1 to {MAX_SCALE}, not {scale}")));
    }
    let columns = rows.first().map_or(0, Vec::len);
    if columns == 0 {
        return Err(fail("a face grid needs at least one face".to_string()));
    }
    for (r, row) in rows.iter().enumerate() {
        if row.len() != columns {
            return Err(fail(format!(
                "row {r} has {} faces but row 0 has {columns}: rows must be equally long",
                row.len()
            )));
        }
        for (c, face) in row.iter().enumerate() {
            if face.len() != FACE_LEN {
                return Err(fail(format!(
                    "the face at row {r}, column {c} has {} values, a 3x{FACE_SIZE}x{FACE_SIZE} \
                     face has {FACE_LEN}",
                    face.len()
                )));
            }
        }
    }
    if !column_titles.is_empty() && column_titles.len() != columns {
        return Err(fail(format!(
            "{} column titles for {columns} columns (give one per column, or none)",
            column_titles.len()
        )));
    }
    if !row_titles.is_empty() && row_titles.len() != rows.len() {
        return Err(fail(format!(
            "{} row titles for {} rows (give one per row, or none)",
            row_titles.len(),
            rows.len()
        )));
    }

    // Text at twice the font size once faces are magnified, so titles stay readable beside them.
    let text_scale = if scale == 1 { 1 } else { 2 };
    let cell = FACE_SIZE * scale;
    let column_titles: Vec<String> = column_titles
        .iter()
        .map(|title| fit_text(title, cell, text_scale))
        .collect();
    let row_titles: Vec<String> = row_titles
        .iter()
        .map(|title| fit_text(title, 2 * cell, text_scale))
        .collect();
    let title_height = GLYPH_HEIGHT as usize * text_scale;
    let row_title_width = row_titles
        .iter()
        .map(|title| text_width(title, text_scale as i32) as usize)
        .max()
        .unwrap_or(0);
    let top = MARGIN
        + if column_titles.is_empty() {
            0
        } else {
            title_height + MARGIN
        };
    let left = MARGIN
        + if row_titles.is_empty() {
            0
        } else {
            row_title_width + MARGIN
        };
    let width = left + columns * cell + (columns - 1) * GAP + MARGIN;
    let height = top + rows.len() * cell + (rows.len() - 1) * GAP + MARGIN;
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(fail(format!(
            "a {width}x{height} picture is too large (at most {MAX_SIDE} pixels a side): \
             use fewer faces or a smaller scale"
        )));
    }

    let mut picture = RgbImage::from_pixel(width as u32, height as u32, WHITE);
    for (c, title) in column_titles.iter().enumerate() {
        let centre = left + c * (cell + GAP) + cell / 2;
        let x = centre as i32 - text_width(title, text_scale as i32) / 2;
        draw_text(
            &mut picture,
            x,
            MARGIN as i32,
            title,
            text_scale as i32,
            TEXT_COLOUR,
        );
    }
    for (r, row) in rows.iter().enumerate() {
        let cell_top = top + r * (cell + GAP);
        if let Some(title) = row_titles.get(r) {
            let y = cell_top + cell / 2 - title_height / 2;
            draw_text(
                &mut picture,
                MARGIN as i32,
                y as i32,
                title,
                text_scale as i32,
                TEXT_COLOUR,
            );
        }
        for (c, face) in row.iter().enumerate() {
            draw_face(&mut picture, face, left + c * (cell + GAP), cell_top, scale);
        }
    }
    save_png(path, &picture)
}

/// Saves one labelled row of faces (an interpolation "t=0.00" … "t=1.00", say): `labels` go above
/// the faces, one per face, or none at all. See [`save_face_grid`].
pub fn save_face_strip(
    path: &Path,
    faces: &[&[f32]],
    labels: &[String],
    scale: usize,
) -> Result<(), PlotError> {
    if !labels.is_empty() && labels.len() != faces.len() {
        return Err(PlotError::new(
            path,
            format!(
                "{} labels for {} faces (give one per face, or none)",
                labels.len(),
                faces.len()
            ),
        ));
    }
    let titles: Vec<&str> = labels.iter().map(String::as_str).collect();
    save_face_grid(path, &[faces.to_vec()], &titles, &[], scale)
}

/// Draws a CHW face with its top-left corner at (left, top), each pixel `scale` x `scale`.
fn draw_face(picture: &mut RgbImage, face: &[f32], left: usize, top: usize, scale: usize) {
    let (left, top) = (left as i32, top as i32);
    let size = (FACE_SIZE, FACE_SIZE);
    draw_magnified(picture, left, top, size, scale, |y, x| {
        chw_pixel(face, FACE_SIZE * FACE_SIZE, y * FACE_SIZE + x)
    });
}

/// Height of each photograph in a before/after picture, in pixels.
const PHOTO_HEIGHT: u32 = 250;

/// Saves photographs before and after a conversion as PNG: one row per pair, the photo on the
/// left and its converted copy on the right, each scaled to 250 pixels high (triangle filter),
/// with the two `titles` above the columns.
pub fn save_before_after(
    path: &Path,
    pairs: &[(&RgbImage, &RgbImage)],
    titles: [&str; 2],
) -> Result<(), PlotError> {
    if pairs.is_empty() {
        return Err(PlotError::new(path, "no photographs to show"));
    }
    let scaled: Vec<[RgbImage; 2]> = pairs
        .iter()
        .map(|(before, after)| [*before, *after].map(|p| scale_to_height(p, PHOTO_HEIGHT)))
        .collect();
    let column_width = scaled
        .iter()
        .flat_map(|row| row.iter().map(RgbImage::width))
        .max()
        .unwrap_or(0) as usize;
    let title_height = 2 * GLYPH_HEIGHT as usize;
    let top = MARGIN + title_height + MARGIN;
    let photo_height = PHOTO_HEIGHT as usize;
    let width = 2 * MARGIN + 2 * column_width + GAP;
    let height = top + pairs.len() * photo_height + (pairs.len() - 1) * GAP + MARGIN;
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(PlotError::new(
            path,
            format!("a {width}x{height} picture is too large (at most {MAX_SIDE} pixels a side)"),
        ));
    }
    let mut picture = RgbImage::from_pixel(width as u32, height as u32, WHITE);
    for (c, title) in titles.iter().enumerate() {
        let title = fit_text(title, column_width, 2);
        let centre = MARGIN + c * (column_width + GAP) + column_width / 2;
        let x = centre as i32 - text_width(&title, 2) / 2;
        draw_text(&mut picture, x, MARGIN as i32, &title, 2, TEXT_COLOUR);
    }
    for (r, row) in scaled.iter().enumerate() {
        let y = top + r * (photo_height + GAP);
        for (c, photo) in row.iter().enumerate() {
            let x = MARGIN + c * (column_width + GAP) + (column_width - photo.width() as usize) / 2;
            image::imageops::replace(&mut picture, photo, x as i64, y as i64);
        }
    }
    save_png(path, &picture)
}

/// `picture` scaled to `height` pixels high, keeping its aspect ratio.
fn scale_to_height(picture: &RgbImage, height: u32) -> RgbImage {
    let width = (u64::from(picture.width()) * u64::from(height))
        .div_ceil(u64::from(picture.height().max(1)))
        .max(1) as u32;
    image::imageops::resize(
        picture,
        width,
        height,
        image::imageops::FilterType::Triangle,
    )
}

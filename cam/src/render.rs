//! Pictures of class activation maps: bilinear upsampling to the input's size, a perceptual
//! colormap, an overlay on the input, and one labelled grid per run.

use ferrograd_plot::{
    draw_magnified, draw_text, fill_rect, save_png, text_width, Error as PlotError, GLYPH_ADVANCE,
    GLYPH_HEIGHT, TEXT_COLOUR, WHITE,
};
use image::{Rgb, RgbImage};
use std::path::Path;

/// Bilinear upsampling of a `h`x`w` map (row-major) to `out_h`x`out_w`, with pixel centres
/// aligned as PyTorch's `interpolate(align_corners=False)` and OpenCV's `resize` align them.
///
/// Output pixel `d` reads the input at `s = (d + 0.5)·in/out − 0.5` (the centres of both grids
/// line up), clamped to [0, in − 1] so that the border pixels repeat instead of fading; the value
/// is `(1 − λ)·m[⌊s⌋] + λ·m[⌊s⌋ + 1]` with `λ = s − ⌊s⌋`, along rows and then columns.
///
/// # Panics
/// If `map.len() != h·w`, or if the map is empty but the output is not.
pub fn upsample_bilinear(map: &[f64], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f64> {
    assert_eq!(
        map.len(),
        h * w,
        "upsample_bilinear: {} values for a {h}x{w} map",
        map.len()
    );
    if out_h == 0 || out_w == 0 {
        return Vec::new();
    }
    assert!(
        h > 0 && w > 0,
        "upsample_bilinear: cannot upsample an empty {h}x{w} map to {out_h}x{out_w}"
    );
    let ys: Vec<_> = (0..out_h).map(|d| source(d, h, out_h)).collect();
    let xs: Vec<_> = (0..out_w).map(|d| source(d, w, out_w)).collect();
    let mut out = Vec::with_capacity(out_h * out_w);
    for &(y0, y1, ly) in &ys {
        for &(x0, x1, lx) in &xs {
            let top = (1.0 - lx) * map[y0 * w + x0] + lx * map[y0 * w + x1];
            let bottom = (1.0 - lx) * map[y1 * w + x0] + lx * map[y1 * w + x1];
            out.push((1.0 - ly) * top + ly * bottom);
        }
    }
    out
}

/// The two input indices and the weight of the second for output index `d` along an axis of
/// `input` pixels upsampled to `output` (align_corners=False, clamped at the borders).
fn source(d: usize, input: usize, output: usize) -> (usize, usize, f64) {
    let s = ((d as f64 + 0.5) * input as f64 / output as f64 - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(input - 1);
    let i1 = (i0 + 1).min(input - 1);
    // Past the last centre both indices are the last pixel, so the weight no longer matters.
    (i0, i1, s - i0 as f64)
}

/// `map` scaled to [0, 1] by (x − min)/(max − min); a constant map becomes all zeros.
///
/// NaN values are ignored when finding min and max and become 0 (drawn as "no evidence"), so
/// one bad value cannot turn the whole map into NaN. Infinities are likewise left out of the
/// range and end up clamped to 0 (−∞) or 1 (+∞).
pub fn normalize(map: &[f64]) -> Vec<f64> {
    let (min, max) = map
        .iter()
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    let range = max - min;
    // No finite values (range is −∞) or a constant map (range 0): nothing stands out.
    if range <= 0.0 {
        return vec![0.0; map.len()];
    }
    map.iter()
        .map(|&x| {
            if x.is_nan() {
                0.0
            } else {
                ((x - min) / range).clamp(0.0, 1.0)
            }
        })
        .collect()
}

/// A colour for each value in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colormap {
    Viridis,
    Jet,
}

/// Matplotlib's viridis sampled at 0, 1/16, …, 1 (from its 256-entry table, interpolated where
/// k·255/16 falls between entries, then rounded to bytes). Linear interpolation between these
/// 17 anchors stays within 6/255 of the full table.
const VIRIDIS: [[u8; 3]; 17] = [
    [68, 1, 84],
    [72, 24, 106],
    [71, 45, 123],
    [66, 64, 134],
    [59, 82, 139],
    [51, 99, 141],
    [44, 114, 142],
    [38, 129, 142],
    [33, 144, 140],
    [31, 159, 136],
    [40, 174, 128],
    [62, 188, 116],
    [93, 201, 99],
    [130, 211, 76],
    [171, 220, 50],
    [213, 226, 26],
    [253, 231, 37],
];

impl Colormap {
    /// The RGB colour of `value` (clamped to [0, 1]; NaN is drawn as 0).
    pub fn colour(self, value: f64) -> [u8; 3] {
        let v = if value.is_nan() {
            0.0
        } else {
            value.clamp(0.0, 1.0)
        };
        match self {
            Colormap::Viridis => {
                let segments = (VIRIDIS.len() - 1) as f64;
                let position = v * segments;
                let i = (position.floor() as usize).min(VIRIDIS.len() - 2);
                let t = position - i as f64;
                let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
                [0, 1, 2].map(|c| to_byte((1.0 - t) * a[c] as f64 + t * b[c] as f64))
            }
            // The classic jet: each channel is a trapezoid 1.5 − |4v − centre| clipped to
            // [0, 1], centred at 3/4 (red), 1/2 (green) and 1/4 (blue), so it runs dark blue,
            // blue, cyan, yellow, red, dark red.
            Colormap::Jet => {
                let channel =
                    |centre: f64| to_byte(255.0 * (1.5 - (4.0 * v - centre).abs()).clamp(0.0, 1.0));
                [channel(3.0), channel(2.0), channel(1.0)]
            }
        }
    }
}

/// A value in [0, 255] rounded to a byte (clamped, so rounding error cannot wrap around).
fn to_byte(value: f64) -> u8 {
    value.round().clamp(0.0, 255.0) as u8
}

/// A grey level in [0, 1] (clamped; NaN counts as 0, black).
fn unit(value: f32) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        f64::from(value).clamp(0.0, 1.0)
    }
}

/// One cell of a CAM grid, at the input's resolution (28x28 for Fashion-MNIST).
#[derive(Clone, Debug)]
pub enum Cell {
    /// The grey input, values in [0, 1].
    Input(Vec<f32>),
    /// The input overlaid with a heat map already normalized to [0, 1]:
    /// pixel = (1 − opacity)·grey + opacity·colormap(heat).
    Overlay { input: Vec<f32>, heat: Vec<f64> },
    /// Nothing to show (e.g. CAM at a layer other than the last), drawn as a dark cell.
    Empty,
}

// ---- grid layout ----------------------------------------------------------------------------

/// Pixels between cells.
const GAP: usize = 2;
/// White space around the picture and between the titles and the grid.
const MARGIN: i32 = 8;
/// One line of scale-1 text: 8 glyph rows and 2 rows of space.
const LINE_HEIGHT: i32 = 10;
/// Height of the colour bar under the grid.
const BAR_HEIGHT: i32 = 12;
const EMPTY_COLOUR: Rgb<u8> = Rgb([64, 64, 64]);

/// Where everything goes, in pixels, worked out before drawing (None if it overflows i32).
struct Layout {
    /// Top-left corner of the first cell.
    left: i32,
    top: i32,
    /// Side of a magnified cell.
    cell: i32,
    grid_width: i32,
    bar_top: i32,
    label_top: i32,
    width: i32,
    height: i32,
}

impl Layout {
    /// `title_width`: widest row title; `title_lines`: most lines of any column title.
    fn new(
        title_width: i32,
        title_lines: i32,
        cell: usize,
        rows: usize,
        columns: usize,
    ) -> Option<Layout> {
        let cell = i32::try_from(cell).ok()?;
        let span = |n: usize| -> Option<i32> {
            let n = i32::try_from(n).ok()?;
            cell.checked_mul(n)?
                .checked_add((n - 1).checked_mul(GAP as i32)?)
        };
        let grid_width = span(columns)?;
        let grid_height = span(rows)?;
        // Room for the row titles at the left and the column titles above, if there are any.
        let titles_left = if title_width > 0 {
            title_width + MARGIN
        } else {
            0
        };
        let titles_above = if title_lines > 0 {
            title_lines * LINE_HEIGHT + 4
        } else {
            0
        };
        let (left, top) = (MARGIN + titles_left, MARGIN + titles_above);
        let bar_top = top.checked_add(grid_height)? + MARGIN;
        let label_top = bar_top + BAR_HEIGHT + 3;
        Some(Layout {
            left,
            top,
            cell,
            grid_width,
            bar_top,
            label_top,
            width: left.checked_add(grid_width)? + MARGIN,
            height: label_top + GLYPH_HEIGHT + MARGIN,
        })
    }

    /// Top-left corner of cell (row, column).
    fn cell_origin(&self, row: usize, column: usize) -> (i32, i32) {
        let pitch = self.cell + GAP as i32;
        (
            self.left + column as i32 * pitch,
            self.top + row as i32 * pitch,
        )
    }
}

/// A column title as at most two lines that fit `width` pixels at scale 1: one line if it fits,
/// else split at the space that makes the longer line shortest; lines still too wide are cut
/// (a title spilling over its neighbours would be unreadable).
fn title_lines(title: &str, width: i32) -> Vec<String> {
    let fit = |line: &str| -> String {
        let chars = ((width + 1) / GLYPH_ADVANCE).max(0) as usize;
        line.chars().take(chars).collect()
    };
    if text_width(title, 1) <= width {
        return vec![title.to_string()];
    }
    let split = title
        .char_indices()
        .filter(|&(_, c)| c == ' ')
        .map(|(i, _)| (title[..i].trim_end(), title[i + 1..].trim_start()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .min_by_key(|(a, b)| text_width(a, 1).max(text_width(b, 1)));
    match split {
        Some((a, b)) => vec![fit(a), fit(b)],
        None => vec![fit(title)],
    }
}

/// Writes a grid PNG: one row per entry of `rows` (with `row_titles` drawn at the left), one
/// column per entry of `column_titles` (drawn at the top), each cell `size`x`size` pixels before
/// magnification by `scale` (nearest neighbour), overlays drawn with `colormap` at `opacity`.
/// A colour bar for the colormap (0 at the left, 1 at the right) is drawn under the grid.
/// Every row must have `column_titles.len()` cells and every cell `size`² values (error
/// naming the row and column otherwise). Saved atomically.
///
/// Also an error: no rows or columns, `size` or `scale` of 0, `opacity` outside [0, 1], or
/// `row_titles.len() != rows.len()`. Titles are drawn at scale 1; column titles wider than a
/// cell are split over two lines at a space (and cut if still too wide).
#[allow(clippy::too_many_arguments)]
pub fn save_cam_grid(
    path: &Path,
    rows: &[Vec<Cell>],
    row_titles: &[String],
    column_titles: &[String],
    size: usize,
    scale: usize,
    colormap: Colormap,
    opacity: f64,
) -> Result<(), PlotError> {
    let error = |message: String| PlotError::new(path, message);
    if rows.is_empty() || column_titles.is_empty() || size == 0 || scale == 0 {
        return Err(error(format!(
            "{} rows, {} columns, size {size} and scale {scale} must all be at least 1",
            rows.len(),
            column_titles.len()
        )));
    }
    if !(0.0..=1.0).contains(&opacity) {
        return Err(error(format!("opacity {opacity} is not in [0, 1]")));
    }
    if row_titles.len() != rows.len() {
        return Err(error(format!(
            "{} row titles for {} rows",
            row_titles.len(),
            rows.len()
        )));
    }
    let pixels = size
        .checked_mul(size)
        .ok_or_else(|| error(format!("cells of {size}x{size} values are too large")))?;
    for (r, (row, row_title)) in rows.iter().zip(row_titles).enumerate() {
        if row.len() != column_titles.len() {
            return Err(error(format!(
                "row {r} ({row_title:?}) has {} cells, but there are {} column titles",
                row.len(),
                column_titles.len()
            )));
        }
        for (c, (cell, column_title)) in row.iter().zip(column_titles).enumerate() {
            let lengths: &[(&str, usize)] = match cell {
                Cell::Input(input) => &[("input", input.len())],
                Cell::Overlay { input, heat } => &[("input", input.len()), ("heat", heat.len())],
                Cell::Empty => &[],
            };
            if let Some((what, n)) = lengths.iter().find(|(_, n)| *n != pixels) {
                return Err(error(format!(
                    "row {r} ({row_title:?}), column {c} ({column_title:?}): the {what} has {n} \
                     values, not {size}x{size} = {pixels}"
                )));
            }
        }
    }

    let cell = size
        .checked_mul(scale)
        .ok_or_else(|| error(format!("cells of {size}x{scale} pixels are too large")))?;
    let cell_px = i32::try_from(cell).unwrap_or(i32::MAX);
    let titles: Vec<Vec<String>> = column_titles
        .iter()
        .map(|t| title_lines(t, cell_px))
        .collect();
    let lines = titles.iter().map(|l| l.len() as i32).max().unwrap_or(0);
    let title_width = row_titles
        .iter()
        .map(|t| text_width(t, 1))
        .max()
        .unwrap_or(0);
    // Over 65536 pixels a side is surely a mistaken scale (and gigabytes of memory).
    let layout = Layout::new(title_width, lines, cell, rows.len(), column_titles.len())
        .filter(|l| l.width <= 1 << 16 && l.height <= 1 << 16)
        .ok_or_else(|| {
            error(format!(
                "a grid of {} rows and {} columns of {cell}-pixel cells is too large",
                rows.len(),
                column_titles.len()
            ))
        })?;

    let mut picture = RgbImage::from_pixel(layout.width as u32, layout.height as u32, WHITE);
    // Column titles, centred over their cells; shorter titles sit on the grid like longer ones.
    for (c, title) in titles.iter().enumerate() {
        let (x, _) = layout.cell_origin(0, c);
        for (j, line) in title.iter().enumerate() {
            let y = layout.top - 2 - (title.len() - j) as i32 * LINE_HEIGHT;
            let left = x + (layout.cell - text_width(line, 1)) / 2;
            draw_text(&mut picture, left, y, line, 1, TEXT_COLOUR);
        }
    }
    for (r, (row, row_title)) in rows.iter().zip(row_titles).enumerate() {
        let (_, y) = layout.cell_origin(r, 0);
        let text_top = y + (layout.cell - GLYPH_HEIGHT) / 2;
        draw_text(&mut picture, MARGIN, text_top, row_title, 1, TEXT_COLOUR);
        for (c, cell) in row.iter().enumerate() {
            let (x, y) = layout.cell_origin(r, c);
            draw_cell(&mut picture, x, y, cell, size, scale, colormap, opacity);
        }
    }
    // Colour bar: column i of the bar shows the colour of i/(width − 1).
    let span = (layout.grid_width - 1).max(1) as f64;
    for i in 0..layout.grid_width {
        let colour = Rgb(colormap.colour(i as f64 / span));
        fill_rect(
            &mut picture,
            layout.left + i,
            layout.bar_top,
            1,
            BAR_HEIGHT,
            colour,
        );
    }
    draw_text(
        &mut picture,
        layout.left,
        layout.label_top,
        "0",
        1,
        TEXT_COLOUR,
    );
    let one_left = layout.left + layout.grid_width - text_width("1", 1);
    draw_text(
        &mut picture,
        one_left,
        layout.label_top,
        "1",
        1,
        TEXT_COLOUR,
    );
    save_png(path, &picture)
}

/// Draws one (validated) cell with its top-left corner at (left, top), each value a
/// `scale`x`scale` square (nearest-neighbour magnification).
#[allow(clippy::too_many_arguments)]
fn draw_cell(
    picture: &mut RgbImage,
    left: i32,
    top: i32,
    cell: &Cell,
    size: usize,
    scale: usize,
    colormap: Colormap,
    opacity: f64,
) {
    let side = (size * scale) as i32;
    if let Cell::Empty = cell {
        fill_rect(picture, left, top, side, side, EMPTY_COLOUR);
        return;
    }
    let colour_at = |i: usize| -> Rgb<u8> {
        match cell {
            Cell::Input(input) => Rgb([to_byte(255.0 * unit(input[i])); 3]),
            Cell::Overlay { input, heat } => {
                let grey = 255.0 * unit(input[i]);
                let heat = colormap.colour(heat[i]);
                Rgb(heat.map(|h| to_byte((1.0 - opacity) * grey + opacity * f64::from(h))))
            }
            Cell::Empty => EMPTY_COLOUR,
        }
    };
    draw_magnified(picture, left, top, (size, size), scale, |y, x| {
        colour_at(y * size + x)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn assert_close(actual: &[f64], expected: &[f64]) {
        assert_eq!(actual.len(), expected.len());
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!((a - e).abs() < 1e-12, "value {i}: {a} != {e}");
        }
    }

    #[test]
    fn upsampling_a_constant_map_gives_the_constant() {
        let map = vec![0.7; 3 * 2];
        assert_close(&upsample_bilinear(&map, 3, 2, 7, 5), &[0.7; 35]);
    }

    #[test]
    fn upsampling_2x2_to_4x4_matches_align_corners_false() {
        // Output d reads s = (d + 0.5)/2 − 0.5 = −0.25 (clamped to 0), 0.25, 0.75, 1.25 (→ 1).
        let map = [0.0, 1.0, 2.0, 3.0];
        #[rustfmt::skip]
        let expected = [
            0.0, 0.25, 0.75, 1.0,
            0.5, 0.75, 1.25, 1.5,
            1.5, 1.75, 2.25, 2.5,
            2.0, 2.25, 2.75, 3.0,
        ];
        assert_close(&upsample_bilinear(&map, 2, 2, 4, 4), &expected);
    }

    #[test]
    fn equal_sizes_are_the_identity_and_halving_averages_pairs() {
        let map: Vec<f64> = (0..12).map(|i| (i * i) as f64 / 7.0).collect();
        assert_close(&upsample_bilinear(&map, 3, 4, 3, 4), &map);
        // 4 → 2 reads s = (d + 0.5)·2 − 0.5 = 0.5 and 2.5: midway between neighbours.
        assert_close(
            &upsample_bilinear(&[0.0, 1.0, 2.0, 3.0], 1, 4, 1, 2),
            &[0.5, 2.5],
        );
    }

    #[test]
    fn normalize_maps_min_to_0_and_max_to_1() {
        assert_close(&normalize(&[2.0, 4.0, 3.0, 2.5]), &[0.0, 1.0, 0.5, 0.25]);
        assert_close(&normalize(&[-3.0; 5]), &[0.0; 5]);
        // NaN is left out of the range and drawn as 0.
        assert_close(&normalize(&[f64::NAN, 1.0, 3.0]), &[0.0, 0.0, 1.0]);
        assert_close(&normalize(&[f64::NAN; 2]), &[0.0; 2]);
    }

    #[test]
    fn colormap_endpoints() {
        assert_eq!(Colormap::Viridis.colour(0.0), [68, 1, 84]);
        assert_eq!(Colormap::Viridis.colour(1.0), [253, 231, 37]);
        assert_eq!(Colormap::Viridis.colour(0.5), [33, 144, 140]);
        // Halfway between the first two anchors (68,1,84) and (72,24,106).
        assert_eq!(Colormap::Viridis.colour(1.0 / 32.0), [70, 13, 95]);
        assert_eq!(Colormap::Jet.colour(0.0), [0, 0, 128], "dark blue");
        assert_eq!(Colormap::Jet.colour(1.0), [128, 0, 0], "dark red");
        assert_eq!(Colormap::Jet.colour(0.5), [128, 255, 128]);
        for map in [Colormap::Viridis, Colormap::Jet] {
            assert_eq!(map.colour(f64::NAN), map.colour(0.0));
            assert_eq!(map.colour(-1.0), map.colour(0.0));
            assert_eq!(map.colour(7.0), map.colour(1.0));
        }
    }

    #[test]
    fn long_column_titles_split_at_the_most_balanced_space() {
        assert_eq!(title_lines("cam", 60), ["cam"]);
        assert_eq!(title_lines("gradcam conv1", 60), ["gradcam", "conv1"]);
        assert_eq!(
            title_lines("gradcam++ at conv2", 60),
            ["gradcam++", "at conv2"]
        );
        // Still too wide: cut to the 5 characters that fit in 29 pixels.
        assert_eq!(title_lines("abcdefgh", 29), ["abcde"]);
    }

    /// A fresh file path under the system's temporary folder, unique to this test and process.
    fn temp_png(test: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("ferrograd-cam-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (dir.join("grid.png"), dir)
    }

    fn titles(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grid_png_has_the_expected_size_and_cells() {
        let (path, dir) = temp_png("grid");
        let mut corner = vec![0.0f32; 16];
        corner[0] = 1.0;
        let rows = vec![
            vec![
                Cell::Input(vec![0.5; 16]),
                Cell::Overlay {
                    input: vec![0.5; 16],
                    heat: vec![1.0; 16],
                },
                Cell::Input(corner),
            ],
            vec![
                Cell::Empty,
                Cell::Input(vec![1.0; 16]),
                Cell::Overlay {
                    input: vec![0.0; 16],
                    heat: vec![0.0; 16],
                },
            ],
        ];
        let row_titles = titles(&["original", "gradcam"]);
        let column_titles = titles(&["input", "gradcam conv1", "cam"]);
        save_cam_grid(
            &path,
            &rows,
            &row_titles,
            &column_titles,
            4,
            2,
            Colormap::Viridis,
            0.25,
        )
        .unwrap();
        let picture = image::open(&path).unwrap().to_rgb8();
        std::fs::remove_dir_all(&dir).unwrap();

        // By hand: cells are 4·2 = 8 px. Left: margin 8 + widest row title ("original", 8
        // glyphs: 8·6 − 1 = 47) + margin 8 = 63; grid 3·8 + 2·2 = 28; margin 8: width 99.
        // Top: margin 8 + two title lines ("gradcam conv1" is wider than 8 px) 2·10 + 4 = 32;
        // grid 2·8 + 2 = 18; margin 8; bar 12; 3; labels 8; margin 8: height 89.
        assert_eq!(picture.dimensions(), (99, 89));
        let at = |x: u32, y: u32| picture.get_pixel(x, y).0;
        let (left, top) = (63, 32);
        assert_eq!(at(left + 4, top + 4), [128; 3], "grey input");
        // 0.75·127.5 + 0.25·viridis(1) = 95.625 + (63.25, 57.75, 9.25).
        assert_eq!(at(left + 10 + 4, top + 4), [159, 153, 105], "overlay");
        // Nearest neighbour: value (0, 0) covers a 2x2 square, value (1, 0) is black.
        let corner_left = left + 20;
        assert_eq!(at(corner_left, top), [255; 3]);
        assert_eq!(at(corner_left + 1, top + 1), [255; 3]);
        assert_eq!(at(corner_left + 2, top), [0; 3]);
        assert_eq!(at(left + 4, top + 10 + 4), [64; 3], "empty cell");
        assert_eq!(at(left + 14, top + 14), [255; 3], "white input");
        // Input 0 at opacity 0.25 over viridis(0) = (68, 1, 84).
        assert_eq!(at(left + 24, top + 14), [17, 0, 21]);
        assert_eq!(at(left + 8, top + 4), [255; 3], "gap between columns");
        assert_eq!(at(left + 4, top + 8), [255; 3], "gap between rows");
        // Colour bar from 0 at the left to 1 at the right, starting at 32 + 18 + 8 = 58.
        assert_eq!(at(left, 64), [68, 1, 84]);
        assert_eq!(at(left + 27, 64), [253, 231, 37]);
        // Some text was drawn in the title margins.
        assert!((0..32).any(|y| (0..99).any(|x| at(x, y) != [255; 3])));
        assert!((0..63).any(|x| (32..50).any(|y| at(x, y) != [255; 3])));
    }

    #[test]
    fn grid_errors_name_the_row_and_column() {
        let (path, _) = temp_png("errors");
        let row_titles = titles(&["input", "gradcam"]);
        let column_titles = titles(&["a", "b"]);
        let save = |rows: &[Vec<Cell>], row_titles: &[String]| {
            save_cam_grid(
                &path,
                rows,
                row_titles,
                &column_titles,
                2,
                1,
                Colormap::Jet,
                0.5,
            )
            .unwrap_err()
            .message
        };

        let ragged = vec![vec![Cell::Empty, Cell::Empty], vec![Cell::Empty]];
        let message = save(&ragged, &row_titles);
        assert!(message.contains("row 1 (\"gradcam\")"), "{message}");
        assert!(message.contains("1 cells"), "{message}");

        let wrong_heat = vec![
            vec![Cell::Empty, Cell::Input(vec![0.0; 4])],
            vec![
                Cell::Empty,
                Cell::Overlay {
                    input: vec![0.0; 4],
                    heat: vec![0.0; 3],
                },
            ],
        ];
        let message = save(&wrong_heat, &row_titles);
        assert!(
            message.contains("row 1 (\"gradcam\"), column 1 (\"b\")"),
            "{message}"
        );
        assert!(message.contains("heat has 3 values"), "{message}");

        let good = vec![vec![Cell::Empty, Cell::Empty]];
        let message = save(&good, &row_titles);
        assert!(message.contains("2 row titles for 1 rows"), "{message}");
        assert!(!path.exists(), "nothing is written on error");
    }
}

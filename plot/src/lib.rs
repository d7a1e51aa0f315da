//! # ferrograd-plot
//!
//! Pictures for ferrograd: image grids, loss curves and confusion matrices as PNG files, and
//! the pixel tools and bitmap font the course's other pictures (class activation maps, face
//! grids) are drawn with.
//!
//! There is no plotting or font crate here, on purpose: everything is drawn pixel by pixel into
//! an [`image::RgbImage`] (rectangles, Bresenham lines, and a tiny built-in 5x7 bitmap font), then
//! encoded as PNG and saved atomically like the checkpoints (through
//! [`ferrograd_nn::checkpoint::write_atomically`], the workspace's one atomic write, which is
//! why this crate depends on `ferrograd-nn`), so a half-written picture never replaces a good one.
//!
//! What it does not do: touch tensors or models (it draws plain `f32`/`f64` slices), decode
//! pictures, or draw anything but RGB PNGs.

// Every public item is documented: readers learn from this source, and CI turns the
// warning into an error (clippy -D warnings).
#![warn(missing_docs)]

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageFormat, Rgb, RgbImage};

use ferrograd_nn::checkpoint::write_atomically;

/// What went wrong when saving a picture, naming the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The file the error is about.
    pub path: PathBuf,
    /// What is wrong with it, as a sentence.
    pub message: String,
}

impl Error {
    /// An error about the picture at `path`.
    pub fn new(path: &Path, message: impl Into<String>) -> Self {
        Error {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for Error {}

// ---- image grids ----------------------------------------------------------------------------

/// Pixels between the cells of a grid.
const GRID_GAP: usize = 2;
/// Dark grey, so that both black and white images stand out from the gaps.
const GRID_GAP_COLOUR: Rgb<u8> = Rgb([64, 64, 64]);

/// Saves `n` images (NCHW, f32, values clamped to [0, 1]; C = 1 grey or 3 RGB) as one grid PNG:
/// `columns` per row, a 2-pixel dark-grey gap between cells, each pixel magnified `scale` times
/// (nearest). `images.len()` must be n·C·H·W (error otherwise).
///
/// With fewer than `columns` images the grid is only as wide as the images; cells left over in
/// the last row are filled with the gap colour. NaN is drawn as 0 (black).
pub fn save_image_grid(
    path: &Path,
    images: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    columns: usize,
    scale: usize,
) -> Result<(), Error> {
    if channels != 1 && channels != 3 {
        return Err(Error::new(
            path,
            format!("images must have 1 (grey) or 3 (RGB) channels, not {channels}"),
        ));
    }
    if height == 0 || width == 0 || columns == 0 || scale == 0 {
        return Err(Error::new(
            path,
            format!(
                "height ({height}), width ({width}), columns ({columns}) and scale ({scale}) \
                 must all be at least 1"
            ),
        ));
    }
    let per_image = channels * height * width;
    if images.is_empty() || !images.len().is_multiple_of(per_image) {
        return Err(Error::new(
            path,
            format!(
                "{} values are not a whole, non-zero number of {channels}x{height}x{width} \
                 images ({per_image} values each)",
                images.len()
            ),
        ));
    }
    let count = images.len() / per_image;
    let columns = columns.min(count);
    let rows = count.div_ceil(columns);
    let cell_width = width * scale;
    let cell_height = height * scale;
    let grid_width = columns * cell_width + (columns - 1) * GRID_GAP;
    let grid_height = rows * cell_height + (rows - 1) * GRID_GAP;
    // Drawing works in i32 pixel coordinates: far more than any real grid needs.
    if i32::try_from(grid_width).is_err() || i32::try_from(grid_height).is_err() {
        return Err(Error::new(
            path,
            format!("a {grid_width}x{grid_height} grid is too large for an image"),
        ));
    }

    let mut picture = RgbImage::from_pixel(grid_width as u32, grid_height as u32, GRID_GAP_COLOUR);
    let plane = height * width;
    for (index, image) in images.chunks_exact(per_image).enumerate() {
        let left = (index % columns) * (cell_width + GRID_GAP);
        let top = (index / columns) * (cell_height + GRID_GAP);
        let (left, top) = (left as i32, top as i32);
        draw_magnified(&mut picture, left, top, (height, width), scale, |y, x| {
            if channels == 1 {
                let grey = to_byte(image[y * width + x]);
                Rgb([grey, grey, grey])
            } else {
                chw_pixel(image, plane, y * width + x)
            }
        });
    }
    save_png(path, &picture)
}

/// A value in [0, 1] as a byte, rounded; out-of-range values are clamped and NaN counts as 0.
pub fn to_byte(value: f32) -> u8 {
    if value.is_nan() {
        return 0;
    }
    (value.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// The colour of pixel `index` of a CHW RGB image whose channel planes are `plane` values long
/// (NCHW: each channel is a whole plane, so a pixel's channels are `plane` apart).
pub fn chw_pixel(image: &[f32], plane: usize, index: usize) -> Rgb<u8> {
    let channel = |c: usize| to_byte(image[c * plane + index]);
    Rgb([channel(0), channel(1), channel(2)])
}

/// Draws a `height`x`width` image with its top-left corner at (left, top), each pixel a
/// `scale`x`scale` square (nearest-neighbour magnification) of colour `colour_at(y, x)`.
pub fn draw_magnified(
    picture: &mut RgbImage,
    left: i32,
    top: i32,
    (height, width): (usize, usize),
    scale: usize,
    colour_at: impl Fn(usize, usize) -> Rgb<u8>,
) {
    let s = scale as i32;
    for y in 0..height {
        for x in 0..width {
            let colour = colour_at(y, x);
            fill_rect(
                picture,
                left + x as i32 * s,
                top + y as i32 * s,
                s,
                s,
                colour,
            );
        }
    }
}

// ---- line plots -----------------------------------------------------------------------------

const PLOT_WIDTH: u32 = 720;
const PLOT_HEIGHT: u32 = 440;
/// The plotting area inside the picture, in pixels: room is left around it for the title, the
/// tick labels and the x label.
const AREA_LEFT: i32 = 80;
const AREA_RIGHT: i32 = 690;
const AREA_TOP: i32 = 50;
const AREA_BOTTOM: i32 = 380;

/// The background of every picture.
pub const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const BLACK: Rgb<u8> = Rgb([0, 0, 0]);
/// The colour of every picture's text.
pub const TEXT_COLOUR: Rgb<u8> = Rgb([30, 30, 30]);
const GRID_LINE_COLOUR: Rgb<u8> = Rgb([225, 225, 225]);
const FRAME_COLOUR: Rgb<u8> = Rgb([150, 150, 150]);

/// Series colours, distinct from each other and from the greys of the frame (the usual
/// "tab10" palette); more series than colours reuse them in order.
const SERIES_COLOURS: [Rgb<u8>; 8] = [
    Rgb([31, 119, 180]),  // blue
    Rgb([255, 127, 14]),  // orange
    Rgb([44, 160, 44]),   // green
    Rgb([214, 39, 40]),   // red
    Rgb([148, 103, 189]), // purple
    Rgb([140, 86, 75]),   // brown
    Rgb([227, 119, 194]), // pink
    Rgb([23, 190, 207]),  // cyan
];

/// Saves a line chart as PNG (720x440): each series is (label, y-values at x = 1, 2, …), drawn in
/// a distinct colour, with axes, a few y tick labels (numbers), the x range, a title and a
/// legend. Non-finite values are skipped: the line breaks there.
pub fn save_line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    series: &[(&str, &[f64])],
) -> Result<(), Error> {
    let mut picture = RgbImage::from_pixel(PLOT_WIDTH, PLOT_HEIGHT, WHITE);

    let finite = series
        .iter()
        .flat_map(|(_, ys)| ys.iter().copied())
        .filter(|y| y.is_finite());
    let (lowest, highest) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    let y_axis = YAxis::covering(lowest, highest);
    let x_count = series.iter().map(|(_, ys)| ys.len()).max().unwrap_or(0);

    // Horizontal grid lines and y tick labels first, so the data is drawn over them.
    for &tick in &y_axis.ticks {
        let y = y_axis.pixel(tick);
        draw_line(
            &mut picture,
            AREA_LEFT,
            y,
            AREA_RIGHT,
            y,
            1,
            GRID_LINE_COLOUR,
        );
        draw_line(&mut picture, AREA_LEFT - 5, y, AREA_LEFT, y, 1, BLACK);
        let label = y_axis.label(tick);
        let label_x = AREA_LEFT - 9 - text_width(&label, 1);
        draw_text(&mut picture, label_x, y - 3, &label, 1, TEXT_COLOUR);
    }

    for (index, (_, ys)) in series.iter().enumerate() {
        let colour = SERIES_COLOURS[index % SERIES_COLOURS.len()];
        draw_series(&mut picture, ys, x_count, &y_axis, colour);
    }

    draw_frame(&mut picture, x_count);
    let title_x = (PLOT_WIDTH as i32 - text_width(title, 2)) / 2;
    draw_text(&mut picture, title_x, 16, title, 2, TEXT_COLOUR);
    let label_x = (AREA_LEFT + AREA_RIGHT - text_width(x_label, 1)) / 2;
    draw_text(
        &mut picture,
        label_x,
        AREA_BOTTOM + 28,
        x_label,
        1,
        TEXT_COLOUR,
    );
    draw_legend(&mut picture, series);

    save_png(path, &picture)
}

/// The y axis of a plot: the value range, widened to whole tick steps, and the ticks in it.
struct YAxis {
    low: f64,
    high: f64,
    step: f64,
    ticks: Vec<f64>,
}

impl YAxis {
    /// An axis showing `lowest..=highest`, with about five ticks at round numbers.
    fn covering(lowest: f64, highest: f64) -> YAxis {
        let (lowest, highest) = if lowest > highest {
            (0.0, 1.0) // no finite values at all: an empty plot still gets an axis
        } else if lowest == highest {
            // A flat line: open up a little range around it so it has somewhere to sit.
            let half = if lowest == 0.0 {
                1.0
            } else {
                lowest.abs() * 0.1
            };
            (lowest - half, highest + half)
        } else {
            (lowest, highest)
        };
        let step = round_step((highest - lowest) / 5.0);
        // Counting ticks in whole steps (k * step) keeps labels free of rounding noise like
        // 0.30000000000000004.
        let first = (lowest / step + ROUNDING_SLACK).floor() as i64;
        let last = (highest / step - ROUNDING_SLACK).ceil() as i64;
        YAxis {
            low: first as f64 * step,
            high: last as f64 * step,
            step,
            ticks: (first..=last).map(|k| k as f64 * step).collect(),
        }
    }

    /// The picture row of value `y`.
    fn pixel(&self, y: f64) -> i32 {
        let fraction = (y - self.low) / (self.high - self.low);
        AREA_BOTTOM - (fraction * f64::from(AREA_BOTTOM - AREA_TOP)).round() as i32
    }

    /// A tick value written with as many decimals as the step needs (or in e-notation when the
    /// numbers are very large or very small).
    fn label(&self, tick: f64) -> String {
        let largest = self.low.abs().max(self.high.abs());
        if tick == 0.0 {
            "0".to_string()
        } else if largest >= 1e5 || self.step < 1e-3 {
            format!("{tick:.1e}")
        } else {
            let decimals = (-self.step.log10().floor()).max(0.0) as usize;
            format!("{tick:.decimals$}")
        }
    }
}

/// How far a ratio may miss a whole number and still count as it: a value on a tick, give or
/// take a rounding error (-3e-5 / 1e-5 = -3.0000000000000004), must not add a whole empty step.
const ROUNDING_SLACK: f64 = 1e-9;

/// 1, 2 or 5 times a power of ten, the smallest at least `raw`: steps people read easily.
fn round_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power - ROUNDING_SLACK;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// The picture column of x = `index + 1` when there are `count` x positions.
fn x_pixel(index: usize, count: usize) -> i32 {
    if count <= 1 {
        return (AREA_LEFT + AREA_RIGHT) / 2;
    }
    let fraction = index as f64 / (count - 1) as f64;
    AREA_LEFT + (fraction * f64::from(AREA_RIGHT - AREA_LEFT)).round() as i32
}

/// One series as 2-pixel lines between neighbouring finite points; a finite point with no finite
/// neighbour gets a dot so that it still shows.
fn draw_series(picture: &mut RgbImage, ys: &[f64], x_count: usize, axis: &YAxis, colour: Rgb<u8>) {
    let point = |i: usize| (x_pixel(i, x_count), axis.pixel(ys[i]));
    for i in 0..ys.len() {
        if !ys[i].is_finite() {
            continue;
        }
        let next_finite = ys.get(i + 1).is_some_and(|y| y.is_finite());
        let previous_finite = i > 0 && ys[i - 1].is_finite();
        let (x0, y0) = point(i);
        if next_finite {
            let (x1, y1) = point(i + 1);
            draw_line(picture, x0, y0, x1, y1, 2, colour);
        } else if !previous_finite {
            fill_rect(picture, x0 - 2, y0 - 2, 5, 5, colour);
        }
    }
}

/// The frame around the plotting area, and the x range written under its two ends.
fn draw_frame(picture: &mut RgbImage, x_count: usize) {
    let (left, right, top, bottom) = (AREA_LEFT, AREA_RIGHT, AREA_TOP, AREA_BOTTOM);
    draw_line(picture, left, top, right, top, 1, FRAME_COLOUR);
    draw_line(picture, right, top, right, bottom, 1, FRAME_COLOUR);
    // The axes themselves in black, over the frame.
    draw_line(picture, left, top, left, bottom, 1, BLACK);
    draw_line(picture, left, bottom, right, bottom, 1, BLACK);

    if x_count == 0 {
        return;
    }
    let first_x = x_pixel(0, x_count);
    let last_x = x_pixel(x_count - 1, x_count);
    draw_line(picture, first_x, bottom, first_x, bottom + 5, 1, BLACK);
    draw_line(picture, last_x, bottom, last_x, bottom + 5, 1, BLACK);
    let first = "1";
    draw_text(
        picture,
        first_x - text_width(first, 1) / 2,
        bottom + 10,
        first,
        1,
        TEXT_COLOUR,
    );
    if x_count > 1 {
        let last = x_count.to_string();
        let last_left = last_x - text_width(&last, 1) / 2;
        draw_text(picture, last_left, bottom + 10, &last, 1, TEXT_COLOUR);
    }
}

/// A box in the top-right corner of the plotting area: a short line of each series' colour and
/// its label.
fn draw_legend(picture: &mut RgbImage, series: &[(&str, &[f64])]) {
    if series.is_empty() {
        return;
    }
    const SAMPLE: i32 = 20; // length of the colour sample line
    const ROW: i32 = 14;
    let widest = series
        .iter()
        .map(|(label, _)| text_width(label, 1))
        .max()
        .unwrap_or(0);
    let width = 8 + SAMPLE + 6 + widest + 8;
    let height = 6 + ROW * series.len() as i32;
    let left = AREA_RIGHT - 10 - width;
    let top = AREA_TOP + 10;

    fill_rect(picture, left, top, width, height, WHITE);
    draw_line(picture, left, top, left + width, top, 1, FRAME_COLOUR);
    draw_line(
        picture,
        left,
        top + height,
        left + width,
        top + height,
        1,
        FRAME_COLOUR,
    );
    draw_line(picture, left, top, left, top + height, 1, FRAME_COLOUR);
    draw_line(
        picture,
        left + width,
        top,
        left + width,
        top + height,
        1,
        FRAME_COLOUR,
    );

    for (index, (label, _)) in series.iter().enumerate() {
        let colour = SERIES_COLOURS[index % SERIES_COLOURS.len()];
        let row_top = top + 6 + ROW * index as i32;
        let sample_y = row_top + 3;
        draw_line(
            picture,
            left + 8,
            sample_y,
            left + 8 + SAMPLE,
            sample_y,
            2,
            colour,
        );
        draw_text(
            picture,
            left + 8 + SAMPLE + 6,
            row_top,
            label,
            1,
            TEXT_COLOUR,
        );
    }
}

// ---- drawing --------------------------------------------------------------------------------

/// Sets one pixel, ignoring coordinates outside the picture so that callers need not clip.
fn put(picture: &mut RgbImage, x: i32, y: i32, colour: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < picture.width() && (y as u32) < picture.height() {
        picture.put_pixel(x as u32, y as u32, colour);
    }
}

/// Fills a rectangle (clipped to the picture).
pub fn fill_rect(
    picture: &mut RgbImage,
    left: i32,
    top: i32,
    width: i32,
    height: i32,
    colour: Rgb<u8>,
) {
    for y in top..top + height {
        for x in left..left + width {
            put(picture, x, y, colour);
        }
    }
}

/// A straight line from (x0, y0) to (x1, y1) by Bresenham's algorithm, which steps one pixel at
/// a time along the line and keeps the error against the true line below half a pixel.
/// `thickness` squares of pixels are stamped at each step (1 or 2 is what the plots use).
fn draw_line(
    picture: &mut RgbImage,
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
    thickness: i32,
    colour: Rgb<u8>,
) {
    let dx = (x1 - x0).abs();
    let dy = -(y1 - y0).abs();
    let step_x = if x0 < x1 { 1 } else { -1 };
    let step_y = if y0 < y1 { 1 } else { -1 };
    let mut error = dx + dy;
    let (mut x, mut y) = (x0, y0);
    loop {
        fill_rect(picture, x, y, thickness, thickness, colour);
        if x == x1 && y == y1 {
            break;
        }
        let doubled = 2 * error;
        if doubled >= dy {
            error += dy;
            x += step_x;
        }
        if doubled <= dx {
            error += dx;
            y += step_y;
        }
    }
}

// ---- text -----------------------------------------------------------------------------------

/// Glyphs are 5 pixels wide and 8 rows tall: capitals and digits use rows 0-6, row 7 is for the
/// descenders of g, j, p, q, y and the comma.
const GLYPH_WIDTH: i32 = 5;
const GLYPH_ROWS: usize = 8;
/// The height in pixels of a line of text at scale 1 (the glyphs' rows, descenders included).
pub const GLYPH_HEIGHT: i32 = GLYPH_ROWS as i32;
/// A glyph's width plus the one blank column between letters: a character's width at scale 1.
pub const GLYPH_ADVANCE: i32 = GLYPH_WIDTH + 1;

/// The width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: i32) -> i32 {
    let count = text.chars().count() as i32;
    (count * GLYPH_ADVANCE - 1).max(0) * scale
}

/// `text` cut to fit `width` pixels at `scale`, ending in ".." when cut.
pub fn fit_text(text: &str, width: usize, scale: usize) -> String {
    if text_width(text, scale as i32) as usize <= width {
        return text.to_string();
    }
    let mut cut = text.to_string();
    while !cut.is_empty() && text_width(&format!("{cut}.."), scale as i32) as usize > width {
        cut.pop();
    }
    format!("{cut}..")
}

/// Draws `text` with its top-left corner at (left, top), each font pixel a `scale`x`scale` square.
pub fn draw_text(
    picture: &mut RgbImage,
    left: i32,
    top: i32,
    text: &str,
    scale: i32,
    colour: Rgb<u8>,
) {
    for (index, c) in text.chars().enumerate() {
        let glyph_left = left + index as i32 * GLYPH_ADVANCE * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for column in 0..GLYPH_WIDTH {
                // The leftmost column is the highest of the five bits.
                if bits & (0b10000 >> column) != 0 {
                    let x = glyph_left + column * scale;
                    let y = top + row as i32 * scale;
                    fill_rect(picture, x, y, scale, scale, colour);
                }
            }
        }
    }
}

/// The bitmap of `c`: one byte per row, top row first, the low five bits the pixels (read the
/// binary digits and the shape shows). Characters without a glyph are drawn as an empty box.
#[rustfmt::skip]
fn glyph(c: char) -> [u8; GLYPH_ROWS] {
    match c {
        ' ' => [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000],
        '0' => [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110, 0b00000],
        '1' => [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0b00000],
        '2' => [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111, 0b00000],
        '3' => [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110, 0b00000],
        '4' => [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010, 0b00000],
        '5' => [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110, 0b00000],
        '6' => [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110, 0b00000],
        '7' => [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00000],
        '8' => [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110, 0b00000],
        '9' => [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100, 0b00000],
        'A' => [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001, 0b00000],
        'B' => [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110, 0b00000],
        'C' => [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110, 0b00000],
        'D' => [0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100, 0b00000],
        'E' => [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111, 0b00000],
        'F' => [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000, 0b00000],
        'G' => [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111, 0b00000],
        'H' => [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001, 0b00000],
        'I' => [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0b00000],
        'J' => [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100, 0b00000],
        'K' => [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001, 0b00000],
        'L' => [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111, 0b00000],
        'M' => [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001, 0b00000],
        'N' => [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001, 0b00000],
        'O' => [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110, 0b00000],
        'P' => [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000, 0b00000],
        'Q' => [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101, 0b00000],
        'R' => [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001, 0b00000],
        'S' => [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110, 0b00000],
        'T' => [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000],
        'U' => [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110, 0b00000],
        'V' => [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00000],
        'W' => [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010, 0b00000],
        'X' => [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001, 0b00000],
        'Y' => [0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000],
        'Z' => [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111, 0b00000],
        'a' => [0b00000, 0b00000, 0b01110, 0b00001, 0b01111, 0b10001, 0b01111, 0b00000],
        'b' => [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b11110, 0b00000],
        'c' => [0b00000, 0b00000, 0b01110, 0b10000, 0b10000, 0b10001, 0b01110, 0b00000],
        'd' => [0b00001, 0b00001, 0b01101, 0b10011, 0b10001, 0b10001, 0b01111, 0b00000],
        'e' => [0b00000, 0b00000, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110, 0b00000],
        'f' => [0b00110, 0b01001, 0b01000, 0b11100, 0b01000, 0b01000, 0b01000, 0b00000],
        'g' => [0b00000, 0b00000, 0b01111, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110],
        'h' => [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001, 0b00000],
        'i' => [0b00100, 0b00000, 0b01100, 0b00100, 0b00100, 0b00100, 0b01110, 0b00000],
        'j' => [0b00010, 0b00000, 0b00110, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100],
        'k' => [0b10000, 0b10000, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b00000],
        'l' => [0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110, 0b00000],
        'm' => [0b00000, 0b00000, 0b11010, 0b10101, 0b10101, 0b10001, 0b10001, 0b00000],
        'n' => [0b00000, 0b00000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001, 0b00000],
        'o' => [0b00000, 0b00000, 0b01110, 0b10001, 0b10001, 0b10001, 0b01110, 0b00000],
        'p' => [0b00000, 0b00000, 0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000],
        'q' => [0b00000, 0b00000, 0b01111, 0b10001, 0b10001, 0b01111, 0b00001, 0b00001],
        'r' => [0b00000, 0b00000, 0b10110, 0b11001, 0b10000, 0b10000, 0b10000, 0b00000],
        's' => [0b00000, 0b00000, 0b01111, 0b10000, 0b01110, 0b00001, 0b11110, 0b00000],
        't' => [0b01000, 0b01000, 0b11100, 0b01000, 0b01000, 0b01001, 0b00110, 0b00000],
        'u' => [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101, 0b00000],
        'v' => [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00000],
        'w' => [0b00000, 0b00000, 0b10001, 0b10001, 0b10101, 0b10101, 0b01010, 0b00000],
        'x' => [0b00000, 0b00000, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b00000],
        'y' => [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110],
        'z' => [0b00000, 0b00000, 0b11111, 0b00010, 0b00100, 0b01000, 0b11111, 0b00000],
        '.' => [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100, 0b00000],
        ',' => [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b00100, 0b01000],
        ':' => [0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000, 0b00000],
        '-' => [0b00000, 0b00000, 0b00000, 0b01110, 0b00000, 0b00000, 0b00000, 0b00000],
        '+' => [0b00000, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0b00000, 0b00000],
        '=' => [0b00000, 0b00000, 0b11111, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000],
        '_' => [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b11111],
        '(' => [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010, 0b00000],
        ')' => [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000, 0b00000],
        '[' => [0b01110, 0b01000, 0b01000, 0b01000, 0b01000, 0b01000, 0b01110, 0b00000],
        ']' => [0b01110, 0b00010, 0b00010, 0b00010, 0b00010, 0b00010, 0b01110, 0b00000],
        '/' => [0b00000, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b00000, 0b00000],
        '%' => [0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011, 0b00000],
        '\'' => [0b01100, 0b00100, 0b01000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000],
        '!' => [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000, 0b00100, 0b00000],
        '?' => [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b00000, 0b00100, 0b00000],
        '*' => [0b00000, 0b00100, 0b10101, 0b01110, 0b10101, 0b00100, 0b00000, 0b00000],
        _ => [0b11111, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11111, 0b00000],
    }
}

// ---- confusion matrix -----------------------------------------------------------------------

/// Saves a confusion matrix as PNG: `counts[t·k + p]` is how many examples of true class t were
/// predicted as p. Each cell is shaded by the fraction of its row (white 0, dark blue 1) and
/// shows the count; rows are true classes, columns predictions, both labelled with `names`.
pub fn save_confusion_matrix(
    path: &Path,
    counts: &[usize],
    names: &[&str],
    title: &str,
) -> Result<(), Error> {
    let k = names.len();
    if k == 0 || counts.len() != k * k {
        return Err(Error::new(
            path,
            format!(
                "{} counts for {k} classes: need k² = {}",
                counts.len(),
                k * k
            ),
        ));
    }
    const CELL: i32 = 44;
    let label_width = names.iter().map(|n| text_width(n, 1)).max().unwrap_or(0) + 12;
    let (left, top) = (label_width, 60);
    let width = (left + CELL * k as i32 + 20) as u32;
    let height = (top + CELL * k as i32 + 20 + 10 * k as i32) as u32;
    let mut picture = RgbImage::from_pixel(width, height, WHITE);
    draw_text(&mut picture, 10, 12, title, 2, TEXT_COLOUR);
    draw_text(
        &mut picture,
        left,
        34,
        "rows: true class, columns: predicted class (named below)",
        1,
        TEXT_COLOUR,
    );
    for p in 0..k {
        let number = p.to_string();
        draw_text(
            &mut picture,
            left + CELL * p as i32 + (CELL - text_width(&number, 1)) / 2,
            top - 12,
            &number,
            1,
            TEXT_COLOUR,
        );
    }
    for t in 0..k {
        let row_total: usize = counts[t * k..(t + 1) * k].iter().sum();
        draw_text(
            &mut picture,
            6,
            top + CELL * t as i32 + CELL / 2 - 4,
            names[t],
            1,
            TEXT_COLOUR,
        );
        for p in 0..k {
            let n = counts[t * k + p];
            let fraction = if row_total == 0 {
                0.0
            } else {
                n as f64 / row_total as f64
            };
            let shade = |full: f64| (255.0 - (255.0 - full) * fraction) as u8;
            let colour = Rgb([shade(20.0), shade(60.0), shade(140.0)]);
            let (x, y) = (left + CELL * p as i32, top + CELL * t as i32);
            fill_rect(&mut picture, x, y, CELL - 1, CELL - 1, colour);
            let text = n.to_string();
            let ink = if fraction > 0.5 { WHITE } else { TEXT_COLOUR };
            draw_text(
                &mut picture,
                x + (CELL - text_width(&text, 1)) / 2,
                y + CELL / 2 - 4,
                &text,
                1,
                ink,
            );
        }
    }
    // Column labels below, one line each, numbered to keep them short.
    for (p, name) in names.iter().enumerate() {
        let y = top + CELL * k as i32 + 8 + 10 * p as i32;
        draw_text(
            &mut picture,
            left,
            y,
            &format!("column {p}: {name}"),
            1,
            TEXT_COLOUR,
        );
    }
    save_png(path, &picture)
}

// ---- saving ---------------------------------------------------------------------------------

/// An `image` crate error as a sentence: what is wrong, without the Rust debug structs some
/// decoders put in their messages (the PNG decoder says `ChunkType { type: IDAT, critical:
/// true, private: false, reserved: false, safecopy: false } chunk appeared before IHDR chunk`;
/// this says `the PNG data is damaged: IDAT chunk appeared before IHDR chunk`).
pub fn describe_image_error(e: &image::ImageError) -> String {
    use image::ImageError as E;
    use std::error::Error as _;
    match e {
        E::Decoding(d) => {
            let format = match d.format_hint() {
                image::error::ImageFormatHint::Exact(f) => format!("{f:?}").to_uppercase(),
                _ => "image".to_string(),
            };
            match d.source() {
                Some(why) => format!("the {format} data is damaged: {}", plain(&why.to_string())),
                None => format!("the {format} data is damaged"),
            }
        }
        E::Limits(_) => "the picture is too large to decode within the memory limit".into(),
        E::Encoding(_) | E::Parameter(_) | E::Unsupported(_) => plain(&e.to_string()),
        E::IoError(io) => io.to_string(),
    }
}

/// `text` with each Rust debug struct (`Name { field: value, … }`) replaced by what it names:
/// its `type` field when it has one (a PNG chunk's four letters), else its name.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find(" { ") {
        // The identifier just before the brace.
        let before = &rest[..open];
        let start = before
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let name = &before[start..];
        let Some(close) = rest[open..].find('}').map(|i| open + i) else {
            break;
        };
        if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
            out.push_str(&rest[..open + 3]);
            rest = &rest[open + 3..];
            continue;
        }
        let fields = &rest[open + 3..close];
        let shown = fields
            .split(", ")
            .find_map(|f| f.trim().strip_prefix("type: "))
            .unwrap_or(name);
        out.push_str(&before[..start]);
        out.push_str(shown.trim());
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Encodes `picture` as PNG in memory, then writes it atomically (see
/// [`ferrograd_nn::checkpoint::write_atomically`]): a crash mid-save leaves the previous picture, not
/// half a file.
pub fn save_png(path: &Path, picture: &RgbImage) -> Result<(), Error> {
    let mut png = Cursor::new(Vec::new());
    picture.write_to(&mut png, ImageFormat::Png).map_err(|e| {
        Error::new(
            path,
            format!("cannot encode PNG: {}", describe_image_error(&e)),
        )
    })?;
    write_atomically(path, png.get_ref())
        .map_err(|e| Error::new(path, format!("cannot write picture: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_errors_read_as_sentences_without_debug_structs() {
        assert_eq!(
            plain("ChunkType { type: IDAT, critical: true, private: false, reserved: false, safecopy: false } chunk appeared before IHDR chunk"),
            "IDAT chunk appeared before IHDR chunk"
        );
        assert_eq!(plain("no structs here"), "no structs here");
        // A PNG whose first chunk is IDAT, as a damaged file may be.
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 2]);
        bytes.extend_from_slice(b"IDATxx");
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        let e = image::load_from_memory_with_format(&bytes, ImageFormat::Png).unwrap_err();
        let text = describe_image_error(&e);
        assert!(!text.contains('{') && !text.contains("critical"), "{text}");
        assert!(text.contains("PNG") && text.contains("damaged"), "{text}");
    }

    fn pixel(picture: &RgbImage, x: u32, y: u32) -> [u8; 3] {
        picture.get_pixel(x, y).0
    }

    #[test]
    fn grid_has_the_right_size_cells_and_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pictures/grid.png");
        // Five white 1x3x2 grey images, two per row, magnified 3 times: cells of 6x9 pixels.
        let images = vec![1.0f32; 5 * 3 * 2];
        save_image_grid(&path, &images, 1, 3, 2, 2, 3).unwrap();

        let picture = image::open(&path).unwrap().to_rgb8();
        assert_eq!(picture.dimensions(), (2 * 6 + 2, 3 * 9 + 2 * 2));
        // The centre of the first cell, and of the last image (third row, first column).
        assert_eq!(pixel(&picture, 3, 4), [255, 255, 255]);
        assert_eq!(pixel(&picture, 3, 2 * 11 + 4), [255, 255, 255]);
        // The gap between the two columns, and the empty sixth cell.
        assert_eq!(pixel(&picture, 6, 4), [64, 64, 64]);
        assert_eq!(pixel(&picture, 8 + 3, 2 * 11 + 4), [64, 64, 64]);
        let leftovers = std::fs::read_dir(dir.path().join("pictures"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 1, "only grid.png, no temporary file");
    }

    #[test]
    fn grid_reads_nchw_and_clamps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rgb.png");
        // One 3x1x2 image: the red plane is [1, 0], green [0, 2.0 (clamped)], blue [-1, 0.5].
        let images = [1.0, 0.0, 0.0, 2.0, -1.0, 0.5];
        save_image_grid(&path, &images, 3, 1, 2, 8, 1).unwrap();

        let picture = image::open(&path).unwrap().to_rgb8();
        assert_eq!(picture.dimensions(), (2, 1));
        assert_eq!(pixel(&picture, 0, 0), [255, 0, 0]);
        assert_eq!(pixel(&picture, 1, 0), [0, 255, 128]);
    }

    #[test]
    fn grid_rejects_wrong_lengths_and_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.png");
        let err = save_image_grid(&path, &[0.5; 7], 1, 2, 2, 4, 1).unwrap_err();
        assert_eq!(err.path, path);
        assert!(err.message.contains('7'), "{err}");
        assert!(save_image_grid(&path, &[], 1, 2, 2, 4, 1).is_err());
        assert!(save_image_grid(&path, &[0.5; 8], 2, 2, 2, 4, 1).is_err());
        assert!(save_image_grid(&path, &[0.5; 8], 1, 2, 2, 0, 1).is_err());
        assert!(save_image_grid(&path, &[0.5; 8], 1, 2, 2, 4, 0).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn line_plot_is_a_png_with_every_series_colour() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.png");
        let train: Vec<f64> = (0..30).map(|i| 1.0 / (1.0 + i as f64)).collect();
        let mut test: Vec<f64> = train.iter().map(|y| y + 0.05).collect();
        test[3] = f64::NAN;
        test[10] = f64::INFINITY;
        let third = [0.5];
        let series = [
            ("train", &train[..]),
            ("test", &test[..]),
            ("single point", &third[..]),
        ];
        save_line_plot(&path, "Loss (VAE)", "epoch", &series).unwrap();

        let picture = image::open(&path).unwrap().to_rgb8();
        assert_eq!(picture.dimensions(), (PLOT_WIDTH, PLOT_HEIGHT));
        for colour in &SERIES_COLOURS[..3] {
            // Counted inside the plotting area left of the legend, so the lines themselves are
            // what is found.
            let inside = (AREA_LEFT as u32 + 1..AREA_RIGHT as u32 - 200)
                .flat_map(|x| (AREA_TOP as u32 + 1..AREA_BOTTOM as u32).map(move |y| (x, y)))
                .filter(|&(x, y)| picture.get_pixel(x, y) == colour)
                .count();
            assert!(inside > 0, "no pixels of colour {colour:?}");
        }
    }

    #[test]
    fn line_plot_copes_with_empty_flat_and_non_finite_series() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odd.png");
        let flat = [2.0; 5];
        let nothing: [f64; 0] = [];
        let not_finite = [f64::NAN, f64::NEG_INFINITY];
        for series in [
            vec![],
            vec![("flat", &flat[..])],
            vec![("none", &nothing[..]), ("nan", &not_finite[..])],
        ] {
            save_line_plot(&path, "", "", &series).unwrap();
            let picture = image::open(&path).unwrap().to_rgb8();
            assert_eq!(picture.dimensions(), (PLOT_WIDTH, PLOT_HEIGHT));
        }
    }

    #[test]
    fn y_ticks_are_round_numbers_covering_the_data() {
        let axis = YAxis::covering(0.13, 0.92);
        assert_eq!(axis.step, 0.2);
        assert_eq!(axis.ticks.first(), Some(&0.0));
        assert!(axis.high >= 0.92);
        let labels: Vec<String> = axis.ticks.iter().map(|&t| axis.label(t)).collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);

        let big = YAxis::covering(120.0, 4800.0);
        assert_eq!(big.label(big.ticks[1]), "1000");
        // -3e-5 is a tick, give or take rounding: no extra empty step below it.
        let tiny = YAxis::covering(-3e-5, 2e-5);
        assert!((tiny.step - 1e-5).abs() < 1e-12, "step {}", tiny.step);
        assert_eq!(tiny.ticks.len(), 6);
        assert_eq!(tiny.label(tiny.ticks[0]), "-3.0e-5");
        assert_eq!(tiny.label(tiny.ticks[3]), "0");
    }

    #[test]
    fn the_font_has_every_character_the_plots_need() {
        let unknown = glyph('\u{2603}');
        let needed = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-+e_:()/ %";
        for c in needed.chars() {
            assert!(c == ' ' || glyph(c) != unknown, "no glyph for {c:?}");
            assert!(
                glyph(c).iter().all(|row| *row < 0b100000),
                "glyph {c:?} is too wide"
            );
        }
    }

    /// Writes one example of each picture to the temporary folder, to look at by eye:
    /// `cargo test -p ferrograd-models plot::tests::render_examples -- --ignored`.
    #[test]
    #[ignore]
    fn render_examples() {
        let folder = std::env::temp_dir();
        // A 4x4 grid of 16x16 RGB gradients: red across, green down, blue growing per image.
        let (size, count) = (16, 16);
        let mut images = Vec::new();
        for k in 0..count {
            for channel in 0..3 {
                for y in 0..size {
                    for x in 0..size {
                        images.push(match channel {
                            0 => x as f32 / (size - 1) as f32,
                            1 => y as f32 / (size - 1) as f32,
                            _ => k as f32 / (count - 1) as f32,
                        });
                    }
                }
            }
        }
        let grid = folder.join("ferrograd_grid_example.png");
        save_image_grid(&grid, &images, 3, size, size, 4, 4).unwrap();

        let train: Vec<f64> = (0..40)
            .map(|i| 0.25 + 0.9 * (-(i as f64) / 6.0).exp() + 0.01 * (i as f64 * 1.7).sin())
            .collect();
        let test: Vec<f64> = (0..40)
            .map(|i| 0.31 + 0.8 * (-(i as f64) / 7.0).exp() + 0.002 * i as f64)
            .collect();
        let plot = folder.join("ferrograd_loss_example.png");
        let series = [("train loss", &train[..]), ("test loss", &test[..])];
        save_line_plot(
            &plot,
            "VAE loss per epoch (Fashion-MNIST)",
            "epoch",
            &series,
        )
        .unwrap();
        println!("wrote {} and {}", grid.display(), plot.display());
    }
}

//! Pictures of class activation maps: bilinear upsampling to the input's size, a perceptual
//! colormap, an overlay on the input, and one labelled grid per run.

use ferrograd_models::plot::PlotError;
use std::path::Path;

/// Bilinear upsampling of a `h`x`w` map (row-major) to `out_h`x`out_w`, with pixel centres
/// aligned as PyTorch's `interpolate(align_corners=False)` and OpenCV's `resize` align them.
pub fn upsample_bilinear(map: &[f64], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f64> {
    todo!("helper")
}

/// `map` scaled to [0, 1] by (x − min)/(max − min); a constant map becomes all zeros.
pub fn normalize(map: &[f64]) -> Vec<f64> {
    todo!("helper")
}

/// A colour for each value in [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colormap {
    Viridis,
    Jet,
}

impl Colormap {
    /// The RGB colour of `value` (clamped to [0, 1]; NaN is drawn as 0).
    pub fn colour(self, value: f64) -> [u8; 3] {
        todo!("helper")
    }
}

/// One cell of a CAM grid, at the input's resolution (28x28 for Fashion-MNIST).
pub enum Cell {
    /// The grey input, values in [0, 1].
    Input(Vec<f32>),
    /// The input overlaid with a heat map already normalized to [0, 1]:
    /// pixel = (1 − opacity)·grey + opacity·colormap(heat).
    Overlay {
        input: Vec<f32>,
        heat: Vec<f64>,
    },
    /// Nothing to show (e.g. CAM at a layer other than the last), drawn as a dark cell.
    Empty,
}

/// Writes a grid PNG: one row per entry of `rows` (with `row_titles` drawn at the left), one
/// column per entry of `column_titles` (drawn at the top), each cell `size`x`size` pixels before
/// magnification by `scale` (nearest neighbour), overlays drawn with `colormap` at `opacity`.
/// A colour bar for the colormap (0 at the left, 1 at the right) is drawn under the grid.
/// Every row must have `column_titles.len()` cells and every cell `size`² values (error
/// naming the row and column otherwise). Saved atomically.
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
    todo!("helper")
}

//! How faithful a map is to the classifier, measured by masking the input with it.
//!
//! - Average Drop % = 100/N · Σ max(0, Y_i − O_i)/Y_i and Increase in Confidence % = 100/N ·
//!   Σ 1[Y_i < O_i] (Chattopadhyay et al. 2018), where Y_i is the class probability on image i
//!   and O_i the class probability on the image multiplied pixel-wise by its map (upsampled to
//!   the input and normalized to [0, 1]).
//! - Deletion and insertion AUC (Petsiuk et al. 2018, RISE): pixels are removed from the image
//!   (set to 0, Fashion-MNIST's background), or inserted into a blank image, most salient first,
//!   in equal steps; the class probability after each step traces a curve over [0, 1] whose area
//!   (trapezoid rule) is the score. Low deletion and high insertion AUC mean a faithful map.

use ferrograd_engine::Result;

/// Class probabilities of a batch: `images` holds n images of `pixels` values each (row-major,
/// values in [0, 1]); returns the probability of `class` for each.
pub type ProbabilityFn<'a> = dyn FnMut(&[f32], usize, usize) -> Result<Vec<f64>> + 'a;

/// The four figures for one image and one map.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageScores {
    /// Y: the class probability on the image.
    pub probability: f64,
    /// O: the class probability on the image multiplied by its map.
    pub masked_probability: f64,
    pub deletion_auc: f64,
    pub insertion_auc: f64,
}

/// Scores one map. `image` and `heat` have the same length (the input's pixels); `heat` is
/// normalized to [0, 1]. `steps` is the number of deletion/insertion steps (the curves have
/// `steps + 1` points, from nothing removed/inserted to everything). `probability(images, n,
/// class)` is called with whole batches (all the curve's images at once) so it stays fast.
pub fn score_image(
    image: &[f32],
    heat: &[f64],
    class: usize,
    steps: usize,
    probability: &mut ProbabilityFn<'_>,
) -> Result<ImageScores> {
    todo!("helper")
}

/// The figures over many images, as the papers report them.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub images: usize,
    /// Average Drop, in percent (lower is better).
    pub average_drop: f64,
    /// Increase in Confidence, in percent (higher is better).
    pub increase_in_confidence: f64,
    /// Mean deletion AUC (lower is better).
    pub deletion_auc: f64,
    /// Mean insertion AUC (higher is better).
    pub insertion_auc: f64,
}

impl Summary {
    /// Averages per-image scores; an empty slice gives NaN figures and `images: 0`. An image
    /// whose probability Y is 0 contributes a drop of 0 (nothing to lose).
    pub fn of(scores: &[ImageScores]) -> Summary {
        todo!("helper")
    }
}

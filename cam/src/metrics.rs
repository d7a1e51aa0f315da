//! How faithful a map is to the classifier, measured by masking the input with it.
//!
//! - Average Drop % = 100/N · Σ max(0, Y_i − O_i)/Y_i and Increase in Confidence % = 100/N ·
//!   Σ 1\[Y_i < O_i\] (Chattopadhyay et al. 2018), where Y_i is the class probability on image i
//!   and O_i the class probability on the image multiplied pixel-wise by its map (upsampled to
//!   the input and normalized to [0, 1]).
//! - Deletion and insertion AUC (Petsiuk et al. 2018, RISE): pixels are removed from the image
//!   (set to 0, Fashion-MNIST's background), or inserted into a blank image, most salient first,
//!   in equal steps; the class probability after each step traces a curve over [0, 1] whose area
//!   (trapezoid rule) is the score. Low deletion and high insertion AUC mean a faithful map.

use ferrograd_engine::{Error, Result};

const OP: &str = "cam metrics";

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

impl ImageScores {
    /// The relative drop max(0, Y − O)/Y that Average Drop averages; 0 where Y = 0 (nothing
    /// to lose).
    pub fn confidence_drop(&self) -> f64 {
        if self.probability == 0.0 {
            0.0
        } else {
            (self.probability - self.masked_probability).max(0.0) / self.probability
        }
    }

    /// 1 where the masked image raised the class probability (Y < O), else 0: what Increase
    /// in Confidence averages.
    pub fn increased(&self) -> f64 {
        f64::from(u8::from(self.probability < self.masked_probability))
    }
}

/// Scores one map. `image` and `heat` have the same length (the input's pixels); `heat` is
/// normalized to [0, 1]. `steps` is the number of deletion/insertion steps (the curves have
/// `steps + 1` points, from nothing removed/inserted to everything). `probability(images, n,
/// class)` is called with whole batches (all the curve's images at once) so it stays fast.
///
/// Pixels are ranked by heat, highest first (ties keep pixel order, so the result is
/// deterministic); step k of the curves acts on the first m_k = round(k·P/steps) of them
/// (P pixels), so step 0 is the untouched (deletion) or blank (insertion) image and step
/// `steps` the blank or full one. The masked image uses `heat` clamped to [0, 1], which only
/// guards against rounding in the upsampling. `probability` is called once, with the
/// 2 + 2·(steps + 1) images [image, image ⊙ heat, deletion curve, insertion curve].
///
/// Errors if the lengths differ or are 0, `steps` is 0, `heat` has a NaN, or `probability`
/// returns the wrong number of values.
pub fn score_image(
    image: &[f32],
    heat: &[f64],
    class: usize,
    steps: usize,
    probability: &mut ProbabilityFn<'_>,
) -> Result<ImageScores> {
    let batch = curve_images(image, heat, steps)?;
    let count = batch.len() / image.len();
    let p = probability(&batch, count, class)?;
    scores_from_probabilities(&p, steps)
}

/// The images whose class probabilities make one map's scores, [`score_image`]'s batch:
/// [image, image ⊙ heat, deletion curve (steps + 1), insertion curve (steps + 1)], each of the
/// image's pixel count, concatenated. Batching these for many maps into one forward pass is
/// what makes the metrics over a whole test set affordable.
pub fn curve_images(image: &[f32], heat: &[f64], steps: usize) -> Result<Vec<f32>> {
    let pixels = image.len();
    if pixels == 0 || heat.len() != pixels {
        return Err(Error::argument(
            OP,
            format!(
                "the image has {pixels} pixels and the heat map {}: they must be equal and \
                 non-zero",
                heat.len()
            ),
        ));
    }
    if steps == 0 {
        return Err(Error::argument(
            OP,
            "deletion and insertion need at least 1 step",
        ));
    }
    if let Some(i) = heat.iter().position(|h| h.is_nan()) {
        return Err(Error::argument(
            OP,
            format!("the heat map is NaN at pixel {i}"),
        ));
    }

    let order = salience_order(heat);
    let count = images_per_map(steps);
    let mut batch = Vec::with_capacity(count * pixels);
    batch.extend_from_slice(image);
    batch.extend(
        image
            .iter()
            .zip(heat)
            .map(|(&x, &h)| x * h.clamp(0.0, 1.0) as f32),
    );
    // Deletion: each image is the previous one with the next most salient pixels set to 0.
    let mut deleted = image.to_vec();
    let mut done = 0;
    for k in 0..=steps {
        let m = pixels_at_step(k, pixels, steps);
        for &i in &order[done..m] {
            deleted[i] = 0.0;
        }
        done = m;
        batch.extend_from_slice(&deleted);
    }
    // Insertion: from a blank image, the same pixels in the same order come back.
    let mut inserted = vec![0.0f32; pixels];
    done = 0;
    for k in 0..=steps {
        let m = pixels_at_step(k, pixels, steps);
        for &i in &order[done..m] {
            inserted[i] = image[i];
        }
        done = m;
        batch.extend_from_slice(&inserted);
    }
    Ok(batch)
}

/// Images per map in [`curve_images`]: 2 + 2·(steps + 1).
pub fn images_per_map(steps: usize) -> usize {
    2 + 2 * (steps + 1)
}

/// The four figures from the class probabilities of [`curve_images`]' batch, in its order.
pub fn scores_from_probabilities(p: &[f64], steps: usize) -> Result<ImageScores> {
    let count = images_per_map(steps);
    if p.len() != count {
        return Err(Error::argument(
            OP,
            format!(
                "the probability function returned {} values for {count} images",
                p.len()
            ),
        ));
    }
    let curve = steps + 1;
    Ok(ImageScores {
        probability: p[0],
        masked_probability: p[1],
        deletion_auc: trapezoid(&p[2..2 + curve]),
        insertion_auc: trapezoid(&p[2 + curve..]),
    })
}

/// Pixel indices by heat, highest first; the sort is stable, so equal heats keep index order.
fn salience_order(heat: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..heat.len()).collect();
    order.sort_by(|&a, &b| heat[b].total_cmp(&heat[a]));
    order
}

/// m_k = round(k·P/steps), in integers (half rounds up): floor((2kP + steps) / 2·steps).
fn pixels_at_step(k: usize, pixels: usize, steps: usize) -> usize {
    (2 * k * pixels + steps) / (2 * steps)
}

/// Area under `y` sampled at x_k = k/n for k = 0..=n (n = y.len() − 1), by the trapezoid rule:
/// Σ_k (y_{k−1} + y_k)/2 · 1/n.
fn trapezoid(y: &[f64]) -> f64 {
    let n = (y.len() - 1) as f64;
    y.windows(2).map(|w| (w[0] + w[1]) / 2.0).sum::<f64>() / n
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
    /// The standard error of each figure above (sample standard deviation over images / √n;
    /// NaN for fewer than 2 images), in the same order and units.
    pub standard_errors: [f64; 4],
}

impl Summary {
    /// Averages per-image scores; an empty slice gives NaN figures and `images: 0`. An image
    /// whose probability Y is 0 contributes a drop of 0 (nothing to lose).
    pub fn of(scores: &[ImageScores]) -> Summary {
        let n = scores.len() as f64;
        // 0/0 is NaN, which is what an empty slice should give.
        let mean = |f: &dyn Fn(&ImageScores) -> f64| scores.iter().map(f).sum::<f64>() / n;
        let drop = |s: &ImageScores| s.confidence_drop();
        let increased = |s: &ImageScores| s.increased();
        let standard_error = |f: &dyn Fn(&ImageScores) -> f64| {
            let m = mean(f);
            let var = scores.iter().map(|s| (f(s) - m).powi(2)).sum::<f64>() / (n - 1.0);
            if scores.len() < 2 {
                f64::NAN
            } else {
                (var / n).sqrt()
            }
        };
        Summary {
            images: scores.len(),
            average_drop: 100.0 * mean(&drop),
            increase_in_confidence: 100.0 * mean(&increased),
            deletion_auc: mean(&|s| s.deletion_auc),
            insertion_auc: mean(&|s| s.insertion_auc),
            standard_errors: [
                100.0 * standard_error(&drop),
                100.0 * standard_error(&increased),
                standard_error(&|s| s.deletion_auc),
                standard_error(&|s| s.insertion_auc),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in classifier: the "probability" of an image is its mean pixel value, which is
    /// linear, so every curve point can be worked out by hand.
    fn mean_pixel(images: &[f32], n: usize, _class: usize) -> Result<Vec<f64>> {
        let pixels = images.len() / n;
        Ok(images
            .chunks_exact(pixels)
            .map(|image| image.iter().map(|&x| f64::from(x)).sum::<f64>() / pixels as f64)
            .collect())
    }

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 1e-12, "{actual} != {expected}");
    }

    #[test]
    fn scores_by_hand_with_a_mean_pixel_classifier() {
        let image = [0.25f32, 0.5, 0.75, 1.0];
        // Salience order: pixel 1, then 2 and 3 (a tie, kept in index order), then 0.
        let heat = [0.0, 1.0, 0.5, 0.5];
        let mut calls = Vec::new();
        let mut probability = |images: &[f32], n: usize, class: usize| {
            calls.push((n, class));
            mean_pixel(images, n, class)
        };
        let scores = score_image(&image, &heat, 3, 4, &mut probability).unwrap();
        assert_eq!(calls, [(2 + 2 * 5, 3)], "one batched call with every image");

        assert_close(scores.probability, 2.5 / 4.0);
        // (0.25·0 + 0.5·1 + 0.75·0.5 + 1·0.5)/4.
        assert_close(scores.masked_probability, 1.375 / 4.0);
        // Deletion removes 0.5, then 0.75, then 1.0, then 0.25: the curve is
        // (2.5, 2.0, 1.25, 0.25, 0)/4, and its trapezoid area (1/4 per step) is
        // (2.25 + 1.625 + 0.75 + 0.125)/8/4.
        assert_close(scores.deletion_auc, 0.296875);
        // Insertion is the mirror image: (0, 0.5, 1.25, 2.25, 2.5)/4.
        assert_close(scores.insertion_auc, 0.328125);
        // With a linear classifier the two curves add up to Y at every step.
        assert_close(
            scores.deletion_auc + scores.insertion_auc,
            scores.probability,
        );
    }

    #[test]
    fn steps_round_the_pixel_counts() {
        // 4 pixels in 3 steps: round(4k/3) = 0, 1, 3, 4 pixels removed or inserted.
        let image = [1.0f32, 2.0, 3.0, 4.0];
        let heat = [0.1, 0.2, 0.3, 0.4];
        let mut batch = Vec::new();
        let mut probability = |images: &[f32], n: usize, _class: usize| {
            batch = images.to_vec();
            Ok(vec![0.0; n])
        };
        score_image(&image, &heat, 0, 3, &mut probability).unwrap();
        #[rustfmt::skip]
        let expected = [
            1.0, 2.0, 3.0, 4.0, // the image
            0.1, 0.4, 0.90000004, 1.6, // masked (in f32)
            1.0, 2.0, 3.0, 4.0, // deletion, most salient (pixel 3) first
            1.0, 2.0, 3.0, 0.0,
            1.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0, // insertion
            0.0, 0.0, 0.0, 4.0,
            0.0, 2.0, 3.0, 4.0,
            1.0, 2.0, 3.0, 4.0,
        ];
        assert_eq!(batch.len(), expected.len());
        for (i, (a, e)) in batch.iter().zip(expected).enumerate() {
            assert!((a - e).abs() < 1e-6, "value {i}: {a} != {e}");
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        let mut probability = mean_pixel;
        let error = score_image(&[0.5; 4], &[0.5; 3], 0, 2, &mut probability).unwrap_err();
        assert_eq!(error.op, "cam metrics");
        assert!(error.message.contains("4 pixels"), "{}", error.message);
        assert!(score_image(&[], &[], 0, 2, &mut probability).is_err());
        assert!(score_image(&[0.5; 4], &[0.5; 4], 0, 0, &mut probability).is_err());
        let mut short = |_: &[f32], _: usize, _: usize| Ok(vec![0.5]);
        assert!(score_image(&[0.5; 4], &[0.5; 4], 0, 2, &mut short).is_err());
    }

    fn scores(probability: f64, masked: f64, deletion: f64, insertion: f64) -> ImageScores {
        ImageScores {
            probability,
            masked_probability: masked,
            deletion_auc: deletion,
            insertion_auc: insertion,
        }
    }

    #[test]
    fn summary_by_hand() {
        // Drops: (0.8 − 0.6)/0.8 = 0.25 and 0 (the second one gained confidence).
        let summary = Summary::of(&[scores(0.8, 0.6, 0.1, 0.7), scores(0.5, 0.7, 0.3, 0.5)]);
        assert_eq!(summary.images, 2);
        assert_close(summary.average_drop, 12.5);
        assert_close(summary.increase_in_confidence, 50.0);
        assert_close(summary.deletion_auc, 0.2);
        assert_close(summary.insertion_auc, 0.6);

        // Y = 0: nothing to lose, a drop of 0 (not NaN); O > Y still counts as an increase.
        let zero = Summary::of(&[scores(0.0, 0.3, 0.0, 0.0)]);
        assert_close(zero.average_drop, 0.0);
        assert_close(zero.increase_in_confidence, 100.0);

        let empty = Summary::of(&[]);
        assert_eq!(empty.images, 0);
        assert!(empty.average_drop.is_nan() && empty.deletion_auc.is_nan());
    }
}

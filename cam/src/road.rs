//! ROAD, "Remove And Debias" (Rong et al. 2022): deletion curves that do not reward a map for
//! the shape of its holes.
//!
//! Deleting pixels by setting them to 0 draws the map's outline into the image, and the
//! classifier reacts to that outline as much as to the missing evidence (the "class leakage"
//! ROAD names). ROAD instead fills each removed pixel by noisy linear imputation: the value
//! that makes it the weighted mean of its 8 neighbours (direct ones weigh 1/6, diagonal ones
//! 1/12, as in the paper), solved jointly for all removed pixels, plus Gaussian noise
//! (σ = 0.01 of the range here, as in the paper's reference code). The class probability is
//! then read at removal percentiles 10, 20, …, 90, removing the most relevant pixels first
//! (MoRF: a faithful map makes it fall fast, so lower is better) and the least relevant first
//! (LeRF: higher is better).

use ferrograd_engine::{Error, Result, Rng};

use crate::metrics::ProbabilityFn;

/// The removal percentiles of the ROAD curves.
pub const PERCENTILES: [usize; 9] = [10, 20, 30, 40, 50, 60, 70, 80, 90];
/// The imputation's noise, as a standard deviation in pixel units (images in [0, 1]).
pub const NOISE: f64 = 0.01;
/// The most sweeps of the imputation's solve; the system is a discrete Laplace equation, which
/// converges geometrically on 28×28 images well within this many.
const SWEEPS: usize = 500;
/// ω of the successive over-relaxation (1 is plain Gauss–Seidel; below 2 it converges).
const OVER_RELAXATION: f64 = 1.8;

/// One map's ROAD scores: the class probability at each of [`PERCENTILES`], removing the most
/// and the least relevant pixels first, and their means.
#[derive(Clone, Debug, PartialEq)]
pub struct RoadScores {
    pub most_relevant_first: Vec<f64>,
    pub least_relevant_first: Vec<f64>,
}

impl RoadScores {
    /// Mean over the percentiles, MoRF (lower is better).
    pub fn morf(&self) -> f64 {
        self.most_relevant_first.iter().sum::<f64>() / self.most_relevant_first.len() as f64
    }
    /// Mean over the percentiles, LeRF (higher is better).
    pub fn lerf(&self) -> f64 {
        self.least_relevant_first.iter().sum::<f64>() / self.least_relevant_first.len() as f64
    }
    /// (LeRF − MoRF)/2, one number per map (higher is better), as pytorch-grad-cam combines them.
    pub fn combined(&self) -> f64 {
        (self.lerf() - self.morf()) / 2.0
    }
}

/// Fills the pixels where `removed` is true by noisy linear imputation (see the module docs):
/// each removed pixel becomes the weighted mean of its in-image neighbours, removed ones
/// included (a joint solve by Gauss–Seidel from the mean of the kept pixels), then noise.
pub fn impute(image: &[f64], removed: &[bool], side: usize, rng: &mut Rng) -> Vec<f64> {
    assert_eq!(image.len(), side * side, "impute: a {side}x{side} image");
    assert_eq!(removed.len(), image.len(), "impute: one flag per pixel");
    let kept: Vec<f64> = image
        .iter()
        .zip(removed)
        .filter(|(_, r)| !**r)
        .map(|(v, _)| *v)
        .collect();
    let start = if kept.is_empty() {
        0.0
    } else {
        kept.iter().sum::<f64>() / kept.len() as f64
    };
    let mut x: Vec<f64> = image
        .iter()
        .zip(removed)
        .map(|(v, r)| if *r { start } else { *v })
        .collect();
    let holes: Vec<usize> = (0..x.len()).filter(|&i| removed[i]).collect();
    const NEIGHBOURS: [(isize, isize, f64); 8] = [
        (-1, 0, 1.0 / 6.0),
        (1, 0, 1.0 / 6.0),
        (0, -1, 1.0 / 6.0),
        (0, 1, 1.0 / 6.0),
        (-1, -1, 1.0 / 12.0),
        (-1, 1, 1.0 / 12.0),
        (1, -1, 1.0 / 12.0),
        (1, 1, 1.0 / 12.0),
    ];
    for _ in 0..SWEEPS {
        let mut change = 0.0f64;
        for &i in &holes {
            let (r, c) = ((i / side) as isize, (i % side) as isize);
            let (mut sum, mut weight) = (0.0, 0.0);
            for (dr, dc, w) in NEIGHBOURS {
                let (nr, nc) = (r + dr, c + dc);
                if nr >= 0 && nc >= 0 && (nr as usize) < side && (nc as usize) < side {
                    sum += w * x[nr as usize * side + nc as usize];
                    weight += w;
                }
            }
            // Successive over-relaxation: the same fixed point as Gauss–Seidel, reached in
            // far fewer sweeps on this Laplace-like system.
            let step = OVER_RELAXATION * (sum / weight - x[i]);
            change = change.max(step.abs());
            x[i] += step;
        }
        if change < 1e-9 {
            break;
        }
    }
    for &i in &holes {
        x[i] += NOISE * rng.normal();
    }
    x
}

/// ROAD for one image and one map (`heat`, same length as `image`, higher = more relevant).
/// All 18 imputed images go through `probability` in one batch. The noise is drawn from
/// `rng`, so a fixed seed gives the same scores.
pub fn road_scores(
    image: &[f32],
    heat: &[f64],
    class: usize,
    side: usize,
    probability: &mut ProbabilityFn<'_>,
    rng: &mut Rng,
) -> Result<RoadScores> {
    let n = image.len();
    if n == 0 || n != heat.len() || n != side * side {
        return Err(Error::argument(
            "road",
            format!(
                "an image of {n} pixels, a map of {} and a side of {side} do not match",
                heat.len()
            ),
        ));
    }
    if heat.iter().any(|v| v.is_nan()) {
        return Err(Error::argument("road", "the map holds a NaN"));
    }
    // Most relevant first; ties keep pixel order.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| heat[b].total_cmp(&heat[a]));
    let pixels: Vec<f64> = image.iter().map(|&v| v as f64).collect();
    let mut batch = Vec::with_capacity(2 * PERCENTILES.len() * n);
    for most_first in [true, false] {
        for &p in &PERCENTILES {
            let count = (p * n + 50) / 100;
            let mut removed = vec![false; n];
            let chosen: Box<dyn Iterator<Item = &usize>> = if most_first {
                Box::new(order.iter().take(count))
            } else {
                Box::new(order.iter().rev().take(count))
            };
            for &i in chosen {
                removed[i] = true;
            }
            batch.extend(
                impute(&pixels, &removed, side, rng)
                    .iter()
                    .map(|&v| v as f32),
            );
        }
    }
    let count = 2 * PERCENTILES.len();
    let p = probability(&batch, count, class)?;
    if p.len() != count {
        return Err(Error::argument(
            "road",
            format!("{} probabilities for {count} images", p.len()),
        ));
    }
    Ok(RoadScores {
        most_relevant_first: p[..PERCENTILES.len()].to_vec(),
        least_relevant_first: p[PERCENTILES.len()..].to_vec(),
    })
}

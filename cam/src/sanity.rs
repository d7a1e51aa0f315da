//! Sanity checks for explanation methods (Adebayo et al. 2018, "Sanity Checks for Saliency
//! Maps"): a map that explains the model must change when the model does. Cascading
//! randomisation replaces the trained weights with fresh random ones from the head down (the
//! head, then conv3's block, conv2's, conv1's), and at each stage measures the Spearman rank
//! correlation between each image's map on the trained model and on the randomised one. A
//! method whose maps stay correlated when every weight is random is showing the input (edges,
//! bright regions), not the model.

use ferrograd_engine::{Result, Tensor};
use ferrograd_models::classifier::Classifier;
use ferrograd_models::generative::load_module;
use ferrograd_models::quality::mean_and_standard_error;
use ferrograd_nn::nn::{self, Module};
use std::collections::BTreeMap;

/// The stages of the cascade, in order: what is random at each.
pub const STAGES: [&str; 4] = ["head", "head+conv3", "head+conv3+conv2", "all"];

/// Below this mean rank correlation with every weight random, a method passes: its maps
/// depend on the weights. Adebayo et al. judge by eye and by such correlations; 0.5 leaves
/// room for what every map shares (zero background) while failing maps that keep their ranking.
pub const PASS_BELOW: f64 = 0.5;

/// Ranks (1-based) with ties given their average rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            out[o] = rank;
        }
        i = j + 1;
    }
    out
}

/// Spearman's rank correlation: Pearson's correlation of the ranks (ties averaged). Two
/// constant maps, which have no ranking, correlate 1 (nothing changed); one constant map
/// against a varying one, 0.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "spearman: lengths");
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - ma) * (y - mb);
        va += (x - ma) * (x - ma);
        vb += (y - mb) * (y - mb);
    }
    match (va > 0.0, vb > 0.0) {
        (true, true) => cov / (va * vb).sqrt(),
        (false, false) => 1.0,
        _ => 0.0,
    }
}

fn copy(from: &dyn Module, to: &dyn Module) -> Result<()> {
    let saved: BTreeMap<String, Tensor> = nn::state_of(from, "").into_iter().collect();
    load_module(to, "", &saved)
}

/// `random` with the trained weights of `trained` put back into every part the cascade has
/// not reached at `stage` (0: only the head random … 3: everything random).
pub fn randomized(trained: &Classifier, random: Classifier, stage: usize) -> Result<Classifier> {
    let blocks = trained.blocks.len();
    for (i, (t, r)) in trained.blocks.iter().zip(&random.blocks).enumerate() {
        // Block i is random from stage blocks − i on (conv3 at stage 1, conv1 at stage 3).
        if stage < blocks - i {
            copy(t, r)?;
        }
    }
    copy(&trained.decoder, &random.decoder)?;
    Ok(random)
}

/// One (method, layer)'s correlations by stage.
#[derive(Clone, Debug)]
pub struct SanityRow {
    pub method: String,
    pub layer: String,
    /// Per stage of [`STAGES`]: the mean rank correlation over images and its standard error.
    pub correlations: Vec<(f64, f64)>,
    /// The data-randomisation test, when a model trained on permuted labels was given: the
    /// mean rank correlation (± s.e.) between each image's map on the trained model and on
    /// that one.
    pub random_labels: Option<(f64, f64)>,
}

impl SanityRow {
    /// Whether the maps decorrelated once every weight was random.
    pub fn passes(&self) -> bool {
        self.correlations
            .last()
            .is_some_and(|&(m, _)| m < PASS_BELOW)
    }

    /// Whether the maps decorrelated on the model trained on permuted labels; None when that
    /// test was not run.
    pub fn passes_random_labels(&self) -> Option<bool> {
        self.random_labels.map(|(m, _)| m < PASS_BELOW)
    }
}

/// An input-resolution map of one image [1, C, H, W] for a class, on a given model.
pub type MapFn<'a> = dyn Fn(&Classifier, &Tensor, usize) -> Result<Vec<f64>> + 'a;

/// The cascade for one method: `fresh(stage)` builds a new randomly initialised classifier
/// of the same architecture (its seed may depend on the stage), `images` are (image, class)
/// pairs. With `random_labels` (the same architecture trained on permuted labels) the row also
/// holds the data-randomisation test: a method that explains what the model learned gives
/// different maps for a model that learned nothing about the classes. Both tests compare with
/// the same maps on `trained`, made once.
pub fn cascading_randomization(
    trained: &Classifier,
    fresh: &dyn Fn(usize) -> Result<Classifier>,
    random_labels: Option<&Classifier>,
    images: &[(Tensor, usize)],
    map: &MapFn<'_>,
    method: &str,
    layer: &str,
) -> Result<SanityRow> {
    let originals: Vec<Vec<f64>> = images
        .iter()
        .map(|(x, c)| map(trained, x, *c))
        .collect::<Result<_>>()?;
    // The mean rank correlation (± s.e.) of each image's map on `model` with its original.
    let against = |model: &Classifier| -> Result<(f64, f64)> {
        let values: Vec<f64> = images
            .iter()
            .zip(&originals)
            .map(|((x, c), original)| Ok(spearman(original, &map(model, x, *c)?)))
            .collect::<Result<_>>()?;
        Ok(mean_and_standard_error(&values))
    };
    let correlations = (0..STAGES.len())
        .map(|stage| against(&randomized(trained, fresh(stage)?, stage)?))
        .collect::<Result<_>>()?;
    Ok(SanityRow {
        method: method.to_string(),
        layer: layer.to_string(),
        correlations,
        random_labels: random_labels.map(against).transpose()?,
    })
}

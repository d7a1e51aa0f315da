//! The generative models judged by numbers that mean the same everywhere: the VAE's
//! importance-weighted log-likelihood bounds, and every sampler's FID, KID, precision and recall
//! in the feature space of the course's own classifier (see [`crate::quality`]).

use crate::classifier::Classifier;
use crate::data::Split;
use crate::error::{Error, Result};
use crate::generative::{iwae_bound, LikelihoodData, Model, Vae};
use crate::quality::{self, Features, Kid};
use ferrograd_engine::{no_grad, Rng, Tensor};
use ferrograd_nn::nn::Ctx;
use std::path::Path;

/// Images run through the feature classifier at once.
const FEATURE_BATCH: usize = 500;

/// The classifier whose penultimate layer (global average pooling of conv3, 128 values) is the
/// feature space, and the name figures computed in it carry: FID, KID and the rest change with
/// the classifier, so a figure is only comparable with one of the same name.
pub struct FeatureClassifier {
    pub classifier: Classifier,
    /// "fmnist-classifier@" and the first 8 hex digits of the FNV-1a 64 hash of the checkpoint
    /// file's bytes.
    pub name: String,
}

pub use ferrograd_nn::checkpoint::fnv1a64;

impl FeatureClassifier {
    /// Loads a classifier checkpoint written by `ferrograd train classifier`.
    pub fn load(path: &Path) -> Result<FeatureClassifier> {
        let bytes = std::fs::read(path).map_err(|e| Error::File {
            path: path.to_path_buf(),
            message: format!(
                "cannot read the feature classifier: {e} (train one with `ferrograd train \
                 classifier`, or pass another with --features)"
            ),
        })?;
        let (classifier, _, _) = crate::train::load_classifier(path)?;
        Ok(FeatureClassifier {
            classifier,
            name: format!("fmnist-classifier@{:08x}", fnv1a64(&bytes) >> 32),
        })
    }

    /// The 128 penultimate features of each image in `images` [N, 1, 28, 28].
    pub fn features_of(&self, images: &Tensor) -> Result<Vec<f64>> {
        Ok(no_grad(|| {
            let maps = self
                .classifier
                .activations(images, &mut Ctx::eval())?
                .pop()
                .expect("three blocks");
            maps.global_avg_pool2d()
        })?
        .to_vec_f64())
    }

    /// Features of the first `n` images of a split.
    pub fn features_of_split(&self, split: &Split, n: usize) -> Result<Features> {
        let n = n.min(split.len);
        let indices: Vec<usize> = (0..n).collect();
        let mut rows = Vec::new();
        for chunk in indices.chunks(FEATURE_BATCH) {
            let (x, _) = split.batch_at(chunk)?;
            rows.extend(self.features_of(&x)?);
        }
        Features::new(n, rows.len() / n.max(1), rows)
    }

    /// Features of `n` samples of a generative model, drawn from `rng`.
    pub fn features_of_samples(
        &self,
        model: &dyn Model,
        n: usize,
        rng: &mut Rng,
    ) -> Result<Features> {
        let mut rows = Vec::new();
        let mut done = 0;
        while done < n {
            let b = FEATURE_BATCH.min(n - done);
            let samples = model.sample(b, rng).ok_or_else(|| Error::Invalid {
                message: format!(
                    "a {} model does not sample from a prior, so it has no sample quality",
                    model.kind()
                ),
            })??;
            rows.extend(self.features_of(&samples.to(ferrograd_engine::Device::Cpu)?)?);
            done += b;
        }
        Features::new(n, rows.len() / n.max(1), rows)
    }
}

/// How the sample-quality figures are computed.
#[derive(Clone, Copy, Debug)]
pub struct QualitySettings {
    /// Samples drawn from the model (and real images used, where the split has as many).
    pub samples: usize,
    pub kid_subsets: usize,
    pub kid_subset_size: usize,
    /// k of the k-nearest-neighbour manifolds (the paper's 3).
    pub neighbours: usize,
    pub seed: u64,
}

impl Default for QualitySettings {
    fn default() -> Self {
        QualitySettings {
            samples: 10_000,
            kid_subsets: 100,
            kid_subset_size: 1000,
            neighbours: 3,
            seed: 0,
        }
    }
}

/// FID, KID, precision and recall of one set against a reference set.
#[derive(Clone, Debug)]
pub struct SampleQuality {
    pub fid: f64,
    pub kid: Kid,
    pub precision: f64,
    pub recall: f64,
    pub samples: usize,
    pub reference: usize,
}

impl SampleQuality {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "fid": self.fid,
            "kid": self.kid.mean,
            "kid_standard_error": self.kid.standard_error,
            "kid_subsets": self.kid.subsets,
            "kid_subset_size": self.kid.subset_size,
            "precision": self.precision,
            "recall": self.recall,
            "samples": self.samples,
            "reference_images": self.reference,
        })
    }
}

/// The figures of `set` against `reference` (both features): FID, KID over random subsets,
/// precision (`set` inside `reference`'s manifold) and recall (the converse).
pub fn compare_sets(
    set: &Features,
    reference: &Features,
    settings: &QualitySettings,
) -> Result<SampleQuality> {
    let mut rng = Rng::new(settings.seed ^ 0x4b49_4400);
    let (precision, recall) = quality::precision_recall(reference, set, settings.neighbours)?;
    Ok(SampleQuality {
        fid: quality::fid(set, reference)?,
        kid: quality::kid(
            set,
            reference,
            settings.kid_subsets,
            settings.kid_subset_size,
            &mut rng,
        )?,
        precision,
        recall,
        samples: set.n,
        reference: reference.n,
    })
}

/// A model's samples against the test set, and the test set against as many training images
/// (the floor: what real data of the same distribution scores).
pub struct SamplerReport {
    pub feature_classifier: String,
    pub samples: SampleQuality,
    pub floor: SampleQuality,
}

impl SamplerReport {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "feature_classifier": self.feature_classifier,
            "samples_vs_test": self.samples.to_json(),
            "test_vs_train": self.floor.to_json(),
        })
    }
}

/// Draws `settings.samples` samples from `model` and compares them with the test set, and the
/// test set with the training set, in `features`' space.
pub fn sampler_report(
    model: &dyn Model,
    features: &FeatureClassifier,
    test: &Split,
    train: &Split,
    settings: &QualitySettings,
) -> Result<SamplerReport> {
    let mut rng = Rng::new(settings.seed);
    let generated = features.features_of_samples(model, settings.samples, &mut rng)?;
    let test_features = features.features_of_split(test, settings.samples)?;
    let train_features = features.features_of_split(train, test_features.n)?;
    Ok(SamplerReport {
        feature_classifier: features.name.clone(),
        samples: compare_sets(&generated, &test_features, settings)?,
        floor: compare_sets(&test_features, &train_features, settings)?,
    })
}

/// A mean over test images with its standard error.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    pub mean: f64,
    pub standard_error: f64,
}

impl Estimate {
    fn of(values: &[f64]) -> Estimate {
        let (mean, standard_error) = quality::mean_and_standard_error(values);
        Estimate {
            mean,
            standard_error,
        }
    }
}

/// The VAE's likelihood figures on the first `images` test images, in nats per image:
/// the negative ELBO (analytic KL, one draw of z) and, per K, −(the importance-weighted bound),
/// an upper bound on −log p(x) that falls toward it as K grows.
pub struct IwaeReport {
    pub data: LikelihoodData,
    pub images: usize,
    pub negative_elbo: Estimate,
    /// (K, −L_K) for each requested K, the bounds of every K from the same draws (the first K
    /// of the largest K's samples).
    pub bounds: Vec<(usize, Estimate)>,
}

impl IwaeReport {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "data": self.data.describe(),
            "images": self.images,
            "negative_elbo": self.negative_elbo.mean,
            "negative_elbo_standard_error": self.negative_elbo.standard_error,
            "negative_iwae_bounds": self.bounds.iter().map(|(k, e)| serde_json::json!({
                "k": k, "nats": e.mean, "standard_error": e.standard_error,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Images per batch of the importance-sampling loop (each decodes K codes).
const IWAE_IMAGES_PER_BATCH: usize = 16;

/// Computes [`IwaeReport`], calling `progress` with the number of images done.
pub fn iwae_report(
    vae: &Vae,
    test: &Split,
    ks: &[usize],
    images: usize,
    data: LikelihoodData,
    seed: u64,
    mut progress: impl FnMut(usize),
) -> Result<IwaeReport> {
    let k_max = ks.iter().copied().max().unwrap_or(0);
    if k_max == 0 || ks.contains(&0) {
        return Err(Error::Invalid {
            message: format!("the importance-weighted bound needs K ≥ 1 samples, got {ks:?}"),
        });
    }
    let images = images.min(test.len);
    let mut rng = Rng::new(seed);
    let mut per_k: Vec<Vec<f64>> = vec![Vec::with_capacity(images); ks.len()];
    let mut elbos = Vec::with_capacity(images);
    let indices: Vec<usize> = (0..images).collect();
    for chunk in indices.chunks(IWAE_IMAGES_PER_BATCH) {
        let (x, _) = test.batch_at(chunk)?;
        let x = data.prepare(&x.to(vae.device())?, chunk[0])?;
        elbos.extend(vae.negative_elbo_per_image(&x, &mut rng)?);
        for weights in vae.log_importance_weights(&x, k_max, &mut rng)? {
            for (slot, &k) in ks.iter().enumerate() {
                per_k[slot].push(-iwae_bound(&weights, k));
            }
        }
        progress(chunk[chunk.len() - 1] + 1);
    }
    Ok(IwaeReport {
        data,
        images,
        negative_elbo: Estimate::of(&elbos),
        bounds: ks
            .iter()
            .zip(&per_k)
            .map(|(&k, values)| (k, Estimate::of(values)))
            .collect(),
    })
}

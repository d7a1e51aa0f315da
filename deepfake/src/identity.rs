//! A small A-vs-B face classifier, trained from scratch on the real crops, that judges whether a
//! swapped face looks like its target identity.
//!
//! It is trained with the same random rotation, scale, shift and flip as the face-swap model
//! (no warp), so that it judges the face, not where the face sits in the crop.

use crate::augment::{affine_only, Augment};
use crate::faces::batch_tensor;
use crate::model::strided_convs;
use ferrograd_engine::{no_grad, Result, Rng, Tensor};
use ferrograd_nn::nn::{self, Ctx, Linear, Module, Sequential};
use ferrograd_nn::optim::{Adam, Optimizer};

/// Four Conv(k3, s2, p1)-LeakyReLU blocks 3x100x100 → 64x7x7, global average pooling, and a
/// linear layer to two logits (A, B).
pub struct IdentityClassifier {
    features: Sequential,
    head: Linear,
}

/// Training settings of the identity classifier.
#[derive(Clone, Debug)]
pub struct IdentitySettings {
    pub steps: usize,
    /// Faces of each identity per step (so batches are balanced).
    pub per_identity: usize,
    pub lr: f64,
    pub seed: u64,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        IdentitySettings {
            steps: 1500,
            per_identity: 16,
            lr: 1e-3,
            seed: 7,
        }
    }
}

/// The ranges of the identity classifier's settings (`deepfake eval --classifier-steps`).
pub mod ranges {
    use ferrograd_models::settings::Count;

    pub const CLASSIFIER_STEPS: Count =
        Count::new("classifier_steps", "--classifier-steps", 1, 100_000);
    pub const PER_IDENTITY: Count = Count::new("per_identity", "faces per identity", 1, 256);
}

impl IdentitySettings {
    /// Holds the settings to [`ranges`]: an untrained judge (0 steps) would score every swap
    /// by chance. The error names the flag.
    pub fn validate(&self) -> std::result::Result<(), ferrograd_models::Error> {
        ranges::CLASSIFIER_STEPS.check(self.steps)?;
        ranges::PER_IDENTITY.check(self.per_identity)?;
        Ok(())
    }
}

impl IdentityClassifier {
    pub fn new(rng: &mut Rng) -> Result<IdentityClassifier> {
        let channels = [16, 32, 64, 64];
        let features = strided_convs(&channels, rng)?;
        let inputs = channels[channels.len() - 1];
        Ok(IdentityClassifier {
            features,
            head: Linear::new(inputs, 2, rng)?,
        })
    }

    fn logits(&self, x: &Tensor, ctx: &mut Ctx) -> Result<Tensor> {
        let pooled = self.features.forward(x, ctx)?.global_avg_pool2d()?;
        self.head.forward(&pooled.flatten(1)?, ctx)
    }

    /// Trains on `a` (label 0) and `b` (label 1), each step drawing `per_identity` faces of
    /// each at random and augmenting them; returns the last step's cross-entropy.
    pub fn train(
        a: &[Vec<f32>],
        b: &[Vec<f32>],
        settings: &IdentitySettings,
        mut on_step: impl FnMut(usize, f64),
    ) -> Result<IdentityClassifier> {
        settings
            .validate()
            .map_err(|e| ferrograd_engine::Error::argument("identity classifier", e.to_string()))?;
        let mut rng = Rng::new(settings.seed);
        let model = IdentityClassifier::new(&mut rng)?;
        let mut params = nn::params_of(&model.features, "features.");
        params.extend(nn::params_of(&model.head, "head."));
        let mut opt = Adam::new(params, settings.lr);
        let augment = Augment::default();
        let mut ctx = Ctx::train(settings.seed);
        for step in 0..settings.steps {
            let mut faces = Vec::with_capacity(2 * settings.per_identity);
            let mut labels = Vec::with_capacity(2 * settings.per_identity);
            for (label, set) in [a, b].into_iter().enumerate() {
                for _ in 0..settings.per_identity {
                    let face = &set[rng.below(set.len())];
                    faces.push(affine_only(face, &augment, &mut rng)?);
                    labels.push(label);
                }
            }
            let refs: Vec<&[f32]> = faces.iter().map(|f| f.as_slice()).collect();
            let x = batch_tensor(&refs)?;
            let loss = model.logits(&x, &mut ctx)?.cross_entropy(&labels)?;
            loss.backward()?;
            opt.step()?;
            on_step(step, loss.item()?);
        }
        Ok(model)
    }

    /// P(identity B | face) for each face of a [N, 3, 100, 100] batch.
    pub fn probability_b(&self, x: &Tensor) -> Result<Vec<f64>> {
        no_grad(|| {
            let p = self.logits(x, &mut Ctx::eval())?.softmax(1)?.to_vec_f64();
            Ok(p.chunks_exact(2).map(|pair| pair[1]).collect())
        })
    }

    /// Fraction of `faces` the classifier labels `b` (when `b`) or A (otherwise), in batches.
    pub fn fraction_labelled(&self, faces: &[Vec<f32>], b: bool) -> Result<f64> {
        if faces.is_empty() {
            return Ok(f64::NAN);
        }
        let mut hits = 0;
        for chunk in faces.chunks(64) {
            let refs: Vec<&[f32]> = chunk.iter().map(|f| f.as_slice()).collect();
            hits += self
                .probability_b(&batch_tensor(&refs)?)?
                .iter()
                .filter(|&&p| (p > 0.5) == b)
                .count();
        }
        Ok(hits as f64 / faces.len() as f64)
    }

    /// Accuracy on held-out faces of both identities: (correct A + correct B) / (|A| + |B|).
    pub fn accuracy(&self, a: &[Vec<f32>], b: &[Vec<f32>]) -> Result<f64> {
        let correct = self.fraction_labelled(a, false)? * a.len() as f64
            + self.fraction_labelled(b, true)? * b.len() as f64;
        Ok(correct / (a.len() + b.len()) as f64)
    }
}

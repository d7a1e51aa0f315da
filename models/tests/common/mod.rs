//! Fixtures shared by the training tests: a small synthetic dataset.

use ferrograd_engine::Rng;
use ferrograd_models::data::Split;

/// Blurry blobs whose position depends on the label, every pixel multiplied by `scale`.
pub fn synthetic(len: usize, seed: u64, scale: f32) -> Split {
    let mut rng = Rng::new(seed);
    let mut images = Vec::with_capacity(len * 784);
    let mut labels = Vec::with_capacity(len);
    for _ in 0..len {
        let label = rng.below(10);
        let (cy, cx) = (6.0 + 1.6 * label as f64, 14.0 + 4.0 * rng.normal());
        for y in 0..28 {
            for x in 0..28 {
                let d2 = (y as f64 - cy).powi(2) + (x as f64 - cx).powi(2);
                images.push(scale * (-d2 / 18.0).exp() as f32);
            }
        }
        labels.push(label as u8);
    }
    Split {
        images,
        labels,
        len,
    }
}

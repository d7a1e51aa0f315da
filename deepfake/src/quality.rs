//! Image quality measures for faces in [0, 1]: mean absolute error, PSNR and SSIM.
//!
//! They work on plain CHW slices (no tape): evaluation never needs their gradients.

/// Mean over every value of |x − y|.
pub fn mae(x: &[f32], y: &[f32]) -> f64 {
    assert_eq!(x.len(), y.len(), "mae: images of different sizes");
    x.iter()
        .zip(y)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .sum::<f64>()
        / x.len() as f64
}

/// Peak signal-to-noise ratio for a peak of 1: PSNR = 10·log₁₀(1 / MSE) dB (∞ for equal images).
pub fn psnr(x: &[f32], y: &[f32]) -> f64 {
    assert_eq!(x.len(), y.len(), "psnr: images of different sizes");
    let mse = x
        .iter()
        .zip(y)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum::<f64>()
        / x.len() as f64;
    10.0 * (1.0 / mse).log10()
}

/// Side of SSIM's Gaussian window, and its standard deviation (Wang et al. 2004).
const SSIM_WINDOW: usize = 11;
const SSIM_SIGMA: f64 = 1.5;
/// Stabilisers for a dynamic range L = 1: C₁ = (0.01·L)², C₂ = (0.03·L)².
const C1: f64 = 1e-4;
const C2: f64 = 9e-4;

/// Structural similarity of two CHW images (Wang, Bovik, Sheikh, Simoncelli 2004), averaged over
/// channels and over every position where the 11x11 Gaussian window (σ = 1.5) fits:
///
/// SSIM(x, y) = (2μₓμ_y + C₁)(2σₓ_y + C₂) / ((μₓ² + μ_y² + C₁)(σₓ² + σ_y² + C₂)),
///
/// with μ, σ², σₓ_y the window-weighted means, variances and covariance. 1 for equal images.
pub fn ssim(x: &[f32], y: &[f32], channels: usize, height: usize, width: usize) -> f64 {
    assert_eq!(x.len(), channels * height * width, "ssim: x is not C·H·W");
    assert_eq!(y.len(), x.len(), "ssim: images of different sizes");
    assert!(
        height >= SSIM_WINDOW && width >= SSIM_WINDOW,
        "ssim: images smaller than the 11x11 window"
    );
    let half = SSIM_WINDOW as f64 / 2.0 - 0.5;
    let g: Vec<f64> = (0..SSIM_WINDOW)
        .map(|i| (-(i as f64 - half).powi(2) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let norm: f64 = g.iter().sum();
    let g: Vec<f64> = g.iter().map(|v| v / norm).collect();
    let (out_h, out_w) = (height - SSIM_WINDOW + 1, width - SSIM_WINDOW + 1);
    let plane = height * width;
    let mut total = 0.0;
    for c in 0..channels {
        let xs = &x[c * plane..(c + 1) * plane];
        let ys = &y[c * plane..(c + 1) * plane];
        // The window is separable: filter rows, then columns, for each of the five moments.
        let moments: [Vec<f64>; 5] = [
            xs.iter().map(|&v| v as f64).collect(),
            ys.iter().map(|&v| v as f64).collect(),
            xs.iter().map(|&v| (v as f64).powi(2)).collect(),
            ys.iter().map(|&v| (v as f64).powi(2)).collect(),
            xs.iter()
                .zip(ys)
                .map(|(&a, &b)| a as f64 * b as f64)
                .collect(),
        ];
        let [mean_x, mean_y, square_x, square_y, product] =
            moments.map(|m| separable_valid(&m, height, width, &g));
        for i in 0..out_h * out_w {
            let (mx, my) = (mean_x[i], mean_y[i]);
            let vx = square_x[i] - mx * mx;
            let vy = square_y[i] - my * my;
            let cov = product[i] - mx * my;
            total += (2.0 * mx * my + C1) * (2.0 * cov + C2)
                / ((mx * mx + my * my + C1) * (vx + vy + C2));
        }
    }
    total / (channels * out_h * out_w) as f64
}

/// "Valid" 2-D filtering of an h×w plane by the separable kernel g ⊗ g.
fn separable_valid(m: &[f64], height: usize, width: usize, g: &[f64]) -> Vec<f64> {
    let k = g.len();
    let out_w = width - k + 1;
    let out_h = height - k + 1;
    let mut rows = vec![0.0; height * out_w];
    for y in 0..height {
        for x in 0..out_w {
            rows[y * out_w + x] = (0..k).map(|i| g[i] * m[y * width + x + i]).sum();
        }
    }
    let mut out = vec![0.0; out_h * out_w];
    for y in 0..out_h {
        for x in 0..out_w {
            out[y * out_w + x] = (0..k).map(|i| g[i] * rows[(y + i) * out_w + x]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ferrograd_engine::Rng::new(seed);
        (0..n).map(|_| rng.uniform() as f32).collect()
    }

    #[test]
    fn mae_and_psnr_by_hand() {
        let x = [0.0f32, 0.5, 1.0, 0.25];
        let y = [0.1f32, 0.5, 0.9, 0.25];
        assert!((mae(&x, &y) - 0.05).abs() < 1e-7);
        // MSE = (0.01 + 0.01) / 4 = 0.005 → 10·log10(200) = 23.0103 dB.
        assert!((psnr(&x, &y) - 23.010_299_956_639_813).abs() < 1e-5);
        assert!(psnr(&x, &x).is_infinite());
    }

    #[test]
    fn ssim_is_one_for_equal_images_and_falls_with_noise() {
        let x = noise(3 * 20 * 20, 1);
        assert!((ssim(&x, &x, 3, 20, 20) - 1.0).abs() < 1e-12);
        let slightly: Vec<f32> = x
            .iter()
            .zip(noise(x.len(), 2))
            .map(|(a, n)| (a + 0.05 * (n - 0.5)).clamp(0.0, 1.0))
            .collect();
        let unrelated = noise(x.len(), 3);
        let (s1, s2) = (
            ssim(&x, &slightly, 3, 20, 20),
            ssim(&x, &unrelated, 3, 20, 20),
        );
        assert!(s1 < 1.0 && s1 > 0.9, "small noise: {s1}");
        assert!(s2 < 0.1, "unrelated noise: {s2}");
    }

    #[test]
    fn ssim_of_a_constant_shift_is_the_luminance_term() {
        // y = x + d on a constant image: σ terms are 0, so SSIM = (2μ(μ+d) + C₁)/(μ² + (μ+d)² + C₁).
        let x = vec![0.4f32; 12 * 12];
        let y = vec![0.5f32; 12 * 12];
        let expected = (2.0 * 0.4 * 0.5 + C1) / (0.16 + 0.25 + C1);
        assert!((ssim(&x, &y, 1, 12, 12) - expected).abs() < 1e-6);
    }

    #[test]
    fn the_training_loss_dssim_is_this_ssim_differentiably() {
        // nn's DSSIM builds SSIM from depthwise convolutions; this one from plain loops.
        use ferrograd_engine::{DType, Tensor};
        let (c, h, w) = (3, 17, 23);
        let x = noise(c * h * w, 5);
        let y: Vec<f32> = x
            .iter()
            .zip(noise(x.len(), 6))
            .map(|(a, n)| (0.7 * a + 0.3 * n).clamp(0.0, 1.0))
            .collect();
        let tensor = |v: &[f32]| {
            let values: Vec<f64> = v.iter().map(|&a| f64::from(a)).collect();
            Tensor::from_f64s(&values, &[1, c, h, w], DType::F64).unwrap()
        };
        let dssim = ferrograd_nn::loss::dssim(&tensor(&x), &tensor(&y))
            .unwrap()
            .item()
            .unwrap();
        let want = ssim(&x, &y, c, h, w);
        assert!(want > 0.3 && want < 0.95, "{want}");
        assert!(
            (1.0 - 2.0 * dssim - want).abs() < 1e-12,
            "{dssim} vs {want}"
        );
    }
}

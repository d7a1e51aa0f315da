//! The sample-quality figures against what they must satisfy by construction: closed forms,
//! an independent matrix square root, and unbiasedness over seeds.

use ferrograd_engine::Rng;
use ferrograd_models::quality::{
    fid, frechet_distance, kid, mean_and_standard_error, mmd2_unbiased, precision_recall,
    sqrtm_psd, symmetric_eigen, Features,
};

fn gaussian(n: usize, d: usize, shift: f64, scale: f64, rng: &mut Rng) -> Features {
    let rows = (0..n * d).map(|_| scale * rng.normal() + shift).collect();
    Features::new(n, d, rows).unwrap()
}

fn random_spd(n: usize, rng: &mut Rng) -> Vec<f64> {
    // BᵀB + 0.1·I: symmetric positive definite, condition number in the hundreds.
    let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            a[i * n + j] = (0..n).map(|k| b[k * n + i] * b[k * n + j]).sum::<f64>()
                + if i == j { 0.1 } else { 0.0 };
        }
    }
    a
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            for j in 0..n {
                c[i * n + j] += a[i * n + k] * b[k * n + j];
            }
        }
    }
    c
}

/// The inverse by Gauss–Jordan elimination with partial pivoting.
fn inverse(a: &[f64], n: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut inv = vec![0.0; n * n];
    (0..n).for_each(|i| inv[i * n + i] = 1.0);
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&x, &y| m[x * n + col].abs().total_cmp(&m[y * n + col].abs()))
            .unwrap();
        for k in 0..n {
            m.swap(col * n + k, pivot * n + k);
            inv.swap(col * n + k, pivot * n + k);
        }
        let p = m[col * n + col];
        for k in 0..n {
            m[col * n + k] /= p;
            inv[col * n + k] /= p;
        }
        for r in 0..n {
            if r != col {
                let f = m[r * n + col];
                for k in 0..n {
                    m[r * n + k] -= f * m[col * n + k];
                    inv[r * n + k] -= f * inv[col * n + k];
                }
            }
        }
    }
    inv
}

/// The principal square root by the Denman–Beavers iteration (Y ← (Y + Z⁻¹)/2,
/// Z ← (Z + Y⁻¹)/2 from Y = A, Z = I): no eigendecomposition anywhere, so an independent
/// reference for the one FID uses.
fn sqrtm_denman_beavers(a: &[f64], n: usize) -> Vec<f64> {
    let mut y = a.to_vec();
    let mut z = vec![0.0; n * n];
    (0..n).for_each(|i| z[i * n + i] = 1.0);
    for _ in 0..100 {
        let (yi, zi) = (inverse(&y, n), inverse(&z, n));
        let next_y: Vec<f64> = y.iter().zip(&zi).map(|(a, b)| 0.5 * (a + b)).collect();
        let next_z: Vec<f64> = z.iter().zip(&yi).map(|(a, b)| 0.5 * (a + b)).collect();
        let change: f64 = next_y.iter().zip(&y).map(|(a, b)| (a - b).abs()).sum();
        y = next_y;
        z = next_z;
        if change < 1e-15 {
            break;
        }
    }
    y
}

#[test]
fn the_square_root_inside_fid_matches_an_independent_one_to_1e_8() {
    let mut rng = Rng::new(11);
    for n in [2, 7, 24] {
        let a = random_spd(n, &mut rng);
        let ours = sqrtm_psd(&a, n).unwrap();
        let reference = sqrtm_denman_beavers(&a, n);
        let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (x, y)) in ours.iter().zip(&reference).enumerate() {
            assert!((x - y).abs() < 1e-8, "n={n}, entry {i}: {x} against {y}");
        }
        let squared = matmul(&ours, &ours, n);
        for (i, (x, y)) in squared.iter().zip(&a).enumerate() {
            assert!(
                (x - y).abs() < 1e-10 * scale,
                "n={n}, (S·S − A) at {i}: {x} against {y}"
            );
        }
    }
}

#[test]
fn eigendecomposition_reconstructs_a_symmetric_matrix_with_orthonormal_vectors() {
    let mut rng = Rng::new(3);
    let n = 12;
    let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
    let a: Vec<f64> = (0..n * n)
        .map(|ij| b[(ij / n) * n + ij % n] + b[(ij % n) * n + ij / n])
        .collect();
    let (lambda, v) = symmetric_eigen(&a, n).unwrap();
    for i in 0..n {
        for j in 0..n {
            let back: f64 = (0..n)
                .map(|k| v[i * n + k] * lambda[k] * v[j * n + k])
                .sum();
            assert!((back - a[i * n + j]).abs() < 1e-12, "A[{i},{j}]");
            let vtv: f64 = (0..n).map(|k| v[k * n + i] * v[k * n + j]).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((vtv - want).abs() < 1e-12, "VᵀV[{i},{j}]");
        }
    }
}

#[test]
fn a_non_symmetric_or_indefinite_matrix_is_refused() {
    assert!(symmetric_eigen(&[1.0, 2.0, 0.0, 1.0], 2).is_err());
    assert!(sqrtm_psd(&[1.0, 0.0, 0.0, -1.0], 2).is_err());
    assert!(symmetric_eigen(&[1.0, 2.0, 3.0], 2).is_err());
}

#[test]
fn fid_of_a_set_against_itself_is_zero_and_fid_is_symmetric() {
    let mut rng = Rng::new(5);
    let a = gaussian(400, 6, 0.0, 1.0, &mut rng);
    let b = gaussian(300, 6, 0.3, 1.5, &mut rng);
    let self_fid = fid(&a, &a).unwrap();
    assert!(self_fid.abs() < 1e-9, "FID(a, a) = {self_fid}");
    let (ab, ba) = (fid(&a, &b).unwrap(), fid(&b, &a).unwrap());
    assert!(ab > 0.5, "two different Gaussians: FID {ab}");
    assert!(
        (ab - ba).abs() < 1e-9 * ab,
        "FID(a, b) = {ab}, FID(b, a) = {ba}"
    );
}

#[test]
fn frechet_distance_matches_the_closed_form_for_diagonal_covariances() {
    // Diagonal covariances: tr (Σ₁Σ₂)^½ = Σ σ₁σ₂, so FD = Σ (μ₁ − μ₂)² + (σ₁ − σ₂)².
    let d = 4;
    let (mu1, mu2) = (vec![0.0, 1.0, 2.0, 3.0], vec![0.5, 1.0, 1.0, 3.0]);
    let (s1, s2) = ([1.0, 2.0, 0.5, 3.0], [2.0, 2.0, 1.5, 0.1]);
    let diag = |s: &[f64]| {
        let mut c = vec![0.0; d * d];
        (0..d).for_each(|i| c[i * d + i] = s[i] * s[i]);
        c
    };
    let fd = frechet_distance(&mu1, &diag(&s1), &mu2, &diag(&s2)).unwrap();
    let want: f64 = (0..d)
        .map(|i| (mu1[i] - mu2[i]).powi(2) + (s1[i] - s2[i]).powi(2))
        .sum();
    assert!((fd - want).abs() < 1e-12, "{fd} against {want}");
}

#[test]
fn kid_is_unbiased_on_two_samples_of_one_distribution() {
    // Over many seeds, the unbiased MMD² of two samples of the same Gaussian averages to 0
    // within its standard error; a shifted distribution stands far above it.
    let mut rng = Rng::new(17);
    let same: Vec<f64> = (0..200)
        .map(|_| {
            let x = gaussian(40, 5, 0.0, 1.0, &mut rng);
            let y = gaussian(40, 5, 0.0, 1.0, &mut rng);
            mmd2_unbiased(&x, &y).unwrap()
        })
        .collect();
    let (mean, se) = mean_and_standard_error(&same);
    assert!(
        mean.abs() < 3.0 * se,
        "mean MMD² {mean} ± {se} over 200 seeds"
    );
    // The biased (V-statistic) estimator would sit well above 0 here: check the test can see a
    // bias of that size.
    let shifted = mmd2_unbiased(
        &gaussian(40, 5, 0.0, 1.0, &mut rng),
        &gaussian(40, 5, 0.5, 1.0, &mut rng),
    )
    .unwrap();
    assert!(
        shifted > 10.0 * se,
        "shifted MMD² {shifted} against s.e. {se}"
    );
    let k = kid(
        &gaussian(500, 5, 0.0, 1.0, &mut rng),
        &gaussian(500, 5, 0.0, 1.0, &mut rng),
        20,
        100,
        &mut rng,
    )
    .unwrap();
    assert!(k.mean.abs() < 4.0 * k.standard_error, "{k:?}");
}

#[test]
fn precision_and_recall_separate_fidelity_from_coverage() {
    let mut rng = Rng::new(23);
    let real = gaussian(600, 4, 0.0, 1.0, &mut rng);
    // The same distribution: both near 1.
    let (p, r) = precision_recall(&real, &gaussian(600, 4, 0.0, 1.0, &mut rng), 3).unwrap();
    assert!(
        p > 0.85 && r > 0.85,
        "same distribution: precision {p}, recall {r}"
    );
    // Samples collapsed onto a tenth of the spread: all inside the data (precision high), but
    // they cover little of it (recall low).
    let (p, r) = precision_recall(&real, &gaussian(600, 4, 0.0, 0.1, &mut rng), 3).unwrap();
    assert!(
        p > 0.95 && r < 0.3,
        "collapsed samples: precision {p}, recall {r}"
    );
    // Samples far away: neither.
    let (p, r) = precision_recall(&real, &gaussian(600, 4, 10.0, 1.0, &mut rng), 3).unwrap();
    assert!(
        p < 0.05 && r < 0.05,
        "distant samples: precision {p}, recall {r}"
    );
}

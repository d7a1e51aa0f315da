//! Sample quality in a feature space: the figures that say how close a generative model's
//! samples are to the data, the same way in every paper that uses them.
//!
//! - Fréchet distance (FID, Heusel et al. 2017): fit a Gaussian to each set's features,
//!   FD = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½).
//! - Kernel distance (KID, Bińkowski et al. 2018): the unbiased MMD² with the cubic polynomial
//!   kernel k(x, y) = (xᵀy/d + 1)³, averaged over random subsets, with its standard error. Unlike
//!   FID it has no bias that depends on the number of samples.
//! - Precision and recall (Kynkäänniemi et al. 2019): the share of samples that fall inside the
//!   real data's manifold (the union of balls reaching each real point's k-th nearest real
//!   neighbour), and the share of real points inside the samples' manifold.
//!
//! Features are rows of f64. The heavy products (Gram matrices, pairwise distances) run
//! through the engine's matmul in f64; the eigendecomposition is a cyclic Jacobi method, exact
//! to rounding for the 128×128 covariances these figures need.

use crate::error::{Error, Result};
use ferrograd_engine::{Rng, Tensor};

/// n feature vectors of dimension d, row-major.
#[derive(Clone, Debug)]
pub struct Features {
    pub n: usize,
    pub d: usize,
    pub rows: Vec<f64>,
}

impl Features {
    /// Checks that `rows` holds n·d finite values.
    pub fn new(n: usize, d: usize, rows: Vec<f64>) -> Result<Features> {
        if rows.len() != n * d {
            return Err(invalid(format!(
                "features: {} values for {n} rows of {d}",
                rows.len()
            )));
        }
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(invalid(format!(
                "features: row {} holds a non-finite value ({})",
                i / d.max(1),
                rows[i]
            )));
        }
        Ok(Features { n, d, rows })
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Features {
        let mut rows = Vec::with_capacity(indices.len() * self.d);
        for &i in indices {
            rows.extend_from_slice(&self.rows[i * self.d..(i + 1) * self.d]);
        }
        Features {
            n: indices.len(),
            d: self.d,
            rows,
        }
    }

    fn tensor(&self) -> Result<Tensor> {
        Ok(Tensor::from_vec(self.rows.clone(), &[self.n, self.d])?)
    }
}

fn invalid(message: String) -> Error {
    Error::Invalid { message }
}

/// The mean and the unbiased covariance (divided by n − 1), d×d row-major.
pub fn mean_and_covariance(f: &Features) -> Result<(Vec<f64>, Vec<f64>)> {
    if f.n < 2 {
        return Err(invalid(format!(
            "a covariance needs at least 2 feature rows, got {}",
            f.n
        )));
    }
    let d = f.d;
    let mut mean = vec![0.0; d];
    for row in f.rows.chunks(d) {
        mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
    }
    mean.iter_mut().for_each(|m| *m /= f.n as f64);
    let centred: Vec<f64> = f
        .rows
        .chunks(d)
        .flat_map(|row| row.iter().zip(&mean).map(|(v, m)| v - m))
        .collect();
    let c = Tensor::from_vec(centred, &[f.n, d])?;
    let cov = c.matmul_t(&c, true, false)?.to_vec_f64();
    Ok((
        mean,
        cov.into_iter().map(|v| v / (f.n - 1) as f64).collect(),
    ))
}

/// Eigenvalues and eigenvectors of a symmetric n×n matrix (row-major), by cyclic Jacobi
/// rotations: each rotation zeroes one off-diagonal pair, and sweeps repeat until the
/// off-diagonal mass is below rounding. Returns (λ, V) with A = V·diag(λ)·Vᵀ; column j of V
/// (row-major, V[i·n + j]) is the eigenvector of λ_j.
pub fn symmetric_eigen(a: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    if a.len() != n * n {
        return Err(invalid(format!(
            "symmetric_eigen: {} values for a {n}×{n} matrix",
            a.len()
        )));
    }
    for i in 0..n {
        for j in 0..i {
            let (x, y) = (a[i * n + j], a[j * n + i]);
            if (x - y).abs() > 1e-9 * (1.0 + x.abs().max(y.abs())) {
                return Err(invalid(format!(
                    "symmetric_eigen: the matrix is not symmetric at ({i}, {j}): {x} against {y}"
                )));
            }
        }
    }
    let mut m = a.to_vec();
    let mut v = vec![0.0; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    let total: f64 = m.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| m[i * n + j] * m[i * n + j])
            .sum();
        if off <= f64::EPSILON * f64::EPSILON * total || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = m[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation angle θ with tan 2θ = 2·a_pq / (a_qq − a_pp), taken as the
                // smaller root t = tan θ for stability (Golub & Van Loan, Algorithm 8.5.2).
                let tau = (m[q * n + q] - m[p * n + p]) / (2.0 * apq);
                let t = tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt());
                let t = if tau == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = t * c;
                // A ← Jᵀ A J, rows then columns p and q.
                for k in 0..n {
                    let (akp, akq) = (m[k * n + p], m[k * n + q]);
                    m[k * n + p] = c * akp - s * akq;
                    m[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (m[p * n + k], m[q * n + k]);
                    m[p * n + k] = c * apk - s * aqk;
                    m[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    Ok(((0..n).map(|i| m[i * n + i]).collect(), v))
}

/// The positive semi-definite square root S of a symmetric PSD matrix (S·S = A), from its
/// eigendecomposition V·diag(√λ)·Vᵀ. Eigenvalues that rounding left slightly negative are
/// taken as 0 (a covariance of dead features is singular, not indefinite).
pub fn sqrtm_psd(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let (lambda, v) = symmetric_eigen(a, n)?;
    let scale = lambda.iter().fold(0.0f64, |m, l| m.max(l.abs()));
    if let Some(l) = lambda.iter().find(|&&l| l < -1e-8 * scale.max(1e-300)) {
        return Err(invalid(format!(
            "sqrtm_psd: the matrix is not positive semi-definite (eigenvalue {l})"
        )));
    }
    let root: Vec<f64> = lambda.iter().map(|l| l.max(0.0).sqrt()).collect();
    let mut s = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            s[i * n + j] = (0..n).map(|k| v[i * n + k] * root[k] * v[j * n + k]).sum();
        }
    }
    Ok(s)
}

fn matmul_square(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                c[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    c
}

/// The Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂):
/// ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2·tr (Σ₁Σ₂)^½. The last trace is taken as tr (S₁Σ₂S₁)^½ with
/// S₁ = Σ₁^½: the same eigenvalues, but of a symmetric PSD matrix, so no complex roots from
/// rounding (what scipy's `sqrtm` of the non-symmetric product has to discard).
pub fn frechet_distance(mu1: &[f64], cov1: &[f64], mu2: &[f64], cov2: &[f64]) -> Result<f64> {
    let d = mu1.len();
    if mu2.len() != d || cov1.len() != d * d || cov2.len() != d * d {
        return Err(invalid(format!(
            "frechet_distance: means of {} and {}, covariances of {} and {} values",
            d,
            mu2.len(),
            cov1.len(),
            cov2.len()
        )));
    }
    let s1 = sqrtm_psd(cov1, d)?;
    let mut middle = matmul_square(&matmul_square(&s1, cov2, d), &s1, d);
    // Symmetrise what rounding left unsymmetric.
    for i in 0..d {
        for j in 0..i {
            let avg = 0.5 * (middle[i * d + j] + middle[j * d + i]);
            middle[i * d + j] = avg;
            middle[j * d + i] = avg;
        }
    }
    let (lambda, _) = symmetric_eigen(&middle, d)?;
    let tr_sqrt: f64 = lambda.iter().map(|l| l.max(0.0).sqrt()).sum();
    let mean_term: f64 = mu1.iter().zip(mu2).map(|(a, b)| (a - b) * (a - b)).sum();
    let trace = |c: &[f64]| (0..d).map(|i| c[i * d + i]).sum::<f64>();
    Ok((mean_term + trace(cov1) + trace(cov2) - 2.0 * tr_sqrt).max(0.0))
}

/// FID between two feature sets.
pub fn fid(a: &Features, b: &Features) -> Result<f64> {
    same_dimension(a, b)?;
    let (m1, c1) = mean_and_covariance(a)?;
    let (m2, c2) = mean_and_covariance(b)?;
    frechet_distance(&m1, &c1, &m2, &c2)
}

fn same_dimension(a: &Features, b: &Features) -> Result<()> {
    if a.d != b.d {
        return Err(invalid(format!(
            "feature sets of dimension {} and {} cannot be compared",
            a.d, b.d
        )));
    }
    Ok(())
}

/// A KID estimate: the mean of the unbiased MMD² over subsets, and its standard error
/// (the subsets' standard deviation over √subsets).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kid {
    pub mean: f64,
    pub standard_error: f64,
    pub subsets: usize,
    pub subset_size: usize,
}

/// The cubic polynomial kernel matrix k(x, y) = (xᵀy/d + 1)³ between the rows of x and y.
fn polynomial_kernel(x: &Tensor, y: &Tensor, d: usize) -> Result<Vec<f64>> {
    let gram = x.matmul_t(y, false, true)?.to_vec_f64();
    Ok(gram
        .into_iter()
        .map(|g| (g / d as f64 + 1.0).powi(3))
        .collect())
}

/// The unbiased MMD² (Gretton et al. 2012, eq. 3) between the rows of x and y, m each:
/// Σ_{i≠j} k(xᵢ, xⱼ)/(m(m−1)) + Σ_{i≠j} k(yᵢ, yⱼ)/(m(m−1)) − 2·Σ_{i,j} k(xᵢ, yⱼ)/m².
pub fn mmd2_unbiased(x: &Features, y: &Features) -> Result<f64> {
    same_dimension(x, y)?;
    let m = x.n;
    if y.n != m || m < 2 {
        return Err(invalid(format!(
            "mmd2_unbiased needs two sets of the same size, at least 2, got {} and {}",
            x.n, y.n
        )));
    }
    let (tx, ty) = (x.tensor()?, y.tensor()?);
    let off_diagonal_sum = |k: &[f64]| -> f64 {
        let all: f64 = k.iter().sum();
        all - (0..m).map(|i| k[i * m + i]).sum::<f64>()
    };
    let kxx = off_diagonal_sum(&polynomial_kernel(&tx, &tx, x.d)?);
    let kyy = off_diagonal_sum(&polynomial_kernel(&ty, &ty, x.d)?);
    let kxy: f64 = polynomial_kernel(&tx, &ty, x.d)?.iter().sum();
    let pairs = (m * (m - 1)) as f64;
    Ok(kxx / pairs + kyy / pairs - 2.0 * kxy / (m * m) as f64)
}

/// KID between two feature sets: `subsets` draws of `subset_size` rows from each (without
/// replacement within a draw), the mean and standard error of their unbiased MMD². The
/// subset size is capped by the smaller set.
pub fn kid(
    a: &Features,
    b: &Features,
    subsets: usize,
    subset_size: usize,
    rng: &mut Rng,
) -> Result<Kid> {
    same_dimension(a, b)?;
    let m = subset_size.min(a.n).min(b.n);
    if m < 2 || subsets == 0 {
        return Err(invalid(format!(
            "KID needs subsets of at least 2 rows and at least one subset, got {subsets} of {m}"
        )));
    }
    let mut values = Vec::with_capacity(subsets);
    for _ in 0..subsets {
        let ia = sample_without_replacement(a.n, m, rng);
        let ib = sample_without_replacement(b.n, m, rng);
        values.push(mmd2_unbiased(&a.select(&ia), &b.select(&ib))?);
    }
    let (mean, se) = mean_and_standard_error(&values);
    Ok(Kid {
        mean,
        standard_error: se,
        subsets,
        subset_size: m,
    })
}

/// The mean of `values` and its standard error (sample standard deviation / √n; 0 for n < 2).
pub fn mean_and_standard_error(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1) as f64;
    (mean, (var / n as f64).sqrt())
}

/// m distinct indices below n, by a partial Fisher–Yates shuffle.
fn sample_without_replacement(n: usize, m: usize, rng: &mut Rng) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..m {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    idx.truncate(m);
    idx
}

/// Rows of pairwise squared distances between `a` (a block of rows) and all of `b`,
/// ‖a‖² + ‖b‖² − 2aᵀb, clamped at 0 (rounding can take a self-distance below).
fn squared_distances(a: &Features, b: &Features, b_norms: &[f64]) -> Result<Vec<f64>> {
    let gram = a
        .tensor()?
        .matmul_t(&b.tensor()?, false, true)?
        .to_vec_f64();
    let mut out = gram;
    for (i, row) in out.chunks_mut(b.n).enumerate() {
        let ai = &a.rows[i * a.d..(i + 1) * a.d];
        let an: f64 = ai.iter().map(|v| v * v).sum();
        row.iter_mut()
            .zip(b_norms)
            .for_each(|(g, bn)| *g = (an + bn - 2.0 * *g).max(0.0));
    }
    Ok(out)
}

fn row_norms(f: &Features) -> Vec<f64> {
    f.rows
        .chunks(f.d)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect()
}

/// Rows of `f` processed this many at a time when distances to a whole set are needed, so a
/// 10,000 × 10,000 distance matrix is never held at once.
const DISTANCE_BLOCK: usize = 512;

/// Each row's squared distance to its k-th nearest other row of the same set.
fn kth_neighbour_radii(f: &Features, k: usize) -> Result<Vec<f64>> {
    if f.n <= k {
        return Err(invalid(format!(
            "k-nearest-neighbour radii need more than k = {k} rows, got {}",
            f.n
        )));
    }
    let norms = row_norms(f);
    let mut radii = Vec::with_capacity(f.n);
    for start in (0..f.n).step_by(DISTANCE_BLOCK) {
        let block: Vec<usize> = (start..(start + DISTANCE_BLOCK).min(f.n)).collect();
        let dist = squared_distances(&f.select(&block), f, &norms)?;
        for (row, &i) in dist.chunks(f.n).zip(&block) {
            let mut others: Vec<f64> = row
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, &v)| v)
                .collect();
            let (_, kth, _) = others.select_nth_unstable_by(k - 1, f64::total_cmp);
            radii.push(*kth);
        }
    }
    Ok(radii)
}

/// The share of `queries` rows that lie within some `manifold` row's k-NN radius.
fn share_inside(queries: &Features, manifold: &Features, radii: &[f64]) -> Result<f64> {
    let norms = row_norms(manifold);
    let mut inside = 0usize;
    for start in (0..queries.n).step_by(DISTANCE_BLOCK) {
        let block: Vec<usize> = (start..(start + DISTANCE_BLOCK).min(queries.n)).collect();
        let dist = squared_distances(&queries.select(&block), manifold, &norms)?;
        inside += dist
            .chunks(manifold.n)
            .filter(|row| row.iter().zip(radii).any(|(d, r)| d <= r))
            .count();
    }
    Ok(inside as f64 / queries.n as f64)
}

/// Improved precision and recall (Kynkäänniemi et al. 2019) with k nearest neighbours
/// (the paper's k = 3): precision is the share of `generated` rows inside the real manifold,
/// recall the share of `real` rows inside the generated manifold.
pub fn precision_recall(real: &Features, generated: &Features, k: usize) -> Result<(f64, f64)> {
    same_dimension(real, generated)?;
    let real_radii = kth_neighbour_radii(real, k)?;
    let generated_radii = kth_neighbour_radii(generated, k)?;
    Ok((
        share_inside(generated, real, &real_radii)?,
        share_inside(real, generated, &generated_radii)?,
    ))
}

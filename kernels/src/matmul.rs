//! Dense matrix multiply on strided row-major views, through the `gemm` crate's
//! packed, register-blocked microkernels (AVX2/AVX-512/NEON chosen at run time).

use crate::Real;

/// A matrix operand: a slice with a row stride and a column stride, so a transpose is free.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    /// The elements; entry (i, j) is `data[i * row_stride + j * col_stride]`.
    pub data: &'a [T],
    /// Elements between the starts of consecutive rows.
    pub row_stride: usize,
    /// Elements between consecutive entries of a row.
    pub col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [T], cols: usize) -> Self {
        MatRef {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }
    /// The transpose of a row-major `rows x cols` matrix, read in place.
    pub fn transposed(data: &'a [T], cols: usize) -> Self {
        MatRef {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }
}

/// The sizes of a product: `a` is m x k, `b` is k x n, `c` is m x n.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmShape {
    /// Rows of `a` and `c`.
    pub m: usize,
    /// Columns of `b` and `c`.
    pub n: usize,
    /// The contracted dimension: columns of `a`, rows of `b`.
    pub k: usize,
}

/// `c (m x n, row-major) = a (m x k) · b (k x n)`, or `c += a · b` when `accumulate`.
/// With `parallel` the product is split across rayon's pool; callers that already run one
/// product per thread pass `false`.
pub fn gemm<T: Real>(
    shape: GemmShape,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    accumulate: bool,
    parallel: bool,
) {
    let GemmShape { m, n, k } = shape;
    assert!(c.len() >= m * n, "gemm: output buffer too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].iter_mut().for_each(|v| *v = T::ZERO);
        }
        return;
    }
    let last = |mat: &MatRef<'_, T>, rows: usize, cols: usize| {
        (rows - 1) * mat.row_stride + (cols - 1) * mat.col_stride
    };
    assert!(last(&a, m, k) < a.data.len(), "gemm: lhs out of bounds");
    assert!(last(&b, k, n) < b.data.len(), "gemm: rhs out of bounds");
    let parallelism = if parallel && m * n * k >= 64 * 64 * 64 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every read of a and b and every write of c inside the
    // slices; c is borrowed mutably, so nothing else aliases it. gemm computes
    // dst := alpha·dst + beta·lhs·rhs, and ignores alpha when read_dst is false.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn matches_naive_product_including_transposes() {
        let (m, n, k) = (7, 5, 3);
        let a: Vec<f64> = (0..m * k).map(|v| (v as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|v| (v as f64 * 0.11).cos()).collect();
        let want = naive(m, n, k, &a, &b);
        let mut c = vec![0.0; m * n];
        gemm(
            GemmShape { m, n, k },
            MatRef::row_major(&a, k),
            MatRef::row_major(&b, n),
            &mut c,
            false,
            true,
        );
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-12);
        }
        // a given as its transpose (k x m row-major), read transposed.
        let mut at = vec![0.0; k * m];
        for i in 0..m {
            for p in 0..k {
                at[p * m + i] = a[i * k + p];
            }
        }
        let mut c2 = vec![1.0; m * n];
        gemm(
            GemmShape { m, n, k },
            MatRef::transposed(&at, m),
            MatRef::row_major(&b, n),
            &mut c2,
            true,
            false,
        );
        for (x, y) in c2.iter().zip(&want) {
            assert!((x - (y + 1.0)).abs() < 1e-12);
        }
    }
}

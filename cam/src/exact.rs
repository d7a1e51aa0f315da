//! Exact diagonal second and third derivatives of a score with respect to every element of an
//! activation map, from the engine's higher-order reverse mode.
//!
//! This is the generic method: it needs nothing but a score function of a batch of maps. The
//! exact Grad-CAM++ of the classifier ([`crate::maps::Target::explain`]) uses the much faster
//! univariate Taylor mode of [`crate::taylor`] instead, which reads the network's layers; the
//! method here is its independent judge in the tests.
//!
//! For Grad-CAM++ we need, for every element a_e of A, the three numbers
//!
//!   d1_e = ∂Y/∂a_e,   d2_e = ∂²Y/∂a_e²,   d3_e = ∂³Y/∂a_e³,
//!
//! the diagonals of the gradient, the Hessian and the third-derivative tensor. Reverse mode
//! gives a whole gradient per sweep, but a diagonal entry of the Hessian needs its own sweep:
//! there is no cheaper exact way for a general network. What makes it affordable is batching.
//!
//! **One scalar per copy.** Take B copies of the image's map and perturb copy b at one element
//! only: A_b = A + t_b·e_{i_b}, with t a vector of B scalars (all zero). The network treats the
//! copies independently (batch norm in inference mode), so with T(t) = Σ_b Y(A_b),
//!
//!   ∂T/∂t_b = ∂Y/∂a_{i_b},   ∂/∂t_b Σ_b' ∂T/∂t_b' = ∂²Y/∂a_{i_b}²,   and once more for ∂³.
//!
//! Each derivative of T with respect to t is a B-vector whose entry b depends on t_b alone, so
//! summing it and differentiating again yields the next diagonal entry for every copy at once:
//! three reverse sweeps (the first two recording their own graphs) give 3·B exact numbers.
//! The copies of a chunk share every kernel call, which is what keeps this fast.

use ferrograd_engine::{grad, Error, Result, Tensor};
use std::sync::Arc;

/// ∂Y/∂a, ∂²Y/∂a², ∂³Y/∂a³ for every element a of the map, in the map's row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagonal {
    pub first: Vec<f64>,
    pub second: Vec<f64>,
    pub third: Vec<f64>,
}

/// The exact diagonal derivatives of `score` at `map` ([1, ...]).
///
/// `score` maps a batch of maps [B, ...] to one score per item, \[B\], each item's score
/// depending on that item alone (any network in inference mode does). Elements are taken
/// `chunk` at a time (one copy each); `on_chunk(done, total)` reports progress.
pub fn diagonal_derivatives(
    map: &Tensor,
    score: &dyn Fn(&Tensor) -> Result<Tensor>,
    chunk: usize,
    on_chunk: &mut dyn FnMut(usize, usize),
) -> Result<Diagonal> {
    let all: Vec<usize> = (0..map.numel()).collect();
    diagonal_derivatives_at(map, score, &all, chunk, on_chunk)
}

/// [`diagonal_derivatives`] for the listed `elements` only; every other entry is 0. For
/// elements the caller knows the score cannot feel (e.g. those that lose their max-pooling
/// window: a small change leaves the pooled value, hence Y, unchanged, so every derivative is
/// exactly 0), this skips work without changing the answer.
pub fn diagonal_derivatives_at(
    map: &Tensor,
    score: &dyn Fn(&Tensor) -> Result<Tensor>,
    elements: &[usize],
    chunk: usize,
    on_chunk: &mut dyn FnMut(usize, usize),
) -> Result<Diagonal> {
    const OP: &str = "diagonal_derivatives";
    if map.rank() == 0 || map.dim(0)? != 1 {
        return Err(Error::shape(
            OP,
            format!("the map must be one item, [1, ...], got {:?}", map.shape()),
        ));
    }
    if chunk == 0 {
        return Err(Error::argument(OP, "chunk must be at least 1"));
    }
    let base = map.detach();
    let n = base.numel();
    if let Some(&bad) = elements.iter().find(|&&e| e >= n) {
        return Err(Error::argument(
            OP,
            format!("element {bad} is outside the map's {n} elements"),
        ));
    }
    let mut out = Diagonal {
        first: vec![0.0; n],
        second: vec![0.0; n],
        third: vec![0.0; n],
    };
    for (done, batch) in elements.chunks(chunk).enumerate() {
        let b = batch.len();
        let mut shape = base.shape().to_vec();
        shape[0] = b;
        // t_k sits at flat position k·n + e_k of the batch: copy k, element e_k.
        let positions: Vec<usize> = batch.iter().enumerate().map(|(k, &e)| k * n + e).collect();
        let t = Tensor::full_on(&[b], 0.0, base.dtype(), base.device())?.requires_grad_();
        let copies = base
            .broadcast_to(&shape)?
            .add(&t.scatter_add_flat(Arc::new(positions), &shape)?)?;
        let y = score(&copies)?;
        if y.shape() != [b] {
            return Err(Error::shape(
                OP,
                format!(
                    "the score must give one value per item, [{b}], got {:?}",
                    y.shape()
                ),
            ));
        }
        let d1 = grad(&[&y.sum_all()?], &[&t], None, true)?.remove(0);
        let d2 = grad(&[&d1.sum_all()?], &[&t], None, true)?.remove(0);
        let d3 = grad(&[&d2.sum_all()?], &[&t], None, false)?.remove(0);
        for (order, d) in [
            (&mut out.first, d1),
            (&mut out.second, d2),
            (&mut out.third, d3),
        ] {
            for (&e, v) in batch.iter().zip(d.to_vec_f64()) {
                order[e] = v;
            }
        }
        on_chunk((done * chunk + b).min(elements.len()), elements.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrograd_engine::{DType, Rng};

    #[test]
    fn diagonals_of_a_function_with_cross_terms_match_the_closed_form() {
        // Y = Σ_i c_i·tanh(a_i) + s³/6 with s = Σ_i a_i; with u = tanh(a_j),
        //   ∂Y/∂a_j   = c_j(1 − u²) + s²/2,
        //   ∂²Y/∂a_j² = −2c_j·u(1 − u²) + s,
        //   ∂³Y/∂a_j³ = −2c_j(1 − u²)(1 − 3u²) + 1.
        // The cubic couples every pair of elements, so a method that mixed directions fails.
        let mut rng = Rng::new(7);
        let a = Tensor::randn(&[1, 2, 3], 0.0, 1.0, DType::F64, &mut rng).unwrap();
        let c = Tensor::randn(&[1, 2, 3], 0.0, 1.0, DType::F64, &mut rng).unwrap();
        let score = |x: &Tensor| -> Result<Tensor> {
            let b = x.dim(0)?;
            let linear = x.tanh()?.mul(&c)?.reshape(&[b, 6])?.sum(&[1], false)?;
            let s = x.reshape(&[b, 6])?.sum(&[1], false)?;
            linear.add(&s.mul(&s)?.mul(&s)?.div_scalar(6.0)?)
        };
        let mut calls = 0;
        let d = diagonal_derivatives(&a, &score, 4, &mut |_, _| calls += 1).unwrap();
        assert_eq!(calls, 2, "6 elements in chunks of 4");
        let av = a.to_vec_f64();
        let cv = c.to_vec_f64();
        let s: f64 = av.iter().sum();
        for j in 0..6 {
            let u = av[j].tanh();
            let v = 1.0 - u * u;
            let want = [
                cv[j] * v + s * s / 2.0,
                -2.0 * cv[j] * u * v + s,
                -2.0 * cv[j] * v * (1.0 - 3.0 * u * u) + 1.0,
            ];
            let got = [d.first[j], d.second[j], d.third[j]];
            for (order, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g - w).abs() < 1e-12,
                    "element {j}, order {}: {g} vs {w}",
                    order + 1
                );
            }
        }
    }
}

//! Finite-difference checks of the engine's derivatives, after PyTorch's `gradcheck` and
//! `gradgradcheck`.
//!
//! First order: the numerical Jacobian by central differences, J[o, i] ≈ (f(x + ε·eᵢ) −
//! f(x − ε·eᵢ))ₒ / 2ε in f64, against the analytical vector–Jacobian products uᵀJ that backward
//! computes, for one-hot u (every row of J) when the output is small and random u otherwise.
//! A value passes when |analytical − numerical| ≤ atol + rtol·|numerical|. Backward must also
//! be reentrant (the same gradient twice) and map a zero output gradient to zero.
//!
//! Order k > 1: the check of order k − 1 applied to x, v ↦ flatten(∂⟨f(x), v⟩/∂x) computed
//! with `create_graph`, for a random v that is itself an input, exactly as `gradgradcheck`
//! checks `grad(create_graph=True)` with random grad_outputs.

use crate::autograd::{grad_with, GradOptions};
use crate::checks::CheckFn;
use crate::error::{Error, ErrorKind, Result};
use crate::rng::Rng;
use crate::storage::DType;
use crate::tensor::Tensor;
use std::sync::Arc;

/// Step and tolerances; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug)]
pub struct Tolerances {
    /// The central-difference step ε: small enough that the O(ε²) truncation error is
    /// negligible, large enough that f64 cancellation (~1e-16/ε) is too.
    pub eps: f64,
    /// Absolute tolerance: a value passes when |analytical − numerical| ≤ atol + rtol·|numerical|.
    pub atol: f64,
    /// Relative tolerance, in the same test.
    pub rtol: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            eps: 1e-6,
            atol: 1e-5,
            rtol: 1e-3,
        }
    }
}

/// What a check found.
#[derive(Clone, Debug, Default)]
pub struct CheckOutcome {
    /// Largest |analytical − numerical| over all compared values.
    pub max_abs_error: f64,
    /// Largest |analytical − numerical| / |numerical| over values with |numerical| > atol
    /// (smaller values are judged by the absolute error alone).
    pub max_rel_error: f64,
    /// Largest |analytical − numerical| / (atol + rtol·|numerical|): at most 1 to pass.
    pub worst_ratio: f64,
    /// Why it failed, when it did.
    pub failure: Option<String>,
}

impl CheckOutcome {
    /// Whether every compared value was within tolerance (no `failure`).
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// Records one compared value: its error `err` against the `allowed` error, `reference`
    /// the value taken as right (relative errors count where |reference| > `rel_floor`). The
    /// worst value over its allowance is described by `why`.
    fn record(
        &mut self,
        err: f64,
        allowed: f64,
        reference: f64,
        rel_floor: f64,
        why: impl FnOnce() -> String,
    ) {
        let ratio = err / allowed;
        let ratio = if ratio.is_nan() { f64::INFINITY } else { ratio };
        self.max_abs_error = self.max_abs_error.max(err);
        if reference.abs() > rel_floor {
            self.max_rel_error = self.max_rel_error.max(err / reference.abs());
        }
        if ratio > self.worst_ratio {
            self.worst_ratio = ratio;
            if ratio > 1.0 {
                self.failure = Some(why());
            }
        }
    }
}

/// uᵀ·∂y/∂xs, with zeros for the inputs y does not depend on, and for all of them when y is a
/// constant: a checker compares Jacobians, and an unused input's Jacobian is zero (which the
/// finite differences then confirm).
fn vjp_or_zeros(y: &Tensor, xs: &[Tensor], u: &Tensor, create_graph: bool) -> Result<Vec<Tensor>> {
    if !y.requires_grad() {
        return Ok(xs.iter().map(Tensor::zeros_like).collect());
    }
    let options = GradOptions {
        grad_outputs: Some(&[u]),
        create_graph,
        allow_unused: true,
    };
    let gs = grad_with(&[y], &xs.iter().collect::<Vec<_>>(), options)?;
    Ok(gs
        .into_iter()
        .zip(xs)
        .map(|(g, x)| g.unwrap_or_else(|| x.zeros_like()))
        .collect())
}

/// Fresh leaves with the same values, requiring gradients.
fn as_leaves(inputs: &[Tensor]) -> Vec<Tensor> {
    inputs.iter().map(|x| x.detach().requires_grad_()).collect()
}

fn one_input_replaced(inputs: &[Tensor], which: usize, values: &[f64]) -> Result<Vec<Tensor>> {
    let mut xs = as_leaves(inputs);
    xs[which] = Tensor::from_f64s(values, inputs[which].shape(), DType::F64)?.requires_grad_();
    Ok(xs)
}

/// Checks f's first derivatives at `inputs` (all f64).
pub fn gradcheck(
    f: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    tol: Tolerances,
    rng: &mut Rng,
) -> Result<CheckOutcome> {
    for x in inputs {
        if x.dtype() != DType::F64 {
            return Err(Error::new(
                "gradcheck",
                ErrorKind::DType,
                format!(
                    "inputs must be f64 for tight differences; got {} of shape {:?}",
                    x.dtype(),
                    x.shape()
                ),
            ));
        }
    }
    let leaves = as_leaves(inputs);
    let y = f(&leaves)?;
    if y.dtype() != DType::F64 {
        return Err(Error::new(
            "gradcheck",
            ErrorKind::DType,
            format!(
                "the function returned {}; it must compute in f64",
                y.dtype()
            ),
        ));
    }
    let n_out = y.numel();

    // Numerical Jacobian, one column per input element: jac[input][element][output].
    let mut jac: Vec<Vec<Vec<f64>>> = Vec::with_capacity(inputs.len());
    for (i, x) in inputs.iter().enumerate() {
        let base = x.to_vec_f64();
        let mut cols = Vec::with_capacity(base.len());
        for j in 0..base.len() {
            let mut plus = base.clone();
            plus[j] += tol.eps;
            let mut minus = base.clone();
            minus[j] -= tol.eps;
            let yp = f(&one_input_replaced(inputs, i, &plus)?)?.to_vec_f64();
            let ym = f(&one_input_replaced(inputs, i, &minus)?)?.to_vec_f64();
            cols.push(
                yp.iter()
                    .zip(&ym)
                    .map(|(a, b)| (a - b) / (2.0 * tol.eps))
                    .collect::<Vec<f64>>(),
            );
        }
        jac.push(cols);
    }

    // Directions u for the vector–Jacobian products.
    let directions: Vec<Vec<f64>> = if n_out <= 16 {
        (0..n_out)
            .map(|o| (0..n_out).map(|k| if k == o { 1.0 } else { 0.0 }).collect())
            .collect()
    } else {
        (0..8)
            .map(|_| (0..n_out).map(|_| rng.normal()).collect())
            .collect()
    };

    let vjp = |y: &Tensor, leaves: &[Tensor], u: &[f64]| -> Result<Vec<Vec<f64>>> {
        let u = Tensor::from_f64s(u, y.shape(), DType::F64)?;
        Ok(vjp_or_zeros(y, leaves, &u, false)?
            .iter()
            .map(Tensor::to_vec_f64)
            .collect())
    };

    let mut outcome = CheckOutcome::default();
    for u in &directions {
        let analytical = vjp(&y, &leaves, u)?;
        for (i, cols) in jac.iter().enumerate() {
            for (j, col) in cols.iter().enumerate() {
                let numerical: f64 = col.iter().zip(u).map(|(a, b)| a * b).sum();
                let a = analytical[i][j];
                outcome.record(
                    (a - numerical).abs(),
                    tol.atol + tol.rtol * numerical.abs(),
                    numerical,
                    tol.atol,
                    || format!("input {i}, element {j}: analytical {a:.10e}, numerical {numerical:.10e}"),
                );
            }
        }
    }

    // Reentrancy: a fresh forward and backward give bit-identical gradients.
    if let Some(u) = directions.first() {
        let first = vjp(&y, &leaves, u)?;
        let leaves2 = as_leaves(inputs);
        let second = vjp(&f(&leaves2)?, &leaves2, u)?;
        if first != second && outcome.failure.is_none() {
            outcome.failure =
                Some("backward is not reentrant: two runs gave different gradients".into());
        }
    }
    // A zero output gradient must give zero input gradients.
    let zeros = vjp(&y, &leaves, &vec![0.0; n_out])?;
    if zeros.iter().flatten().any(|&v| v != 0.0) && outcome.failure.is_none() {
        outcome.failure = Some("a zero output gradient gave a non-zero input gradient".into());
    }
    Ok(outcome)
}

/// The function whose first derivatives are the derivatives of order `order` of `f`, with
/// its inputs: for order k > 1, x, v ↦ flatten(∂⟨g(x), v⟩/∂x) with `create_graph`, where g is
/// the function of order k − 1 and v a random direction drawn from `rng` (appended to the inputs).
fn nested(
    f: CheckFn,
    inputs: &[Tensor],
    order: usize,
    rng: &mut Rng,
) -> Result<(CheckFn, Vec<Tensor>)> {
    if order <= 1 {
        return Ok((f, inputs.to_vec()));
    }
    let (f, inputs) = nested(f, inputs, order - 1, rng)?;
    let out_shape = f(&as_leaves(&inputs))?.shape().to_vec();
    let v = Tensor::randn(&out_shape, 0.0, 1.0, DType::F64, rng)?;
    let n = inputs.len();
    let vjp_fn: CheckFn = Arc::new(move |xs: &[Tensor]| {
        let (xs, v) = xs.split_at(n);
        let y = f(xs)?;
        let gs = vjp_or_zeros(&y, xs, &v[0], true)?;
        let flat = gs
            .iter()
            .map(|g| g.reshape(&[g.numel()]))
            .collect::<Result<Vec<_>>>()?;
        Tensor::concat(&flat, 0)
    });
    let mut extended = inputs;
    extended.push(v);
    Ok((vjp_fn, extended))
}

/// Checks derivatives of order `order` (1 = [`gradcheck`], 2 = [`gradgradcheck`], 3, …).
pub fn check_order(
    f: CheckFn,
    inputs: &[Tensor],
    order: usize,
    tol: Tolerances,
    rng: &mut Rng,
) -> Result<CheckOutcome> {
    if order == 0 {
        return Err(Error::argument("check_order", "order must be at least 1"));
    }
    let (f, inputs) = nested(f, inputs, order, rng)?;
    gradcheck(&*f, &inputs, tol, rng)
}

/// Tolerances of the GPU check: f32 against f64, so far looser than [`Tolerances`].
#[derive(Clone, Copy, Debug)]
pub struct GpuTolerances {
    /// |gpu − cpu| ≤ rtol·|cpu| + atol·max(1, max|cpu|) per value: a few thousand f32
    /// roundings (unit roundoff 6e-8), with the absolute part scaled to the result, since
    /// values that cancel to near zero keep the rounding error of their largest terms.
    pub rtol: f64,
    /// The absolute part, relative to max(1, max|cpu|); see `rtol`.
    pub atol: f64,
}

impl Default for GpuTolerances {
    fn default() -> Self {
        GpuTolerances {
            rtol: 1e-4,
            atol: 1e-4,
        }
    }
}

/// Derivatives of order `order` of `f` computed on `device` in f32, against the same
/// derivatives computed on the CPU in f64 (which [`check_order`] holds to finite differences).
///
/// With F the function of order `order` − 1 ([`check_order`]'s nesting) and a random u, both
/// devices compute F(x) and uᵀ∂F/∂x; every value of both is compared.
pub fn check_order_on(
    device: crate::Device,
    f: CheckFn,
    inputs: &[Tensor],
    order: usize,
    tol: GpuTolerances,
    rng: &mut Rng,
) -> Result<CheckOutcome> {
    if order == 0 {
        return Err(Error::argument(
            "check_order_on",
            "order must be at least 1",
        ));
    }
    let (f, inputs) = nested(f, inputs, order, rng)?;
    let run = |xs: Vec<Tensor>, u: &Tensor| -> Result<Vec<Vec<f64>>> {
        let y = f(&xs)?;
        let gs = vjp_or_zeros(&y, &xs, u, false)?;
        let mut values = vec![y.to_vec_f64()];
        values.extend(gs.iter().map(Tensor::to_vec_f64));
        Ok(values)
    };
    let cpu_leaves = as_leaves(&inputs);
    let y_shape = f(&cpu_leaves)?.shape().to_vec();
    let u = Tensor::randn(&y_shape, 0.0, 1.0, DType::F64, rng)?;
    let expected = run(cpu_leaves, &u)?;
    let moved = |t: &Tensor| -> Result<Tensor> { t.to_dtype(DType::F32)?.to(device) };
    let device_leaves = inputs
        .iter()
        .map(|x| Ok(moved(x)?.detach().requires_grad_()))
        .collect::<Result<Vec<_>>>()?;
    let got = run(device_leaves, &moved(&u)?)?;

    let mut outcome = CheckOutcome::default();
    for (k, (want, have)) in expected.iter().zip(&got).enumerate() {
        let what = if k == 0 {
            "the value".to_string()
        } else {
            format!("the gradient of input {}", k - 1)
        };
        if want.len() != have.len() {
            outcome.failure = Some(format!(
                "{what}: {} values, expected {}",
                have.len(),
                want.len()
            ));
            outcome.worst_ratio = f64::INFINITY;
            continue;
        }
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (j, (&w, &h)) in want.iter().zip(have).enumerate() {
            outcome.record(
                (h - w).abs(),
                tol.rtol * w.abs() + tol.atol * scale,
                w,
                tol.atol,
                || format!("{what}, element {j}: {device} f32 {h:.8e}, cpu f64 {w:.8e}"),
            );
        }
    }
    Ok(outcome)
}

/// Checks the derivatives of orders 1 to `max_order` of any function of f64 tensors at
/// `inputs` against finite differences, with PyTorch's tolerances; one outcome per order, each
/// [`CheckOutcome::passed`] or saying where it failed. This is the entry point for user code
/// and custom ops (`ferrograd gradcheck` runs the same check on every built-in op); `seed`
/// draws the random directions of the higher orders.
///
/// ```
/// use ferrograd_engine::gradcheck::check_derivatives;
/// use ferrograd_engine::{DType, Tensor};
/// # fn main() -> ferrograd_engine::Result<()> {
/// let x = Tensor::from_f64s(&[0.3, -1.2], &[2], DType::F64)?;
/// let outcomes = check_derivatives(|t| t[0].tanh()?.mul(&t[0]), &[x], 3, 0)?;
/// assert!(outcomes.iter().all(|o| o.passed()));
/// # Ok(()) }
/// ```
pub fn check_derivatives(
    f: impl Fn(&[Tensor]) -> Result<Tensor> + Send + Sync + 'static,
    inputs: &[Tensor],
    max_order: usize,
    seed: u64,
) -> Result<Vec<CheckOutcome>> {
    if max_order == 0 {
        return Err(Error::argument(
            "check_derivatives",
            "max_order must be at least 1",
        ));
    }
    let f: CheckFn = Arc::new(f);
    let mut rng = Rng::new(seed);
    (1..=max_order)
        .map(|order| check_order(f.clone(), inputs, order, Tolerances::default(), &mut rng))
        .collect()
}

/// Second-order check: [`gradcheck`] of the backward pass run with `create_graph`.
pub fn gradgradcheck(
    f: CheckFn,
    inputs: &[Tensor],
    tol: Tolerances,
    rng: &mut Rng,
) -> Result<CheckOutcome> {
    check_order(f, inputs, 2, tol, rng)
}

/// The generator of case number `case` of `check` at `order` from `seed`: the same
/// (seed, case, order) always draws the same shapes and values.
fn case_rng(check: &crate::checks::OpCheck, order: usize, seed: u64, case: u64) -> Rng {
    // FNV-1a of the op's name, so different ops draw different values from the same seed.
    let name_hash = check.op.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    Rng::new(seed ^ name_hash ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((order as u64) << 56))
}

/// Draws case number `case` of `check` from `seed` and checks it at `order`.
pub fn run_case(
    check: &crate::checks::OpCheck,
    order: usize,
    seed: u64,
    case: u64,
) -> Result<(String, CheckOutcome)> {
    let mut rng = case_rng(check, order, seed, case);
    let drawn = (check.sample)(&mut rng);
    let outcome = check_order(
        drawn.f.clone(),
        &drawn.inputs,
        order,
        Tolerances::default(),
        &mut rng,
    )?;
    Ok((drawn.label, outcome))
}

/// [`run_case`] on `device`: the same drawn case, its derivatives of order `order` computed
/// there in f32 and compared with the CPU's f64 ([`check_order_on`]).
pub fn run_case_on(
    device: crate::Device,
    check: &crate::checks::OpCheck,
    order: usize,
    seed: u64,
    case: u64,
) -> Result<(String, CheckOutcome)> {
    let mut rng = case_rng(check, order, seed, case);
    let drawn = (check.sample)(&mut rng);
    let outcome = check_order_on(
        device,
        drawn.f.clone(),
        &drawn.inputs,
        order,
        GpuTolerances::default(),
        &mut rng,
    )?;
    Ok((drawn.label, outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deliberately wrong derivative must be caught: the checker can fail. The op is
    /// defined through the public custom-op API, as a user's would be.
    #[test]
    fn gradcheck_catches_a_wrong_derivative() {
        struct WrongSquare;
        impl crate::CustomOp for WrongSquare {
            fn name(&self) -> &'static str {
                "wrong_square"
            }
            fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
                Ok(inputs[0].to_vec())
            }
            fn cpu_forward<T: crate::Element>(&self, x: &[&[T]], out: &mut [T]) -> Result<()> {
                out.iter_mut().zip(x[0]).for_each(|(o, &v)| *o = v * v);
                Ok(())
            }
            fn backward(
                &self,
                x: &[Tensor],
                _: &Tensor,
                g: &Tensor,
            ) -> Result<Vec<Option<Tensor>>> {
                // d(x²)/dx is 2x; claim 3x.
                Ok(vec![Some(g.mul(&x[0].mul_scalar(3.0)?)?)])
            }
        }
        let x = Tensor::from_f64s(&[0.3, -1.2, 2.0], &[3], DType::F64).unwrap();
        let wrong = check_derivatives(
            |t| Tensor::custom(WrongSquare, &[&t[0]]),
            std::slice::from_ref(&x),
            1,
            0,
        )
        .unwrap();
        assert!(!wrong[0].passed(), "a wrong rule passed: {wrong:?}");
        let right = check_derivatives(|t| t[0].mul(&t[0]), &[x], 2, 0).unwrap();
        assert!(right.iter().all(CheckOutcome::passed), "{right:?}");
    }
}

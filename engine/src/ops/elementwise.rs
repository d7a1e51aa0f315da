//! Pointwise ops: one input, or two with NumPy broadcasting.
//!
//! Each primitive's derivative rule is in its `backward` arm, written with engine ops so it can
//! be differentiated again. Piecewise-constant helpers (sign, step, masks) produce constants:
//! their derivative is zero almost everywhere.

use crate::autograd::BackwardOp;
use crate::checks::{self, CheckCase, OpCheck};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use crate::Storage;
use ferrograd_kernels::elementwise::{self as kern, BinaryOp, UnaryOp};

/// A differentiable unary primitive.
struct Unary(UnaryOp);

impl BackwardOp for Unary {
    fn name(&self) -> &'static str {
        match self.0 {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Relu => "relu",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Powf(_) => "powf",
            UnaryOp::AddScalar(_) => "add_scalar",
            UnaryOp::MulScalar(_) => "mul_scalar",
            UnaryOp::Clamp(..) => "clamp",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Expm1 => "expm1",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Erf => "erf",
            UnaryOp::Sign
            | UnaryOp::NonZero
            | UnaryOp::Step
            | UnaryOp::LeakyMask(_)
            | UnaryOp::InsideMask(..)
            | UnaryOp::InfToZero => "mask",
        }
    }

    fn backward(
        &self,
        inputs: &[Tensor],
        output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        let dx = match self.0 {
            // d(−x) = −1
            UnaryOp::Neg => g.neg()?,
            // d eˣ = eˣ
            UnaryOp::Exp => g.mul(&x.exp()?)?,
            // d ln x = 1/x
            UnaryOp::Log => g.div(x)?,
            // d √x = 1 / (2√x)
            UnaryOp::Sqrt => g.div(&x.sqrt()?.mul_scalar(2.0)?)?,
            // d|x| = sign(x)
            UnaryOp::Abs => g.mul(&x.constant(UnaryOp::Sign))?,
            // d relu(x) = 1[x > 0]
            UnaryOp::Relu => g.relu_backward(x)?,
            // dσ = σ(1 − σ)
            UnaryOp::Sigmoid => {
                let s = x.sigmoid()?;
                g.mul(&s.mul(&s.neg()?.add_scalar(1.0)?)?)?
            }
            // d tanh = 1 − tanh²
            UnaryOp::Tanh => {
                let t = x.tanh()?;
                g.mul(&t.mul(&t)?.neg()?.add_scalar(1.0)?)?
            }
            // d softplus = σ
            UnaryOp::Softplus => g.mul(&x.sigmoid()?)?,
            // d xᵖ = p·xᵖ⁻¹
            UnaryOp::Powf(p) => {
                if p == 0.0 {
                    g.zeros_like()
                } else if p == 1.0 {
                    g.clone()
                } else {
                    g.mul(&x.powf(p - 1.0)?.mul_scalar(p)?)?
                }
            }
            UnaryOp::AddScalar(_) => g.clone(),
            UnaryOp::MulScalar(c) => g.mul_scalar(c)?,
            // d clamp = 1 inside (lo, hi)
            UnaryOp::Clamp(lo, hi) => g.mul(&x.constant(UnaryOp::InsideMask(lo, hi)))?,
            // d sin = cos
            UnaryOp::Sin => g.mul(&x.cos()?)?,
            // d cos = −sin
            UnaryOp::Cos => g.mul(&x.sin()?)?.neg()?,
            // d log(1 + x) = 1 / (1 + x)
            UnaryOp::Log1p => g.div(&x.add_scalar(1.0)?)?,
            // d (eˣ − 1) = eˣ = output + 1: the output, already computed (and in the graph).
            UnaryOp::Expm1 => g.mul(&output.add_scalar(1.0)?)?,
            // d x^(−½) = −½ x^(−3/2) = −½ · output³
            UnaryOp::Rsqrt => g.mul(&output.powf(3.0)?.mul_scalar(-0.5)?)?,
            // d erf = (2/√π) e^(−x²)
            UnaryOp::Erf => g.mul(
                &x.mul(x)?
                    .neg()?
                    .exp()?
                    .mul_scalar(std::f64::consts::FRAC_2_SQRT_PI)?,
            )?,
            UnaryOp::Sign
            | UnaryOp::NonZero
            | UnaryOp::Step
            | UnaryOp::LeakyMask(_)
            | UnaryOp::InsideMask(..)
            | UnaryOp::InfToZero => g.zeros_like(),
        };
        Ok(vec![Some(dx)])
    }
}

/// A differentiable binary primitive with broadcasting.
struct Binary(BinaryOp);

impl BackwardOp for Binary {
    fn name(&self) -> &'static str {
        match self.0 {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::MulStep => "relu_backward",
            BinaryOp::Max => "maximum",
            BinaryOp::Min => "minimum",
            BinaryOp::GtWeight => "mask",
        }
    }

    /// Each input's gradient is summed back over the axes it was broadcast along.
    fn backward(
        &self,
        inputs: &[Tensor],
        _output: &Tensor,
        g: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let (da, db) = match self.0 {
            BinaryOp::Add => (g.clone(), Some(g.clone())),
            BinaryOp::Sub => (g.clone(), Some(g.neg()?)),
            // ∂(ab)/∂a = b, ∂(ab)/∂b = a
            BinaryOp::Mul => (g.mul(b)?, Some(g.mul(a)?)),
            // ∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = −a/b²
            BinaryOp::Div => (g.div(b)?, Some(g.mul(a)?.div(&b.mul(b)?)?.neg()?)),
            // a·1[b > 0] is linear in a with the same mask; piecewise constant in b.
            BinaryOp::MulStep => (g.relu_backward(b)?, None),
            // ∂max/∂a = 1[a > b] + ½·1[a = b], ∂max/∂b = the rest: ties split ½/½. The weights
            // are piecewise constant, so they are constants of the graph.
            BinaryOp::Max => {
                let wa = Tensor::constant_binary(a, b, BinaryOp::GtWeight)?;
                let wb = Tensor::constant_binary(b, a, BinaryOp::GtWeight)?;
                (g.mul(&wa)?, Some(g.mul(&wb)?))
            }
            // ∂min/∂a = 1[a < b] + ½·1[a = b], likewise for b.
            BinaryOp::Min => {
                let wa = Tensor::constant_binary(b, a, BinaryOp::GtWeight)?;
                let wb = Tensor::constant_binary(a, b, BinaryOp::GtWeight)?;
                (g.mul(&wa)?, Some(g.mul(&wb)?))
            }
            // Piecewise constant in both.
            BinaryOp::GtWeight => (g.zeros_like(), None),
        };
        let da = if a.requires_grad() {
            Some(da.sum_to(a.shape())?)
        } else {
            None
        };
        let db = match db {
            Some(db) if b.requires_grad() => Some(db.sum_to(b.shape())?),
            _ => None,
        };
        Ok(vec![da, db])
    }
}

impl Tensor {
    fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let out = self.storage().unary(op);
        Ok(Tensor::from_op(
            out,
            self.shape().to_vec(),
            Unary(op),
            vec![self.clone()],
        ))
    }

    /// A piecewise-constant function of the values, outside the graph.
    pub(crate) fn constant(&self, op: UnaryOp) -> Tensor {
        Tensor::new_leaf(self.storage().unary(op), self.shape().to_vec())
    }

    /// A piecewise-constant function of two tensors' values (broadcast), outside the graph.
    fn constant_binary(a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let shape = kern::broadcast_shapes(a.shape(), b.shape())
            .ok_or_else(|| Error::shape("mask", "operand shapes do not broadcast"))?;
        let out = Storage::binary(
            op,
            "mask",
            (&a.storage(), a.shape()),
            (&b.storage(), b.shape()),
            &shape,
        )?;
        Ok(Tensor::new_leaf(out, shape))
    }

    fn binary(&self, other: &Tensor, op: BinaryOp, name: &'static str) -> Result<Tensor> {
        self.same_device(name, other)?;
        self.same_dtype(name, other)?;
        let shape = kern::broadcast_shapes(self.shape(), other.shape()).ok_or_else(|| {
            Error::shape(
                name,
                format!(
                    "shapes {:?} and {:?} do not broadcast",
                    self.shape(),
                    other.shape()
                ),
            )
        })?;
        crate::limits::checked_alloc(name, &shape, self.dtype(), self.device())?;
        let out = Storage::binary(
            op,
            name,
            (&self.storage(), self.shape()),
            (&other.storage(), other.shape()),
            &shape,
        )?;
        Ok(Tensor::from_op(
            out,
            shape,
            Binary(op),
            vec![self.clone(), other.clone()],
        ))
    }

    /// a + b, broadcasting.
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Add, "add")
    }
    /// a − b, broadcasting.
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Sub, "sub")
    }
    /// a · b elementwise, broadcasting.
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Mul, "mul")
    }
    /// g · 1\[x > 0\] (with g = self): the derivative rule of [`Tensor::relu`], one fused pass.
    /// Linear in g, so its own derivative is itself; zero almost everywhere in x.
    pub fn relu_backward(&self, x: &Tensor) -> Result<Tensor> {
        self.binary(x, BinaryOp::MulStep, "relu_backward")
    }
    /// max(a, b) elementwise, broadcasting; NaN if either is NaN, as PyTorch's `maximum`.
    ///
    /// ∂/∂a = 1\[a > b\] + ½·1[a = b] and ∂/∂b = 1\[b > a\] + ½·1[a = b]: the gradient goes to
    /// the larger, and is split evenly on ties (as PyTorch does).
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Max, "maximum")
    }
    /// min(a, b) elementwise, broadcasting; NaN if either is NaN, as PyTorch's `minimum`.
    ///
    /// ∂/∂a = 1\[a < b\] + ½·1[a = b] and ∂/∂b = 1\[b < a\] + ½·1[a = b]: the gradient goes to
    /// the smaller, and is split evenly on ties.
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Min, "minimum")
    }
    /// `a` where `self` (the condition) is nonzero, else `b`; the three shapes broadcast
    /// together. A NaN condition counts as nonzero (true). The condition is not differentiated.
    ///
    /// where(c, a, b) = sel(a, m) + sel(b, 1 − m) with m = 1[c ≠ 0] and sel(x, m) = x where
    /// m > 0, else 0 — a select ([`Tensor::relu_backward`]'s kernel), not a product, so an
    /// infinite or NaN value in the branch not taken never reaches the value or the gradient
    /// (a·m + b·(1 − m) would make ∞·0 = NaN). ∂/∂a = m and ∂/∂b = 1 − m, as selects of the
    /// incoming gradient, at every order.
    pub fn where_(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        const OP: &str = "where";
        self.same_device(OP, a)?;
        self.same_device(OP, b)?;
        self.same_dtype(OP, a)?;
        self.same_dtype(OP, b)?;
        let shape = kern::broadcast_shapes(a.shape(), b.shape())
            .and_then(|s| kern::broadcast_shapes(&s, self.shape()))
            .ok_or_else(|| {
                Error::shape(
                    OP,
                    format!(
                        "condition {:?}, a {:?} and b {:?} do not broadcast",
                        self.shape(),
                        a.shape(),
                        b.shape()
                    ),
                )
            })?;
        crate::limits::checked_alloc(OP, &shape, self.dtype(), self.device())?;
        let m = self.constant(UnaryOp::NonZero);
        let not_m = m.neg()?.add_scalar(1.0)?;
        // Broadcast the masks to the full shape first, so each select's result has it.
        let m = m.broadcast_to(&shape)?;
        let not_m = not_m.broadcast_to(&shape)?;
        a.relu_backward(&m)?.add(&b.relu_backward(&not_m)?)
    }
    /// a / b elementwise, broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Div, "div")
    }
    /// −x.
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    /// x + c.
    pub fn add_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::AddScalar(c))
    }
    /// x − c.
    pub fn sub_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::AddScalar(-c))
    }
    /// c·x.
    pub fn mul_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::MulScalar(c))
    }
    /// x / c (an error for c = 0).
    pub fn div_scalar(&self, c: f64) -> Result<Tensor> {
        if c == 0.0 {
            return Err(Error::argument("div_scalar", "division by zero"));
        }
        self.unary(UnaryOp::MulScalar(1.0 / c))
    }
    /// xᵖ for a real exponent p (x must be positive unless p is an integer).
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Powf(p))
    }
    /// eˣ.
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    /// √x (NaN for x < 0).
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    /// |x|; its derivative is sign(x), 0 at 0.
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    /// min(max(x, lo), hi).
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Tensor> {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(Error::argument(
                "clamp",
                format!("need lo <= hi, got lo {lo}, hi {hi}"),
            ));
        }
        self.unary(UnaryOp::Clamp(lo, hi))
    }
    /// max(x, 0).
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    /// x for x > 0, slope·x otherwise; written as x · mask(x) with a constant mask.
    pub fn leaky_relu(&self, slope: f64) -> Result<Tensor> {
        self.mul(&self.constant(UnaryOp::LeakyMask(slope)))
    }
    /// x for x > 0, α(eˣ − 1) otherwise; composed as relu(x) + α(e^min(x, 0) − 1), so its
    /// derivatives of every order come from those of relu and exp.
    ///
    /// min(x, 0) is x where x ≤ 0 (a select, so +∞ gives 0, not ∞·0), and its derivative is
    /// 1 there, 0 at x = 0 included: elu'(0) = α, the derivative from the left, as PyTorch and
    /// relu (relu'(0) = 0) have it.
    pub fn elu(&self, alpha: f64) -> Result<Tensor> {
        let non_positive = self.constant(UnaryOp::Step).neg()?.add_scalar(1.0)?; // 1[x ≤ 0]
        let negative_part = self.relu_backward(&non_positive)?; // min(x, 0)
        self.relu()?
            .add(&negative_part.exp()?.add_scalar(-1.0)?.mul_scalar(alpha)?)
    }
    /// σ(x) = 1 / (1 + e^(−x)).
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    /// tanh x.
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    /// log(1 + eˣ), stable for large |x|.
    pub fn softplus(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Softplus)
    }
    /// sin x; d/dx = cos x.
    pub fn sin(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sin)
    }
    /// cos x; d/dx = −sin x.
    pub fn cos(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Cos)
    }
    /// log(1 + x), accurate for small x; d/dx = 1/(1 + x).
    pub fn log1p(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log1p)
    }
    /// eˣ − 1, accurate for small x; d/dx = eˣ (the output plus one).
    pub fn expm1(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Expm1)
    }
    /// 1/√x; d/dx = −½ x^(−3/2) (−½ times the output cubed).
    pub fn rsqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Rsqrt)
    }
    /// The error function erf x = (2/√π)∫₀ˣ e^(−t²) dt; d/dx = (2/√π) e^(−x²).
    /// On the GPU it is a rational approximation good to about 1.5e-7 (f32 rounding).
    pub fn erf(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Erf)
    }
    /// GELU, PyTorch's default (exact) form: x·Φ(x) = ½x(1 + erf(x/√2)), Φ the standard
    /// normal CDF; d/dx = Φ(x) + x·φ(x).
    ///
    /// Composed of engine ops (erf is the primitive) rather than a kernel of its own: the
    /// derivatives of every order then follow from erf's, mul's and add's rules, where a fused
    /// kernel would need its derivative Φ + xφ, and that one's, written out again.
    pub fn gelu(&self) -> Result<Tensor> {
        let cdf = self
            .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)?
            .erf()?
            .add_scalar(1.0)?
            .mul_scalar(0.5)?;
        self.mul(&cdf)
    }
    /// GELU's tanh approximation (PyTorch's `approximate="tanh"`):
    /// ½x(1 + tanh(√(2/π)(x + 0.044715x³))). Composed of engine ops, as [`Tensor::gelu`].
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        let k = (2.0 / std::f64::consts::PI).sqrt();
        let inner = self
            .add(&self.powf(3.0)?.mul_scalar(0.044715)?)?
            .mul_scalar(k)?;
        self.mul(&inner.tanh()?.add_scalar(1.0)?.mul_scalar(0.5)?)
    }
    /// SiLU (swish): x·σ(x); d/dx = σ(x)(1 + x(1 − σ(x))).
    ///
    /// Composed as x times the sigmoid primitive, so its derivatives of every order follow
    /// from sigmoid's rule (which reuses its output) and mul's.
    pub fn silu(&self) -> Result<Tensor> {
        self.mul(&self.sigmoid()?)
    }
}

// ---- gradient-check cases ------------------------------------------------------------------

fn unary_case(
    rng: &mut Rng,
    domain: checks::Domain,
    f: fn(&Tensor) -> Result<Tensor>,
    label: &str,
) -> CheckCase {
    let shape = checks::random_shape(rng, 0, 3, 4);
    let x = checks::random_values(&shape, domain, rng);
    CheckCase::new(format!("{label} {shape:?}"), vec![x], move |t| f(&t[0]))
}

fn binary_case(
    rng: &mut Rng,
    positive_b: bool,
    f: fn(&Tensor, &Tensor) -> Result<Tensor>,
    label: &str,
) -> CheckCase {
    let (sa, sb) = checks::broadcast_pair(rng);
    let a = checks::random_values(&sa, checks::Domain::Any, rng);
    let domain = if positive_b {
        checks::Domain::Positive
    } else {
        checks::Domain::Any
    };
    let b = checks::random_values(&sb, domain, rng);
    CheckCase::new(
        format!("{label} {sa:?} with {sb:?}"),
        vec![a, b],
        move |t| f(&t[0], &t[1]),
    )
}

/// maximum/minimum of a broadcast pair whose values never tie or come close: a on the grid
/// k/10, b on the grid k/10 + 1/20, so |a − b| ≥ 0.05 everywhere.
fn extremum_case(
    rng: &mut Rng,
    f: fn(&Tensor, &Tensor) -> Result<Tensor>,
    label: &str,
) -> CheckCase {
    let (sa, sb) = checks::broadcast_pair(rng);
    let mut grid = |shape: &[usize], offset: f64| {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n)
            .map(|_| (rng.normal() * 10.0).round() / 10.0 + offset)
            .collect();
        Tensor::from_f64s(&v, shape, crate::DType::F64).expect("length matches shape")
    };
    let a = grid(&sa, 0.0);
    let b = grid(&sb, 0.05);
    CheckCase::new(
        format!("{label} {sa:?} with {sb:?}"),
        vec![a, b],
        move |t| f(&t[0], &t[1]),
    )
}

/// where(c, a, b) with the three shapes broadcasting; the condition (values 0 and ±1, some
/// NaN-free mix) is fixed in the case, made on the device and dtype of the inputs.
fn where_case(rng: &mut Rng) -> CheckCase {
    let (sa, sb) = checks::broadcast_pair(rng);
    let full = kern::broadcast_shapes(&sa, &sb).expect("a broadcast pair");
    // The condition: the full shape, or a suffix of it with some sizes 1.
    let keep = rng.below(full.len() + 1);
    let sc: Vec<usize> = full[full.len() - keep..]
        .iter()
        .map(|&d| if rng.uniform() < 0.4 { 1 } else { d })
        .collect();
    let n: usize = sc.iter().product();
    let cond: Vec<f64> = (0..n).map(|_| [0.0, 1.0, -2.0][rng.below(3)]).collect();
    let a = checks::random_values(&sa, checks::Domain::Any, rng);
    let b = checks::random_values(&sb, checks::Domain::Any, rng);
    CheckCase::new(
        format!("where cond {sc:?} a {sa:?} b {sb:?}"),
        vec![a, b],
        move |t| {
            let c = Tensor::from_f64s(&cond, &sc, t[0].dtype())?.to(t[0].device())?;
            c.where_(&t[0], &t[1])
        },
    )
}

pub(crate) fn checks() -> Vec<OpCheck> {
    use checks::Domain::*;
    vec![
        OpCheck::new("add", 2, |r| binary_case(r, false, Tensor::add, "add")),
        OpCheck::new("sub", 2, |r| binary_case(r, false, Tensor::sub, "sub")),
        OpCheck::new("mul", 2, |r| binary_case(r, false, Tensor::mul, "mul")),
        OpCheck::new("div", 2, |r| binary_case(r, true, Tensor::div, "div")),
        OpCheck::new("neg", 2, |r| unary_case(r, Any, Tensor::neg, "neg")),
        OpCheck::new("powf", 3, |r| {
            let p = [-1.5, 0.5, 2.0, 3.0][r.below(4)];
            let shape = checks::random_shape(r, 0, 3, 4);
            let x = checks::random_values(&shape, Positive, r);
            CheckCase::new(format!("powf({p}) {shape:?}"), vec![x], move |t| {
                t[0].powf(p)
            })
        }),
        OpCheck::new("exp", 3, |r| unary_case(r, Any, Tensor::exp, "exp")),
        OpCheck::new("log", 3, |r| unary_case(r, Positive, Tensor::log, "log")),
        OpCheck::new("sqrt", 3, |r| unary_case(r, Positive, Tensor::sqrt, "sqrt")),
        OpCheck::new("abs", 2, |r| {
            unary_case(r, AwayFromZero, Tensor::abs, "abs")
        }),
        OpCheck::new("clamp", 2, |r| {
            unary_case(r, AwayFromHalf, |x| x.clamp(-0.5, 0.5), "clamp(-0.5, 0.5)")
        }),
        OpCheck::new("relu", 3, |r| {
            unary_case(r, AwayFromZero, Tensor::relu, "relu")
        }),
        OpCheck::new("relu_backward", 2, |r| {
            let shape = checks::random_shape(r, 0, 3, 4);
            let g = checks::random_values(&shape, Any, r);
            let x = checks::random_values(&shape, AwayFromZero, r);
            CheckCase::new(format!("relu_backward {shape:?}"), vec![g, x], |t| {
                t[0].relu_backward(&t[1])
            })
        }),
        OpCheck::new("leaky_relu", 3, |r| {
            unary_case(r, AwayFromZero, |x| x.leaky_relu(0.1), "leaky_relu(0.1)")
        }),
        OpCheck::new("elu", 3, |r| {
            unary_case(r, AwayFromZero, |x| x.elu(1.3), "elu(1.3)")
        }),
        OpCheck::new("sigmoid", 3, |r| {
            unary_case(r, Any, Tensor::sigmoid, "sigmoid")
        }),
        OpCheck::new("tanh", 3, |r| unary_case(r, Any, Tensor::tanh, "tanh")),
        OpCheck::new("softplus", 3, |r| {
            unary_case(r, Any, Tensor::softplus, "softplus")
        }),
        OpCheck::new("sin", 3, |r| unary_case(r, Any, Tensor::sin, "sin")),
        OpCheck::new("cos", 3, |r| unary_case(r, Any, Tensor::cos, "cos")),
        OpCheck::new("log1p", 3, |r| {
            unary_case(r, Positive, Tensor::log1p, "log1p")
        }),
        OpCheck::new("expm1", 3, |r| unary_case(r, Any, Tensor::expm1, "expm1")),
        OpCheck::new("rsqrt", 3, |r| {
            unary_case(r, Positive, Tensor::rsqrt, "rsqrt")
        }),
        OpCheck::new("erf", 3, |r| unary_case(r, Any, Tensor::erf, "erf")),
        OpCheck::new("gelu", 3, |r| unary_case(r, Any, Tensor::gelu, "gelu")),
        OpCheck::new("gelu_tanh", 3, |r| {
            unary_case(r, Any, Tensor::gelu_tanh, "gelu_tanh")
        }),
        OpCheck::new("silu", 3, |r| unary_case(r, Any, Tensor::silu, "silu")),
        OpCheck::new("maximum", 2, |r| {
            extremum_case(r, Tensor::maximum, "maximum")
        }),
        OpCheck::new("minimum", 2, |r| {
            extremum_case(r, Tensor::minimum, "minimum")
        }),
        OpCheck::new("where_", 2, where_case),
    ]
}

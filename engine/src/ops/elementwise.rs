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
            UnaryOp::Sign
            | UnaryOp::Step
            | UnaryOp::LeakyMask(_)
            | UnaryOp::InsideMask(..)
            | UnaryOp::InfToZero => "mask",
        }
    }

    fn backward(
        &self,
        inputs: &[Tensor],
        _output: &Tensor,
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
            UnaryOp::Sign
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
    /// g · 1[x > 0] (with g = self): the derivative rule of [`Tensor::relu`], one fused pass.
    /// Linear in g, so its own derivative is itself; zero almost everywhere in x.
    pub fn relu_backward(&self, x: &Tensor) -> Result<Tensor> {
        self.binary(x, BinaryOp::MulStep, "relu_backward")
    }
    /// a / b elementwise, broadcasting.
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Div, "div")
    }
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    pub fn add_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::AddScalar(c))
    }
    pub fn sub_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::AddScalar(-c))
    }
    pub fn mul_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::MulScalar(c))
    }
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
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    /// Natural logarithm.
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
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
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    /// log(1 + eˣ), stable for large |x|.
    pub fn softplus(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Softplus)
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
    ]
}

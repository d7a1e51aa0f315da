//! Elementwise maps: one input (`UnaryOp`) or two inputs with NumPy broadcasting (`BinaryOp`).
//!
//! The op enums are shared with the GPU shaders, so each variant's formula is written once here
//! in [`UnaryOp::apply`] / [`BinaryOp::apply`] and mirrored in WGSL.
//!
//! NaN propagates as in IEEE arithmetic: every map of a NaN is NaN, the piecewise ones (relu,
//! clamp, the masks of their derivatives) included, where Rust's `max`/`min` would silently
//! pick the other operand. So a NaN weight cannot hide behind a ReLU and leave a finite loss.

use crate::{contiguous_strides, merge_axes, numel, pool, Real, PARALLEL_THRESHOLD};
use rayon::prelude::*;

/// Declares a family of pointwise ops once: the enum, the names that number them for the
/// shaders (code i is `NAMES[i]`, declared in WGSL as `UNARY_<name>` or `BINARY_<name>` by
/// `gpu::params::prelude`), `name()`, `with_constant_variant`, and one example of each op for
/// the tests. Adding an op is one line here, its CPU formula in `apply`, and its arm in the
/// WGSL. A variant's parameters are named (`Clamp(lo: f64, hi: f64)`) so that the dispatcher
/// can rebuild the variant from them.
macro_rules! pointwise_ops {
    (
        $(#[$meta:meta])*
        pub enum $enum:ident;
        $(
            $(#[$vmeta:meta])*
            $variant:ident $(($($param:ident: $field:ty),*))? = $name:literal, example [$($example:tt)+];
        )*
    ) => {
        $(#[$meta])*
        pub enum $enum {
            $( $(#[$vmeta])* $variant $(($($field),*))?, )*
        }

        impl $enum {
            /// Every op's name, in the order that numbers them for the shaders.
            pub const NAMES: &'static [&'static str] = &[$($name),*];
            /// One op of each kind, with sample parameters: the tests run every one of them.
            pub const EXAMPLES: &'static [$enum] = &[$($enum::$($example)+),*];

            /// The op's name in `NAMES`.
            pub fn name(self) -> &'static str {
                match self {
                    $( $enum::$variant { .. } => $name, )*
                }
            }

            /// Runs `kernel` with a function that returns this op, written out as its variant
            /// (`|| Clamp(lo, hi)`) in a separate instance of the kernel for each variant.
            /// Inside the kernel's loop the variant is then a constant, `apply`'s `match`
            /// folds away, and the loop can vectorize. Called with the op as a runtime value,
            /// every element went through a jump table: a quarter of a face-swap training
            /// step.
            pub fn with_constant_variant<K: OpKernel<$enum>>(self, kernel: K) -> K::Output {
                match self {
                    $( $enum::$variant $(($($param),*))? =>
                        kernel.run(move || $enum::$variant $(($($param),*))?), )*
                }
            }
        }
    };
}

/// A CPU kernel over one op family, written once and instantiated by
/// `UnaryOp::with_constant_variant` / `BinaryOp::with_constant_variant` once per variant.
pub trait OpKernel<Op> {
    /// What the kernel returns.
    type Output;
    /// The kernel, with `op()` in place of the op: it returns the same variant every call.
    fn run(self, op: impl Fn() -> Op + Copy + Send + Sync) -> Self::Output;
}

pointwise_ops! {
    /// A pointwise function of one value. Parameters are carried as `f64` and rounded to the
    /// element type when applied.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum UnaryOp;
    /// −x.
    Neg = "NEG", example [Neg];
    /// eˣ.
    Exp = "EXP", example [Exp];
    /// Natural logarithm.
    Log = "LOG", example [Log];
    /// √x (NaN for x < 0).
    Sqrt = "SQRT", example [Sqrt];
    /// |x|.
    Abs = "ABS", example [Abs];
    /// sign(x) ∈ {-1, 0, 1} (NaN for NaN).
    Sign = "SIGN", example [Sign];
    /// max(x, 0) (NaN for NaN).
    Relu = "RELU", example [Relu];
    /// 1 where x > 0, else 0 (NaN for NaN): the derivative of ReLU.
    Step = "STEP", example [Step];
    /// 1 where x > 0, else `slope` (NaN for NaN): leaky ReLU is x times this.
    LeakyMask(slope: f64) = "LEAKY_MASK", example [LeakyMask(0.2)];
    /// σ(x) = 1 / (1 + e^(−x)).
    Sigmoid = "SIGMOID", example [Sigmoid];
    /// tanh x.
    Tanh = "TANH", example [Tanh];
    /// log(1 + eˣ), computed as max(x, 0) + log1p(e^(−|x|)) so it never overflows.
    Softplus = "SOFTPLUS", example [Softplus];
    /// xᵖ.
    Powf(exponent: f64) = "POWF", example [Powf(3.0)];
    /// x + c.
    AddScalar(c: f64) = "ADD_SCALAR", example [AddScalar(0.7)];
    /// c·x.
    MulScalar(c: f64) = "MUL_SCALAR", example [MulScalar(-1.5)];
    /// min(max(x, lo), hi) (NaN for NaN).
    Clamp(lo: f64, hi: f64) = "CLAMP", example [Clamp(-0.5, 0.5)];
    /// 1 where lo < x < hi, else 0 (NaN for NaN): the derivative of clamp.
    InsideMask(lo: f64, hi: f64) = "INSIDE_MASK", example [InsideMask(-0.5, 0.5)];
    /// x, except ±∞ becomes 0: the shift logsumexp subtracts, so that a row of −∞ sums to −∞
    /// instead of NaN (−∞ − (−∞)).
    InfToZero = "INF_TO_ZERO", example [InfToZero];
    /// sin x.
    Sin = "SIN", example [Sin];
    /// cos x.
    Cos = "COS", example [Cos];
    /// log(1 + x), accurate for small x.
    Log1p = "LOG1P", example [Log1p];
    /// eˣ − 1, accurate for small x.
    Expm1 = "EXPM1", example [Expm1];
    /// 1/√x.
    Rsqrt = "RSQRT", example [Rsqrt];
    /// erf(x) = (2/√π)∫₀ˣ e^(−t²) dt.
    Erf = "ERF", example [Erf];
    /// 1 where x ≠ 0, else 0; NaN counts as nonzero (1), as a truth value: the mask of
    /// `where`.
    NonZero = "NON_ZERO", example [NonZero];
}

impl UnaryOp {
    /// The op's code for the shaders, and its two scalar parameters.
    pub fn code(self) -> (u32, f64, f64) {
        let code = Self::NAMES
            .iter()
            .position(|&n| n == self.name())
            .expect("every op is named in NAMES") as u32;
        let (c0, c1) = match self {
            UnaryOp::LeakyMask(c)
            | UnaryOp::Powf(c)
            | UnaryOp::AddScalar(c)
            | UnaryOp::MulScalar(c) => (c, 0.0),
            UnaryOp::Clamp(lo, hi) | UnaryOp::InsideMask(lo, hi) => (lo, hi),
            _ => (0.0, 0.0),
        };
        (code, c0, c1)
    }

    /// The op on one value, in the element type (the CPU kernel; the WGSL arm mirrors it).
    // Always inlined: the kernels call it with a constant variant (`with_constant_variant`),
    // and only inlined does its `match` fold away.
    #[inline(always)]
    pub fn apply<T: Real>(self, x: T) -> T {
        // The piecewise maps below test x against thresholds; a NaN fails every test, so it
        // is returned as it is before any of them runs.
        let piecewise = matches!(
            self,
            UnaryOp::Sign
                | UnaryOp::Relu
                | UnaryOp::Step
                | UnaryOp::LeakyMask(_)
                | UnaryOp::Clamp(..)
                | UnaryOp::InsideMask(..)
        );
        if piecewise && x.is_nan() {
            return x;
        }
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sign => {
                if x > T::ZERO {
                    T::ONE
                } else if x < T::ZERO {
                    -T::ONE
                } else {
                    T::ZERO
                }
            }
            UnaryOp::Relu => x.max(T::ZERO),
            UnaryOp::Step => {
                if x > T::ZERO {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            UnaryOp::LeakyMask(slope) => {
                if x > T::ZERO {
                    T::ONE
                } else {
                    T::from_f64(slope)
                }
            }
            UnaryOp::Sigmoid => {
                // Two branches so that e^(−x) never overflows.
                if x >= T::ZERO {
                    T::ONE / (T::ONE + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (T::ONE + e)
                }
            }
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Softplus => x.max(T::ZERO) + (-x.abs()).exp().ln_1p(),
            UnaryOp::Powf(p) => x.powf(T::from_f64(p)),
            UnaryOp::AddScalar(c) => x + T::from_f64(c),
            UnaryOp::MulScalar(c) => x * T::from_f64(c),
            UnaryOp::Clamp(lo, hi) => x.max(T::from_f64(lo)).min(T::from_f64(hi)),
            UnaryOp::InsideMask(lo, hi) => {
                if x > T::from_f64(lo) && x < T::from_f64(hi) {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
            UnaryOp::InfToZero => {
                if x.is_finite() || x.is_nan() {
                    x
                } else {
                    T::ZERO
                }
            }
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Log1p => x.ln_1p(),
            UnaryOp::Expm1 => x.exp_m1(),
            UnaryOp::Rsqrt => T::ONE / x.sqrt(),
            UnaryOp::Erf => x.erf(),
            UnaryOp::NonZero => {
                if x == T::ZERO {
                    T::ZERO
                } else {
                    T::ONE
                }
            }
        }
    }
}

pointwise_ops! {
    /// A pointwise function of two values.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum BinaryOp;
    /// a + b.
    Add = "ADD", example [Add];
    /// a − b.
    Sub = "SUB", example [Sub];
    /// a·b.
    Mul = "MUL", example [Mul];
    /// a / b.
    Div = "DIV", example [Div];
    /// a · 1\[b > 0\]: ReLU's derivative rule (a is the incoming gradient, b the input), fused
    /// so that it reads both once and writes once. Where b ≤ 0 the result is 0 whatever a is
    /// (an infinite gradient is not turned into NaN by 0·∞); where b is NaN it is NaN.
    MulStep = "MUL_STEP", example [MulStep];
    /// max(a, b); NaN if either is NaN (as PyTorch's `maximum`).
    Max = "MAX", example [Max];
    /// min(a, b); NaN if either is NaN (as PyTorch's `minimum`).
    Min = "MIN", example [Min];
    /// 1 where a > b, ½ where a = b, 0 where a < b: the share of max(a, b)'s gradient that goes
    /// to a (ties split evenly, as PyTorch does). A NaN operand takes it all (it is what max
    /// picks): 1 if only a is NaN, 0 if only b is, ½ if both.
    GtWeight = "GT_WEIGHT", example [GtWeight];
}

impl BinaryOp {
    /// The op's code for the shaders.
    pub fn code(self) -> u32 {
        Self::NAMES
            .iter()
            .position(|&n| n == self.name())
            .expect("every op is named in NAMES") as u32
    }

    /// The op on one pair of values, in the element type.
    // Always inlined: the kernels call it with a constant variant (`with_constant_variant`),
    // and only inlined does its `match` fold away.
    #[inline(always)]
    pub fn apply<T: Real>(self, a: T, b: T) -> T {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::MulStep => {
                if b > T::ZERO {
                    a
                } else if b.is_nan() {
                    b
                } else {
                    T::ZERO
                }
            }
            BinaryOp::Max => {
                if a.is_nan() || b.is_nan() {
                    a + b
                } else if a >= b {
                    a
                } else {
                    b
                }
            }
            BinaryOp::Min => {
                if a.is_nan() || b.is_nan() {
                    a + b
                } else if a <= b {
                    a
                } else {
                    b
                }
            }
            BinaryOp::GtWeight => {
                let half = T::from_f64(0.5);
                match (a.is_nan(), b.is_nan()) {
                    (true, true) => half,
                    (true, false) => T::ONE,
                    (false, true) => T::ZERO,
                    _ if a > b => T::ONE,
                    _ if a < b => T::ZERO,
                    _ => half,
                }
            }
        }
    }
}

/// `op` applied to every element of `x`.
pub fn unary<T: Real>(op: UnaryOp, x: &[T]) -> Vec<T> {
    struct Map<'a, T>(&'a [T]);
    impl<T: Real> OpKernel<UnaryOp> for Map<'_, T> {
        type Output = Vec<T>;
        fn run(self, op: impl Fn() -> UnaryOp + Copy + Send + Sync) -> Vec<T> {
            map_slice(self.0, move |v| op().apply(v))
        }
    }
    op.with_constant_variant(Map(x))
}

/// The NumPy broadcast of two shapes, or `None` if they are incompatible.
/// Shapes are aligned at their trailing dimensions; a dimension of 1 stretches.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Strides for reading a buffer of shape `shape` as if it had the (broadcast) shape `target`:
/// broadcast dimensions get stride 0.
pub fn broadcast_strides(shape: &[usize], target: &[usize]) -> Vec<usize> {
    let own = contiguous_strides(shape);
    let offset = target.len() - shape.len();
    (0..target.len())
        .map(|i| {
            if i < offset || shape[i - offset] == 1 {
                0
            } else {
                own[i - offset]
            }
        })
        .collect()
}

/// `op(a, b)` with NumPy broadcasting; `out_shape` must be `broadcast_shapes(a_shape, b_shape)`.
pub fn binary<T: Real>(
    op: BinaryOp,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
) -> Vec<T> {
    struct Broadcast<'a, T> {
        a: &'a [T],
        a_shape: &'a [usize],
        b: &'a [T],
        b_shape: &'a [usize],
        out_shape: &'a [usize],
    }
    impl<T: Real> OpKernel<BinaryOp> for Broadcast<'_, T> {
        type Output = Vec<T>;
        fn run(self, op: impl Fn() -> BinaryOp + Copy + Send + Sync) -> Vec<T> {
            let f = move |x, y| op().apply(x, y);
            broadcast_map(
                f,
                self.a,
                self.a_shape,
                self.b,
                self.b_shape,
                self.out_shape,
            )
        }
    }
    op.with_constant_variant(Broadcast {
        a,
        a_shape,
        b,
        b_shape,
        out_shape,
    })
}

/// `f(a, b)` elementwise with NumPy broadcasting.
fn broadcast_map<T: Real>(
    f: impl Fn(T, T) -> T + Copy + Sync,
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
) -> Vec<T> {
    let n = numel(out_shape);
    if n == 0 {
        return Vec::new();
    }
    // Fast paths: equal shapes, or one side a single value.
    if a.len() == n && b.len() == n {
        return zip_map(a, b, f);
    }
    if b.len() == 1 && a.len() == n {
        let y = b[0];
        return map_slice(a, move |x| f(x, y));
    }
    if a.len() == 1 && b.len() == n {
        let x = a[0];
        return map_slice(b, move |y| f(x, y));
    }
    let sa = broadcast_strides(a_shape, out_shape);
    let sb = broadcast_strides(b_shape, out_shape);
    let dims = merge_axes(out_shape, [&sa, &sb]);
    let (inner, [ia, ib]) = *dims.last().expect("n > 1 leaves an axis of size > 1");
    let outer = &dims[..dims.len() - 1];
    let mut out = pool::take(n);
    let fill_row = |row: usize, dst: &mut [T]| {
        // Offset of this row's first element in a and b.
        let (mut oa, mut ob, mut rem) = (0, 0, row);
        for &(size, [sa, sb]) in outer.iter().rev() {
            let i = rem % size;
            rem /= size;
            oa += i * sa;
            ob += i * sb;
        }
        match (ia, ib) {
            (1, 1) => dst
                .iter_mut()
                .zip(&a[oa..oa + inner])
                .zip(&b[ob..ob + inner])
                .for_each(|((o, &x), &y)| *o = f(x, y)),
            (1, 0) => {
                let y = b[ob];
                dst.iter_mut()
                    .zip(&a[oa..oa + inner])
                    .for_each(|(o, &x)| *o = f(x, y))
            }
            (0, 1) => {
                let x = a[oa];
                dst.iter_mut()
                    .zip(&b[ob..ob + inner])
                    .for_each(|(o, &y)| *o = f(x, y))
            }
            _ => dst
                .iter_mut()
                .enumerate()
                .for_each(|(j, o)| *o = f(a[oa + j * ia], b[ob + j * ib])),
        }
    };
    if n >= PARALLEL_THRESHOLD {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(r, dst)| fill_row(r, dst));
    } else {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(r, dst)| fill_row(r, dst));
    }
    out
}

/// Elements per rayon task: big enough that a task outweighs its scheduling.
const CHUNK: usize = 1 << 14;

fn map_slice<T: Real>(x: &[T], f: impl Fn(T) -> T + Sync) -> Vec<T> {
    let mut out = pool::take(x.len());
    let run = |(o, x): (&mut [T], &[T])| o.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v));
    if x.len() >= PARALLEL_THRESHOLD {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(run);
    } else {
        run((&mut out, x));
    }
    out
}

fn zip_map<T: Real>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let mut out = pool::take(a.len());
    let run = |((o, a), b): ((&mut [T], &[T]), &[T])| {
        o.iter_mut()
            .zip(a)
            .zip(b)
            .for_each(|((o, &x), &y)| *o = f(x, y))
    };
    if a.len() >= PARALLEL_THRESHOLD {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK))
            .zip(b.par_chunks(CHUNK))
            .for_each(run);
    } else {
        run(((&mut out, a), b));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_shapes_follow_numpy() {
        assert_eq!(broadcast_shapes(&[3, 1], &[4]), Some(vec![3, 4]));
        assert_eq!(broadcast_shapes(&[], &[2, 2]), Some(vec![2, 2]));
        assert_eq!(broadcast_shapes(&[3], &[4]), None);
    }

    #[test]
    fn binary_broadcasts_rows_and_columns() {
        let a = [1.0f64, 2.0, 3.0]; // [3, 1]
        let b = [10.0f64, 20.0]; // [2]
        let out = binary(BinaryOp::Add, &a, &[3, 1], &b, &[2], &[3, 2]);
        assert_eq!(out, vec![11.0, 21.0, 12.0, 22.0, 13.0, 23.0]);
    }

    /// The shaders number ops by NAMES: every op has one name there, and no two share one.
    #[test]
    fn every_op_has_its_own_shader_code() {
        let unary = UnaryOp::EXAMPLES;
        let mut codes: Vec<u32> = unary.iter().map(|op| op.code().0).collect();
        codes.sort_unstable();
        assert_eq!(codes, (0..UnaryOp::NAMES.len() as u32).collect::<Vec<_>>());
        let binary = BinaryOp::EXAMPLES;
        let mut codes: Vec<u32> = binary.iter().map(|op| op.code()).collect();
        codes.sort_unstable();
        assert_eq!(codes, (0..BinaryOp::NAMES.len() as u32).collect::<Vec<_>>());
    }

    /// Values that take every branch of the piecewise ops, NaN and the infinities included,
    /// repeated to `n` elements with a small drift so that neighbours differ.
    fn probe_values(n: usize) -> Vec<f64> {
        let special = [0.0, -0.0, 0.5, -0.5, 0.2, 3.0, -7.25, 1e-9, f64::NAN];
        let special = special.iter().chain(&[f64::INFINITY, f64::NEG_INFINITY]);
        let special: Vec<f64> = special.copied().collect();
        (0..n)
            .map(|i| special[i % special.len()] + (i / special.len()) as f64 * 1e-3)
            .collect()
    }

    /// Equal as bits, so that NaN matches NaN and −0 is told from +0.
    fn assert_same_bits(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(
                g.to_bits(),
                w.to_bits(),
                "{what}: element {i}: {g} against {w}"
            );
        }
    }

    /// The kernels run each op through `with_constant_variant`, which rebuilds the op from its
    /// variant and parameters: they must give what the op itself gives, element by element,
    /// on the serial and the parallel path.
    #[test]
    fn unary_kernel_applies_the_op_it_was_given() {
        for n in [37, PARALLEL_THRESHOLD + 5] {
            let x: Vec<f32> = probe_values(n).iter().map(|&v| v as f32).collect();
            for &op in UnaryOp::EXAMPLES {
                let want: Vec<f32> = x.iter().map(|&v| op.apply(v)).collect();
                assert_same_bits(&unary(op, &x), &want, &format!("{op:?}, n = {n}"));
            }
        }
    }

    /// Every path of `binary`: equal shapes, a single value on either side, a row and a column
    /// stretched, and a general broadcast, each against the op applied at the broadcast indices.
    #[test]
    fn binary_kernel_applies_the_op_it_was_given_on_every_broadcast_path() {
        let big = PARALLEL_THRESHOLD / 64 + 3; // rows × 64 columns past the parallel threshold
        let cases: [(&[usize], &[usize]); 7] = [
            (&[5, 7], &[5, 7]),
            (&[big, 64], &[big, 64]),
            (&[5, 7], &[]),
            (&[1], &[big, 64]),
            (&[big, 64], &[64]),
            (&[big, 1], &[big, 64]),
            (&[3, 1, 4], &[2, 1]),
        ];
        for (a_shape, b_shape) in cases {
            let out_shape = broadcast_shapes(a_shape, b_shape).expect("the cases broadcast");
            let a: Vec<f32> = probe_values(numel(a_shape))
                .iter()
                .map(|&v| v as f32)
                .collect();
            let b: Vec<f32> = probe_values(numel(b_shape) + 4)[4..]
                .iter()
                .map(|&v| v as f32)
                .collect();
            let (sa, sb) = (
                broadcast_strides(a_shape, &out_shape),
                broadcast_strides(b_shape, &out_shape),
            );
            let out_strides = contiguous_strides(&out_shape);
            let at = |flat: usize, strides: &[usize]| -> usize {
                let coords = out_shape
                    .iter()
                    .zip(&out_strides)
                    .map(|(&d, &s)| flat / s % d);
                coords.zip(strides).map(|(c, s)| c * s).sum()
            };
            for &op in BinaryOp::EXAMPLES {
                let want: Vec<f32> = (0..numel(&out_shape))
                    .map(|i| op.apply(a[at(i, &sa)], b[at(i, &sb)]))
                    .collect();
                let got = binary(op, &a, a_shape, &b, b_shape, &out_shape);
                assert_same_bits(
                    &got,
                    &want,
                    &format!("{op:?}, {a_shape:?} with {b_shape:?}"),
                );
            }
        }
    }

    #[test]
    fn new_maps_agree_with_known_values() {
        assert!((UnaryOp::Erf.apply(0.5f64) - 0.520_499_877_813_046_5).abs() < 1e-15);
        assert!((UnaryOp::Erf.apply(-0.5f32) + 0.520_499_9).abs() < 1e-6);
        assert_eq!(UnaryOp::Expm1.apply(1e-300f64), 1e-300);
        assert_eq!(UnaryOp::Log1p.apply(1e-300f64), 1e-300);
        assert_eq!(UnaryOp::Rsqrt.apply(4.0f64), 0.5);
        assert_eq!(UnaryOp::NonZero.apply(f64::NAN), 1.0);
        assert_eq!(UnaryOp::NonZero.apply(-0.0f64), 0.0);
        assert!(BinaryOp::Max.apply(1.0f64, f64::NAN).is_nan());
        assert!(BinaryOp::Min.apply(f64::NAN, 1.0f64).is_nan());
        assert_eq!(BinaryOp::Max.apply(1.0f64, 2.0), 2.0);
        assert_eq!(BinaryOp::Min.apply(1.0f64, 2.0), 1.0);
        assert_eq!(BinaryOp::GtWeight.apply(2.0f64, 2.0), 0.5);
        assert_eq!(BinaryOp::GtWeight.apply(3.0f64, 2.0), 1.0);
        assert_eq!(BinaryOp::GtWeight.apply(f64::NAN, 2.0), 1.0);
        assert_eq!(BinaryOp::GtWeight.apply(2.0, f64::NAN), 0.0);
    }

    #[test]
    fn softplus_and_sigmoid_are_stable_at_extremes() {
        assert_eq!(UnaryOp::Softplus.apply(1000.0f64), 1000.0);
        assert!(UnaryOp::Softplus.apply(-1000.0f64) >= 0.0);
        assert_eq!(UnaryOp::Sigmoid.apply(-1000.0f64), 0.0);
        assert_eq!(UnaryOp::Sigmoid.apply(1000.0f32), 1.0);
    }
}

//! The element types kernels compute in: `f32` for models, `f64` for tight gradient checks.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub};

/// A real floating-point element: just what the kernels need, implemented for `f32` and `f64`.
pub trait Real:
    Copy
    + Send
    + Sync
    + 'static
    + Default
    + Debug
    + Display
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + MulAssign
    + Sum
{
    /// 0, the additive identity: the start of sums and the value of zero-filled buffers.
    const ZERO: Self;
    /// 1, the multiplicative identity.
    const ONE: Self;
    /// −∞, the start of a running max (the max of an empty set).
    const NEG_INFINITY: Self;
    /// Converts from `f64`, rounding to nearest for `f32`: how constants and hyper-parameters
    /// enter a kernel.
    fn from_f64(v: f64) -> Self;
    /// Widens (or copies) to `f64`, exactly.
    fn to_f64(self) -> f64;
    /// eˣ.
    fn exp(self) -> Self;
    /// The natural logarithm ln x (NaN for x < 0, −∞ at 0).
    fn ln(self) -> Self;
    /// ln(1 + x), accurate for small |x| where `(1 + x).ln()` loses the digits of x.
    fn ln_1p(self) -> Self;
    /// √x (NaN for x < 0).
    fn sqrt(self) -> Self;
    /// tanh x = (eˣ − e⁻ˣ) / (eˣ + e⁻ˣ).
    fn tanh(self) -> Self;
    /// sin x (radians).
    fn sin(self) -> Self;
    /// cos x (radians).
    fn cos(self) -> Self;
    /// eˣ − 1, accurate for small x.
    fn exp_m1(self) -> Self;
    /// The error function (2/√π)∫₀ˣ e^(−t²) dt, from `libm` (std has none).
    fn erf(self) -> Self;
    /// |x|.
    fn abs(self) -> Self;
    /// xᵖ.
    fn powf(self, p: Self) -> Self;
    /// The larger of the two; if one is NaN, the other (IEEE 754 `maxNum`, as `f64::max`).
    fn max(self, other: Self) -> Self;
    /// The smaller of the two; if one is NaN, the other (IEEE 754 `minNum`, as `f64::min`).
    fn min(self, other: Self) -> Self;
    /// Neither infinite nor NaN.
    fn is_finite(self) -> bool;
    /// NaN, the one value not equal to itself.
    fn is_nan(self) -> bool;
}

macro_rules! impl_real {
    ($t:ty, $erf:path) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline]
            fn exp_m1(self) -> Self {
                <$t>::exp_m1(self)
            }
            #[inline]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn powf(self, p: Self) -> Self {
                <$t>::powf(self, p)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
impl_real!(f32, libm::erff);
impl_real!(f64, libm::erf);

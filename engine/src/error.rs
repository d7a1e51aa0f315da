//! Errors that name the op and what was wrong with its inputs.

use std::fmt;

/// What class of mistake an [`Error`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Shapes that do not fit the op (inner dimensions, broadcasting, ranks, sizes).
    Shape,
    /// Element types that do not match (f32 with f64).
    DType,
    /// Tensors on different devices, or a device that cannot be had.
    Device,
    /// An argument outside its valid range (an axis, a label, a probability).
    Argument,
    /// Autodiff misuse: backward from a non-scalar without a gradient, and the like.
    Autograd,
    /// A size that overflows, or a buffer over the allocation limit ([`crate::limits`]).
    Allocation,
}

/// An error from an engine op: `op` is the op's name, `message` says what was wrong, with the
/// shapes involved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The name of the op that refused, e.g. `"matmul"`.
    pub op: &'static str,
    /// The class of mistake, for callers that branch on it.
    pub kind: ErrorKind,
    /// What was wrong, with the shapes or values involved.
    pub message: String,
}

impl Error {
    /// An error of any kind.
    pub fn new(op: &'static str, kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            op,
            kind,
            message: message.into(),
        }
    }
    /// An [`ErrorKind::Shape`] error.
    pub fn shape(op: &'static str, message: impl Into<String>) -> Self {
        Self::new(op, ErrorKind::Shape, message)
    }
    /// An [`ErrorKind::Argument`] error.
    pub fn argument(op: &'static str, message: impl Into<String>) -> Self {
        Self::new(op, ErrorKind::Argument, message)
    }
    /// An [`ErrorKind::Autograd`] error.
    pub fn autograd(op: &'static str, message: impl Into<String>) -> Self {
        Self::new(op, ErrorKind::Autograd, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.message)
    }
}

impl std::error::Error for Error {}

/// The result of an engine op: `Err` carries an [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

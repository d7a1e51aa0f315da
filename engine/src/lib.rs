//! # ferrograd-engine
//!
//! Tensors, a reverse-mode tape whose backward passes are themselves recorded (so derivatives
//! of any order come from the same rules), and finite-difference gradient checks.
//!
//! ```
//! use ferrograd_engine::{grad, DType, Tensor};
//! # fn main() -> ferrograd_engine::Result<()> {
//! // f(x) = x³ at x = 2: f' = 3x² = 12, f'' = 6x = 12.
//! let x = Tensor::scalar(2.0, DType::F64).requires_grad_();
//! let y = x.powf(3.0)?;
//! let dy = grad(&[&y], &[&x], None, true)?.remove(0);
//! let d2y = grad(&[&dy], &[&x], None, false)?.remove(0);
//! assert_eq!((dy.item()?, d2y.item()?), (12.0, 12.0));
//! # Ok(()) }
//! ```

// Every public item is documented: readers learn from this source, and CI turns the
// warning into an error (clippy -D warnings).
#![warn(missing_docs)]

pub mod autograd;
mod backend;
pub mod checks;
mod custom;
pub mod error;
pub mod gradcheck;
mod indices;
pub mod limits;
pub mod ops;
pub mod rng;
pub mod storage;
pub mod tensor;

pub use autograd::{
    grad, grad_with, is_grad_enabled, live_nodes, no_grad, GradModeGuard, GradOptions,
};
pub use custom::{CustomOp, WgslKernel};
pub use error::{Error, ErrorKind, Result};
pub use ferrograd_kernels::Real;
pub use ops::conv::{Conv2dParams, ConvTranspose2dParams};
pub use ops::nn::{batch_norm, batch_norm_functional, BatchNormState, Reduction};
pub use ops::optim::{adam_step, sgd_step, AdamStep};
pub use ops::pool::Pool2d;
pub use rng::Rng;
pub use storage::{DType, Device, Element, Storage, TransferCounts};
pub use tensor::Tensor;

//! # ferrograd-nn
//!
//! The neural-network library on top of the engine, for anyone building models with ferrograd:
//!
//! - [`nn`]: layers (`Linear`, `Conv2d`, `ConvTranspose2d`, `BatchNorm2d`, `Dropout`,
//!   `Sequential`, …) with PyTorch's parameter names, the [`nn::Module`] trait, and the
//!   initializers ([`nn::init_param`]);
//! - [`optim`]: SGD (momentum, weight decay), Adam and AdamW, with state that can be saved;
//! - [`ema`]: the exponential moving average of weights that samples and previews draw from;
//! - [`loss`]: MSE, BCE, L1, weight penalties, KL to N(0, I), the GAN and AAE losses;
//! - [`checkpoint`]: named tensors in safetensors files, written atomically, and the one
//!   atomic file write ([`checkpoint::write_atomically`]) the rest of the workspace uses.
//!
//! Layers, optimizers and losses are tensor operations and fail with the engine's
//! [`ferrograd_engine::Error`]; this crate's own [`Error`] is the one for files (checkpoints),
//! and names the file at fault.
//!
//! What it does not do: read datasets, draw pictures, run training loops or parse command
//! lines — those are the course's (`ferrograd-models`, `ferrograd-plot`, the `ferrograd`
//! program). It depends on the engine, `safetensors` and `serde_json` only.

// Every public item is documented: readers learn from this source, and CI turns the
// warning into an error (clippy -D warnings).
#![warn(missing_docs)]

pub mod checkpoint;
pub mod ema;
pub mod loss;
pub mod nn;
pub mod optim;

pub use checkpoint::Error;

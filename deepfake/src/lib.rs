//! Face swap ("deepfake") on the ferrograd engine: a shared encoder E with one decoder per
//! identity, so that D_B(E(x_A)) draws B's face in A's pose and expression.
//!
//! - [`faces`]: LFW-layout face folders, crops and the held-out split;
//! - [`augment`]: the random rotation, scale, shift, flip and warp face-swap tools train on;
//! - [`model`]: encoder, two decoders, the latent prior (adversarial or variational), swap and mix;
//! - [`convert`]: the photograph with its face swapped, colour-matched and blended back;
//! - [`train`], [`eval`]: the training loop with previews and checkpoints, and the figures;
//! - [`identity`]: the A-vs-B classifier behind the identity score; [`quality`]: MAE, PSNR, SSIM;
//! - [`Error`]: the crate's one error type, naming the file or flag at fault.
//!
//! ```
//! use ferrograd_deepfake::model::{FaceSwap, Side, SwapConfig};
//! use ferrograd_engine::{DType, Rng, Tensor};
//! use ferrograd_nn::nn::Ctx;
//! # fn main() -> ferrograd_engine::Result<()> {
//! let mut rng = Rng::new(0);
//! let mut model = FaceSwap::new(SwapConfig { latent: 32, ..SwapConfig::default() }, &mut rng)?;
//! // Faces are [N, 3, 100, 100] in [0, 1]; in training, inputs are warped and targets are not.
//! let a = Tensor::rand_uniform(&[2, 3, 100, 100], 0.0, 1.0, DType::F32, &mut rng)?;
//! let b = Tensor::rand_uniform(&[2, 3, 100, 100], 0.0, 1.0, DType::F32, &mut rng)?;
//! let losses = model.train_step((&a, &a), (&b, &b), &mut Ctx::train(1))?;
//! assert!(losses.reconstruction_a > 0.0);
//! let swapped = model.transfer(&a, Side::B)?; // D_B(E(x_A))
//! let strip = model.mix(&a.narrow(0, 0, 1)?, &b.narrow(0, 0, 1)?, 5, Side::A)?;
//! assert_eq!((swapped.shape(), strip.shape()), (&[2, 3, 100, 100][..], &[5, 3, 100, 100][..]));
//! # Ok(()) }
//! ```

pub mod augment;
pub mod convert;
pub mod error;
pub mod eval;
pub mod faces;
pub mod identity;
pub mod model;
pub mod picture;
pub mod quality;
pub mod train;

pub use error::{Error, Result};

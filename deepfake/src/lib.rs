//! Face swap ("deepfake") on the ferrograd engine: a shared encoder E with one decoder per
//! identity, so that D_B(E(x_A)) draws B's face in A's pose and expression.
//!
//! - [`faces`]: LFW-layout face folders, crops and the held-out split;
//! - [`augment`]: the random rotation, scale, shift, flip and warp face-swap tools train on;
//! - [`model`]: encoder, two decoders, the latent prior (adversarial or variational), swap and mix;
//! - [`train`], [`eval`]: the training loop with previews and checkpoints, and the figures;
//! - [`identity`]: the A-vs-B classifier behind the identity score; [`quality`]: MAE, PSNR, SSIM.

pub mod augment;
pub mod eval;
pub mod faces;
pub mod identity;
pub mod model;
pub mod picture;
pub mod quality;
pub mod train;

//! # ferrograd-models
//!
//! The course's models and how they are trained, on top of the engine and the
//! [`ferrograd_nn`] library: the Fashion-MNIST classifier, the generative models (AE, VAE, GAN,
//! AAE), the training loops behind `train` and `eval`, their settings, the Fashion-MNIST
//! reader, and the reference workloads.
//!
//! What it does not hold: layers, optimizers, losses and checkpoints (those are
//! [`ferrograd_nn`], a library of their own), pictures ([`ferrograd_plot`]), or the command line.

pub mod classifier;
pub mod data;
pub mod generative;
pub mod reference;
pub mod settings;
pub mod train;

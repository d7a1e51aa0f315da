//! # ferrograd-models
//!
//! The course's models and how they are trained, on top of the engine and the
//! [`ferrograd_nn`] library: the Fashion-MNIST classifier, the generative models (AE, VAE, GAN,
//! AAE), the training loops behind `train` and `eval`, their settings, the Fashion-MNIST
//! reader, and the reference workloads. Every failure is one [`Error`], whose variants keep
//! the causes of the crates below (a checkpoint's [`ferrograd_nn::Error`], a picture's
//! [`ferrograd_plot::Error`], the engine's).
//!
//! What it does not hold: layers, optimizers, losses and checkpoints (those are
//! [`ferrograd_nn`], a library of their own), pictures ([`ferrograd_plot`]), or the command line.

pub mod classifier;
pub mod data;
pub mod error;
pub mod evaluation;
pub mod experiments;
pub mod generative;
pub mod quality;
pub mod reference;
pub mod settings;
pub mod train;

pub use error::{Error, Result};

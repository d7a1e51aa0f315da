//! # ferrograd
//!
//! A reverse-mode automatic-differentiation engine whose backward passes are themselves
//! differentiable, with CPU kernels on rayon, and the models of a course on generative learning
//! and explainability on top. This crate re-exports the workspace's crates and builds the
//! `ferrograd` command-line program.
//!
//! - [`kernels`]: raw compute on flat buffers.
//! - [`engine`]: tensors, the tape, derivative rules, gradient checks.
//! - [`nn`]: layers, initializers, optimizers, losses, safetensors checkpoints.
//! - [`plot`]: PNG image grids, line plots and the bitmap font they are drawn with.

pub use ferrograd_engine as engine;
pub use ferrograd_kernels as kernels;
pub use ferrograd_nn as nn;
pub use ferrograd_plot as plot;

pub use ferrograd_engine::{grad, no_grad, DType, Error, Result, Rng, Tensor};

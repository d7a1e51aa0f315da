//! # ferrograd-models
//!
//! What the course's models are made of, on top of the engine: layers, optimizers, losses,
//! the Fashion-MNIST reader, checkpoints, pictures, and the generative models.

pub mod checkpoint;
pub mod classifier;
pub mod data;
pub mod generative;
pub mod loss;
pub mod nn;
pub mod optim;
pub mod plot;
pub mod reference;
pub mod settings;
pub mod train;

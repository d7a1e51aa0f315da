//! # ferrograd-models
//!
//! What the course's models are made of, on top of the engine: optimizers first.

pub mod optim;

//! Class activation maps for the ferrograd classifier.

pub mod metrics;
pub mod render;

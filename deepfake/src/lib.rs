//! Face swap ("deepfake") on the ferrograd engine: a shared encoder E with one decoder per
//! identity, so that D_B(E(x_A)) draws B's face in A's pose and expression.

pub mod augment;
pub mod faces;
pub mod picture;

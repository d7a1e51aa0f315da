//! Class activation maps for the ferrograd classifier: CAM, Grad-CAM, and Grad-CAM++ both in
//! the closed form every library uses and with the exact higher derivatives the engine
//! computes; pictures of them, and the measures of how faithful they are.
//!
//! ```no_run
//! use ferrograd_cam::{Method, Score, Target};
//! # fn demo(model: &ferrograd_models::classifier::Classifier, image: &ferrograd_engine::Tensor) -> ferrograd_engine::Result<()> {
//! // Grad-CAM++ at conv2 for class 7 (sneaker), with Y = exp(logit) and exact derivatives.
//! let target = Target { model, layer: 1, class: 7, score: Score::ExpLogit };
//! let explanation = target.explain(image, Method::GradCamPlusPlusExact)?;
//! assert_eq!((explanation.height, explanation.width), (14, 14));
//! # Ok(()) }
//! ```

pub mod exact;
pub mod maps;
pub mod maximize;
pub mod metrics;
pub mod metrics_log;
pub mod render;
pub mod road;
pub mod run;
pub mod saliency;
pub mod sanity;
pub mod taylor;

pub use exact::{diagonal_derivatives, diagonal_derivatives_at, Diagonal};
pub use maps::{Explanation, Method, Score, Target, EXACT_CHUNK};

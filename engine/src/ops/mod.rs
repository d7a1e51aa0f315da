//! The ops, one file per family; each file holds the forward calls, their derivative rules and
//! their gradient-check cases side by side.

pub mod channel;
pub mod conv;
pub mod elementwise;
pub mod matmul;
pub mod nn;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod shape;

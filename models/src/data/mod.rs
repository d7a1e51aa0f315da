//! Fashion-MNIST: the IDX reader, where the data is looked for, shuffled mini-batches.
//!
//! The data set comes as four IDX files (two splits, images and labels), usually gzip-compressed.
//! [`read_idx`] reads one such file and checks it byte for byte; [`FashionMnist`] finds the folder
//! holding the four files, loads them, and checks that they really are Fashion-MNIST (28x28
//! images, as many labels as images, labels below 10). A [`Split`] then hands out shuffled
//! mini-batches as engine tensors.
//!
//! Every failure is an [`Error::Data`] naming the file or folder at fault: a wrong download is the
//! most common way a first training run fails, and "invalid data" without a path helps nobody.

pub mod fashion_mnist;
pub mod idx;

pub use fashion_mnist::{Batches, FashionMnist, Split, CLASS_NAMES};
pub use idx::{read_idx, IdxArray};

use crate::Error;

//! Fashion-MNIST: the IDX reader, where the data is looked for, shuffled mini-batches.
//!
//! The data set comes as four IDX files (two splits, images and labels), usually gzip-compressed.
//! [`read_idx`] reads one such file and checks it byte for byte; [`FashionMnist`] finds the folder
//! holding the four files, loads them, and checks that they really are Fashion-MNIST (28x28
//! images, as many labels as images, labels below 10). A [`Split`] then hands out shuffled
//! mini-batches as engine tensors.
//!
//! Every failure is a [`DataError`] naming the file or folder at fault: a wrong download is the
//! most common way a first training run fails, and "invalid data" without a path helps nobody.

pub mod fashion_mnist;
pub mod idx;

pub use fashion_mnist::{Batches, FashionMnist, Split, CLASS_NAMES};
pub use idx::{read_idx, IdxArray};

use std::fmt;
use std::path::{Path, PathBuf};

/// A data-loading error: what is wrong, and in which file or folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    /// The file or folder at fault; `None` when no single one is (e.g. the data was found nowhere).
    pub path: Option<PathBuf>,
    pub message: String,
}

impl DataError {
    /// An error about the file or folder `path`.
    pub(crate) fn at(path: &Path, message: impl Into<String>) -> DataError {
        DataError {
            path: Some(path.to_path_buf()),
            message: message.into(),
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}: {}", path.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DataError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_path_when_known() {
        let with_path = DataError::at(Path::new("/tmp/x.idx"), "broken");
        assert_eq!(with_path.to_string(), "/tmp/x.idx: broken");
        let without = DataError {
            path: None,
            message: "nowhere".into(),
        };
        assert_eq!(without.to_string(), "nowhere");
    }
}

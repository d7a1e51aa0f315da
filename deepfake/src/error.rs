//! The crate's one error type: what went wrong with a face file or folder, a checkpoint's
//! metadata, a file of the run, a setting, or the run itself, naming the file or flag at fault.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong in the face swap.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A face file or an identity folder: "{path}: {message}".
    Face { path: PathBuf, message: String },
    /// A checkpoint's metadata that is not what `ferrograd deepfake train` writes:
    /// "{path}: {message}".
    Metadata { path: PathBuf, message: String },
    /// A file or folder of a run that could not be read or written: "{path}: {message}".
    File { path: PathBuf, message: String },
    /// A run that cannot go as asked (a resume with other settings or with nothing left to
    /// train, a face batch that does not fit); the message says what to do.
    Invalid { message: String },
    /// Training stopped because a loss or a weight is no longer finite.
    Diverged { message: String },
    /// A setting out of its range, or anything else from the course's models.
    Models(ferrograd_models::Error),
    /// A checkpoint file (reading, writing, its tensors).
    Checkpoint(ferrograd_nn::Error),
    /// A picture that could not be saved.
    Plot(ferrograd_plot::Error),
    /// A tensor operation.
    Engine(ferrograd_engine::Error),
}

/// This crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error about the face file or folder `path`.
    pub fn face(path: &Path, message: impl Into<String>) -> Error {
        Error::Face {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// An error about a checkpoint's metadata.
    pub fn metadata(path: &Path, message: impl Into<String>) -> Error {
        Error::Metadata {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// An error writing or reading a file of the run.
    pub fn file(path: &Path, message: impl Into<String>) -> Error {
        Error::File {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    /// The file or folder at fault, when one is.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Face { path, .. } | Error::Metadata { path, .. } | Error::File { path, .. } => {
                Some(path)
            }
            Error::Models(e) => e.path(),
            Error::Checkpoint(e) => Some(&e.path),
            Error::Plot(e) => Some(&e.path),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Face { path, message }
            | Error::Metadata { path, message }
            | Error::File { path, message } => write!(f, "{}: {message}", path.display()),
            Error::Invalid { message } | Error::Diverged { message } => f.write_str(message),
            Error::Models(e) => e.fmt(f),
            Error::Checkpoint(e) => e.fmt(f),
            Error::Plot(e) => e.fmt(f),
            Error::Engine(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Models(e) => Some(e),
            Error::Checkpoint(e) => Some(e),
            Error::Plot(e) => Some(e),
            Error::Engine(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ferrograd_models::Error> for Error {
    fn from(e: ferrograd_models::Error) -> Self {
        match e {
            // The causes both crates share stay in their own variants.
            ferrograd_models::Error::Checkpoint(e) => Error::Checkpoint(e),
            ferrograd_models::Error::Plot(e) => Error::Plot(e),
            ferrograd_models::Error::Engine(e) => Error::Engine(e),
            e => Error::Models(e),
        }
    }
}

impl From<ferrograd_nn::Error> for Error {
    fn from(e: ferrograd_nn::Error) -> Self {
        Error::Checkpoint(e)
    }
}

impl From<ferrograd_plot::Error> for Error {
    fn from(e: ferrograd_plot::Error) -> Self {
        Error::Plot(e)
    }
}

impl From<ferrograd_engine::Error> for Error {
    fn from(e: ferrograd_engine::Error) -> Self {
        Error::Engine(e)
    }
}

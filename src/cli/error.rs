//! The command line's one error type: a flag that cannot be used, a file of the report, a step
//! of the course that failed, or an error of the crates the commands run (kept as the cause).

use std::fmt;
use std::path::PathBuf;

/// What stopped a command; `main` prints it after "error: ".
#[derive(Debug)]
pub enum Error {
    /// A flag or argument that cannot be used, saying which and what it may be.
    Usage { message: String },
    /// A folder that could not be created.
    CreateFolder { path: PathBuf, message: String },
    /// A file of the course's report that could not be written: "{path}: {message}".
    File { path: PathBuf, message: String },
    /// A step of the course that ran and failed (its own messages were already shown).
    StepFailed { message: String },
    /// Writing the output.
    Io(std::io::Error),
    /// A tensor operation, a device, a gradient check.
    Engine(ferrograd_engine::Error),
    /// The course's models: settings, data, training and evaluation.
    Models(ferrograd_models::Error),
    /// The face swap.
    Deepfake(ferrograd_deepfake::Error),
    /// A checkpoint file.
    Checkpoint(ferrograd_nn::Error),
    /// A picture.
    Plot(ferrograd_plot::Error),
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage {
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage { message } | Error::StepFailed { message } => f.write_str(message),
            Error::CreateFolder { path, message } => {
                write!(f, "cannot create {}: {message}", path.display())
            }
            Error::File { path, message } => write!(f, "{}: {message}", path.display()),
            Error::Io(e) => e.fmt(f),
            Error::Engine(e) => e.fmt(f),
            Error::Models(e) => e.fmt(f),
            Error::Deepfake(e) => e.fmt(f),
            Error::Checkpoint(e) => e.fmt(f),
            Error::Plot(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Engine(e) => Some(e),
            Error::Models(e) => Some(e),
            Error::Deepfake(e) => Some(e),
            Error::Checkpoint(e) => Some(e),
            Error::Plot(e) => Some(e),
            _ => None,
        }
    }
}

macro_rules! from_cause {
    ($($variant:ident($t:ty)),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::$variant(e)
            }
        }
    )*};
}
from_cause!(
    Io(std::io::Error),
    Engine(ferrograd_engine::Error),
    Models(ferrograd_models::Error),
    Deepfake(ferrograd_deepfake::Error),
    Checkpoint(ferrograd_nn::Error),
    Plot(ferrograd_plot::Error)
);

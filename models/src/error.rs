//! The crate's one error type: what went wrong in a setting, the data, a checkpoint, a picture,
//! a tensor operation or a run, with a message that names the flag, file or folder at fault.

use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong in the course's models and their training.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A setting out of its range, with the flag and key that name it:
    /// "--latent 1000000000: must be from 1 to 4,096".
    Setting {
        /// The checkpoint metadata key (`latent`).
        key: &'static str,
        /// The command-line flag (`--latent`).
        flag: &'static str,
        /// The refused value, as written.
        value: String,
        /// What the value must be ("must be from 1 to 4096").
        rule: String,
    },
    /// The data set: what is wrong, and in which file or folder (`None` when no single one is,
    /// e.g. the data was found nowhere).
    Data {
        path: Option<PathBuf>,
        message: String,
    },
    /// A checkpoint's metadata that is not what `ferrograd train` writes, or a checkpoint that
    /// holds another kind of model: "{path}: {message}".
    Metadata { path: PathBuf, message: String },
    /// A file or folder of a run that could not be read or written.
    File { path: PathBuf, message: String },
    /// A run that cannot go as asked: an invalid setting, a resume with other settings or with
    /// nothing left to train, an empty split. The message says what to do.
    Invalid { message: String },
    /// Training stopped because a loss or a weight is no longer finite; the message says which
    /// checkpoint is kept and what to try.
    Diverged { message: String },
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
    /// The file or folder at fault, when one is.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Data { path, .. } => path.as_deref(),
            Error::Metadata { path, .. } | Error::File { path, .. } => Some(path),
            Error::Checkpoint(e) => Some(&e.path),
            Error::Plot(e) => Some(&e.path),
            _ => None,
        }
    }

    /// A setting out of its range.
    pub fn setting(
        key: &'static str,
        flag: &'static str,
        value: impl fmt::Display,
        rule: impl Into<String>,
    ) -> Error {
        Error::Setting {
            key,
            flag,
            value: value.to_string(),
            rule: rule.into(),
        }
    }

    /// An error about the data file or folder `path`.
    pub fn data(path: &Path, message: impl Into<String>) -> Error {
        Error::Data {
            path: Some(path.to_path_buf()),
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

    /// A setting error as a checkpoint's: the file, the metadata key and its value, and the flag
    /// whose range the value broke. Other errors are returned as they are.
    pub fn in_file(self, path: &Path) -> Error {
        match self {
            Error::Setting {
                key,
                flag,
                value,
                rule,
            } => Error::metadata(
                path,
                format!(
                    "metadata '{key}' = '{value}': {rule}, as for {flag} on the command line; the \
                     file is damaged or was not written by this version of ferrograd"
                ),
            ),
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Setting {
                flag, value, rule, ..
            } => write!(f, "{flag} {value}: {rule}"),
            Error::Data {
                path: Some(path),
                message,
            } => write!(f, "{}: {message}", path.display()),
            Error::Data {
                path: None,
                message,
            } => f.write_str(message),
            Error::Metadata { path, message } | Error::File { path, message } => {
                write!(f, "{}: {message}", path.display())
            }
            Error::Invalid { message } | Error::Diverged { message } => f.write_str(message),
            Error::Checkpoint(e) => e.fmt(f),
            Error::Plot(e) => e.fmt(f),
            Error::Engine(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Checkpoint(e) => Some(e),
            Error::Plot(e) => Some(e),
            Error::Engine(e) => Some(e),
            _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_path_when_known() {
        let with_path = Error::data(Path::new("/tmp/x.idx"), "broken");
        assert_eq!(with_path.to_string(), "/tmp/x.idx: broken");
        let without = Error::Data {
            path: None,
            message: "nowhere".into(),
        };
        assert_eq!(without.to_string(), "nowhere");
    }

    #[test]
    fn a_setting_names_its_flag_and_in_a_file_its_key() {
        let e = Error::setting("latent", "--latent", 0, "must be from 1 to 4,096");
        assert_eq!(e.to_string(), "--latent 0: must be from 1 to 4,096");
        assert_eq!(
            e.in_file(Path::new("run/c.safetensors")).to_string(),
            "run/c.safetensors: metadata 'latent' = '0': must be from 1 to 4,096, as for --latent \
             on the command line; the file is damaged or was not written by this version of \
             ferrograd"
        );
    }
}

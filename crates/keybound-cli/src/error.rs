//! The CLI's one error type. Every variant is bad input (exit code 2); a credential that
//! fails verification is not an error here but an outcome of `keybound verify`.
//!
//! Messages name the argument or file, never its contents: an argument may hold a
//! private key or a token.

use std::fmt;
use std::io;

/// Why a command could not run.
#[non_exhaustive]
#[derive(Debug)]
pub(crate) enum CliError {
    /// An `@file` argument could not be read.
    Read {
        /// Which argument, e.g. `--key`.
        what: &'static str,
        /// The file's path as given.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// An argument is not valid JSON.
    Json {
        /// Which argument.
        what: &'static str,
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
    },
    /// An argument has the wrong shape (wrong key type, missing member, …).
    Invalid {
        /// Which argument.
        what: &'static str,
        /// What is wrong, without echoing the value.
        reason: String,
    },
    /// The key file already exists and `--force` was not given.
    Exists {
        /// The file's path.
        path: String,
    },
    /// Writing a file or the output failed.
    Write {
        /// What was being written.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The system had no randomness to give.
    Random(String),
}

impl CliError {
    /// An [`CliError::Invalid`] from anything displayable.
    pub(crate) fn invalid(what: &'static str, reason: impl fmt::Display) -> Self {
        Self::Invalid {
            what,
            reason: reason.to_string(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { what, path, source } => {
                write!(f, "cannot read {what} from file {path:?}: {source}")
            }
            Self::Json { what, line, column } => write!(
                f,
                "{what} is not valid JSON (parse error at line {line}, column {column})"
            ),
            Self::Invalid { what, reason } => write!(f, "{what}: {reason}"),
            Self::Exists { path } => write!(
                f,
                "{path:?} already exists; pass --force to replace it (the old key is lost)"
            ),
            Self::Write { path, source } => write!(f, "cannot write {path}: {source}"),
            Self::Random(reason) => write!(f, "no randomness available: {reason}"),
        }
    }
}

impl std::error::Error for CliError {}

//! The crate's single error type and its mapping to Python exceptions.

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::PyErr;

/// Everything that can go wrong in the native decoders.
///
/// Every variant except [`Error::WrongType`] and [`Error::Arrow`] is a problem with the
/// *data* and becomes a Python `ValueError`; a wrong argument type becomes a `TypeError`,
/// an Arrow error (a bug) a `RuntimeError`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The payload is not strict, padded, standard-alphabet base64.
    #[error("invalid base64: {0}")]
    Base64(#[from] base64::DecodeError),

    /// A `str` payload with non-ASCII characters (which base64 never contains).
    #[error("invalid base64: string payload contains non-ASCII characters")]
    NonAscii,

    /// The base64-decoded bytes are not a complete raw-deflate stream.
    #[error("invalid deflate stream: {0}")]
    Deflate(String),

    /// The inflated bytes are not UTF-8.
    #[error("invalid UTF-8 in decoded payload: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),

    /// The inflated payload is larger than the decoder's limit (decompression bomb guard).
    #[error("decoded payload exceeds {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },

    /// The inflated text is not JSON, or not a message of the expected shape.
    #[error("invalid {topic} JSON: {reason}")]
    Json {
        /// The topic without `.z` (`CarData`, `Position`).
        topic: &'static str,
        /// What was wrong, and where.
        reason: String,
    },

    /// Building the Arrow arrays failed: a bug, not a problem with the data.
    #[error("internal error building Arrow arrays: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),

    /// An argument of the wrong Python type.
    #[error("{0}")]
    WrongType(String),

    /// An error in one item of a batch.
    #[error("payload {index}: {source}")]
    Item {
        /// Index of the offending item in the batch.
        index: usize,
        /// What was wrong with it.
        source: Box<Error>,
    },
}

impl Error {
    /// Attributes this error to item `index` of a batch.
    #[must_use]
    pub fn at(self, index: usize) -> Self {
        Self::Item {
            index,
            source: Box::new(self),
        }
    }

    /// Whether the error is about the argument's type rather than its content.
    #[must_use]
    pub fn is_type_error(&self) -> bool {
        match self {
            Self::WrongType(_) => true,
            Self::Item { source, .. } => source.is_type_error(),
            _ => false,
        }
    }
}

/// Result alias for the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for PyErr {
    fn from(err: Error) -> Self {
        if err.is_type_error() {
            PyTypeError::new_err(err.to_string())
        } else if matches!(err, Error::Arrow(_)) {
            PyRuntimeError::new_err(err.to_string())
        } else {
            PyValueError::new_err(err.to_string())
        }
    }
}

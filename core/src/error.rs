//! Errors of setting things up (addresses, TLS material, binding); a call's own failures are
//! `Status`es.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A URI, address or option that cannot be used.
    InvalidArgument,
    /// Certificates, keys or the TLS configuration.
    Tls,
    /// The operating system refused (bind, listen).
    Io,
    /// The server or channel was shut down.
    Closed,
}

#[derive(Clone, Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn tls(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Tls, message)
    }

    pub(crate) fn io(context: &str, e: std::io::Error) -> Error {
        Error::new(ErrorKind::Io, format!("{context}: {e}"))
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

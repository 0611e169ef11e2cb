//! gRPC status codes and the final status of a call.

use bytes::Bytes;
use std::fmt;

use crate::metadata::Metadata;

/// A gRPC status code. The numeric values are the ones every gRPC implementation uses and
/// cross every language boundary unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    /// The code for a numeric value; values outside 0..=16 are UNKNOWN, as the spec asks of
    /// any code a receiver does not know.
    pub fn from_u32(v: u32) -> Code {
        use Code::*;
        match v {
            0 => Ok,
            1 => Cancelled,
            2 => Unknown,
            3 => InvalidArgument,
            4 => DeadlineExceeded,
            5 => NotFound,
            6 => AlreadyExists,
            7 => PermissionDenied,
            8 => ResourceExhausted,
            9 => FailedPrecondition,
            10 => Aborted,
            11 => OutOfRange,
            12 => Unimplemented,
            13 => Internal,
            14 => Unavailable,
            15 => DataLoss,
            16 => Unauthenticated,
            _ => Unknown,
        }
    }

    /// The canonical upper-case name, as in `DEADLINE_EXCEEDED`.
    pub fn name(self) -> &'static str {
        use Code::*;
        match self {
            Ok => "OK",
            Cancelled => "CANCELLED",
            Unknown => "UNKNOWN",
            InvalidArgument => "INVALID_ARGUMENT",
            DeadlineExceeded => "DEADLINE_EXCEEDED",
            NotFound => "NOT_FOUND",
            AlreadyExists => "ALREADY_EXISTS",
            PermissionDenied => "PERMISSION_DENIED",
            ResourceExhausted => "RESOURCE_EXHAUSTED",
            FailedPrecondition => "FAILED_PRECONDITION",
            Aborted => "ABORTED",
            OutOfRange => "OUT_OF_RANGE",
            Unimplemented => "UNIMPLEMENTED",
            Internal => "INTERNAL",
            Unavailable => "UNAVAILABLE",
            DataLoss => "DATA_LOSS",
            Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of a call: a code, a human-readable message, optional binary details
/// (`grpc-status-details-bin`, usually a serialized `google.rpc.Status`) and the trailers
/// that came with it.
///
/// One pointer wide: results and futures that carry a `Status` stay small, so the hot
/// paths that return `Result<(), Status>` per message do not move a large error slot.
#[derive(Clone, PartialEq, Eq)]
pub struct Status(Box<Inner>);

#[derive(Clone, PartialEq, Eq)]
struct Inner {
    code: Code,
    message: String,
    details: Bytes,
    trailers: Metadata,
}

impl Status {
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status(Box::new(Inner {
            code,
            message: message.into(),
            details: Bytes::new(),
            trailers: Metadata::new(),
        }))
    }

    pub fn ok() -> Status {
        Status::new(Code::Ok, "")
    }

    pub fn with_details(mut self, details: Bytes) -> Status {
        self.0.details = details;
        self
    }

    pub fn with_trailers(mut self, trailers: Metadata) -> Status {
        self.0.trailers = trailers;
        self
    }

    pub fn code(&self) -> Code {
        self.0.code
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    pub fn details(&self) -> &Bytes {
        &self.0.details
    }

    pub fn trailers(&self) -> &Metadata {
        &self.0.trailers
    }

    pub fn trailers_mut(&mut self) -> &mut Metadata {
        &mut self.0.trailers
    }

    pub fn is_ok(&self) -> bool {
        self.0.code == Code::Ok
    }

    pub(crate) fn cancelled(message: impl Into<String>) -> Status {
        Status::new(Code::Cancelled, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Status {
        Status::new(Code::Internal, message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Status {
        Status::new(Code::Unavailable, message)
    }

    pub(crate) fn deadline_exceeded() -> Status {
        Status::new(Code::DeadlineExceeded, "deadline exceeded")
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Status");
        d.field("code", &self.0.code)
            .field("message", &self.0.message);
        if !self.0.details.is_empty() {
            d.field("details", &self.0.details);
        }
        if !self.0.trailers.is_empty() {
            d.field("trailers", &self.0.trailers);
        }
        d.finish()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.message.is_empty() {
            write!(f, "{}", self.0.code)
        } else {
            write!(f, "{}: {}", self.0.code, self.0.message)
        }
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_become_unknown() {
        assert_eq!(Code::from_u32(17), Code::Unknown);
        assert_eq!(Code::from_u32(16), Code::Unauthenticated);
        assert_eq!(Code::Unavailable as u32, 14);
    }
}

//! The header names the protocols read and write, each made once. A `&str` handed to a
//! `HeaderMap` becomes a name again at every lookup and insert (checked byte by byte and
//! matched against the standard names) before it is hashed; a name made here is only
//! hashed. The HTTP standard ones are `http::header`'s.

use http::HeaderName;

pub(crate) static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub(crate) static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
pub(crate) static GRPC_STATUS_DETAILS_BIN: HeaderName =
    HeaderName::from_static("grpc-status-details-bin");
pub(crate) static GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
pub(crate) static GRPC_ACCEPT_ENCODING: HeaderName =
    HeaderName::from_static("grpc-accept-encoding");
pub(crate) static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
pub(crate) static X_GRPC_WEB: HeaderName = HeaderName::from_static("x-grpc-web");

pub(crate) static CONNECT_PROTOCOL_VERSION: HeaderName =
    HeaderName::from_static("connect-protocol-version");
pub(crate) static CONNECT_TIMEOUT_MS: HeaderName = HeaderName::from_static("connect-timeout-ms");
pub(crate) static CONNECT_CONTENT_ENCODING: HeaderName =
    HeaderName::from_static("connect-content-encoding");
pub(crate) static CONNECT_ACCEPT_ENCODING: HeaderName =
    HeaderName::from_static("connect-accept-encoding");

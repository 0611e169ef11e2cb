//! Which protocol over HTTP a request speaks, and how each one frames its messages.

use http::{Method, Request, StatusCode};
use std::borrow::Cow;

use super::grpc::RequestHead;
use super::terms::{Framing, NotACall, Protocol};
use super::{connect, grpc};
use crate::status::{Code, Status};

/// How a call travels over HTTP: its protocol and, for Connect, which of its two forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    Grpc,
    GrpcWeb,
    /// gRPC-Web's text mode: the same stream, base64-encoded.
    GrpcWebText,
    /// Connect's streaming form: envelopes, ended by an end-stream message.
    ConnectStream,
    /// Connect's unary form: the bare message as the body, errors as HTTP statuses.
    ConnectUnary,
}

impl Wire {
    pub(crate) fn protocol(self) -> Protocol {
        match self {
            Wire::Grpc => Protocol::Grpc,
            Wire::GrpcWeb | Wire::GrpcWebText => Protocol::GrpcWeb,
            Wire::ConnectStream | Wire::ConnectUnary => Protocol::Connect,
        }
    }

    /// Which protocol a request speaks, by its method and content type (parameters
    /// dropped, returned with it); a request that is none of them is refused with 405 or
    /// 415, as each protocol's spec asks.
    pub(crate) fn of_request(
        parts: &http::request::Parts,
    ) -> Result<(Wire, Cow<'_, str>), NotACall> {
        if parts.method == Method::GET {
            // Connect's GET names its codec in the query: `encoding=`.
            if let Some(codec) = connect::get::codec_of(parts.uri.query()) {
                return Ok((
                    Wire::ConnectUnary,
                    Cow::Owned(format!("application/{codec}")),
                ));
            }
        }
        if parts.method != Method::POST {
            return Err(NotACall {
                status: StatusCode::METHOD_NOT_ALLOWED,
                why: "gRPC, gRPC-Web and Connect requests are POST (Connect's GET names \
                      its codec in encoding=)\n",
                grpc_status: None,
            });
        }
        let ct = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let base = ct.split(';').next().unwrap_or("").trim();
        // Media types are case-insensitive; clients send them in lower case.
        let base: Cow<'_, str> = if base.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(base.to_ascii_lowercase())
        } else {
            Cow::Borrowed(base)
        };
        let wire = if grpc::is_grpc_content_type(&base) {
            Wire::Grpc
        } else if grpc::is_grpc_web_content_type(&base) {
            Wire::GrpcWeb
        } else if grpc::is_grpc_web_text_content_type(&base) {
            Wire::GrpcWebText
        } else if connect::is_streaming_content_type(&base) {
            Wire::ConnectStream
        } else if connect::is_unary_content_type(&base) {
            Wire::ConnectUnary
        } else {
            // gRPC's spec: "If Content-Type does not begin with "application/grpc", gRPC
            // servers SHOULD respond with HTTP status of 415 (Unsupported Media Type)."
            let s = Status::new(
                Code::InvalidArgument,
                format!("invalid gRPC request content-type {ct:?}"),
            );
            return Err(NotACall {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                why: "requests have content-type application/grpc, application/grpc-web, \
                      application/connect+<codec> or application/<codec>\n",
                grpc_status: Some(s),
            });
        };
        Ok((wire, base))
    }

    /// The codec a content type names: what follows `+` (gRPC, gRPC-Web, Connect
    /// streaming) or `application/` (Connect unary); `proto` when it names none.
    pub(crate) fn codec(self, base: &str) -> Cow<'static, str> {
        let named = match self {
            Wire::ConnectUnary => base.strip_prefix("application/"),
            _ => base.split_once('+').map(|(_, c)| c),
        };
        // The common names cost no allocation per call.
        match named.filter(|c| !c.is_empty()) {
            None | Some("proto") => Cow::Borrowed("proto"),
            Some("json") => Cow::Borrowed("json"),
            Some(other) => Cow::Owned(other.to_owned()),
        }
    }

    /// A client's request head.
    pub(crate) fn request(self, head: &RequestHead<'_>) -> Result<Request<()>, Status> {
        match self {
            Wire::Grpc => grpc::request(head, false),
            Wire::GrpcWeb | Wire::GrpcWebText => grpc::request(head, true),
            Wire::ConnectStream => connect::request(head, false),
            Wire::ConnectUnary => connect::request(head, true),
        }
    }

    /// How the send queue frames this wire's messages.
    pub(crate) fn framing(self) -> Framing {
        match self {
            Wire::ConnectUnary => Framing::Bare,
            _ => Framing::Envelope,
        }
    }
}

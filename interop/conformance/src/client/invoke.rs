//! One `ClientCompatRequest` as a call on the rillrpc client, the way the suite's client
//! protocol lays it out for each stream type (docs/testing_clients.md in the conformance
//! module; internal/app/referenceclient/impl.go is the reference): send, half-close,
//! cancel when told, and record everything the call gives back.
//!
//! `Err(String)` is for a request this client cannot make at all (an unsupported feature,
//! a malformed request); everything the call itself ends with, failures included, goes in
//! the `ClientResponseResult`.

use prost::Message;
use rillrpc::{
    Bytes, Call, CallOptions, Channel, ChannelOptions, ClientTls, Code, Encoding, HttpVersion,
    Idempotency, Protocol, Shape, Status,
};
use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::{sleep, Sleep};

use rill_conformance::codec::Codec;
use rill_conformance::headers::{of_metadata, to_metadata};
use rill_conformance::pb::client_compat_request::cancel::CancelTiming;
use rill_conformance::pb::client_compat_request::Cancel;
use rill_conformance::pb::{
    self, ClientCompatRequest, ClientResponseResult, ConformancePayload, StreamType,
};

const SERVICE: &str = "connectrpc.conformance.v1.ConformanceService";
const PACKAGE: &str = "connectrpc.conformance.v1";

/// The channels made so far, one per server and protocol: the runner starts a reference
/// server per configuration and sends every case of that configuration to it, so calls
/// share connections the way an application's would.
#[derive(Default)]
pub struct Channels(HashMap<Target, Channel>);

#[derive(Clone, PartialEq, Eq, Hash)]
struct Target {
    protocol: i32,
    http_version: i32,
    host: String,
    port: u32,
    server_cert: Vec<u8>,
    client_creds: Option<(Vec<u8>, Vec<u8>)>,
}

impl Channels {
    /// The channel for `req`'s server and protocol; `Err` if this client cannot speak to
    /// it the way `req` asks.
    pub fn get(&mut self, req: &ClientCompatRequest) -> Result<Channel, String> {
        let protocol = match req.protocol() {
            pb::Protocol::Grpc => Protocol::Grpc,
            pb::Protocol::GrpcWeb => Protocol::GrpcWeb,
            pb::Protocol::Connect => Protocol::Connect,
            other => return Err(format!("protocol {other:?} is not supported")),
        };
        let http_version = match req.http_version() {
            pb::HttpVersion::HttpVersion2 => HttpVersion::Http2,
            pb::HttpVersion::HttpVersion1 => HttpVersion::Http1,
            other => return Err(format!("{other:?} is not supported")),
        };
        let target = Target {
            protocol: req.protocol,
            http_version: req.http_version,
            host: req.host.clone(),
            port: req.port,
            server_cert: req.server_tls_cert.clone(),
            client_creds: req
                .client_tls_creds
                .as_ref()
                .map(|c| (c.cert.clone(), c.key.clone())),
        };
        if let Some(ch) = self.0.get(&target) {
            return Ok(ch.clone());
        }
        let tls = !target.server_cert.is_empty();
        let host = match target.host.contains(':') {
            true => format!("[{}]", target.host),
            false => target.host.clone(),
        };
        let url = format!(
            "{}://{host}:{}",
            if tls { "https" } else { "http" },
            target.port
        );
        let mut opts = ChannelOptions {
            protocol,
            http_version,
            // The reference server is on loopback: a connection that takes longer is a
            // failure to report, not to wait out.
            connect_timeout: Duration::from_secs(5),
            // GET only for calls marked free of side effects (`call_options`).
            http_get: true,
            ..ChannelOptions::default()
        };
        if tls {
            opts.tls = Some(ClientTls {
                // The runner's certificate is self-signed: trusting it as the CA is how
                // the suite asks clients to verify the server.
                ca_pem: Some(target.server_cert.clone()),
                server_name: None,
                identity: target.client_creds.clone(),
            });
        } else if target.client_creds.is_some() {
            return Err("client certificates without TLS".into());
        }
        let ch = Channel::with_options(&url, opts)
            .map_err(|e| format!("cannot make a channel to {url}: {e}"))?;
        self.0.insert(target, ch.clone());
        Ok(ch)
    }
}

/// A method of ConformanceService: its request message type and how to read the payload
/// out of its response message.
struct Method {
    name: &'static str,
    request: &'static str,
    shape: Shape,
    payload: PayloadOf,
}

type PayloadOf = fn(Codec, &[u8]) -> Result<Option<ConformancePayload>, String>;

const METHODS: [Method; 6] = [
    Method {
        name: "Unary",
        request: "UnaryRequest",
        shape: Shape::Unary,
        payload: |c, b| c.decode::<pb::UnaryResponse>(b).map(|r| r.payload),
    },
    Method {
        name: "IdempotentUnary",
        request: "IdempotentUnaryRequest",
        shape: Shape::Unary,
        payload: |c, b| {
            c.decode::<pb::IdempotentUnaryResponse>(b)
                .map(|r| r.payload)
        },
    },
    Method {
        name: "Unimplemented",
        request: "UnimplementedRequest",
        shape: Shape::Unary,
        payload: |c, b| c.decode::<pb::UnimplementedResponse>(b).map(|_| None),
    },
    Method {
        name: "ServerStream",
        request: "ServerStreamRequest",
        shape: Shape::ServerStreaming,
        payload: |c, b| c.decode::<pb::ServerStreamResponse>(b).map(|r| r.payload),
    },
    Method {
        name: "ClientStream",
        request: "ClientStreamRequest",
        shape: Shape::ClientStreaming,
        payload: |c, b| c.decode::<pb::ClientStreamResponse>(b).map(|r| r.payload),
    },
    Method {
        name: "BidiStream",
        request: "BidiStreamRequest",
        shape: Shape::Bidi,
        payload: |c, b| c.decode::<pb::BidiStreamResponse>(b).map(|r| r.payload),
    },
];

/// When to cancel, as `internal.GetCancelTiming` reads the request's `cancel`.
#[derive(Default)]
struct Timing {
    before_close_send: bool,
    after_close_send_ms: Option<u32>,
    after_responses: Option<u32>,
}

impl Timing {
    fn of(cancel: Option<&Cancel>) -> Timing {
        let Some(cancel) = cancel else {
            return Timing::default();
        };
        match cancel.cancel_timing {
            Some(CancelTiming::BeforeCloseSend(())) => Timing {
                before_close_send: true,
                ..Timing::default()
            },
            Some(CancelTiming::AfterCloseSendMs(ms)) => Timing {
                after_close_send_ms: Some(ms),
                ..Timing::default()
            },
            Some(CancelTiming::AfterNumResponses(n)) => Timing {
                after_responses: Some(n),
                ..Timing::default()
            },
            // A `cancel` that says nothing more means right after the half-close.
            None => Timing {
                after_close_send_ms: Some(0),
                ..Timing::default()
            },
        }
    }
}

/// Makes the call `req` describes on `channel` and says how it went.
pub async fn invoke(
    req: ClientCompatRequest,
    channel: Channel,
) -> Result<ClientResponseResult, String> {
    let service = req.service.as_deref().unwrap_or(SERVICE);
    if service != SERVICE {
        return Err(format!("service {service} is not {SERVICE}"));
    }
    // The runner names the method; without one, the stream type implies it.
    let name = match (req.method.as_deref(), req.stream_type()) {
        (Some(name), _) => name,
        (None, StreamType::Unary) => "Unary",
        (None, StreamType::ServerStream) => "ServerStream",
        (None, StreamType::ClientStream) => "ClientStream",
        (None, StreamType::HalfDuplexBidiStream | StreamType::FullDuplexBidiStream) => "BidiStream",
        (None, StreamType::Unspecified) => return Err("neither a method nor a stream type".into()),
    };
    let method = METHODS
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| format!("{SERVICE} has no method {name}"))?;
    if req.raw_request.is_some() {
        return Err("raw_request is for the reference client only".into());
    }
    let codec = match req.codec() {
        pb::Codec::Proto | pb::Codec::Unspecified => Codec::Proto,
        pb::Codec::Json => Codec::Json,
        other => return Err(format!("codec {other:?} is not supported")),
    };
    let messages = request_messages(&req, method, codec)?;
    let opts = call_options(&req, codec)?;
    let path = format!("/{service}/{}", method.name);
    let timing = Timing::of(req.cancel.as_ref());
    let delay = Duration::from_millis(req.request_delay_ms.into());

    let call = match method.shape {
        Shape::Unary | Shape::ServerStreaming => {
            let [msg] = &messages[..] else {
                return Err(format!(
                    "{} takes exactly one request message, the request has {}",
                    method.name,
                    messages.len()
                ));
            };
            channel.open_with_request(&path, method.shape, opts, msg)
        }
        Shape::ClientStreaming | Shape::Bidi => channel.open(&path, method.shape, opts),
    };
    let call = match call {
        Ok(call) => call,
        // Refused before anything left (metadata the core will not send, say).
        Err(s) => {
            return Ok(ClientResponseResult {
                error: Some(error(&s)),
                ..ClientResponseResult::default()
            })
        }
    };
    let mut c = Calling {
        call,
        codec,
        payload: method.payload,
        payloads: Vec::new(),
        cancel_after: timing.after_responses.map(|n| n as usize),
        single_response: method.shape.single_response(),
        error: None,
        unsent: 0,
    };
    let full_duplex = req.stream_type() == StreamType::FullDuplexBidiStream;
    c.drive(method.shape, &messages, &timing, delay, full_duplex)
        .await;
    Ok(c.result().await)
}

/// The request messages as the runner gave them: each `Any` must hold the method's request
/// type, and goes out in the call's codec (its bytes as they are for proto).
fn request_messages(
    req: &ClientCompatRequest,
    method: &Method,
    codec: Codec,
) -> Result<Vec<Bytes>, String> {
    let want = format!("{PACKAGE}.{}", method.request);
    req.request_messages
        .iter()
        .map(|any| {
            // The type URL's prefix is anything up to the last slash.
            let name = any.type_url.rsplit('/').next().unwrap_or_default();
            match name == want {
                true => codec.encode_binary(&want, &any.value).map(Bytes::from),
                false => Err(format!(
                    "{} takes {want}, the request has a {name}",
                    method.name
                )),
            }
        })
        .collect()
}

fn call_options(req: &ClientCompatRequest, codec: Codec) -> Result<CallOptions, String> {
    let mut opts = CallOptions::new().metadata(to_metadata(&req.request_headers)?);
    // Proto is the core's default; naming it would change gRPC's content type from the
    // `application/grpc` that connect-go's client sends.
    if codec != Codec::Proto {
        opts = opts.content_subtype(codec.name());
    }
    if let Some(ms) = req.timeout_ms {
        opts = opts.timeout(Duration::from_millis(ms.into()));
    }
    match req.compression() {
        pb::Compression::Identity | pb::Compression::Unspecified => {}
        pb::Compression::Gzip => opts = opts.compression(Encoding::Gzip),
        pb::Compression::Deflate => opts = opts.compression(Encoding::Deflate),
        pb::Compression::Br => opts = opts.compression(Encoding::Brotli),
        pb::Compression::Zstd => opts = opts.compression(Encoding::Zstd),
        other => return Err(format!("compression {other:?} is not supported")),
    }
    if req.message_receive_limit > 0 {
        opts = opts.max_recv_message_size(req.message_receive_limit as usize);
    }
    if req.use_get_http_method {
        // IdempotentUnary's `idempotency_level = NO_SIDE_EFFECTS`, which a stub generated
        // from the suite's proto would pass.
        opts = opts.idempotency(Idempotency::NoSideEffects);
    }
    Ok(opts)
}

fn timer(ms: u32) -> Pin<Box<Sleep>> {
    Box::pin(sleep(Duration::from_millis(ms.into())))
}

/// A call in progress and what it has given back so far.
struct Calling {
    call: Call,
    codec: Codec,
    payload: PayloadOf,
    payloads: Vec<ConformancePayload>,
    /// Cancel right after this many response messages.
    cancel_after: Option<usize>,
    /// Unary and client streaming: the answer is one message or an error, never both.
    single_response: bool,
    error: Option<Status>,
    unsent: usize,
}

impl Calling {
    /// Sends, half-closes, cancels and reads the way the call's shape and `timing` say.
    async fn drive(
        &mut self,
        shape: Shape,
        messages: &[Bytes],
        timing: &Timing,
        delay: Duration,
        full_duplex: bool,
    ) {
        match shape {
            Shape::Unary => {
                // The unary API would block until the answer, so the cancel runs beside it.
                let mut timer = timing.after_close_send_ms.map(timer);
                self.rest(&mut timer).await;
            }
            Shape::ServerStreaming => {
                if let Some(ms) = timing.after_close_send_ms {
                    sleep(Duration::from_millis(ms.into())).await;
                    self.call.cancel();
                }
                self.rest(&mut None).await;
            }
            Shape::ClientStreaming => {
                self.send_all(messages, delay, false).await;
                if timing.before_close_send {
                    self.call.cancel();
                } else {
                    self.call.close_send();
                }
                // As for unary: "close and receive" is one step, the cancel runs beside it.
                let mut timer = timing.after_close_send_ms.map(timer);
                self.rest(&mut timer).await;
            }
            Shape::Bidi => {
                self.send_all(messages, delay, full_duplex).await;
                if timing.before_close_send {
                    self.call.cancel();
                } else {
                    self.call.close_send();
                }
                if let Some(ms) = timing.after_close_send_ms {
                    sleep(Duration::from_millis(ms.into())).await;
                    self.call.cancel();
                }
                if self.error.is_none() {
                    self.rest(&mut None).await;
                }
            }
        }
    }

    /// Sends `messages`, each after `delay`; a full-duplex call reads one response after
    /// each. Stops at the first failure, counting what was not sent.
    async fn send_all(&mut self, messages: &[Bytes], delay: Duration, full_duplex: bool) {
        for (i, msg) in messages.iter().enumerate() {
            if !delay.is_zero() {
                sleep(delay).await;
            }
            if self.call.send(msg.clone()).await.is_err() {
                // A send fails once the call has ended; the receives that follow give the
                // end's own status.
                self.unsent = messages.len() - i;
                return;
            }
            if full_duplex && !self.next(&mut None).await {
                return;
            }
        }
    }

    /// Reads the next response message and records it (or the call's error); false once
    /// the call has no more.
    async fn next(&mut self, cancel_at: &mut Option<Pin<Box<Sleep>>>) -> bool {
        let got = loop {
            let Some(timer) = cancel_at.as_mut() else {
                break self.call.recv().await;
            };
            tokio::select! {
                got = self.call.recv() => break got,
                () = timer.as_mut() => {
                    *cancel_at = None;
                    self.call.cancel();
                }
            }
        };
        let msg = match got {
            Ok(Some(msg)) => msg,
            Ok(None) => return false,
            Err(s) => {
                self.error = Some(s);
                return false;
            }
        };
        match (self.payload)(self.codec, &msg) {
            // "An empty response message is possible": its payload is an empty one.
            Ok(p) => self.payloads.push(p.unwrap_or_default()),
            Err(e) => {
                self.call.cancel();
                self.error = Some(Status::new(
                    Code::Internal,
                    format!("cannot decode a response message: {e}"),
                ));
                return false;
            }
        }
        if self.cancel_after == Some(self.payloads.len()) {
            self.call.cancel();
        }
        true
    }

    /// Reads every remaining response message.
    async fn rest(&mut self, cancel_at: &mut Option<Pin<Box<Sleep>>>) {
        while self.next(cancel_at).await {}
    }

    async fn result(mut self) -> ClientResponseResult {
        if self.call.status().is_none() {
            // Left with the call still open (a send failed and the receive gave a message):
            // it ends the way a dropped one would.
            self.call.cancel();
            let _ = self.call.finish().await;
        }
        if self.single_response && self.error.is_some() {
            // A message the call received before failing (a second one, a missing status)
            // is no answer: the suite's unary and client-stream APIs give the error alone.
            self.payloads.clear();
        }
        let headers = self.call.headers().await.unwrap_or_default();
        let trailers = self.call.trailers().cloned().unwrap_or_default();
        ClientResponseResult {
            response_headers: of_metadata(&headers),
            payloads: self.payloads,
            error: self.error.as_ref().map(error),
            response_trailers: of_metadata(&trailers),
            num_unsent_requests: i32::try_from(self.unsent).unwrap_or(i32::MAX),
            http_status_code: None,
            feedback: Vec::new(),
        }
    }
}

/// A failed call's status as the suite's `Error`: its details are the `Any`s of the
/// `google.rpc.Status` the core keeps.
fn error(s: &Status) -> pb::Error {
    let details = match s.details().is_empty() {
        true => Vec::new(),
        false => pb::RpcStatus::decode(s.details().as_ref())
            .map(|rpc| rpc.details)
            .unwrap_or_default(),
    };
    pb::Error {
        code: s.code() as i32,
        message: Some(s.message().to_owned()),
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD_NO_PAD;
    use base64::Engine;
    use prost_types::Any;
    use rillrpc::Metadata;

    #[test]
    fn an_empty_cancel_means_right_after_the_half_close() {
        let t = Timing::of(Some(&Cancel {
            cancel_timing: None,
        }));
        assert_eq!(t.after_close_send_ms, Some(0));
        assert!(!t.before_close_send && t.after_responses.is_none());
        assert!(Timing::of(None).after_close_send_ms.is_none());
    }

    #[test]
    fn request_messages_must_be_the_methods_type() {
        let any = |t: &str| Any {
            type_url: format!("type.googleapis.com/{PACKAGE}.{t}"),
            value: vec![1, 2],
        };
        let mut req = ClientCompatRequest {
            request_messages: vec![any("UnaryRequest")],
            ..ClientCompatRequest::default()
        };
        let got = request_messages(&req, &METHODS[0], Codec::Proto).unwrap();
        assert_eq!(got, vec![Bytes::from_static(&[1, 2])]);
        req.request_messages.push(any("ClientStreamRequest"));
        assert!(request_messages(&req, &METHODS[0], Codec::Proto).is_err());
    }

    #[test]
    fn request_messages_go_out_in_the_calls_codec() {
        let msg = pb::UnaryRequest {
            response_definition: None,
            request_data: vec![1, 2],
        };
        let req = ClientCompatRequest {
            request_messages: vec![Any::from_msg(&msg).unwrap()],
            ..ClientCompatRequest::default()
        };
        let got = request_messages(&req, &METHODS[0], Codec::Json).unwrap();
        assert_eq!(got, vec![Bytes::from_static(br#"{"requestData":"AQI="}"#)]);
    }

    #[test]
    fn error_details_are_the_statuss_anys() {
        let detail = Any {
            type_url: "type.googleapis.com/google.protobuf.Empty".into(),
            value: Vec::new(),
        };
        let rpc = pb::RpcStatus {
            code: Code::NotFound as i32,
            message: "gone".into(),
            details: vec![detail.clone()],
        };
        let s = Status::new(Code::NotFound, "gone").with_details(rpc.encode_to_vec().into());
        let e = error(&s);
        assert_eq!(e.code, pb::Code::NotFound as i32);
        assert_eq!(e.message.as_deref(), Some("gone"));
        assert_eq!(e.details, vec![detail]);
    }

    #[test]
    fn headers_group_values_by_name() {
        let mut md = Metadata::new();
        md.append_ascii("x-a", "1").unwrap();
        md.append_ascii("x-b", "2").unwrap();
        md.append_ascii("x-a", "3").unwrap();
        md.append_bin("x-c-bin", &[0, 255]).unwrap();
        let given = of_metadata(&md);
        assert_eq!(given[0].name, "x-a");
        assert_eq!(given[0].value, vec!["1", "3"]);
        assert_eq!(given[2].value, vec![STANDARD_NO_PAD.encode([0u8, 255])]);
        assert_eq!(of_metadata(&to_metadata(&given).unwrap()), given);
    }
}

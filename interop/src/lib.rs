//! grpc.testing.TestService, the service of gRPC's cross-implementation interop suite
//! (`doc/interop-test-descriptions.md` in grpc/grpc), on the rillrpc core: the server's
//! handlers, the client's test cases, and the runner that plays both against grpc-go.

pub mod cases;
pub mod flags;
pub mod run;
pub mod service;
pub mod tls;

/// The grpc.testing messages (prost). Only messages: calls go through the rillrpc core.
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/grpc.testing.rs"));
}

/// Method paths of grpc.testing.TestService and of UnimplementedService.
pub mod method {
    pub const EMPTY_CALL: &str = "/grpc.testing.TestService/EmptyCall";
    pub const UNARY_CALL: &str = "/grpc.testing.TestService/UnaryCall";
    pub const STREAMING_OUTPUT_CALL: &str = "/grpc.testing.TestService/StreamingOutputCall";
    pub const STREAMING_INPUT_CALL: &str = "/grpc.testing.TestService/StreamingInputCall";
    pub const FULL_DUPLEX_CALL: &str = "/grpc.testing.TestService/FullDuplexCall";
    pub const HALF_DUPLEX_CALL: &str = "/grpc.testing.TestService/HalfDuplexCall";
    /// Declared by TestService, implemented by no server.
    pub const UNIMPLEMENTED_CALL: &str = "/grpc.testing.TestService/UnimplementedCall";
    /// A service no server registers.
    pub const UNIMPLEMENTED_SERVICE_CALL: &str =
        "/grpc.testing.UnimplementedService/UnimplementedCall";
}

/// Metadata keys the server echoes (the "Echo Metadata" feature).
pub const ECHO_INITIAL: &str = "x-grpc-test-echo-initial";
pub const ECHO_TRAILING_BIN: &str = "x-grpc-test-echo-trailing-bin";

//! Server features no standard case reaches: HalfDuplexCall, interval_us, Echo Status on a
//! server stream, and bad requests.

use prost::Message;
use rill_interop::method::*;
use rill_interop::{pb, service};
use rillrpc::{Bytes, CallOptions, Channel, Code, ServerOptions};
use std::sync::Arc;

fn serve() -> Channel {
    let server = Arc::new(
        service::builder(ServerOptions::default())
            .bind("127.0.0.1:0")
            .unwrap(),
    );
    let ch = Channel::new(&format!("http://{}", server.local_addr())).unwrap();
    tokio::spawn(service::serve(server));
    ch
}

fn params(sizes: &[i32], interval_us: i32) -> Vec<pb::ResponseParameters> {
    sizes
        .iter()
        .map(|&size| pb::ResponseParameters {
            size,
            interval_us,
            ..Default::default()
        })
        .collect()
}

fn sizes(msgs: &[Bytes]) -> Vec<usize> {
    msgs.iter()
        .map(|m| {
            pb::StreamingOutputCallResponse::decode(&m[..])
                .unwrap()
                .payload
                .unwrap()
                .body
                .len()
        })
        .collect()
}

async fn all(call: &mut rillrpc::Call) -> Result<Vec<Bytes>, rillrpc::Status> {
    let mut out = Vec::new();
    while let Some(m) = call.recv().await? {
        out.push(m);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_duplex_answers_every_request_after_the_half_close() {
    let ch = serve();
    let mut call = ch.bidi(HALF_DUPLEX_CALL, CallOptions::new()).unwrap();
    for s in [[3, 5], [7, 0]] {
        let req = pb::StreamingOutputCallRequest {
            response_parameters: params(&s, 0),
            ..Default::default()
        };
        call.send(Bytes::from(req.encode_to_vec())).await.unwrap();
    }
    call.close_send();
    assert_eq!(sizes(&all(&mut call).await.unwrap()), [3, 5, 7, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intervals_keep_order_and_sizes() {
    let ch = serve();
    let req = pb::StreamingOutputCallRequest {
        response_parameters: params(&[1, 2, 3], 2000),
        ..Default::default()
    };
    let mut call = ch
        .server_streaming(
            STREAMING_OUTPUT_CALL,
            Bytes::from(req.encode_to_vec()),
            CallOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(sizes(&all(&mut call).await.unwrap()), [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stream_ends_with_the_requested_status() {
    let ch = serve();
    let req = pb::StreamingOutputCallRequest {
        response_parameters: params(&[1], 0),
        response_status: Some(pb::EchoStatus {
            code: 9,
            message: "as asked, 100%".into(),
        }),
        ..Default::default()
    };
    let mut call = ch
        .server_streaming(
            STREAMING_OUTPUT_CALL,
            Bytes::from(req.encode_to_vec()),
            CallOptions::new(),
        )
        .await
        .unwrap();
    let s = all(&mut call).await.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert_eq!(s.message(), "as asked, 100%");
}

async fn unary_status(ch: &Channel, req: Vec<u8>) -> rillrpc::Status {
    ch.unary(UNARY_CALL, Bytes::from(req), CallOptions::new())
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_invalid_argument() {
    let ch = serve();
    let negative = pb::SimpleRequest {
        response_size: -1,
        ..Default::default()
    };
    let s = unary_status(&ch, negative.encode_to_vec()).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s}");
    assert!(s.message().contains("invalid length"), "{s}");

    let unknown_type = pb::SimpleRequest {
        response_type: 7,
        ..Default::default()
    };
    let s = unary_status(&ch, unknown_type.encode_to_vec()).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s}");
    assert!(s.message().contains("response_type"), "{s}");

    // Field 3 (payload) as a varint: not a SimpleRequest.
    let s = unary_status(&ch, vec![0x18, 0x01]).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s}");
    assert!(s.message().contains("cannot decode"), "{s}");
}

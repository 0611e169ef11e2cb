//! The suite's two codecs, CODEC_PROTO and CODEC_JSON, as connect-go's codecs write and
//! read messages: protobuf's binary form, or its canonical JSON mapping (protojson's
//! defaults: lowerCamelCase names, default values left out, unknown fields ignored on
//! input). The core passes messages through as bytes, so each program picks the codec per
//! call: the server by the content type a request came with, the client by the case.

use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use std::sync::LazyLock;

/// The conformance messages' descriptors over the well-known types': an `Any` in JSON
/// names its message, which must be found here, as connect-go finds it in Go's global
/// registry (the well-known types and every message the program links).
static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    let mut pool = DescriptorPool::global();
    pool.decode_file_descriptor_set(
        &include_bytes!(concat!(env!("OUT_DIR"), "/conformance_descriptors.bin"))[..],
    )
    .expect("the build's descriptors of the conformance protos");
    pool
});

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Proto,
    Json,
}

impl Codec {
    /// The codec a content subtype names (`ServerCall::codec`, `CallOptions::content_subtype`).
    pub fn named(name: &str) -> Option<Codec> {
        match name {
            "proto" => Some(Codec::Proto),
            "json" => Some(Codec::Json),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Proto => "proto",
            Codec::Json => "json",
        }
    }

    pub fn encode<M: Message + Name>(self, msg: &M) -> Result<Vec<u8>, String> {
        self.encode_binary(&M::full_name(), &msg.encode_to_vec())
    }

    pub fn decode<M: Message + Name + Default>(self, bytes: &[u8]) -> Result<M, String> {
        let binary = self.decode_to_binary(&M::full_name(), bytes)?;
        M::decode(&binary[..]).map_err(|e| format!("cannot decode a {}: {e}", M::full_name()))
    }

    /// The message of type `type_name` whose binary form is `binary`, in this codec. Proto
    /// returns the bytes untouched, so what the runner gave is what goes out.
    pub fn encode_binary(self, type_name: &str, binary: &[u8]) -> Result<Vec<u8>, String> {
        if self == Codec::Proto {
            return Ok(binary.to_vec());
        }
        let msg = DynamicMessage::decode(descriptor(type_name)?, binary)
            .map_err(|e| format!("cannot decode a {type_name}: {e}"))?;
        let mut out = serde_json::Serializer::new(Vec::new());
        msg.serialize_with_options(&mut out, &SerializeOptions::new())
            .map_err(|e| format!("cannot write a {type_name} as JSON: {e}"))?;
        Ok(out.into_inner())
    }

    /// The binary form of the message of type `type_name` that `bytes` hold in this codec.
    /// Proto returns the bytes untouched, so the server echoes exactly what arrived.
    pub fn decode_to_binary(self, type_name: &str, bytes: &[u8]) -> Result<Vec<u8>, String> {
        if self == Codec::Proto {
            return Ok(bytes.to_vec());
        }
        // protojson's own error for this is a syntax error; connect-go words it better.
        if bytes.is_empty() {
            return Err("zero-length payload is not a valid JSON object".into());
        }
        // Unknown fields are dropped, as connect-go drops them: peers may know a newer schema.
        let opts = DeserializeOptions::new().deny_unknown_fields(false);
        let mut input = serde_json::Deserializer::from_slice(bytes);
        let msg =
            DynamicMessage::deserialize_with_options(descriptor(type_name)?, &mut input, &opts)
                .and_then(|m| input.end().map(|()| m))
                .map_err(|e| format!("cannot read a {type_name} from JSON: {e}"))?;
        Ok(msg.encode_to_vec())
    }
}

fn descriptor(type_name: &str) -> Result<prost_reflect::MessageDescriptor, String> {
    POOL.get_message_by_name(type_name)
        .ok_or_else(|| format!("no message type {type_name} is known"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;
    use prost_types::Any;

    fn request_info() -> pb::conformance_payload::RequestInfo {
        pb::conformance_payload::RequestInfo {
            timeout_ms: Some(1500),
            requests: vec![Any {
                type_url: pb::UnaryRequest::type_url(),
                value: pb::UnaryRequest {
                    response_definition: None,
                    request_data: vec![1, 2, 3],
                }
                .encode_to_vec(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn json_is_protojsons_mapping_with_anys_resolved() {
        let msg = pb::UnaryResponse {
            payload: Some(pb::ConformancePayload {
                data: b"hi".to_vec(),
                request_info: Some(request_info()),
            }),
        };
        let json = Codec::Json.encode(&msg).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let info = &v["payload"]["requestInfo"];
        assert_eq!(v["payload"]["data"], "aGk=");
        // int64 as a string; the Any's fields inline beside its @type.
        assert_eq!(info["timeoutMs"], "1500");
        assert_eq!(
            info["requests"][0]["@type"],
            "type.googleapis.com/connectrpc.conformance.v1.UnaryRequest"
        );
        assert_eq!(info["requests"][0]["requestData"], "AQID");
        assert_eq!(Codec::Json.decode::<pb::UnaryResponse>(&json).unwrap(), msg);
    }

    #[test]
    fn json_input_may_have_unknown_fields_but_not_be_empty() {
        let got: pb::UnaryRequest = Codec::Json
            .decode(br#"{"requestData": "AQ==", "fromANewerSchema": 1}"#)
            .unwrap();
        assert_eq!(got.request_data, vec![1]);
        assert!(Codec::Json.decode::<pb::UnaryRequest>(b"").is_err());
        assert!(Codec::Json.decode::<pb::UnaryRequest>(b"{} {}").is_err());
        assert_eq!(
            Codec::Json.decode::<pb::UnaryRequest>(b"{}").unwrap(),
            pb::UnaryRequest::default()
        );
    }

    #[test]
    fn proto_passes_bytes_through() {
        let bytes = [0x12, 0x01, 0x07];
        assert_eq!(
            Codec::Proto.encode_binary("not.Looked.Up", &bytes).unwrap(),
            bytes
        );
        assert_eq!(
            Codec::Proto
                .decode_to_binary("not.Looked.Up", &bytes)
                .unwrap(),
            bytes
        );
    }

    #[test]
    fn an_any_of_a_well_known_type_resolves_too() {
        let err = pb::Error {
            code: pb::Code::NotFound as i32,
            message: None,
            details: vec![Any {
                type_url: "type.googleapis.com/google.protobuf.FileDescriptorProto".into(),
                value: prost_types::FileDescriptorProto {
                    name: Some("x.proto".into()),
                    ..Default::default()
                }
                .encode_to_vec(),
            }],
        };
        let json = Codec::Json.encode(&err).unwrap();
        assert_eq!(Codec::Json.decode::<pb::Error>(&json).unwrap(), err);
    }
}

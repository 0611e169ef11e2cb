//! Call metadata: the custom headers and trailers of a call, ASCII or binary (`-bin`).

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use std::fmt;

/// Ordered multi-map of metadata entries. Keys are lower-case; a key ending in `-bin` holds
/// binary values, sent base64-encoded on the wire and handed back decoded.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    map: HeaderMap,
}

/// One value, as a caller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataValue {
    Ascii(String),
    Binary(Bytes),
}

/// Why an entry was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidMetadata(pub String);

impl fmt::Display for InvalidMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidMetadata {}

impl Metadata {
    pub fn new() -> Metadata {
        Metadata::default()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Adds an ASCII entry. The spec: "ASCII-Value → 1*( %x20-%x7E ) ; space and printable
    /// ASCII"; keys are `0-9 a-z _ - .` and must not end in `-bin`.
    pub fn append_ascii(&mut self, key: &str, value: &str) -> Result<(), InvalidMetadata> {
        let name = parse_key(key)?;
        if is_bin(name.as_str()) {
            return Err(InvalidMetadata(format!(
                "key {key:?} ends in -bin: use a binary value"
            )));
        }
        if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(InvalidMetadata(format!(
                "value for {key:?} is not printable ASCII: use a -bin key for binary data"
            )));
        }
        let v = HeaderValue::from_str(value).map_err(|e| InvalidMetadata(e.to_string()))?;
        self.map.append(name, v);
        Ok(())
    }

    /// Adds a binary entry; the key must end in `-bin`.
    pub fn append_bin(&mut self, key: &str, value: &[u8]) -> Result<(), InvalidMetadata> {
        let name = parse_key(key)?;
        if !is_bin(name.as_str()) {
            return Err(InvalidMetadata(format!(
                "binary value needs a key ending in -bin, got {key:?}"
            )));
        }
        let enc = STANDARD_NO_PAD.encode(value);
        let v = HeaderValue::from_str(&enc).map_err(|e| InvalidMetadata(e.to_string()))?;
        self.map.append(name, v);
        Ok(())
    }

    /// Adds an entry whose kind follows its key (binary for `-bin` keys).
    pub fn append(&mut self, key: &str, value: MetadataValue) -> Result<(), InvalidMetadata> {
        match value {
            MetadataValue::Ascii(s) => self.append_ascii(key, &s),
            MetadataValue::Binary(b) => self.append_bin(key, &b),
        }
    }

    /// First value for `key`, decoded.
    pub fn get(&self, key: &str) -> Option<MetadataValue> {
        let key = key.to_ascii_lowercase();
        self.map
            .get(key.as_str())
            .and_then(|v| decode_value(&key, v))
    }

    /// First ASCII value for `key`.
    pub fn get_ascii(&self, key: &str) -> Option<&str> {
        self.map
            .get(key.to_ascii_lowercase().as_str())
            .and_then(|v| v.to_str().ok())
    }

    /// First binary value for a `-bin` key, decoded.
    pub fn get_bin(&self, key: &str) -> Option<Bytes> {
        match self.get(key)? {
            MetadataValue::Binary(b) => Some(b),
            MetadataValue::Ascii(_) => None,
        }
    }

    /// Every value of `key`, decoded, in arrival order.
    pub fn get_all(&self, key: &str) -> Vec<MetadataValue> {
        let key = key.to_ascii_lowercase();
        self.map
            .get_all(key.as_str())
            .iter()
            .filter_map(|v| decode_value(&key, v))
            .collect()
    }

    /// Every entry, in arrival order within a key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, MetadataValue)> + '_ {
        self.map
            .iter()
            .filter_map(|(k, v)| decode_value(k.as_str(), v).map(|d| (k.as_str(), d)))
    }

    pub fn remove(&mut self, key: &str) {
        if key.bytes().any(|b| b.is_ascii_uppercase()) {
            self.map.remove(key.to_ascii_lowercase().as_str());
        } else {
            self.map.remove(key);
        }
    }

    /// Copies the entries into a header block being built for the wire.
    pub(crate) fn write_to(&self, headers: &mut HeaderMap) {
        for (k, v) in self.map.iter() {
            headers.append(k.clone(), v.clone());
        }
    }

    /// The application metadata of a received header block: every header but the reserved
    /// ones (pseudo-headers are not in a `HeaderMap`; `grpc-*`, `content-type`, `te` and the
    /// connection-level ones belong to the protocol).
    pub(crate) fn from_headers(headers: &HeaderMap) -> Metadata {
        Metadata::from_headers_but(headers, |_| false)
    }

    /// `from_headers`, leaving out the names `protocol` says are its own as well.
    pub(crate) fn from_headers_but(
        headers: &HeaderMap,
        protocol: impl Fn(&str) -> bool,
    ) -> Metadata {
        let mut map = HeaderMap::with_capacity(headers.len());
        for (k, v) in headers.iter() {
            let n = k.as_str();
            if protocol(n) {
                continue;
            }
            if n.starts_with("grpc-") && n != "grpc-previous-rpc-attempts" {
                continue;
            }
            if matches!(
                n,
                "content-type"
                    | "te"
                    | "connection"
                    | "keep-alive"
                    | "transfer-encoding"
                    | "upgrade"
            ) {
                continue;
            }
            map.append(k.clone(), v.clone());
        }
        Metadata { map }
    }
}

fn is_bin(key: &str) -> bool {
    key.ends_with("-bin")
}

fn parse_key(key: &str) -> Result<HeaderName, InvalidMetadata> {
    if key.is_empty() {
        return Err(InvalidMetadata("empty metadata key".into()));
    }
    let lower = key.to_ascii_lowercase();
    if !lower
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(InvalidMetadata(format!(
            "metadata key {key:?} has characters outside 0-9 a-z _ - ."
        )));
    }
    if lower.starts_with("grpc-") {
        return Err(InvalidMetadata(format!(
            "metadata key {key:?} is reserved (grpc- prefix)"
        )));
    }
    HeaderName::from_bytes(lower.as_bytes()).map_err(|e| InvalidMetadata(e.to_string()))
}

fn decode_value(key: &str, v: &HeaderValue) -> Option<MetadataValue> {
    if is_bin(key) {
        decode_bin(v.as_bytes()).map(MetadataValue::Binary)
    } else {
        v.to_str().ok().map(|s| MetadataValue::Ascii(s.to_owned()))
    }
}

/// Binary values arrive padded or not (the spec lets senders omit padding and asks
/// receivers to take both); grpc-go also joins repeated values with commas.
pub(crate) fn decode_bin(raw: &[u8]) -> Option<Bytes> {
    let trimmed: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let unpadded: &[u8] = {
        let mut end = trimmed.len();
        while end > 0 && trimmed[end - 1] == b'=' {
            end -= 1;
        }
        &trimmed[..end]
    };
    STANDARD_NO_PAD
        .decode(unpadded)
        .ok()
        .or_else(|| STANDARD.decode(&trimmed).ok())
        .map(Bytes::from)
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_values_round_trip_through_base64() {
        let mut md = Metadata::new();
        md.append_bin("trace-bin", &[0, 1, 2, 0xff]).unwrap();
        let mut h = HeaderMap::new();
        md.write_to(&mut h);
        assert_eq!(h.get("trace-bin").unwrap(), "AAEC/w");
        let back = Metadata::from_headers(&h);
        assert_eq!(
            back.get_bin("trace-bin").unwrap().as_ref(),
            &[0, 1, 2, 0xff]
        );
    }

    #[test]
    fn padded_binary_is_accepted() {
        assert_eq!(decode_bin(b"AAEC/w==").unwrap().as_ref(), &[0, 1, 2, 0xff]);
    }

    #[test]
    fn invalid_entries_are_refused() {
        let mut md = Metadata::new();
        assert!(md.append_ascii("x-bin", "a").is_err());
        assert!(md.append_bin("x", b"a").is_err());
        assert!(md.append_ascii("Bad Key", "a").is_err());
        assert!(md.append_ascii("k", "line\nbreak").is_err());
        assert!(md.append_ascii("grpc-status", "0").is_err());
        md.append_ascii("X-Upper", "v").unwrap();
        assert_eq!(md.get_ascii("x-upper"), Some("v"));
    }

    #[test]
    fn reserved_headers_are_not_metadata() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/grpc"));
        h.insert("grpc-timeout", HeaderValue::from_static("1S"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("x-user", HeaderValue::from_static("ok"));
        let md = Metadata::from_headers(&h);
        assert_eq!(md.len(), 1);
        assert_eq!(md.get_ascii("x-user"), Some("ok"));
    }
}

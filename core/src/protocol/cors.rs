//! CORS (the Fetch standard's "CORS protocol"), for browsers calling from another origin
//! with gRPC-Web or Connect: the preflight a browser sends before a call, and the headers
//! that let its page see a response. Off unless the server names the origins it trusts.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use std::time::Duration;

/// Which browser origins may call the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cors {
    /// Origins as browsers send them (`https://app.example.com`), or `*` for any.
    pub allowed_origins: Vec<String>,
    /// How long a browser may cache a preflight's answer.
    pub max_age: Duration,
}

impl Cors {
    /// Any origin, preflights cached for two hours (Chromium's cap).
    pub fn any_origin() -> Cors {
        Cors {
            allowed_origins: vec!["*".into()],
            max_age: Duration::from_secs(7200),
        }
    }

    /// The request's origin, if the server lets it call.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(http::header::ORIGIN)?;
        let o = origin.to_str().ok()?;
        self.allowed_origins
            .iter()
            .any(|a| a == "*" || a.eq_ignore_ascii_case(o))
            .then(|| origin.clone())
    }
}

/// Whether a request is a CORS preflight: OPTIONS asking about a method.
pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight: 204, and for an allowed origin the method and headers the
/// browser asked for (calls carry the user's metadata, whose names the server cannot
/// list in advance).
pub(crate) fn preflight(cors: &Cors, headers: &HeaderMap) -> Response<()> {
    let mut r = Response::new(());
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(http::header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = cors.allows(headers) else {
        return r;
    };
    h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        http::header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET"),
    );
    if let Some(asked) = headers.get(http::header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    h.insert(
        http::header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(cors.max_age.as_secs()),
    );
    r
}

/// Lets the calling page read a response: its origin allowed, and every header of this
/// response exposed (a browser hides all but a few otherwise, the status and metadata
/// among them), plus the gRPC-Web status names, which may come in a trailers frame.
pub(crate) fn expose(head: &mut HeaderMap, origin: &HeaderValue) {
    let mut names: Vec<&str> = head
        .keys()
        .map(|k| k.as_str())
        .filter(|k| !matches!(*k, "content-type" | "content-length"))
        .collect();
    for k in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        if !names.contains(&k) {
            names.push(k);
        }
    }
    let list = HeaderValue::from_str(&names.join(", ")).expect("header names are visible ASCII");
    head.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, list);
    head.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    head.append(http::header::VARY, HeaderValue::from_static("Origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_gets_what_it_asked() {
        let cors = Cors {
            allowed_origins: vec!["http://a.test".into()],
            max_age: Duration::from_secs(60),
        };
        let req = headers(&[
            ("origin", "http://a.test"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type,x-user"),
        ]);
        assert!(is_preflight(&Method::OPTIONS, &req));
        let r = preflight(&cors, &req);
        assert_eq!(r.status(), 204);
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "http://a.test");
        assert_eq!(h["access-control-allow-headers"], "content-type,x-user");
        assert_eq!(h["access-control-max-age"], "60");
        // Another origin learns nothing.
        let other = headers(&[
            ("origin", "http://b.test"),
            ("access-control-request-method", "POST"),
        ]);
        assert!(!preflight(&cors, &other)
            .headers()
            .contains_key("access-control-allow-origin"));
    }

    #[test]
    fn a_response_exposes_its_headers_and_the_status_names() {
        let mut h = headers(&[("content-type", "application/proto"), ("x-md", "1")]);
        expose(&mut h, &HeaderValue::from_static("http://a.test"));
        assert_eq!(
            h["access-control-expose-headers"],
            "x-md, grpc-status, grpc-message, grpc-status-details-bin"
        );
        assert_eq!(h["access-control-allow-origin"], "http://a.test");
    }
}

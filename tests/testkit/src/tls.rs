//! Throwaway certificates for TLS tests: a self-signed certificate for `localhost`.

pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn localhost() -> TestCert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("generate a certificate");
    TestCert {
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
    }
}

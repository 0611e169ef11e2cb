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

/// Mutual TLS: the PEM of a CA, and a client certificate (and key) that it signed.
pub struct ClientPki {
    pub ca_pem: String,
    pub client: TestCert,
}

pub fn client_pki() -> ClientPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "rillrpc test clients");
    let ca_pem = ca.self_signed(&ca_key).expect("the CA certificate").pem();
    let key = KeyPair::generate().expect("a client key");
    let mut params = CertificateParams::new(vec!["client.test".to_string()]).expect("params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params
        .signed_by(&key, &Issuer::new(ca, &ca_key))
        .expect("the client certificate");
    ClientPki {
        ca_pem,
        client: TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
    }
}

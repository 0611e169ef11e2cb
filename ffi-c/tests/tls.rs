//! TLS through the C ABI (called from Rust): a server with a certificate and key, a channel
//! trusting its CA as PEM and as a file, and one that does not trust it.

use rillrpc_c::*;
use std::ffi::CString;
use std::ptr::null;

const T: i64 = 10_000;

#[test]
fn tls_server_and_channel() {
    let cert = rill_testkit::tls::localhost();
    let (c_pem, k_pem) = (
        CString::new(cert.cert_pem.clone()).unwrap(),
        CString::new(cert.key_pem.clone()).unwrap(),
    );
    let mut srv = 0;
    // SAFETY: for all calls below, every pointer is a live CString or a local out-variable.
    unsafe {
        assert_eq!(rill_server_new(null(), &mut srv), rill_result::RILL_OK);
        assert_eq!(
            rill_server_add_method(srv, c"/a.B/C".as_ptr(), rill_shape::RILL_UNARY as u32),
            rill_result::RILL_OK
        );
        assert_eq!(
            rill_server_listen(srv, c"127.0.0.1:0".as_ptr(), c_pem.as_ptr(), k_pem.as_ptr()),
            rill_result::RILL_OK
        );
        assert_eq!(rill_server_start(srv), rill_result::RILL_OK);
        let mut port = 0u16;
        assert_eq!(rill_server_port(srv, &mut port), rill_result::RILL_OK);
        let target = CString::new(format!("https://localhost:{port}")).unwrap();
        let file = std::env::temp_dir().join(format!("rill-ca-{}.pem", std::process::id()));
        std::fs::write(&file, &cert.cert_pem).unwrap();
        let file_c = CString::new(file.to_str().unwrap()).unwrap();

        for by_file in [false, true] {
            let mut o = std::mem::zeroed();
            assert_eq!(rill_channel_options_init(&mut o), rill_result::RILL_OK);
            if by_file {
                o.tls_ca_file = file_c.as_ptr();
            } else {
                o.tls_ca_pem = c_pem.as_ptr();
            }
            let mut ch = 0;
            assert_eq!(
                rill_channel_new(target.as_ptr(), &o, &mut ch),
                rill_result::RILL_OK
            );
            let mut call = 0;
            assert_eq!(
                rill_call_open(ch, c"/a.B/C".as_ptr(), 0, null(), &mut call),
                rill_result::RILL_OK
            );
            assert_eq!(
                rill_call_send(call, b"hi".as_ptr(), 2, T),
                rill_result::RILL_OK
            );
            let mut sc = 0;
            assert_eq!(rill_server_accept(srv, &mut sc, T), rill_result::RILL_OK);
            let (mut d, mut l) = (null(), 0usize);
            assert_eq!(
                rill_server_call_recv(sc, &mut d, &mut l, T),
                rill_result::RILL_OK
            );
            assert_eq!(std::slice::from_raw_parts(d, l), b"hi");
            assert_eq!(
                rill_server_call_send(sc, b"yo".as_ptr(), 2, T),
                rill_result::RILL_OK
            );
            assert_eq!(
                rill_server_call_finish(sc, 0, null(), null(), 0, 0),
                rill_result::RILL_OK
            );
            assert_eq!(rill_server_call_free(sc), rill_result::RILL_OK);
            assert_eq!(
                rill_call_recv(call, &mut d, &mut l, T),
                rill_result::RILL_OK
            );
            assert_eq!(std::slice::from_raw_parts(d, l), b"yo");
            let mut code = 99;
            assert_eq!(rill_call_finish(call, &mut code, T), rill_result::RILL_OK);
            assert_eq!(code, 0);
            assert_eq!(rill_call_free(call), rill_result::RILL_OK);
            assert_eq!(rill_channel_free(ch), rill_result::RILL_OK);
        }

        // A CA that did not sign the server's certificate: the call fails as UNAVAILABLE.
        let other = rill_testkit::tls::localhost();
        let other_pem = CString::new(other.cert_pem).unwrap();
        let mut o = std::mem::zeroed();
        assert_eq!(rill_channel_options_init(&mut o), rill_result::RILL_OK);
        o.tls_ca_pem = other_pem.as_ptr();
        let mut ch = 0;
        assert_eq!(
            rill_channel_new(target.as_ptr(), &o, &mut ch),
            rill_result::RILL_OK
        );
        let mut call = 0;
        assert_eq!(
            rill_call_open(ch, c"/a.B/C".as_ptr(), 0, null(), &mut call),
            rill_result::RILL_OK
        );
        let mut code = 99;
        assert_eq!(rill_call_finish(call, &mut code, T), rill_result::RILL_OK);
        assert_eq!(code, rill_status_code::RILL_STATUS_UNAVAILABLE as u32);
        assert_eq!(rill_call_free(call), rill_result::RILL_OK);
        assert_eq!(rill_channel_free(ch), rill_result::RILL_OK);

        // Bad TLS material is refused at start.
        let mut bad = 0;
        assert_eq!(rill_server_new(null(), &mut bad), rill_result::RILL_OK);
        rill_server_add_method(bad, c"/a.B/C".as_ptr(), 0);
        rill_server_listen(
            bad,
            c"127.0.0.1:0".as_ptr(),
            c"junk".as_ptr(),
            c"junk".as_ptr(),
        );
        assert_eq!(rill_server_start(bad), rill_result::RILL_ERR_TLS);
        assert_eq!(rill_server_free(bad), rill_result::RILL_OK);

        assert_eq!(rill_server_shutdown(srv, 100), rill_result::RILL_OK);
        assert_eq!(rill_server_free(srv), rill_result::RILL_OK);
        let _ = std::fs::remove_file(file);
    }
}

/// A bidi call: the server may end it with no message either way.
const BIDI: u32 = rill_shape::RILL_BIDI as u32;

/// The status of one bidi call on a new channel to `target`, trusting `ca`, presenting
/// `identity` (certificate and key) when given.
///
/// # Safety
/// Every pointer is a live NUL-terminated string.
unsafe fn call_status(
    target: &CString,
    ca: &CString,
    identity: Option<(&CString, &CString)>,
) -> u32 {
    // SAFETY: the caller's contract; the out-variables are locals.
    unsafe {
        let mut o = std::mem::zeroed();
        assert_eq!(rill_channel_options_init(&mut o), rill_result::RILL_OK);
        o.tls_ca_pem = ca.as_ptr();
        if let Some((cert, key)) = identity {
            o.tls_cert_pem = cert.as_ptr();
            o.tls_key_pem = key.as_ptr();
        }
        let mut ch = 0;
        assert_eq!(
            rill_channel_new(target.as_ptr(), &o, &mut ch),
            rill_result::RILL_OK
        );
        let mut call = 0;
        assert_eq!(
            rill_call_open(ch, c"/a.B/Bidi".as_ptr(), BIDI, null(), &mut call),
            rill_result::RILL_OK
        );
        let mut code = 99;
        assert_eq!(rill_call_finish(call, &mut code, T), rill_result::RILL_OK);
        assert_eq!(rill_call_free(call), rill_result::RILL_OK);
        assert_eq!(rill_channel_free(ch), rill_result::RILL_OK);
        code
    }
}

#[test]
fn mutual_tls_takes_the_clients_a_ca_signed() {
    let cert = rill_testkit::tls::localhost();
    let pki = rill_testkit::tls::client_pki();
    let c = |s: &str| CString::new(s).unwrap();
    let (c_pem, k_pem, ca) = (c(&cert.cert_pem), c(&cert.key_pem), c(&pki.ca_pem));
    let (client_cert, client_key) = (c(&pki.client.cert_pem), c(&pki.client.key_pem));
    let stranger = rill_testkit::tls::client_pki().client;
    let (other_cert, other_key) = (c(&stranger.cert_pem), c(&stranger.key_pem));
    let mut srv = 0;
    // SAFETY: for all calls below, every pointer is a live CString or a local out-variable.
    unsafe {
        assert_eq!(rill_server_new(null(), &mut srv), rill_result::RILL_OK);
        assert_eq!(
            rill_server_add_method(srv, c"/a.B/Bidi".as_ptr(), BIDI),
            rill_result::RILL_OK
        );
        // Client certificates need the server's own TLS first.
        assert_eq!(
            rill_server_require_client_certs(srv, ca.as_ptr()),
            rill_result::RILL_ERR_WRONG_STATE
        );
        assert_eq!(
            rill_server_require_client_certs(srv, null()),
            rill_result::RILL_ERR_NULL
        );
        assert_eq!(
            rill_server_listen(srv, c"127.0.0.1:0".as_ptr(), c_pem.as_ptr(), k_pem.as_ptr()),
            rill_result::RILL_OK
        );
        assert_eq!(
            rill_server_require_client_certs(srv, ca.as_ptr()),
            rill_result::RILL_OK
        );
        assert_eq!(rill_server_start(srv), rill_result::RILL_OK);
        let mut port = 0u16;
        assert_eq!(rill_server_port(srv, &mut port), rill_result::RILL_OK);
        let target = CString::new(format!("https://localhost:{port}")).unwrap();
        // The server's handler: answers one call whose client got through the handshake.
        let serving = std::thread::spawn(move || {
            let mut sc = 0;
            assert_eq!(rill_server_accept(srv, &mut sc, T), rill_result::RILL_OK);
            assert_eq!(
                rill_server_call_finish(sc, 0, null(), null(), 0, 0),
                rill_result::RILL_OK
            );
            assert_eq!(rill_server_call_free(sc), rill_result::RILL_OK);
        });
        let unavailable = rill_status_code::RILL_STATUS_UNAVAILABLE as u32;
        assert_eq!(call_status(&target, &c_pem, None), unavailable);
        assert_eq!(
            call_status(&target, &c_pem, Some((&other_cert, &other_key))),
            unavailable
        );
        assert_eq!(
            call_status(&target, &c_pem, Some((&client_cert, &client_key))),
            0
        );
        serving.join().unwrap();
        assert_eq!(
            rill_server_require_client_certs(srv, ca.as_ptr()),
            rill_result::RILL_ERR_WRONG_STATE
        );
        assert_eq!(rill_server_shutdown(srv, 100), rill_result::RILL_OK);
        assert_eq!(rill_server_free(srv), rill_result::RILL_OK);
    }
}

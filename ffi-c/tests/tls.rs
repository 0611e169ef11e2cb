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
    // SAFETY (all calls below): every pointer is a live CString or a local out-variable.
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

//! The server's connection limits through the C ABI (called from Rust): a connection past
//! `max_connection_age_ms` and its grace is closed, ending a call that was still open.

use rillrpc_c::*;
use std::ptr::null;
use std::time::Duration;

const T: i64 = 10_000;
const BIDI: u32 = rill_shape::RILL_BIDI as u32;

#[test]
fn a_call_open_past_the_age_and_its_grace_is_ended() {
    let mut srv = 0;
    // SAFETY (all calls below): every pointer is a static C string or a local out-variable.
    unsafe {
        let mut o = std::mem::zeroed();
        assert_eq!(rill_server_options_init(&mut o), rill_result::RILL_OK);
        o.max_connection_age_ms = 200; // 0 (the default): the call below would hang
        o.max_connection_age_grace_ms = 300;
        assert_eq!(rill_server_new(&o, &mut srv), rill_result::RILL_OK);
        assert_eq!(
            rill_server_add_method(srv, c"/a.B/Bidi".as_ptr(), BIDI),
            rill_result::RILL_OK
        );
        assert_eq!(
            rill_server_listen(srv, c"127.0.0.1:0".as_ptr(), null(), null()),
            rill_result::RILL_OK
        );
        assert_eq!(rill_server_start(srv), rill_result::RILL_OK);
        let mut port = 0u16;
        assert_eq!(rill_server_port(srv, &mut port), rill_result::RILL_OK);

        // The client: the core's, a bidi call the server's handler never ends.
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ch = rillrpc::Channel::new(&format!("http://127.0.0.1:{port}")).unwrap();
        let mut call = rt.block_on(async {
            let opts = rillrpc::CallOptions::default();
            ch.open("/a.B/Bidi", rillrpc::Shape::Bidi, opts).unwrap()
        });
        let mut sc = 0;
        assert_eq!(rill_server_accept(srv, &mut sc, T), rill_result::RILL_OK);
        let ended =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), call.recv()).await });
        let status = ended.expect("the call ended before the test's own limit");
        assert!(status.is_err(), "{status:?}");
        assert_eq!(rill_server_call_free(sc), rill_result::RILL_OK);
        assert_eq!(rill_server_shutdown(srv, 100), rill_result::RILL_OK);
        assert_eq!(rill_server_free(srv), rill_result::RILL_OK);
    }
}

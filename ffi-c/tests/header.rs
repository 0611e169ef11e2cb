//! include/rillrpc.h must be what cbindgen makes of the current source: a stale header
//! fails here. `RILL_BLESS=1` rewrites it.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = crate_dir.join("../include/rillrpc.h");
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not read ffi-c/src")
        .write(&mut fresh);
    if std::env::var_os("RILL_BLESS").is_some() {
        std::fs::write(&committed, &fresh).expect("writing include/rillrpc.h");
        return;
    }
    let old = std::fs::read(&committed).unwrap_or_default();
    assert!(
        old == fresh,
        "include/rillrpc.h is stale: regenerate it with `RILL_BLESS=1 cargo test -p rillrpc-ffi --test header`"
    );
}

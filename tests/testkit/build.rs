// Generates the tonic client and server for the shared echo service.
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let shared = std::env::var("RILL_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("../../../shared"));
    let idl = shared.join("idl");
    let proto = idl.join("echo.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure()
        .compile_protos(&[proto], &[idl])
        .expect("compile echo.proto");
}

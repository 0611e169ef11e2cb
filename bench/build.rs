// Generates the `connectrpc` crate's echo service (buffa messages and the TestService
// trait) for echo-server's `--impl connectrpc`, as that crate's users generate theirs:
// connectrpc-build with protoc (the vendored one), proto-only.
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let shared = std::env::var("RILL_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| manifest.join("../../shared"));
    let idl = shared.join("idl");
    let proto = idl.join("echo.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    println!("cargo:rerun-if-env-changed=RILL_SHARED");
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    std::env::set_var("PROTOC", protoc);
    connectrpc_build::Config::new()
        .files(&[proto])
        .includes(&[idl])
        .include_file("_connectrpc.rs")
        // Binary protobuf only: the benchmark's clients send no JSON, and the runtime is
        // built without its `json` feature (bench/Cargo.toml).
        .generate_json(false)
        .compile()
        .expect("generate the connectrpc echo service");
}

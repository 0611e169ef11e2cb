// Generates the grpc.testing messages (messages only: the RPC layer is the rillrpc core).
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("proto");
    let files: Vec<PathBuf> = ["empty", "messages", "test"]
        .iter()
        .map(|f| root.join("grpc/testing").join(format!("{f}.proto")))
        .collect();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    std::env::set_var("PROTOC", protoc);
    prost_build::Config::new()
        .compile_protos(&files, &[root])
        .expect("compile grpc.testing protos");
}

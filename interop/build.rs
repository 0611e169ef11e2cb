// Generates the grpc.testing messages (messages only: the RPC layer is the rillrpc core)
// from grpc-go's own: `grpc-testing/` (a Go program) writes the descriptors of grpc-go's
// generated interop code, at the version its go.mod pins, the one whose interop client and
// server `make test-interop` plays against ours. The protos are not in the repository.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let program = manifest.join("grpc-testing");
    for f in ["go.mod", "go.sum", "main.go"] {
        println!("cargo:rerun-if-changed={}", program.join(f).display());
    }
    println!("cargo:rerun-if-env-changed=GO");
    let set = out.join("grpc_testing.fds");
    let go = std::env::var("GO").unwrap_or_else(|_| "go".into());
    let ran = Command::new(&go)
        .arg("run")
        .arg(".")
        .arg(&set)
        .current_dir(&program)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "rill-interop takes the grpc.testing protos from grpc-go's module with Go, \
                 and `{go}` cannot run ({e}): `make go-check` installs Go"
            )
        });
    assert!(
        ran.status.success(),
        "`{go} run .` in {} failed: {}",
        program.display(),
        String::from_utf8_lossy(&ran.stderr).trim()
    );
    prost_build::Config::new()
        .file_descriptor_set_path(&set)
        .skip_protoc_run()
        .compile_protos(&["grpc/testing/test.proto"], &[] as &[PathBuf])
        .expect("compile the grpc.testing descriptors");
}

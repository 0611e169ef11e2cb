// Generates the connectrpc.conformance.v1 messages (messages only: the RPC layer is the
// rillrpc core), and their descriptors for the JSON codec, from the conformance module's
// own protos, in the Go module cache. The protos are not in the repository: their version
// is the one go/go.mod pins, so the runner and the two programs (the server and the client
// under test) always speak the same schema.
//
// The build asks `go mod download` (in go/) where the module is; RILL_CONFORMANCE_MODULE_DIR
// names it instead, and a missing or broken one then fails the build. If `go` fails
// (`cargo test --workspace` before `make` has installed Go) it builds programs that say so
// and exit, rather than breaking every workspace build on a machine without Go; the
// runner then fails every case, so neither conformance target can pass with them.
use std::path::{Path, PathBuf};
use std::process::Command;

const MODULE: &str = "connectrpc.com/conformance";
const PROTOS: [&str; 4] = ["client_compat", "config", "server_compat", "service"];
const DIR_ENV: &str = "RILL_CONFORMANCE_MODULE_DIR";
/// In OUT_DIR; src/codec.rs includes it.
const DESCRIPTORS: &str = "conformance_descriptors.bin";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let go_mod = manifest.join("go/go.mod");
    println!("cargo:rerun-if-changed={}", go_mod.display());
    println!("cargo:rerun-if-env-changed={DIR_ENV}");
    println!("cargo:rerun-if-env-changed=GO");
    println!("cargo::rustc-check-cfg=cfg(conformance_protos)");

    let module = match std::env::var_os(DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => match module_dir_from_go(&manifest.join("go")) {
            Ok(dir) => dir,
            Err(e) => {
                println!(
                    "cargo:warning=rill-conformance-server and -client are built without the \
                     conformance protos ({e}); `make test-conformance` builds the real ones"
                );
                // A file that never exists: cargo then reruns this script on every build,
                // so the stub lasts only until Go is there.
                println!(
                    "cargo:rerun-if-changed={}",
                    out.join("go-was-missing").display()
                );
                return;
            }
        },
    };
    let root = module.join("proto");
    let files: Vec<PathBuf> = PROTOS
        .iter()
        .map(|f| root.join(format!("connectrpc/conformance/v1/{f}.proto")))
        .collect();
    for f in &files {
        assert!(
            f.is_file(),
            "{} is missing: is {} the {MODULE} module?",
            f.display(),
            module.display()
        );
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    let wkt = protoc_bin_vendored::include_path().expect("vendored protoc's include path");
    std::env::set_var("PROTOC", protoc);
    prost_build::Config::new()
        // CODEC_JSON: the JSON mapping needs the messages' descriptors (imports included,
        // so google.protobuf.Any resolves) and each generated type's full name.
        .file_descriptor_set_path(out.join(DESCRIPTORS))
        .enable_type_names()
        .type_name_domain(["."], "type.googleapis.com")
        .compile_protos(&files, &[root, wkt])
        .expect("compile the connectrpc.conformance.v1 protos");
    println!("cargo:rustc-cfg=conformance_protos");
}

/// The module's directory in the module cache, downloaded if need be, at the version that
/// `go.mod` in `go_dir` requires.
fn module_dir_from_go(go_dir: &Path) -> Result<PathBuf, String> {
    let go = std::env::var("GO").unwrap_or_else(|_| "go".into());
    let out = Command::new(&go)
        .args(["mod", "download", "-json", MODULE])
        .current_dir(go_dir)
        .output()
        .map_err(|e| format!("cannot run {go}: {e}"))?;
    let json = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "`{go} mod download {MODULE}` failed: {}{}",
            json.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // go's JSON puts each field on a line of its own: `"Dir": "/path",`. A module cache
    // path needs no JSON escapes beyond backslashes (Windows).
    json.lines()
        .find_map(|l| l.trim().strip_prefix("\"Dir\": \""))
        .and_then(|rest| rest.strip_suffix("\","))
        .map(|dir| PathBuf::from(dir.replace("\\\\", "\\")))
        .ok_or_else(|| format!("no Dir in the output of `{go} mod download`: {json}"))
}

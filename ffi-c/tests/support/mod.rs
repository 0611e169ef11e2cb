//! What the C-program tests share: building the library's C face (librillrpc.so next to
//! the test binary's target dir), compiling C programs with the system `cc`, running them
//! (under valgrind when RILL_VALGRIND=1), and an in-process tonic echo server.
//!
//! RILL_SANITIZE=address (`make test-sanitize`) compiles the programs with clang's
//! AddressSanitizer instead and runs them without valgrind; an ASan or LeakSanitizer report
//! fails the test. The Rust library is not instrumented, but its allocations go through the
//! malloc and free that ASan replaces for the whole process, so heap misuse across the
//! boundary is still caught: a buffer the library returned freed twice or used after the
//! library freed it, and anything the library hands to C that is never given back.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `<target>/debug`: the test binary lives in `<target>/debug/deps`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// A directory with librillrpc.so (copied from librillrpc_c.so, the crate's cdylib).
pub fn lib_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = profile_dir().join("c-tests");
        std::fs::create_dir_all(&dir).unwrap();
        // `cargo test` builds every crate type of the library into deps/ (next to this
        // test binary) but only `cargo build` copies them up: take the fresh one.
        let so = profile_dir().join("deps/librillrpc_c.so");
        assert!(so.exists(), "{} is missing", so.display());
        // Replaced by a rename, never rewritten in place: a C program of another test
        // binary, or of another suite sharing the target directory, may have it mapped,
        // and a library rewritten under a running program kills it with SIGBUS (the C
        // coalesce client did, while test-rust ran beside test-c).
        let tmp = dir.join(format!("librillrpc.so.{}", std::process::id()));
        std::fs::copy(&so, &tmp).expect("copy librillrpc.so");
        std::fs::rename(&tmp, dir.join("librillrpc.so")).expect("rename librillrpc.so");
        dir
    })
    .clone()
}

/// Compiles `ffi-c/tests/c/<name>.c` (or another path under the repo) into a program.
pub fn build(src: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let lib = lib_dir();
    let src = repo().join(src);
    let stem = src.file_stem().unwrap().to_string_lossy();
    // A name of its own, so the two builds never overwrite each other's programs.
    let (out, cc, extra): (_, _, &[&str]) = if sanitize() {
        let flags = &["-fsanitize=address", "-fno-omit-frame-pointer"];
        (lib.join(format!("{stem}-asan")), "clang".to_string(), flags)
    } else {
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        (lib.join(&*stem), cc, &[])
    };
    let r = Command::new(&cc)
        .args(["-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror"])
        .args(extra)
        .arg("-I")
        .arg(repo().join("include"))
        .arg("-I")
        .arg(repo().join("examples/c"))
        .arg("-I")
        .arg(repo().join("ffi-c/tests/c"))
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg("-L")
        .arg(&lib)
        .arg("-lrillrpc")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .output()
        .unwrap_or_else(|e| panic!("running {cc}: {e}"));
    assert!(
        r.status.success(),
        "{cc} {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&r.stderr)
    );
    out
}

pub fn valgrind() -> bool {
    std::env::var("RILL_VALGRIND").is_ok_and(|v| v == "1")
}

/// Whether the C programs are built with AddressSanitizer (RILL_SANITIZE=address).
pub fn sanitize() -> bool {
    match std::env::var("RILL_SANITIZE").as_deref() {
        Ok("address") => true,
        Ok("") | Err(_) => false,
        Ok(other) => panic!("RILL_SANITIZE={other}: only `address` is supported"),
    }
}

/// Skips the rest of a test, saying why where the test's captured output would hide it.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The command that runs `prog`: under valgrind (leaks and errors fail it) when asked, or
/// with ASan's options when it was built with ASan.
pub fn command(prog: &Path) -> Command {
    if sanitize() {
        let mut c = Command::new(prog);
        // A report of either sanitizer ends the program with 99, which fails the test:
        // halt_on_error stops at ASan's first error, detect_leaks runs LSan at exit. The
        // library's Rust code keeps no frame pointers, so the fast unwinder would stop a
        // leak's stack at its first Rust frame: the slow one names the function that
        // allocated. No suppressions: the runtime's threads live to exit, but what they
        // hold is reachable from the library's statics and their stacks, so LSan is quiet.
        c.env(
            "ASAN_OPTIONS",
            "detect_leaks=1:halt_on_error=1:exitcode=99:detect_stack_use_after_return=1:fast_unwind_on_malloc=0",
        );
        c
    } else if valgrind() {
        let mut c = Command::new("valgrind");
        c.args([
            "--quiet",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
            "--error-exitcode=99",
        ])
        .arg(prog);
        c
    } else {
        Command::new(prog)
    }
}

pub fn run(prog: &Path, args: &[&str]) -> Output {
    let out = command(prog)
        .args(args)
        .output()
        .expect("running a C program");
    println!("{}", String::from_utf8_lossy(&out.stdout));
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        prog.display(),
        out.status
    );
    out
}

/// An echo server on tonic (the real peer), started once per test binary.
pub fn tonic_echo() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap().port()).unwrap();
                tonic::transport::Server::builder()
                    .max_concurrent_streams(Some(4096))
                    .add_service(
                        rill_testkit::TestServiceServer::new(rill_testkit::TonicEcho)
                            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                            .send_compressed(tonic::codec::CompressionEncoding::Gzip),
                    )
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
                    .await
                    .unwrap();
            });
        });
        rx.recv().unwrap()
    })
}

/// A tonic echo server of its own (one per call) whose connections count their HTTP/2
/// frames (`rill_testkit::frames`): what tonic reads is `inbound`.
pub fn counted_tonic_echo() -> (u16, rill_testkit::frames::FrameLog) {
    let log = rill_testkit::frames::FrameLog::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let server_log = log.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap().port()).unwrap();
            tonic::transport::Server::builder()
                .add_service(rill_testkit::TestServiceServer::new(
                    rill_testkit::TonicEcho,
                ))
                .serve_with_incoming(server_log.incoming(l))
                .await
                .unwrap();
        });
    });
    (rx.recv().unwrap(), log)
}

/// The echo service on the rillrpc core (`rill_testkit::rill_echo`), which answers gRPC,
/// gRPC-Web and Connect on one port; started once per test binary.
pub fn rill_echo() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let server = rill_testkit::rill_echo::builder(rillrpc::ServerOptions::default())
            .bind("127.0.0.1:0")
            .expect("bind the echo server");
        let port = server.local_addr().port();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(rill_testkit::rill_echo::serve(std::sync::Arc::new(server)));
        });
        port
    })
}

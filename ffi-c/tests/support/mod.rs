//! What the C-program tests share: building the library's C face (librillrpc.so next to
//! the test binary's target dir), compiling C programs with the system `cc`, running them
//! (under valgrind when RILL_VALGRIND=1), and an in-process tonic echo server.

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
        std::fs::copy(&so, dir.join("librillrpc.so")).expect("copy librillrpc.so");
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
    let out = lib.join(src.file_stem().unwrap());
    let r = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=gnu11", "-g", "-O1", "-Wall", "-Wextra", "-Werror"])
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
        .expect("running cc");
    assert!(
        r.status.success(),
        "cc {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&r.stderr)
    );
    out
}

pub fn valgrind() -> bool {
    std::env::var("RILL_VALGRIND").is_ok_and(|v| v == "1")
}

/// The command that runs `prog`: under valgrind (leaks and errors fail it) when asked.
pub fn command(prog: &Path) -> Command {
    if valgrind() {
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

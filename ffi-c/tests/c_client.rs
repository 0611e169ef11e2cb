//! C programs against a tonic echo server, and the misuse list.

mod support;

use support::*;

#[test]
fn c_client_against_tonic() {
    let port = tonic_echo();
    let prog = build("ffi-c/tests/c/client_test.c");
    let out = run(&prog, &[&format!("http://127.0.0.1:{port}")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("client_test: all passed"));
}

#[test]
fn c_event_loop_1000_calls() {
    let port = tonic_echo();
    let prog = build("ffi-c/tests/c/event_loop_test.c");
    let out = run(&prog, &[&format!("http://127.0.0.1:{port}")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1000 calls done"));
}

#[test]
fn c_batches() {
    let port = tonic_echo();
    let prog = build("ffi-c/tests/c/batch_test.c");
    let out = run(&prog, &[&format!("http://127.0.0.1:{port}")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("batch_test: all passed"));
}

#[test]
fn c_misuse() {
    let prog = build("ffi-c/tests/c/misuse_test.c");
    let out = run(&prog, &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("misuse_test: all passed"));
}

#[test]
fn c_a_forked_child_leaves_its_parents_handles_alone() {
    let port = tonic_echo();
    let prog = build("ffi-c/tests/c/fork_test.c");
    let out = run(&prog, &[&format!("http://127.0.0.1:{port}")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("fork_test: child passed") && stdout.contains("fork_test: all passed"),
        "{stdout}"
    );
}

/// The fork test's child makes a runtime of its own, in the library these tests link. That
/// library must be the one users link: built beside every other member of the workspace,
/// it takes the union of their tokio features, and with `parking_lot` among them a child's
/// new runtime crashed in the parked-thread table it inherited (about 1 run in 20). No
/// member may ask for it (tokio's `full` has it): the workspace's lock file names every
/// package any member can build with.
#[test]
fn no_workspace_member_builds_tokio_with_parking_lot() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .expect("the workspace's Cargo.lock");
    assert!(
        !lock.contains("name = \"parking_lot\""),
        "a workspace member pulls in parking_lot (`cargo tree -i parking_lot --workspace -e features` says which)"
    );
}

#[test]
fn c_examples() {
    use std::io::BufRead;
    // The example client against the example server (which serves until killed, so it runs
    // outside valgrind, and under RILL_SANITIZE never reaches LeakSanitizer's check at exit,
    // though ASan stops it at a heap error): every shape, an error, metadata both ways, 100
    // calls at once.
    let client = build("examples/c/client.c");
    let server = build("examples/c/server.c");
    let mut child = std::process::Command::new(&server)
        .arg("0")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let out = run(&client, &[&format!("http://{addr}")]);
    child.kill().unwrap();
    child.wait().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("100 concurrent calls done") && stdout.contains("all ok"),
        "{stdout}"
    );
}

//! What a forked child does with values its parent made (`rillrpc::fork`).

use rillrpc::fork::ProcessLocal;
use rillrpc::Code;

/// Ends the process with code 3 if it is ever dropped.
struct ExitOnDrop;

impl Drop for ExitOnDrop {
    fn drop(&mut self) {
        // SAFETY: `_exit` only ends the process.
        unsafe { libc::_exit(3) }
    }
}

/// The child's checks; its exit code says which failed (0: none).
fn in_child(inherited: ProcessLocal<ExitOnDrop>, parents: &ProcessLocal<u32>) -> i32 {
    match parents.get() {
        Err(s) if s.code() == Code::FailedPrecondition && s.message().contains("forked") => {}
        _ => return 1,
    }
    if !parents.inherited() {
        return 2;
    }
    // Not dropped in the child: its drop would end the child with 3.
    drop(inherited);
    let mine = ProcessLocal::new(7u32);
    match mine.get() {
        Ok(7) => 0,
        _ => 4,
    }
}

#[test]
fn a_value_made_before_a_fork_is_neither_used_nor_dropped_in_the_child() {
    let parents = ProcessLocal::new(5u32);
    let inherited = ProcessLocal::new(ExitOnDrop);
    // SAFETY: the child only runs `in_child`, which allocates at most one status message
    // (glibc's malloc is usable in a forked child), and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = in_child(inherited, &parents);
        // SAFETY: ends the child without running the parent's test harness.
        unsafe { libc::_exit(code) }
    }
    // Not for the parent to drop either: its drop would end the test.
    std::mem::forget(inherited);
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child's check that failed"
    );
    // The parent's values are still its own.
    assert_eq!(parents.get().ok(), Some(&5));
    assert!(!parents.inherited());
}

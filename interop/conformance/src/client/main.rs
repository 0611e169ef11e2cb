//! The Connect conformance suite's client under test, on the rillrpc client.
//!
//!     connectconformance --mode client --conf client-config.yaml -- rill-conformance-client
//!
//! The runner starts its reference servers and this one process, then writes size-prefixed
//! `ClientCompatRequest`s to its stdin, many at once. Each names one RPC (server, protocol,
//! compression, metadata, request messages, timeout, when to cancel); this program makes
//! it on the rillrpc core and writes a size-prefixed `ClientCompatResponse` to stdout with
//! what the call saw (headers, messages, error, trailers), in whatever order calls end. At
//! the end of stdin it waits for the calls in flight, then exits. Diagnostics go to
//! stderr, which the runner shows.

#[cfg(conformance_protos)]
mod invoke;

#[cfg(conformance_protos)]
fn main() {
    if let Err(e) = run::run() {
        eprintln!("rill-conformance-client: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(conformance_protos))]
fn main() {
    eprintln!(
        "rill-conformance-client: built without the conformance protos (the build could not \
         get them from Go: see its warning); `make test-conformance-client` builds the real \
         client"
    );
    std::process::exit(2);
}

#[cfg(conformance_protos)]
mod run {
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::Semaphore;

    use crate::invoke::{self, Channels};
    use rill_conformance::delimited;
    use rill_conformance::pb::client_compat_response::Result as Outcome;
    use rill_conformance::pb::{ClientCompatRequest, ClientCompatResponse, ClientErrorResult};

    /// The runner gives up on a client that writes nothing for 20 seconds and fails every
    /// case still open. A call stuck in the core must cost only its own case, so it is
    /// abandoned well before that. No case legitimately runs near this long.
    const CALL_LIMIT: Duration = Duration::from_secs(12);

    pub fn run() -> Result<(), String> {
        let rt = rillrpc::runtime::private_handle();
        // As many calls at once as the reference client makes (4 per CPU): the suite's
        // deadline and delay cases measure tens of milliseconds, which an unbounded pile
        // of calls on a small machine would blur.
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let slots = Arc::new(Semaphore::new(cpus * 4));
        let mut channels = Channels::default();
        let mut tasks = Vec::new();
        let mut input = std::io::stdin().lock();
        while let Some(req) = delimited::read_next::<ClientCompatRequest>(&mut input)? {
            let slot = rt
                .block_on(slots.clone().acquire_owned())
                .expect("the semaphore is never closed");
            let channel = channels.get(&req);
            let calls = rt.clone();
            tasks.push(rt.spawn(async move {
                let _slot = slot;
                let name = req.test_name.clone();
                let outcome = match channel {
                    Err(e) => Outcome::Error(ClientErrorResult { message: e }),
                    // Its own task: a panic in one call becomes that case's error.
                    Ok(ch) => {
                        let call =
                            calls.spawn(tokio::time::timeout(CALL_LIMIT, invoke::invoke(req, ch)));
                        match call.await {
                            Ok(Ok(Ok(result))) => Outcome::Response(result),
                            Ok(Ok(Err(message))) => Outcome::Error(ClientErrorResult { message }),
                            Ok(Err(_)) => Outcome::Error(ClientErrorResult {
                                message: format!(
                                    "the call had not ended after {CALL_LIMIT:?}; abandoned"
                                ),
                            }),
                            Err(e) => Outcome::Error(ClientErrorResult {
                                message: format!("the call panicked: {e}"),
                            }),
                        }
                    }
                };
                respond(name, outcome)
            }));
        }
        let mut failed = None;
        for t in tasks {
            match rt.block_on(t) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(e) => failed = failed.or(Some(format!("a task failed: {e}"))),
            }
        }
        failed.map_or(Ok(()), Err)
    }

    fn respond(test_name: String, result: Outcome) -> Result<(), String> {
        let resp = ClientCompatResponse {
            test_name,
            result: Some(result),
        };
        // The lock spans the size and the body: responses of concurrent calls never
        // interleave.
        delimited::write(&mut std::io::stdout().lock(), &resp)
    }
}

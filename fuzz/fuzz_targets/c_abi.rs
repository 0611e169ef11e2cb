//! The C ABI (`include/rillrpc.h`, the `rillrpc-ffi` crate) driven as a careless C program
//! would drive it: the input is a sequence of operations on a table of handles, so freed,
//! stale, zero, random and wrong-kind handles, NULL pointers, bad options and calls used
//! after they end all come up, next to real calls over loopback.
//!
//! Input: up to 64 operations, each an opcode byte (modulo 40, see `S::op`) and its argument
//! bytes; reading past the end gives zeros. The tables hold 8 channels, 16 calls, 2 servers,
//! 16 server calls, 8 metadata lists and 2 pollers. A handle argument is one byte:
//! 0x00-0xDF a slot of its own table (an empty slot is handle 0, a freed one its stale
//! handle), 0xE0-0xE7 a process-wide handle where the operation allows one, 0xE8-0xEF a
//! slot (next byte) of another kind's table, 0xF0-0xF7 handle 0, 0xF8-0xFF a u64 (next 8
//! bytes) that names no live handle. The process-wide handles are a started server serving
//! one method per shape (and a NO_SIDE_EFFECTS unary one) on 127.0.0.1, and a channel to
//! it per protocol: real calls cost no connection setup. Targets and listening addresses
//! never name a host to resolve (a fuzzed host would mean DNS). Waits are 1-6 ms, 30 ms
//! in all per input, 1 ms past that; RILL_FOREVER only on handles that cannot be live.
//! After each input every handle left is freed (servers shut down with grace 0), the
//! process-wide server's unaccepted calls are dropped, and the runtime gets 1 ms to settle.
//!
//! Checks, each a panic naming the function: every result is a `rill_result` whose
//! `rill_result_name` is its own; never RILL_ERR_PANIC; a NULL required pointer, a 0 or
//! dead handle, an out-of-range argument or invalid options give their error code (one of
//! them when several apply), never RILL_OK; otherwise the result is one the header
//! documents for the handle's state as far as the target knows it (after finish only
//! WRONG_STATE, a status once recv reported the end, a second message on a single-message
//! side refused, a server's state machine, metadata counts, poller tags); every RILL_ERR_*
//! leaves a fresh, non-empty UTF-8 message; borrowed pointers (messages, strings, slices)
//! are readable for their length (ASan); a new handle is none of the live ones; an
//! accepted call's method and shape are the ones registered.
//!
//! RILL_FUZZ_TRACE=1 prints each operation and result, for reading a reproducer. The seeds
//! come from `make_seeds.py`, whose encoder mirrors the opcodes here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rill_result::*;
use rillrpc_c::*;
use std::ffi::{c_char, CStr, CString};
use std::hint::black_box;
use std::mem::{align_of, offset_of, size_of};
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

// The biz functions are exported from a module the crate does not re-export.
extern "C" {
    fn rill_call_biz_status(
        call: u64,
        code_out: *mut i32,
        message_out: *mut *const c_char,
        extra_len_out: *mut usize,
    ) -> rill_result;
    fn rill_call_biz_extra(
        call: u64,
        index: usize,
        key_out: *mut *const c_char,
        value_out: *mut *const c_char,
    ) -> rill_result;
    fn rill_server_call_finish_biz(
        call: u64,
        code: i32,
        message: *const c_char,
        extra_keys: *const *const c_char,
        extra_values: *const *const c_char,
        extra_len: usize,
    ) -> rill_result;
}

const MAX_OPS: usize = 64;
const WAIT_BUDGET_MS: i64 = 30;

const UNARY: u32 = rill_shape::RILL_UNARY as u32;
const CLIENT_STREAMING: u32 = rill_shape::RILL_CLIENT_STREAMING as u32;
const SERVER_STREAMING: u32 = rill_shape::RILL_SERVER_STREAMING as u32;
const BIDI: u32 = rill_shape::RILL_BIDI as u32;

/// The methods the process-wide server serves: path, shape, idempotency.
const METHODS: [(&CStr, u32, u32); 5] = [
    (c"/fuzz.Echo/Unary", UNARY, 0),
    (c"/fuzz.Echo/ClientStream", CLIENT_STREAMING, 0),
    (c"/fuzz.Echo/ServerStream", SERVER_STREAMING, 0),
    (c"/fuzz.Echo/Bidi", BIDI, 0),
    (c"/fuzz.Echo/Get", UNARY, 1),
];

/// `rill_result_name`'s answers, by code.
const NAMES: [&str; 14] = [
    "RILL_OK",
    "RILL_WOULD_BLOCK",
    "RILL_TIMEOUT",
    "RILL_EOF",
    "RILL_ERR_INVALID_ARGUMENT",
    "RILL_ERR_NULL",
    "RILL_ERR_STALE_HANDLE",
    "RILL_ERR_WRONG_STATE",
    "RILL_ERR_STATUS",
    "RILL_ERR_CLOSED",
    "RILL_ERR_PANIC",
    "RILL_NOT_FOUND",
    "RILL_ERR_TLS",
    "RILL_ERR_IO",
];

/// The operations by opcode, for the trace (`S::op` has their bodies; `make_seeds.py` the
/// same list).
const OPS: [&str; 40] = [
    "channel_new",
    "channel_free",
    "call_open",
    "call_open_req",
    "call_send",
    "call_try_send",
    "call_send_batch",
    "call_close_send",
    "call_recv",
    "call_headers",
    "call_finish",
    "call_status",
    "call_cancel",
    "call_free",
    "server_new",
    "server_add_method",
    "server_listen",
    "server_start",
    "server_accept",
    "server_port",
    "server_shutdown",
    "server_free",
    "scall_info",
    "scall_recv",
    "scall_send",
    "scall_send_headers",
    "scall_finish",
    "scall_finish_biz",
    "scall_cancel",
    "scall_status",
    "scall_free",
    "md_new",
    "md_append",
    "md_read",
    "md_free",
    "poller_new",
    "poller_free",
    "set_poller",
    "poller_next",
    "misc",
];

/// A metadata handle that is malformed (index 0): an error with a message of its own,
/// set before each checked function so that a stale message is told from a fresh one.
const SENTINEL: u64 = 0x01AB_CDEF_0000_0000;

fn tracing() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("RILL_FUZZ_TRACE").is_some())
}

macro_rules! trace {
    ($($t:tt)*) => { if tracing() { eprintln!($($t)*) } };
}

fn bit(c: rill_result) -> u16 {
    1 << (c as u32)
}

fn bits(cs: &[rill_result]) -> u16 {
    cs.iter().fold(0, |a, c| a | bit(*c))
}

fn names(set: u16) -> String {
    let v: Vec<&str> = (0..14)
        .filter(|i| set & (1 << i) != 0)
        .map(|i| NAMES[i])
        .collect();
    v.join("|")
}

/// What a call may return: `fail`, when an argument or handle is bad, must hold the
/// result (several bad things: any of theirs); otherwise `ok` must. `maybe` holds what an
/// argument the target cannot judge may give, in either case.
#[derive(Clone, Copy)]
struct Exp {
    ok: u16,
    fail: u16,
    maybe: u16,
}

impl Exp {
    fn ok(cs: &[rill_result]) -> Exp {
        Exp {
            ok: bits(cs),
            fail: 0,
            maybe: 0,
        }
    }
    fn only(self, cond: bool, cs: &[rill_result]) -> Exp {
        if cond {
            Exp {
                ok: bits(cs),
                ..self
            }
        } else {
            self
        }
    }
    fn also(mut self, cond: bool, c: rill_result) -> Exp {
        if cond {
            self.ok |= bit(c);
        }
        self
    }
    fn maybe(mut self, cond: bool, c: rill_result) -> Exp {
        if cond {
            self.maybe |= bit(c);
        }
        self
    }
    fn bad(mut self, cond: bool, c: rill_result) -> Exp {
        if cond {
            self.fail |= bit(c);
        }
        self
    }
    fn handle(self, p: &Pick) -> Exp {
        self.bad(p.st == St::Dead, RILL_ERR_STALE_HANDLE)
            .bad(p.st == St::Zero, RILL_ERR_NULL)
    }
    /// A handle where 0 means "none".
    fn opt_handle(self, p: &Pick) -> Exp {
        self.bad(p.st == St::Dead, RILL_ERR_STALE_HANDLE)
    }
    fn verdict(mut self, v: Verdict, unknown: &[rill_result]) -> Exp {
        self.fail |= v.fail;
        if v.unknown {
            self.maybe |= bits(unknown);
        }
        self
    }
}

/// What options (or a target) are known to give: `fail` when something in them must be
/// refused, `unknown` when the target cannot tell whether they are accepted.
#[derive(Clone, Copy, Default)]
struct Verdict {
    fail: u16,
    unknown: bool,
}

impl Verdict {
    fn bad(&mut self, cond: bool, c: rill_result) {
        if cond {
            self.fail |= bit(c);
        }
    }
    fn valid(&self) -> bool {
        self.fail == 0 && !self.unknown
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Channel,
    Call,
    Server,
    ServerCall,
    Metadata,
    Poller,
}

const KINDS: [Kind; 6] = [
    Kind::Channel,
    Kind::Call,
    Kind::Server,
    Kind::ServerCall,
    Kind::Metadata,
    Kind::Poller,
];

/// A handle argument and what the target knows of it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum St {
    /// A live handle of the right kind in its table's slot.
    Live(usize),
    /// A live process-wide handle.
    Static(usize),
    /// Freed, of another kind, or never handed out: must be refused.
    Dead,
    Zero,
}

#[derive(Clone, Copy, Debug)]
struct Pick {
    h: u64,
    st: St,
}

impl Pick {
    fn slot(&self) -> Option<usize> {
        match self.st {
            St::Live(i) => Some(i),
            _ => None,
        }
    }
    fn dead(&self) -> bool {
        matches!(self.st, St::Dead | St::Zero)
    }
}

#[derive(Clone, Default)]
struct Slot<M> {
    h: u64,
    live: bool,
    m: M,
}

#[derive(Clone, Default)]
struct ChanM {
    /// gRPC over HTTP/2 to a fixed http:// target with valid options: opening a call with
    /// valid arguments must work.
    plain: bool,
}

#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
enum Ended {
    #[default]
    Unknown,
    /// recv said RILL_EOF: the status is OK.
    Eof,
    /// recv said RILL_ERR_STATUS: the status is not OK.
    Failed,
    Code(u32),
}

#[derive(Clone, Default)]
struct CallM {
    shape: u32,
    finished: bool,
    /// close_send, or the one message of a single-request call went.
    send_closed: bool,
    ended: Ended,
    /// The extra map's length, once rill_call_biz_status said.
    biz_extra: Option<usize>,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Addr {
    #[default]
    None,
    /// 127.0.0.1:0: start must bind it.
    Good,
    /// [::1]:0: works where the host has IPv6 loopback.
    Maybe,
    Bad,
}

#[derive(Clone, Default)]
struct SrvM {
    addr: Addr,
    tls: bool,
    started: bool,
    shut: bool,
    port: u16,
    /// Path -> shape; a path added again takes its last shape.
    methods: Vec<(Vec<u8>, u32)>,
}

#[derive(Clone, Default)]
struct ScM {
    method: Vec<u8>,
    shape: u32,
    finished: bool,
    /// A single-response call sent its message.
    sent_one: bool,
    /// recv reported the call's end (RILL_ERR_STATUS): rill_server_call_status works.
    seen_status: bool,
}

#[derive(Clone, Default)]
struct MdM {
    count: Option<usize>,
    keys: Vec<Vec<u8>>,
}

#[derive(Clone, Default)]
struct PolM {
    tags: Vec<u64>,
    /// At least this many tags are queued (each attach queues one).
    queued: usize,
}

struct Statics {
    server: u64,
    port: u16,
    /// One per protocol, gRPC first.
    channels: [u64; 4],
    sentinel_msg: String,
}

fn statics() -> &'static Statics {
    static S: OnceLock<Statics> = OnceLock::new();
    S.get_or_init(|| {
        // Two workers are plenty for loopback traffic and fewer threads for ASan to track;
        // a later rill_runtime_configure must then say WRONG_STATE.
        let _ = rill_runtime_configure(2);
        let must = |r: rill_result, what: &str| {
            assert_eq!(
                r,
                RILL_OK,
                "setting up the fuzz target: {what}: {}",
                last_msg()
            )
        };
        let (mut server, mut port) = (0u64, 0u16);
        let mut channels = [0u64; 4];
        // SAFETY: for all calls below, static C strings and local out-variables.
        unsafe {
            must(rill_server_new(null(), &mut server), "rill_server_new");
            for (path, shape, idem) in METHODS {
                must(
                    rill_server_add_method_with(server, path.as_ptr(), shape, idem),
                    "add_method",
                );
            }
            must(
                rill_server_listen(server, c"127.0.0.1:0".as_ptr(), null(), null()),
                "listen",
            );
            must(rill_server_start(server), "start");
            must(rill_server_port(server, &mut port), "port");
            let target = CString::new(format!("http://127.0.0.1:{port}")).unwrap();
            for (p, ch) in channels.iter_mut().enumerate() {
                let mut o: rill_channel_options = std::mem::zeroed();
                must(rill_channel_options_init(&mut o), "channel options");
                o.protocol = p as u32;
                must(
                    rill_channel_new(target.as_ptr(), &o, ch),
                    "rill_channel_new",
                );
            }
        }
        prime();
        Statics {
            server,
            port,
            channels,
            sentinel_msg: last_msg(),
        }
    })
}

fn prime() {
    let mut n = 0usize;
    let _ = rill_metadata_count(SENTINEL, &mut n);
}

fn last_msg() -> String {
    let p = rill_last_error_message();
    if p.is_null() {
        return "<NULL>".into();
    }
    // SAFETY: the library's NUL-terminated string, valid until its next error here.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Reads every byte of a borrowed buffer, so ASan sees a bad pointer or length.
fn touch(p: *const u8, len: usize, what: &str) {
    if len == 0 {
        return;
    }
    assert!(!p.is_null(), "{what}: NULL pointer with length {len}");
    // SAFETY: the library says `p` has `len` readable bytes until the next call on it.
    let s = unsafe { std::slice::from_raw_parts(p, len) };
    black_box(s.iter().fold(0u8, |a, b| a ^ b));
}

/// A borrowed C string, read whole; `utf8` when the header promises UTF-8.
fn cstr(p: *const c_char, what: &str, utf8: bool) -> Vec<u8> {
    assert!(!p.is_null(), "{what}: NULL string where one was promised");
    // SAFETY: the library promises a NUL-terminated string, valid until the call's free.
    let s = unsafe { CStr::from_ptr(p) };
    if utf8 {
        assert!(s.to_str().is_ok(), "{what}: not UTF-8: {s:?}");
    }
    s.to_bytes().to_vec()
}

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        self.u32() as u64 | (self.u32() as u64) << 32
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let start = self.pos.min(self.data.len());
        let end = (self.pos + n).min(self.data.len());
        self.pos += n;
        self.data[start..end].to_vec()
    }
    fn more(&self) -> bool {
        self.pos < self.data.len()
    }
}

/// Message bytes: `ptr` NULL when the input asked for NULL (then `len` may still be > 0).
struct Payload {
    data: Vec<u8>,
    null: bool,
    len: usize,
}

impl Payload {
    fn ptr(&self) -> *const u8 {
        if self.null {
            null()
        } else {
            self.data.as_ptr()
        }
    }
    /// NULL with a length: RILL_ERR_NULL.
    fn bad(&self) -> bool {
        self.null && self.len > 0
    }
}

fn ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(null(), |c| c.as_ptr())
}

fn utf8(s: &Option<CString>) -> bool {
    s.as_ref().is_none_or(|c| c.to_str().is_ok())
}

/// A channel target; `fixed`: a valid http:// URI of a loopback port.
struct Target {
    s: Option<CString>,
    fixed: bool,
    verdict: Verdict,
}

/// One input's run: its decoder, the handle tables, and what is known of each handle.
struct S<'a> {
    inp: Input<'a>,
    st: &'static Statics,
    waited: i64,
    ch: Vec<Slot<ChanM>>,
    call: Vec<Slot<CallM>>,
    srv: Vec<Slot<SrvM>>,
    sc: Vec<Slot<ScM>>,
    md: Vec<Slot<MdM>>,
    pol: Vec<Slot<PolM>>,
    static_polled: bool,
}

fuzz_target!(|data: &[u8]| {
    let st = statics();
    let mut s = S {
        inp: Input { data, pos: 0 },
        st,
        waited: 0,
        ch: vec![Slot::default(); 8],
        call: vec![Slot::default(); 16],
        srv: vec![Slot::default(); 2],
        sc: vec![Slot::default(); 16],
        md: vec![Slot::default(); 8],
        pol: vec![Slot::default(); 2],
        static_polled: false,
    };
    s.drain_static();
    let mut n = 0;
    while s.inp.more() && n < MAX_OPS {
        let op = s.inp.u8() % 40;
        trace!("op {n}: {op} {}", OPS[op as usize]);
        s.op(op);
        n += 1;
    }
    s.cleanup();
    trace!("input done");
});

impl S<'_> {
    /// Calls `f` and checks its result against `exp`.
    fn run(&mut self, what: &str, exp: Exp, f: impl FnOnce() -> rill_result) -> rill_result {
        prime();
        let start = tracing().then(std::time::Instant::now);
        let r = f();
        let code = r as u32;
        trace!(
            "  {what} -> {r:?} ({:?})",
            start.map(|s| s.elapsed()).unwrap_or_default()
        );
        let name_p = rill_result_name(code);
        let name = cstr(name_p, "rill_result_name", true);
        assert!(
            code < 14 && name == NAMES[code as usize].as_bytes(),
            "{what}: result {code} is named {:?}",
            String::from_utf8_lossy(&name)
        );
        assert!(
            r != RILL_ERR_PANIC,
            "{what}: RILL_ERR_PANIC: {}",
            last_msg()
        );
        let (allowed, why) = if exp.fail != 0 {
            (exp.fail | exp.maybe, "a bad argument or handle's error")
        } else {
            (exp.ok | exp.maybe, "a documented result in this state")
        };
        if allowed & (1 << code) == 0 {
            panic!(
                "{what}: returned {} where {why} was due ({}); last error message: {:?}",
                NAMES[code as usize],
                names(allowed),
                last_msg()
            );
        }
        if matches!(code, 4..=10 | 12 | 13) {
            let p = rill_last_error_message();
            let m = cstr(p, "rill_last_error_message", true);
            assert!(!m.is_empty(), "{what}: {r:?} with an empty message");
            assert!(
                m != self.st.sentinel_msg.as_bytes(),
                "{what}: {r:?} left no message of its own"
            );
        }
        r
    }

    fn len(&self, k: Kind) -> usize {
        match k {
            Kind::Channel => self.ch.len(),
            Kind::Call => self.call.len(),
            Kind::Server => self.srv.len(),
            Kind::ServerCall => self.sc.len(),
            Kind::Metadata => self.md.len(),
            Kind::Poller => self.pol.len(),
        }
    }

    fn slot(&self, k: Kind, i: usize) -> (u64, bool) {
        match k {
            Kind::Channel => (self.ch[i].h, self.ch[i].live),
            Kind::Call => (self.call[i].h, self.call[i].live),
            Kind::Server => (self.srv[i].h, self.srv[i].live),
            Kind::ServerCall => (self.sc[i].h, self.sc[i].live),
            Kind::Metadata => (self.md[i].h, self.md[i].live),
            Kind::Poller => (self.pol[i].h, self.pol[i].live),
        }
    }

    fn is_live(&self, h: u64) -> bool {
        let st = self.st;
        if h == st.server || st.channels.contains(&h) {
            return true;
        }
        KINDS.iter().any(|&k| {
            (0..self.len(k)).any(|i| {
                let (sh, live) = self.slot(k, i);
                live && sh == h
            })
        })
    }

    /// A handle argument of kind `k` (see the module doc); `statics` when the operation
    /// may get a process-wide handle.
    fn pick(&mut self, k: Kind, statics: bool) -> Pick {
        let b = self.inp.u8();
        let own = |s: &Self, i: usize| {
            let (h, live) = s.slot(k, i);
            let st = match (h, live) {
                (0, _) => St::Zero,
                (_, true) => St::Live(i),
                _ => St::Dead,
            };
            Pick { h, st }
        };
        let p = match b {
            0xE0..=0xE7 if statics && k == Kind::Channel => {
                let i = (b & 3) as usize;
                Pick {
                    h: self.st.channels[i],
                    st: St::Static(i),
                }
            }
            0xE0..=0xE7 if statics && k == Kind::Server => Pick {
                h: self.st.server,
                st: St::Static(0),
            },
            0x00..=0xE7 => own(self, b as usize % self.len(k)),
            0xE8..=0xEF => {
                let ki = KINDS.iter().position(|&x| x == k).unwrap();
                let other = KINDS[(ki + 1 + (b & 7) as usize % 5) % 6];
                let i = self.inp.u8() as usize % self.len(other);
                let h = self.slot(other, i).0;
                let st = if h == 0 { St::Zero } else { St::Dead };
                Pick { h, st }
            }
            0xF0..=0xF7 => Pick { h: 0, st: St::Zero },
            _ => {
                let mut h = self.inp.u64();
                while h != 0 && (h == SENTINEL || self.is_live(h)) {
                    h = h.rotate_left(8) ^ 0x5A;
                }
                let st = if h == 0 { St::Zero } else { St::Dead };
                Pick { h, st }
            }
        };
        trace!("  {k:?} handle {:#x} ({:?})", p.h, p.st);
        p
    }

    /// A timeout argument of a blocking function; RILL_FOREVER only when `dead`, so that
    /// the handle's refusal must come before any wait.
    fn timeout(&mut self, dead: bool) -> i64 {
        let t = match self.inp.u8() % 16 {
            0 => 0,
            1 => -1,
            2 => i64::MIN,
            3 if dead => RILL_FOREVER,
            n => self.charge((n.max(4) as i64 - 4) % 6 + 1),
        };
        trace!("  timeout {t}");
        t
    }

    fn charge(&mut self, ms: i64) -> i64 {
        let ms = if self.waited + ms > WAIT_BUDGET_MS {
            1
        } else {
            ms
        };
        self.waited += ms;
        ms
    }

    fn payload(&mut self) -> Payload {
        let b = self.inp.u8();
        let p = match b {
            0xFF => {
                let len = self.inp.u8() as usize;
                Payload {
                    data: Vec::new(),
                    null: true,
                    len,
                }
            }
            0x80..=0xFE => {
                let len = ((b as usize & 0x7F) << 8 | self.inp.u8() as usize) & 0x3FFF;
                let fill = self.inp.u8();
                Payload {
                    data: vec![fill; len],
                    null: false,
                    len,
                }
            }
            _ => {
                let data = self.inp.bytes(b as usize);
                let len = data.len();
                Payload {
                    data,
                    null: false,
                    len,
                }
            }
        };
        trace!(
            "  payload {} bytes{}",
            p.len,
            if p.null { " (NULL)" } else { "" }
        );
        p
    }

    /// A C string from the input (NULs dropped), or None for NULL (0xFF).
    fn cstring(&mut self) -> Option<CString> {
        let b = self.inp.u8();
        if b == 0xFF {
            return None;
        }
        let mut v = self.inp.bytes(b as usize & 0x7F);
        v.retain(|&c| c != 0);
        Some(CString::new(v).unwrap())
    }

    /// A method path: one of the process-wide server's, an unregistered one, malformed
    /// ones, or NULL. `Some(true)`: a well-formed path.
    fn method(&mut self) -> (Option<CString>, Option<bool>) {
        let m = self.inp.u8() % 16;
        let fixed = |s: &CStr| Some(s.to_owned());
        let r = match m {
            0..=9 => (fixed(METHODS[m as usize % 5].0), Some(true)),
            10 => (fixed(c"/fuzz.Echo/Missing"), Some(true)),
            11 => (self.cstring(), None),
            12 => (fixed(c""), None),
            13 => (fixed(c"fuzz.Echo/Unary"), None),
            14 => (fixed(c"/fuzz.Echo/Unary/more"), None),
            _ => (None, Some(false)),
        };
        trace!("  method {:?}", r.0);
        r
    }

    /// A shape: valid, or out of range.
    fn shape(&mut self) -> u32 {
        match self.inp.u8() % 6 {
            4 => 4,
            5 => u32::MAX,
            s => s as u32,
        }
    }

    /// A handle just handed out: not 0, and none of the live ones.
    fn check_new(&mut self, what: &str, h: u64) {
        assert!(h != 0, "{what}: RILL_OK with handle 0");
        assert!(
            !self.is_live(h),
            "{what}: handed out {h:#x}, which is live already"
        );
    }

    fn evict(&mut self, k: Kind, i: usize) {
        let (h, live) = self.slot(k, i);
        if live {
            self.free(k, h, i);
        }
    }

    fn free(&mut self, k: Kind, h: u64, i: usize) {
        let exp = Exp::ok(&[RILL_OK]);
        match k {
            Kind::Channel => {
                self.run("rill_channel_free", exp, || rill_channel_free(h));
                self.ch[i].live = false;
            }
            Kind::Call => {
                self.run("rill_call_free", exp, || rill_call_free(h));
                self.call[i].live = false;
            }
            Kind::Server => {
                if self.srv[i].m.started {
                    self.run("rill_server_shutdown", exp, || rill_server_shutdown(h, 0));
                }
                self.run("rill_server_free", exp, || rill_server_free(h));
                self.srv[i].live = false;
            }
            Kind::ServerCall => {
                self.run("rill_server_call_free", exp, || rill_server_call_free(h));
                self.sc[i].live = false;
            }
            Kind::Metadata => {
                self.run("rill_metadata_free", exp, || rill_metadata_free(h));
                self.md[i].live = false;
            }
            Kind::Poller => {
                self.run("rill_poller_free", exp, || rill_poller_free(h));
                self.pol[i].live = false;
            }
        }
    }

    fn new_md(&mut self, what: &str, h: u64, slot: usize, count: Option<usize>) {
        self.check_new(what, h);
        self.evict(Kind::Metadata, slot);
        self.md[slot] = Slot {
            h,
            live: true,
            m: MdM {
                count,
                keys: Vec::new(),
            },
        };
    }

    fn op(&mut self, op: u8) {
        match op {
            0 => self.channel_new(),
            1 => {
                let c = self.pick(Kind::Channel, false);
                let exp = Exp::ok(&[RILL_OK]).handle(&c);
                if self.run("rill_channel_free", exp, || rill_channel_free(c.h)) == RILL_OK {
                    self.ch[c.slot().unwrap()].live = false;
                }
            }
            2 => self.call_open(false),
            3 => self.call_open(true),
            4..=6 => self.call_send(op - 4),
            7 => {
                let c = self.pick(Kind::Call, false);
                let m = c.slot().map(|i| self.call[i].m.clone()).unwrap_or_default();
                let exp = Exp::ok(&[RILL_OK])
                    .only(m.finished, &[RILL_ERR_WRONG_STATE])
                    .handle(&c);
                if self.run("rill_call_close_send", exp, || rill_call_close_send(c.h)) == RILL_OK {
                    self.call[c.slot().unwrap()].m.send_closed = true;
                }
            }
            8 => self.call_recv(),
            9 => self.call_headers(),
            10 => self.call_finish(),
            11 => self.call_status(),
            12 => {
                let c = self.pick(Kind::Call, false);
                let exp = Exp::ok(&[RILL_OK]).handle(&c);
                self.run("rill_call_cancel", exp, || rill_call_cancel(c.h));
            }
            13 => {
                let c = self.pick(Kind::Call, false);
                let exp = Exp::ok(&[RILL_OK]).handle(&c);
                if self.run("rill_call_free", exp, || rill_call_free(c.h)) == RILL_OK {
                    self.call[c.slot().unwrap()].live = false;
                }
            }
            14 => self.server_new(),
            15 => self.server_add_method(),
            16 => self.server_listen(),
            17 => self.server_start(),
            18 => self.server_accept(),
            19 => {
                let s = self.pick(Kind::Server, true);
                let null_out = self.inp.u8() & 1 == 1;
                let m = self.srv_model(&s);
                let exp = Exp::ok(&[RILL_OK])
                    .only(!m.started, &[RILL_ERR_WRONG_STATE])
                    .handle(&s)
                    .bad(null_out, RILL_ERR_NULL);
                let mut port = 0u16;
                let out = if null_out { null_mut() } else { &mut port };
                if self.run("rill_server_port", exp, || rill_server_port(s.h, out)) == RILL_OK {
                    assert!(
                        port != 0 && port == m.port,
                        "rill_server_port: {port}, the server listens on {}",
                        m.port
                    );
                }
            }
            20 => {
                let s = self.pick(Kind::Server, false);
                let g = self.inp.u8() % 8;
                let grace = if g == 1 {
                    -1
                } else {
                    self.charge(g.max(2) as i64 - 2)
                };
                let m = self.srv_model(&s);
                let exp = Exp::ok(&[RILL_OK])
                    .only(!m.started, &[RILL_ERR_WRONG_STATE])
                    .handle(&s)
                    .bad(grace < 0, RILL_ERR_INVALID_ARGUMENT);
                let r = self.run("rill_server_shutdown", exp, || {
                    rill_server_shutdown(s.h, grace)
                });
                if r == RILL_OK {
                    self.srv[s.slot().unwrap()].m.shut = true;
                }
            }
            21 => {
                let s = self.pick(Kind::Server, false);
                let exp = Exp::ok(&[RILL_OK]).handle(&s);
                if self.run("rill_server_free", exp, || rill_server_free(s.h)) == RILL_OK {
                    self.srv[s.slot().unwrap()].live = false;
                }
            }
            22 => self.scall_info(),
            23 => self.scall_recv(),
            24 => self.scall_send(),
            25 => {
                let c = self.pick(Kind::ServerCall, false);
                let md = self.pick(Kind::Metadata, false);
                let m = c.slot().map(|i| self.sc[i].m.clone()).unwrap_or_default();
                let exp = Exp::ok(&[RILL_OK, RILL_ERR_WRONG_STATE])
                    .only(m.finished, &[RILL_ERR_WRONG_STATE])
                    .handle(&c)
                    .opt_handle(&md);
                self.run("rill_server_call_send_headers", exp, || {
                    rill_server_call_send_headers(c.h, md.h)
                });
            }
            26 => self.scall_finish(),
            27 => self.scall_finish_biz(),
            28 => {
                let c = self.pick(Kind::ServerCall, false);
                let exp = Exp::ok(&[RILL_OK]).handle(&c);
                if self.run("rill_server_call_cancel", exp, || {
                    rill_server_call_cancel(c.h)
                }) == RILL_OK
                {
                    self.sc[c.slot().unwrap()].m.finished = true;
                }
            }
            29 => self.scall_status(),
            30 => {
                let c = self.pick(Kind::ServerCall, false);
                let exp = Exp::ok(&[RILL_OK]).handle(&c);
                if self.run("rill_server_call_free", exp, || rill_server_call_free(c.h)) == RILL_OK
                {
                    self.sc[c.slot().unwrap()].live = false;
                }
            }
            31 => {
                let b = self.inp.u8();
                let (slot, null_out) = (b as usize % self.md.len(), b & 0x80 != 0);
                let mut h = 0;
                let out = if null_out { null_mut() } else { &mut h };
                let exp = Exp::ok(&[RILL_OK]).bad(null_out, RILL_ERR_NULL);
                if self.run("rill_metadata_new", exp, || rill_metadata_new(out)) == RILL_OK {
                    self.new_md("rill_metadata_new", h, slot, Some(0));
                }
            }
            32 => self.md_append(),
            33 => self.md_read(),
            34 => {
                let md = self.pick(Kind::Metadata, false);
                let exp = Exp::ok(&[RILL_OK]).handle(&md);
                if self.run("rill_metadata_free", exp, || rill_metadata_free(md.h)) == RILL_OK {
                    self.md[md.slot().unwrap()].live = false;
                }
            }
            35 => {
                let b = self.inp.u8();
                let (slot, null_out) = (b as usize % self.pol.len(), b & 0x80 != 0);
                let mut h = 0;
                let out = if null_out { null_mut() } else { &mut h };
                let exp = Exp::ok(&[RILL_OK, RILL_ERR_IO]).bad(null_out, RILL_ERR_NULL);
                if self.run("rill_poller_new", exp, || rill_poller_new(out)) == RILL_OK {
                    self.check_new("rill_poller_new", h);
                    self.evict(Kind::Poller, slot);
                    self.pol[slot] = Slot {
                        h,
                        live: true,
                        m: PolM::default(),
                    };
                }
            }
            36 => {
                let p = self.pick(Kind::Poller, false);
                let exp = Exp::ok(&[RILL_OK]).handle(&p);
                if self.run("rill_poller_free", exp, || rill_poller_free(p.h)) == RILL_OK {
                    self.pol[p.slot().unwrap()].live = false;
                }
            }
            37 => self.set_poller(),
            38 => self.poller_next(),
            _ => self.misc(),
        }
    }

    // ---- channels ----

    fn target(&mut self) -> Target {
        let b = self.inp.u8();
        let port = self.st.port;
        let fixed = |s: String| Target {
            s: Some(CString::new(s).unwrap()),
            fixed: true,
            verdict: Verdict::default(),
        };
        let loose = |s: String, fail: u16| Target {
            s: Some(CString::new(s).unwrap()),
            fixed: false,
            verdict: Verdict {
                fail,
                unknown: fail == 0,
            },
        };
        let t = match b % 8 {
            0 => Target {
                ..fixed(format!("http://127.0.0.1:{port}"))
            },
            1 => {
                let m = &self.srv[(b >> 3) as usize % self.srv.len()].m;
                let p = if m.port != 0 { m.port } else { port };
                fixed(format!("http://127.0.0.1:{p}"))
            }
            2 => fixed("http://127.0.0.1:1".into()),
            3 => loose(format!("https://127.0.0.1:{port}"), 0),
            4 => {
                // Pieces around a literal host: a fuzzed host would be resolved by DNS.
                const SCHEMES: [&str; 7] = [
                    "http://", "https://", "HTTP://", "ftp://", "", "http:/", "http:///",
                ];
                const HOSTS: [&str; 6] =
                    ["127.0.0.1", "[::1]", "", "[::1", "127.0.0.1]", "0.0.0.0"];
                let sch = SCHEMES[self.inp.u8() as usize % SCHEMES.len()];
                let host = HOSTS[self.inp.u8() as usize % HOSTS.len()];
                let p = match self.inp.u8() % 10 {
                    0 => String::new(),
                    1 => ":".into(),
                    2 => ":0".into(),
                    3 => ":1".into(),
                    4 => format!(":{port}"),
                    5 => ":65535".into(),
                    6 => ":65536".into(),
                    7 => ":-1".into(),
                    8 => ":x".into(),
                    _ => ":99999999999".into(),
                };
                let mut v = format!("{sch}{host}{p}").into_bytes();
                match self.inp.u8() % 4 {
                    0 => {}
                    1 => v.push(b'/'),
                    2 => v.extend_from_slice(b"/a/b?c#d"),
                    _ => {
                        // A path after the authority: it cannot change the host.
                        v.push(b'/');
                        if let Some(s) = self.cstring() {
                            v.extend_from_slice(s.as_bytes());
                        }
                    }
                }
                Target {
                    s: Some(CString::new(v).unwrap()),
                    fixed: false,
                    verdict: Verdict {
                        fail: 0,
                        unknown: true,
                    },
                }
            }
            5 => {
                // Without ':' there is no scheme: always refused, and never resolved.
                let mut v = self.cstring().map(|c| c.into_bytes()).unwrap_or_default();
                v.retain(|&c| c != b':');
                Target {
                    s: Some(CString::new(v).unwrap()),
                    fixed: false,
                    verdict: Verdict {
                        fail: bit(RILL_ERR_INVALID_ARGUMENT),
                        unknown: false,
                    },
                }
            }
            6 => loose(format!("127.0.0.1:{port}"), bit(RILL_ERR_INVALID_ARGUMENT)),
            _ => Target {
                s: None,
                fixed: false,
                verdict: Verdict {
                    fail: bit(RILL_ERR_NULL),
                    unknown: false,
                },
            },
        };
        trace!("  target {:?}", t.s);
        t
    }

    fn channel_new(&mut self) {
        let slot = self.inp.u8() as usize % self.ch.len();
        let mut t = self.target();
        let f = self.inp.u8();
        let null_out = f & 0x80 != 0;
        let mut keep: Vec<CString> = Vec::new();
        // SAFETY: a C options struct of integers and nullable pointers, for which all zeroes
        // is a valid value (the header's defaults).
        let mut o: rill_channel_options = unsafe { std::mem::zeroed() };
        let mut use_opts = f & 1 == 1;
        let mut v = Verdict::default();
        let mut plain = true;
        if use_opts {
            let exp = Exp::ok(&[RILL_OK]);
            self.run("rill_channel_options_init", exp, || {
                rill_channel_options_init(&mut o)
            });
            (v, plain) = self.channel_opts(&mut o, (f >> 1) & 7, &mut keep);
        }
        if !t.fixed && (!use_opts || (o.tls_ca_pem.is_null() && o.tls_ca_file.is_null())) {
            // An https:// target without a CA would load the system's roots for every
            // channel: slow, and not this target's business.
            if !use_opts {
                let exp = Exp::ok(&[RILL_OK]);
                self.run("rill_channel_options_init", exp, || {
                    rill_channel_options_init(&mut o)
                });
                use_opts = true;
            }
            keep.push(c"not a PEM certificate".to_owned());
            o.tls_ca_pem = keep.last().unwrap().as_ptr();
        }
        if !utf8(&t.s) {
            t.verdict.bad(true, RILL_ERR_INVALID_ARGUMENT);
        }
        let exp = Exp::ok(&[RILL_OK])
            .verdict(v, &[RILL_ERR_INVALID_ARGUMENT, RILL_ERR_TLS, RILL_ERR_IO])
            .verdict(
                t.verdict,
                &[RILL_ERR_INVALID_ARGUMENT, RILL_ERR_TLS, RILL_ERR_IO],
            )
            .bad(null_out, RILL_ERR_NULL);
        let mut h = 0;
        let out = if null_out { null_mut() } else { &mut h };
        let opts = if use_opts { &o as *const _ } else { null() };
        let target = ptr(&t.s);
        // SAFETY: the target and option strings live in `t` and `keep`.
        let r = self.run("rill_channel_new", exp, || unsafe {
            rill_channel_new(target, opts, out)
        });
        if r == RILL_OK {
            self.check_new("rill_channel_new", h);
            self.evict(Kind::Channel, slot);
            self.ch[slot] = Slot {
                h,
                live: true,
                m: ChanM {
                    plain: plain && t.fixed && v.valid(),
                },
            };
        }
    }

    /// Applies `n` fuzzed changes to channel options filled by init: the verdict on the
    /// result, and whether the channel speaks plain gRPC over HTTP/2.
    fn channel_opts(
        &mut self,
        o: &mut rill_channel_options,
        n: u8,
        keep: &mut Vec<CString>,
    ) -> (Verdict, bool) {
        const A: usize = align_of::<rill_channel_options>();
        let full = size_of::<rill_channel_options>();
        let sizes = [
            full,
            offset_of!(rill_channel_options, http_get).next_multiple_of(A),
            offset_of!(rill_channel_options, tls_cert_pem).next_multiple_of(A),
            offset_of!(rill_channel_options, authority).next_multiple_of(A),
            0,
            full + 8,
        ];
        const TIMEOUTS: [i64; 8] = [0, -1, 1, 5, 50, 20_000, i64::MAX, i64::MIN];
        const INTERVALS: [i64; 6] = [0, -1, 1, 10, 1000, i64::MAX];
        let mut s = |this: &mut Self| -> *const c_char {
            match this.cstring() {
                Some(c) => {
                    keep.push(c);
                    keep.last().unwrap().as_ptr()
                }
                None => null(),
            }
        };
        for _ in 0..n {
            let sel = self.inp.u8() % 13;
            let b = self.inp.u8();
            match sel {
                0 => o.size = sizes[b as usize % sizes.len()],
                1 => o.connect_timeout_ms = TIMEOUTS[b as usize % 8],
                2 => o.keepalive_interval_ms = INTERVALS[b as usize % 6],
                3 => o.keepalive_timeout_ms = TIMEOUTS[b as usize % 8],
                4 => o.tls_ca_pem = if b & 1 == 0 { null() } else { s(self) },
                5 => {
                    o.tls_ca_file = if b & 1 == 0 {
                        null()
                    } else {
                        c"/nonexistent/rill-fuzz/ca.pem".as_ptr()
                    }
                }
                6 => o.tls_server_name = if b & 1 == 0 { null() } else { s(self) },
                7 => o.protocol = [0, 1, 2, 3, 4, u32::MAX][b as usize % 6],
                8 => o.http_version = [0, 1, 2, 3, u32::MAX][b as usize % 5],
                9 => o.http_get = b & 1 == 1,
                10 => o.tls_cert_pem = if b & 1 == 0 { null() } else { s(self) },
                11 => o.tls_key_pem = if b & 1 == 0 { null() } else { s(self) },
                _ => o.authority = if b & 1 == 0 { null() } else { s(self) },
            }
        }
        trace!(
            "  channel options size {} timeouts {}/{}/{} protocol {} http {}",
            o.size,
            o.connect_timeout_ms,
            o.keepalive_interval_ms,
            o.keepalive_timeout_ms,
            o.protocol,
            o.http_version
        );
        let mut v = Verdict::default();
        let Some(si) = sizes[..4].iter().position(|&x| x == o.size) else {
            v.bad(true, RILL_ERR_INVALID_ARGUMENT);
            return (v, false);
        };
        // Which fields this size's struct has: the rest are the library's defaults.
        let has = |off: usize| si == 0 || off < sizes[si];
        let text_ok = |p: *const c_char| {
            // SAFETY: NULL or one of the CStrings in `keep` (or a static one).
            p.is_null() || unsafe { CStr::from_ptr(p) }.to_str().is_ok()
        };
        let inv = RILL_ERR_INVALID_ARGUMENT;
        v.unknown = si != 0;
        v.bad(o.connect_timeout_ms <= 0, inv);
        v.bad(o.keepalive_timeout_ms <= 0, inv);
        v.bad(o.keepalive_interval_ms < 0, inv);
        v.bad(o.protocol > 3, inv);
        v.bad(o.http_version > 2, inv);
        v.bad(!text_ok(o.tls_ca_pem) || !text_ok(o.tls_server_name), inv);
        match (o.tls_ca_pem.is_null(), o.tls_ca_file.is_null()) {
            (false, false) => v.bad(true, inv),
            (true, false) => v.bad(true, RILL_ERR_IO),
            _ => {}
        }
        if has(offset_of!(rill_channel_options, tls_cert_pem)) {
            v.bad(!text_ok(o.tls_cert_pem) || !text_ok(o.tls_key_pem), inv);
            v.bad(o.tls_cert_pem.is_null() != o.tls_key_pem.is_null(), inv);
        }
        if has(offset_of!(rill_channel_options, authority)) {
            v.bad(!text_ok(o.authority), inv);
            v.unknown |= !o.authority.is_null();
        }
        // Protocols and HTTP versions refuse some combinations with each other.
        v.unknown |= o.protocol != 0 || o.http_version != 0;
        (v, o.protocol == 0 && o.http_version == 0)
    }

    // ---- calls ----

    fn call_opts(
        &mut self,
        o: &mut rill_call_options,
        keep: &mut Vec<CString>,
    ) -> (bool, Verdict, bool) {
        let f = self.inp.u8();
        let null_out = f & 0x80 != 0;
        let mut v = Verdict::default();
        if f & 1 == 0 {
            return (false, v, null_out);
        }
        let exp = Exp::ok(&[RILL_OK]);
        self.run("rill_call_options_init", exp, || rill_call_options_init(o));
        let full = size_of::<rill_call_options>();
        let earlier = offset_of!(rill_call_options, content_subtype)
            .next_multiple_of(align_of::<rill_call_options>());
        let mut md = Pick { h: 0, st: St::Zero };
        let mut subtype_known = true;
        for _ in 0..(f >> 1) & 7 {
            let sel = self.inp.u8() % 9;
            let b = self.inp.u8();
            match sel {
                0 => o.size = [full, earlier, 0, 1, full + 8][b as usize % 5],
                1 => o.timeout_ms = [0, -1, 1, 3, 20, 1000, i64::MAX, i64::MIN][b as usize % 8],
                2 => {
                    md = self.pick(Kind::Metadata, false);
                    o.metadata = md.h;
                }
                3 => o.compression = [0, 1, 2, u32::MAX][b as usize % 4],
                4 => o.max_recv_message_size = [0, 1, 4, 64, u32::MAX][b as usize % 5],
                5 => o.wait_for_ready = b & 1 == 1,
                6 => o.idempotency = [0, 1, 2, 3, u32::MAX][b as usize % 5],
                7 => {
                    let fixed = [
                        null(),
                        c"thrift".as_ptr(),
                        c"json".as_ptr(),
                        c"proto".as_ptr(),
                    ];
                    subtype_known = b % 5 != 4;
                    o.content_subtype = match b % 5 {
                        4 => match self.cstring() {
                            Some(c) => {
                                keep.push(c);
                                keep.last().unwrap().as_ptr()
                            }
                            None => null(),
                        },
                        i => fixed[i as usize],
                    };
                }
                _ => o.timeout_ms = 1 + b as i64 % 10,
            }
        }
        trace!(
            "  call options size {} timeout {} md {:#x} compression {} max {} idem {}",
            o.size,
            o.timeout_ms,
            o.metadata,
            o.compression,
            o.max_recv_message_size,
            o.idempotency
        );
        let inv = RILL_ERR_INVALID_ARGUMENT;
        if o.size != full && o.size != earlier {
            v.bad(true, inv);
            return (true, v, null_out);
        }
        v.bad(o.timeout_ms < 0, inv);
        v.bad(o.compression > 1, inv);
        v.bad(o.idempotency > 2, inv);
        // The metadata handle came from `pick` only if it was changed.
        if o.metadata != 0 && md.h == o.metadata {
            v.bad(md.st == St::Dead, RILL_ERR_STALE_HANDLE);
        }
        if o.size == full && !o.content_subtype.is_null() {
            // SAFETY: a static C string or one in `keep`.
            let ok = unsafe { CStr::from_ptr(o.content_subtype) }
                .to_str()
                .is_ok();
            v.bad(!ok, inv);
            v.unknown |= !subtype_known;
        }
        (true, v, null_out)
    }

    fn call_open(&mut self, with_request: bool) {
        let ch = self.pick(Kind::Channel, true);
        let (method, mvalid) = self.method();
        let shape = self.shape();
        let mut keep = Vec::new();
        // SAFETY: a C options struct of integers and nullable pointers, for which all zeroes
        // is a valid value (the header's defaults).
        let mut o: rill_call_options = unsafe { std::mem::zeroed() };
        let (use_opts, v, null_out) = self.call_opts(&mut o, &mut keep);
        let req = with_request.then(|| self.payload());
        let slot = self.inp.u8() as usize % self.call.len();
        let plain = match ch.st {
            St::Static(i) => i == 0,
            St::Live(i) => self.ch[i].m.plain,
            _ => false,
        };
        let single = shape == UNARY || shape == SERVER_STREAMING;
        let judged = mvalid == Some(true) && (!with_request || single);
        let exp = Exp::ok(&[RILL_OK])
            .also(!plain, RILL_ERR_INVALID_ARGUMENT)
            .maybe(!judged, RILL_ERR_INVALID_ARGUMENT)
            .verdict(v, &[RILL_ERR_INVALID_ARGUMENT])
            .handle(&ch)
            .bad(method.is_none(), RILL_ERR_NULL)
            .bad(!utf8(&method), RILL_ERR_INVALID_ARGUMENT)
            .bad(shape > 3, RILL_ERR_INVALID_ARGUMENT)
            .bad(null_out, RILL_ERR_NULL)
            .bad(req.as_ref().is_some_and(|p| p.bad()), RILL_ERR_NULL);
        let mut h = 0;
        let out = if null_out { null_mut() } else { &mut h };
        let opts = if use_opts { &o as *const _ } else { null() };
        let mp = ptr(&method);
        let r = match &req {
            // SAFETY: strings live in `method` and `keep`.
            None => self.run("rill_call_open", exp, || unsafe {
                rill_call_open(ch.h, mp, shape, opts, out)
            }),
            // SAFETY: strings live in `method` and `keep`, the request in `req`.
            Some(p) => self.run("rill_call_open_with_request", exp, || unsafe {
                rill_call_open_with_request(ch.h, mp, shape, opts, p.ptr(), p.len, out)
            }),
        };
        if r == RILL_OK {
            self.check_new("rill_call_open", h);
            self.evict(Kind::Call, slot);
            self.call[slot] = Slot {
                h,
                live: true,
                m: CallM {
                    shape,
                    send_closed: with_request,
                    ..CallM::default()
                },
            };
        }
    }

    /// Sends with rill_call_send (0), try_send (1) or try_send_batch (2).
    fn call_send(&mut self, how: u8) {
        let c = self.pick(Kind::Call, false);
        let m = c.slot().map(|i| self.call[i].m.clone()).unwrap_or_default();
        let single = m.shape == UNARY || m.shape == SERVER_STREAMING;
        let refused = [RILL_ERR_WRONG_STATE, RILL_ERR_CLOSED];
        let r = match how {
            0 | 1 => {
                let p = self.payload();
                let base = if how == 0 {
                    Exp::ok(&[RILL_OK, RILL_TIMEOUT, RILL_ERR_WRONG_STATE, RILL_ERR_CLOSED])
                } else {
                    Exp::ok(&[
                        RILL_OK,
                        RILL_WOULD_BLOCK,
                        RILL_ERR_WRONG_STATE,
                        RILL_ERR_CLOSED,
                    ])
                };
                let base = base
                    .only(m.send_closed, &refused)
                    .only(m.finished, &[RILL_ERR_WRONG_STATE])
                    .handle(&c)
                    .bad(p.bad(), RILL_ERR_NULL);
                if how == 0 {
                    let t = self.timeout(c.dead() || p.bad());
                    let exp = base.bad(t <= 0, RILL_ERR_INVALID_ARGUMENT);
                    // SAFETY: `p` holds its bytes (or is NULL, as the input asked).
                    self.run("rill_call_send", exp, || unsafe {
                        rill_call_send(c.h, p.ptr(), p.len, t)
                    })
                } else {
                    // SAFETY: as above.
                    self.run("rill_call_try_send", base, || unsafe {
                        rill_call_try_send(c.h, p.ptr(), p.len)
                    })
                }
            }
            _ => {
                let b = self.inp.u8();
                let (n, null_out) = (b as usize % 9, b & 0x80 != 0);
                let exp = Exp::ok(&[
                    RILL_OK,
                    RILL_WOULD_BLOCK,
                    RILL_ERR_WRONG_STATE,
                    RILL_ERR_CLOSED,
                ])
                .only(n == 0, &[RILL_OK])
                .only(n > 0 && (m.send_closed || (single && n > 1)), &refused)
                .only(m.finished, &[RILL_ERR_WRONG_STATE])
                .handle(&c)
                .bad(null_out, RILL_ERR_NULL);
                let f = rill_call_try_send_batch as SendBatchFn;
                let (_, r) = self.send_batch("rill_call_try_send_batch", f, c.h, n, null_out, exp);
                if r == RILL_OK && n > 0 && single {
                    self.call[c.slot().unwrap()].m.send_closed = true;
                }
                r
            }
        };
        if r == RILL_OK && how < 2 && single {
            self.call[c.slot().unwrap()].m.send_closed = true;
        }
    }

    /// Builds `n` slices from the input and calls `f`, a try_send_batch function:
    /// (messages queued, result).
    fn send_batch(
        &mut self,
        what: &str,
        f: SendBatchFn,
        h: u64,
        n: usize,
        null_out: bool,
        exp: Exp,
    ) -> (usize, rill_result) {
        let ps: Vec<Payload> = (0..n).map(|_| self.payload()).collect();
        let slices: Vec<rill_slice> = ps
            .iter()
            .map(|p| rill_slice {
                // The contract allows a NULL slice only when it is empty.
                data: if p.null { null() } else { p.data.as_ptr() },
                len: if p.null { 0 } else { p.len },
            })
            .collect();
        let mut sent = usize::MAX;
        let out = if null_out { null_mut() } else { &mut sent };
        let msgs = if n == 0 { null() } else { slices.as_ptr() };
        // SAFETY: `slices` and their bytes (`ps`) live across the call.
        let r = self.run(what, exp, || unsafe { f(h, msgs, n, out) });
        self.check_sent(what, r, sent, n, null_out);
        (sent, r)
    }

    fn check_sent(&self, what: &str, r: rill_result, sent: usize, n: usize, null_out: bool) {
        if null_out {
            return;
        }
        assert!(sent <= n, "{what}: {sent} of {n} messages sent");
        match r {
            RILL_OK => assert_eq!(sent, n, "{what}: RILL_OK with {sent} of {n} sent"),
            _ => assert!(sent < n || sent == 0, "{what}: {r:?} with all {n} sent"),
        }
    }

    /// try_recv (0), recv (1), try_recv_batch (2) or recv_batch (3) of a client call.
    fn call_recv(&mut self) {
        let c = self.pick(Kind::Call, false);
        let mode = self.inp.u8();
        let m = c.slot().map(|i| self.call[i].m.clone()).unwrap_or_default();
        let r = self.recv(mode, &c, m.finished, RecvFns::CLIENT);
        if let Some(i) = c.slot() {
            let e = &mut self.call[i].m.ended;
            match r {
                RILL_EOF => {
                    assert!(
                        matches!(*e, Ended::Unknown | Ended::Eof | Ended::Code(0)),
                        "rill_call_recv: RILL_EOF after the call ended as {e:?}"
                    );
                    *e = Ended::Eof;
                }
                RILL_ERR_STATUS if matches!(*e, Ended::Unknown) => *e = Ended::Failed,
                _ => {}
            }
        }
    }

    /// The receive functions of a call handle, client or server: `finished` when only
    /// RILL_ERR_WRONG_STATE may come.
    fn recv(&mut self, mode: u8, c: &Pick, finished: bool, f: RecvFns) -> rill_result {
        let (null_a, null_b) = (mode & 4 != 0, mode & 8 != 0);
        let max = match mode >> 4 {
            0 => 0,
            15 => (1 << 20) + 1,
            m => m as usize,
        };
        let wait = mode & 1 == 1;
        let t = if wait {
            self.timeout(c.dead() || null_a || null_b)
        } else {
            1
        };
        let base = if wait {
            Exp::ok(&[RILL_OK, RILL_TIMEOUT, RILL_EOF, RILL_ERR_STATUS])
        } else {
            Exp::ok(&[RILL_OK, RILL_WOULD_BLOCK, RILL_EOF, RILL_ERR_STATUS])
        };
        let exp = base
            .only(finished, &[RILL_ERR_WRONG_STATE])
            .handle(c)
            .bad(null_a || null_b, RILL_ERR_NULL)
            .bad(t <= 0, RILL_ERR_INVALID_ARGUMENT);
        if mode & 2 == 0 {
            let (mut data, mut len) = (null::<u8>(), usize::MAX);
            let d = if null_a { null_mut() } else { &mut data };
            let l = if null_b { null_mut() } else { &mut len };
            let r = if wait {
                self.run(f.recv.0, exp, || (f.recv.1)(c.h, d, l, t))
            } else {
                self.run(f.try_recv.0, exp, || (f.try_recv.1)(c.h, d, l))
            };
            if r == RILL_OK {
                touch(data, len, f.recv.0);
            }
            r
        } else {
            let mut slices = vec![
                rill_slice {
                    data: null(),
                    len: 0
                };
                16
            ];
            let mut n = usize::MAX;
            let bad_max = max == 0 || max > 1 << 20;
            let exp = exp.bad(bad_max, RILL_ERR_INVALID_ARGUMENT);
            let s = if null_a {
                null_mut()
            } else {
                slices.as_mut_ptr()
            };
            let no = if null_b { null_mut() } else { &mut n };
            let r = if wait {
                self.run(f.recv_batch.0, exp, || (f.recv_batch.1)(c.h, s, max, no, t))
            } else {
                self.run(f.try_recv_batch.0, exp, || {
                    (f.try_recv_batch.1)(c.h, s, max, no)
                })
            };
            if !null_b {
                match r {
                    RILL_OK => {
                        assert!(
                            (1..=max).contains(&n),
                            "{}: RILL_OK with {n} of at most {max} messages",
                            f.recv_batch.0
                        );
                        for sl in &slices[..n] {
                            touch(sl.data, sl.len, f.recv_batch.0);
                        }
                    }
                    RILL_WOULD_BLOCK | RILL_TIMEOUT | RILL_EOF => {
                        assert_eq!(n, 0, "{}: {r:?} with {n} messages", f.recv_batch.0)
                    }
                    _ => {}
                }
            }
            r
        }
    }

    fn call_headers(&mut self) {
        let c = self.pick(Kind::Call, false);
        let mode = self.inp.u8();
        let slot = self.inp.u8() as usize % self.md.len();
        let null_out = mode & 2 != 0;
        let mut md = 0;
        let out = if null_out { null_mut() } else { &mut md };
        let r = if mode & 1 == 1 {
            let t = self.timeout(c.dead() || null_out);
            let exp = Exp::ok(&[RILL_OK, RILL_TIMEOUT, RILL_ERR_STATUS])
                .handle(&c)
                .bad(null_out, RILL_ERR_NULL)
                .bad(t <= 0, RILL_ERR_INVALID_ARGUMENT);
            self.run("rill_call_headers", exp, || rill_call_headers(c.h, out, t))
        } else {
            let exp = Exp::ok(&[RILL_OK, RILL_WOULD_BLOCK, RILL_ERR_STATUS])
                .handle(&c)
                .bad(null_out, RILL_ERR_NULL);
            self.run("rill_call_try_headers", exp, || {
                rill_call_try_headers(c.h, out)
            })
        };
        if r == RILL_OK {
            self.new_md("rill_call_headers", md, slot, None);
        }
    }

    fn call_finish(&mut self) {
        let c = self.pick(Kind::Call, false);
        let mode = self.inp.u8();
        let m = c.slot().map(|i| self.call[i].m.clone()).unwrap_or_default();
        let null_out = mode & 2 != 0;
        let mut code = u32::MAX;
        let out = if null_out { null_mut() } else { &mut code };
        let r = if mode & 1 == 1 {
            let t = self.timeout(c.dead());
            let exp = Exp::ok(&[RILL_OK, RILL_TIMEOUT])
                .only(m.finished, &[RILL_ERR_WRONG_STATE])
                .handle(&c)
                .bad(t <= 0, RILL_ERR_INVALID_ARGUMENT);
            self.run("rill_call_finish", exp, || rill_call_finish(c.h, out, t))
        } else {
            let exp = Exp::ok(&[RILL_OK, RILL_WOULD_BLOCK])
                .only(m.finished, &[RILL_ERR_WRONG_STATE])
                .handle(&c);
            self.run("rill_call_try_finish", exp, || {
                rill_call_try_finish(c.h, out)
            })
        };
        if r == RILL_OK {
            let i = c.slot().unwrap();
            self.call[i].m.finished = true;
            if !null_out {
                self.ended_with("rill_call_finish", i, code);
            }
            // RILL_OK means the status is known: rill_call_status must give it.
            let exp = Exp::ok(&[RILL_OK]);
            let mut code2 = u32::MAX;
            self.run("rill_call_status after finish", exp, || {
                rill_call_status(c.h, &mut code2, null_mut(), null_mut(), null_mut())
            });
            self.ended_with("rill_call_status after finish", i, code2);
        }
    }

    /// The call in slot `i` ended with `code`: consistent with what was seen before.
    fn ended_with(&mut self, what: &str, i: usize, code: u32) {
        assert!(code <= 16, "{what}: status code {code}");
        let e = &mut self.call[i].m.ended;
        let ok = match *e {
            Ended::Unknown => true,
            Ended::Eof => code == 0,
            Ended::Failed => code != 0,
            Ended::Code(c) => c == code,
        };
        assert!(
            ok,
            "{what}: status code {code} after the call ended as {e:?}"
        );
        *e = Ended::Code(code);
    }

    /// rill_call_status (0), trailers (1), biz_status (2), biz_extra (3).
    fn call_status(&mut self) {
        let c = self.pick(Kind::Call, false);
        let mode = self.inp.u8();
        let m = c.slot().map(|i| self.call[i].m.clone()).unwrap_or_default();
        let ended = m.ended != Ended::Unknown;
        let nulls = mode >> 2;
        match mode & 3 {
            0 => {
                let (mut code, mut msg, mut det, mut dlen) = (u32::MAX, null(), null(), 0usize);
                let p1 = if nulls & 1 != 0 {
                    null_mut()
                } else {
                    &mut code
                };
                let p2 = if nulls & 2 != 0 { null_mut() } else { &mut msg };
                let p3 = if nulls & 4 != 0 { null_mut() } else { &mut det };
                let p4 = if nulls & 8 != 0 {
                    null_mut()
                } else {
                    &mut dlen
                };
                let exp = Exp::ok(&[RILL_OK, RILL_ERR_WRONG_STATE])
                    .only(ended, &[RILL_OK])
                    .handle(&c);
                let r = self.run("rill_call_status", exp, || {
                    rill_call_status(c.h, p1, p2, p3, p4)
                });
                if r == RILL_OK {
                    if !p1.is_null() {
                        self.ended_with("rill_call_status", c.slot().unwrap(), code);
                    }
                    if !p2.is_null() {
                        cstr(msg, "rill_call_status message", true);
                    }
                    if !p3.is_null() && !p4.is_null() {
                        touch(det, dlen, "rill_call_status details");
                    }
                }
            }
            1 => {
                let slot = self.inp.u8() as usize % self.md.len();
                let null_out = nulls & 1 != 0;
                let mut md = 0;
                let out = if null_out { null_mut() } else { &mut md };
                let exp = Exp::ok(&[RILL_OK, RILL_ERR_WRONG_STATE])
                    .only(ended, &[RILL_OK])
                    .handle(&c)
                    .bad(null_out, RILL_ERR_NULL);
                if self.run("rill_call_trailers", exp, || rill_call_trailers(c.h, out)) == RILL_OK {
                    self.new_md("rill_call_trailers", md, slot, None);
                }
            }
            2 => {
                let (mut code, mut msg, mut n) = (0i32, null(), usize::MAX);
                let p1 = if nulls & 1 != 0 {
                    null_mut()
                } else {
                    &mut code
                };
                let p2 = if nulls & 2 != 0 { null_mut() } else { &mut msg };
                let p3 = if nulls & 4 != 0 { null_mut() } else { &mut n };
                let exp = Exp::ok(&[RILL_OK, RILL_NOT_FOUND, RILL_ERR_WRONG_STATE])
                    .only(ended, &[RILL_OK, RILL_NOT_FOUND])
                    .handle(&c);
                // SAFETY: local out-variables or NULL.
                let r = self.run("rill_call_biz_status", exp, || unsafe {
                    rill_call_biz_status(c.h, p1, p2, p3)
                });
                if r == RILL_OK {
                    // A biz status rides only on a status that is not OK (the header; as
                    // Kitex's client reads it).
                    let mut code = u32::MAX;
                    let st = rill_call_status(c.h, &mut code, null_mut(), null_mut(), null_mut());
                    assert!(
                        st == RILL_OK && code != 0,
                        "a biz status on status {code} ({st:?})"
                    );
                    if !p2.is_null() {
                        cstr(msg, "rill_call_biz_status message", true);
                    }
                    if !p3.is_null() {
                        self.call[c.slot().unwrap()].m.biz_extra = Some(n);
                    }
                }
                if r == RILL_NOT_FOUND {
                    self.call[c.slot().unwrap()].m.biz_extra = Some(0);
                }
            }
            _ => {
                let idx = self.inp.u8() as usize % 4;
                let (mut k, mut v): (*const c_char, *const c_char) = (null(), null());
                let pk = if nulls & 1 != 0 { null_mut() } else { &mut k };
                let pv = if nulls & 2 != 0 { null_mut() } else { &mut v };
                let exp = match m.biz_extra {
                    Some(n) if idx < n => Exp::ok(&[RILL_OK]),
                    Some(_) => Exp::ok(&[RILL_NOT_FOUND]),
                    None => Exp::ok(&[RILL_OK, RILL_NOT_FOUND, RILL_ERR_WRONG_STATE])
                        .only(ended, &[RILL_OK, RILL_NOT_FOUND]),
                };
                let exp = exp
                    .handle(&c)
                    .bad(pk.is_null() || pv.is_null(), RILL_ERR_NULL);
                // SAFETY: local out-variables or NULL.
                let r = self.run("rill_call_biz_extra", exp, || unsafe {
                    rill_call_biz_extra(c.h, idx, pk, pv)
                });
                if r == RILL_OK {
                    cstr(k, "rill_call_biz_extra key", true);
                    cstr(v, "rill_call_biz_extra value", true);
                }
            }
        }
    }

    // ---- servers ----

    fn srv_model(&self, p: &Pick) -> SrvM {
        match p.st {
            St::Live(i) => self.srv[i].m.clone(),
            St::Static(_) => SrvM {
                addr: Addr::Good,
                started: true,
                port: self.st.port,
                methods: METHODS
                    .iter()
                    .map(|(p, s, _)| (p.to_bytes().to_vec(), *s))
                    .collect(),
                ..SrvM::default()
            },
            _ => SrvM::default(),
        }
    }

    fn server_new(&mut self) {
        let slot = self.inp.u8() as usize % self.srv.len();
        let f = self.inp.u8();
        let null_out = f & 0x80 != 0;
        let mut keep: Vec<CString> = Vec::new();
        let mut cors: Vec<*const c_char> = Vec::new();
        // SAFETY: a C options struct of integers and nullable pointers, for which all zeroes
        // is a valid value (the header's defaults).
        let mut o: rill_server_options = unsafe { std::mem::zeroed() };
        let use_opts = f & 1 == 1;
        let mut v = Verdict::default();
        if use_opts {
            let exp = Exp::ok(&[RILL_OK]);
            self.run("rill_server_options_init", exp, || {
                rill_server_options_init(&mut o)
            });
            v = self.server_opts(&mut o, (f >> 1) & 7, &mut keep, &mut cors);
        }
        let exp = Exp::ok(&[RILL_OK])
            .verdict(v, &[RILL_ERR_INVALID_ARGUMENT])
            .bad(null_out, RILL_ERR_NULL);
        let mut h = 0;
        let out = if null_out { null_mut() } else { &mut h };
        let opts = if use_opts { &o as *const _ } else { null() };
        // SAFETY: the CORS strings live in `keep`, their array in `cors`.
        let r = self.run("rill_server_new", exp, || unsafe {
            rill_server_new(opts, out)
        });
        if r == RILL_OK {
            self.check_new("rill_server_new", h);
            self.evict(Kind::Server, slot);
            self.srv[slot] = Slot {
                h,
                live: true,
                m: SrvM::default(),
            };
        }
    }

    fn server_opts(
        &mut self,
        o: &mut rill_server_options,
        n: u8,
        keep: &mut Vec<CString>,
        cors: &mut Vec<*const c_char>,
    ) -> Verdict {
        const A: usize = align_of::<rill_server_options>();
        let full = size_of::<rill_server_options>();
        let sizes = [
            full,
            offset_of!(rill_server_options, handshake_timeout_ms).next_multiple_of(A),
            offset_of!(rill_server_options, max_connection_idle_ms).next_multiple_of(A),
            offset_of!(rill_server_options, header_read_timeout_ms).next_multiple_of(A),
            0,
            8,
        ];
        const MS: [i64; 6] = [0, -1, 1, 5, 10_000, i64::MAX];
        let mut cors_bad = false;
        for _ in 0..n {
            let sel = self.inp.u8() % 13;
            let b = self.inp.u8();
            let ms = MS[b as usize % 6];
            match sel {
                0 => o.size = sizes[b as usize % 6],
                1 => o.max_concurrent_streams = [0, 1, 2, 100, u32::MAX][b as usize % 5],
                2 => o.max_recv_message_size = [0, 1, 8, 1024, u32::MAX][b as usize % 5],
                3 => {
                    cors.clear();
                    cors_bad = false;
                    match b % 5 {
                        0 => (o.cors, o.cors_len) = (null(), 0),
                        1 => (o.cors, o.cors_len) = (null(), 2),
                        k => {
                            for _ in 0..k - 1 {
                                let s = if k == 4 {
                                    self.cstring().unwrap_or_default()
                                } else {
                                    [c"*".to_owned(), c"https://a.example".to_owned()]
                                        [k as usize - 2]
                                        .clone()
                                };
                                cors_bad |= s.to_str().is_err();
                                keep.push(s);
                                cors.push(keep.last().unwrap().as_ptr());
                            }
                            (o.cors, o.cors_len) = (cors.as_ptr(), cors.len());
                        }
                    }
                }
                4 => o.cors_max_age_ms = ms,
                5 => o.handshake_timeout_ms = ms,
                6 => o.max_connections = [0, 1, 2, 1000][b as usize % 4],
                7 => o.max_connection_age_ms = ms,
                8 => o.max_connection_age_grace_ms = ms,
                9 => o.max_connection_idle_ms = ms,
                10 => o.header_read_timeout_ms = ms,
                11 => o.permit_keepalive_time_ms = ms,
                _ => o.permit_keepalive_without_calls = b & 1 == 1,
            }
        }
        trace!(
            "  server options size {} streams {} max {} cors {} handshake {} age {}/{} idle {} header {} ping {}",
            o.size,
            o.max_concurrent_streams,
            o.max_recv_message_size,
            o.cors_len,
            o.handshake_timeout_ms,
            o.max_connection_age_ms,
            o.max_connection_age_grace_ms,
            o.max_connection_idle_ms,
            o.header_read_timeout_ms,
            o.permit_keepalive_time_ms
        );
        let mut v = Verdict::default();
        let inv = RILL_ERR_INVALID_ARGUMENT;
        let Some(si) = sizes[..4].iter().position(|&x| x == o.size) else {
            v.bad(true, inv);
            return v;
        };
        let has = |off: usize| si == 0 || off < sizes[si];
        v.bad(
            o.max_concurrent_streams == 0 || o.max_recv_message_size == 0,
            inv,
        );
        v.bad(o.cors_max_age_ms < 0, inv);
        v.bad(o.cors_len > 0 && o.cors.is_null(), RILL_ERR_NULL);
        v.bad(o.cors_len > 0 && cors_bad, inv);
        if has(offset_of!(rill_server_options, handshake_timeout_ms)) {
            v.bad(o.handshake_timeout_ms <= 0, inv);
            v.bad(
                o.max_connection_age_ms < 0 || o.max_connection_age_grace_ms < 0,
                inv,
            );
        }
        if has(offset_of!(rill_server_options, max_connection_idle_ms)) {
            v.bad(o.max_connection_idle_ms < 0, inv);
        }
        if has(offset_of!(rill_server_options, header_read_timeout_ms)) {
            v.bad(
                o.header_read_timeout_ms <= 0 || o.permit_keepalive_time_ms < 0,
                inv,
            );
        }
        v
    }

    fn server_add_method(&mut self) {
        let s = self.pick(Kind::Server, true);
        let (method, mvalid) = self.method();
        let shape = self.shape();
        let idem = self.inp.u8() % 5;
        let m = self.srv_model(&s);
        let exp = Exp::ok(&[RILL_OK])
            .maybe(mvalid != Some(true), RILL_ERR_INVALID_ARGUMENT)
            .only(m.started, &[RILL_ERR_WRONG_STATE])
            .handle(&s)
            .bad(method.is_none(), RILL_ERR_NULL)
            .bad(!utf8(&method), RILL_ERR_INVALID_ARGUMENT)
            .bad(shape > 3, RILL_ERR_INVALID_ARGUMENT)
            .bad(idem == 4, RILL_ERR_INVALID_ARGUMENT);
        let mp = ptr(&method);
        let r = match idem {
            // SAFETY: the path lives in `method`.
            3 => self.run("rill_server_add_method", exp, || unsafe {
                rill_server_add_method(s.h, mp, shape)
            }),
            i => {
                let idem = if i == 4 { 3 } else { i as u32 };
                // SAFETY: the path lives in `method`.
                self.run("rill_server_add_method_with", exp, || unsafe {
                    rill_server_add_method_with(s.h, mp, shape, idem)
                })
            }
        };
        if r == RILL_OK {
            let path = method.unwrap().into_bytes();
            let ms = &mut self.srv[s.slot().unwrap()].m.methods;
            ms.retain(|(p, _)| *p != path);
            ms.push((path, shape));
        }
    }

    fn server_listen(&mut self) {
        let s = self.pick(Kind::Server, true);
        let a = self.inp.u8();
        let tls = self.inp.u8() % 6;
        let m = self.srv_model(&s);
        if tls >= 4 {
            let ca = if tls == 4 {
                self.cstring()
            } else {
                Some(c"not a PEM certificate".to_owned())
            };
            let exp = Exp::ok(&[RILL_OK])
                .only(!m.tls || m.started, &[RILL_ERR_WRONG_STATE])
                .handle(&s)
                .bad(ca.is_none(), RILL_ERR_NULL)
                .bad(!utf8(&ca), RILL_ERR_INVALID_ARGUMENT);
            let cp = ptr(&ca);
            // SAFETY: the string lives in `ca`.
            self.run("rill_server_require_client_certs", exp, || unsafe {
                rill_server_require_client_certs(s.h, cp)
            });
            return;
        }
        let (addr, kind) = match a % 6 {
            0 => (Some(c"127.0.0.1:0".to_owned()), Addr::Good),
            1 => (Some(c"[::1]:0".to_owned()), Addr::Maybe),
            2 => (Some(c"127.0.0.1".to_owned()), Addr::Bad),
            3 => (Some(c"127.0.0.1:99999".to_owned()), Addr::Bad),
            4 => {
                // No ':' means no port, so nothing is resolved.
                let mut v = self.cstring().map(|c| c.into_bytes()).unwrap_or_default();
                v.retain(|&c| c != b':');
                (Some(CString::new(v).unwrap()), Addr::Bad)
            }
            _ => (None, Addr::Bad),
        };
        let garbage = || Some(c"-----BEGIN CERTIFICATE-----\nnot one\n".to_owned());
        let (cert, key) = match tls {
            0 => (None, None),
            1 => (garbage(), None),
            2 => (None, garbage()),
            _ => (garbage(), garbage()),
        };
        let exp = Exp::ok(&[RILL_OK])
            .only(m.started || m.addr != Addr::None, &[RILL_ERR_WRONG_STATE])
            .handle(&s)
            .bad(addr.is_none(), RILL_ERR_NULL)
            .bad(!utf8(&addr), RILL_ERR_INVALID_ARGUMENT)
            .bad(tls == 1 || tls == 2, RILL_ERR_INVALID_ARGUMENT);
        let (ap, cp, kp) = (ptr(&addr), ptr(&cert), ptr(&key));
        trace!("  listen {addr:?} tls {tls}");
        // SAFETY: the strings live in `addr`, `cert` and `key`.
        let r = self.run("rill_server_listen", exp, || unsafe {
            rill_server_listen(s.h, ap, cp, kp)
        });
        if r == RILL_OK {
            let m = &mut self.srv[s.slot().unwrap()].m;
            m.addr = kind;
            m.tls = tls == 3;
        }
    }

    fn server_start(&mut self) {
        let s = self.pick(Kind::Server, true);
        let m = self.srv_model(&s);
        let exp = if m.started || m.addr == Addr::None || m.methods.is_empty() {
            Exp::ok(&[RILL_ERR_WRONG_STATE])
        } else if m.tls {
            Exp::ok(&[RILL_ERR_TLS])
        } else {
            match m.addr {
                Addr::Good => Exp::ok(&[RILL_OK]),
                Addr::Maybe => Exp::ok(&[RILL_OK, RILL_ERR_IO]),
                _ => Exp::ok(&[RILL_ERR_IO, RILL_ERR_INVALID_ARGUMENT]),
            }
        };
        let exp = exp.handle(&s);
        if self.run("rill_server_start", exp, || rill_server_start(s.h)) == RILL_OK {
            let mut port = 0u16;
            let exp = Exp::ok(&[RILL_OK]);
            self.run("rill_server_port", exp, || rill_server_port(s.h, &mut port));
            assert!(port != 0, "rill_server_port: 0 for a started server");
            let m = &mut self.srv[s.slot().unwrap()].m;
            m.started = true;
            m.port = port;
        }
    }

    fn server_accept(&mut self) {
        let s = self.pick(Kind::Server, true);
        let mode = self.inp.u8();
        let slot = self.inp.u8() as usize % self.sc.len();
        let m = self.srv_model(&s);
        let null_out = mode & 2 != 0;
        let mut h = 0;
        let out = if null_out { null_mut() } else { &mut h };
        // Once shutdown has returned, a call is one accepted before it, or there is none
        // and never will be: RILL_ERR_CLOSED, never RILL_WOULD_BLOCK (which it said for a
        // moment, while a connection's task still held the queue; fixed in the core).
        // The blocking accept may still time out in that moment.
        let r = if mode & 1 == 1 {
            let t = self.timeout(s.dead() || null_out);
            let exp = Exp::ok(&[RILL_OK, RILL_TIMEOUT])
                .also(m.shut, RILL_ERR_CLOSED)
                .only(!m.started, &[RILL_ERR_WRONG_STATE])
                .handle(&s)
                .bad(null_out, RILL_ERR_NULL)
                .bad(t <= 0, RILL_ERR_INVALID_ARGUMENT);
            self.run("rill_server_accept", exp, || {
                rill_server_accept(s.h, out, t)
            })
        } else {
            let open: &[rill_result] = if m.shut {
                &[RILL_OK]
            } else {
                &[RILL_OK, RILL_WOULD_BLOCK]
            };
            let exp = Exp::ok(open)
                .also(m.shut, RILL_ERR_CLOSED)
                .only(!m.started, &[RILL_ERR_WRONG_STATE])
                .handle(&s)
                .bad(null_out, RILL_ERR_NULL);
            self.run("rill_server_try_accept", exp, || {
                rill_server_try_accept(s.h, out)
            })
        };
        if r != RILL_OK {
            return;
        }
        self.check_new("rill_server_accept", h);
        let (mut mp, mut shape) = (null(), u32::MAX);
        let exp = Exp::ok(&[RILL_OK]);
        self.run("rill_server_call_method", exp, || {
            rill_server_call_method(h, &mut mp)
        });
        let method = cstr(mp, "rill_server_call_method", true);
        self.run("rill_server_call_shape", exp, || {
            rill_server_call_shape(h, &mut shape)
        });
        let registered = m.methods.iter().find(|(p, _)| *p == method);
        assert!(
            registered.is_some_and(|(_, s)| *s == shape),
            "rill_server_accept: a call of {:?} as shape {shape}; registered: {:?}",
            String::from_utf8_lossy(&method),
            registered.map(|r| r.1)
        );
        self.evict(Kind::ServerCall, slot);
        self.sc[slot] = Slot {
            h,
            live: true,
            m: ScM {
                method,
                shape,
                ..ScM::default()
            },
        };
    }

    // ---- server calls ----

    fn scall_info(&mut self) {
        let c = self.pick(Kind::ServerCall, false);
        let what = self.inp.u8();
        let null_out = what & 0x80 != 0;
        let m = c.slot().map(|i| self.sc[i].m.clone()).unwrap_or_default();
        let exp = Exp::ok(&[RILL_OK]).handle(&c).bad(null_out, RILL_ERR_NULL);
        macro_rules! out {
            ($v:expr) => {
                if null_out {
                    null_mut()
                } else {
                    &mut $v
                }
            };
        }
        match what % 7 {
            0 => {
                let mut p = null();
                let o = out!(p);
                let r = self.run("rill_server_call_method", exp, || {
                    rill_server_call_method(c.h, o)
                });
                if r == RILL_OK {
                    let got = cstr(p, "rill_server_call_method", true);
                    assert_eq!(got, m.method, "rill_server_call_method changed");
                }
            }
            1 => {
                let mut v = u32::MAX;
                let o = out!(v);
                let r = self.run("rill_server_call_shape", exp, || {
                    rill_server_call_shape(c.h, o)
                });
                if r == RILL_OK {
                    assert_eq!(v, m.shape, "rill_server_call_shape changed");
                }
            }
            2 => {
                let mut v = u32::MAX;
                let o = out!(v);
                let r = self.run("rill_server_call_protocol", exp, || {
                    rill_server_call_protocol(c.h, o)
                });
                if r == RILL_OK {
                    assert!(v <= 3, "rill_server_call_protocol: {v}");
                }
            }
            3 => {
                let mut p = null();
                let o = out!(p);
                let r = self.run("rill_server_call_codec", exp, || {
                    rill_server_call_codec(c.h, o)
                });
                if r == RILL_OK {
                    cstr(p, "rill_server_call_codec", true);
                }
            }
            4 => {
                let slot = self.inp.u8() as usize % self.md.len();
                let mut md = 0;
                let o = out!(md);
                let r = self.run("rill_server_call_metadata", exp, || {
                    rill_server_call_metadata(c.h, o)
                });
                if r == RILL_OK {
                    self.new_md("rill_server_call_metadata", md, slot, None);
                }
            }
            5 => {
                let mut v = i64::MIN;
                let o = out!(v);
                let r = self.run("rill_server_call_time_remaining", exp, || {
                    rill_server_call_time_remaining(c.h, o)
                });
                if r == RILL_OK {
                    assert!(v >= -1, "rill_server_call_time_remaining: {v}");
                }
            }
            _ => {
                let mut v = false;
                let o = out!(v);
                self.run("rill_server_call_is_cancelled", exp, || {
                    rill_server_call_is_cancelled(c.h, o)
                });
            }
        }
    }

    fn scall_recv(&mut self) {
        let c = self.pick(Kind::ServerCall, false);
        let mode = self.inp.u8();
        let m = c.slot().map(|i| self.sc[i].m.clone()).unwrap_or_default();
        let r = self.recv(mode, &c, m.finished, RecvFns::SERVER);
        if r == RILL_ERR_STATUS {
            self.sc[c.slot().unwrap()].m.seen_status = true;
        }
    }

    fn scall_send(&mut self) {
        let c = self.pick(Kind::ServerCall, false);
        let how = self.inp.u8() % 3;
        let m = c.slot().map(|i| self.sc[i].m.clone()).unwrap_or_default();
        let single = m.shape == UNARY || m.shape == CLIENT_STREAMING;
        let refused = [RILL_ERR_WRONG_STATE, RILL_ERR_CLOSED];
        let r = match how {
            0 | 1 => {
                let p = self.payload();
                let base = if how == 0 {
                    Exp::ok(&[RILL_OK, RILL_TIMEOUT, RILL_ERR_WRONG_STATE, RILL_ERR_CLOSED])
                } else {
                    Exp::ok(&[
                        RILL_OK,
                        RILL_WOULD_BLOCK,
                        RILL_ERR_WRONG_STATE,
                        RILL_ERR_CLOSED,
                    ])
                };
                let base = base
                    .only(single && m.sent_one, &refused)
                    .only(m.finished, &[RILL_ERR_WRONG_STATE])
                    .handle(&c)
                    .bad(p.bad(), RILL_ERR_NULL);
                if how == 0 {
                    let t = self.timeout(c.dead() || p.bad());
                    let exp = base.bad(t <= 0, RILL_ERR_INVALID_ARGUMENT);
                    // SAFETY: `p` holds its bytes (or is NULL, as the input asked).
                    self.run("rill_server_call_send", exp, || unsafe {
                        rill_server_call_send(c.h, p.ptr(), p.len, t)
                    })
                } else {
                    // SAFETY: as above.
                    self.run("rill_server_call_try_send", base, || unsafe {
                        rill_server_call_try_send(c.h, p.ptr(), p.len)
                    })
                }
            }
            _ => {
                let b = self.inp.u8();
                let (n, null_out) = (b as usize % 9, b & 0x80 != 0);
                let exp = Exp::ok(&[
                    RILL_OK,
                    RILL_WOULD_BLOCK,
                    RILL_ERR_WRONG_STATE,
                    RILL_ERR_CLOSED,
                ])
                .only(n == 0, &[RILL_OK])
                .only(n > 0 && single && (m.sent_one || n > 1), &refused)
                .only(m.finished, &[RILL_ERR_WRONG_STATE])
                .handle(&c)
                .bad(null_out, RILL_ERR_NULL);
                let f = rill_server_call_try_send_batch as SendBatchFn;
                let what = "rill_server_call_try_send_batch";
                let (_, r) = self.send_batch(what, f, c.h, n, null_out, exp);
                if n == 0 {
                    return;
                }
                r
            }
        };
        if r == RILL_OK && single {
            self.sc[c.slot().unwrap()].m.sent_one = true;
        }
    }

    fn scall_finish(&mut self) {
        let c = self.pick(Kind::ServerCall, false);
        let b = self.inp.u8();
        let code = match b {
            0xF0..=0xFE => 17 + (b - 0xF0) as u32,
            0xFF => u32::MAX,
            _ => b as u32 % 17,
        };
        let msg = self.cstring();
        let details = self.payload();
        let md = self.pick(Kind::Metadata, false);
        let m = c.slot().map(|i| self.sc[i].m.clone()).unwrap_or_default();
        trace!("  finish code {code} message {msg:?}");
        let exp = Exp::ok(&[RILL_OK, RILL_ERR_CLOSED])
            .only(m.finished, &[RILL_ERR_WRONG_STATE])
            .handle(&c)
            .opt_handle(&md)
            .bad(code > 16, RILL_ERR_INVALID_ARGUMENT)
            .bad(!utf8(&msg), RILL_ERR_INVALID_ARGUMENT)
            .bad(details.bad(), RILL_ERR_NULL);
        let mp = ptr(&msg);
        // SAFETY: the message lives in `msg`, the details in `details`.
        let r = self.run("rill_server_call_finish", exp, || unsafe {
            rill_server_call_finish(c.h, code, mp, details.ptr(), details.len, md.h)
        });
        if r == RILL_OK || r == RILL_ERR_CLOSED {
            self.sc[c.slot().unwrap()].m.finished = true;
        }
    }

    fn scall_finish_biz(&mut self) {
        let c = self.pick(Kind::ServerCall, false);
        let code = self.inp.u32() as i32;
        let msg = self.cstring();
        let b = self.inp.u8();
        let (n, null_arrays) = (b as usize % 5, b & 0x80 != 0);
        // The contract has no NULL entries: a NULL from the input is an empty string.
        let strs: Vec<CString> = (0..2 * n)
            .map(|_| self.cstring().unwrap_or_default())
            .collect();
        let keys: Vec<*const c_char> = strs.iter().step_by(2).map(|s| s.as_ptr()).collect();
        let vals: Vec<*const c_char> = strs.iter().skip(1).step_by(2).map(|s| s.as_ptr()).collect();
        let m = c.slot().map(|i| self.sc[i].m.clone()).unwrap_or_default();
        let exp = Exp::ok(&[RILL_OK, RILL_ERR_CLOSED])
            .only(m.finished, &[RILL_ERR_WRONG_STATE])
            .handle(&c)
            .bad(!utf8(&msg), RILL_ERR_INVALID_ARGUMENT)
            .bad(null_arrays && n > 0, RILL_ERR_NULL)
            .bad(
                strs.iter().any(|s| s.to_str().is_err()),
                RILL_ERR_INVALID_ARGUMENT,
            );
        let (kp, vp) = if null_arrays {
            (null(), null())
        } else {
            (keys.as_ptr(), vals.as_ptr())
        };
        let mp = ptr(&msg);
        trace!("  finish_biz code {code} message {msg:?} extra {strs:?}");
        // SAFETY: the strings live in `msg` and `strs`, their arrays in `keys` and `vals`.
        let r = self.run("rill_server_call_finish_biz", exp, || unsafe {
            rill_server_call_finish_biz(c.h, code, mp, kp, vp, n)
        });
        if r == RILL_OK || r == RILL_ERR_CLOSED {
            self.sc[c.slot().unwrap()].m.finished = true;
        }
    }

    fn scall_status(&mut self) {
        let c = self.pick(Kind::ServerCall, false);
        let mode = self.inp.u8();
        let m = c.slot().map(|i| self.sc[i].m.clone()).unwrap_or_default();
        let (mut code, mut msg) = (u32::MAX, null());
        let p1 = if mode & 1 != 0 { null_mut() } else { &mut code };
        let p2 = if mode & 2 != 0 { null_mut() } else { &mut msg };
        let exp = Exp::ok(&[RILL_OK])
            .only(!m.seen_status, &[RILL_ERR_WRONG_STATE])
            .handle(&c);
        let r = self.run("rill_server_call_status", exp, || {
            rill_server_call_status(c.h, p1, p2)
        });
        if r == RILL_OK {
            if !p1.is_null() {
                assert!(code <= 16, "rill_server_call_status: code {code}");
            }
            if !p2.is_null() {
                cstr(msg, "rill_server_call_status message", false);
            }
        }
    }

    // ---- metadata ----

    /// A metadata key: (key, whether the header calls it valid: Some(true/false), or None
    /// when the target cannot tell).
    fn md_key(&mut self) -> (Option<CString>, Option<bool>) {
        const VALID: [&CStr; 8] = [
            c"x-a",
            c"x-b",
            c"x-c-bin",
            c"biz-status",
            c"biz-extra",
            c"biz-message",
            c"rpc-transit-k",
            c"x.y_z-0",
        ];
        let k = self.inp.u8() % 16;
        let r = match k {
            0..=7 => (Some(VALID[k as usize].to_owned()), Some(true)),
            8 => (Some(c"grpc-status".to_owned()), Some(false)),
            9 => (Some(c"content-type".to_owned()), Some(true)),
            10 => (Some(c"connection".to_owned()), Some(true)),
            11 => (Some(c"te".to_owned()), Some(true)),
            // Keys are case-insensitive; "-BIN" is binary too.
            12 => (Some(c"X-Upper".to_owned()), Some(true)),
            13 => (Some(c"x-BIN".to_owned()), Some(true)),
            14 => (self.cstring(), None),
            _ => (None, None),
        };
        trace!("  key {:?}", r.0);
        r
    }

    fn md_append(&mut self) {
        let md = self.pick(Kind::Metadata, false);
        let (key, kvalid) = self.md_key();
        let v = self.payload();
        let value_ok = |k: &CStr| {
            k.to_bytes().to_ascii_lowercase().ends_with(b"-bin")
                || v.data.iter().all(|b| (0x20..=0x7E).contains(b))
        };
        let valid = match (&key, kvalid) {
            (Some(k), Some(true)) => Some(value_ok(k)),
            (_, Some(false)) => Some(false),
            _ => None,
        };
        let exp = match valid {
            Some(true) => Exp::ok(&[RILL_OK]),
            Some(false) => Exp::ok(&[RILL_ERR_INVALID_ARGUMENT]),
            None => Exp::ok(&[RILL_OK]).maybe(true, RILL_ERR_INVALID_ARGUMENT),
        };
        let exp = exp
            .handle(&md)
            .bad(key.is_none(), RILL_ERR_NULL)
            .bad(!utf8(&key), RILL_ERR_INVALID_ARGUMENT)
            .bad(v.bad(), RILL_ERR_NULL);
        let kp = ptr(&key);
        // SAFETY: the key lives in `key`, the value in `v`.
        let r = self.run("rill_metadata_append", exp, || unsafe {
            rill_metadata_append(md.h, kp, v.ptr(), v.len)
        });
        if r == RILL_OK {
            let m = &mut self.md[md.slot().unwrap()].m;
            m.count = m.count.map(|c| c + 1);
            m.keys.push(key.unwrap().as_bytes().to_ascii_lowercase());
        }
    }

    /// count (0), at (1), get (2).
    fn md_read(&mut self) {
        let md = self.pick(Kind::Metadata, false);
        let mode = self.inp.u8();
        let nulls = mode >> 2;
        let m = md.slot().map(|i| self.md[i].m.clone()).unwrap_or_default();
        match mode % 3 {
            0 => {
                let mut n = usize::MAX;
                let o = if nulls & 1 != 0 { null_mut() } else { &mut n };
                let exp = Exp::ok(&[RILL_OK])
                    .handle(&md)
                    .bad(o.is_null(), RILL_ERR_NULL);
                if self.run("rill_metadata_count", exp, || rill_metadata_count(md.h, o)) == RILL_OK
                {
                    if let Some(c) = m.count {
                        assert_eq!(n, c, "rill_metadata_count: not the entries appended");
                    }
                    self.md[md.slot().unwrap()].m.count = Some(n);
                }
            }
            1 => {
                let idx = self.inp.u8() as usize % 8;
                let (mut k, mut v, mut l): (*const c_char, *const u8, usize) =
                    (null(), null(), usize::MAX);
                let pk = if nulls & 1 != 0 { null_mut() } else { &mut k };
                let pv = if nulls & 2 != 0 { null_mut() } else { &mut v };
                let pl = if nulls & 4 != 0 { null_mut() } else { &mut l };
                let exp = match m.count {
                    Some(c) if idx < c => Exp::ok(&[RILL_OK]),
                    Some(_) => Exp::ok(&[RILL_NOT_FOUND]),
                    None => Exp::ok(&[RILL_OK, RILL_NOT_FOUND]),
                };
                let exp = exp
                    .handle(&md)
                    .bad(pk.is_null() || pv.is_null() || pl.is_null(), RILL_ERR_NULL);
                let r = self.run("rill_metadata_at", exp, || {
                    rill_metadata_at(md.h, idx, pk, pv, pl)
                });
                if r == RILL_OK {
                    cstr(k, "rill_metadata_at key", true);
                    touch(v, l, "rill_metadata_at value");
                }
            }
            _ => {
                let (key, _) = self.md_key();
                let (mut v, mut l): (*const u8, usize) = (null(), usize::MAX);
                let pv = if nulls & 1 != 0 { null_mut() } else { &mut v };
                let pl = if nulls & 2 != 0 { null_mut() } else { &mut l };
                let appended = key
                    .as_ref()
                    .is_some_and(|k| m.keys.contains(&k.as_bytes().to_ascii_lowercase()));
                let exp = Exp::ok(&[RILL_OK, RILL_NOT_FOUND])
                    .only(appended, &[RILL_OK])
                    .handle(&md)
                    .bad(key.is_none() || pv.is_null() || pl.is_null(), RILL_ERR_NULL)
                    .bad(!utf8(&key), RILL_ERR_INVALID_ARGUMENT);
                let kp = ptr(&key);
                // SAFETY: the key lives in `key`.
                let r = self.run("rill_metadata_get", exp, || unsafe {
                    rill_metadata_get(md.h, kp, pv, pl)
                });
                if r == RILL_OK {
                    touch(v, l, "rill_metadata_get value");
                }
            }
        }
    }

    // ---- pollers ----

    fn set_poller(&mut self) {
        let kind = self.inp.u8() % 3;
        let h = match kind {
            0 => self.pick(Kind::Call, false),
            1 => self.pick(Kind::ServerCall, false),
            _ => self.pick(Kind::Server, true),
        };
        let p = self.pick(Kind::Poller, false);
        let tag = self.inp.u8() as u64 | (kind as u64) << 8;
        let exp = Exp::ok(&[RILL_OK]).handle(&h).opt_handle(&p);
        let r = match kind {
            0 => self.run("rill_call_set_poller", exp, || {
                rill_call_set_poller(h.h, p.h, tag)
            }),
            1 => self.run("rill_server_call_set_poller", exp, || {
                rill_server_call_set_poller(h.h, p.h, tag)
            }),
            _ => self.run("rill_server_set_poller", exp, || {
                rill_server_set_poller(h.h, p.h, tag)
            }),
        };
        if r == RILL_OK {
            if let Some(i) = p.slot() {
                let m = &mut self.pol[i].m;
                m.tags.push(tag);
                m.queued += 1;
            }
            if matches!(h.st, St::Static(_)) {
                self.static_polled = true;
            }
        }
    }

    /// next (0), wait (1), fd (2).
    fn poller_next(&mut self) {
        let p = self.pick(Kind::Poller, false);
        let mode = self.inp.u8();
        let mb = self.inp.u8() % 18;
        let max = match mb {
            17 => (1 << 24) + 1,
            m => m as usize,
        };
        let m = p.slot().map(|i| self.pol[i].m.clone()).unwrap_or_default();
        let (null_tags, null_n) = (mode & 4 != 0, mode & 8 != 0);
        if mode % 3 == 2 {
            let mut fd = -1;
            let o = if null_n { null_mut() } else { &mut fd };
            let exp = Exp::ok(&[RILL_OK]).handle(&p).bad(null_n, RILL_ERR_NULL);
            if self.run("rill_poller_fd", exp, || rill_poller_fd(p.h, o)) == RILL_OK {
                assert!(fd >= 0, "rill_poller_fd: {fd}");
            }
            return;
        }
        let mut tags = [u64::MAX; 16];
        let mut n = usize::MAX;
        let tp = if null_tags {
            null_mut()
        } else {
            tags.as_mut_ptr()
        };
        let np = if null_n { null_mut() } else { &mut n };
        let bad = max == 0 || max > 1 << 24;
        let r = if mode % 3 == 1 {
            let t = self.timeout(p.dead() || null_tags || null_n || bad);
            let exp = Exp::ok(&[RILL_OK, RILL_TIMEOUT])
                .only(m.queued > 0, &[RILL_OK])
                .handle(&p)
                .bad(null_tags || null_n, RILL_ERR_NULL)
                .bad(bad || t <= 0, RILL_ERR_INVALID_ARGUMENT);
            self.run("rill_poller_wait", exp, || {
                rill_poller_wait(p.h, tp, max, np, t)
            })
        } else {
            let exp = Exp::ok(&[RILL_OK, RILL_WOULD_BLOCK])
                .only(m.queued > 0, &[RILL_OK])
                .handle(&p)
                .bad(null_tags || null_n, RILL_ERR_NULL)
                .bad(bad, RILL_ERR_INVALID_ARGUMENT);
            self.run("rill_poller_next", exp, || {
                rill_poller_next(p.h, tp, max, np)
            })
        };
        match r {
            RILL_OK => {
                assert!(
                    (1..=max).contains(&n),
                    "rill_poller_next: {n} tags of at most {max}"
                );
                assert!(
                    n >= m.queued.min(max),
                    "rill_poller_next: {n} tags, {} were queued",
                    m.queued
                );
                for t in &tags[..n] {
                    assert!(
                        m.tags.contains(t),
                        "rill_poller_next: tag {t:#x} was never attached"
                    );
                }
                self.pol[p.slot().unwrap()].m.queued -= n.min(m.queued);
            }
            RILL_WOULD_BLOCK | RILL_TIMEOUT => {
                assert_eq!(n, 0, "rill_poller_next: {r:?} with {n} tags")
            }
            _ => {}
        }
    }

    fn misc(&mut self) {
        let what = self.inp.u8() % 6;
        let arg = self.inp.u32();
        match what {
            0 => {
                let code = arg % 20;
                let name = cstr(rill_result_name(code), "rill_result_name", true);
                let want = NAMES.get(code as usize).copied().unwrap_or("RILL_UNKNOWN");
                assert_eq!(name, want.as_bytes(), "rill_result_name({code})");
            }
            1 => {
                let p = arg % 6;
                let n = rill_protocol_name(p);
                if p <= 3 {
                    let name = cstr(n, "rill_protocol_name", true);
                    let want: [&[u8]; 4] = [b"grpc", b"grpc-web", b"connect", b"ttheader"];
                    assert_eq!(name, want[p as usize], "rill_protocol_name({p})");
                } else {
                    assert!(n.is_null(), "rill_protocol_name({p}) is not NULL");
                }
            }
            2 => {
                let v = cstr(rill_version(), "rill_version", true);
                assert!(
                    !v.is_empty() && v.iter().all(|c| c.is_ascii_digit() || *c == b'.'),
                    "rill_version: {:?}",
                    String::from_utf8_lossy(&v)
                );
            }
            3 => {
                let n = (if arg & 1 == 0 { 0 } else { arg >> 1 }) % 1100;
                let exp = Exp::ok(&[RILL_ERR_WRONG_STATE])
                    .bad(n == 0 || n > 1024, RILL_ERR_INVALID_ARGUMENT);
                self.run("rill_runtime_configure", exp, || rill_runtime_configure(n));
            }
            4 => {
                let exp = Exp::ok(&[]).bad(true, RILL_ERR_NULL);
                match arg % 3 {
                    0 => self.run("rill_channel_options_init", exp, || {
                        rill_channel_options_init(null_mut())
                    }),
                    1 => self.run("rill_call_options_init", exp, || {
                        rill_call_options_init(null_mut())
                    }),
                    _ => self.run("rill_server_options_init", exp, || {
                        rill_server_options_init(null_mut())
                    }),
                };
            }
            _ => {
                cstr(rill_last_error_message(), "rill_last_error_message", true);
            }
        }
    }

    // ---- between inputs ----

    /// Drops the calls waiting on the process-wide server: they belong to earlier inputs.
    fn drain_static(&mut self) {
        let srv = self.st.server;
        for _ in 0..256 {
            let mut h = 0;
            let exp = Exp::ok(&[RILL_OK, RILL_WOULD_BLOCK]);
            if self.run("rill_server_try_accept (drain)", exp, || {
                rill_server_try_accept(srv, &mut h)
            }) != RILL_OK
            {
                break;
            }
            let exp = Exp::ok(&[RILL_OK]);
            self.run("rill_server_call_free (drain)", exp, || {
                rill_server_call_free(h)
            });
        }
    }

    fn cleanup(&mut self) {
        trace!("cleanup");
        for k in [
            Kind::ServerCall,
            Kind::Call,
            Kind::Channel,
            Kind::Server,
            Kind::Metadata,
            Kind::Poller,
        ] {
            for i in 0..self.len(k) {
                self.evict(k, i);
            }
        }
        if self.static_polled {
            let srv = self.st.server;
            let exp = Exp::ok(&[RILL_OK]);
            self.run("rill_server_set_poller (detach)", exp, || {
                rill_server_set_poller(srv, 0, 0)
            });
        }
        self.drain_static();
        // The frees above end tasks and connections on the runtime's threads a little
        // later. Waiting for them keeps the input's mallocs and frees balanced, and
        // libFuzzer runs a LeakSanitizer pass (tens of ms) after each new input that is
        // not: 1 ms here cuts those passes tenfold. A real leak stays unbalanced. The next
        // input also starts from a quieter process.
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

type SendBatchFn = unsafe extern "C" fn(u64, *const rill_slice, usize, *mut usize) -> rill_result;
type RecvFn = extern "C" fn(u64, *mut *const u8, *mut usize, i64) -> rill_result;
type TryRecvFn = extern "C" fn(u64, *mut *const u8, *mut usize) -> rill_result;
type RecvBatchFn = extern "C" fn(u64, *mut rill_slice, usize, *mut usize, i64) -> rill_result;
type TryRecvBatchFn = extern "C" fn(u64, *mut rill_slice, usize, *mut usize) -> rill_result;

/// The four receive functions of one kind of call handle, with their names.
#[derive(Clone, Copy)]
struct RecvFns {
    recv: (&'static str, RecvFn),
    try_recv: (&'static str, TryRecvFn),
    recv_batch: (&'static str, RecvBatchFn),
    try_recv_batch: (&'static str, TryRecvBatchFn),
}

impl RecvFns {
    const CLIENT: RecvFns = RecvFns {
        recv: ("rill_call_recv", rill_call_recv),
        try_recv: ("rill_call_try_recv", rill_call_try_recv),
        recv_batch: ("rill_call_recv_batch", rill_call_recv_batch),
        try_recv_batch: ("rill_call_try_recv_batch", rill_call_try_recv_batch),
    };
    const SERVER: RecvFns = RecvFns {
        recv: ("rill_server_call_recv", rill_server_call_recv),
        try_recv: ("rill_server_call_try_recv", rill_server_call_try_recv),
        recv_batch: ("rill_server_call_recv_batch", rill_server_call_recv_batch),
        try_recv_batch: (
            "rill_server_call_try_recv_batch",
            rill_server_call_try_recv_batch,
        ),
    };
}

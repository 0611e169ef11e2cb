//! Where a Buffered Thrift message ends. Buffered (Kitex's `transport.PurePayload`, and the
//! default of Apache Thrift's clients: `TBufferedTransport` with `TBinaryProtocol`) sends a
//! bare TMessage with no length in front, so the only way to find its end is to walk it:
//! the TMessage head, then the args struct field by field, down to its last STOP.
//!
//! The walk is resumable: bytes arrive a read at a time, and a walk that runs out of them
//! keeps its place (an explicit stack, not recursion), so a message trickling in costs its
//! length once, never once per read. It checks what it can without the IDL: known types,
//! lengths within the limit, nesting at most `MAX_DEPTH` deep.

/// The strict Thrift Binary version that begins a TMessage (a Buffered message's first
/// bytes, a Framed one's bytes 4..6).
pub(crate) const VERSION_1: [u8; 2] = [0x80, 0x01];

/// Thrift Binary's type ids (Thrift's `TType`).
mod ttype {
    pub(super) const STOP: u8 = 0;
    pub(super) const BOOL: u8 = 2;
    pub(super) const BYTE: u8 = 3;
    pub(super) const DOUBLE: u8 = 4;
    pub(super) const I16: u8 = 6;
    pub(super) const I32: u8 = 8;
    pub(super) const I64: u8 = 10;
    pub(super) const STRING: u8 = 11;
    pub(super) const STRUCT: u8 = 12;
    pub(super) const MAP: u8 = 13;
    pub(super) const SET: u8 = 14;
    pub(super) const LIST: u8 = 15;
    pub(super) const UUID: u8 = 16;
}

/// How deep structs and containers may nest (Apache Thrift's default recursion limit).
pub(crate) const MAX_DEPTH: usize = 64;

/// Whether bytes begin a Buffered message: a strict Thrift Binary TMessage's version,
/// `80 01` (Kitex's `isBufferedBinary` looks at the same two bytes).
pub(crate) fn begins(buf: &[u8]) -> bool {
    buf.starts_with(&VERSION_1)
}

/// Why bytes are not a Buffered Thrift message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Bad {
    /// The TMessage's first word is not a strict version 1 with a message type.
    Version([u8; 4]),
    /// A negative length or count.
    Negative(&'static str, i32),
    /// A type id Thrift Binary does not have.
    Type(u8),
    /// Nested deeper than `MAX_DEPTH`.
    TooDeep,
    /// The message would be longer than the limit.
    TooLarge { max: usize },
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::Version(w) => write!(
                f,
                "not a strict Thrift Binary TMessage: it begins {:02x} {:02x} {:02x} {:02x}",
                w[0], w[1], w[2], w[3]
            ),
            Bad::Negative(what, n) => write!(f, "a Thrift {what} of {n}"),
            Bad::Type(t) => write!(f, "Thrift type id {t} is not a Thrift Binary type"),
            Bad::TooDeep => write!(f, "Thrift values nested deeper than {MAX_DEPTH}"),
            Bad::TooLarge { max } => {
                write!(f, "a Buffered Thrift message over the limit of {max} bytes")
            }
        }
    }
}

/// What is still to be read, innermost last.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The TMessage head: version and type, name, sequence id.
    Head,
    /// One value of this type.
    Value(u8),
    /// A struct's next field header, or its STOP.
    Fields,
    /// `left` more values of type `elem` (a list's or a set's).
    Elems { elem: u8, left: u32 },
    /// `left` more key/value pairs.
    Pairs { key: u8, value: u8, left: u32 },
}

/// A walk through one Buffered message, resumed as its bytes come.
#[derive(Debug)]
pub(crate) struct Walk {
    /// The bytes of the message read so far.
    at: usize,
    stack: Vec<Step>,
}

impl Default for Walk {
    fn default() -> Walk {
        Walk {
            at: 0,
            stack: vec![Step::Value(ttype::STRUCT), Step::Head],
        }
    }
}

impl Walk {
    /// Walks on through `buf` (the whole message so far, from its first byte): its length
    /// once it is all there, `None` while more is to come.
    pub(crate) fn resume(&mut self, buf: &[u8], max: usize) -> Result<Option<usize>, Bad> {
        while let Some(step) = self.stack.pop() {
            let rest = &buf[self.at.min(buf.len())..];
            match self.step(step, rest) {
                Ok(n) => {
                    self.at += n;
                    if self.at > max {
                        return Err(Bad::TooLarge { max });
                    }
                    if self.stack.len() > MAX_DEPTH {
                        return Err(Bad::TooDeep);
                    }
                }
                Err(More(need)) => {
                    // The step is taken again once the bytes are there.
                    self.stack.push(step);
                    if self.at.saturating_add(need) > max {
                        return Err(Bad::TooLarge { max });
                    }
                    return Ok(None);
                }
                Err(Failed(bad)) => return Err(bad),
            }
        }
        Ok(Some(self.at))
    }

    /// Takes one step over `rest`: how many bytes it read (pushing what comes next), or
    /// how many it needs.
    fn step(&mut self, step: Step, rest: &[u8]) -> Result<usize, Stop> {
        match step {
            Step::Head => {
                let w = fixed::<4>(rest, 0)?;
                if !begins(&w) || w[2] != 0 || !(1..=4).contains(&w[3]) {
                    return Err(Failed(Bad::Version(w)));
                }
                let name = len(rest, 4, "TMessage name length")?;
                // The name, then the sequence id.
                have(rest, 8 + name + 4)?;
                Ok(8 + name + 4)
            }
            Step::Value(t) => self.value(t, rest),
            Step::Fields => {
                let t = fixed::<1>(rest, 0)?[0];
                if t == ttype::STOP {
                    return Ok(1);
                }
                have(rest, 3)?;
                self.stack.push(Step::Fields);
                self.stack.push(Step::Value(known(t)?));
                Ok(3)
            }
            Step::Elems { elem, left } => {
                if left > 0 {
                    self.stack.push(Step::Elems {
                        elem,
                        left: left - 1,
                    });
                    self.stack.push(Step::Value(elem));
                }
                Ok(0)
            }
            Step::Pairs { key, value, left } => {
                if left > 0 {
                    self.stack.push(Step::Pairs {
                        key,
                        value,
                        left: left - 1,
                    });
                    self.stack.push(Step::Value(value));
                    self.stack.push(Step::Value(key));
                }
                Ok(0)
            }
        }
    }

    fn value(&mut self, t: u8, rest: &[u8]) -> Result<usize, Stop> {
        if let Some(n) = fixed_size(t) {
            have(rest, n)?;
            return Ok(n);
        }
        match t {
            ttype::STRING => {
                let n = len(rest, 0, "string length")?;
                have(rest, 4 + n)?;
                Ok(4 + n)
            }
            ttype::STRUCT => {
                self.stack.push(Step::Fields);
                Ok(0)
            }
            ttype::LIST | ttype::SET => {
                have(rest, 5)?;
                let elem = known(rest[0])?;
                let count = len(rest, 1, "list or set size")?;
                self.repeat(5, elem, None, count, rest)
            }
            ttype::MAP => {
                have(rest, 6)?;
                let (key, value) = (known(rest[0])?, known(rest[1])?);
                let count = len(rest, 2, "map size")?;
                self.repeat(6, key, Some(value), count, rest)
            }
            other => Err(Failed(Bad::Type(other))),
        }
    }

    /// A container's `count` elements (pairs, with `value`) after its `head` bytes:
    /// skipped at once when each is of a fixed size, so a large count of small values
    /// costs one step, not one each; otherwise walked one by one (each takes at least a
    /// byte, so the limit bounds them).
    fn repeat(
        &mut self,
        head: usize,
        key: u8,
        value: Option<u8>,
        count: usize,
        rest: &[u8],
    ) -> Result<usize, Stop> {
        let each = match value {
            None => fixed_size(key),
            Some(v) => fixed_size(key).zip(fixed_size(v)).map(|(k, v)| k + v),
        };
        if let Some(each) = each {
            let n = head.saturating_add(each.saturating_mul(count));
            have(rest, n)?;
            return Ok(n);
        }
        // `count` came from a non-negative i32.
        let left = count as u32;
        self.stack.push(match value {
            None => Step::Elems { elem: key, left },
            Some(value) => Step::Pairs { key, value, left },
        });
        Ok(head)
    }
}

/// Why a step did not complete.
enum Stop {
    /// It needs this many bytes from its start.
    More(usize),
    Failed(Bad),
}
use Stop::{Failed, More};

fn have(rest: &[u8], n: usize) -> Result<(), Stop> {
    if rest.len() < n {
        return Err(More(n));
    }
    Ok(())
}

fn fixed<const N: usize>(rest: &[u8], at: usize) -> Result<[u8; N], Stop> {
    have(rest, at + N)?;
    let mut w = [0; N];
    w.copy_from_slice(&rest[at..at + N]);
    Ok(w)
}

/// The non-negative i32 at `at`.
fn len(rest: &[u8], at: usize, what: &'static str) -> Result<usize, Stop> {
    let n = i32::from_be_bytes(fixed::<4>(rest, at)?);
    usize::try_from(n).map_err(|_| Failed(Bad::Negative(what, n)))
}

fn known(t: u8) -> Result<u8, Stop> {
    match t {
        ttype::BOOL
        | ttype::BYTE
        | ttype::DOUBLE
        | ttype::I16
        | ttype::I32
        | ttype::I64
        | ttype::STRING
        | ttype::STRUCT
        | ttype::MAP
        | ttype::SET
        | ttype::LIST
        | ttype::UUID => Ok(t),
        other => Err(Failed(Bad::Type(other))),
    }
}

/// The size of a value of type `t`, if it has a fixed one.
fn fixed_size(t: u8) -> Option<usize> {
    match t {
        ttype::BOOL | ttype::BYTE => Some(1),
        ttype::I16 => Some(2),
        ttype::I32 => Some(4),
        ttype::DOUBLE | ttype::I64 => Some(8),
        ttype::UUID => Some(16),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// Kitex's Buffered PingPong request of WIRE.md §1.5, byte for byte.
    const KITEX: &str = "80 01 00 01  00 00 00 08 50 69 6e 67 50 6f 6e 67  00 00 00 01
                         0c 00 01  0b 00 01 00 00 00 0c 6d 61 74 72 69 78 00 ff 70 69 6e 67
                         00  00";

    fn walk_whole(b: &[u8], max: usize) -> Result<Option<usize>, Bad> {
        Walk::default().resume(b, max)
    }

    #[test]
    fn kitexs_buffered_request_ends_at_its_last_stop() {
        let m = hex(KITEX);
        assert_eq!(walk_whole(&m, 1024), Ok(Some(44)));
        // Followed by the next request: the walk stops at the first one's end.
        let two = [&m[..], &m[..]].concat();
        assert_eq!(walk_whole(&two, 1024), Ok(Some(44)));
        // Cut anywhere short of its end: more is to come.
        for cut in 0..m.len() {
            assert_eq!(walk_whole(&m[..cut], 1024), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn a_walk_resumes_where_it_stopped() {
        let m = hex(KITEX);
        for piece in 1..8 {
            let mut w = Walk::default();
            let mut end = None;
            for k in (piece..=m.len()).step_by(piece).chain([m.len()]) {
                end = w.resume(&m[..k], 1024).unwrap();
                if end.is_some() {
                    break;
                }
            }
            assert_eq!(end, Some(44), "{piece} bytes at a time");
        }
    }

    #[test]
    fn every_type_is_walked() {
        // A struct with a bool, byte, double, i16, i32, i64, uuid, a list of i32, a set of
        // strings, a map of i32 to struct, a list of lists, then STOP.
        let args = hex(
            "02 00 01 01   03 00 02 7f   04 00 03 00 00 00 00 00 00 00 00
             06 00 04 00 01   08 00 05 00 00 00 01   0a 00 06 00 00 00 00 00 00 00 01
             10 00 07 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f
             0f 00 08 08 00 00 00 02 00 00 00 01 00 00 00 02
             0e 00 09 0b 00 00 00 02 00 00 00 01 61 00 00 00 00
             0d 00 0a 08 0c 00 00 00 01 00 00 00 07 08 00 01 00 00 00 01 00
             0f 00 0b 0f 00 00 00 01 03 00 00 00 02 01 02
             00",
        );
        let m = [&hex("80 01 00 01 00 00 00 01 6d 00 00 00 07")[..], &args].concat();
        assert_eq!(walk_whole(&m, 4096), Ok(Some(m.len())));
        for cut in 0..m.len() {
            assert_eq!(walk_whole(&m[..cut], 4096), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn bad_messages_are_refused_with_why() {
        let head = "80 01 00 01 00 00 00 01 6d 00 00 00 07";
        for (name, bytes, want) in [
            (
                "type 0 (no message type)",
                "80 01 00 00 00 00 00 00".to_owned(),
                Bad::Version([0x80, 1, 0, 0]),
            ),
            (
                "version 2",
                "80 02 00 01".to_owned(),
                Bad::Version([0x80, 2, 0, 1]),
            ),
            (
                "a negative name length",
                "80 01 00 01 ff ff ff ff".to_owned(),
                Bad::Negative("TMessage name length", -1),
            ),
            ("field type 1", format!("{head} 01 00 01"), Bad::Type(1)),
            (
                "a negative string length",
                format!("{head} 0b 00 01 80 00 00 00"),
                Bad::Negative("string length", i32::MIN),
            ),
            (
                "a negative list size",
                format!("{head} 0f 00 01 08 ff ff ff fe"),
                Bad::Negative("list or set size", -2),
            ),
            (
                "a list of type 20",
                format!("{head} 0f 00 01 14 00 00 00 01"),
                Bad::Type(20),
            ),
            (
                "a map whose value type is STOP",
                format!("{head} 0d 00 01 08 00 00 00 00 01"),
                Bad::Type(0),
            ),
            (
                "a string past the limit",
                format!("{head} 0b 00 01 00 00 04 00"),
                Bad::TooLarge { max: 64 },
            ),
            (
                "a name past the limit",
                "80 01 00 01 7f ff ff ff".to_owned(),
                Bad::TooLarge { max: 64 },
            ),
            (
                "two billion i64s",
                format!("{head} 0f 00 01 0a 7f ff ff ff"),
                Bad::TooLarge { max: 64 },
            ),
        ] {
            assert_eq!(walk_whole(&hex(&bytes), 64), Err(want), "{name}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let head = hex("80 01 00 01 00 00 00 01 6d 00 00 00 07");
        // Structs in structs: field 1 STRUCT, 70 deep.
        let deep = [&head[..], &hex("0c 00 01").repeat(70)].concat();
        assert_eq!(walk_whole(&deep, 1 << 20), Err(Bad::TooDeep));
        // Lists of lists, 70 deep.
        let lists = [
            &head[..],
            &hex("0f 00 01"),
            &hex("0f 00 00 00 01").repeat(70),
        ]
        .concat();
        assert_eq!(walk_whole(&lists, 1 << 20), Err(Bad::TooDeep));
        // 60 deep is allowed.
        let mut ok = [&head[..], &hex("0c 00 01").repeat(60)].concat();
        ok.extend(vec![0u8; 61]);
        assert_eq!(walk_whole(&ok, 1 << 20), Ok(Some(ok.len())));
    }

    #[test]
    fn many_small_elements_are_one_step_and_many_structs_are_bounded_by_the_limit() {
        let head = hex("80 01 00 01 00 00 00 01 6d 00 00 00 07");
        // 1,000 i32s: skipped as one.
        let mut m = [&head[..], &hex("0f 00 01 08 00 00 03 e8")].concat();
        m.extend(vec![0u8; 4000]);
        m.extend([0]);
        assert_eq!(walk_whole(&m, 1 << 20), Ok(Some(m.len())));
        // A list that says two billion empty structs, each one STOP byte: walked until the
        // limit, then refused.
        let mut m = [&head[..], &hex("0f 00 01 0c 7f ff ff ff")].concat();
        m.extend(vec![0u8; 200]);
        assert_eq!(walk_whole(&m, 100), Err(Bad::TooLarge { max: 100 }));
    }
}

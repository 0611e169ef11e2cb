//! Whether calling a method twice does harm: what lets a Connect client send a call as an
//! HTTP GET, which caches and browsers may repeat.

use crate::named::Named;

/// A method's idempotency level, numbered as protobuf's `MethodOptions.IdempotencyLevel`
/// (`option idempotency_level = NO_SIDE_EFFECTS;` in a `.proto`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Idempotency {
    /// Nothing is known: the call may change state (the default).
    #[default]
    Unknown = 0,
    /// The call only reads: Connect may carry it as a GET.
    NoSideEffects = 1,
    /// Repeating the call has the effect of calling it once.
    Idempotent = 2,
}

impl Idempotency {
    pub const ALL: [Idempotency; 3] = [
        Idempotency::Unknown,
        Idempotency::NoSideEffects,
        Idempotency::Idempotent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Idempotency::Unknown => "unknown",
            Idempotency::NoSideEffects => "no-side-effects",
            Idempotency::Idempotent => "idempotent",
        }
    }
}

impl Named for Idempotency {
    const ALL: &'static [Idempotency] = &Idempotency::ALL;

    fn name(self) -> &'static str {
        Idempotency::name(self)
    }
}

/// The numbers every binding passes across its boundary (protobuf's).
impl TryFrom<u32> for Idempotency {
    type Error = crate::Error;

    fn try_from(n: u32) -> Result<Idempotency, crate::Error> {
        match n {
            0 => Ok(Idempotency::Unknown),
            1 => Ok(Idempotency::NoSideEffects),
            2 => Ok(Idempotency::Idempotent),
            n => Err(crate::Error::invalid(format!(
                "idempotency {n} is not one of 0 (unknown), 1 (no side effects), 2 (idempotent)"
            ))),
        }
    }
}

//! The `grpc-timeout` header: "Timeout → TimeoutValue TimeoutUnit", at most 8 ASCII digits
//! followed by one of H M S m u n.

use std::time::Duration;

const MAX_DIGITS: u64 = 99_999_999;

/// Encodes a timeout with the finest unit whose value fits in 8 digits, so that short
/// deadlines keep their precision.
pub(crate) fn encode(t: Duration) -> String {
    let nanos = t.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (scale, unit) in units {
        // Round up so a deadline is never sent shorter than asked.
        let v = nanos.div_ceil(scale);
        if v <= MAX_DIGITS as u128 {
            return format!("{v}{unit}");
        }
    }
    format!("{MAX_DIGITS}H")
}

/// Parses a received `grpc-timeout`; `None` for a malformed value.
pub(crate) fn parse(raw: &[u8]) -> Option<Duration> {
    let (digits, unit) = raw.split_at(raw.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit[0] {
        b'H' => Duration::from_secs(v * 3600),
        b'M' => Duration::from_secs(v * 60),
        b'S' => Duration::from_secs(v),
        b'm' => Duration::from_millis(v),
        b'u' => Duration::from_micros(v),
        b'n' => Duration::from_nanos(v),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_the_finest_unit_that_fits() {
        assert_eq!(encode(Duration::from_nanos(500)), "500n");
        assert_eq!(encode(Duration::from_millis(100)), "100000u");
        assert_eq!(encode(Duration::from_secs(1)), "1000000u");
        assert_eq!(encode(Duration::from_secs(3600 * 24)), "86400000m");
        assert_eq!(encode(Duration::from_secs(10_000_000)), "10000000S");
    }

    #[test]
    fn parses_every_unit_and_rejects_garbage() {
        assert_eq!(parse(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse(b"4m"), Some(Duration::from_millis(4)));
        assert_eq!(parse(b"5u"), Some(Duration::from_micros(5)));
        assert_eq!(parse(b"6n"), Some(Duration::from_nanos(6)));
        assert_eq!(parse(b"123456789S"), None);
        assert_eq!(parse(b"S"), None);
        assert_eq!(parse(b"1x"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"-1S"), None);
    }
}

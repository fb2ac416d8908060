//! Dates and timestamps as written in contracts and CSV files: one parser,
//! shared by the loader (contract literals) and `weir-contract` (data).
//!
//! # Guarantees
//! Only real calendar days are accepted (`2023-02-29` is not); no input
//! panics or overflows.

/// Days since 1970-01-01 of a `YYYY-MM-DD` date, if it is one.
#[must_use]
pub fn parse_date(value: &str) -> Option<i64> {
    let bytes = value.as_bytes();
    if bytes.len() != 10 || bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
        return None;
    }
    let year = digits(value.get(0..4)?)?;
    let month = digits(value.get(5..7)?)?;
    let day = digits(value.get(8..10)?)?;
    days_from_civil(year, month, day)
}

/// Howard Hinnant's `days_from_civil`, after checking the day exists.
fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&day) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// A whole number written with ASCII digits only (no sign).
fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A timestamp as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Seconds since the epoch: in UTC when an offset was given, as
    /// written otherwise.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
    /// The offset from UTC in seconds, if one was written (`Z` is 0).
    pub offset_secs: Option<i64>,
    /// Whether date and time were separated by `T` (RFC 3339) rather than
    /// a space.
    pub t_separator: bool,
}

/// Reads `YYYY-MM-DD(T| )HH:MM:SS[.f]` with an optional `Z` or `±HH:MM`
/// offset; at most 9 fraction digits.
#[must_use]
pub fn parse_timestamp(value: &str) -> Option<Timestamp> {
    let days = parse_date(value.get(..10)?)?;
    let t_separator = match value.get(10..11)? {
        "T" | "t" => true,
        " " => false,
        _ => return None,
    };
    let time = value.get(11..19)?;
    let tb = time.as_bytes();
    if tb.get(2) != Some(&b':') || tb.get(5) != Some(&b':') {
        return None;
    }
    let (h, m, s) = (
        digits(time.get(0..2)?)?,
        digits(time.get(3..5)?)?,
        digits(time.get(6..8)?)?,
    );
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    let mut rest = value.get(19..)?;
    let mut nanos = 0u32;
    if let Some(after) = rest.strip_prefix('.') {
        let len = after.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=9).contains(&len) {
            return None;
        }
        let frac = u32::try_from(digits(after.get(..len)?)?).ok()?;
        nanos = frac * 10u32.pow(u32::try_from(9 - len).ok()?);
        rest = after.get(len..)?;
    }
    let offset_secs = match rest {
        "" => None,
        "Z" | "z" => Some(0),
        _ => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.get(3..4)? != ":" {
                return None;
            }
            let (oh, om) = (digits(rest.get(1..3)?)?, digits(rest.get(4..6)?)?);
            if oh > 23 || om > 59 {
                return None;
            }
            Some(sign * (oh * 3600 + om * 60))
        }
    };
    Some(Timestamp {
        secs: days * 86_400 + h * 3600 + m * 60 + s - offset_secs.unwrap_or(0),
        nanos,
        offset_secs,
        t_separator,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("2023-02-29"), None);
        let t = parse_timestamp("1970-01-02T00:00:01.5+01:00").unwrap();
        assert_eq!(
            (t.secs, t.nanos, t.offset_secs),
            (86_401 - 3600, 500_000_000, Some(3600))
        );
        assert!(t.t_separator);
        assert_eq!(
            parse_timestamp("1970-01-01 00:00:00").unwrap().offset_secs,
            None
        );
        for bad in [
            "1970-01-01X00:00:00",
            "1970-01-01T24:00:00",
            "1970-01-01T00:00:00.",
            "1970-01-01T00:00:00+1:00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
}

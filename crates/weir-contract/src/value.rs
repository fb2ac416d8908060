//! Values written as text (contract literals, CSV fields): dates,
//! timestamps and decimals, read strictly; and data values formatted for
//! reports.
//!
//! - date: `YYYY-MM-DD` (years 0000 to 9999, real calendar days).
//! - timestamp: `YYYY-MM-DD`, `T` or a space, `HH:MM:SS`, an optional
//!   fraction of 1 to 9 digits, then `Z` or `±HH:MM` (RFC 3339) or nothing
//!   (a wall-clock time). With an offset the value is converted to UTC.
//! - decimal: `[+-]digits[.digits]`, no exponent.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{
    DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
pub(crate) fn parse_date(value: &str) -> Option<i32> {
    weir_spec::calendar::parse_date(value).and_then(|d| i32::try_from(d).ok())
}

/// A time read from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Time {
    /// Nanoseconds since the epoch: in UTC when `zoned`, as written
    /// otherwise.
    pub(crate) nanos: i128,
    /// Whether an offset was given.
    pub(crate) zoned: bool,
}

/// Reads a timestamp (see the module docs).
pub(crate) fn parse_timestamp(value: &str) -> Option<Time> {
    let t = weir_spec::calendar::parse_timestamp(value)?;
    Some(Time {
        nanos: i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos),
        zoned: t.offset_secs.is_some(),
    })
}

/// Why a decimal did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecimalError {
    /// Not `[+-]digits[.digits]`.
    Syntax,
    /// More fractional digits than the scale keeps.
    Scale,
    /// More digits than the precision holds.
    Precision,
}

impl DecimalError {
    pub(crate) fn describe(self, precision: u8, scale: i8) -> String {
        match self {
            DecimalError::Syntax => "not a decimal number ([+-]digits[.digits])".to_owned(),
            DecimalError::Scale => {
                format!("more decimal places than decimal({precision},{scale}) keeps")
            }
            DecimalError::Precision => format!("too many digits for decimal({precision},{scale})"),
        }
    }
}

/// Reads `[+-]digits[.digits]` as the unscaled integer of a
/// `decimal(precision, scale)` (`12.5` at scale 2 is `1250`). Never rounds.
pub(crate) fn parse_decimal(value: &str, precision: u8, scale: i8) -> Result<i128, DecimalError> {
    let (negative, body) = match value.as_bytes().first() {
        Some(b'-') => (true, value.get(1..).unwrap_or_default()),
        Some(b'+') => (false, value.get(1..).unwrap_or_default()),
        _ => (false, value),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || !all_digits(frac) || body.ends_with('.') {
        return Err(DecimalError::Syntax);
    }
    // value = mantissa * 10^-frac_len; unscaled = mantissa * 10^(scale - frac_len)
    let frac = frac.trim_end_matches('0');
    let mut mantissa: i128 = 0;
    for b in int.trim_start_matches('0').bytes().chain(frac.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(b - b'0')))
            .ok_or(DecimalError::Precision)?;
    }
    let frac_len = i32::try_from(frac.len()).map_err(|_| DecimalError::Scale)?;
    let shift = i32::from(scale) - frac_len;
    let unscaled = if shift >= 0 {
        let factor = 10i128
            .checked_pow(shift.unsigned_abs())
            .ok_or(DecimalError::Precision)?;
        mantissa
            .checked_mul(factor)
            .ok_or(DecimalError::Precision)?
    } else {
        let factor = 10i128
            .checked_pow(shift.unsigned_abs())
            .ok_or(DecimalError::Scale)?;
        if mantissa % factor != 0 {
            return Err(DecimalError::Scale);
        }
        mantissa / factor
    };
    let limit = 10i128
        .checked_pow(u32::from(precision))
        .ok_or(DecimalError::Precision)?;
    if unscaled >= limit {
        return Err(DecimalError::Precision);
    }
    Ok(if negative { -unscaled } else { unscaled })
}

/// Longest example or quoted value, in characters.
const MAX_SHOWN: usize = 64;

/// `value` quoted, cut to [`MAX_SHOWN`] characters.
pub(crate) fn quote(value: &str) -> String {
    match value.char_indices().nth(MAX_SHOWN) {
        Some((cut, _)) => format!("{:?}...", value.get(..cut).unwrap_or_default()),
        None => format!("{value:?}"),
    }
}

/// `YYYY-MM-DD` of a day number (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A timestamp of `value` units of `nanos_per_unit` ns as RFC 3339: in UTC
/// (`Z`) when the column has a time zone, as a wall-clock time otherwise.
/// The fraction has no trailing zeros.
pub(crate) fn format_timestamp(value: i64, nanos_per_unit: i64, zoned: bool) -> String {
    let per_sec = 1_000_000_000 / nanos_per_unit.clamp(1, 1_000_000_000);
    let secs = value.div_euclid(per_sec);
    let nanos = value.rem_euclid(per_sec) * nanos_per_unit;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let mut out = format!(
        "{}T{:02}:{:02}:{:02}",
        civil(days),
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    if zoned {
        out.push('Z');
    }
    out
}

/// Row `row` of `array` as a report shows it: strings quoted, binary in
/// hex, times in RFC 3339, all cut to a bounded length. `None` for a null.
pub(crate) fn show(array: &dyn Array, row: usize) -> Option<String> {
    if row >= array.len() || array.is_null(row) {
        return None;
    }
    if let DataType::Timestamp(unit, tz) = array.data_type() {
        let value = match unit {
            TimeUnit::Second => array.as_primitive_opt::<TimestampSecondType>()?.value(row),
            TimeUnit::Millisecond => array
                .as_primitive_opt::<TimestampMillisecondType>()?
                .value(row),
            TimeUnit::Microsecond => array
                .as_primitive_opt::<TimestampMicrosecondType>()?
                .value(row),
            TimeUnit::Nanosecond => array
                .as_primitive_opt::<TimestampNanosecondType>()?
                .value(row),
        };
        let per_unit = crate::types::unit_nanos(*unit);
        return Some(format_timestamp(value, per_unit, tz.is_some()));
    }
    let options = FormatOptions::new();
    let text = match ArrayFormatter::try_new(array, &options) {
        Ok(formatter) => formatter.value(row).to_string(),
        Err(_) => return Some("(cannot be shown)".to_owned()),
    };
    let string = matches!(
        array.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    Some(if string {
        quote(&text)
    } else {
        match text.char_indices().nth(MAX_SHOWN) {
            Some((cut, _)) => format!("{}...", text.get(..cut).unwrap_or_default()),
            None => text,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-01-01"), Some(19_723));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("1969-12-31"), Some(-1));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-1-01",
            "24-01-01",
            "2024-01-01 ",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        let t = |s| parse_timestamp(s);
        let utc = 1_704_067_200i128 * 1_000_000_000;
        assert_eq!(
            t("2024-01-01T00:00:00Z"),
            Some(Time {
                nanos: utc,
                zoned: true
            })
        );
        assert_eq!(
            t("2024-01-01 02:00:00+02:00"),
            Some(Time {
                nanos: utc,
                zoned: true
            })
        );
        assert_eq!(
            t("2024-01-01T00:00:00"),
            Some(Time {
                nanos: utc,
                zoned: false
            })
        );
        assert_eq!(
            t("2024-01-01T00:00:00.5Z").map(|t| t.nanos),
            Some(utc + 500_000_000)
        );
        assert_eq!(
            t("2024-01-01T00:00:00.000000001Z").map(|t| t.nanos),
            Some(utc + 1)
        );
        for bad in [
            "2024-01-01",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00.0000000001Z",
            "2024-01-01T00:00:00+0200",
            "2024-01-01X00:00:00Z",
            "2024-01-01T00:00:00 Z",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("12.5", 10, 2), Ok(1250));
        assert_eq!(parse_decimal("-0.01", 10, 2), Ok(-1));
        assert_eq!(parse_decimal("+7", 10, 2), Ok(700));
        assert_eq!(parse_decimal("1.230", 10, 2), Ok(123));
        assert_eq!(parse_decimal("0001.5", 3, 1), Ok(15));
        assert_eq!(parse_decimal("1.005", 10, 2), Err(DecimalError::Scale));
        assert_eq!(
            parse_decimal("100000000", 10, 2),
            Err(DecimalError::Precision)
        );
        assert_eq!(parse_decimal("99999999.99", 10, 2), Ok(9_999_999_999));
        assert_eq!(parse_decimal("1200", 5, -2), Ok(12));
        assert_eq!(parse_decimal("1250", 5, -2), Err(DecimalError::Scale));
        for bad in ["", "-", "1.", ".5", "1e3", "1,5", "--1", " 1"] {
            assert_eq!(
                parse_decimal(bad, 10, 2),
                Err(DecimalError::Syntax),
                "{bad}"
            );
        }
        let huge = "9".repeat(60);
        assert_eq!(parse_decimal(&huge, 38, 0), Err(DecimalError::Precision));
    }

    #[test]
    fn timestamps_format_as_rfc3339() {
        let midnight = 1_704_067_200i64;
        assert_eq!(
            format_timestamp(midnight, 1_000_000_000, true),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(
            format_timestamp(midnight * 1000 + 5, 1_000_000, false),
            "2024-01-01T00:00:00.005"
        );
        assert_eq!(
            format_timestamp(midnight * 1_000_000_000 - 1, 1, true),
            "2023-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            format_timestamp(-1, 1_000, true),
            "1969-12-31T23:59:59.999999Z"
        );
        assert_eq!(format_timestamp(0, 1_000, true), "1970-01-01T00:00:00Z");
        for days in [-719_000i64, -1, 0, 59, 19_782, 2_932_896] {
            assert_eq!(
                parse_date(&civil(days)).map(i64::from),
                Some(days),
                "{days}"
            );
        }
    }

    #[test]
    fn quoting_is_bounded() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let long = "é".repeat(100);
        let q = quote(&long);
        assert!(q.ends_with("..."));
        assert_eq!(q.chars().filter(|c| *c == 'é').count(), MAX_SHOWN);
    }
}

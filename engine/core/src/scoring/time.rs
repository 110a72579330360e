//! HL7 `TS`/`DTM` → UTC microseconds, for observation times, and PID-7 → a civil date.
//!
//! Observation times need at least minute precision (`YYYYMMDDHHMM[SS[.S…]][±ZZZZ]`): a
//! day-precision time cannot place a value in a 15-minute set, so it is an error (the value is
//! not scored), never silently midnight. A time without an offset is read in the channel's
//! default zone. Nothing here reads the clock.

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};

/// Why a time was not usable (no PHI: the text is not echoed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeError(pub &'static str);

impl std::fmt::Display for TimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

fn num(digits: &str, at: usize, len: usize) -> Option<i32> {
    digits.get(at..at + len)?.parse().ok()
}

fn parse_offset(text: &str) -> Result<Offset, TimeError> {
    let bad = TimeError("the offset must be +HHMM or -HHMM");
    let sign = match text.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(bad),
    };
    let digits = text.get(1..).ok_or(bad.clone())?;
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    let (h, m) = (
        num(digits, 0, 2).ok_or(bad.clone())?,
        num(digits, 2, 2).ok_or(bad.clone())?,
    );
    if h > 23 || m > 59 {
        return Err(bad);
    }
    Offset::from_seconds(sign * (h * 3600 + m * 60)).map_err(|_| bad)
}

/// Parses an HL7 time with at least minute precision into UTC microseconds.
pub fn parse_hl7_time(text: &str, default_zone: &TimeZone) -> Result<i64, TimeError> {
    let text = text.trim();
    let (main, offset) = match text.find(['+', '-']) {
        Some(i) => (&text[..i], Some(parse_offset(&text[i..])?)),
        None => (text, None),
    };
    let (digits, fraction) = match main.split_once('.') {
        Some((d, f)) => (d, Some(f)),
        None => (main, None),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimeError("expected digits"));
    }
    if digits.len() != 12 && digits.len() != 14 {
        return Err(TimeError(
            "an observation time needs minute precision (YYYYMMDDHHMM[SS])",
        ));
    }
    let mut nanos = 0i32;
    if let Some(fraction) = fraction {
        let ok = digits.len() == 14
            && (1..=9).contains(&fraction.len())
            && fraction.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            return Err(TimeError("bad fractional seconds"));
        }
        nanos = format!("{fraction:0<9}")
            .parse()
            .map_err(|_| TimeError("bad fractional seconds"))?;
    }
    let bad = TimeError("no such date or time");
    let part = |at: usize, len: usize| num(digits, at, len).ok_or(TimeError("expected digits"));
    let year = i16::try_from(part(0, 4)?).map_err(|_| bad.clone())?;
    let small = |v: i32| i8::try_from(v).map_err(|_| bad.clone());
    let second = if digits.len() == 14 { part(12, 2)? } else { 0 };
    let datetime = DateTime::new(
        year,
        small(part(4, 2)?)?,
        small(part(6, 2)?)?,
        small(part(8, 2)?)?,
        small(part(10, 2)?)?,
        small(second)?,
        nanos,
    )
    .map_err(|_| bad.clone())?;
    let zone = offset.map_or_else(|| default_zone.clone(), TimeZone::fixed);
    let zoned = datetime.to_zoned_datetime(zone).map_err(|_| bad)?;
    Ok(zoned.timestamp().as_microsecond())
}

/// PID-7 (date of birth, any precision from day up; time and offset ignored) → a date.
pub fn parse_birth_date(text: &str) -> Option<Date> {
    let text = text.trim();
    let digits = text.get(..8)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = i16::try_from(num(digits, 0, 4)?).ok()?;
    let month = i8::try_from(num(digits, 4, 2)?).ok()?;
    let day = i8::try_from(num(digits, 6, 2)?).ok()?;
    Date::new(year, month, day).ok()
}

/// Whole years between `birth` and the civil date of `at_micros` in `zone`.
pub fn age_years(birth: Date, at_micros: i64, zone: &TimeZone) -> Option<i32> {
    let at = jiff::Timestamp::from_microsecond(at_micros)
        .ok()?
        .to_zoned_datetime(zone.clone())
        .date();
    let mut years = i32::from(at.year()) - i32::from(birth.year());
    if (at.month(), at.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    Some(years)
}

/// RFC 3339 (UTC) for a microsecond timestamp; the one in `clock`.
pub use crate::clock::micros_to_rfc3339 as rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    #[test]
    fn precisions_and_offsets() {
        let utc = TimeZone::UTC;
        let base = parse_hl7_time("202405011025", &utc).unwrap();
        assert_eq!(rfc3339(base), "2024-05-01T10:25:00Z");
        assert_eq!(parse_hl7_time("20240501102500", &utc), Ok(base));
        assert_eq!(parse_hl7_time("20240501102500.5", &utc), Ok(base + 500_000));
        assert_eq!(parse_hl7_time("20240501122500+0200", &utc), Ok(base));
        assert_eq!(parse_hl7_time("202405010925-0100", &utc), Ok(base));
        assert_eq!(
            parse_hl7_time("20090127093400.000-0800", &utc).map(rfc3339),
            Ok("2009-01-27T17:34:00Z".into())
        );
        let london = TimeZone::get("Europe/London").unwrap();
        assert_eq!(parse_hl7_time("20240501112500", &london), Ok(base));
        assert_eq!(parse_hl7_time("20240501102600", &utc), Ok(base + MIN));
    }

    #[test]
    fn rejects_coarse_or_bad_times() {
        let utc = TimeZone::UTC;
        for bad in [
            "",
            "20240501",
            "2024050110",
            "20240230102500",
            "202405011025xx",
            "20240501102500+25",
            "20240501102500+01",
            "202405011025.5",
            "20240501246000",
        ] {
            assert!(parse_hl7_time(bad, &utc).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ages() {
        let utc = TimeZone::UTC;
        let dob = parse_birth_date("20080501").unwrap();
        let day_before = parse_hl7_time("202404302359", &utc).unwrap();
        let birthday = parse_hl7_time("202405010000", &utc).unwrap();
        assert_eq!(age_years(dob, day_before, &utc), Some(15));
        assert_eq!(age_years(dob, birthday, &utc), Some(16));
        assert_eq!(parse_birth_date("19600101"), Date::new(1960, 1, 1).ok());
        assert_eq!(parse_birth_date("196001"), None);
        assert_eq!(parse_birth_date("19601301"), None);
    }
}

//! Time in one place: store timestamps are UTC microseconds since the Unix epoch (an `i64`), and
//! HL7 timestamps are rendered in the machine's local zone with an explicit offset.

/// Microseconds since the Unix epoch, UTC.
pub fn now_micros() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// An HL7 `DTM` for "now": `YYYYMMDDHHMMSS.ffff±ZZZZ` in the local zone.
pub fn hl7_now() -> String {
    let now = jiff::ZonedDateTime::now();
    now.strftime("%Y%m%d%H%M%S.%4f%z").to_string()
}

/// Renders store microseconds as RFC 3339 (UTC) for people and JSON output.
pub fn micros_to_rfc3339(micros: i64) -> String {
    match jiff::Timestamp::from_microsecond(micros) {
        Ok(ts) => ts.to_string(),
        Err(_) => micros.to_string(),
    }
}

/// Parses an RFC 3339 timestamp or a relative age like `15m`, `2h`, `3d` (meaning "that long ago").
pub fn parse_time_arg(text: &str) -> Option<i64> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.as_microsecond());
    }
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: i64 = digits.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    };
    Some(now_micros() - secs * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hl7_now_has_offset_and_length() {
        let s = hl7_now();
        assert_eq!(s.len(), "20240501103000.1234+0000".len(), "{s}");
        assert!(s.contains('+') || s.contains('-'));
    }

    #[test]
    fn relative_and_absolute_times_parse() {
        let an_hour_ago = parse_time_arg("1h").unwrap();
        assert!((now_micros() - an_hour_ago - 3_600_000_000).abs() < 5_000_000);
        assert_eq!(parse_time_arg("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_time_arg("soon"), None);
    }
}

//! Script functions beyond the message: HL7 date/time, code-map lookups, de-identification,
//! logging, `reject`, `route_to` and `assert`.
//!
//! HL7 times are an `Hl7Time` value: a civil date-time, the UTC offset written in the text
//! (if any) and the precision the text had (`YYYY` … `YYYYMMDDHHMMSS.SSSS`). Text without an
//! offset is taken as UTC. Formatting back to HL7 keeps the precision; `shift_date` keeps both
//! the precision and the presence of an offset, so a de-identified feed looks like the source.
//!
//! Invariants: `log_info`/`log_warn`/`print` write through `tracing` with the channel and script
//! names and at most 200 characters of text (never log message bodies: that is the scripts'
//! contract, documented in `scripts/README.md`); `hash` is salted with the per-install secret
//! and never logs it; nothing here touches the file system, the network or the clock beyond
//! reading "now"; nothing panics on script input.

use std::sync::Arc;

use jiff::ToSpan;
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use rhai::{Array, Dynamic, Engine, EvalAltResult, INT, Position};
use sha2::{Digest, Sha256};

use super::maps::CodeMaps;
use super::message_api::Fallible;
use super::sandbox::{Signal, frame_names, truncate_for_log, with_frame};

/// How many characters of a log call's text are kept.
const LOG_TEXT_MAX_CHARS: usize = 200;

/// How many digits an HL7 time had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Precision {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    /// Seconds with 1 to 9 fractional digits.
    Fraction(u8),
}

/// A parsed HL7 `TS`/`DTM` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7Time {
    datetime: DateTime,
    offset: Option<Offset>,
    precision: Precision,
}

fn two(text: &str, at: usize) -> Option<i8> {
    text.get(at..at + 2)?.parse().ok()
}

impl Hl7Time {
    /// Parses `YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("bad HL7 time {:?}: {why}", truncate_for_log(text, 40));
        let text = text.trim();
        let (main, offset) = match text.get(4..).and_then(|t| t.find(['+', '-'])) {
            Some(i) => (&text[..4 + i], Some(&text[4 + i..])),
            None => (text, None),
        };
        let offset = offset
            .map(|o| parse_offset(o).ok_or_else(|| bad("the offset must be +HHMM or -HHMM")))
            .transpose()?;
        let (digits, fraction) = match main.split_once('.') {
            Some((d, f)) => (d, Some(f)),
            None => (main, None),
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("expected digits"));
        }
        let mut precision = match digits.len() {
            4 => Precision::Year,
            6 => Precision::Month,
            8 => Precision::Day,
            10 => Precision::Hour,
            12 => Precision::Minute,
            14 => Precision::Second,
            _ => return Err(bad("expected 4, 6, 8, 10, 12 or 14 digits")),
        };
        let mut nanos = 0i32;
        if let Some(fraction) = fraction {
            let ok = precision == Precision::Second
                && (1..=9).contains(&fraction.len())
                && fraction.bytes().all(|b| b.is_ascii_digit());
            if !ok {
                return Err(bad(
                    "fractional seconds need 14 digits, a '.' and 1 to 9 digits",
                ));
            }
            nanos = format!("{fraction:0<9}")
                .parse()
                .map_err(|_| bad("fraction"))?;
            precision = Precision::Fraction(fraction.len() as u8);
        }
        let year: i16 = digits[..4].parse().map_err(|_| bad("year"))?;
        let part = |at: usize, default: i8| {
            if digits.len() > at {
                two(digits, at)
            } else {
                Some(default)
            }
        };
        let (Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
            (part(4, 1), part(6, 1), part(8, 0), part(10, 0), part(12, 0))
        else {
            return Err(bad("expected digits"));
        };
        let datetime = DateTime::new(year, month, day, hour, minute, second, nanos)
            .map_err(|_| bad("no such date or time"))?;
        Ok(Self {
            datetime,
            offset,
            precision,
        })
    }

    fn zone(&self) -> TimeZone {
        self.offset.map_or(TimeZone::UTC, TimeZone::fixed)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(&self) -> i64 {
        self.datetime
            .to_zoned_datetime(self.zone())
            .map_or(0, |z| z.timestamp().as_millisecond())
    }

    /// The HL7 text at this value's precision, with its offset (an offset is written only at
    /// hour precision or finer, where it means something).
    pub fn to_hl7(&self) -> String {
        let d = self.datetime;
        let mut out = format!("{:04}", d.year());
        let parts = [d.month(), d.day(), d.hour(), d.minute(), d.second()];
        let shown = match self.precision {
            Precision::Year => 0,
            Precision::Month => 1,
            Precision::Day => 2,
            Precision::Hour => 3,
            Precision::Minute => 4,
            Precision::Second | Precision::Fraction(_) => 5,
        };
        for part in &parts[..shown] {
            out.push_str(&format!("{part:02}"));
        }
        if let Precision::Fraction(n) = self.precision {
            let nanos = format!("{:09}", d.subsec_nanosecond());
            out.push('.');
            out.push_str(&nanos[..usize::from(n).min(9)]);
        }
        if let Some(offset) = self.offset.filter(|_| self.precision >= Precision::Hour) {
            let seconds = offset.seconds();
            let sign = if seconds < 0 { '-' } else { '+' };
            let abs = seconds.unsigned_abs();
            out.push_str(&format!("{sign}{:02}{:02}", abs / 3600, abs % 3600 / 60));
        }
        out
    }

    fn format(&self, pattern: &str) -> Fallible<String> {
        let zoned = self
            .datetime
            .to_zoned_datetime(self.zone())
            .map_err(|e| format!("hl7_time_format: {e}"))?;
        jiff::fmt::strtime::format(pattern, &zoned)
            .map_err(|e| format!("hl7_time_format: bad pattern: {e}").into())
    }

    fn add(&self, span: jiff::Span) -> Fallible<Self> {
        let datetime = self
            .datetime
            .checked_add(span)
            .map_err(|e| format!("date out of range: {e}"))?;
        Ok(Self {
            datetime,
            ..self.clone()
        })
    }

    fn now() -> Self {
        Self::parse(&crate::clock::hl7_now()).unwrap_or(Self {
            datetime: jiff::ZonedDateTime::now().datetime(),
            offset: None,
            precision: Precision::Second,
        })
    }
}

fn parse_offset(text: &str) -> Option<Offset> {
    let sign = match text.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = text.get(1..)?;
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    if minutes >= 60 || hours > 23 {
        return None;
    }
    Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

/// `shift_date(text, days)`: the same precision and offset presence, `days` later (or earlier).
fn shift_date(text: &str, days: INT) -> Fallible<String> {
    if text.trim().is_empty() {
        return Ok(String::new());
    }
    let time = Hl7Time::parse(text)?;
    Ok(time.add(days.days())?.to_hl7())
}

/// Letters and digits become `*`; separators, spaces and punctuation stay.
pub(crate) fn mask(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_alphanumeric() { '*' } else { c })
        .collect()
}

/// Masks all but the last `keep` characters.
pub(crate) fn keep_last(text: &str, keep: INT) -> String {
    let keep = usize::try_from(keep).unwrap_or(0);
    let total = text.chars().count();
    let cut = total.saturating_sub(keep);
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if i < cut && c.is_alphanumeric() {
                '*'
            } else {
                c
            }
        })
        .collect()
}

/// Hex of the first 16 bytes of SHA-256(salt ‖ text).
pub(crate) fn salted_hash(salt: &str, text: &str) -> String {
    let digest = Sha256::new()
        .chain_update(salt.as_bytes())
        .chain_update(text.as_bytes())
        .finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn log_line(level: tracing::Level, text: &str) {
    let (channel, script) = frame_names();
    let text = truncate_for_log(text, LOG_TEXT_MAX_CHARS);
    if level == tracing::Level::WARN {
        tracing::warn!(target: "medway::script", %channel, %script, "{text}");
    } else {
        tracing::info!(target: "medway::script", %channel, %script, "{text}");
    }
}

fn lookup(maps: &CodeMaps, map: &str, key: &str) -> Fallible<Option<String>> {
    if !maps.contains_map(map) {
        let known = maps.names().join(", ");
        return Err(format!("no code map named {map:?} (maps: {known})").into());
    }
    Ok(maps.get(map, key).map(str::to_owned))
}

fn route_to(routes: Array) -> Fallible<()> {
    let names = routes
        .into_iter()
        .map(|r| {
            r.into_immutable_string()
                .map(|s| s.to_string())
                .map_err(|t| format!("route_to takes destination names (strings), not {t}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    with_frame(|frame| frame.routes = Some(names));
    Ok(())
}

fn assert_that(condition: bool, message: &str) -> Fallible<()> {
    if condition {
        Ok(())
    } else {
        Err(format!("assertion failed: {message}").into())
    }
}

/// Registers the time, lookup, de-identification, logging and control functions.
pub(crate) fn register(engine: &mut Engine, maps: Arc<CodeMaps>, salt: Arc<str>) {
    // HL7 date/time.
    engine.register_type_with_name::<Hl7Time>("Hl7Time");
    engine.register_fn("hl7_time_parse", |text: &str| -> Fallible<Hl7Time> {
        Hl7Time::parse(text).map_err(Into::into)
    });
    engine.register_fn("hl7_time_now", Hl7Time::now);
    engine.register_fn("hl7_time_format", |t: Hl7Time, pattern: &str| {
        t.format(pattern)
    });
    engine.register_fn("hl7_time_to_hl7", |t: Hl7Time| t.to_hl7());
    engine.register_fn("to_string", |t: &mut Hl7Time| t.to_hl7());
    engine.register_fn("to_debug", |t: &mut Hl7Time| {
        format!("Hl7Time({})", t.to_hl7())
    });
    engine.register_get("unix_ms", |t: &mut Hl7Time| t.unix_ms());
    engine.register_get("year", |t: &mut Hl7Time| INT::from(t.datetime.year()));
    engine.register_get("month", |t: &mut Hl7Time| INT::from(t.datetime.month()));
    engine.register_get("day", |t: &mut Hl7Time| INT::from(t.datetime.day()));
    engine.register_get("hour", |t: &mut Hl7Time| INT::from(t.datetime.hour()));
    engine.register_get("minute", |t: &mut Hl7Time| INT::from(t.datetime.minute()));
    engine.register_get("second", |t: &mut Hl7Time| INT::from(t.datetime.second()));
    engine.register_get("offset", |t: &mut Hl7Time| {
        t.offset.map_or(String::new(), |o| {
            let s = o.seconds();
            let sign = if s < 0 { '-' } else { '+' };
            format!(
                "{sign}{:02}{:02}",
                s.unsigned_abs() / 3600,
                s.unsigned_abs() % 3600 / 60
            )
        })
    });
    engine.register_fn("add_days", |t: &mut Hl7Time, n: INT| t.add(n.days()));
    engine.register_fn("add_minutes", |t: &mut Hl7Time, n: INT| t.add(n.minutes()));
    engine.register_fn("==", |a: Hl7Time, b: Hl7Time| a.unix_ms() == b.unix_ms());
    engine.register_fn("!=", |a: Hl7Time, b: Hl7Time| a.unix_ms() != b.unix_ms());
    engine.register_fn("<", |a: Hl7Time, b: Hl7Time| a.unix_ms() < b.unix_ms());
    engine.register_fn("<=", |a: Hl7Time, b: Hl7Time| a.unix_ms() <= b.unix_ms());
    engine.register_fn(">", |a: Hl7Time, b: Hl7Time| a.unix_ms() > b.unix_ms());
    engine.register_fn(">=", |a: Hl7Time, b: Hl7Time| a.unix_ms() >= b.unix_ms());

    // Code maps.
    let for_lookup = maps.clone();
    engine.register_fn("lookup", move |map: &str, key: &str| {
        Ok::<_, Box<EvalAltResult>>(lookup(&for_lookup, map, key)?.unwrap_or_default())
    });
    engine.register_fn("lookup_or", move |map: &str, key: &str, default: &str| {
        Ok::<_, Box<EvalAltResult>>(lookup(&maps, map, key)?.unwrap_or_else(|| default.to_owned()))
    });

    // De-identification.
    engine.register_fn("mask", mask);
    engine.register_fn("keep_last", keep_last);
    engine.register_fn("hash", move |text: &str| salted_hash(&salt, text));
    engine.register_fn("shift_date", shift_date);

    // Logging.
    engine.register_fn("log_info", |text: &str| {
        log_line(tracing::Level::INFO, text)
    });
    engine.register_fn("log_warn", |text: &str| {
        log_line(tracing::Level::WARN, text)
    });

    // Control.
    engine.register_fn("reject", |reason: Dynamic| -> Fallible<()> {
        Err(Signal::Reject(reason.to_string()).into_error(Position::NONE))
    });
    engine.register_fn("reject", || -> Fallible<()> {
        Err(Signal::Reject("rejected by script".into()).into_error(Position::NONE))
    });
    engine.register_fn("route_to", route_to);
    engine.register_fn("route_to", |name: &str| {
        route_to(vec![Dynamic::from(name.to_owned())])
    });
    engine.register_fn("assert", assert_that);
    engine.register_fn(
        "assert_eq",
        |actual: Dynamic, expected: Dynamic| -> Fallible<()> {
            let same = actual.type_name() == expected.type_name()
                && actual.to_string() == expected.to_string();
            if same {
                Ok(())
            } else {
                Err(format!("assert_eq failed: {actual:?} != {expected:?}").into())
            }
        },
    );
    // Rhai's `sleep` would block the pipeline thread past every budget.
    // Registered on the engine itself, these shadow the standard package's versions.
    let no_sleep = || -> Fallible<()> { Err("sleep is not available in channel scripts".into()) };
    engine.register_fn("sleep", move |_seconds: INT| no_sleep());
    engine.register_fn("sleep", move |_seconds: rhai::FLOAT| no_sleep());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_precision() {
        for text in [
            "2024",
            "202405",
            "20240501",
            "2024050110",
            "202405011030",
            "20240501103000",
            "20240501103000.1",
            "20240501103000.1234",
            "20240501103000-0500",
            "20240501103000.25+0130",
            "2024050110+0000",
        ] {
            let t = Hl7Time::parse(text).unwrap();
            assert_eq!(t.to_hl7(), text);
        }
        let t = Hl7Time::parse("20240501103000-0500").unwrap();
        assert_eq!(t.unix_ms(), 1_714_577_400_000);
        assert_eq!(
            Hl7Time::parse("20240501").unwrap().unix_ms(),
            1_714_521_600_000
        );
    }

    #[test]
    fn rejects_bad_times() {
        for text in [
            "",
            "24",
            "2024050",
            "20240231",
            "20240501103000.",
            "2024x501",
            "20240501-05",
            "202405011030.5",
            "20240501103000+2400",
        ] {
            assert!(Hl7Time::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn shift_keeps_precision() {
        assert_eq!(shift_date("19600101", -1).unwrap(), "19591231");
        assert_eq!(shift_date("196001", 40).unwrap(), "196002");
        assert_eq!(
            shift_date("20240501103000-0500", 10).unwrap(),
            "20240511103000-0500"
        );
        assert_eq!(shift_date("", 10).unwrap(), "");
        assert!(shift_date("not a date", 1).is_err());
    }

    #[test]
    fn de_identification() {
        assert_eq!(mask("TEST^PAT IENT-1"), "****^*** ****-*");
        assert_eq!(keep_last("MRN12345", 3), "*****345");
        assert_eq!(keep_last("ab", 5), "ab");
        assert_eq!(salted_hash("s", "x").len(), 32);
        assert_ne!(salted_hash("s", "x"), salted_hash("t", "x"));
    }
}

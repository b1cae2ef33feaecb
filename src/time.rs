//! Instants and calendar dates without a time-zone database.
//!
//! Owns the conversion between the ISO-8601 text that transcripts and the
//! store use (`2025-06-08T11:00:11.669Z`, `…+00:00`, with or without a
//! fraction) and Unix milliseconds, plus the proleptic-Gregorian arithmetic
//! the burn maths needs (local day, days in a month). Pure: no clock is read
//! here except in [`now_ms`], and nothing here does I/O. Any thread may call it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds in one day.
pub const DAY_MS: i64 = 86_400_000;

/// The current instant in Unix milliseconds.
pub fn now_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Number of days in `month` of `year`.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
            if leap {
                29
            } else {
                28
            }
        }
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |acc, c| acc * 10 + (c - b'0') as i64))
}

/// Parses an ISO-8601 / RFC 3339 timestamp into Unix milliseconds.
///
/// Accepts `YYYY-MM-DD`, optionally followed by `T` or a space and
/// `HH:MM[:SS[.fff…]]`, optionally followed by `Z`, `+HH:MM`, `-HH:MM` or
/// `+HHMM`. A missing zone means UTC (that is how the store writes them).
/// Returns `None` for anything else; it never panics.
pub fn parse_ts_ms(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])? as u32;
    let day = digits(&b[8..10])? as u32;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * DAY_MS;
    let mut rest = &b[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    if rest[0] != b'T' && rest[0] != b't' && rest[0] != b' ' {
        return None;
    }
    rest = &rest[1..];
    if rest.len() < 5 || rest[2] != b':' {
        return None;
    }
    let hh = digits(&rest[0..2])?;
    let mm = digits(&rest[3..5])?;
    rest = &rest[5..];
    let mut ss = 0;
    if rest.first() == Some(&b':') {
        if rest.len() < 3 {
            return None;
        }
        ss = digits(&rest[1..3])?;
        rest = &rest[3..];
    }
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    ms += (hh * 3600 + mm * 60 + ss) * 1000;
    if rest.first() == Some(&b'.') || rest.first() == Some(&b',') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        // Milliseconds: first three digits, padded; finer digits truncated.
        let mut frac = 0;
        for i in 0..3 {
            frac = frac * 10
                + if i < n {
                    (rest[1 + i] - b'0') as i64
                } else {
                    0
                };
        }
        ms += frac;
        rest = &rest[1 + n..];
    }
    match rest {
        [] | [b'Z'] | [b'z'] => Some(ms),
        [sign @ (b'+' | b'-'), tail @ ..] => {
            let (oh, om) = match tail {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => {
                    (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?)
                }
                [h1, h2] => (digits(&[*h1, *h2])?, 0),
                _ => return None,
            };
            let off = (oh * 60 + om) * 60_000;
            Some(if *sign == b'+' { ms - off } else { ms + off })
        }
        _ => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SS.fff` (UTC) of an instant, without a zone suffix.
fn format_ms(ms: i64) -> String {
    let in_day = ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    let secs = in_day / 1000;
    let (hh, mm, ss) = (secs / 3600, (secs / 60) % 60, secs % 60);
    format!(
        "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:03}",
        in_day % 1000
    )
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`, the shape
/// Python's `datetime.isoformat()` gives upstream's envelope timestamps.
pub fn format_ts_utc(ms: i64) -> String {
    format!("{}000+00:00", format_ms(ms))
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.fffZ`, the shape
/// transcripts and the store use.
pub fn format_ts_z(ms: i64) -> String {
    format!("{}Z", format_ms(ms))
}

/// The `YYYY-MM-DD` UTC day of an instant (the store's `day` column).
pub fn utc_day(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{:04}-{:02}-{:02}", y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_seen_in_transcripts_and_the_store() {
        let z = parse_ts_ms("2025-06-08T11:00:11.669Z").unwrap();
        assert_eq!(format_ts_z(z), "2025-06-08T11:00:11.669Z");
        assert_eq!(parse_ts_ms("2025-06-08T11:00:11.669+00:00"), Some(z));
        assert_eq!(parse_ts_ms("2025-06-08T13:00:11.669+02:00"), Some(z));
        assert_eq!(parse_ts_ms("2025-06-08T06:30:11.669-0430"), Some(z));
        assert_eq!(parse_ts_ms("2025-06-08 11:00:11.669123"), Some(z));
        assert_eq!(parse_ts_ms("2025-06-08T11:00:11.6691234Z"), Some(z));
        assert_eq!(parse_ts_ms("2025-06-08T11:00Z"), Some(z - 11_669));
        assert_eq!(parse_ts_ms("1970-01-01"), Some(0));
    }

    #[test]
    fn rejects_malformed_text_without_panicking() {
        for bad in [
            "",
            "2025",
            "2025-13-01T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-06-08T25:00:00Z",
            "2025-06-08X11:00:00Z",
            "2025-06-08T11:00:00.Z",
            "2025-06-08T11:00:00+0",
            "not a date at all",
            "２０２５-06-08",
        ] {
            assert_eq!(parse_ts_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn instants_compare_as_instants_not_strings() {
        // As strings the first sorts after the second; as instants it is earlier.
        let a = parse_ts_ms("2025-06-08T12:00:00+02:00").unwrap();
        let b = parse_ts_ms("2025-06-08T11:00:00Z").unwrap();
        assert!(a < b);
    }

    #[test]
    fn civil_round_trip_and_month_lengths() {
        for days in [-800_000, -1, 0, 1, 19_000, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(2025, 5), 31);
        assert_eq!(format_ts_utc(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(
            utc_day(parse_ts_ms("2025-12-31T23:59:59.999Z").unwrap()),
            "2025-12-31"
        );
    }
}

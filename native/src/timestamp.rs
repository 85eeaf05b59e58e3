//! The feed's UTC timestamps (`Utc` of `CarData.z`, `Timestamp` of `Position.z`).
//!
//! Accepted: `YYYY-MM-DDTHH:MM:SS`, then optionally `.` and 1–7 fractional digits, then
//! optionally `Z`; no zone means UTC too. ASCII digits only, year 0001–9999, a real
//! calendar day, hours 00–23, minutes and seconds 00–59 (no leap second). Everything else
//! (lower-case `t`/`z`, a space separator, offsets such as `+00:00`, a bare `.`, 8+
//! fractional digits, surrounding whitespace) is rejected.

/// Milliseconds since the Unix epoch of a feed timestamp; fractional seconds beyond the
/// millisecond are truncated. `None` when `text` is not such a timestamp.
#[must_use]
pub fn parse_utc_ms(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let (
        &[y1, y2, y3, y4, b'-', mo1, mo2, b'-', d1, d2, b'T', h1, h2, b':', mi1, mi2, b':', s1, s2],
        rest,
    ) = bytes.split_first_chunk::<19>()?
    else {
        return None;
    };
    let rest = rest.strip_suffix(b"Z").unwrap_or(rest);
    let millis = match rest {
        [] => 0,
        [b'.', fraction @ ..]
            if (1..=7).contains(&fraction.len()) && fraction.iter().all(u8::is_ascii_digit) =>
        {
            // The first three digits, right-padded with zeros; the rest is truncated.
            fraction
                .iter()
                .chain(b"000")
                .take(3)
                .fold(0, |millis, &b| millis * 10 + i64::from(b - b'0'))
        }
        _ => return None,
    };
    let year = number(&[y1, y2, y3, y4])?;
    let month = number(&[mo1, mo2])?;
    let day = number(&[d1, d2])?;
    let hour = number(&[h1, h2])?;
    let minute = number(&[mi1, mi2])?;
    let second = number(&[s1, s2])?;
    if year == 0
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = ((days * 24 + hour) * 60 + minute) * 60 + second;
    Some(seconds * 1000 + millis)
}

fn digit(b: u8) -> Option<i64> {
    b.is_ascii_digit().then(|| i64::from(b - b'0'))
}

fn number(digits: &[u8]) -> Option<i64> {
    digits
        .iter()
        .try_fold(0, |acc, &b| Some(acc * 10 + digit(b)?))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_timestamps() {
        // 2023-05-26T15:31:20Z = 1_685_115_080 s.
        assert_eq!(
            parse_utc_ms("2023-05-26T15:31:20.1234567Z"),
            Some(1_685_115_080_123)
        );
        assert_eq!(
            parse_utc_ms("2023-05-26T15:31:20.9999999Z"),
            Some(1_685_115_080_999)
        );
        assert_eq!(
            parse_utc_ms("2023-05-26T15:31:20.12Z"),
            Some(1_685_115_080_120)
        );
        assert_eq!(
            parse_utc_ms("2023-05-26T15:31:20.5"),
            Some(1_685_115_080_500)
        );
        assert_eq!(
            parse_utc_ms("2023-05-26T15:31:20Z"),
            Some(1_685_115_080_000)
        );
        assert_eq!(parse_utc_ms("2023-05-26T15:31:20"), Some(1_685_115_080_000));
    }

    #[test]
    fn calendar() {
        assert_eq!(parse_utc_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc_ms("1969-12-31T23:59:59.999Z"), Some(-1));
        assert_eq!(
            parse_utc_ms("0001-01-01T00:00:00Z"),
            Some(-62_135_596_800_000)
        );
        assert_eq!(
            parse_utc_ms("9999-12-31T23:59:59.9999999Z"),
            Some(253_402_300_799_999)
        );
        assert_eq!(parse_utc_ms("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(
            parse_utc_ms("2024-02-29T12:00:00Z"),
            Some(1_709_208_000_000)
        );
        for bad in [
            "1900-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-04-31T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-00-01T00:00:00Z",
            "2023-01-00T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2023-01-01T24:00:00Z",
            "2023-01-01T00:60:00Z",
            "2023-01-01T00:00:60Z",
        ] {
            assert_eq!(parse_utc_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn rejected_spellings() {
        for bad in [
            "",
            "2023-05-26",
            "2023-05-26T15:31:20.",
            "2023-05-26T15:31:20.Z",
            "2023-05-26T15:31:20.12345678Z",
            "2023-05-26T15:31:20.1x",
            "2023-05-26T15:31:20.12x4Z",
            "2023-05-26T15:31:20ZZ",
            "2023-05-26T15:31:20z",
            "2023-05-26t15:31:20Z",
            "2023-05-26 15:31:20Z",
            "2023-05-26T15:31:20+00:00",
            " 2023-05-26T15:31:20Z",
            "2023-05-26T15:31:20Z ",
            "+023-05-26T15:31:20Z",
            "2023-5-26T15:31:20Z",
            "2023-05-26T15:31:2٣Z",
            "2023-05-26T15:31:20.١Z",
        ] {
            assert_eq!(parse_utc_ms(bad), None, "{bad:?}");
        }
    }
}

//! Splitting of `{Topic}.jsonStream` archive files into timestamped messages.
//!
//! A file is UTF-8 (the first line may start with a byte-order mark) with CRLF or LF line
//! ends; each message is one line, `HH:MM:SS.mmm` (offset from the stream's start)
//! immediately followed by a JSON object. The JSON is passed on as text, never parsed.

use std::borrow::Cow;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Length of the `HH:MM:SS.mmm` prefix.
pub const TIMESTAMP_LEN: usize = 12;

/// One non-blank line of a `.jsonStream` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    /// 1-based physical line number (blank lines count).
    pub number: usize,
    /// Offset from the stream's start in milliseconds, when the line starts with a valid
    /// `HH:MM:SS.mmm` and is valid UTF-8.
    pub offset_ms: Option<u32>,
    /// The rest of the line after the timestamp, or the whole line when there is none
    /// (lossily decoded when the line is not valid UTF-8).
    pub text: Cow<'a, str>,
}

/// ASCII whitespace as Python's `bytes.strip()` knows it (incl. vertical tab and form feed).
const fn is_blank_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// Parses a leading `HH:MM:SS.mmm` (minutes and seconds below 60) into milliseconds.
#[must_use]
pub fn parse_offset(line: &[u8]) -> Option<u32> {
    let &[h1, h2, b':', m1, m2, b':', s1, s2, b'.', f1, f2, f3, ..] = line else {
        return None;
    };
    let digit = |b: u8| b.is_ascii_digit().then(|| u32::from(b - b'0'));
    let hours = digit(h1)? * 10 + digit(h2)?;
    let minutes = digit(m1)? * 10 + digit(m2)?;
    let seconds = digit(s1)? * 10 + digit(s2)?;
    let millis = digit(f1)? * 100 + digit(f2)? * 10 + digit(f3)?;
    if minutes >= 60 || seconds >= 60 {
        return None;
    }
    Some(((hours * 60 + minutes) * 60 + seconds) * 1000 + millis)
}

/// Position of the first `\n`.
///
/// Tests whole 32-byte blocks without an early exit, which the compiler vectorises; this
/// is several times faster than a byte-by-byte search on the archive's ~100-byte lines.
fn find_newline(haystack: &[u8]) -> Option<usize> {
    const BLOCK: usize = 32;
    let mut start = 0;
    for block in haystack.chunks_exact(BLOCK) {
        if block
            .iter()
            .fold(0u8, |found, &b| found | u8::from(b == b'\n'))
            != 0
        {
            break;
        }
        start += BLOCK;
    }
    haystack[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| start + i)
}

/// The `\n`-separated pieces of `data`, like `data.split(|&b| b == b'\n')`.
fn physical_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        if let Some(end) = find_newline(current) {
            rest = Some(&current[end + 1..]);
            Some(&current[..end])
        } else {
            rest = None;
            Some(current)
        }
    })
}

/// Classifies one physical line (already stripped of BOM and `\r`).
fn parse_line(number: usize, raw: &[u8]) -> Line<'_> {
    match std::str::from_utf8(raw) {
        Ok(text) => match parse_offset(raw) {
            // The timestamp is ASCII, so `TIMESTAMP_LEN` is a char boundary.
            Some(ms) => Line {
                number,
                offset_ms: Some(ms),
                text: Cow::Borrowed(&text[TIMESTAMP_LEN..]),
            },
            None => Line {
                number,
                offset_ms: None,
                text: Cow::Borrowed(text),
            },
        },
        Err(_) => Line {
            number,
            offset_ms: None,
            text: String::from_utf8_lossy(raw),
        },
    }
}

/// Splits a whole `.jsonStream` file into its non-blank lines.
///
/// Lines end at `\n`; one trailing `\r` is dropped, as is a UTF-8 BOM at the start of the
/// first line. Lines of ASCII whitespace only are skipped (their numbers are not reused).
#[must_use]
pub fn split_json_stream(data: &[u8]) -> Vec<Line<'_>> {
    // Messages are ~100 bytes to a few KiB: a cheap guess avoids most regrowth.
    let mut lines = Vec::with_capacity(data.len() / 128 + 1);
    lines.extend(json_stream_lines(data));
    lines
}

/// The lines of [`split_json_stream`], one at a time.
pub fn json_stream_lines(data: &[u8]) -> impl Iterator<Item = Line<'_>> {
    physical_lines(data).enumerate().filter_map(|(index, raw)| {
        let raw = if index == 0 {
            raw.strip_prefix(UTF8_BOM).unwrap_or(raw)
        } else {
            raw
        };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(|&b| is_blank_byte(b)) {
            return None;
        }
        Some(parse_line(index + 1, raw))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triples(data: &[u8]) -> Vec<(usize, Option<u32>, String)> {
        split_json_stream(data)
            .into_iter()
            .map(|l| (l.number, l.offset_ms, l.text.into_owned()))
            .collect()
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset(b"00:00:00.000"), Some(0));
        assert_eq!(parse_offset(b"00:00:01.234{}"), Some(1234));
        assert_eq!(parse_offset(b"01:02:03.004x"), Some(3_723_004));
        assert_eq!(parse_offset(b"99:59:59.999"), Some(359_999_999));
    }

    #[test]
    fn bad_timestamps() {
        for bad in [
            &b""[..],
            b"00:00:00.00",   // too short
            b"0:00:00.000{}", // one-digit hour
            b"00:60:00.000{}",
            b"00:00:60.000{}",
            b"00-00:00.000{}",
            b"00:00:00,000{}",
            b"0a:00:00.000{}",
            b"00:00:00.0x0{}",
            b" 00:00:00.000{}",
            "00:00:00.\u{661}00{}".as_bytes(), // a non-ASCII digit
        ] {
            assert_eq!(parse_offset(bad), None, "{bad:?}");
        }
        assert_eq!(
            triples(b"00:61:00.000{}\n"),
            vec![(1, None, "00:61:00.000{}".to_owned())]
        );
    }

    #[test]
    fn bom_and_crlf() {
        let data = b"\xEF\xBB\xBF00:00:01.000{\"a\":1}\r\n00:00:02.500{\"b\":2}\r\n";
        assert_eq!(
            triples(data),
            vec![
                (1, Some(1000), "{\"a\":1}".to_owned()),
                (2, Some(2500), "{\"b\":2}".to_owned()),
            ]
        );
    }

    #[test]
    fn lf_without_bom_and_without_final_newline() {
        let data = b"00:00:01.000{}\n00:00:02.000[1]";
        assert_eq!(
            triples(data),
            vec![
                (1, Some(1000), "{}".to_owned()),
                (2, Some(2000), "[1]".to_owned())
            ]
        );
    }

    #[test]
    fn bom_only_stripped_on_first_line() {
        let data = b"\xEF\xBB\xBF{}\n\xEF\xBB\xBF{}";
        assert_eq!(
            triples(data),
            vec![
                (1, None, "{}".to_owned()),
                (2, None, "\u{feff}{}".to_owned())
            ]
        );
    }

    #[test]
    fn blank_lines_keep_physical_numbers() {
        let data = b"\xEF\xBB\xBF\r\n \t\x0b\x0c\r\n\n00:00:00.001x\r\r\n";
        // Only one `\r` is stripped; the other is part of the text.
        assert_eq!(triples(data), vec![(4, Some(1), "x\r".to_owned())]);
    }

    #[test]
    fn timestamp_alone_and_rest_kept_verbatim() {
        assert_eq!(
            triples(b"00:00:00.500\n00:00:00.600  {\"x\": 1} \n"),
            vec![
                (1, Some(500), String::new()),
                (2, Some(600), "  {\"x\": 1} ".to_owned()),
            ]
        );
    }

    #[test]
    fn invalid_utf8_is_lossy_and_untimed() {
        let data = b"00:00:01.000{\"a\":\"\xff\"}\n00:00:02.000{}";
        assert_eq!(
            triples(data),
            vec![
                (1, None, "00:00:01.000{\"a\":\"\u{fffd}\"}".to_owned()),
                (2, Some(2000), "{}".to_owned()),
            ]
        );
    }

    #[test]
    fn borrows_valid_lines() {
        let lines = split_json_stream(b"00:00:01.000{}\nplain");
        assert!(lines.iter().all(|l| matches!(l.text, Cow::Borrowed(_))));
    }

    #[test]
    fn physical_lines_split_like_std() {
        let long = [b"x".repeat(100), b"\n".to_vec(), b"y".repeat(31)].concat();
        for data in [
            &b""[..],
            b"\n",
            b"a",
            b"a\n",
            b"\n\na\n\nb",
            &long,
            &b"\n".repeat(70),
        ] {
            let ours: Vec<&[u8]> = physical_lines(data).collect();
            let std: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
            assert_eq!(ours, std);
        }
        for at in 0..100 {
            let mut data = vec![b'.'; 100];
            data[at] = b'\n';
            assert_eq!(find_newline(&data), Some(at));
        }
        assert_eq!(find_newline(&[b'.'; 100]), None);
    }

    #[test]
    fn empty_input() {
        assert!(split_json_stream(b"").is_empty());
        assert!(split_json_stream(b"\xEF\xBB\xBF").is_empty());
        assert!(split_json_stream(b"\r\n\r\n").is_empty());
    }
}

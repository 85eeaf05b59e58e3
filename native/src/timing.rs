//! The `TimingData` digest: of each message, only what the lap fitter
//! (`f1daemon.feed.laps.LapFitter`) reads, as typed values, plus each driver's latest
//! `GapToLeader`.
//!
//! Most `TimingData` messages only move `GapToLeader` / `IntervalToPositionAhead` or a
//! sector's segment statuses; the digest drops them here, without building any Python
//! object, and keeps the one thing they matter for: each driver's latest gap.
//!
//! The rules, precisely (`tests/native_reference.py` implements the same in Python):
//!
//! * a message is a JSON object (anything else, or invalid JSON, is an error; JSON as
//!   `orjson.loads` accepts it: nesting at most 1024 deep, no lone surrogates, no number
//!   that is infinite as an `f64`; a repeated key keeps its last value at the position of
//!   its first occurrence, at every level);
//! * `session_part`: its top-level `SessionPart` if that is a JSON integer fitting `i64`
//!   (`-0` is 0, as `orjson` reads it; not a float, not a boolean);
//! * its `Lines` is an object keyed by driver; only keys of 1–5 ASCII digits count (the
//!   driver is their value: `"01"` is driver 1), and only values that are objects (an
//!   entry); `Lines` of another type has no entries;
//! * of an entry, the digest reads ([`Entry`]): `NumberOfLaps` (an integer fitting
//!   `i64`), `InPit`, `PitOut` (booleans), `Position` (a string of 1–5 ASCII digits);
//!   of `LastLapTime` (an object) its `Value` (a time, see [`parse_time_ms`]) and its
//!   `PersonalFastest` (a boolean); of `Sectors` (an array: items 0–2, or an object:
//!   keys `"0"`, `"1"`, `"2"`) each sector's (an object's) `Value` as a time; of `Speeds`
//!   (an object) each trap's (`I1`, `I2`, `FL`, `ST`, objects) `Value` as a string of
//!   1–5 ASCII digits. A value of another type (or absent) reads as nothing. The entry is
//!   *kept* iff any of these is something;
//! * the digest remembers each driver's latest `GapToLeader` and
//!   `IntervalToPositionAhead.Value` (of an object): a string replaces the remembered one
//!   (the empty string forgets it), a value of another type changes nothing; every entry
//!   counts, kept or not. A kept entry gets the gap and interval remembered once the
//!   whole message is applied;
//! * the message's *gap changes*: each driver whose remembered gap or interval the
//!   message changed, in the order of their first entry, with both as remembered after
//!   the whole message;
//! * a message is *relevant* iff it keeps an entry, has a `session_part` or gap changes.
//!   Its digest: the `session_part`, the kept entries in message order, and the gap
//!   changes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as _;
use serde_json::value::RawValue;

use crate::error::Error;
use crate::jsonstream;
use crate::shape::{check_skipped, fields, Checked, KeyStr, Lenient, Shape, Skip};

// Nesting depth of each level of a message (the top-level object is at 1).
const MESSAGE_DEPTH: usize = 1;
const LINES_DEPTH: usize = 2;
const ENTRY_DEPTH: usize = 3;
/// `Sectors`, `Speeds`, `LastLapTime` and the other values of an entry.
const FIELD_DEPTH: usize = 4;
/// A sector or a speed trap.
const SECTOR_DEPTH: usize = 5;

/// The topic, as errors name it.
pub const TOPIC: &str = "TimingData";

/// The speed traps read, in output order.
pub const TRAPS: [&str; 4] = ["I1", "I2", "FL", "ST"];

/// One JSON value kept as its text (already checked as `orjson.loads` would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// The value if it is a JSON string (escapes resolved).
    fn as_str(self) -> Option<Cow<'a, str>> {
        let inner = self.0.strip_prefix('"')?.strip_suffix('"')?;
        if inner.contains('\\') {
            // Checked JSON: decoding cannot fail.
            serde_json::from_str::<String>(self.0).ok().map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(inner))
        }
    }

    /// The value if it is a JSON integer that fits `i64` (`-0` is 0, as for `orjson`).
    fn as_int(self) -> Option<i64> {
        let text = self.0;
        let number = text.starts_with(|c: char| c == '-' || c.is_ascii_digit());
        if number && !text.contains(['.', 'e', 'E']) {
            text.parse().ok()
        } else {
            None
        }
    }

    /// The value if it is a JSON boolean.
    fn as_bool(self) -> Option<bool> {
        match self.0 {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// The value if it is a string of 1–5 ASCII digits: their number.
    fn as_digits(self) -> Option<u32> {
        parse_digits(&self.as_str()?)
    }

    /// The value if it is a string that [`parse_time_ms`] reads.
    fn as_time_ms(self) -> Option<i64> {
        parse_time_ms(&self.as_str()?)
    }
}

/// The number of 1–5 ASCII digits (a driver key, a position, a speed).
#[must_use]
pub fn parse_digits(text: &str) -> Option<u32> {
    let digits = (1..=5).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| text.bytes().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
}

/// Milliseconds of a feed time (`f1daemon.feed.timing.parse_time_ms`): ASCII whitespace
/// (space, `\t`, `\n`, `\r`, `\x0b`, `\x0c`) stripped from both ends, then
/// `^(?:([0-9]+):)?([0-9]+)(?:\.([0-9]{1,3}))?$` (ASCII digits; minutes and seconds at
/// most 6 digits each): `(minutes * 60 + seconds) * 1000 + millis`, the fraction padded
/// with zeros on the right to 3 digits. Anything else: `None`.
#[must_use]
pub fn parse_time_ms(text: &str) -> Option<i64> {
    fn number(digits: &str, max: usize) -> Option<i64> {
        let ok = (1..=max).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| digits.bytes().fold(0, |n, b| n * 10 + i64::from(b - b'0')))
    }
    let text = text.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (minutes, rest) = match text.split_once(':') {
        Some((minutes, rest)) => (number(minutes, 6)?, rest),
        None => (0, text),
    };
    let (seconds, millis) = match rest.split_once('.') {
        Some((seconds, fraction)) => {
            let millis = number(fraction, 3)?;
            let scale = [100, 10, 1][fraction.len() - 1];
            (seconds, millis * scale)
        }
        None => (rest, 0),
    };
    let seconds = number(seconds, 6)?;
    Some((minutes * 60 + seconds) * 1000 + millis)
}

/// What the digest keeps of one driver's entry (the tuple `TimingDigest.feed` returns).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// The `Lines` key's number.
    pub driver: u32,
    /// `NumberOfLaps`.
    pub number_of_laps: Option<i64>,
    /// `InPit`.
    pub in_pit: Option<bool>,
    /// `PitOut`.
    pub pit_out: Option<bool>,
    /// `Position`.
    pub position: Option<u32>,
    /// `LastLapTime.Value`, in milliseconds.
    pub lap_time_ms: Option<i64>,
    /// `LastLapTime.PersonalFastest`.
    pub personal_fastest: Option<bool>,
    /// `Sectors` 0, 1, 2: `Value`, in milliseconds.
    pub sectors_ms: [Option<i64>; 3],
    /// `Speeds` of each trap of [`TRAPS`]: `Value`.
    pub speeds: [Option<u32>; 4],
    /// The driver's latest `GapToLeader` (filled in by the digest).
    pub gap_to_leader: Option<String>,
    /// The driver's latest `IntervalToPositionAhead.Value` (filled in by the digest).
    pub interval_to_position_ahead: Option<String>,
}

impl Entry {
    /// Whether anything the lap fitter reads is there (the gap aside).
    #[must_use]
    pub fn is_kept(&self) -> bool {
        self.number_of_laps.is_some()
            || self.in_pit.is_some()
            || self.pit_out.is_some()
            || self.position.is_some()
            || self.lap_time_ms.is_some()
            || self.personal_fastest.is_some()
            || self.sectors_ms.iter().any(Option::is_some)
            || self.speeds.iter().any(Option::is_some)
    }
}

/// A driver whose remembered gap or interval a message changed: both after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapChange {
    /// The driver.
    pub driver: u32,
    /// The remembered `GapToLeader`.
    pub gap_to_leader: Option<String>,
    /// The remembered `IntervalToPositionAhead.Value`.
    pub interval_to_position_ahead: Option<String>,
}

/// The digest of a relevant message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digest {
    /// `SessionPart`, when it is an integer.
    pub session_part: Option<i64>,
    /// The kept entries, in message order.
    pub entries: Vec<Entry>,
    /// The gap changes, in the order of the drivers' first entries.
    pub gaps: Vec<GapChange>,
}

/// An entry as read, before the digest's state is applied.
#[derive(Debug, Default)]
struct ParsedEntry<'a> {
    kept: Entry,
    /// `GapToLeader` if it is a string.
    gap: Option<Cow<'a, str>>,
    /// `IntervalToPositionAhead.Value` if it is a string.
    interval: Option<Cow<'a, str>>,
}

/// A message as read.
#[derive(Debug, Default)]
struct Message<'a> {
    session_part: Option<i64>,
    /// `Lines` entries of digit keys (`None`: not an object), keys deduplicated.
    lines: Vec<(Cow<'a, str>, Option<ParsedEntry<'a>>)>,
}

/// The digest's state: each driver's latest `GapToLeader` and interval to the car ahead.
#[derive(Debug, Clone, Default)]
pub struct TimingDigest {
    gaps: HashMap<u32, String>,
    intervals: HashMap<u32, String>,
}

impl TimingDigest {
    /// A digest that has seen nothing yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Digests one message (see the module documentation): its digest if it is relevant.
    ///
    /// # Errors
    ///
    /// The reason the text is not a JSON object (the state is then unchanged).
    pub fn feed(&mut self, text: &str) -> Result<Option<Digest>, String> {
        if let Some(updates) = gap_only(text) {
            let mut changed = Vec::new();
            for (key, gap, interval) in updates.iter() {
                if let Some(driver) = parse_digits(key) {
                    if self.remember(driver, gap, interval) && !changed.contains(&driver) {
                        changed.push(driver);
                    }
                }
            }
            let gaps = self.changes(&changed);
            return Ok((!gaps.is_empty()).then_some(Digest {
                session_part: None,
                entries: Vec::new(),
                gaps,
            }));
        }
        let message = parse_message(text)?;
        Ok(self.apply(message))
    }

    /// The latest `GapToLeader` remembered for `driver`.
    #[must_use]
    pub fn gap_to_leader(&self, driver: u32) -> Option<&str> {
        self.gaps.get(&driver).map(String::as_str)
    }

    /// Remembers a driver's gap and interval where given; whether either changed.
    fn remember(&mut self, driver: u32, gap: Option<&str>, interval: Option<&str>) -> bool {
        let gap_changed = gap.is_some_and(|gap| remember_in(&mut self.gaps, driver, gap));
        let interval_changed =
            interval.is_some_and(|interval| remember_in(&mut self.intervals, driver, interval));
        gap_changed || interval_changed
    }

    /// The gap changes of these drivers, as remembered now.
    fn changes(&self, drivers: &[u32]) -> Vec<GapChange> {
        drivers
            .iter()
            .map(|&driver| GapChange {
                driver,
                gap_to_leader: self.gaps.get(&driver).cloned(),
                interval_to_position_ahead: self.intervals.get(&driver).cloned(),
            })
            .collect()
    }

    fn apply(&mut self, message: Message<'_>) -> Option<Digest> {
        let mut entries = Vec::new();
        let mut changed = Vec::new();
        for (_, entry) in message.lines {
            let Some(ParsedEntry {
                kept,
                gap,
                interval,
            }) = entry
            else {
                continue;
            };
            let driver = kept.driver;
            if self.remember(driver, gap.as_deref(), interval.as_deref())
                && !changed.contains(&driver)
            {
                changed.push(driver);
            }
            if kept.is_kept() {
                entries.push(kept);
            }
        }
        for entry in &mut entries {
            entry.gap_to_leader = self.gaps.get(&entry.driver).cloned();
            entry.interval_to_position_ahead = self.intervals.get(&entry.driver).cloned();
        }
        let gaps = self.changes(&changed);
        (!entries.is_empty() || message.session_part.is_some() || !gaps.is_empty()).then_some(
            Digest {
                session_part: message.session_part,
                entries,
                gaps,
            },
        )
    }
}

/// Remembers `value` for `driver` in `map` (the empty string forgets); whether it changed.
fn remember_in(map: &mut HashMap<u32, String>, driver: u32, value: &str) -> bool {
    if value.is_empty() {
        map.remove(&driver).is_some()
    } else if let Some(known) = map.get_mut(&driver) {
        if known == value {
            return false;
        }
        known.clear();
        known.push_str(value);
        true
    } else {
        map.insert(driver, value.to_owned());
        true
    }
}

/// One line of [`digest_stream`]'s result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLine {
    /// 1-based physical line number.
    pub number: usize,
    /// The line's offset in milliseconds (`None`: undated, not digested).
    pub offset_ms: Option<u32>,
    /// The digest of a relevant message.
    pub digest: Option<Digest>,
    /// Why the message is not a JSON object (the error [`TimingDigest::feed`] raises).
    pub error: Option<String>,
}

/// Digests a whole `TimingData.jsonStream` file with a fresh [`TimingDigest`].
///
/// The file is split as [`jsonstream::split_json_stream`] splits it; each dated line is
/// fed in order. Returned, in order: the first non-blank line (the topic's keyframe,
/// whatever it holds), every relevant line (with its digest), every undated line
/// (`offset_ms`, `digest` and `error` all `None`: not fed) and every line that is not a
/// JSON object (with the error).
#[must_use]
pub fn digest_stream(data: &[u8]) -> Vec<StreamLine> {
    let mut digest = TimingDigest::new();
    let mut result = Vec::new();
    for (index, line) in jsonstream::json_stream_lines(data).enumerate() {
        let number = line.number;
        // Dated lines are valid UTF-8, borrowed from `data`.
        let (Some(offset_ms), Cow::Borrowed(text)) = (line.offset_ms, line.text) else {
            result.push(StreamLine {
                number,
                offset_ms: None,
                digest: None,
                error: None,
            });
            continue;
        };
        let (digest, error) = match digest.feed(text) {
            Ok(None) if index > 0 => continue,
            Ok(digest) => (digest, None),
            Err(reason) => (None, Some(json_error(reason).to_string())),
        };
        result.push(StreamLine {
            number,
            offset_ms: Some(offset_ms),
            digest,
            error,
        });
    }
    result
}

/// The error for a message that is not a JSON object.
#[must_use]
pub fn json_error(reason: String) -> Error {
    Error::Json {
        topic: TOPIC,
        reason,
    }
}

// --- the fast path ---------------------------------------------------------------------

/// Most entries of a [`GapUpdates`].
const FAST_ENTRIES: usize = 4;
/// Deepest nesting the fast path reads (the message is at 1).
const FAST_DEPTH: usize = 6;

/// The `GapToLeader` and interval of each entry of a message without anything else the
/// digest keeps.
#[derive(Debug, Default)]
struct GapUpdates<'a> {
    len: usize,
    /// `(driver, the entry's last GapToLeader if it is a string, the entry's last
    /// IntervalToPositionAhead.Value if it is a string)`.
    entries: [(&'a str, Option<&'a str>, Option<&'a str>); FAST_ENTRIES],
}

impl<'a> GapUpdates<'a> {
    fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>, Option<&'a str>)> + '_ {
        self.entries[..self.len].iter().copied()
    }
}

/// Reads the commonest messages — `{"Lines":{"<driver>":{...}}}` moving only gaps,
/// intervals and the like — without `serde_json`, several times faster.
///
/// Only a strict subset of JSON is read here, where validity is simple: no whitespace,
/// strings and keys without escapes or control characters, `true`, `false`, `null`,
/// integers of at most 18 digits, objects (no arrays) at most [`FAST_DEPTH`] deep; the
/// one top-level key `Lines`, at most [`FAST_ENTRIES`] entries with distinct keys, each
/// an object without any key the digest keeps but `GapToLeader` and
/// `IntervalToPositionAhead`. So a message read here is valid JSON whose only effect is
/// on the remembered gaps and intervals. Anything else returns `None`, for the full
/// parser.
fn gap_only(text: &str) -> Option<GapUpdates<'_>> {
    let mut scan = Scan { text, pos: 0 };
    let mut gaps = GapUpdates::default();
    scan.eat(b'{')?;
    (scan.string()? == "Lines").then_some(())?;
    scan.eat(b':')?;
    scan.eat(b'{')?;
    if scan.eat(b'}').is_none() {
        loop {
            let driver = scan.string()?;
            scan.eat(b':')?;
            scan.eat(b'{')?;
            let (mut gap, mut interval) = (None, None);
            if scan.eat(b'}').is_none() {
                loop {
                    let key = scan.string()?;
                    scan.eat(b':')?;
                    match EntryField::from_key(key) {
                        Some(EntryField::GapToLeader) => {
                            gap = match scan.value(ENTRY_DEPTH + 1)? {
                                FastValue::Str(text) => Some(text),
                                FastValue::Other => None,
                            };
                        }
                        Some(EntryField::IntervalToPositionAhead) => {
                            interval = match scan.value_of_object(ENTRY_DEPTH + 1)? {
                                FastValue::Str(text) => Some(text),
                                FastValue::Other => None,
                            };
                        }
                        Some(_) => return None,
                        None => {
                            scan.value(ENTRY_DEPTH + 1)?;
                        }
                    }
                    if scan.eat(b',').is_none() {
                        scan.eat(b'}')?;
                        break;
                    }
                }
            }
            if gaps.len == FAST_ENTRIES || gaps.iter().any(|(seen, _, _)| seen == driver) {
                return None; // many entries, or a repeated key: left to the full parser
            }
            gaps.entries[gaps.len] = (driver, gap, interval);
            gaps.len += 1;
            if scan.eat(b',').is_none() {
                scan.eat(b'}')?;
                break;
            }
        }
    }
    scan.eat(b'}')?;
    (scan.pos == text.len()).then_some(gaps)
}

/// A value the fast path read.
enum FastValue<'a> {
    /// A string (without escapes: its text is its value).
    Str(&'a str),
    /// Any other value.
    Other,
}

/// A cursor over the fast path's text.
struct Scan<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scan<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// A string without escapes or control characters; its contents.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let length = self.text.as_bytes()[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        self.pos = start + length;
        self.eat(b'"')?;
        // Quotes are ASCII: both ends are char boundaries.
        Some(&self.text[start..start + length])
    }

    /// A value of the subset at nesting `depth` (`None`: outside the subset).
    fn value(&mut self, depth: usize) -> Option<FastValue<'a>> {
        match self.peek()? {
            b'"' => return self.string().map(FastValue::Str),
            b't' => self.literal("true")?,
            b'f' => self.literal("false")?,
            b'n' => self.literal("null")?,
            b'-' | b'0'..=b'9' => self.integer()?,
            b'{' if depth < FAST_DEPTH => {
                self.pos += 1;
                if self.eat(b'}').is_none() {
                    loop {
                        self.string()?;
                        self.eat(b':')?;
                        self.value(depth + 1)?;
                        if self.eat(b',').is_none() {
                            self.eat(b'}')?;
                            break;
                        }
                    }
                }
            }
            _ => return None,
        }
        Some(FastValue::Other)
    }

    /// A value of the subset at nesting `depth`: `Str` of its `Value` if it is an object
    /// whose (last) `Value` is a string, `Other` for any other value.
    fn value_of_object(&mut self, depth: usize) -> Option<FastValue<'a>> {
        if self.peek()? != b'{' || depth >= FAST_DEPTH {
            self.value(depth)?;
            return Some(FastValue::Other);
        }
        self.pos += 1;
        let mut value = FastValue::Other;
        if self.eat(b'}').is_none() {
            loop {
                let key = self.string()?;
                self.eat(b':')?;
                let item = self.value(depth + 1)?;
                if key == "Value" {
                    value = item;
                }
                if self.eat(b',').is_none() {
                    self.eat(b'}')?;
                    break;
                }
            }
        }
        Some(value)
    }

    fn literal(&mut self, literal: &str) -> Option<()> {
        let end = self.pos + literal.len();
        (self.text.as_bytes().get(self.pos..end)? == literal.as_bytes()).then(|| self.pos = end)
    }

    /// `-?(0|[1-9][0-9]*)` with at most 18 digits; a fraction or exponent is outside the
    /// subset (the byte after the integer must then be a `,` or `}`, which it is not).
    fn integer(&mut self) -> Option<()> {
        self.eat(b'-');
        let digits = self.text.as_bytes()[self.pos..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let first = self.peek()?;
        if digits == 0 || digits > 18 || (first == b'0' && digits > 1) {
            return None;
        }
        self.pos += digits;
        Some(())
    }
}

// --- parsing ---------------------------------------------------------------------------

/// Parses one message.
fn parse_message(text: &str) -> Result<Message<'_>, String> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let message = (&mut deserializer)
        .deserialize_any(MessageVisitor)
        .map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    Ok(message)
}

/// Any value, kept as its checked text.
#[derive(Clone, Copy)]
struct RawSeed {
    depth: usize,
}

impl RawSeed {
    fn at(depth: usize) -> Self {
        Self { depth }
    }
}

impl<'de> DeserializeSeed<'de> for RawSeed {
    type Value = Raw<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw<'de>, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        check_skipped(raw.get(), self.depth).map_err(de::Error::custom)?;
        Ok(Raw(raw.get()))
    }
}

/// Values by object key, a repeated key keeping its last value at its first position.
struct Keyed<'a, T> {
    items: Vec<(Cow<'a, str>, T)>,
    /// Built only for large objects, where linear searches would be quadratic.
    index: HashMap<Cow<'a, str>, usize>,
}

impl<'a, T> Keyed<'a, T> {
    /// Objects with more keys than this index them with a hash map to find repeats.
    const LINEAR_SEARCH_KEYS: usize = 32;

    fn new() -> Self {
        Self {
            items: Vec::new(),
            index: HashMap::new(),
        }
    }

    fn insert(&mut self, key: Cow<'a, str>, value: T) {
        let seen = if self.items.len() < Self::LINEAR_SEARCH_KEYS {
            self.items.iter().position(|(k, _)| *k == key)
        } else {
            if self.index.is_empty() {
                let keys = self.items.iter().enumerate();
                self.index.extend(keys.map(|(i, (k, _))| (k.clone(), i)));
            }
            self.index.get(&key).copied()
        };
        if let Some(i) = seen {
            self.items[i].1 = value;
        } else {
            if !self.index.is_empty() {
                self.index.insert(key.clone(), self.items.len());
            }
            self.items.push((key, value));
        }
    }
}

/// The top-level object; anything else is a (serde) error.
struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TimingData object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message<'de>, A::Error> {
        let mut message = Message::default();
        let known = |key: &str| match key {
            "SessionPart" => Some(true),
            "Lines" => Some(false),
            _ => None,
        };
        fields(&mut map, known, MESSAGE_DEPTH, |is_session_part, map| {
            if is_session_part {
                message.session_part = map.next_value_seed(RawSeed::at(LINES_DEPTH))?.as_int();
            } else {
                message.lines = map
                    .next_value_seed(Lenient(LinesShape))?
                    .unwrap_or_default();
            }
            Ok(())
        })?;
        Ok(message)
    }
}

/// `Lines`: entries by driver key (other keys skipped).
#[derive(Clone, Copy)]
struct LinesShape;

impl<'de> Shape<'de> for LinesShape {
    type Value = Vec<(Cow<'de, str>, Option<ParsedEntry<'de>>)>;

    fn expected(&self) -> &'static str {
        "an object of entries"
    }

    fn depth(&self) -> usize {
        LINES_DEPTH
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked<Self::Value>, A::Error> {
        let mut entries = Keyed::new();
        while let Some(key) = map.next_key_seed(KeyStr)? {
            if let Some(driver) = parse_digits(&key) {
                let entry = map.next_value_seed(Lenient(EntryShape { driver }))?;
                entries.insert(key, entry.ok());
            } else {
                map.next_value_seed(Skip::at(ENTRY_DEPTH))?;
            }
        }
        Ok(Ok(entries.items))
    }
}

/// The fields of an entry the digest reads.
#[derive(Clone, Copy)]
enum EntryField {
    NumberOfLaps,
    InPit,
    PitOut,
    Position,
    LastLapTime,
    Sectors,
    Speeds,
    GapToLeader,
    IntervalToPositionAhead,
}

impl EntryField {
    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "NumberOfLaps" => Self::NumberOfLaps,
            "InPit" => Self::InPit,
            "PitOut" => Self::PitOut,
            "Position" => Self::Position,
            "LastLapTime" => Self::LastLapTime,
            "Sectors" => Self::Sectors,
            "Speeds" => Self::Speeds,
            "GapToLeader" => Self::GapToLeader,
            "IntervalToPositionAhead" => Self::IntervalToPositionAhead,
            _ => return None,
        })
    }
}

/// One driver's entry.
#[derive(Clone, Copy)]
struct EntryShape {
    driver: u32,
}

impl<'de> Shape<'de> for EntryShape {
    type Value = ParsedEntry<'de>;

    fn expected(&self) -> &'static str {
        "an entry object"
    }

    fn depth(&self) -> usize {
        ENTRY_DEPTH
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked<Self::Value>, A::Error> {
        let mut entry = ParsedEntry::default();
        let kept = &mut entry.kept;
        kept.driver = self.driver;
        let gap = &mut entry.gap;
        let interval = &mut entry.interval;
        let raw = RawSeed::at(FIELD_DEPTH);
        fields(&mut map, EntryField::from_key, ENTRY_DEPTH, |field, map| {
            // Each field overwrites what a repeated key set before: the last one counts.
            match field {
                EntryField::NumberOfLaps => {
                    kept.number_of_laps = map.next_value_seed(raw)?.as_int();
                }
                EntryField::InPit => kept.in_pit = map.next_value_seed(raw)?.as_bool(),
                EntryField::PitOut => kept.pit_out = map.next_value_seed(raw)?.as_bool(),
                EntryField::Position => kept.position = map.next_value_seed(raw)?.as_digits(),
                EntryField::LastLapTime => {
                    let lap = map
                        .next_value_seed(Lenient(LapTimeShape))?
                        .unwrap_or_default();
                    (kept.lap_time_ms, kept.personal_fastest) = lap;
                }
                EntryField::Sectors => {
                    kept.sectors_ms = map
                        .next_value_seed(Lenient(SectorsShape))?
                        .unwrap_or_default();
                }
                EntryField::Speeds => {
                    kept.speeds = map
                        .next_value_seed(Lenient(SpeedsShape))?
                        .unwrap_or_default();
                }
                EntryField::GapToLeader => *gap = map.next_value_seed(raw)?.as_str(),
                EntryField::IntervalToPositionAhead => {
                    let shape = ValueShape { depth: FIELD_DEPTH };
                    let value = map.next_value_seed(Lenient(shape))?.ok().flatten();
                    *interval = value.and_then(Raw::as_str);
                }
            }
            Ok(())
        })?;
        Ok(Ok(entry))
    }
}

/// `LastLapTime`: an object; its `Value` as a time and its `PersonalFastest`.
#[derive(Clone, Copy)]
struct LapTimeShape;

impl<'de> Shape<'de> for LapTimeShape {
    type Value = (Option<i64>, Option<bool>);

    fn expected(&self) -> &'static str {
        "an object"
    }

    fn depth(&self) -> usize {
        FIELD_DEPTH
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked<Self::Value>, A::Error> {
        let (mut value, mut personal_fastest) = (None, None);
        let known = |key: &str| match key {
            "Value" => Some(true),
            "PersonalFastest" => Some(false),
            _ => None,
        };
        fields(&mut map, known, FIELD_DEPTH, |is_value, map| {
            let raw = map.next_value_seed(RawSeed::at(SECTOR_DEPTH))?;
            if is_value {
                value = raw.as_time_ms();
            } else {
                personal_fastest = raw.as_bool();
            }
            Ok(())
        })?;
        Ok(Ok((value, personal_fastest)))
    }
}

/// A sector or a speed trap: an object whose `Value` is kept (`None`: it has none).
/// (Also `IntervalToPositionAhead`, one level up: the object is at `depth`.)
#[derive(Clone, Copy)]
struct ValueShape {
    depth: usize,
}

impl<'de> Shape<'de> for ValueShape {
    type Value = Option<Raw<'de>>;

    fn expected(&self) -> &'static str {
        "an object"
    }

    fn depth(&self) -> usize {
        self.depth
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked<Self::Value>, A::Error> {
        let mut value = None;
        let known = |key: &str| (key == "Value").then_some(());
        fields(&mut map, known, self.depth, |(), map| {
            value = Some(map.next_value_seed(RawSeed::at(self.depth + 1))?);
            Ok(())
        })?;
        Ok(Ok(value))
    }
}

/// A sector or a speed trap, at its depth.
const SECTOR: ValueShape = ValueShape {
    depth: SECTOR_DEPTH,
};

/// `Value` of a sector or trap (`None` when it is not an object or has no `Value`).
fn sector_value<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Raw<'de>>, A::Error> {
    Ok(map.next_value_seed(Lenient(SECTOR))?.ok().flatten())
}

/// `Sectors`: an object keyed `"0"`, `"1"`, `"2"`, or an array (items 0–2); each
/// sector's `Value` as a time.
#[derive(Clone, Copy)]
struct SectorsShape;

impl<'de> Shape<'de> for SectorsShape {
    type Value = [Option<i64>; 3];

    fn expected(&self) -> &'static str {
        "an object or array of sectors"
    }

    fn depth(&self) -> usize {
        FIELD_DEPTH
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked<Self::Value>, A::Error> {
        let mut sectors = [None; 3];
        let known = |key: &str| ["0", "1", "2"].iter().position(|&index| index == key);
        fields(&mut map, known, FIELD_DEPTH, |index, map| {
            sectors[index] = sector_value(map)?.and_then(Raw::as_time_ms);
            Ok(())
        })?;
        Ok(Ok(sectors))
    }

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked<Self::Value>, A::Error> {
        let mut sectors = [None; 3];
        let mut index = 0_usize;
        while let Some(value) = seq.next_element_seed(Lenient(SECTOR))? {
            if let Some(slot) = sectors.get_mut(index) {
                *slot = value.ok().flatten().and_then(Raw::as_time_ms);
            }
            index += 1;
        }
        Ok(Ok(sectors))
    }
}

/// `Speeds`: an object of traps, of which [`TRAPS`] are read.
#[derive(Clone, Copy)]
struct SpeedsShape;

impl<'de> Shape<'de> for SpeedsShape {
    type Value = [Option<u32>; 4];

    fn expected(&self) -> &'static str {
        "an object of speed traps"
    }

    fn depth(&self) -> usize {
        FIELD_DEPTH
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked<Self::Value>, A::Error> {
        let mut speeds = [None; 4];
        let known = |key: &str| TRAPS.iter().position(|&trap| trap == key);
        fields(&mut map, known, FIELD_DEPTH, |trap, map| {
            speeds[trap] = sector_value(map)?.and_then(Raw::as_digits);
            Ok(())
        })?;
        Ok(Ok(speeds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(digest: &mut TimingDigest, text: &str) -> Option<Digest> {
        digest.feed(text).unwrap()
    }

    #[test]
    fn keeps_what_the_lap_fitter_reads() {
        let mut digest = TimingDigest::new();
        let text = r#"{"SessionPart":2,"Lines":{"44":{"NumberOfLaps":12,
            "Sectors":{"2":{"Value":"26.274","PersonalFastest":true,"Segments":{"0":{"Status":2049}}},
                       "0":{"PersonalFastest":true},"3":{"Value":"1"}},
            "LastLapTime":{"Value":"1:49.862","PersonalFastest":false,"OverallFastest":false},
            "Speeds":{"FL":{"Value":"290"},"XX":{"Value":"1"},"ST":{},"I1":{"Value":"x"}},
            "GapToLeader":"+1.2","IntervalToPositionAhead":{"Value":"+0.3"},
            "InPit":false,"PitOut":true,"Position":"3","Line":3},
            "x":{"NumberOfLaps":1},"123456":{"NumberOfLaps":1}}}"#;
        let result = feed(&mut digest, text).unwrap();
        assert_eq!(result.session_part, Some(2));
        assert_eq!(
            result.entries,
            [Entry {
                driver: 44,
                number_of_laps: Some(12),
                in_pit: Some(false),
                pit_out: Some(true),
                position: Some(3),
                lap_time_ms: Some(109_862),
                personal_fastest: Some(false),
                sectors_ms: [None, None, Some(26_274)],
                speeds: [None, None, Some(290), None],
                gap_to_leader: Some("+1.2".to_owned()),
                interval_to_position_ahead: Some("+0.3".to_owned()),
            }]
        );
        assert_eq!(
            result.gaps,
            [GapChange {
                driver: 44,
                gap_to_leader: Some("+1.2".to_owned()),
                interval_to_position_ahead: Some("+0.3".to_owned()),
            }]
        );
    }

    #[test]
    fn typed_values() {
        let mut digest = TimingDigest::new();
        let entry = |digest: &mut TimingDigest, fields: &str| {
            let text = format!(r#"{{"Lines":{{"7":{{{fields}}}}}}}"#);
            feed(digest, &text).map(|d| d.entries[0].clone())
        };
        for fields in [
            r#""NumberOfLaps":true"#,
            r#""NumberOfLaps":"3""#,
            r#""NumberOfLaps":3.0"#,
            r#""NumberOfLaps":1e2"#,
            r#""NumberOfLaps":9223372036854775808"#,
            r#""InPit":1"#,
            r#""PitOut":null"#,
            r#""Position":3"#,
            r#""Position":"""#,
            r#""Position":"123456""#,
            r#""Position":"١٢""#,
            r#""Position":" 1""#,
            r#""LastLapTime":"1:40.000""#,
            r#""LastLapTime":{"Value":"1:"}"#,
            r#""LastLapTime":{"Value":1}"#,
            r#""Sectors":[{},{"Value":".5"},{"Value":"01:02:03.456"},{"Value":"1"}]"#,
            r#""Sectors":{"00":{"Value":"1"},"3":{"Value":"1"}}"#,
            r#""Speeds":[{"Value":"1"}]"#,
            r#""Speeds":{"I1":{"Value":1}}"#,
            r#""NumberOfLaps":1,"NumberOfLaps":"x""#,
        ] {
            assert_eq!(entry(&mut digest, fields), None, "{fields}");
        }
        let got = entry(&mut digest, r#""NumberOfLaps":-0"#).unwrap();
        assert_eq!(got.number_of_laps, Some(0));
        let got = entry(&mut digest, r#""Position":"\u0031\u0032""#).unwrap();
        assert_eq!(got.position, Some(12));
        let got = entry(&mut digest, r#""LastLapTime":{"PersonalFastest":true}"#).unwrap();
        assert_eq!((got.lap_time_ms, got.personal_fastest), (None, Some(true)));
        let got = entry(
            &mut digest,
            r#""Sectors":[{"Value":" 1:02.3\n"},{"Value":"5"},{"Value":"26.27"}]"#,
        )
        .unwrap();
        assert_eq!(got.sectors_ms, [Some(62_300), Some(5000), Some(26_270)]);
        let got = entry(
            &mut digest,
            r#""Sectors":{"1":{"Value":"1"},"1":{"Value":"2"},"0":5,"0":{"Value":"3"}}"#,
        )
        .unwrap();
        assert_eq!(got.sectors_ms, [Some(3000), Some(2000), None]);
        let got = entry(
            &mut digest,
            r#""Speeds":{"ST":{"Value":"00301"},"I2":{"Value":"1"}}"#,
        )
        .unwrap();
        assert_eq!(got.speeds, [None, Some(1), None, Some(301)]);
    }

    #[test]
    fn time_grammar() {
        for (text, ms) in [
            ("1:49.862", Some(109_862)),
            ("26.274", Some(26_274)),
            ("1:02.3", Some(62_300)),
            ("\t\x0b1:02.34 \x0c\r\n", Some(62_340)),
            ("0", Some(0)),
            (
                "999999:999999.999",
                Some((999_999 * 60 + 999_999) * 1000 + 999),
            ),
            ("1234567", None),
            ("1234567:00", None),
            (".5", None),
            ("1.", None),
            ("1:", None),
            (":1", None),
            ("01:02:03.456", None),
            ("1.2345", None),
            ("1:2.3.4", None),
            ("+1", None),
            ("-1", None),
            ("1 :2", None),
            ("١٢", None),
            ("１２", None),
            ("\u{a0}1", None),
            ("\u{85}1", None),
            ("", None),
            (" ", None),
        ] {
            assert_eq!(parse_time_ms(text), ms, "{text:?}");
        }
    }

    #[test]
    fn gap_updates_are_remembered() {
        let mut digest = TimingDigest::new();
        let gap = r#"{"Lines":{"44":{"GapToLeader":"+0.404","IntervalToPositionAhead":{"Value":"+0.404"}}}}"#;
        let change = |gap: Option<&str>, interval: Option<&str>| GapChange {
            driver: 44,
            gap_to_leader: gap.map(str::to_owned),
            interval_to_position_ahead: interval.map(str::to_owned),
        };
        let gaps_only = |gaps: Vec<GapChange>| Digest {
            session_part: None,
            entries: vec![],
            gaps,
        };
        let expected = gaps_only(vec![change(Some("+0.404"), Some("+0.404"))]);
        assert_eq!(feed(&mut digest, gap), Some(expected));
        assert_eq!(digest.gap_to_leader(44), Some("+0.404"));
        // The same again changes nothing: irrelevant.
        assert_eq!(feed(&mut digest, gap), None);
        // The interval alone, or one that is not an object's string `Value`.
        let interval =
            r#"{"Lines":{"44":{"IntervalToPositionAhead":{"Value":"1 L","Catching":true}}}}"#;
        let expected = gaps_only(vec![change(Some("+0.404"), Some("1 L"))]);
        assert_eq!(feed(&mut digest, interval), Some(expected));
        for text in [
            r#"{"Lines":{"44":{"IntervalToPositionAhead":"+1"}}}"#,
            r#"{"Lines":{"44":{"IntervalToPositionAhead":{"Catching":false}}}}"#,
            r#"{"Lines":{"44":{"IntervalToPositionAhead":{"Value":1}}}}"#,
        ] {
            assert_eq!(feed(&mut digest, text), None, "{text}");
        }
        // A non-string gap leaves the remembered one.
        assert_eq!(
            feed(&mut digest, r#"{"Lines":{"44":{"GapToLeader":1}}}"#),
            None
        );
        let lap = r#"{"Lines":{"44":{"NumberOfLaps":3},"5":{"Position":"1"}}}"#;
        let result = feed(&mut digest, lap).unwrap();
        assert_eq!(result.entries[0].gap_to_leader.as_deref(), Some("+0.404"));
        assert_eq!(result.entries[1].gap_to_leader, None);
        // The message's own gap counts; escapes are resolved.
        let both = r#"{"Lines":{"44":{"GapToLeader":"LAP \u0032","Position":"2"}}}"#;
        let result = feed(&mut digest, both).unwrap();
        assert_eq!(result.entries[0].gap_to_leader.as_deref(), Some("LAP 2"));
        assert_eq!(digest.gap_to_leader(44), Some("LAP 2"));
        // The empty string forgets it (both paths).
        assert_eq!(
            feed(&mut digest, r#"{"Lines":{"44":{"GapToLeader":""}}}"#),
            Some(gaps_only(vec![change(None, Some("1 L"))]))
        );
        assert_eq!(digest.gap_to_leader(44), None);
        feed(&mut digest, r#"{"Lines":{"44":{"GapToLeader":"+1"}}}"#);
        let text = r#"{"Lines":{"44":{"GapToLeader":"","InPit":true}}}"#;
        assert_eq!(
            feed(&mut digest, text).unwrap().entries[0].gap_to_leader,
            None
        );
        // Keys count by their number; the gap is the one after the whole message.
        let text =
            r#"{"Lines":{"1":{"InPit":true},"01":{"GapToLeader":"+3"},"x":{"GapToLeader":"+4"}}}"#;
        let result = feed(&mut digest, text).unwrap();
        assert_eq!(result.entries.len(), 1);
        assert_eq!(result.entries[0].gap_to_leader.as_deref(), Some("+3"));
        // One change per driver, however many of its keys moved it.
        assert_eq!(result.gaps.len(), 1);
        assert_eq!(result.gaps[0].driver, 1);
        // Not an object, or a key that is not digits: nothing remembered.
        let text = r#"{"Lines":{"9":5,"x1":{"GapToLeader":"+5"},"123456":{"GapToLeader":"+5"}}}"#;
        assert_eq!(feed(&mut digest, text), None);
        assert_eq!(digest.gaps.len(), 1);
    }

    #[test]
    fn irrelevant_messages() {
        let mut digest = TimingDigest::new();
        for text in [
            "{}",
            r#"{"Lines":5}"#,
            r#"{"SessionPart":null,"Lines":[1]}"#,
            r#"{"SessionPart":"1"}"#,
            r#"{"SessionPart":true}"#,
            r#"{"SessionPart":1.0}"#,
            r#"{"SessionPart":99999999999999999999}"#,
            r#"{"Lines":{"1":5,"2":[],"3":{}}}"#,
            r#"{"Lines":{"1":{"Sectors":{"0":{"Segments":{"1":{"Status":0}}}}}}}"#,
            r#"{"Lines":{"1":{"Sectors":[{"Stopped":false},5]}}}"#,
            r#"{"Lines":{"1":{"Speeds":{"I1":{"PersonalFastest":true},"X":{"Value":"1"}}}}}"#,
            r#"{"Lines":{"1":{"LastLapTime":{"Value":"x"}}}}"#,
            r#"{"Lines":{"1":{"NumberOfLaps":1}},"Lines":{}}"#,
            r#"{"Lines":{"1":{"NumberOfLaps":1},"1":{"BestLapTime":{"Value":"x"}}}}"#,
            r#"{"Lines":{"1":{"NumberOfLaps":1},"1":5}}"#,
        ] {
            assert_eq!(feed(&mut digest, text), None, "{text}");
        }
        let result = feed(&mut digest, r#"{"SessionPart":-0,"Lines":[1]}"#).unwrap();
        assert_eq!(
            result,
            Digest {
                session_part: Some(0),
                entries: vec![],
                gaps: vec![]
            }
        );
    }

    #[test]
    fn many_repeated_driver_keys() {
        let entries: Vec<String> = (0..200)
            .map(|i| format!(r#""{}":{{"NumberOfLaps":{i}}}"#, i % 70))
            .collect();
        let text = format!(r#"{{"Lines":{{{}}}}}"#, entries.join(","));
        let mut digest = TimingDigest::new();
        let result = feed(&mut digest, &text).unwrap();
        let laps: Vec<(u32, Option<i64>)> = result
            .entries
            .iter()
            .map(|e| (e.driver, e.number_of_laps))
            .collect();
        let expected: Vec<(u32, Option<i64>)> = (0..70)
            .map(|d| (d, Some(i64::from(d + if d < 60 { 140 } else { 70 }))))
            .collect();
        assert_eq!(laps, expected);
    }

    #[test]
    fn errors() {
        let mut digest = TimingDigest::new();
        digest
            .feed(r#"{"Lines":{"1":{"GapToLeader":"+1"}}}"#)
            .unwrap();
        for (text, reason) in [
            ("[]", "invalid type: sequence, expected a TimingData object"),
            (
                "1",
                "invalid type: integer `1`, expected a TimingData object",
            ),
            ("", "EOF while parsing a value"),
            ("{} {}", "trailing characters"),
            (
                r#"{"Lines":{"1":{"GapToLeader":"+2","X":"\ud800"}}}"#,
                "lone leading surrogate",
            ),
            (
                r#"{"Lines":{"1":{"GapToLeader":"+2","X":1e400}}}"#,
                "number out of range",
            ),
            (
                r#"{"Lines":{"x":{"X":1e400}},"Lines":{"1":{"GapToLeader":"+2"}}}"#,
                "number out of range",
            ),
            (
                r#"{"Lines":{"1":{"GapToLeader":"+2"}},"#,
                "EOF while parsing",
            ),
        ] {
            let error = digest.feed(text).unwrap_err();
            assert!(error.starts_with(reason), "{text}: {error}");
        }
        // Errors leave the state unchanged.
        assert_eq!(digest.gap_to_leader(1), Some("+1"));
    }

    #[test]
    fn nesting_limit() {
        let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        let mut digest = TimingDigest::new();
        // The entry's values are at depth 4: 1021 more levels are allowed.
        for (key, depth) in [("NumberOfLaps", 4), ("Unknown", 4), ("GapToLeader", 4)] {
            for driver in ["1", "x"] {
                let ok = format!(
                    r#"{{"Lines":{{"{driver}":{{"{key}":{}}}}}}}"#,
                    nested(1025 - depth)
                );
                assert!(digest.feed(&ok).is_ok(), "{key}");
                let bad = format!(
                    r#"{{"Lines":{{"{driver}":{{"{key}":{}}}}}}}"#,
                    nested(1026 - depth)
                );
                assert!(digest.feed(&bad).unwrap_err().contains("1024"), "{key}");
            }
        }
        let bad = format!(
            r#"{{"Lines":{{"1":{{"Sectors":[{{"Value":{}}}]}}}}}}"#,
            nested(1020)
        );
        assert!(digest.feed(&bad).is_err());
        let ok = format!(
            r#"{{"Lines":{{"1":{{"Sectors":[{{"Value":{}}}]}}}}}}"#,
            nested(1019)
        );
        assert!(digest.feed(&ok).is_ok());
    }

    #[test]
    fn stream() {
        let data = b"\xEF\xBB\xBF00:00:01.000{\"Lines\":{\"1\":{\"GapToLeader\":\"\"}}}\r\n\
            00:00:02.000{\"Lines\":{\"1\":{\"GapToLeader\":\"+1\"}}}\r\n\
            \r\n\
            00:00:03.000{\"Lines\":{\"1\":{\"Position\":\"2\"}}}\r\n\
            no timestamp\r\n\
            00:00:04.000[]\r\n\
            00:00:05.000{\"Lines\":{}}\r\n";
        let lines = digest_stream(data);
        let summary: Vec<(usize, Option<u32>, bool, Option<&str>)> = lines
            .iter()
            .map(|l| {
                (
                    l.number,
                    l.offset_ms,
                    l.digest.is_some(),
                    l.error.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (1, Some(1000), false, None),
                // A line that only moves a gap is relevant: its change is the digest.
                (2, Some(2000), true, None),
                (4, Some(3000), true, None),
                (5, None, false, None),
                (
                    6,
                    Some(4000),
                    false,
                    Some(
                        "invalid TimingData JSON: invalid type: sequence, expected a TimingData \
                         object at line 1 column 2"
                    )
                ),
            ]
        );
        let moved = lines[1].digest.as_ref().unwrap();
        assert_eq!(moved.gaps[0].gap_to_leader.as_deref(), Some("+1"));
        let digest = lines[2].digest.as_ref().unwrap();
        assert_eq!(digest.entries[0].gap_to_leader.as_deref(), Some("+1"));
        assert!(digest_stream(b"").is_empty());
        assert_eq!(digest_stream(b"{}")[0].offset_ms, None);
    }

    /// `gap_only` reads `text` iff `fast`; when it does, the full parser agrees.
    #[test]
    fn fast_path_agrees_with_the_full_parser() {
        for (text, fast) in [
            (
                r#"{"Lines":{"44":{"GapToLeader":"+0.404","IntervalToPositionAhead":{"Value":"+0.404"}}}}"#,
                true,
            ),
            (
                r#"{"Lines":{"44":{"IntervalToPositionAhead":{"Value":"","Catching":true}}}}"#,
                true,
            ),
            (
                r#"{"Lines":{"1":{"IntervalToPositionAhead":{"Value":"+1","Value":5}},"2":{"IntervalToPositionAhead":"x"}}}"#,
                true,
            ),
            (
                r#"{"Lines":{"1":{"IntervalToPositionAhead":{"Catching":true,"Value":"+2.5"}},"01":{"GapToLeader":"1 L"}}}"#,
                true,
            ),
            (r#"{"Lines":{}}"#, true),
            (
                r#"{"Lines":{"1":{},"2":{"GapToLeader":"a","GapToLeader":5},"3":{"GapToLeader":"é"}}}"#,
                true,
            ),
            (
                r#"{"Lines":{"x":{"GapToLeader":"a"},"01":{"GapToLeader":"b"},"1":{"GapToLeader":""}}}"#,
                true,
            ),
            (
                r#"{"Lines":{"1":{"x":-0,"y":null,"z":false,"w":{"a":{"b":123456789012345678}}}}}"#,
                true,
            ),
            (r#"{"Lines":{"1":{"GapToLeader":"a"},"1":{"x":1}}}"#, false),
            (r#"{"Lines":{"1":{},"2":{},"3":{},"4":{},"5":{}}}"#, false),
            (r#"{"Lines":{"1":{"Position":"1"}}}"#, false),
            (r#"{"Lines":{"1":{"GapToLeader":"a\u0062"}}}"#, false),
            (r#"{"Lines":{"1":{"GapToLeader":"a"}}} "#, false),
            (r#" {"Lines":{"1":{"GapToLeader":"a"}}}"#, false),
            (r#"{"Lines":{"1":{"x":[1]}}}"#, false),
            (r#"{"Lines":{"1":{"x":1.5}}}"#, false),
            (r#"{"Lines":{"1":{"x":01}}}"#, false),
            (r#"{"Lines":{"1":{"x":-}}}"#, false),
            (r#"{"Lines":{"1":{"x":1234567890123456789}}}"#, false),
            (r#"{"Lines":{"1":{"x":{"a":{"b":{"c":1}}}}}}"#, false),
            (r#"{"Lines":{"1":{"x":tru}}}"#, false),
            (r#"{"Lines":{"1":{"x":1,}}}"#, false),
            (r#"{"Lines":{"1":5}}"#, false),
            (r#"{"Lines":{"1":{}},"Lines":{}}"#, false),
            (r#"{"SessionPart":1,"Lines":{}}"#, false),
            ("{\"Lines\":{\"1\":{\"GapToLeader\":\"a\tb\"}}}", false),
            (r#"{"Lines":{"1":{"GapToLeader":"a"}}}}"#, false),
            (r#"{"Lines":{"1":{"GapToLeader":"a"}}"#, false),
        ] {
            let gaps = gap_only(text);
            assert_eq!(gaps.is_some(), fast, "{text}");
            if gaps.is_none() {
                continue;
            }
            let mut full = TimingDigest::new();
            full.gaps.insert(1, "old".to_owned());
            full.intervals.insert(1, "old".to_owned());
            let mut quick = full.clone();
            let digest = full.apply(parse_message(text).unwrap());
            assert!(
                digest.as_ref().is_none_or(|d| d.entries.is_empty()),
                "{text}"
            );
            assert_eq!(quick.feed(text), Ok(digest), "{text}");
            assert_eq!(quick.gaps, full.gaps, "{text}");
            assert_eq!(quick.intervals, full.intervals, "{text}");
        }
    }

    #[test]
    fn raw_values() {
        assert_eq!(Raw(r#""a""#).as_str().as_deref(), Some("a"));
        assert_eq!(Raw(r#""\u00e9\"""#).as_str().as_deref(), Some("é\""));
        assert_eq!(Raw("1").as_str(), None);
        assert_eq!(Raw("[\"a\"]").as_str(), None);
        assert_eq!(Raw("-12").as_int(), Some(-12));
        assert_eq!(Raw("-0").as_int(), Some(0));
        assert_eq!(Raw("1E2").as_int(), None);
        assert_eq!(Raw("\"1\"").as_int(), None);
        assert_eq!(Raw("true").as_bool(), Some(true));
        assert_eq!(Raw("1").as_bool(), None);
        assert_eq!(parse_digits("99999"), Some(99_999));
        assert_eq!(parse_digits("00000"), Some(0));
        assert_eq!(parse_digits(""), None);
        assert_eq!(parse_digits("+1"), None);
    }
}

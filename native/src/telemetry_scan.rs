//! The fast path of the telemetry decoders: a byte scanner for the messages as the feed
//! actually writes them, reading each car straight into a row.
//!
//! The general path ([`crate::shape`] on `serde_json`) implements every rule of "what
//! `orjson.loads` accepts, then check the shape", which costs: keys as `Cow`s, a
//! `Checked` per value, a `Vec` per entry, repeated-key bookkeeping. The feed never
//! needs those rules, so a scanner here either decodes a message in one pass or
//! *declines* it (`None`), and the caller then runs the general path on it, which also
//! words every error. Declining is always safe; accepting must give exactly the rows the
//! general path gives. So a scanner accepts only this subset of the accepted messages:
//!
//! * JSON whitespace anywhere between tokens, nothing after the top-level object;
//! * strings (keys included) without escapes or control characters, so that their text
//!   is the bytes between the quotes (the input is UTF-8 already);
//! * integers spelled `-?(0|[1-9][0-9]*)` with at most 18 digits, fitting their column,
//!   not `-0` (a float to `serde_json`), or `null`;
//! * exactly the fields of the shape (see [`crate::telemetry`]), each at most once, in
//!   any order, no other fields; required fields present, and timestamps valid;
//! * driver keys written canonically (`0` or no leading zero), each at most once per
//!   entry, at most [`MAX_CARS`] per entry.
//!
//! Within that subset there are no repeated keys, unknown values to check or problems to
//! report, so the rows are those of the general path by construction.

use crate::telemetry::Channels;
use crate::timestamp::parse_utc_ms;

/// Most cars in one entry the scanner takes (the feed has 20–22); more are declined, so
/// that finding a repeated driver by linear search stays cheap.
const MAX_CARS: usize = 64;

/// One `CarData.z` row: `utc_ms`, `driver`, the channels.
pub type CarRow = (i64, i16, Channels);

/// One `Position.z` row: `utc_ms`, `driver`, `Status` (as a byte range of the text, so
/// that the row buffer outlives the text), `X`, `Y`, `Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionRow {
    /// `Timestamp` in epoch milliseconds.
    pub utc_ms: i64,
    /// The driver number.
    pub driver: i16,
    /// `Status`: `text[start..end]`, or `None`.
    pub status: Option<(usize, usize)>,
    /// `X`, `Y`, `Z`.
    pub xyz: [Option<i32>; 3],
}

/// A position in the text being scanned; every method returns `None` to decline.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The next byte after whitespace (not consumed).
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    /// Consumes the next byte after whitespace, which must be `expected`.
    fn eat(&mut self, expected: u8) -> Option<()> {
        (self.peek()? == expected).then(|| self.pos += 1)
    }

    /// A string without escapes or control characters, as the byte range of its text.
    fn string(&mut self) -> Option<(usize, usize)> {
        self.eat(b'"')?;
        let bytes = self.text.as_bytes();
        let start = self.pos;
        loop {
            match *bytes.get(self.pos)? {
                b'"' => break,
                b'\\' | 0..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
        self.pos += 1;
        Some((start, self.pos - 1))
    }

    /// An object key and its colon.
    fn key(&mut self) -> Option<&'a [u8]> {
        let (start, end) = self.string()?;
        self.eat(b':')?;
        Some(&self.text.as_bytes()[start..end])
    }

    /// Consumes `literal` if the text continues with it here (no whitespace skipped).
    /// (A fixed-size array compares inline, where a slice would call `memcmp`.)
    fn expect<const N: usize>(&mut self, literal: &[u8; N]) -> Option<()> {
        let found = self.text.as_bytes()[self.pos..].first_chunk::<N>() == Some(literal);
        found.then(|| self.pos += N)
    }

    /// `null`?
    fn null(&mut self) -> bool {
        self.peek() == Some(b'n') && self.expect(b"null").is_some()
    }

    /// An integer fitting `T`, or `null` (see the module documentation).
    // The outer `None` declines, as everywhere here; the inner one is `null`.
    #[allow(clippy::option_option)]
    fn int<T: TryFrom<i64>>(&mut self) -> Option<Option<T>> {
        let first = self.peek()?;
        if first == b'n' {
            return self.expect(b"null").map(|()| None);
        }
        let bytes = self.text.as_bytes();
        let negative = first == b'-';
        if negative {
            self.pos += 1;
        }
        let start = self.pos;
        let mut value = 0_i64;
        while let Some(&b) = bytes.get(self.pos).filter(|b| b.is_ascii_digit()) {
            value = value * 10 + i64::from(b - b'0');
            self.pos += 1;
            if self.pos - start > 18 {
                return None;
            }
        }
        match (&bytes[start..self.pos], bytes.get(self.pos)) {
            ([] | [b'0', _, ..], _) | (_, Some(b'.' | b'e' | b'E')) => return None,
            ([b'0'], _) if negative => return None,
            _ => {}
        }
        T::try_from(if negative { -value } else { value })
            .ok()
            .map(Some)
    }

    /// An object: `field(self, key)` for each key, which must consume the value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array: `item(self)` for each item, which must consume it.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A timestamp string as epoch milliseconds.
    fn timestamp(&mut self) -> Option<i64> {
        let (start, end) = self.string()?;
        parse_utc_ms(&self.text[start..end])
    }

    /// The top-level object `{"<field>": <value>}`, then the end of the text.
    fn root(mut self, field: &[u8], value: impl FnOnce(&mut Self) -> Option<()>) -> Option<()> {
        let mut value = Some(value);
        self.object(|cursor, key| {
            if key != field {
                return None;
            }
            value.take()?(cursor)
        })?;
        // `value` was taken: the field was there (once).
        (value.is_none() && self.peek().is_none()).then_some(())
    }
}

/// Sets `slot` once; a second time declines (a repeated key).
fn once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    slot.is_none().then(|| *slot = Some(value))
}

/// A driver-number key written canonically (`0`, or no leading zero): such keys are
/// equal exactly when their numbers are, so repeats are found by number.
fn driver(key: &[u8]) -> Option<i16> {
    match key {
        [b'0'] => Some(0),
        [b'1'..=b'9', ..] => key.iter().try_fold(0_i16, |number, &b| {
            let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
            number.checked_mul(10)?.checked_add(i16::from(digit))
        }),
        _ => None,
    }
}

/// Whether `driver` may join the `cars` of an entry read so far: not a repeat, and not
/// beyond [`MAX_CARS`].
fn is_new(mut cars: impl ExactSizeIterator<Item = i16>, driver: i16) -> bool {
    cars.len() < MAX_CARS && cars.all(|other| other != driver)
}

/// Scans a `CarData.z` message, appending its rows to `rows`; `None`: declined (`rows`
/// then holds some of its rows, which the caller drops).
pub fn car_data(text: &str, rows: &mut Vec<CarRow>) -> Option<()> {
    Cursor { text, pos: 0 }.root(b"Entries", |cursor| {
        cursor.array(|cursor| {
            let start = rows.len();
            let (mut utc, mut cars) = (None, None);
            cursor.object(|cursor, key| match key {
                b"Utc" => once(&mut utc, cursor.timestamp()?),
                b"Cars" => once(
                    &mut cars,
                    cursor.object(|cursor, key| {
                        let driver = driver(key)?;
                        if !is_new(rows[start..].iter().map(|row| row.1), driver) {
                            return None;
                        }
                        let channels = car(cursor)?;
                        rows.push((0, driver, channels));
                        Some(())
                    })?,
                ),
                _ => None,
            })?;
            cars?;
            let utc = utc?;
            for row in &mut rows[start..] {
                row.0 = utc; // `Utc` may come after `Cars`
            }
            Some(())
        })
    })
}

/// A car: `{"Channels": {...}}`.
fn car(cursor: &mut Cursor<'_>) -> Option<Channels> {
    // The feed's own spelling first (compact, keys in this order), read as literals;
    // anything else is read again from the start, field by field.
    let start = cursor.pos;
    if let Some(channels) = compact_car(cursor) {
        return Some(channels);
    }
    cursor.pos = start;
    let mut channels = None;
    cursor.object(|cursor, key| match key {
        b"Channels" => once(&mut channels, self::channels(cursor)?),
        _ => None,
    })?;
    channels
}

/// `{"Channels":{"0":…,"2":…,"3":…,"4":…,"5":…,"45":…}}` exactly.
fn compact_car(cursor: &mut Cursor<'_>) -> Option<Channels> {
    cursor.expect(br#"{"Channels":"#)?;
    let channels = compact_channels(cursor)?;
    cursor.expect(b"}").map(|()| channels)
}

/// `{"0":…,"2":…,"3":…,"4":…,"5":…,"45":…}` exactly, as the feed writes the channels.
fn compact_channels(cursor: &mut Cursor<'_>) -> Option<Channels> {
    cursor.expect(br#"{"0":"#)?;
    let rpm = cursor.int()?;
    cursor.expect(br#","2":"#)?;
    let speed = cursor.int()?;
    cursor.expect(br#","3":"#)?;
    let gear = cursor.int()?;
    cursor.expect(br#","4":"#)?;
    let throttle = cursor.int()?;
    cursor.expect(br#","5":"#)?;
    let brake = cursor.int()?;
    cursor.expect(br#","45":"#)?;
    let drs = cursor.int()?;
    cursor.expect(b"}")?;
    Some(Channels {
        rpm,
        speed,
        gear,
        throttle,
        brake,
        drs,
    })
}

/// The channels object; each channel at most once.
fn channels(cursor: &mut Cursor<'_>) -> Option<Channels> {
    let mut channels = Channels::default();
    let mut seen = 0_u8; // one bit per channel
    cursor.object(|cursor, key| {
        let bit = match key {
            b"0" => {
                channels.rpm = cursor.int()?;
                1
            }
            b"2" => {
                channels.speed = cursor.int()?;
                2
            }
            b"3" => {
                channels.gear = cursor.int()?;
                4
            }
            b"4" => {
                channels.throttle = cursor.int()?;
                8
            }
            b"5" => {
                channels.brake = cursor.int()?;
                16
            }
            b"45" => {
                channels.drs = cursor.int()?;
                32
            }
            _ => return None,
        };
        (seen & bit == 0).then(|| seen |= bit)
    })?;
    Some(channels)
}

/// Scans a `Position.z` message, appending its rows to `rows` (see [`car_data`]).
pub fn position(text: &str, rows: &mut Vec<PositionRow>) -> Option<()> {
    Cursor { text, pos: 0 }.root(b"Position", |cursor| {
        cursor.array(|cursor| {
            let start = rows.len();
            let (mut utc, mut cars) = (None, None);
            cursor.object(|cursor, key| match key {
                b"Timestamp" => once(&mut utc, cursor.timestamp()?),
                b"Entries" => once(
                    &mut cars,
                    cursor.object(|cursor, key| {
                        let driver = driver(key)?;
                        if !is_new(rows[start..].iter().map(|row| row.driver), driver) {
                            return None;
                        }
                        let (status, xyz) = car_position(cursor)?;
                        rows.push(PositionRow {
                            utc_ms: 0,
                            driver,
                            status,
                            xyz,
                        });
                        Some(())
                    })?,
                ),
                _ => None,
            })?;
            cars?;
            let utc = utc?;
            for row in &mut rows[start..] {
                row.utc_ms = utc;
            }
            Some(())
        })
    })
}

/// A car's position: `Status`, `X`, `Y`, `Z`, each optional and at most once.
#[allow(clippy::type_complexity)]
fn car_position(cursor: &mut Cursor<'_>) -> Option<(Option<(usize, usize)>, [Option<i32>; 3])> {
    // As for `car`: the feed's own spelling first.
    let start = cursor.pos;
    if let Some(position) = compact_position(cursor) {
        return Some(position);
    }
    cursor.pos = start;
    let (mut status, mut xyz) = (None, [None; 3]);
    let mut seen = 0_u8;
    cursor.object(|cursor, key| {
        let bit = match key {
            b"Status" => {
                status = if cursor.null() {
                    None
                } else {
                    Some(cursor.string()?)
                };
                1
            }
            b"X" => {
                xyz[0] = cursor.int()?;
                2
            }
            b"Y" => {
                xyz[1] = cursor.int()?;
                4
            }
            b"Z" => {
                xyz[2] = cursor.int()?;
                8
            }
            _ => return None,
        };
        (seen & bit == 0).then(|| seen |= bit)
    })?;
    Some((status, xyz))
}

/// `{"Status":"…","X":…,"Y":…,"Z":…}` exactly.
#[allow(clippy::type_complexity)]
fn compact_position(cursor: &mut Cursor<'_>) -> Option<(Option<(usize, usize)>, [Option<i32>; 3])> {
    cursor.expect(br#"{"Status":"#)?;
    let status = cursor.string()?;
    cursor.expect(br#","X":"#)?;
    let x = cursor.int()?;
    cursor.expect(br#","Y":"#)?;
    let y = cursor.int()?;
    cursor.expect(br#","Z":"#)?;
    let z = cursor.int()?;
    cursor.expect(b"}")?;
    Some((Some(status), [x, y, z]))
}

#[cfg(test)]
mod tests;

//! Typed JSON decoding with the acceptance rules of "`orjson.loads`, then check the shape".
//!
//! The telemetry decoders must accept exactly what their plain-Python references accept,
//! and those parse the whole text into dicts first, so:
//!
//! * a repeated object key keeps its *last* value at the position of its *first*
//!   occurrence (a `dict` being filled), so a bad value is only an error once its object
//!   has ended without overriding it. Every typed visitor here therefore returns a
//!   [`Checked`] value — a shape problem is data, not a serde error — and only the
//!   completed message is judged;
//! * ignored values are still fully checked (strings with paired surrogates, numbers that
//!   are finite as an `f64`), not merely skimmed like `IgnoredAny` does — but without
//!   recursion ([`Skip`]), so that deep nesting costs no stack;
//! * arrays and objects nest at most [`MAX_DEPTH`] deep (counted here: the typed shapes
//!   themselves nest far less than `serde_json`'s recursion limit, 128).
//!
//! Syntax errors stay serde errors (with `serde_json`'s line and column).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as _;
use serde_json::value::RawValue;

/// Deepest nesting of arrays and objects accepted, as `orjson.loads` (the top-level
/// value is at depth 1).
pub const MAX_DEPTH: usize = 1024;

/// What was wrong with an otherwise well-formed JSON value, and where.
///
/// Boxed: it is rare, and keeps every [`Checked`] value small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem(Box<ProblemInner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProblemInner {
    /// Path from the message root, innermost segment first.
    path: Vec<Segment>,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Field(&'static str),
    Key(String),
    Index(usize),
}

/// A typed value, or why the JSON did not have the expected shape.
pub type Checked<T> = Result<T, Problem>;

impl Problem {
    /// A problem with the value itself.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(Box::new(ProblemInner {
            path: Vec::new(),
            reason: reason.into(),
        }))
    }

    /// The value was of the wrong JSON type.
    #[must_use]
    pub fn wrong_type(expected: &str, found: &Found<'_>) -> Self {
        Self::new(format!("expected {expected}, found {found}"))
    }

    /// A required field was absent.
    #[must_use]
    pub fn missing(field: &str) -> Self {
        Self::new(format!("missing field `{field}`"))
    }

    /// The problem is in field `name` of an object with fixed field names.
    #[must_use]
    pub fn in_field(mut self, name: &'static str) -> Self {
        self.0.path.push(Segment::Field(name));
        self
    }

    /// The problem is in the value of `key` of an object keyed by data (driver numbers).
    #[must_use]
    pub fn in_key(mut self, key: &str) -> Self {
        self.0.path.push(Segment::Key(key.to_owned()));
        self
    }

    /// The problem is in item `index` of an array.
    #[must_use]
    pub fn at_index(mut self, index: usize) -> Self {
        self.0.path.push(Segment::Index(index));
        self
    }
}

impl fmt::Display for Problem {
    /// `Entries[3].Cars["44"].Channels["2"]: expected …, found …`: field names that are
    /// not identifiers (the channel numbers) are written like keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.path.iter().rev().enumerate() {
            match segment {
                Segment::Field(name) if !name.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                    write!(f, "[{name:?}]")?;
                }
                Segment::Field(name) if i == 0 => f.write_str(name)?,
                Segment::Field(name) => write!(f, ".{name}")?,
                Segment::Key(key) => write!(f, "[{key:?}]")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        if !self.0.path.is_empty() {
            f.write_str(": ")?;
        }
        f.write_str(&self.0.reason)
    }
}

/// A JSON value as named in messages.
#[derive(Debug, Clone, Copy)]
pub enum Found<'a> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// An integer that fits `i64`.
    Signed(i64),
    /// An integer that fits `u64`.
    Unsigned(u64),
    /// Any other number.
    Float(f64),
    /// A string.
    Str(&'a str),
    /// An array.
    Array,
    /// An object.
    Object,
}

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Longest string quoted in a message, in characters.
        const QUOTE_CHARS: usize = 40;
        match *self {
            Self::Null => f.write_str("null"),
            Self::Bool(value) => write!(f, "boolean {value}"),
            Self::Signed(value) => write!(f, "integer {value}"),
            Self::Unsigned(value) => write!(f, "integer {value}"),
            Self::Float(value) => write!(f, "number {value:?}"),
            Self::Str(value) if value.chars().nth(QUOTE_CHARS).is_some() => {
                let head: String = value.chars().take(QUOTE_CHARS).collect();
                write!(f, "string {head:?}…")
            }
            Self::Str(value) => write!(f, "string {value:?}"),
            Self::Array => f.write_str("an array"),
            Self::Object => f.write_str("an object"),
        }
    }
}

/// The fatal error for nesting beyond [`MAX_DEPTH`].
fn too_deep<E: de::Error>() -> E {
    E::custom(TOO_DEEP)
}

/// One expected shape of a JSON value. Each method handles one kind of JSON value; the
/// defaults reject it as a [`Problem`] (after consuming it, so parsing goes on).
// The `Err` of every `Checked` here is the value's shape problem.
#[allow(clippy::missing_errors_doc)]
pub trait Shape<'de>: Sized {
    /// The typed value.
    type Value;

    /// What is expected, for messages ("an integer or null").
    fn expected(&self) -> &'static str;

    /// Nesting depth an array or object here would have (the top-level value is at 1).
    fn depth(&self) -> usize;

    /// Rejects `found`.
    fn reject(&self, found: &Found<'_>) -> Checked<Self::Value> {
        Err(Problem::wrong_type(self.expected(), found))
    }

    /// `null`
    fn null(self) -> Checked<Self::Value> {
        self.reject(&Found::Null)
    }

    /// `true` / `false`
    fn boolean(self, value: bool) -> Checked<Self::Value> {
        self.reject(&Found::Bool(value))
    }

    /// An integer that fits `i64` (`serde_json` reports non-negative ones as `u64`).
    fn signed(self, value: i64) -> Checked<Self::Value> {
        self.reject(&Found::Signed(value))
    }

    /// An integer that fits `u64`.
    fn unsigned(self, value: u64) -> Checked<Self::Value> {
        self.reject(&Found::Unsigned(value))
    }

    /// Any other number (with a fraction or exponent, beyond 64 bits, or `-0`).
    fn float(self, value: f64) -> Checked<Self::Value> {
        self.reject(&Found::Float(value))
    }

    /// A string (with escapes resolved; not borrowed from the input).
    fn string(self, value: &str) -> Checked<Self::Value> {
        self.reject(&Found::Str(value))
    }

    /// A string borrowed from the input (one without escapes).
    fn borrowed_string(self, value: &'de str) -> Checked<Self::Value> {
        self.string(value)
    }

    /// An array.
    ///
    /// # Errors
    ///
    /// Syntax errors and nesting beyond [`MAX_DEPTH`].
    fn array<A: SeqAccess<'de>>(self, seq: A) -> Result<Checked<Self::Value>, A::Error> {
        Skip::at(self.depth()).visit_seq(seq)?;
        Ok(self.reject(&Found::Array))
    }

    /// An object.
    ///
    /// # Errors
    ///
    /// Syntax errors and nesting beyond [`MAX_DEPTH`].
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Checked<Self::Value>, A::Error> {
        Skip::at(self.depth()).visit_map(map)?;
        Ok(self.reject(&Found::Object))
    }
}

/// Deserializes a [`Shape`] from a self-describing deserializer (`serde_json`).
pub struct Lenient<S>(pub S);

impl<'de, S: Shape<'de>> DeserializeSeed<'de> for Lenient<S> {
    type Value = Checked<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: Shape<'de>> Visitor<'de> for Lenient<S> {
    type Value = Checked<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.null())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.null())
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(self.0.boolean(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(self.0.signed(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(self.0.unsigned(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(self.0.float(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(self.0.string(value))
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(self.0.borrowed_string(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if self.0.depth() > MAX_DEPTH {
            return Err(too_deep());
        }
        self.0.array(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        if self.0.depth() > MAX_DEPTH {
            return Err(too_deep());
        }
        self.0.object(map)
    }
}

/// Parses and discards any value, fully (see the module documentation) and without
/// recursion: as a seed it takes the value's raw text from `serde_json` (whose
/// `ignore_value` checks the syntax iteratively) and checks the rest in
/// [`check_skipped`]; as a visitor (of an array or object already entered) it does so
/// for each item.
#[derive(Debug, Clone, Copy)]
pub struct Skip {
    depth: usize,
}

impl Skip {
    /// Skips a value at nesting `depth`.
    #[must_use]
    pub fn at(depth: usize) -> Self {
        Self { depth }
    }
}

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        check_skipped(raw.get(), self.depth).map_err(de::Error::custom)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array or object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth > MAX_DEPTH {
            return Err(too_deep());
        }
        while seq.next_element_seed(Skip::at(self.depth + 1))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth > MAX_DEPTH {
            return Err(too_deep());
        }
        while map.next_key_seed(KeyStr)?.is_some() {
            map.next_value_seed(Skip::at(self.depth + 1))?;
        }
        Ok(())
    }
}

/// Checks the raw text of a skipped value (valid JSON syntax: `serde_json` checked it)
/// for what `orjson.loads` refuses beyond syntax: nesting beyond [`MAX_DEPTH`] (the value
/// being at `depth`), a `\u` escape of a lone surrogate, a number that is infinite as an
/// `f64` (rounded correctly, as `orjson` does). Iterative: nesting costs no stack.
///
/// # Errors
///
/// What is wrong, in `serde_json`'s words where it has them.
pub fn check_skipped(raw: &str, depth: usize) -> Result<(), &'static str> {
    let bytes = raw.as_bytes();
    let mut open = 0_usize; // arrays and objects around the current position
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'[' | b'{' => {
                if depth.saturating_add(open) > MAX_DEPTH {
                    return Err(TOO_DEEP);
                }
                open += 1;
                i += 1;
            }
            b']' | b'}' => {
                open = open.saturating_sub(1);
                i += 1;
            }
            b'"' => i = check_string(bytes, i + 1)?,
            b'-' | b'0'..=b'9' => {
                let end = bytes[i..]
                    .iter()
                    .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .map_or(bytes.len(), |length| i + length);
                if raw[i..end].parse::<f64>().is_ok_and(f64::is_infinite) {
                    return Err("number out of range");
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

const TOO_DEEP: &str = "nesting deeper than 1024 levels";

/// Checks the `\u` escapes of the string starting at `bytes[start]` (after its opening
/// quote) for paired surrogates; returns the index after its closing quote.
fn check_string(bytes: &[u8], start: usize) -> Result<usize, &'static str> {
    const LONE: &str = "lone leading surrogate in hex escape";
    let mut high_surrogate = false; // the previous character was `\uD800`–`\uDBFF`
    let mut i = start;
    loop {
        let (next, unit) = match bytes.get(i) {
            None => return Ok(i),
            Some(b'"') if high_surrogate => return Err(LONE),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') if bytes.get(i + 1) == Some(&b'u') => {
                let hex = bytes
                    .get(i + 2..i + 6)
                    .and_then(|hex| std::str::from_utf8(hex).ok());
                let unit = hex.and_then(|hex| u16::from_str_radix(hex, 16).ok());
                (i + 6, unit)
            }
            Some(b'\\') => (i + 2, None),
            Some(_) => (i + 1, None),
        };
        high_surrogate = match (high_surrogate, unit) {
            (false, Some(0xD800..=0xDBFF)) => true,
            (true, Some(0xDC00..=0xDFFF)) => false,
            (true, _) | (false, Some(0xDC00..=0xDFFF)) => return Err(LONE),
            (false, _) => false,
        };
        i = next;
    }
}

/// An object key mapped to a known field by a function (`None`: an unknown key).
struct FieldKey<F>(F);

impl<'de, K, F: Fn(&str) -> Option<K>> DeserializeSeed<'de> for FieldKey<F> {
    type Value = Option<K>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<K, F: Fn(&str) -> Option<K>> Visitor<'_> for FieldKey<F> {
    type Value = Option<K>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok((self.0)(key))
    }
}

/// Walks an object with known fields: calls `field(k, map)` for each key that `known`
/// maps to some `k` (`field` must consume the value) and skips all other values.
///
/// # Errors
///
/// Syntax errors and nesting beyond [`MAX_DEPTH`].
pub fn fields<'de, A: MapAccess<'de>, K>(
    map: &mut A,
    known: impl Fn(&str) -> Option<K> + Copy,
    depth: usize,
    mut field: impl FnMut(K, &mut A) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    while let Some(key) = map.next_key_seed(FieldKey(known))? {
        match key {
            Some(k) => field(k, map)?,
            None => map.next_value_seed(Skip::at(depth + 1))?,
        }
    }
    Ok(())
}

/// The value of a required field: its problem, or a problem for its absence.
///
/// # Errors
///
/// The field's problem, or [`Problem::missing`].
pub fn required<T>(slot: Option<Checked<T>>, name: &'static str) -> Checked<T> {
    slot.ok_or_else(|| Problem::missing(name))?
        .map_err(|problem| problem.in_field(name))
}

/// The value of an optional, nullable field: `None` when absent.
///
/// # Errors
///
/// The field's problem.
pub fn optional<T>(slot: Option<Checked<Option<T>>>, name: &'static str) -> Checked<Option<T>> {
    slot.unwrap_or(Ok(None))
        .map_err(|problem| problem.in_field(name))
}

/// An integer or `null`, range-checked for `T`.
///
/// Only JSON integers are accepted (`1.0`, `1e2`, strings and booleans are not), with one
/// exception forced by the parsers: `serde_json` reads `-0` as the float `-0.0` and
/// `orjson` reads `-0.0` as a float too, so any spelling of negative zero reads as 0.
pub struct Int<T> {
    depth: usize,
    _type: PhantomData<T>,
}

impl<T> Int<T> {
    /// An integer at nesting `depth`.
    #[must_use]
    pub fn at(depth: usize) -> Self {
        Self {
            depth,
            _type: PhantomData,
        }
    }
}

impl<T> Clone for Int<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Int<T> {}

impl<T: TryFrom<i64> + TryFrom<u64>> Int<T> {
    fn fit<V: Copy + fmt::Display>(value: V) -> Checked<Option<T>>
    where
        T: TryFrom<V>,
    {
        T::try_from(value).map(Some).map_err(|_| {
            let name = std::any::type_name::<T>();
            Problem::new(format!("integer {value} does not fit {name}"))
        })
    }
}

impl<T: TryFrom<i64> + TryFrom<u64>> Shape<'_> for Int<T> {
    type Value = Option<T>;

    fn expected(&self) -> &'static str {
        "an integer or null"
    }

    fn depth(&self) -> usize {
        self.depth
    }

    fn null(self) -> Checked<Option<T>> {
        Ok(None)
    }

    fn signed(self, value: i64) -> Checked<Option<T>> {
        Self::fit(value)
    }

    fn unsigned(self, value: u64) -> Checked<Option<T>> {
        Self::fit(value)
    }

    fn float(self, value: f64) -> Checked<Option<T>> {
        if value == 0.0 && value.is_sign_negative() {
            Self::fit(0_i64)
        } else {
            self.reject(&Found::Float(value))
        }
    }
}

/// A string or `null`, borrowed from the input when it has no escapes.
#[derive(Debug, Clone, Copy)]
pub struct OptionalStr {
    depth: usize,
}

impl OptionalStr {
    /// A string at nesting `depth`.
    #[must_use]
    pub fn at(depth: usize) -> Self {
        Self { depth }
    }
}

impl<'de> Shape<'de> for OptionalStr {
    type Value = Option<Cow<'de, str>>;

    fn expected(&self) -> &'static str {
        "a string or null"
    }

    fn depth(&self) -> usize {
        self.depth
    }

    fn null(self) -> Checked<Self::Value> {
        Ok(None)
    }

    fn string(self, value: &str) -> Checked<Self::Value> {
        Ok(Some(Cow::Owned(value.to_owned())))
    }

    fn borrowed_string(self, value: &'de str) -> Checked<Self::Value> {
        Ok(Some(Cow::Borrowed(value)))
    }
}

/// A timestamp string (see [`crate::timestamp`]) as epoch milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp {
    depth: usize,
}

impl Timestamp {
    /// A timestamp at nesting `depth`.
    #[must_use]
    pub fn at(depth: usize) -> Self {
        Self { depth }
    }
}

impl Shape<'_> for Timestamp {
    type Value = i64;

    fn expected(&self) -> &'static str {
        "a timestamp string"
    }

    fn depth(&self) -> usize {
        self.depth
    }

    fn string(self, value: &str) -> Checked<i64> {
        crate::timestamp::parse_utc_ms(value).ok_or_else(|| {
            Problem::new(format!(
                "{} is not a timestamp (YYYY-MM-DDTHH:MM:SS[.fffffff][Z])",
                Found::Str(value)
            ))
        })
    }
}

/// An array of `S`.
#[derive(Debug, Clone, Copy)]
pub struct List<S> {
    item: S,
}

impl<S> List<S> {
    /// An array whose items are `item` (which carries the items' depth).
    #[must_use]
    pub fn of(item: S) -> Self {
        Self { item }
    }
}

impl<'de, S: Shape<'de> + Copy> Shape<'de> for List<S> {
    type Value = Vec<S::Value>;

    fn expected(&self) -> &'static str {
        "an array"
    }

    fn depth(&self) -> usize {
        self.item.depth().saturating_sub(1)
    }

    fn array<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked<Self::Value>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(Lenient(self.item))? {
            match item {
                Ok(item) => items.push(item),
                Err(problem) => {
                    // Array items cannot be overridden: the rest only needs parsing.
                    let problem = problem.at_index(items.len());
                    while seq
                        .next_element_seed(Skip::at(self.item.depth()))?
                        .is_some()
                    {}
                    return Ok(Err(problem));
                }
            }
        }
        Ok(Ok(items))
    }
}

/// An object keyed by driver (racing) number, whose values are `S`, in key order.
///
/// Keys are one or more ASCII digits worth at most 32767 (`"01"` is driver 1, and a key
/// distinct from `"1"`). A repeated key keeps its last value at its first position.
#[derive(Debug, Clone, Copy)]
pub struct ByDriver<S> {
    value: S,
}

impl<S> ByDriver<S> {
    /// An object whose values are `value` (which carries the values' depth).
    #[must_use]
    pub fn of(value: S) -> Self {
        Self { value }
    }
}

/// Maps with more keys than this index them with a hash map to find repeats.
const LINEAR_SEARCH_KEYS: usize = 32;

/// Parses a driver-number key.
///
/// # Errors
///
/// When `key` is not 1+ ASCII digits worth at most `i16::MAX`.
pub fn parse_driver(key: &str) -> Checked<i16> {
    let bad = || Problem::new("driver number must be ASCII digits worth at most 32767");
    if key.is_empty() {
        return Err(bad());
    }
    key.bytes().try_fold(0_i16, |number, b| {
        if !b.is_ascii_digit() {
            return Err(bad());
        }
        number
            .checked_mul(10)
            .and_then(|n| n.checked_add(i16::from(b - b'0')))
            .ok_or_else(bad)
    })
}

/// The driver number of a key written canonically (`"0"`, or no leading zero): such keys
/// are equal exactly when their numbers are, which finds repeats without string compares.
fn canonical_driver(key: &str) -> Option<i16> {
    match key.as_bytes() {
        [b'0'] => Some(0),
        [b'1'..=b'9', ..] => parse_driver(key).ok(),
        _ => None,
    }
}

/// An item of a [`ByDriver`] object being read.
struct DriverItem<'de, T> {
    key: Cow<'de, str>,
    /// [`canonical_driver`] of `key`.
    number: Option<i16>,
    value: Checked<T>,
}

impl<'de, S: Shape<'de> + Copy> Shape<'de> for ByDriver<S> {
    type Value = Vec<(i16, S::Value)>;

    fn expected(&self) -> &'static str {
        "an object keyed by driver number"
    }

    fn depth(&self) -> usize {
        self.value.depth().saturating_sub(1)
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked<Self::Value>, A::Error> {
        let mut items: Vec<DriverItem<'de, S::Value>> = Vec::new();
        // Built only for large objects, where linear searches would be quadratic.
        let mut index: HashMap<Cow<'de, str>, usize> = HashMap::new();
        while let Some(key) = map.next_key_seed(KeyStr)? {
            let value = map.next_value_seed(Lenient(self.value))?;
            let number = canonical_driver(&key);
            let seen = if items.len() < LINEAR_SEARCH_KEYS {
                match number {
                    Some(n) => items.iter().position(|item| item.number == Some(n)),
                    None => items
                        .iter()
                        .position(|item| item.number.is_none() && item.key == key),
                }
            } else {
                if index.is_empty() {
                    let keys = items.iter().enumerate();
                    index.extend(keys.map(|(i, item)| (item.key.clone(), i)));
                }
                index.get(&key).copied()
            };
            if let Some(i) = seen {
                items[i].value = value;
            } else {
                if !index.is_empty() {
                    index.insert(key.clone(), items.len());
                }
                items.push(DriverItem { key, number, value });
            }
        }
        Ok(items
            .into_iter()
            .map(|item| {
                let in_key = |problem: Problem| problem.in_key(&item.key);
                let driver = match item.number {
                    Some(number) => number,
                    None => parse_driver(&item.key).map_err(in_key)?,
                };
                Ok((driver, item.value.map_err(in_key)?))
            })
            .collect())
    }
}

/// An object key, borrowed from the input when it has no escapes.
pub struct KeyStr;

impl<'de> DeserializeSeed<'de> for KeyStr {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyStr {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }
}

/// The top-level object of a message, whose one interpreted field `field` is `S`.
///
/// Unlike the nested shapes, its own problems (not an object, `field` missing) are serde
/// errors, which carry `serde_json`'s position.
pub struct Root<S> {
    /// The field that holds the message's data.
    pub field: &'static str,
    /// What the message is, for messages (`"a CarData object"`).
    pub expected: &'static str,
    /// The field's shape (at depth 2).
    pub value: S,
}

impl<'de, S: Shape<'de> + Copy> DeserializeSeed<'de> for Root<S> {
    type Value = Checked<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: Shape<'de> + Copy> Visitor<'de> for Root<S> {
    type Value = Checked<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut slot = None;
        let name = self.field;
        fields(
            &mut map,
            |key| (key == name).then_some(()),
            1,
            |(), map| {
                slot = Some(map.next_value_seed(Lenient(self.value))?);
                Ok(())
            },
        )?;
        match slot {
            None => Err(de::Error::missing_field(self.field)),
            Some(value) => Ok(value.map_err(|problem| problem.in_field(self.field))),
        }
    }
}

/// Parses `text` as one JSON value of shape `root`, then whitespace only.
///
/// # Errors
///
/// The syntax error or the shape problem, as text.
pub fn parse<'de, S: Shape<'de> + Copy>(text: &'de str, root: Root<S>) -> Result<S::Value, String> {
    // The shapes nest a few levels only (serde_json's recursion limit is 128) and skip
    // everything else without recursion; they limit the depth to orjson's instead.
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = root
        .deserialize(&mut deserializer)
        .map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    value.map_err(|problem| problem.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_paths() {
        let problem = Problem::new("bad")
            .in_field("2")
            .in_field("Channels")
            .in_key("44")
            .in_field("Cars")
            .at_index(3)
            .in_field("Entries");
        assert_eq!(
            problem.to_string(),
            r#"Entries[3].Cars["44"].Channels["2"]: bad"#
        );
        assert_eq!(Problem::missing("Utc").to_string(), "missing field `Utc`");
    }

    #[test]
    fn found_is_quoted_and_cut() {
        assert_eq!(Found::Str("a\"b").to_string(), r#"string "a\"b""#);
        let long = "x".repeat(100);
        assert_eq!(
            Found::Str(&long).to_string(),
            format!("string \"{}\"…", "x".repeat(40))
        );
        assert_eq!(Found::Float(-0.0).to_string(), "number -0.0");
        assert_eq!(
            Found::Unsigned(u64::MAX).to_string(),
            "integer 18446744073709551615"
        );
    }

    #[test]
    fn driver_keys() {
        for (key, number) in [("0", 0), ("1", 1), ("44", 44), ("01", 1), ("32767", 32767)] {
            assert_eq!(parse_driver(key), Ok(number), "{key}");
        }
        let zeros = format!("{}7", "0".repeat(10_000));
        assert_eq!(parse_driver(&zeros), Ok(7));
        for key in [
            "",
            "32768",
            "99999999999",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1_0",
            "٣",
            "x",
        ] {
            assert!(parse_driver(key).is_err(), "{key:?}");
        }
        assert_eq!(canonical_driver("44"), Some(44));
        assert_eq!(canonical_driver("0"), Some(0));
        assert_eq!(canonical_driver("01"), None);
        assert_eq!(canonical_driver("00"), None);
        assert_eq!(canonical_driver("x"), None);
        assert_eq!(canonical_driver("40000"), None);
    }

    fn int<T: TryFrom<i64> + TryFrom<u64>>(json: &str) -> Checked<Option<T>> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        Lenient(Int::<T>::at(1))
            .deserialize(&mut deserializer)
            .unwrap()
    }

    #[test]
    fn integers_only() {
        assert_eq!(int::<i8>("127"), Ok(Some(127)));
        assert_eq!(int::<i8>("-128"), Ok(Some(-128)));
        assert_eq!(int::<i8>("null"), Ok(None));
        for negative_zero in ["-0", "-0.0", "-0e5", "-1e-400"] {
            assert_eq!(int::<i16>(negative_zero), Ok(Some(0)), "{negative_zero}");
        }
        let reason = |json| int::<i8>(json).unwrap_err().to_string();
        assert_eq!(reason("128"), "integer 128 does not fit i8");
        assert_eq!(reason("-129"), "integer -129 does not fit i8");
        assert_eq!(
            reason("0.0"),
            "expected an integer or null, found number 0.0"
        );
        assert_eq!(
            reason("1e2"),
            "expected an integer or null, found number 100.0"
        );
        assert_eq!(
            reason("true"),
            "expected an integer or null, found boolean true"
        );
        assert_eq!(
            reason("\"1\""),
            r#"expected an integer or null, found string "1""#
        );
        assert_eq!(reason("[1]"), "expected an integer or null, found an array");
        assert_eq!(reason("{}"), "expected an integer or null, found an object");
        assert!(reason("18446744073709551616").starts_with("expected an integer"));
        assert_eq!(
            int::<i32>("18446744073709551615").unwrap_err().to_string(),
            "integer 18446744073709551615 does not fit i32"
        );
    }

    #[test]
    fn skipped_values_are_checked() {
        for ok in [
            r#"{"a":[1,-2.5e-3,"x\"y\\",true,null,{}]}"#,
            r#""\ud83d\ude00 \u0041\n""#,
            "1.7976931348623157e308",
            "-1.7976931348623158e308", // rounds to the largest finite f64
            "1e-400",
            &"1".repeat(300),
        ] {
            assert_eq!(check_skipped(ok, 1), Ok(()), "{ok}");
        }
        for (bad, reason) in [
            (r#""\ud800""#, "lone leading surrogate in hex escape"),
            (r#""\ud800x""#, "lone leading surrogate in hex escape"),
            (r#""\ud800\n""#, "lone leading surrogate in hex escape"),
            (r#""\ud800\ud800""#, "lone leading surrogate in hex escape"),
            (r#""\udc00""#, "lone leading surrogate in hex escape"),
            ("1.7976931348623159e308", "number out of range"),
            ("[-1e400]", "number out of range"),
            (&"1".repeat(400), "number out of range"),
        ] {
            assert_eq!(check_skipped(bad, 1), Err(reason), "{bad}");
        }
        // Nesting: a value at depth d may open MAX_DEPTH - d + 1 levels.
        let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        assert_eq!(check_skipped(&nested(MAX_DEPTH), 1), Ok(()));
        assert_eq!(check_skipped(&nested(MAX_DEPTH + 1), 1), Err(TOO_DEEP));
        assert_eq!(check_skipped(&nested(MAX_DEPTH - 9), 10), Ok(()));
        assert_eq!(check_skipped(&nested(MAX_DEPTH - 8), 10), Err(TOO_DEEP));
        // Brackets inside strings do not count.
        assert_eq!(
            check_skipped(&format!("\"{}\"", "[".repeat(2000)), 1),
            Ok(())
        );
    }
}

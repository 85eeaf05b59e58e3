//! Typed decoding of the telemetry topics (`CarData.z`, `Position.z`) into one Arrow
//! record batch per call: one row per (entry, car), in payload, entry and key order.
//!
//! The accepted JSON, precisely (everything else is an error naming the payload):
//!
//! * `CarData.z`: an object with an array `Entries` of objects with `Utc` (a timestamp,
//!   see [`crate::timestamp`]) and `Cars`, an object keyed by driver number (see
//!   [`shape::parse_driver`]) of objects with an object `Channels`, whose keys `"0"`
//!   (rpm), `"2"` (speed), `"3"` (gear), `"4"` (throttle), `"5"` (brake) and `"45"` (DRS)
//!   are integers fitting their column, or null, or absent (both null);
//! * `Position.z`: an object with an array `Position` of objects with `Timestamp` and
//!   `Entries`, an object keyed by driver number of objects whose optional `Status` is a
//!   string or null and optional `X`, `Y`, `Z` are `i32` integers or null.
//!
//! Other keys are ignored (but must be valid JSON); a repeated key counts once, with its
//! last value; integers are JSON integers only (see [`shape::Int`]).
//!
//! This module is the general parser, which implements all of that. The batches are
//! built in [`crate::telemetry_batch`], which reads the messages as the feed writes them
//! with the faster [`crate::telemetry_scan`] and hands only the rest to this parser.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::de::MapAccess;

use crate::shape::{
    self, fields, optional, required, ByDriver, Checked, Int, Lenient, List, OptionalStr, Root,
    Shape, Timestamp,
};
// The decoders (payloads to a batch) live with their fast path.
pub use crate::telemetry_batch::{decode_car_data, decode_position};

// Nesting depth of each level of a message (the top-level object is at 1).
const ENTRY_DEPTH: usize = 3;
const CAR_DEPTH: usize = 5;
const CHANNELS_DEPTH: usize = 6;

/// The `CarData.z` batch's schema: `utc_ms` int64, `driver` int16, then the channels
/// `rpm` int32, `speed` int16, `gear` int8, `throttle`, `brake`, `drs` int16 (nullable).
pub static CAR_DATA_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("utc_ms", DataType::Int64, false),
        Field::new("driver", DataType::Int16, false),
        Field::new("rpm", DataType::Int32, true),
        Field::new("speed", DataType::Int16, true),
        Field::new("gear", DataType::Int8, true),
        Field::new("throttle", DataType::Int16, true),
        Field::new("brake", DataType::Int16, true),
        Field::new("drs", DataType::Int16, true),
    ]))
});

/// The `Position.z` batch's schema: `utc_ms` int64, `driver` int16, `status` utf8, `x`,
/// `y`, `z` int32 (all four nullable).
pub static POSITION_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("utc_ms", DataType::Int64, false),
        Field::new("driver", DataType::Int16, false),
        Field::new("status", DataType::Utf8, true),
        Field::new("x", DataType::Int32, true),
        Field::new("y", DataType::Int32, true),
        Field::new("z", DataType::Int32, true),
    ]))
});

// --- CarData.z -------------------------------------------------------------------------

/// One car's channels at one instant (`None`: absent or null).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Channels {
    /// `"0"`: engine speed, 1/min.
    pub rpm: Option<i32>,
    /// `"2"`: km/h.
    pub speed: Option<i16>,
    /// `"3"`: 0 (neutral) to 8.
    pub gear: Option<i8>,
    /// `"4"`: percent (the feed also sends 104).
    pub throttle: Option<i16>,
    /// `"5"`: 0 or 100 (and 104).
    pub brake: Option<i16>,
    /// `"45"`: DRS state code.
    pub drs: Option<i16>,
}

/// One `CarData.z` entry: a time and each car's channels, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarEntry {
    /// `Utc` in epoch milliseconds.
    pub utc_ms: i64,
    /// `Cars`: (driver number, channels).
    pub cars: Vec<(i16, Channels)>,
}

/// The channels decoded, by their keys.
#[derive(Clone, Copy)]
enum Channel {
    Rpm,
    Speed,
    Gear,
    Throttle,
    Brake,
    Drs,
}

impl Channel {
    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "0" => Self::Rpm,
            "2" => Self::Speed,
            "3" => Self::Gear,
            "4" => Self::Throttle,
            "5" => Self::Brake,
            "45" => Self::Drs,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy)]
struct ChannelsShape;

impl<'de> Shape<'de> for ChannelsShape {
    type Value = Channels;

    fn expected(&self) -> &'static str {
        "an object of channels"
    }

    fn depth(&self) -> usize {
        CHANNELS_DEPTH
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked<Channels>, A::Error> {
        let (mut rpm, mut speed, mut gear) = (None, None, None);
        let (mut throttle, mut brake, mut drs) = (None, None, None);
        let value = CHANNELS_DEPTH + 1;
        fields(
            &mut map,
            Channel::from_key,
            CHANNELS_DEPTH,
            |channel, map| {
                match channel {
                    Channel::Rpm => rpm = Some(map.next_value_seed(Lenient(Int::at(value)))?),
                    Channel::Speed => speed = Some(map.next_value_seed(Lenient(Int::at(value)))?),
                    Channel::Gear => gear = Some(map.next_value_seed(Lenient(Int::at(value)))?),
                    Channel::Throttle => {
                        throttle = Some(map.next_value_seed(Lenient(Int::at(value)))?);
                    }
                    Channel::Brake => brake = Some(map.next_value_seed(Lenient(Int::at(value)))?),
                    Channel::Drs => drs = Some(map.next_value_seed(Lenient(Int::at(value)))?),
                }
                Ok(())
            },
        )?;
        Ok(optional(rpm, "0").and_then(|rpm| {
            Ok(Channels {
                rpm,
                speed: optional(speed, "2")?,
                gear: optional(gear, "3")?,
                throttle: optional(throttle, "4")?,
                brake: optional(brake, "5")?,
                drs: optional(drs, "45")?,
            })
        }))
    }
}

/// A car: `{"Channels": {...}}`.
#[derive(Clone, Copy)]
struct CarShape;

impl<'de> Shape<'de> for CarShape {
    type Value = Channels;

    fn expected(&self) -> &'static str {
        "an object with `Channels`"
    }

    fn depth(&self) -> usize {
        CAR_DEPTH
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked<Channels>, A::Error> {
        let mut channels = None;
        fields(
            &mut map,
            |key| (key == "Channels").then_some(()),
            CAR_DEPTH,
            |(), map| {
                channels = Some(map.next_value_seed(Lenient(ChannelsShape))?);
                Ok(())
            },
        )?;
        Ok(required(channels, "Channels"))
    }
}

#[derive(Clone, Copy)]
struct CarEntryShape;

impl<'de> Shape<'de> for CarEntryShape {
    type Value = CarEntry;

    fn expected(&self) -> &'static str {
        "an object with `Utc` and `Cars`"
    }

    fn depth(&self) -> usize {
        ENTRY_DEPTH
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked<CarEntry>, A::Error> {
        let (mut utc, mut cars) = (None, None);
        let known = |key: &str| match key {
            "Utc" => Some(true),
            "Cars" => Some(false),
            _ => None,
        };
        fields(&mut map, known, ENTRY_DEPTH, |is_utc, map| {
            if is_utc {
                utc = Some(map.next_value_seed(Lenient(Timestamp::at(ENTRY_DEPTH + 1)))?);
            } else {
                cars = Some(map.next_value_seed(Lenient(ByDriver::of(CarShape)))?);
            }
            Ok(())
        })?;
        Ok(required(utc, "Utc").and_then(|utc_ms| {
            Ok(CarEntry {
                utc_ms,
                cars: required(cars, "Cars")?,
            })
        }))
    }
}

/// Parses one `CarData.z` message (inflated JSON text).
///
/// # Errors
///
/// The reason, as text: a JSON syntax error or a shape problem (with its path).
pub fn parse_car_data(text: &str) -> Result<Vec<CarEntry>, String> {
    shape::parse(
        text,
        Root {
            field: "Entries",
            expected: "a CarData object",
            value: List::of(CarEntryShape),
        },
    )
}

// --- Position.z ------------------------------------------------------------------------

/// One car's position at one instant (`None`: absent or null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position<'a> {
    /// `Status`, e.g. `OnTrack`.
    pub status: Option<Cow<'a, str>>,
    /// `X` (1/10 m).
    pub x: Option<i32>,
    /// `Y`.
    pub y: Option<i32>,
    /// `Z`.
    pub z: Option<i32>,
}

/// One `Position.z` entry: a time and each car's position, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionEntry<'a> {
    /// `Timestamp` in epoch milliseconds.
    pub utc_ms: i64,
    /// `Entries`: (driver number, position).
    pub cars: Vec<(i16, Position<'a>)>,
}

/// The fields of a car's position.
#[derive(Clone, Copy)]
enum PositionField {
    Status,
    X,
    Y,
    Z,
}

impl PositionField {
    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "Status" => Self::Status,
            "X" => Self::X,
            "Y" => Self::Y,
            "Z" => Self::Z,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy)]
struct PositionShape;

impl<'de> Shape<'de> for PositionShape {
    type Value = Position<'de>;

    fn expected(&self) -> &'static str {
        "an object with `Status`, `X`, `Y`, `Z`"
    }

    fn depth(&self) -> usize {
        CAR_DEPTH
    }

    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked<Position<'de>>, A::Error> {
        let (mut status, mut x, mut y, mut z) = (None, None, None, None);
        let value = CAR_DEPTH + 1;
        fields(
            &mut map,
            PositionField::from_key,
            CAR_DEPTH,
            |field, map| {
                match field {
                    PositionField::Status => {
                        status = Some(map.next_value_seed(Lenient(OptionalStr::at(value)))?);
                    }
                    PositionField::X => x = Some(map.next_value_seed(Lenient(Int::at(value)))?),
                    PositionField::Y => y = Some(map.next_value_seed(Lenient(Int::at(value)))?),
                    PositionField::Z => z = Some(map.next_value_seed(Lenient(Int::at(value)))?),
                }
                Ok(())
            },
        )?;
        Ok(optional(status, "Status").and_then(|status| {
            Ok(Position {
                status,
                x: optional(x, "X")?,
                y: optional(y, "Y")?,
                z: optional(z, "Z")?,
            })
        }))
    }
}

#[derive(Clone, Copy)]
struct PositionEntryShape;

impl<'de> Shape<'de> for PositionEntryShape {
    type Value = PositionEntry<'de>;

    fn expected(&self) -> &'static str {
        "an object with `Timestamp` and `Entries`"
    }

    fn depth(&self) -> usize {
        ENTRY_DEPTH
    }

    fn object<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<Checked<PositionEntry<'de>>, A::Error> {
        let (mut timestamp, mut cars) = (None, None);
        let known = |key: &str| match key {
            "Timestamp" => Some(true),
            "Entries" => Some(false),
            _ => None,
        };
        fields(&mut map, known, ENTRY_DEPTH, |is_timestamp, map| {
            if is_timestamp {
                timestamp = Some(map.next_value_seed(Lenient(Timestamp::at(ENTRY_DEPTH + 1)))?);
            } else {
                cars = Some(map.next_value_seed(Lenient(ByDriver::of(PositionShape)))?);
            }
            Ok(())
        })?;
        Ok(required(timestamp, "Timestamp").and_then(|utc_ms| {
            Ok(PositionEntry {
                utc_ms,
                cars: required(cars, "Entries")?,
            })
        }))
    }
}

/// Parses one `Position.z` message (inflated JSON text).
///
/// # Errors
///
/// The reason, as text: a JSON syntax error or a shape problem (with its path).
pub fn parse_position(text: &str) -> Result<Vec<PositionEntry<'_>>, String> {
    shape::parse(
        text,
        Root {
            field: "Position",
            expected: "a Position object",
            value: List::of(PositionEntryShape),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;
    use arrow_array::cast::AsArray as _;
    use arrow_array::types::{Int16Type, Int32Type, Int64Type, Int8Type};
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use flate2::write::DeflateEncoder;
    use flate2::Compression;
    use std::io::Write as _;

    const UTC: &str = "2023-05-26T15:31:20.1234567Z";
    const UTC_MS: i64 = 1_685_115_080_123;

    fn encode(json: &str) -> String {
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(json.as_bytes()).unwrap();
        STANDARD.encode(encoder.finish().unwrap())
    }

    fn car_data(cars: &str) -> String {
        format!(r#"{{"Entries":[{{"Utc":"{UTC}","Cars":{{{cars}}}}}]}}"#)
    }

    fn channels(rpm: Option<i32>, speed: Option<i16>) -> Channels {
        Channels {
            rpm,
            speed,
            ..Channels::default()
        }
    }

    #[test]
    fn car_data_entries_in_order() {
        let text = car_data(
            r#""44":{"Channels":{"0":11000,"2":300,"3":8,"4":104,"5":100,"45":12,"7":"x"}},
               "1":{"Channels":{"0":-0,"3":null}, "Other": [1]}"#,
        );
        let entries = parse_car_data(&text).unwrap();
        assert_eq!(
            entries,
            vec![CarEntry {
                utc_ms: UTC_MS,
                cars: vec![
                    (
                        44,
                        Channels {
                            rpm: Some(11000),
                            speed: Some(300),
                            gear: Some(8),
                            throttle: Some(104),
                            brake: Some(100),
                            drs: Some(12),
                        }
                    ),
                    (1, channels(Some(0), None)),
                ],
            }]
        );
    }

    #[test]
    fn repeated_keys_keep_the_last_value_at_the_first_position() {
        let text = car_data(
            r#""1":{"Channels":{"0":"bad","0":1}},"2":{"Channels":{"0":2}},
               "1":{"Channels":{"0":3,"2":5}},"01":{"Channels":{}}"#,
        );
        let cars = &parse_car_data(&text).unwrap()[0].cars;
        assert_eq!(
            cars,
            &[
                (1, channels(Some(3), Some(5))),
                (2, channels(Some(2), None)),
                (1, channels(None, None)),
            ]
        );
        // A bad value overridden later is no error, at any level.
        for text in [
            r#"{"Entries":5,"Entries":[]}"#.to_owned(),
            format!(r#"{{"Entries":[{{"Utc":1,"Cars":{{}},"Utc":"{UTC}"}}]}}"#),
            format!(r#"{{"Entries":[{{"Utc":"{UTC}","Cars":[],"Cars":{{}}}}]}}"#),
            car_data(r#""x":{"Channels":{}},"x":{"Channels":{}}"#).replace("\"x\"", "\"\\u0031\""),
        ] {
            assert!(parse_car_data(&text).is_ok(), "{text}");
        }
        // ... but escaped keys are the same keys.
        let text = car_data(r#""1":{"Channels":{"0":1}},"\u0031":{"Channels":{"\u0030":2}}"#);
        assert_eq!(
            parse_car_data(&text).unwrap()[0].cars,
            [(1, channels(Some(2), None))]
        );
    }

    #[test]
    fn many_repeated_keys() {
        let cars: Vec<String> = (0..200)
            .map(|i| format!(r#""{}":{{"Channels":{{"0":{i}}}}}"#, i % 70))
            .collect();
        let entries = parse_car_data(&car_data(&cars.join(","))).unwrap();
        let rpm: Vec<(i16, Option<i32>)> = entries[0]
            .cars
            .iter()
            .map(|(driver, channels)| (*driver, channels.rpm))
            .collect();
        let expected: Vec<(i16, Option<i32>)> = (0..70)
            .map(|d| (d, Some(i32::from(d) + if d < 60 { 140 } else { 70 })))
            .collect();
        assert_eq!(rpm, expected);
    }

    #[test]
    fn car_data_errors() {
        for (text, reason) in [
            (
                "{}".to_owned(),
                "missing field `Entries` at line 1 column 2",
            ),
            (
                "[]".to_owned(),
                "invalid type: sequence, expected a CarData object at line 1 column ",
            ),
            (
                r#"{"Entries":[{"Cars":{}}]}"#.to_owned(),
                "Entries[0]: missing field `Utc`",
            ),
            (
                car_data(r#""1":{"Channels":{"3":"4"}}"#),
                r#"Entries[0].Cars["1"].Channels["3"]: expected an integer or null, found string "4""#,
            ),
            (
                car_data(r#""1":{"Channels":{"3":300}}"#),
                r#"Entries[0].Cars["1"].Channels["3"]: integer 300 does not fit i8"#,
            ),
            (
                car_data(r#""1":{}"#),
                r#"Entries[0].Cars["1"]: missing field `Channels`"#,
            ),
            (
                car_data(r#""x1":{"Channels":{}}"#),
                r#"Entries[0].Cars["x1"]: driver number must be ASCII digits"#,
            ),
            (
                format!(r#"{{"Entries":[1,{{"Utc":"{UTC}"}}]}}"#),
                "Entries[0]: expected an object with `Utc` and `Cars`, found integer 1",
            ),
            (
                r#"{"Entries":[{"Utc":"2023-05-26T15:31:20+01:00","Cars":{}}]}"#.to_owned(),
                r#"Entries[0].Utc: string "2023-05-26T15:31:20+01:00" is not a timestamp"#,
            ),
            (
                r#"{"Entries":[]} []"#.to_owned(),
                "trailing characters at line 1 column 16",
            ),
            (
                format!(
                    r#"{{"Entries":[],"x":{}1{}}}"#,
                    "[".repeat(1024),
                    "]".repeat(1024)
                ),
                "nesting deeper than 1024 levels",
            ),
        ] {
            let error = parse_car_data(&text).unwrap_err();
            assert!(error.starts_with(reason), "{text}: {error}");
        }
        // The message object is level 1, so 1023 more are fine.
        let ok = format!(
            r#"{{"Entries":[],"x":{}1{}}}"#,
            "[".repeat(1023),
            "]".repeat(1023)
        );
        assert!(parse_car_data(&ok).is_ok());
    }

    #[test]
    fn car_data_batch() {
        let first = encode(&car_data(r#""1":{"Channels":{"0":10000,"45":8}}"#));
        let second = encode(&car_data(
            r#""44":{"Channels":{"2":250}},"16":{"Channels":{"3":7}}"#,
        ));
        let items = [Ok(first.as_bytes()), Ok(second.as_bytes())];
        let batch = decode_car_data(items).unwrap();
        assert_eq!(batch.schema(), *CAR_DATA_SCHEMA);
        assert_eq!(batch.num_rows(), 3);
        let column = |name: &str| batch.column_by_name(name).unwrap().clone();
        assert_eq!(
            column("utc_ms").as_primitive::<Int64Type>().values(),
            &[UTC_MS; 3]
        );
        let drivers = column("driver");
        assert_eq!(drivers.as_primitive::<Int16Type>().values(), &[1, 44, 16]);
        let rpm = column("rpm");
        let rpm: Vec<Option<i32>> = rpm.as_primitive::<Int32Type>().iter().collect();
        assert_eq!(rpm, [Some(10000), None, None]);
        let gear = column("gear");
        let gear: Vec<Option<i8>> = gear.as_primitive::<Int8Type>().iter().collect();
        assert_eq!(gear, [None, None, Some(7)]);

        let empty = decode_car_data(Vec::<Result<&[u8]>>::new()).unwrap();
        assert_eq!(
            (empty.num_rows(), empty.schema()),
            (0, CAR_DATA_SCHEMA.clone())
        );
    }

    #[test]
    fn errors_name_the_payload() {
        let good = encode(&car_data(""));
        let bad = encode("{}");
        let items = [Ok(good.as_bytes()), Ok(good.as_bytes()), Ok(bad.as_bytes())];
        let error = decode_car_data(items).unwrap_err();
        assert_eq!(
            error.to_string(),
            "payload 2: invalid CarData JSON: missing field `Entries` at line 1 column 2"
        );
        let items = [Ok(good.as_bytes()), Ok(&b"!"[..])];
        let error = decode_car_data(items).unwrap_err();
        assert!(
            error.to_string().starts_with("payload 1: invalid base64"),
            "{error}"
        );
        let items = [Ok(good.as_bytes())];
        let error = decode_position(items).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("payload 0: invalid Position JSON: missing field `Position`"),
            "{error}"
        );
    }

    #[test]
    fn position_batch() {
        let text = format!(
            r#"{{"Position":[{{"Timestamp":"{UTC}","Entries":{{
                "1":{{"Status":"OnTrack","X":123,"Y":-456,"Z":7}},
                "2":{{}},
                "3":{{"Status":"Off\u0054rack","Status":"Off\u0054rack","X":null}}}}}}]}}"#
        );
        let entries = parse_position(&text).unwrap();
        assert_eq!(entries.len(), 1);
        let cars = &entries[0].cars;
        assert_eq!(cars[0].1.status.as_deref(), Some("OnTrack"));
        assert!(matches!(cars[0].1.status, Some(Cow::Borrowed(_))));
        assert_eq!(
            (cars[0].1.x, cars[0].1.y, cars[0].1.z),
            (Some(123), Some(-456), Some(7))
        );
        assert_eq!(
            cars[1],
            (
                2,
                Position {
                    status: None,
                    x: None,
                    y: None,
                    z: None
                }
            )
        );
        assert_eq!(cars[2].1.status.as_deref(), Some("OffTrack"));

        let payload = encode(&text);
        let batch = decode_position([Ok(payload.as_bytes())]).unwrap();
        assert_eq!(batch.schema(), *POSITION_SCHEMA);
        let status = batch
            .column_by_name("status")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let status: Vec<Option<&str>> = status.iter().collect();
        assert_eq!(status, [Some("OnTrack"), None, Some("OffTrack")]);

        let bad = format!(
            r#"{{"Position":[{{"Timestamp":"{UTC}","Entries":{{"1":{{"X":2147483648}}}}}}]}}"#
        );
        assert_eq!(
            parse_position(&bad).unwrap_err(),
            r#"Position[0].Entries["1"].X: integer 2147483648 does not fit i32"#
        );
    }
}

//! The fast path against the general parser.

use super::*;
use crate::telemetry::{parse_car_data, parse_position};

const UTC: &str = "2023-05-26T15:31:20.1234567Z";
const UTC_MS: i64 = 1_685_115_080_123;

/// The rows of the fast path, or `None` when it declines.
fn scan_car_data(text: &str) -> Option<Vec<CarRow>> {
    let mut rows = Vec::new();
    car_data(text, &mut rows).map(|()| rows)
}

/// The rows of the general path.
fn parse_car_rows(text: &str) -> Result<Vec<CarRow>, String> {
    let entries = parse_car_data(text)?;
    let cars = entries.iter().flat_map(|entry| {
        let cars = entry.cars.iter();
        cars.map(|&(driver, channels)| (entry.utc_ms, driver, channels))
    });
    Ok(cars.collect())
}

/// Position rows as (`utc_ms`, driver, status, xyz), either path.
type PositionOut = (i64, i16, Option<String>, [Option<i32>; 3]);

fn scan_position(text: &str) -> Option<Vec<PositionOut>> {
    let mut rows = Vec::new();
    position(text, &mut rows)?;
    let status = |row: &PositionRow| row.status.map(|(start, end)| text[start..end].to_owned());
    Some(
        rows.iter()
            .map(|row| (row.utc_ms, row.driver, status(row), row.xyz))
            .collect(),
    )
}

fn parse_position_rows(text: &str) -> Result<Vec<PositionOut>, String> {
    let entries = parse_position(text)?;
    let rows = entries.iter().flat_map(|entry| {
        entry.cars.iter().map(|(driver, p)| {
            let status = p.status.as_deref().map(str::to_owned);
            (entry.utc_ms, *driver, status, [p.x, p.y, p.z])
        })
    });
    Ok(rows.collect())
}

fn car_data_text(cars: &str) -> String {
    format!(r#"{{"Entries":[{{"Utc":"{UTC}","Cars":{{{cars}}}}}]}}"#)
}

const FEED_CARS: &str = r#""1":{"Channels":{"0":10478,"2":180,"3":4,"4":19,"5":0,"45":8}},"44":{"Channels":{"0":-7,"2":null,"3":0,"4":104,"5":100,"45":14}}"#;

#[test]
fn takes_the_feeds_form() {
    let text = car_data_text(FEED_CARS);
    let rows = scan_car_data(&text).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[1].0, rows[1].1), (UTC_MS, 44));
    assert_eq!(rows[1].2.rpm, Some(-7));
    assert_eq!(rows[1].2.speed, None);
    assert_eq!(Ok(rows), parse_car_rows(&text));
}

#[test]
fn takes_other_spellings_of_the_subset() {
    for text in [
        format!(
            " {{ \"Entries\" : [ {{ \"Cars\" : {{ \"0\" : {{ \"Channels\" : {{ \"45\" : 1 ,\
             \"0\" : null }} }} }} , \"Utc\" : \"{UTC}\" }} ] }}\r\n\t"
        ),
        r#"{"Entries":[]}"#.to_owned(),
        format!(
            r#"{{"Entries":[{{"Utc":"{UTC}","Cars":{{}}}},{{"Cars":{{"7":{{"Channels":{{}}}}}},"Utc":"2023-05-26T15:31:21"}}]}}"#
        ),
        car_data_text(r#""32767":{"Channels":{"5":-32768,"3":127,"0":2147483647}}"#),
    ] {
        let rows = scan_car_data(&text);
        assert!(rows.is_some(), "{text}");
        assert_eq!(rows.ok_or(String::new()), parse_car_rows(&text), "{text}");
    }
}

#[test]
fn declines_everything_else() {
    for text in [
        car_data_text(r#""1":{"Channels":{"0":1,"0":2}}"#), // repeated keys
        car_data_text(r#""1":{"Channels":{}},"1":{"Channels":{}}"#),
        format!(r#"{{"Entries":[{{"Utc":"{UTC}","Utc":"{UTC}","Cars":{{}}}}]}}"#),
        r#"{"Entries":[],"Entries":[]}"#.to_owned(),
        car_data_text(r#""1":{"Channels":{"7":1}}"#), // unknown keys
        car_data_text(r#""1":{"Channels":{},"x":1}"#),
        r#"{"Entries":[],"x":1}"#.to_owned(),
        car_data_text(r#""01":{"Channels":{}}"#), // non-canonical drivers
        car_data_text(r#""\u0031":{"Channels":{}}"#), // escapes
        car_data_text(r#""1":{"Channels":{"0":-0}}"#), // numbers
        car_data_text(r#""1":{"Channels":{"0":1.0}}"#),
        car_data_text(r#""1":{"Channels":{"0":1e2}}"#),
        car_data_text(r#""1":{"Channels":{"0":01}}"#),
        car_data_text(r#""1":{"Channels":{"3":128}}"#),
        car_data_text(r#""1":{"Channels":{"0":1234567890123456789}}"#),
        car_data_text(r#""1":{"Channels":{"0":"1"}}"#),
        car_data_text(r#""1":{}"#), // missing fields
        r#"{"Entries":[{"Cars":{}}]}"#.to_owned(),
        format!(r#"{{"Entries":[{{"Utc":"{UTC}"}}]}}"#),
        r"{}".to_owned(),
        r#"{"Entries":[{"Utc":"2023-05-26","Cars":{}}]}"#.to_owned(), // bad timestamp
        format!("{} x", car_data_text("")),                           // trailing text
        car_data_text(r#""1":{"Channels":{"0":1 2}}"#),
    ] {
        assert_eq!(scan_car_data(&text), None, "{text}");
    }
    let many: Vec<String> = (0..=MAX_CARS)
        .map(|i| format!(r#""{i}":{{"Channels":{{}}}}"#))
        .collect();
    assert_eq!(
        scan_car_data(&car_data_text(&many[1..].join(","))).map(|r| r.len()),
        Some(MAX_CARS)
    );
    assert_eq!(scan_car_data(&car_data_text(&many.join(","))), None);
}

/// Every text made from `base` by deleting, replacing or inserting one byte.
fn mutants(base: &str) -> impl Iterator<Item = String> + '_ {
    const BYTES: &[u8] = b" \"\\{}[],:-.e0189nulx";
    let bytes = base.as_bytes();
    (0..=bytes.len()).flat_map(move |i| {
        let deleted = (i < bytes.len()).then(|| [&bytes[..i], &bytes[i + 1..]].concat());
        let changed = BYTES.iter().flat_map(move |&b| {
            let replaced = (i < bytes.len()).then(|| [&bytes[..i], &[b], &bytes[i + 1..]].concat());
            let inserted = [&bytes[..i], &[b], &bytes[i..]].concat();
            replaced.into_iter().chain([inserted])
        });
        deleted
            .into_iter()
            .chain(changed)
            .map(|text| String::from_utf8(text).unwrap())
    })
}

#[test]
fn whatever_it_takes_the_general_path_reads_alike() {
    let (mut taken, mut declined) = (0, 0);
    for base in [
        car_data_text(FEED_CARS),
        car_data_text(r#""2":{"Channels":{"0":null,"45":-1}}"#),
    ] {
        for text in mutants(&base) {
            match scan_car_data(&text) {
                Some(rows) => {
                    taken += 1;
                    assert_eq!(Ok(rows), parse_car_rows(&text), "{text}");
                }
                None => declined += 1,
            }
        }
    }
    assert!(
        taken > 500 && declined > 500,
        "{taken} taken, {declined} declined"
    );

    let (mut taken, mut declined) = (0, 0);
    let base = format!(
        r#"{{"Position":[{{"Timestamp":"{UTC}","Entries":{{"1":{{"Status":"OnTrack","X":-6489,"Y":0,"Z":478}},"22":{{"Z":null,"Status":null}}}}}}]}}"#
    );
    for text in mutants(&base) {
        match scan_position(&text) {
            Some(rows) => {
                taken += 1;
                assert_eq!(Ok(rows), parse_position_rows(&text), "{text}");
            }
            None => declined += 1,
        }
    }
    assert!(
        taken > 500 && declined > 500,
        "{taken} taken, {declined} declined"
    );
}

#[test]
fn position_forms() {
    let text = format!(
        r#"{{"Position":[{{"Timestamp":"{UTC}","Entries":{{"1":{{"Status":"OnTrack","X":1,"Y":-2,"Z":3}},"2":{{}},"3":{{"X":2147483647,"Status":"Off Track"}}}}}}]}}"#
    );
    let rows = scan_position(&text).unwrap();
    assert_eq!(
        rows[0],
        (
            UTC_MS,
            1,
            Some("OnTrack".to_owned()),
            [Some(1), Some(-2), Some(3)]
        )
    );
    assert_eq!(rows[1], (UTC_MS, 2, None, [None; 3]));
    assert_eq!(Ok(rows), parse_position_rows(&text));
    for bad in [
        r#""1":{"Status":"Off\u0054rack"}"#,
        r#""1":{"X":2147483648}"#,
        r#""1":{"Status":1}"#,
        r#""1":{"X":1,"X":1}"#,
        r#""1":{"W":1}"#,
    ] {
        let text = format!(r#"{{"Position":[{{"Timestamp":"{UTC}","Entries":{{{bad}}}}}]}}"#);
        assert_eq!(scan_position(&text), None, "{text}");
    }
}

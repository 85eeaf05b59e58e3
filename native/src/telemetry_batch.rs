//! The telemetry decoders' entry points: payloads in, one Arrow record batch out.
//!
//! Each payload is inflated into the thread's reused buffer, then read by the fast
//! scanner ([`telemetry_scan`]); only a message it declines goes through the general
//! parser ([`telemetry::parse_car_data`], [`telemetry::parse_position`]), which gives
//! the same rows or the error. Both append to the same column builders, in payload order.

use std::sync::Arc;

use arrow_array::builder::{Int16Builder, Int32Builder, Int64Builder, Int8Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};

use crate::error::{Error, Result};
use crate::telemetry::{self, CarEntry, Channels, PositionEntry, CAR_DATA_SCHEMA, POSITION_SCHEMA};
use crate::telemetry_scan::{self, CarRow, PositionRow};
use crate::zdecode;

/// Column builders of [`CAR_DATA_SCHEMA`].
#[derive(Default)]
struct CarDataColumns {
    utc_ms: Int64Builder,
    driver: Int16Builder,
    rpm: Int32Builder,
    speed: Int16Builder,
    gear: Int8Builder,
    throttle: Int16Builder,
    brake: Int16Builder,
    drs: Int16Builder,
}

impl CarDataColumns {
    fn append_row(&mut self, utc_ms: i64, driver: i16, channels: &Channels) {
        self.utc_ms.append_value(utc_ms);
        self.driver.append_value(driver);
        self.rpm.append_option(channels.rpm);
        self.speed.append_option(channels.speed);
        self.gear.append_option(channels.gear);
        self.throttle.append_option(channels.throttle);
        self.brake.append_option(channels.brake);
        self.drs.append_option(channels.drs);
    }

    fn append_rows(&mut self, rows: &[CarRow]) {
        for (utc_ms, driver, channels) in rows {
            self.append_row(*utc_ms, *driver, channels);
        }
    }

    fn append_entries(&mut self, entries: &[CarEntry]) {
        for entry in entries {
            for (driver, channels) in &entry.cars {
                self.append_row(entry.utc_ms, *driver, channels);
            }
        }
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.utc_ms.finish()),
            Arc::new(self.driver.finish()),
            Arc::new(self.rpm.finish()),
            Arc::new(self.speed.finish()),
            Arc::new(self.gear.finish()),
            Arc::new(self.throttle.finish()),
            Arc::new(self.brake.finish()),
            Arc::new(self.drs.finish()),
        ];
        Ok(RecordBatch::try_new(CAR_DATA_SCHEMA.clone(), columns)?)
    }
}

/// Decodes `CarData.z` payloads (see [`zdecode`]) into one batch of [`CAR_DATA_SCHEMA`].
///
/// # Errors
///
/// The first bad payload's error (decoding or JSON), wrapped in [`Error::Item`].
pub fn decode_car_data<'a, I>(payloads: I) -> Result<RecordBatch>
where
    I: IntoIterator<Item = Result<&'a [u8]>>,
{
    let mut columns = CarDataColumns::default();
    let mut rows = Vec::new(); // reused: no allocation per payload once grown
    for_each_text(payloads, "CarData", |text| {
        rows.clear();
        if telemetry_scan::car_data(text, &mut rows).is_some() {
            columns.append_rows(&rows);
        } else {
            columns.append_entries(&telemetry::parse_car_data(text)?);
        }
        Ok(())
    })?;
    columns.finish()
}

/// Column builders of [`POSITION_SCHEMA`].
#[derive(Default)]
struct PositionColumns {
    utc_ms: Int64Builder,
    driver: Int16Builder,
    status: StringBuilder,
    x: Int32Builder,
    y: Int32Builder,
    z: Int32Builder,
}

impl PositionColumns {
    fn append_row(
        &mut self,
        utc_ms: i64,
        driver: i16,
        status: Option<&str>,
        xyz: [Option<i32>; 3],
    ) {
        self.utc_ms.append_value(utc_ms);
        self.driver.append_value(driver);
        self.status.append_option(status);
        self.x.append_option(xyz[0]);
        self.y.append_option(xyz[1]);
        self.z.append_option(xyz[2]);
    }

    fn append_rows(&mut self, text: &str, rows: &[PositionRow]) {
        for row in rows {
            let status = row.status.map(|(start, end)| &text[start..end]);
            self.append_row(row.utc_ms, row.driver, status, row.xyz);
        }
    }

    fn append_entries(&mut self, entries: &[PositionEntry<'_>]) {
        for entry in entries {
            for (driver, position) in &entry.cars {
                let xyz = [position.x, position.y, position.z];
                self.append_row(entry.utc_ms, *driver, position.status.as_deref(), xyz);
            }
        }
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.utc_ms.finish()),
            Arc::new(self.driver.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.x.finish()),
            Arc::new(self.y.finish()),
            Arc::new(self.z.finish()),
        ];
        Ok(RecordBatch::try_new(POSITION_SCHEMA.clone(), columns)?)
    }
}

/// Decodes `Position.z` payloads into one batch of [`POSITION_SCHEMA`].
///
/// # Errors
///
/// The first bad payload's error (decoding or JSON), wrapped in [`Error::Item`].
pub fn decode_position<'a, I>(payloads: I) -> Result<RecordBatch>
where
    I: IntoIterator<Item = Result<&'a [u8]>>,
{
    let mut columns = PositionColumns::default();
    let mut rows = Vec::new();
    for_each_text(payloads, "Position", |text| {
        rows.clear();
        if telemetry_scan::position(text, &mut rows).is_some() {
            columns.append_rows(text, &rows);
        } else {
            columns.append_entries(&telemetry::parse_position(text)?);
        }
        Ok(())
    })?;
    columns.finish()
}

/// Inflates each payload with this thread's decoder (into its reused buffer) and hands
/// its text to `f`; errors name the payload's index, `f`'s as invalid `topic` JSON.
fn for_each_text<'a, I>(
    payloads: I,
    topic: &'static str,
    mut f: impl FnMut(&str) -> Result<(), String>,
) -> Result<()>
where
    I: IntoIterator<Item = Result<&'a [u8]>>,
{
    zdecode::with_decoder(|decoder| {
        for (index, payload) in payloads.into_iter().enumerate() {
            let text = payload
                .and_then(|payload| decoder.decode_str(payload))
                .map_err(|e| e.at(index))?;
            f(text).map_err(|reason| Error::Json { topic, reason }.at(index))?;
        }
        Ok(())
    })
}

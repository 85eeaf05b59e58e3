//! `f1daemon._native`: the hot paths of ingesting the F1 live-timing feed.
//!
//! The logic lives in pyo3-free modules ([`jsonstream`], [`zdecode`], [`telemetry`]) that
//! `cargo test` exercises without an interpreter; this file only binds them to Python and
//! releases the GIL around the work ([`arrow_export`] hands Arrow batches to pyarrow).

pub mod arrow_export;
pub mod error;
pub mod jsonstream;
pub mod shape;
pub mod telemetry;
pub mod timestamp;
pub mod zdecode;

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString};

use crate::error::{Error, Result};

/// Borrows the bytes of a `str` (must be ASCII, as base64 is) or `bytes` payload.
fn payload_bytes<'a>(payload: &'a Bound<'_, PyAny>) -> Result<&'a [u8]> {
    if let Ok(bytes) = payload.cast::<PyBytes>() {
        return Ok(bytes.as_bytes());
    }
    if let Ok(text) = payload.cast::<PyString>() {
        // `to_str` fails only for lone surrogates, which are not ASCII either.
        return match text.to_str() {
            Ok(text) if text.is_ascii() => Ok(text.as_bytes()),
            _ => Err(Error::NonAscii),
        };
    }
    Err(Error::WrongType(format!(
        "payload must be str or bytes, not {}",
        type_name(payload)
    )))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// Splits a `.jsonStream` archive file into `(line_number, offset_ms, text)` tuples.
///
/// One tuple per non-blank line: the 1-based physical line number, the `HH:MM:SS.mmm`
/// prefix in milliseconds (or `None` when the line has none or is not UTF-8) and the
/// rest of the line (the whole line when there is no timestamp; decoded with U+FFFD
/// replacements when not UTF-8). A leading BOM and `\r` line ends are dropped.
#[pyfunction]
fn split_json_stream<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let lines = py.detach(|| jsonstream::split_json_stream(data));
    PyList::new(
        py,
        lines
            .iter()
            .map(|line| (line.number, line.offset_ms, line.text.as_ref())),
    )
}

/// Decodes a `.z` payload: base64 → raw inflate → UTF-8 text (BOM stripped).
///
/// Raises `ValueError` on invalid base64 (strict, padded, standard alphabet), an
/// invalid or truncated deflate stream, invalid UTF-8, or an inflated size above
/// `MAX_DECODED_BYTES`; `TypeError` when `payload` is neither `str` nor `bytes`.
#[pyfunction]
fn decode_z(py: Python<'_>, payload: &Bound<'_, PyAny>) -> PyResult<String> {
    let bytes = payload_bytes(payload)?;
    Ok(py.detach(|| zdecode::decode_z(bytes))?)
}

/// Decodes many `.z` payloads (see `decode_z`) with the GIL released.
///
/// Raises `ValueError` (or `TypeError`) naming the index of the first bad payload.
#[pyfunction]
fn decode_z_many<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    if payloads.is_instance_of::<PyString>()
        || payloads.is_instance_of::<PyBytes>()
        || payloads.is_instance_of::<PyByteArray>()
    {
        return Err(Error::WrongType(format!(
            "payloads must be a sequence of str or bytes, not {}",
            type_name(payloads)
        ))
        .into());
    }
    let items = payloads
        .try_iter()?
        .collect::<PyResult<Vec<Bound<'py, PyAny>>>>()?;
    // Borrow every buffer while attached; the objects stay alive in `items`.
    let borrowed: Vec<Result<&[u8]>> = items.iter().map(payload_bytes).collect();
    let texts = py.detach(move || zdecode::decode_z_many(borrowed))?;
    PyList::new(py, texts)
}

/// The payloads of a telemetry decoder: one `str`/`bytes` payload or an iterable of them.
fn telemetry_payloads<'py>(payloads: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if payloads.is_instance_of::<PyString>() || payloads.is_instance_of::<PyBytes>() {
        return Ok(vec![payloads.clone()]);
    }
    if payloads.is_instance_of::<PyByteArray>() {
        return Err(Error::WrongType(
            "payloads must be str, bytes or a sequence of them, not bytearray".to_owned(),
        )
        .into());
    }
    payloads.try_iter()?.collect()
}

/// Decodes `CarData.z` payloads into one `pyarrow.RecordBatch`, one row per (entry, car).
///
/// Columns: `utc_ms` int64, `driver` int16, `rpm` int32, `speed` int16, `gear` int8,
/// `throttle`, `brake`, `drs` int16 (channels `"0"`, `"2"`, `"3"`, `"4"`, `"5"`, `"45"`;
/// null when absent or null). Raises `ValueError` naming the first bad payload's index
/// (bad base64/deflate/UTF-8, invalid JSON, or JSON of another shape: see the stub);
/// `TypeError` for a payload that is neither `str` nor `bytes`.
#[pyfunction]
fn decode_car_data<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let items = telemetry_payloads(payloads)?;
    let borrowed: Vec<Result<&[u8]>> = items.iter().map(payload_bytes).collect();
    let batch = py.detach(move || telemetry::decode_car_data(borrowed))?;
    arrow_export::record_batch_to_pyarrow(py, batch)
}

/// Decodes `Position.z` payloads into one `pyarrow.RecordBatch`, one row per (entry, car).
///
/// Columns: `utc_ms` int64, `driver` int16, `status` string, `x`, `y`, `z` int32 (null
/// when absent or null). Errors as `decode_car_data`.
#[pyfunction]
fn decode_position<'py>(
    py: Python<'py>,
    payloads: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let items = telemetry_payloads(payloads)?;
    let borrowed: Vec<Result<&[u8]>> = items.iter().map(payload_bytes).collect();
    let batch = py.detach(move || telemetry::decode_position(borrowed))?;
    arrow_export::record_batch_to_pyarrow(py, batch)
}

/// The native module (`f1daemon._native`).
#[pymodule]
mod _native {
    #[pymodule_export]
    use super::{decode_car_data, decode_position, decode_z, decode_z_many, split_json_stream};

    /// Inflated-size cap of `decode_z` / `decode_z_many` in bytes.
    #[pymodule_export]
    const MAX_DECODED_BYTES: usize = crate::zdecode::MAX_DECODED_BYTES;

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}

//! `f1daemon._native`: the hot paths of ingesting the F1 live-timing feed.
//!
//! The logic lives in pyo3-free modules ([`jsonstream`], [`zdecode`], [`telemetry`],
//! [`timing`]) that `cargo test` exercises without an interpreter; this file only binds
//! them to Python and releases the GIL around the work ([`arrow_export`] hands Arrow
//! batches to pyarrow). [`anomaly`] is pyo3-free too, apart from its own `python` binding.

pub mod anomaly;
pub mod arrow_export;
pub mod error;
pub mod jsonstream;
pub mod shape;
pub mod telemetry;
pub mod telemetry_batch;
pub mod telemetry_scan;
pub mod timestamp;
pub mod timing;
pub mod zdecode;

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString, PyTuple};
use pyo3::IntoPyObjectExt;

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

/// The text of a `TimingData` payload: a `str`, or `bytes` that must be UTF-8.
fn payload_text<'a>(payload: &'a Bound<'_, PyAny>) -> Result<&'a str> {
    if let Ok(bytes) = payload.cast::<PyBytes>() {
        return std::str::from_utf8(bytes.as_bytes())
            .map_err(|e| timing::json_error(format!("payload is not valid UTF-8: {e}")));
    }
    if let Ok(text) = payload.cast::<PyString>() {
        return text.to_str().map_err(|_| {
            timing::json_error("payload is not valid UTF-8: it contains surrogates".to_owned())
        });
    }
    Err(Error::WrongType(format!(
        "payload must be str or bytes, not {}",
        type_name(payload)
    )))
}

/// An entry as the 16-tuple `TimingDigest.feed` returns (see the stub's `TimingEntry`).
fn entry_to_python<'py>(py: Python<'py>, entry: &timing::Entry) -> PyResult<Bound<'py, PyTuple>> {
    let [s1, s2, s3] = entry.sectors_ms;
    let [i1, i2, fl, st] = entry.speeds;
    let items = [
        entry.driver.into_bound_py_any(py)?,
        entry.number_of_laps.into_bound_py_any(py)?,
        entry.in_pit.into_bound_py_any(py)?,
        entry.pit_out.into_bound_py_any(py)?,
        entry.position.into_bound_py_any(py)?,
        entry.lap_time_ms.into_bound_py_any(py)?,
        entry.personal_fastest.into_bound_py_any(py)?,
        s1.into_bound_py_any(py)?,
        s2.into_bound_py_any(py)?,
        s3.into_bound_py_any(py)?,
        i1.into_bound_py_any(py)?,
        i2.into_bound_py_any(py)?,
        fl.into_bound_py_any(py)?,
        st.into_bound_py_any(py)?,
        entry.gap_to_leader.as_deref().into_bound_py_any(py)?,
        entry
            .interval_to_position_ahead
            .as_deref()
            .into_bound_py_any(py)?,
    ];
    PyTuple::new(py, items)
}

/// A digest as the `(session_part, entries, gaps)` tuple `TimingDigest.feed` returns.
fn digest_to_python<'py>(
    py: Python<'py>,
    digest: &timing::Digest,
) -> PyResult<Bound<'py, PyTuple>> {
    let entries = digest
        .entries
        .iter()
        .map(|entry| entry_to_python(py, entry))
        .collect::<PyResult<Vec<_>>>()?;
    let gaps = digest
        .gaps
        .iter()
        .map(|change| {
            let gap = change.gap_to_leader.as_deref();
            let interval = change.interval_to_position_ahead.as_deref();
            (change.driver, gap, interval).into_pyobject(py)
        })
        .collect::<PyResult<Vec<_>>>()?;
    (
        digest.session_part,
        PyList::new(py, entries)?,
        PyList::new(py, gaps)?,
    )
        .into_pyobject(py)
}

/// The digest of `TimingData` messages: what `f1daemon.feed.laps.LapFitter` reads of
/// each, typed, plus each driver's latest `GapToLeader` and interval to the car ahead, and
/// their changes (rules: `native/src/timing.rs`).
#[pyclass(name = "TimingDigest", module = "f1daemon._native")]
#[derive(Default)]
struct PyTimingDigest {
    inner: timing::TimingDigest,
}

#[pymethods]
impl PyTimingDigest {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Digests one message: `(session_part, entries, gaps)` if it is relevant, else `None`.
    ///
    /// Raises `ValueError` when the payload is not a JSON object (the state is then
    /// unchanged), `TypeError` when it is neither `str` nor `bytes`.
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        payload: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let text = payload_text(payload)?;
        let digest = self.inner.feed(text).map_err(timing::json_error)?;
        digest
            .map(|digest| digest_to_python(py, &digest))
            .transpose()
    }
}

/// Digests a whole `TimingData.jsonStream` file with a fresh `TimingDigest`.
///
/// Split as `split_json_stream`; returns `(line_number, offset_ms, digest, error)` for the
/// first non-blank line (the keyframe), every relevant line, every undated line (not
/// fed: `None, None, None`) and every line that is not a JSON object (`digest` None,
/// `error` the `ValueError` message `feed` raises). The work runs without the GIL.
#[pyfunction]
fn digest_timing_stream<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let lines = py.detach(|| timing::digest_stream(data));
    let items = lines
        .iter()
        .map(|line| {
            let digest = match &line.digest {
                Some(digest) => digest_to_python(py, digest)?.into_any(),
                None => py.None().into_bound(py),
            };
            let item = (line.number, line.offset_ms, digest, line.error.as_deref());
            item.into_pyobject(py)
        })
        .collect::<PyResult<Vec<Bound<'py, PyTuple>>>>()?;
    PyList::new(py, items)
}

/// The native module (`f1daemon._native`).
#[pymodule]
mod _native {
    #[pymodule_export]
    use super::{
        decode_car_data, decode_position, decode_z, decode_z_many, digest_timing_stream,
        split_json_stream, PyTimingDigest,
    };

    #[pymodule_export]
    use crate::anomaly::python::AnomalyDetector;

    /// Inflated-size cap of `decode_z` / `decode_z_many` in bytes.
    #[pymodule_export]
    const MAX_DECODED_BYTES: usize = crate::zdecode::MAX_DECODED_BYTES;

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}

//! Hands Arrow record batches to pyarrow through the Arrow C data interface, wrapped in
//! the capsules of the Arrow `PyCapsule` interface (`arrow_schema`, `arrow_array`).
//!
//! No data is copied: pyarrow takes over the buffers and frees them through the
//! `release` callbacks. A capsule pyarrow did not consume releases its struct when it is
//! destroyed (the structs' `Drop`).

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::{Array as _, RecordBatch, StructArray};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCapsule, PyType};

use crate::error::Error;

/// `pyarrow.RecordBatch` holding `batch`'s buffers.
///
/// # Errors
///
/// When pyarrow cannot be imported or refuses the batch (a bug).
pub fn record_batch_to_pyarrow(py: Python<'_>, batch: RecordBatch) -> PyResult<Bound<'_, PyAny>> {
    static RECORD_BATCH: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let schema = FFI_ArrowSchema::try_from(batch.schema().as_ref()).map_err(Error::from)?;
    let array = FFI_ArrowArray::new(&StructArray::from(batch).into_data());
    let schema = PyCapsule::new_with_value(py, schema, c"arrow_schema")?;
    let array = PyCapsule::new_with_value(py, array, c"arrow_array")?;
    RECORD_BATCH
        .import(py, "pyarrow", "RecordBatch")?
        .call_method1(intern!(py, "_import_from_c_capsule"), (schema, array))
}

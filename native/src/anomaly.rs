//! Streaming anomaly detection over telemetry: rolling z-score, robust (median / MAD)
//! z-score, single-sample spikes and flat lines, per (driver, channel).
//!
//! The rules, precisely (`tests/native_reference.py` implements the same in Python, with
//! the same float operations in the same order, so both find the same anomalies with
//! bit-identical scores):
//!
//! * Samples are processed row by row; a row is a driver, a time and one value per
//!   channel, the channels in the order given. A value is *used* iff it is finite
//!   (`None`, NaN, ±inf are skipped: no state changes); `-0.0` is read as `0.0`. The time
//!   is carried into the anomalies, never interpreted (order is arrival order).
//! * State is per (driver, channel) and carries over from one call to the next: feeding
//!   rows in two calls finds exactly what feeding them in one call finds.
//! * The *window* of a (driver, channel) is its last `window` used values *before* the
//!   sample being scored (the sample joins it afterwards). The statistics need at least
//!   `min_samples` values in it:
//!   - `mean = S(w) / n`, `std = sqrt(S((w - mean)²) / n)` (population), where `S` adds
//!     the window's values *in ascending order* in 4 interleaved partial sums
//!     ([`lane_sum`]);
//!   - `median`: the middle value, or `(a + b) / 2` of the middle two; `mad`: the same
//!     median of the absolute deviations `|w - median|`; `mean_ad = S(|w - median|) / n`.
//! * `zscore`: `z = (x - mean) / std`, when `std > 0`.
//! * `mad`: the modified z-score `0.6745 * (x - median) / mad` when `mad > 0`; when
//!   `mad == 0` (over half the window holds one value) `(x - median) / (1.253314 *
//!   mean_ad)` (Iglewicz & Hoaglin's scale for that case), when `mean_ad > 0`; a window
//!   of one repeated value gives no score (a change after a constant stretch, such as a
//!   car leaving the garage, is a new regime, not an outlier; a stuck sensor is the
//!   flat-line rule's business). No score when the median is not finite.
//! * `spike`: a sample `x` between used samples `p` (before) and `q` (after) whose window
//!   had `std > 0`: with `rise = x - p` and `fall = q - x` of opposite signs (both
//!   non-zero), the score is `min(|rise|, |fall|) / std`, negated when `rise < 0`. It is
//!   decided when `q` arrives (before `q`'s own detectors) and reported with `x`'s time
//!   and value; the last sample so far is never a spike yet.
//! * `flatline`, on the `flatline_channels` only: the run length of equal consecutive
//!   used values; with `flatline_while_moving`, a sample taken while the driver stands
//!   (their latest used `speed` value, the row's own included, is known and `<= 0`) ends
//!   the run and starts none. Reported once per run, at the sample where the run reaches
//!   `flatline_run`, with score `flatline_run`.
//! * A score is reported iff it is finite and its absolute value exceeds the detector's
//!   threshold (statistics that overflow `f64`, with values beyond about 1e150, give
//!   none). Per sample: the spike verdict on the sample before, then `zscore`, `mad`,
//!   `flatline`.

use std::collections::{HashMap, HashSet, VecDeque};

/// The channel whose latest value says whether a car is moving (the flat-line gate).
pub const SPEED: &str = "speed";
/// Scales the MAD of a normal sample to its standard deviation.
pub const MAD_FACTOR: f64 = 0.6745;
/// Scales the mean absolute deviation (around the median) to a standard deviation.
pub const MEAN_AD_FACTOR: f64 = 1.253_314;
/// Largest `window`: the sorted window's inserts move at most this many values.
pub const MAX_WINDOW: usize = 65_536;
/// Largest `flatline_run`.
pub const MAX_FLATLINE_RUN: u64 = 1 << 32;

/// What the detector was asked to do that it cannot: a `ValueError` in Python.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnomalyError {
    /// A setting out of its range.
    #[error("{0}")]
    Config(String),
    /// Columns of different lengths.
    #[error("driver, time_ms and every channel column must have one length")]
    Lengths,
}

/// The detectors' settings (see the module documentation for what each does).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Values in the window.
    pub window: usize,
    /// Values the window needs before a sample is scored.
    pub min_samples: usize,
    /// `zscore` reports `|z| >` this (`inf` disables it).
    pub zscore_threshold: f64,
    /// `mad` reports `|score| >` this.
    pub mad_threshold: f64,
    /// `spike` reports `|score| >` this.
    pub spike_threshold: f64,
    /// Run length a flat line is reported at.
    pub flatline_run: u64,
    /// Channels watched for flat lines.
    pub flatline_channels: HashSet<String>,
    /// Whether only samples taken while the driver moves count towards a flat line.
    pub flatline_while_moving: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            window: 50,
            min_samples: 10,
            zscore_threshold: 3.0,
            mad_threshold: 3.5,
            spike_threshold: 3.0,
            flatline_run: 50,
            flatline_channels: ["rpm", SPEED].map(str::to_owned).into(),
            flatline_while_moving: true,
        }
    }
}

impl Config {
    /// Checks every setting's range.
    ///
    /// # Errors
    ///
    /// [`AnomalyError::Config`] naming the first setting out of range.
    pub fn validate(&self) -> Result<(), AnomalyError> {
        // The messages name the range, not the value: the Python binding saturates
        // negative integers to 0 before it gets here.
        let fail = |message: String| Err(AnomalyError::Config(message));
        if !(2..=MAX_WINDOW).contains(&self.window) {
            return fail(format!("window must be between 2 and {MAX_WINDOW}"));
        }
        if !(2..=MAX_FLATLINE_RUN).contains(&self.flatline_run) {
            return fail(format!(
                "flatline_run must be between 2 and {MAX_FLATLINE_RUN}"
            ));
        }
        if !(2..=self.window).contains(&self.min_samples) {
            return fail("min_samples must be between 2 and window".to_owned());
        }
        for (name, threshold) in [
            ("zscore_threshold", self.zscore_threshold),
            ("mad_threshold", self.mad_threshold),
            ("spike_threshold", self.spike_threshold),
        ] {
            if threshold.is_nan() || threshold < 0.0 {
                return fail(format!("{name} must be >= 0 (inf disables it)"));
            }
        }
        Ok(())
    }
}

/// Which detector found an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Rolling z-score.
    ZScore,
    /// Modified (median / MAD) z-score.
    Mad,
    /// A single sample out and back.
    Spike,
    /// A value repeated `flatline_run` times.
    Flatline,
}

impl Kind {
    /// The name Python sees.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ZScore => "zscore",
            Self::Mad => "mad",
            Self::Spike => "spike",
            Self::Flatline => "flatline",
        }
    }
}

/// An index into the detector's channel names ([`Detector::channel_id`]).
pub type ChannelId = usize;

/// One anomalous sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anomaly {
    /// Driver (racing number).
    pub driver: i64,
    /// Channel ([`Detector::channel_name`]).
    pub channel: ChannelId,
    /// The sample's time, as fed.
    pub time_ms: i64,
    /// The sample's value.
    pub value: f64,
    /// The detector's score (see the module documentation).
    pub score: f64,
    /// The detector.
    pub kind: Kind,
}

/// One channel's values for the rows of a [`Detector::feed`] call (non-finite: skipped).
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    /// The channel.
    pub channel: ChannelId,
    /// One value per row.
    pub values: &'a [f64],
}

/// `values` added in 4 interleaved partial sums: item `i` goes to sum `i % 4`, and the
/// result is `(s0 + s1) + (s2 + s3)`.
///
/// Four independent sums let the CPU add four at a time (a plain left-to-right sum is one
/// long dependency chain); the Python reference adds in the same order.
#[must_use]
pub fn lane_sum(values: &[f64], term: impl Fn(f64) -> f64) -> f64 {
    let mut lanes = [0.0_f64; 4];
    let chunks = values.chunks_exact(4);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane += term(value);
        }
    }
    for (lane, &value) in lanes.iter_mut().zip(rest) {
        *lane += term(value);
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
}

/// `(a + b) / 2`, as the Python reference computes it (`f64::midpoint` avoids overflow
/// in another order of operations; an overflowing median here is infinite and scores
/// nothing).
#[allow(clippy::manual_midpoint)]
fn midpoint(a: f64, b: f64) -> f64 {
    (a + b) / 2.0
}

/// The median of an ascending, non-empty slice (`NaN` for an empty one).
#[must_use]
pub fn median_of_sorted(ordered: &[f64]) -> f64 {
    let half = ordered.len() / 2;
    if ordered.len() % 2 == 1 {
        ordered[half]
    } else if half == 0 {
        f64::NAN
    } else {
        midpoint(ordered[half - 1], ordered[half])
    }
}

/// How many values of the ascending `ordered` are below `value` (`bisect_left`), or at
/// most `value` when `inclusive`.
///
/// Up to [`LINEAR_COUNT_MAX`] values, counting every comparison is faster than a binary
/// search: the comparisons are independent, so the CPU does several at once and never
/// mispredicts a branch.
fn count_below(ordered: &[f64], value: f64, inclusive: bool) -> usize {
    match (ordered.len() <= LINEAR_COUNT_MAX, inclusive) {
        (true, false) => ordered.iter().map(|&v| usize::from(v < value)).sum(),
        (true, true) => ordered.iter().map(|&v| usize::from(v <= value)).sum(),
        (false, false) => ordered.partition_point(|&v| v < value),
        (false, true) => ordered.partition_point(|&v| v <= value),
    }
}

/// Windows up to this size find positions by counting ([`count_below`]).
const LINEAR_COUNT_MAX: usize = 128;

/// The median of `|v - median|` over an ascending slice, without sorting the deviations.
///
/// The values up to the median have deviations `median - v` ascending towards the left
/// (`left(t)`, `t` from the middle), the others `v - median` ascending towards the right
/// (`right(t)`): two sorted runs. The middle of their merge is found by a binary search on
/// how many of the smallest `take` come from the left run (`O(log n)`). Each deviation is
/// one correctly rounded subtraction, exactly as `abs(v - median)` computes it, and
/// rounding is monotonic, so the runs really are sorted and the result equals sorting.
#[must_use]
pub fn mad_of_sorted(ordered: &[f64], median: f64) -> f64 {
    let n = ordered.len();
    if n == 0 {
        return f64::NAN;
    }
    let (below, above) = ordered.split_at(count_below(ordered, median, true));
    // A position past the end of a run reads as +inf: never the smallest next deviation.
    let left = |t: usize| {
        below
            .len()
            .checked_sub(t + 1)
            .and_then(|i| below.get(i))
            .map_or(f64::INFINITY, |&v| median - v)
    };
    let right = |t: usize| above.get(t).map_or(f64::INFINITY, |&v| v - median);
    // The `take` smallest deviations end with the (lower) middle one.
    let take = (n - 1) / 2 + 1;
    // `from_left`: how many of them come from the left run; the smallest count for which
    // the next left deviation is not below the last right one taken.
    let (mut low, mut high) = (take.saturating_sub(above.len()), take.min(below.len()));
    while low < high {
        let from_left = low + (high - low) / 2;
        if left(from_left) < right(take - from_left - 1) {
            low = from_left + 1;
        } else {
            high = from_left;
        }
    }
    let from_right = take - low;
    let last_left = if low > 0 {
        left(low - 1)
    } else {
        f64::NEG_INFINITY
    };
    let last_right = if from_right > 0 {
        right(from_right - 1)
    } else {
        f64::NEG_INFINITY
    };
    let lower = last_left.max(last_right);
    if n % 2 == 1 {
        lower
    } else {
        midpoint(lower, left(low).min(right(from_right)))
    }
}

/// The last `window` values of a (driver, channel), in arrival and in ascending order.
#[derive(Debug, Default)]
struct Window {
    arrivals: VecDeque<f64>,
    /// Ascending; finite values only, so the order is total (`-0.0` never enters).
    ordered: Vec<f64>,
}

impl Window {
    /// Appends `value`, dropping the oldest value when the window is full.
    ///
    /// Dropping and inserting is one shift of the values between the two positions.
    fn push(&mut self, value: f64, capacity: usize) {
        let oldest = if self.arrivals.len() >= capacity {
            self.arrivals.pop_front()
        } else {
            None
        };
        self.arrivals.push_back(value);
        let ordered = &mut self.ordered;
        let Some(oldest) = oldest else {
            let at = count_below(ordered, value, false);
            ordered.insert(at, value);
            return;
        };
        // Equal values are identical (no NaN, no -0.0): any copy of `oldest` may go.
        let from = count_below(ordered, oldest, false);
        // Where `value` goes once `oldest` is out.
        let to = count_below(ordered, value, false) - usize::from(oldest < value);
        if from >= ordered.len() {
            // Unreachable (`oldest` is in the window); stay consistent without panicking.
            ordered.insert(count_below(ordered, value, false), value);
            return;
        }
        if to < from {
            ordered.copy_within(to..from, to + 1);
        } else if to > from {
            ordered.copy_within(from + 1..=to, from);
        }
        ordered[to] = value;
    }
}

/// A sample that becomes a spike if the next one comes back.
#[derive(Debug, Clone, Copy)]
struct SpikeCandidate {
    before: f64,
    value: f64,
    time_ms: i64,
    std: f64,
}

/// The state of one (driver, channel).
#[derive(Debug, Default)]
struct ChannelState {
    window: Window,
    previous: Option<f64>,
    candidate: Option<SpikeCandidate>,
    run_value: f64,
    run_length: u64,
}

/// What a sample needs to know beyond its channel's state.
#[derive(Debug, Clone, Copy)]
struct SampleContext {
    driver: i64,
    channel: ChannelId,
    time_ms: i64,
    /// Whether the channel is watched for flat lines.
    flatline: bool,
    /// Whether the driver is known to stand (latest speed `<= 0`).
    standing: bool,
}

impl ChannelState {
    /// One used sample (finite, `-0.0` read as `0.0`): the module's rules, in their order.
    fn sample(&mut self, config: &Config, at: SampleContext, value: f64, out: &mut Vec<Anomaly>) {
        let anomaly = |time_ms, value, score, kind| Anomaly {
            driver: at.driver,
            channel: at.channel,
            time_ms,
            value,
            score,
            kind,
        };
        if let Some(candidate) = self.candidate.take() {
            let rise = candidate.value - candidate.before;
            let fall = value - candidate.value;
            if (rise > 0.0 && fall < 0.0) || (rise < 0.0 && fall > 0.0) {
                let size = rise.abs().min(fall.abs()) / candidate.std;
                let score = if rise < 0.0 { -size } else { size };
                if score.is_finite() && score.abs() > config.spike_threshold {
                    out.push(anomaly(
                        candidate.time_ms,
                        candidate.value,
                        score,
                        Kind::Spike,
                    ));
                }
            }
        }
        let ordered = &self.window.ordered;
        if ordered.len() >= config.min_samples {
            #[allow(clippy::cast_precision_loss)] // n <= MAX_WINDOW: exact
            let count = ordered.len() as f64;
            let mean = lane_sum(ordered, |v| v) / count;
            let std = (lane_sum(ordered, |v| (v - mean) * (v - mean)) / count).sqrt();
            if std > 0.0 {
                let z = (value - mean) / std;
                if z.is_finite() && z.abs() > config.zscore_threshold {
                    out.push(anomaly(at.time_ms, value, z, Kind::ZScore));
                }
                if let Some(before) = self.previous {
                    self.candidate = Some(SpikeCandidate {
                        before,
                        value,
                        time_ms: at.time_ms,
                        std,
                    });
                }
            }
            let median = median_of_sorted(ordered);
            if median.is_finite() {
                let mad = mad_of_sorted(ordered, median);
                let score = if mad > 0.0 {
                    Some(MAD_FACTOR * (value - median) / mad)
                } else {
                    let mean_ad = lane_sum(ordered, |v| (v - median).abs()) / count;
                    (mean_ad > 0.0).then(|| (value - median) / (MEAN_AD_FACTOR * mean_ad))
                };
                if let Some(score) = score {
                    if score.is_finite() && score.abs() > config.mad_threshold {
                        out.push(anomaly(at.time_ms, value, score, Kind::Mad));
                    }
                }
            }
        }
        if at.flatline {
            if config.flatline_while_moving && at.standing {
                self.run_length = 0;
            } else if self.run_length > 0 && value.total_cmp(&self.run_value).is_eq() {
                self.run_length = self.run_length.saturating_add(1);
            } else {
                self.run_value = value;
                self.run_length = 1;
            }
            if self.run_length == config.flatline_run {
                #[allow(clippy::cast_precision_loss)] // <= 2^32: exact
                let run = config.flatline_run as f64;
                out.push(anomaly(at.time_ms, value, run, Kind::Flatline));
            }
        }
        self.window.push(value, config.window);
        self.previous = Some(value);
    }
}

/// The state of one driver.
#[derive(Debug, Default)]
struct DriverState {
    /// The latest used `speed` value.
    speed: Option<f64>,
    /// By [`ChannelId`]; grown on demand.
    channels: Vec<ChannelState>,
}

/// The streaming detector: settings, channel names and per (driver, channel) state.
#[derive(Debug)]
pub struct Detector {
    config: Config,
    names: Vec<String>,
    ids: HashMap<String, ChannelId>,
    /// By [`ChannelId`]: whether the channel is in `flatline_channels`.
    flatline: Vec<bool>,
    drivers: HashMap<i64, DriverState>,
}

impl Detector {
    /// A detector with no state yet.
    ///
    /// # Errors
    ///
    /// [`AnomalyError::Config`] when a setting is out of range ([`Config::validate`]).
    pub fn new(config: Config) -> Result<Self, AnomalyError> {
        config.validate()?;
        Ok(Self {
            config,
            names: Vec::new(),
            ids: HashMap::new(),
            flatline: Vec::new(),
            drivers: HashMap::new(),
        })
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The id of channel `name`, registered on first use.
    pub fn channel_id(&mut self, name: &str) -> ChannelId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len();
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        self.flatline
            .push(self.config.flatline_channels.contains(name));
        id
    }

    /// The name of channel `id` (empty for an id never handed out).
    #[must_use]
    pub fn channel_name(&self, id: ChannelId) -> &str {
        self.names.get(id).map_or("", String::as_str)
    }

    /// Feeds rows: `driver[i]`, `time_ms[i]` and each column's `values[i]`; returns the
    /// anomalies found, in row order, then column order (module documentation).
    ///
    /// # Errors
    ///
    /// [`AnomalyError::Lengths`] (and no state change) when the lengths differ.
    pub fn feed(
        &mut self,
        driver: &[i64],
        time_ms: &[i64],
        columns: &[Column<'_>],
    ) -> Result<Vec<Anomaly>, AnomalyError> {
        let rows = driver.len();
        if time_ms.len() != rows || columns.iter().any(|c| c.values.len() != rows) {
            return Err(AnomalyError::Lengths);
        }
        let speed = self.ids.get(SPEED).copied();
        let speed_values = columns
            .iter()
            .find(|c| Some(c.channel) == speed)
            .map(|c| c.values);
        let channels = self.names.len();
        let mut out = Vec::new();
        for (row, (&driver, &time_ms)) in driver.iter().zip(time_ms).enumerate() {
            let state = self.drivers.entry(driver).or_default();
            if let Some(&value) = speed_values.and_then(|values| values.get(row)) {
                if value.is_finite() {
                    state.speed = Some(value + 0.0);
                }
            }
            let standing = state.speed.is_some_and(|speed| speed <= 0.0);
            if state.channels.len() < channels {
                state.channels.resize_with(channels, ChannelState::default);
            }
            for column in columns {
                let Some(&value) = column.values.get(row) else {
                    continue;
                };
                let Some(channel) = state.channels.get_mut(column.channel) else {
                    continue;
                };
                if !value.is_finite() {
                    continue;
                }
                let at = SampleContext {
                    driver,
                    channel: column.channel,
                    time_ms,
                    flatline: self.flatline.get(column.channel).copied().unwrap_or(false),
                    standing,
                };
                // `+ 0.0` turns -0.0 into 0.0 and changes nothing else.
                channel.sample(&self.config, at, value + 0.0, &mut out);
            }
        }
        Ok(out)
    }
}

/// `f1daemon._native.AnomalyDetector`: the [`Detector`] bound to Python.
///
/// It lives here rather than in `lib.rs` so that `lib.rs` only registers it; the detector
/// above knows nothing of Python. Input columns are converted to `i64` / `f64` vectors
/// (with the GIL) before the detector runs (without it), so a bad item raises before any
/// state changes.
pub mod python {
    use std::collections::HashSet;

    use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
    use pyo3::prelude::*;
    use pyo3::types::{PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PyMapping, PyString, PyTuple};

    use super::{AnomalyError, ChannelId, Column, Config, Detector};

    impl From<AnomalyError> for PyErr {
        fn from(error: AnomalyError) -> Self {
            PyValueError::new_err(error.to_string())
        }
    }

    /// The `flatline_channels` argument: any iterable of `str` except a `str` itself.
    pub struct ChannelNames(HashSet<String>);

    impl ChannelNames {
        fn default_flatline() -> Self {
            Self(Config::default().flatline_channels)
        }
    }

    impl<'py> FromPyObject<'_, 'py> for ChannelNames {
        type Error = PyErr;

        fn extract(names: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
            let wrong = || PyTypeError::new_err("flatline_channels must be a collection of str");
            if names.is_instance_of::<PyString>() {
                return Err(wrong());
            }
            let mut set = HashSet::new();
            for name in names.try_iter()? {
                let name = name?;
                set.insert(
                    name.cast::<PyString>()
                        .map_err(|_| wrong())?
                        .to_str()?
                        .to_owned(),
                );
            }
            Ok(Self(set))
        }
    }

    /// A column's items, as `list(column)` gives them (a list is copied: converting its
    /// items may run Python code that changes it).
    fn items<'py>(column: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        if let Ok(tuple) = column.cast_exact::<PyTuple>() {
            return Ok(tuple.clone());
        }
        if let Ok(list) = column.cast_exact::<PyList>() {
            return Ok(list.to_tuple());
        }
        let items = column.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        PyTuple::new(column.py(), items)
    }

    /// Drivers or times: ints (or `__index__`) fitting `i64`; `ValueError` beyond.
    fn integers(items: &Bound<'_, PyTuple>, what: &str) -> PyResult<Vec<i64>> {
        let py = items.py();
        items
            .iter_borrowed()
            .map(|item| {
                item.extract::<i64>().map_err(|error| {
                    if error.is_instance_of::<PyOverflowError>(py) {
                        PyValueError::new_err(format!(
                            "{what} {} does not fit a 64-bit integer",
                            *item
                        ))
                    } else {
                        error
                    }
                })
            })
            .collect()
    }

    /// Sample values: `float`, `int` (`bool` too) or `None`; NaN stands for "skip" (the
    /// detector skips every non-finite value), also for an int too large for a float.
    fn sample_values(items: &Bound<'_, PyTuple>) -> PyResult<Vec<f64>> {
        let py = items.py();
        let mut values = Vec::with_capacity(items.len());
        for item in items.iter_borrowed() {
            let value = if item.is_none() {
                f64::NAN
            } else if let Ok(float) = item.cast_exact::<PyFloat>() {
                float.value()
            } else if let Some(int) = item
                .is_exact_instance_of::<PyInt>()
                .then(|| item.extract::<i64>().ok())
                .flatten()
            {
                // Rounds to nearest, ties to even: what `float(int)` does.
                #[allow(clippy::cast_precision_loss)]
                let value = int as f64;
                value
            } else if item.is_instance_of::<PyFloat>() || item.is_instance_of::<PyInt>() {
                match item.extract::<f64>() {
                    Ok(value) => value,
                    Err(error) if error.is_instance_of::<PyOverflowError>(py) => f64::NAN,
                    Err(error) => return Err(error),
                }
            } else {
                return Err(PyTypeError::new_err(format!(
                    "values must be float, int or None, not {}",
                    item.get_type().name()?
                )));
            };
            values.push(value);
        }
        Ok(values)
    }

    /// Streaming anomaly detection over telemetry, per (driver, channel): rolling z-score,
    /// median / MAD modified z-score, single-sample spikes, flat lines.
    ///
    /// Anomalies are `(driver, channel, time_ms, value, score, kind)` tuples. The state
    /// carries over between calls: rows fed in several calls give exactly the anomalies of
    /// one call on all of them. The rules: `f1daemon/_native.pyi`, `native/src/anomaly.rs`.
    #[pyclass(name = "AnomalyDetector", module = "f1daemon._native")]
    pub struct AnomalyDetector {
        inner: Detector,
    }

    impl AnomalyDetector {
        /// Converts the materialized columns, runs the detector without the GIL and
        /// returns the anomalies as tuples.
        fn run<'py>(
            &mut self,
            py: Python<'py>,
            driver: &Bound<'py, PyAny>,
            time_ms: &Bound<'py, PyAny>,
            columns: &[(ChannelId, Bound<'py, PyTuple>)],
        ) -> PyResult<Bound<'py, PyList>> {
            let driver = items(driver)?;
            let time_ms = items(time_ms)?;
            let rows = driver.len();
            if time_ms.len() != rows || columns.iter().any(|(_, column)| column.len() != rows) {
                return Err(AnomalyError::Lengths.into());
            }
            let driver = integers(&driver, "driver")?;
            let time_ms = integers(&time_ms, "time_ms")?;
            let values = columns
                .iter()
                .map(|(channel, column)| Ok((*channel, sample_values(column)?)))
                .collect::<PyResult<Vec<_>>>()?;
            let columns: Vec<Column<'_>> = values
                .iter()
                .map(|(channel, values)| Column {
                    channel: *channel,
                    values,
                })
                .collect();
            let detector = &mut self.inner;
            let found = py.detach(|| detector.feed(&driver, &time_ms, &columns))?;
            PyList::new(
                py,
                found.iter().map(|a| {
                    let channel = self.inner.channel_name(a.channel);
                    (
                        a.driver,
                        channel,
                        a.time_ms,
                        a.value,
                        a.score,
                        a.kind.as_str(),
                    )
                }),
            )
        }
    }

    #[pymethods]
    impl AnomalyDetector {
        #[new]
        #[pyo3(signature = (
            *,
            window = 50,
            min_samples = 10,
            zscore_threshold = 3.0,
            mad_threshold = 3.5,
            spike_threshold = 3.0,
            flatline_run = 50,
            flatline_channels = ChannelNames::default_flatline(),
            flatline_while_moving = true,
        ))]
        #[allow(clippy::too_many_arguments)] // the settings, each a keyword argument
        fn new(
            window: i64,
            min_samples: i64,
            zscore_threshold: f64,
            mad_threshold: f64,
            spike_threshold: f64,
            flatline_run: i64,
            flatline_channels: ChannelNames,
            flatline_while_moving: bool,
        ) -> PyResult<Self> {
            // Negative counts become 0, which the checks refuse.
            let count = |n: i64| usize::try_from(n).unwrap_or(0);
            let config = Config {
                window: count(window),
                min_samples: count(min_samples),
                zscore_threshold,
                mad_threshold,
                spike_threshold,
                flatline_run: u64::try_from(flatline_run).unwrap_or(0),
                flatline_channels: flatline_channels.0,
                flatline_while_moving,
            };
            Ok(Self {
                inner: Detector::new(config)?,
            })
        }

        /// Feeds one channel's samples: `feed_columns(driver, time_ms, {channel: values})`.
        fn feed<'py>(
            &mut self,
            py: Python<'py>,
            driver: &Bound<'py, PyAny>,
            time_ms: &Bound<'py, PyAny>,
            channel: &Bound<'py, PyString>,
            values: &Bound<'py, PyAny>,
        ) -> PyResult<Bound<'py, PyList>> {
            let id = self.inner.channel_id(channel.to_str()?);
            let column = items(values)?;
            self.run(py, driver, time_ms, &[(id, column)])
        }

        /// Feeds rows (`driver[i]`, `time_ms[i]`, each channel's `values[i]`); returns the
        /// anomalies in row order, then channel order. `None`, NaN and infinite values are
        /// skipped. `ValueError` for columns of different lengths, `TypeError` for values that
        /// are not float, int or None; nothing changes on an error.
        fn feed_columns<'py>(
            &mut self,
            py: Python<'py>,
            driver: &Bound<'py, PyAny>,
            time_ms: &Bound<'py, PyAny>,
            channels: &Bound<'py, PyAny>,
        ) -> PyResult<Bound<'py, PyList>> {
            let pairs = if let Ok(dict) = channels.cast_exact::<PyDict>() {
                dict.items()
            } else if let Ok(mapping) = channels.cast::<PyMapping>() {
                mapping.items()?
            } else {
                return Err(PyTypeError::new_err(format!(
                    "channels must be a mapping of channel name to values, not {}",
                    channels.get_type().name()?
                )));
            };
            let mut columns = Vec::with_capacity(pairs.len());
            for pair in pairs.iter() {
                let (name, column): (Bound<'py, PyAny>, Bound<'py, PyAny>) = pair.extract()?;
                let name = name.cast_into::<PyString>().map_err(|error| {
                    PyTypeError::new_err(format!(
                        "channel names must be str, not {}",
                        error
                            .into_inner()
                            .get_type()
                            .name()
                            .map_or_else(|_| "?".to_owned(), |name| name.to_string())
                    ))
                })?;
                let id = self.inner.channel_id(name.to_str()?);
                columns.push((id, items(&column)?));
            }
            self.run(py, driver, time_ms, &columns)
        }

        /// Values in the window.
        #[getter]
        fn window(&self) -> usize {
            self.inner.config().window
        }

        /// Values the window needs before a sample is scored.
        #[getter]
        fn min_samples(&self) -> usize {
            self.inner.config().min_samples
        }

        /// `zscore` reports `abs(z) >` this.
        #[getter]
        fn zscore_threshold(&self) -> f64 {
            self.inner.config().zscore_threshold
        }

        /// `mad` reports `abs(score) >` this.
        #[getter]
        fn mad_threshold(&self) -> f64 {
            self.inner.config().mad_threshold
        }

        /// `spike` reports `abs(score) >` this.
        #[getter]
        fn spike_threshold(&self) -> f64 {
            self.inner.config().spike_threshold
        }

        /// Run length a flat line is reported at.
        #[getter]
        fn flatline_run(&self) -> u64 {
            self.inner.config().flatline_run
        }

        /// Channels watched for flat lines.
        #[getter]
        fn flatline_channels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyFrozenSet>> {
            PyFrozenSet::new(py, &self.inner.config().flatline_channels)
        }

        /// Whether only samples taken while the driver moves count towards a flat line.
        #[getter]
        fn flatline_while_moving(&self) -> bool {
            self.inner.config().flatline_while_moving
        }
    }
}

#[cfg(test)]
// The arithmetic is exact by design (the reference reproduces it bit for bit).
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn detector(config: Config) -> Detector {
        Detector::new(config).expect("valid config")
    }

    /// `(time, value, score, kind)` of each anomaly of one channel's series for driver 1,
    /// the samples timed 0, 1, 2, ...
    fn run(det: &mut Detector, channel: &str, values: &[f64]) -> Vec<(i64, f64, f64, Kind)> {
        run_from(det, channel, values, 0)
    }

    /// [`run`] with the samples timed `first`, `first + 1`, ...
    fn run_from(
        det: &mut Detector,
        channel: &str,
        values: &[f64],
        first: i64,
    ) -> Vec<(i64, f64, f64, Kind)> {
        let id = det.channel_id(channel);
        let times: Vec<i64> = (first..).take(values.len()).collect();
        let drivers = vec![1; values.len()];
        let columns = [Column {
            channel: id,
            values,
        }];
        det.feed(&drivers, &times, &columns)
            .expect("equal lengths")
            .into_iter()
            .map(|a| (a.time_ms, a.value, a.score, a.kind))
            .collect()
    }

    /// A smooth, varied series: no anomalies by any rule.
    fn wave(n: usize, base: f64) -> Vec<f64> {
        (0..n)
            .map(|i| {
                #[allow(clippy::cast_precision_loss)]
                let x = i as f64;
                base + 10.0 * (x * 0.3).sin()
            })
            .collect()
    }

    #[test]
    fn lane_sum_adds_in_four_interleaved_sums() {
        assert_eq!(lane_sum(&[], |v| v), 0.0);
        assert_eq!(lane_sum(&[1.0, 2.0, 3.0], |v| v), 6.0);
        // Left to right this is 1 (1e16 + 1 rounds to 1e16); in lanes the ones meet first.
        let values = [1e16, 1.0, -1e16, 0.0, 0.0, 1.0];
        assert_eq!(lane_sum(&values, |v| v), 2.0);
        assert_eq!(lane_sum(&[1.0, 2.0], |v| v * v), 5.0);
    }

    #[test]
    fn median_and_mad_of_sorted() {
        assert_eq!(median_of_sorted(&[1.0, 2.0, 10.0]), 2.0);
        assert_eq!(median_of_sorted(&[1.0, 2.0, 4.0, 10.0]), 3.0);
        assert!(median_of_sorted(&[]).is_nan());
        // deviations from 2: 1, 0, 8 -> median 1
        assert_eq!(mad_of_sorted(&[1.0, 2.0, 10.0], 2.0), 1.0);
        // deviations from 3: 2, 1, 1, 7 -> (1 + 2) / 2
        assert_eq!(mad_of_sorted(&[1.0, 2.0, 4.0, 10.0], 3.0), 1.5);
        assert_eq!(mad_of_sorted(&[5.0, 5.0, 5.0, 9.0], 5.0), 0.0);
        assert!(mad_of_sorted(&[], 0.0).is_nan());
    }

    #[test]
    fn mad_by_merging_equals_mad_by_sorting() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for n in (1..200).chain(1..40) {
            let mut values: Vec<f64> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    // Few distinct values for small n: many ties.
                    #[allow(clippy::cast_precision_loss)]
                    let v = (seed % (3 * n)) as f64 / 7.0;
                    v
                })
                .collect();
            values.sort_by(f64::total_cmp);
            let median = median_of_sorted(&values);
            let mut deviations: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
            deviations.sort_by(f64::total_cmp);
            assert_eq!(
                mad_of_sorted(&values, median),
                median_of_sorted(&deviations)
            );
        }
    }

    #[test]
    fn a_smooth_series_has_no_anomalies() {
        let mut det = detector(Config::default());
        assert_eq!(run(&mut det, "speed", &wave(500, 200.0)), vec![]);
    }

    #[test]
    fn a_spike_is_found_when_the_next_sample_comes_back() {
        let mut det = detector(Config::default());
        let mut values = wave(60, 200.0);
        let base = values[40];
        values[40] = base + 150.0;
        let found = run(&mut det, "speed", &values[..41]);
        // The spike is still a candidate: only zscore and mad have seen it.
        assert!(found.iter().all(|a| a.3 != Kind::Spike), "{found:?}");
        assert!(found.iter().any(|a| a.0 == 40 && a.3 == Kind::ZScore));
        assert!(found.iter().any(|a| a.0 == 40 && a.3 == Kind::Mad));
        let found = run_from(&mut det, "speed", &values[41..], 41);
        let spikes: Vec<_> = found.iter().filter(|a| a.3 == Kind::Spike).collect();
        assert_eq!(spikes.len(), 1, "{found:?}");
        let (time, value, score, _) = *spikes[0];
        assert_eq!((time, value), (40, base + 150.0));
        assert!(score > 3.0);
    }

    #[test]
    fn a_step_is_not_a_spike() {
        let mut det = detector(Config::default());
        let mut values = wave(80, 200.0);
        for v in &mut values[40..] {
            *v += 150.0;
        }
        let found = run(&mut det, "speed", &values);
        assert!(found.iter().all(|a| a.3 != Kind::Spike), "{found:?}");
    }

    #[test]
    fn flat_rpm_is_flagged_once_per_run_while_moving() {
        let mut det = detector(Config::default());
        let rpm = det.channel_id("rpm");
        let speed = det.channel_id("speed");
        let mut rpm_values = wave(20, 10_000.0);
        rpm_values.extend([11_000.0; 120]);
        let speed_values = wave(140, 200.0);
        let times: Vec<i64> = (0..140).collect();
        let found = det
            .feed(
                &[44; 140],
                &times,
                &[
                    Column {
                        channel: rpm,
                        values: &rpm_values,
                    },
                    Column {
                        channel: speed,
                        values: &speed_values,
                    },
                ],
            )
            .expect("equal lengths");
        let flat: Vec<_> = found.iter().filter(|a| a.kind == Kind::Flatline).collect();
        assert_eq!(flat.len(), 1, "{found:?}");
        // The run starts at row 20 and reaches 50 at row 69.
        assert_eq!(
            (
                flat[0].time_ms,
                flat[0].value,
                flat[0].score,
                flat[0].channel
            ),
            (69, 11_000.0, 50.0, rpm)
        );
    }

    #[test]
    fn flat_values_while_standing_are_not_flagged() {
        let mut det = detector(Config::default());
        // Speed 0 for 200 samples: standing, so neither speed nor rpm is a flat line.
        assert_eq!(run(&mut det, "speed", &[0.0; 200]), vec![]);
        assert_eq!(run(&mut det, "rpm", &[5000.0; 200]), vec![]);
        // Without the gate, both are.
        let mut det = detector(Config {
            flatline_while_moving: false,
            ..Config::default()
        });
        assert_eq!(
            run(&mut det, "speed", &[0.0; 200]),
            vec![(49, 0.0, 50.0, Kind::Flatline)]
        );
        // A channel that is not watched never is.
        assert_eq!(run(&mut det, "gear", &[3.0; 200]), vec![]);
    }

    #[test]
    fn mad_zero_falls_back_to_the_mean_absolute_deviation() {
        let mut det = detector(Config::default());
        // 8 zeros and 2 hundreds: median 0, MAD 0, mean |deviation| 20.
        let mut values = vec![0.0; 8];
        values.extend([100.0, 100.0, 100.0]);
        let found = run(&mut det, "brake", &values);
        let mad: Vec<_> = found.iter().filter(|a| a.3 == Kind::Mad).collect();
        assert_eq!(mad.len(), 1, "{found:?}");
        assert_eq!(mad[0].2, 100.0 / (MEAN_AD_FACTOR * 20.0));
        // A constant window scores nothing, whatever comes next.
        let mut det = detector(Config::default());
        let mut values = vec![7.0; 30];
        values.push(1e9);
        assert_eq!(run(&mut det, "throttle", &values), vec![]);
    }

    #[test]
    fn thresholds_are_configurable() {
        let mut values = wave(60, 200.0);
        values[40] += 40.0;
        let count = |config: Config| run(&mut detector(config), "speed", &values).len();
        let strict = count(Config {
            zscore_threshold: 1.0,
            mad_threshold: 1.0,
            spike_threshold: 1.0,
            ..Config::default()
        });
        let default = count(Config::default());
        let disabled = count(Config {
            zscore_threshold: f64::INFINITY,
            mad_threshold: f64::INFINITY,
            spike_threshold: f64::INFINITY,
            ..Config::default()
        });
        assert!(strict > default && default > 0 && disabled == 0);
    }

    #[test]
    fn splitting_the_rows_changes_nothing() {
        let mut values = wave(300, 100.0);
        values[100] = 400.0;
        values[200] = -300.0;
        values.extend([55.0; 80]);
        let whole = run(&mut detector(Config::default()), "speed", &values);
        assert!(whole.len() > 3);
        for split in [0, 1, 100, 101, 200, 333, values.len()] {
            let mut det = detector(Config::default());
            let mut parts = run(&mut det, "speed", &values[..split]);
            let first = i64::try_from(split).expect("small");
            parts.extend(run_from(&mut det, "speed", &values[split..], first));
            assert_eq!(parts, whole, "split at {split}");
        }
    }

    #[test]
    fn non_finite_values_are_skipped_and_huge_ones_do_not_break_it() {
        let mut det = detector(Config::default());
        let mut values = wave(40, 100.0);
        let clean = run(&mut detector(Config::default()), "rpm", &values);
        values.insert(10, f64::NAN);
        values.insert(20, f64::INFINITY);
        values.insert(30, f64::NEG_INFINITY);
        let found = run(&mut det, "rpm", &values);
        // Same anomalies as without the skipped samples (times shift by the inserts).
        assert_eq!(found.len(), clean.len());
        let mut det = detector(Config::default());
        let found = run(
            &mut det,
            "rpm",
            &[f64::MAX, -f64::MAX, 1e300, 5e-324, 0.0].repeat(30),
        );
        assert!(found.iter().all(|a| a.2.is_finite()));
    }

    #[test]
    fn empty_input_and_bad_lengths() {
        let mut det = detector(Config::default());
        assert_eq!(det.feed(&[], &[], &[]), Ok(vec![]));
        let id = det.channel_id("rpm");
        let bad = det.feed(
            &[1, 2],
            &[0, 1],
            &[Column {
                channel: id,
                values: &[1.0],
            }],
        );
        assert_eq!(bad, Err(AnomalyError::Lengths));
        assert_eq!(det.feed(&[1], &[], &[]), Err(AnomalyError::Lengths));
    }

    #[test]
    fn config_ranges() {
        let bad = [
            Config {
                window: 1,
                ..Config::default()
            },
            Config {
                window: MAX_WINDOW + 1,
                ..Config::default()
            },
            Config {
                min_samples: 1,
                ..Config::default()
            },
            Config {
                min_samples: 51,
                ..Config::default()
            },
            Config {
                flatline_run: 1,
                ..Config::default()
            },
            Config {
                mad_threshold: f64::NAN,
                ..Config::default()
            },
            Config {
                spike_threshold: -1.0,
                ..Config::default()
            },
        ];
        for config in bad {
            assert!(Detector::new(config.clone()).is_err(), "{config:?}");
        }
        assert!(Detector::new(Config {
            window: 2,
            min_samples: 2,
            zscore_threshold: f64::INFINITY,
            ..Config::default()
        })
        .is_ok());
    }

    #[test]
    fn channels_are_registered_once() {
        let mut det = detector(Config::default());
        assert_eq!(det.channel_id("rpm"), 0);
        assert_eq!(det.channel_id("lap_time_ms"), 1);
        assert_eq!(det.channel_id("rpm"), 0);
        assert_eq!(det.channel_name(1), "lap_time_ms");
        assert_eq!(det.channel_name(7), "");
    }
}

//! Predictive scaling's forecaster: a bounded history of one ScaledObject's demand and a forecast
//! of it over a horizon, so replicas can be asked for a cold start ahead of the load.
//!
//! Why it looks as it does:
//! * **Demand is the fleet's token rate** (prompt + generation tokens/s), the quantity the
//!   tokens/s target is written in, so a forecast turns into replicas by the design's formula
//!   (`forecast x peakFactor / capacity`). A tick where some Ready pod did not report it records
//!   nothing: a partial sum would read missing pods as zero.
//! * **One-minute buckets over a week and two hours** (10,200 values, 40 KB): enough for a weekly
//!   seasonal naive forecast at a 15-minute horizon; older buckets fall off.
//! * **Several models, chosen by recent out-of-sample error.** Every minute each model forecasts
//!   the next `horizon`; when the horizon's bucket closes, each forecast is scored. The model with
//!   the lowest sMAPE over the last six hours is used; its prediction interval comes from the ratios
//!   actual / forecast of its own last day of forecasts (empirical, so it is as wide as the model
//!   has actually been wrong, whatever the model). Last value, seasonal naive (daily, weekly),
//!   daily naive scaled to the last hour's level (a new client raises the whole day), and MSTL with
//!   an AutoETS trend (grafana/augurs) on five-minute means, refitted every 30 minutes (a fit of a
//!   week takes 46 ms, `benches/forecast.rs`: on a schedule, not per tick).
//! * **No forecast from less than a day** of known buckets, and none from a model scored on fewer
//!   than 60 forecasts: the decision says why, and scaling stays reactive.
//!
//! Pure: no clock, no I/O. Time comes in as a calendar time (since the Unix epoch in the server,
//! source time in the simulator), so a persisted history lines up with the next process's ticks.

use std::{collections::VecDeque, fmt, time::Duration};

use augurs_core::{Fit, Predict};
use augurs_ets::AutoETS;
use augurs_mstl::MSTLModel;
use serde::{Deserialize, Serialize};

/// Seconds per history bucket.
pub const BUCKET_S: u64 = 60;
const DAY: u64 = 86_400 / BUCKET_S;
const WEEK: u64 = 7 * DAY;
/// Buckets kept: a week and two hours.
pub const CAPACITY: usize = (WEEK + 120) as usize;
/// Known buckets needed before anything is forecast (24 h).
pub const MIN_HISTORY: usize = DAY as usize;
/// Forecasts a model must have been scored on before it can be chosen.
pub const MIN_SCORED: usize = 60;
/// Scored forecasts the choice is made on (the last six hours).
const CHOICE_WINDOW: usize = 360;
/// Scored forecasts kept per model (the last day): the interval and the reported errors.
const SCORE_WINDOW: usize = DAY as usize;
/// The oldest outlook (minutes) a floor may read: one made at the last minute's close is 1.
pub const MAX_OUTLOOK_AGE: u64 = 2;
/// How far (buckets) the clock may be behind the history before the history is dropped.
const CLOCK_SLACK: u64 = 60;
/// MSTL's input resolution (buckets per point) and how often it is refitted (buckets).
const MSTL_STEP: u64 = 5;
const MSTL_REFIT: u64 = 30;

/// Whether the forecast is computed, and whether it acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ForecastMode {
    /// No history, no forecast.
    Off,
    /// Keep history, forecast and record it in every decision; do not act (the default, as AWS
    /// predictive scaling's: see what it would do before trusting it).
    ForecastOnly,
    /// The forecast sets a floor under the reactive decision.
    ForecastAndScale,
}

impl ForecastMode {
    /// Names as written in metadata.
    pub const NAMES: &'static str = "off, forecastOnly, forecastAndScale";

    /// Parses a metadata value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(ForecastMode::Off),
            "forecastOnly" => Some(ForecastMode::ForecastOnly),
            "forecastAndScale" => Some(ForecastMode::ForecastAndScale),
            _ => None,
        }
    }

    /// The name as written in metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            ForecastMode::Off => "off",
            ForecastMode::ForecastOnly => "forecastOnly",
            ForecastMode::ForecastAndScale => "forecastAndScale",
        }
    }
}

/// The seasons the seasonal models use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Seasons {
    /// A 24-hour season.
    pub daily: bool,
    /// A 7-day season.
    pub weekly: bool,
}

impl Seasons {
    /// Parses `daily`, `weekly`, `daily,weekly` or `none`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut out = Seasons { daily: false, weekly: false };
        if s.trim() == "none" {
            return Some(out);
        }
        for part in s.split(',').map(str::trim) {
            match part {
                "daily" => out.daily = true,
                "weekly" => out.weekly = true,
                _ => return None,
            }
        }
        Some(out)
    }
}

/// How one ScaledObject forecasts (metadata keys `forecastMode`, `forecastHorizon`,
/// `forecastSeasons`, `coldStart`, `schedulingBuffer`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastSpec {
    /// Off, forecast only, or forecast and scale.
    pub mode: ForecastMode,
    /// How far ahead each model forecasts (and where it is scored).
    #[serde(with = "secs")]
    pub horizon: Duration,
    /// Seasons of the seasonal models.
    pub seasons: Seasons,
    /// From asking for a replica to it being Ready: the `coldStart` key's, else (when
    /// `cold_start_given` is false) the default used until the pods' own are measured.
    #[serde(with = "secs")]
    pub cold_start: Duration,
    /// Whether `cold_start` was set by the `coldStart` key (then it is used as given).
    pub cold_start_given: bool,
    /// Margin on top of the cold start (AWS predictive scaling's scheduling buffer).
    #[serde(with = "secs")]
    pub buffer: Duration,
    /// Quantile of the chosen model's actual / forecast ratios that makes the upper bound.
    pub level: f64,
}

impl Default for ForecastSpec {
    /// Forecast only, 15 minutes ahead, daily and weekly seasons, a 120 s cold start, a 300 s
    /// buffer, a 90 % upper bound.
    fn default() -> Self {
        ForecastSpec {
            mode: ForecastMode::ForecastOnly,
            horizon: Duration::from_secs(900),
            seasons: Seasons { daily: true, weekly: true },
            cold_start: Duration::from_secs(120),
            cold_start_given: false,
            buffer: Duration::from_secs(300),
            level: 0.9,
        }
    }
}

impl ForecastSpec {
    /// Buckets forecast ahead (at least one).
    pub fn horizon_buckets(&self) -> u64 {
        self.horizon.as_secs().div_ceil(BUCKET_S).max(1)
    }

    /// How far ahead the floor must hold: cold start + buffer, in buckets, at most the horizon.
    pub fn lead_buckets(&self) -> u64 {
        self.lead_buckets_with(self.cold_start)
    }

    /// [`Self::lead_buckets`] with a measured `cold_start`.
    pub fn lead_buckets_with(&self, cold_start: Duration) -> u64 {
        (cold_start + self.buffer).as_secs().div_ceil(BUCKET_S).clamp(1, self.horizon_buckets())
    }
}

mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

/// The forecasting models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Model {
    /// The mean of the last five minutes.
    LastValue,
    /// The same minute a day before.
    DailyNaive,
    /// The same minute a week before.
    WeeklyNaive,
    /// The same minute a day before, times the last hour's level against the same hour then.
    DailyScaled,
    /// MSTL (daily season) with an AutoETS trend, on five-minute means.
    MstlEts,
}

impl Model {
    /// Every model, in the order ties are broken.
    pub const ALL: [Model; 5] = [Model::LastValue, Model::DailyNaive, Model::WeeklyNaive, Model::DailyScaled, Model::MstlEts];

    fn index(self) -> usize {
        self as usize
    }

    /// Its name in decisions.
    pub fn as_str(self) -> &'static str {
        match self {
            Model::LastValue => "last-value",
            Model::DailyNaive => "daily-naive",
            Model::WeeklyNaive => "weekly-naive",
            Model::DailyScaled => "daily-scaled",
            Model::MstlEts => "mstl-ets",
        }
    }

    fn enabled(self, seasons: Seasons) -> bool {
        match self {
            Model::LastValue => true,
            Model::DailyNaive | Model::DailyScaled | Model::MstlEts => seasons.daily,
            Model::WeeklyNaive => seasons.weekly,
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Demand per one-minute bucket, `NaN` where nothing was recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// Bucket index (calendar seconds / [`BUCKET_S`]) of `values[0]`.
    start: u64,
    values: VecDeque<f32>,
}

impl History {
    fn empty() -> Self {
        History { start: 0, values: VecDeque::new() }
    }

    /// One past the last closed bucket.
    pub fn end(&self) -> u64 {
        self.start + self.values.len() as u64
    }

    /// Buckets with a value.
    pub fn known(&self) -> usize {
        self.values.iter().filter(|v| !v.is_nan()).count()
    }

    fn get(&self, bucket: u64) -> Option<f64> {
        let i = usize::try_from(bucket.checked_sub(self.start)?).ok()?;
        self.values.get(i).filter(|v| !v.is_nan()).map(|v| f64::from(*v))
    }

    /// Appends the bucket `bucket`, with `NaN` for any skipped since the last one.
    fn push(&mut self, bucket: u64, value: f32) {
        if bucket < self.end() {
            return;
        }
        // A gap as long as the history itself leaves nothing worth keeping.
        if self.values.is_empty() || bucket - self.end() >= CAPACITY as u64 {
            self.values.clear();
            self.start = bucket;
        }
        while self.end() < bucket {
            self.values.push_back(f32::NAN);
        }
        self.values.push_back(value);
        while self.values.len() > CAPACITY {
            self.values.pop_front();
            self.start += 1;
        }
    }

    /// Mean of the known buckets in `from..to`.
    fn mean(&self, from: u64, to: u64) -> Option<f64> {
        let (sum, n) = (from..to).filter_map(|b| self.get(b)).fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
        (n > 0).then(|| sum / f64::from(n))
    }
}

/// A forecast path: bucket `first + k` for `k` in `0..len`.
type Path = Vec<f64>;

/// The last MSTL fit and the path it forecast.
#[derive(Debug, Clone)]
struct MstlFit {
    /// Bucket after the last one it was fitted on.
    end: u64,
    /// Five-minute means forecast from `end` on.
    path: Vec<f64>,
}

/// One model's forecasts scored against what happened: `(forecast, actual, naive)`, where
/// `naive` is the demand one horizon before the target (the scale of MASE).
#[derive(Debug, Clone, Default)]
struct Scores {
    pairs: VecDeque<(f32, f32, f32)>,
}

impl Scores {
    fn push(&mut self, forecast: f64, actual: f64, naive: f64) {
        self.pairs.push_back((forecast as f32, actual as f32, naive as f32));
        while self.pairs.len() > SCORE_WINDOW {
            self.pairs.pop_front();
        }
    }

    fn recent(&self, n: usize) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        self.pairs.iter().skip(self.pairs.len().saturating_sub(n)).map(|&(f, a, s)| (f64::from(f), f64::from(a), f64::from(s)))
    }

    /// Symmetric mean absolute percentage error over the last `n` (0..2; both zero counts as 0).
    fn smape(&self, n: usize) -> Option<f64> {
        let (sum, k) = self.recent(n).fold((0.0, 0usize), |(s, k), (f, a, _)| {
            let d = f.abs() + a.abs();
            (s + if d > 0.0 { 2.0 * (f - a).abs() / d } else { 0.0 }, k + 1)
        });
        (k > 0).then(|| sum / k as f64)
    }

    /// Mean absolute error over that of the naive forecast one horizon back.
    fn mase(&self, n: usize) -> Option<f64> {
        let (e, s) = self.recent(n).fold((0.0, 0.0), |(e, s), (f, a, naive)| (e + (f - a).abs(), s + (naive - a).abs()));
        (s > 0.0).then(|| e / s)
    }

    /// The interval at `level` from the last day's errors: the quantiles of actual / forecast
    /// (an error proportional to the demand, as it is on a diurnal curve); where too few forecasts
    /// were above zero for ratios (an idle fleet), the quantiles of actual - forecast.
    fn interval(&self, level: f64) -> Option<Interval> {
        let (lo_q, hi_q) = (level.min(1.0 - level), level.max(1.0 - level));
        // Ratios only where the forecast is a real share of the typical one: a night's 0.01
        // against an actual of 1 would make a ratio of 100 and an absurd daytime bound.
        let positive: Vec<f64> = self.recent(SCORE_WINDOW).map(|(f, _, _)| f).filter(|f| *f > 0.0).collect();
        let floor = if positive.is_empty() { f64::INFINITY } else { 0.05 * quantile(positive, 0.5) };
        let ratios: Vec<f64> = self.recent(SCORE_WINDOW).filter(|(f, _, _)| *f >= floor).map(|(f, a, _)| a / f).collect();
        if ratios.len() >= MIN_SCORED {
            return Some(Interval::Ratio(quantile(ratios.clone(), lo_q), quantile(ratios, hi_q)));
        }
        let diffs: Vec<f64> = self.recent(SCORE_WINDOW).map(|(f, a, _)| a - f).collect();
        (diffs.len() >= MIN_SCORED).then(|| Interval::Additive(quantile(diffs.clone(), lo_q), quantile(diffs, hi_q)))
    }
}

/// A prediction interval around a point forecast.
#[derive(Debug, Clone, Copy)]
enum Interval {
    /// `point x lo ..= point x hi`.
    Ratio(f64, f64),
    /// `point + lo ..= point + hi`, never below zero.
    Additive(f64, f64),
}

impl Interval {
    fn bounds(self, p: f64) -> (f64, f64) {
        match self {
            Interval::Ratio(lo, hi) => (p * lo, p * hi),
            Interval::Additive(lo, hi) => ((p + lo).max(0.0), (p + hi).max(0.0)),
        }
    }
}

/// The `q` quantile of `v` (not empty), nearest rank.
fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// What the forecaster says now: the chosen model's path with its interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outlook {
    /// The model used.
    pub model: Model,
    /// Calendar seconds of the path's first bucket (the current minute).
    pub from_s: u64,
    /// Demand forecast per minute from `from_s` over the horizon (tokens/s).
    pub point: Vec<f64>,
    /// Lower bound per minute (the `1 - level` quantile of the model's last day of errors).
    pub lower: Vec<f64>,
    /// Upper bound per minute (the `level` quantile).
    pub upper: Vec<f64>,
    /// The model's sMAPE at the horizon over its last six hours of forecasts (0..2).
    pub smape: f64,
    /// Its MASE at the horizon (against the naive forecast one horizon back) over the same.
    pub mase: Option<f64>,
    /// Forecasts it was scored on.
    pub scored: usize,
}

impl Outlook {
    /// Over the `buckets` minutes after calendar minute `now` (`now` included): the upper
    /// bound's peak, and the point forecast and lower bound at the last of them, the path read
    /// from `now` on (it starts at `from_s`). `None` when the path does not cover `now`, or was
    /// made more than [`MAX_OUTLOOK_AGE`] minutes before it (demand stopped being recorded: a
    /// floor must not plan for minutes already past).
    pub fn ahead(&self, now: u64, buckets: u64) -> Option<Ahead> {
        let offset = usize::try_from(now.checked_sub(self.from_s / BUCKET_S)?).ok().filter(|o| *o as u64 <= MAX_OUTLOOK_AGE)?;
        let end = offset.saturating_add(usize::try_from(buckets).unwrap_or(usize::MAX)).saturating_add(1).min(self.upper.len());
        if end <= offset {
            return None;
        }
        let at = |v: &[f64]| v.get(end - 1).copied().unwrap_or(0.0);
        Some(Ahead {
            peak_upper: self.upper[offset..end].iter().copied().fold(0.0, f64::max),
            point: at(&self.point),
            lower: at(&self.lower),
        })
    }

    /// Minutes between this outlook and calendar minute `now`.
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.from_s / BUCKET_S)
    }
}

/// What the floor reads of an [`Outlook`] (see [`Outlook::ahead`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ahead {
    /// The upper bound's peak from now to the lead.
    pub peak_upper: f64,
    /// The point forecast at the lead.
    pub point: f64,
    /// The lower bound at the lead.
    pub lower: f64,
}

/// Why there is no forecast now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NoForecast {
    /// Too little history.
    #[error("{known_minutes} min of demand history, needs {needed_minutes}: reactive only")]
    ShortHistory {
        /// Minutes with a value.
        known_minutes: usize,
        /// Minutes needed.
        needed_minutes: usize,
    },
    /// No model has been scored often enough yet.
    #[error("no model scored on {needed} forecasts yet (best: {scored}): reactive only")]
    Unscored {
        /// Most forecasts any model was scored on.
        scored: usize,
        /// Needed.
        needed: usize,
    },
    /// The chosen model has no forecast at this minute (a gap in its lag, say).
    #[error("{model} has no forecast at this minute (missing history it needs): reactive only")]
    NoPath {
        /// The model.
        model: Model,
    },
}

/// A persisted history: what a ConfigMap (or the simulator's warm-up) carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistorySnapshot {
    /// Format version ([`HistorySnapshot::VERSION`]).
    pub version: u32,
    /// Seconds per bucket (must be [`BUCKET_S`]).
    pub bucket_s: u64,
    /// Calendar bucket of the first value.
    pub start: u64,
    /// Mean demand per bucket, tokens/s, `null` where unknown, oldest first.
    pub values: Vec<Option<f32>>,
}

impl HistorySnapshot {
    /// The format written today.
    pub const VERSION: u32 = 1;

    /// This history with `other`'s buckets filled in where this one has none (two scaler
    /// replicas record the same fleet; one may have been down for part of it), over both spans,
    /// the newest [`CAPACITY`] buckets kept. `other` in another format or bucket size is ignored.
    pub fn merged_with(&self, other: &HistorySnapshot) -> HistorySnapshot {
        if other.version != self.version || other.bucket_s != self.bucket_s || other.values.is_empty() {
            return self.clone();
        }
        let end_of = |h: &HistorySnapshot| h.start + h.values.len() as u64;
        let end = end_of(self).max(end_of(other));
        let start = self.start.min(other.start).max(end.saturating_sub(CAPACITY as u64));
        let at =
            |h: &HistorySnapshot, b: u64| b.checked_sub(h.start).and_then(|i| h.values.get(usize::try_from(i).ok()?).copied().flatten());
        HistorySnapshot {
            version: self.version,
            bucket_s: self.bucket_s,
            start,
            values: (start..end).map(|b| at(self, b).or_else(|| at(other, b))).collect(),
        }
    }
}

/// Why a persisted history was refused (nothing changes; the forecaster starts empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// This ScaledObject does not forecast (`forecastMode: off`).
    #[error("forecastMode is off: no history is kept")]
    Off,
    /// The forecaster has recorded history of its own already.
    #[error("the forecaster already recorded history of its own")]
    NotEmpty,
    /// A forecaster restored with another configuration.
    #[error("restored with another forecast configuration")]
    OtherSpec,
    /// Another format.
    #[error("history format version {0}, this scaler reads {v}", v = HistorySnapshot::VERSION)]
    Version(u32),
    /// Another bucket size.
    #[error("history buckets of {0} s, this scaler keeps {BUCKET_S} s")]
    BucketSize(u64),
    /// A value that is not demand.
    #[error("history value {value} at bucket {index} is not a demand (finite, >= 0)")]
    BadValue {
        /// Position in `values`.
        index: usize,
        /// The value.
        value: String,
    },
    /// Longer than the forecaster keeps.
    #[error("history of {0} buckets, at most {CAPACITY} are kept")]
    TooLong(usize),
    /// It ends after the history already held (a clock gone back, or another fleet's).
    #[error("history ends at bucket {snapshot}, after the forecaster's own {own}")]
    Ahead {
        /// The snapshot's end.
        snapshot: u64,
        /// The forecaster's.
        own: u64,
    },
}

/// Running totals of one model's errors at the horizon since this forecaster started (the
/// backtest of a restored history excluded): what an evaluation over a whole run reports.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    n: usize,
    smape: f64,
    abs: f64,
    naive_abs: f64,
}

impl Tally {
    fn add(&mut self, f: f64, a: f64, naive: f64) {
        let d = f.abs() + a.abs();
        self.n += 1;
        self.smape += if d > 0.0 { 2.0 * (f - a).abs() / d } else { 0.0 };
        self.abs += (f - a).abs();
        self.naive_abs += (naive - a).abs();
    }

    fn summary(&self) -> ErrorSummary {
        ErrorSummary {
            scored: self.n,
            smape: (self.n > 0).then(|| self.smape / self.n as f64),
            mase: (self.naive_abs > 0.0).then(|| self.abs / self.naive_abs),
        }
    }
}

/// One ScaledObject's forecaster.
#[derive(Debug, Clone)]
pub struct Forecaster {
    spec: ForecastSpec,
    history: History,
    /// The open bucket: its index, sum and count of observations.
    open: Option<(u64, f64, u32)>,
    mstl: Option<MstlFit>,
    /// Forecasts waiting for their target bucket: `(target, per model, the chosen one's)`.
    pending: VecDeque<(u64, [Option<f32>; 5], Option<f32>)>,
    scores: [Scores; 5],
    /// Errors since start, per model and of the forecast used (the chosen model's, minute by minute).
    tallies: [Tally; 5],
    chosen_tally: Tally,
    /// What the forecaster said at the last bucket close.
    latest: Result<Outlook, NoForecast>,
}

impl Forecaster {
    /// An empty forecaster.
    pub fn new(spec: ForecastSpec) -> Self {
        Forecaster {
            spec,
            history: History::empty(),
            open: None,
            mstl: None,
            pending: VecDeque::new(),
            scores: Default::default(),
            tallies: Default::default(),
            chosen_tally: Tally::default(),
            latest: Err(NoForecast::ShortHistory { known_minutes: 0, needed_minutes: MIN_HISTORY }),
        }
    }

    /// Its configuration.
    pub fn spec(&self) -> &ForecastSpec {
        &self.spec
    }

    /// The closed buckets.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Records the fleet's demand (tokens/s) at calendar time `at`. Closing a bucket scores the
    /// forecasts aimed at it and makes the next ones. An observation older than the history
    /// (a clock gone back) is ignored.
    pub fn observe(&mut self, at: Duration, demand: f64) {
        if !demand.is_finite() || demand < 0.0 {
            return;
        }
        let bucket = at.as_secs() / BUCKET_S;
        if bucket < self.history.end() {
            if self.history.end() - bucket > CLOCK_SLACK {
                // The history ends far after this clock (a snapshot from another clock, or a
                // clock set back by more than an hour): it cannot line up with it any more.
                *self = Forecaster::new(self.spec.clone());
            } else {
                // A clock stepped back a little: wait for it to catch up.
                return;
            }
        }
        if self.open.is_some_and(|(b, _, _)| bucket < b) {
            return;
        }
        match &mut self.open {
            Some((b, sum, n)) if *b == bucket => {
                *sum += demand;
                *n += 1;
            }
            Some(_) | None => {
                if let Some((b, sum, n)) = self.open.take() {
                    self.close(b, (sum / f64::from(n)) as f32);
                }
                self.open = Some((bucket, demand, 1));
            }
        }
    }

    /// The latest forecast, or why there is none.
    pub fn outlook(&self) -> Result<&Outlook, &NoForecast> {
        self.latest.as_ref()
    }

    /// Each enabled model's errors at the horizon, over the last day and since start.
    pub fn errors(&self) -> Vec<ModelError> {
        Model::ALL
            .iter()
            .filter(|m| m.enabled(self.spec.seasons))
            .map(|&model| {
                let s = &self.scores[model.index()];
                ModelError {
                    model,
                    last_day: ErrorSummary { scored: s.pairs.len(), smape: s.smape(SCORE_WINDOW), mase: s.mase(SCORE_WINDOW) },
                    since_start: self.tallies[model.index()].summary(),
                }
            })
            .collect()
    }

    /// The error at the horizon of the forecast used (each minute, the chosen model's) since start.
    pub fn chosen_errors(&self) -> ErrorSummary {
        self.chosen_tally.summary()
    }

    /// Bytes this forecaster holds on the heap: its buffers' capacities times their element
    /// sizes (history, scored forecasts, pending forecasts, the MSTL path), plus itself.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        size_of::<Self>()
            + self.history.values.capacity() * size_of::<f32>()
            + self.scores.iter().map(|s| s.pairs.capacity() * size_of::<(f32, f32, f32)>()).sum::<usize>()
            + self.pending.capacity() * size_of::<(u64, [Option<f32>; 5], Option<f32>)>()
            + self.mstl.as_ref().map_or(0, |m| m.path.capacity() * size_of::<f64>())
            + self.latest.as_ref().map_or(0, |o| 3 * o.point.capacity() * size_of::<f64>())
    }

    /// The history to persist.
    pub fn snapshot(&self) -> HistorySnapshot {
        HistorySnapshot {
            version: HistorySnapshot::VERSION,
            bucket_s: BUCKET_S,
            start: self.history.start,
            values: self.history.values.iter().map(|v| (!v.is_nan()).then(|| (v * 10.0).round() / 10.0)).collect(),
        }
    }

    /// Continues from a persisted history: checked first (refused whole, nothing changed),
    /// then each model's forecasts over the history's last day are recomputed and scored
    /// (a backtest), so the choice of model and the interval are there at once.
    pub fn restore(&mut self, snap: &HistorySnapshot) -> Result<(), RestoreError> {
        if snap.version != HistorySnapshot::VERSION {
            return Err(RestoreError::Version(snap.version));
        }
        if snap.bucket_s != BUCKET_S {
            return Err(RestoreError::BucketSize(snap.bucket_s));
        }
        if snap.values.len() > CAPACITY {
            return Err(RestoreError::TooLong(snap.values.len()));
        }
        if let Some((index, v)) = snap.values.iter().enumerate().find(|(_, v)| v.is_some_and(|v| !v.is_finite() || v < 0.0)) {
            return Err(RestoreError::BadValue { index, value: format!("{v:?}") });
        }
        let snap_end = snap.start.checked_add(snap.values.len() as u64).ok_or(RestoreError::TooLong(snap.values.len()))?;
        let own = self.open.map_or(self.history.end(), |(b, _, _)| b);
        if own > 0 && snap_end > own {
            return Err(RestoreError::Ahead { snapshot: snap_end, own });
        }
        let mut history = History::empty();
        for (i, v) in snap.values.iter().enumerate() {
            history.push(snap.start + i as u64, v.unwrap_or(f32::NAN));
        }
        // Whatever this forecaster held before the snapshot's end is replaced; later buckets follow.
        for (i, v) in self.history.values.iter().enumerate() {
            let b = self.history.start + i as u64;
            if b >= snap_end {
                history.push(b, *v);
            }
        }
        self.history = history;
        self.mstl = None;
        self.pending.clear();
        self.scores = Default::default();
        self.backtest();
        Ok(())
    }

    /// Recomputes each model's forecasts over the history's last day (and the horizon before it)
    /// and scores them with the same code as online. Not identical to a live run: the weekly model
    /// only forecasts where the kept history reaches a week back (its last ~2 hours), so it
    /// starts with fewer scored forecasts (it is chosen once it has 60).
    fn backtest(&mut self) {
        let h = self.spec.horizon_buckets();
        let end = self.history.end();
        let from = end.saturating_sub(SCORE_WINDOW as u64 + h).max(self.history.start + 1);
        for e in from..=end {
            let paths = self.paths(e);
            let target = e + h;
            if let (true, Some(actual)) = (target < end, self.history.get(target)) {
                // The naive forecast is the last minute closed when this one was made.
                let naive = self.history.get(target - h - 1);
                for m in Model::ALL {
                    if let (Some(p), Some(naive)) = (&paths[m.index()], naive) {
                        self.scores[m.index()].push(p[h as usize], actual, naive);
                    }
                }
            } else {
                self.pending.push_back((target, paths.clone().map(|p| p.map(|p| p[h as usize] as f32)), None));
            }
            if e == end {
                self.latest = self.choose(e, &paths);
                if let (Ok(o), Some(last)) = (&self.latest, self.pending.back_mut()) {
                    last.2 = o.point.get(h as usize).map(|v| *v as f32);
                }
            }
        }
    }

    fn close(&mut self, bucket: u64, value: f32) {
        self.history.push(bucket, value);
        let h = self.spec.horizon_buckets();
        while let Some(&(target, forecasts, chosen)) = self.pending.front() {
            if target > bucket {
                break;
            }
            self.pending.pop_front();
            let (Some(actual), Some(naive)) = (self.history.get(target), self.history.get(target.saturating_sub(h + 1))) else { continue };
            for m in Model::ALL {
                if let Some(f) = forecasts[m.index()] {
                    self.scores[m.index()].push(f64::from(f), actual, naive);
                    self.tallies[m.index()].add(f64::from(f), actual, naive);
                }
            }
            if let Some(f) = chosen {
                self.chosen_tally.add(f64::from(f), actual, naive);
            }
        }
        let end = self.history.end();
        let paths = self.paths(end);
        self.latest = self.choose(end, &paths);
        let chosen = self.latest.as_ref().ok().and_then(|o| o.point.get(h as usize)).map(|v| *v as f32);
        self.pending.push_back((end + h, paths.map(|p| p.map(|p| p[h as usize] as f32)), chosen));
    }

    /// Each enabled model's path of `horizon + 1` buckets from `end`, from history before `end`.
    fn paths(&mut self, end: u64) -> [Option<Path>; 5] {
        let n = self.spec.horizon_buckets() + 1;
        let seasons = self.spec.seasons;
        Model::ALL.map(|m| if m.enabled(seasons) { self.path(m, end, n) } else { None })
    }

    fn path(&mut self, model: Model, end: u64, n: u64) -> Option<Path> {
        let h = &self.history;
        let lagged = |lag: u64| -> Option<Path> {
            (0..n).map(|k| (end + k).checked_sub(lag).and_then(|b| h.mean(b.saturating_sub(2), b + 3))).collect()
        };
        match model {
            Model::LastValue => {
                let v = h.mean(end.saturating_sub(5), end).or_else(|| h.mean(end.saturating_sub(15), end))?;
                Some(vec![v; n as usize])
            }
            Model::DailyNaive => lagged(DAY),
            Model::WeeklyNaive => lagged(WEEK),
            Model::DailyScaled => {
                let base = lagged(DAY)?;
                let (mut now, mut then, mut pairs) = (0.0, 0.0, 0);
                for b in end.saturating_sub(60)..end {
                    if let (Some(a), Some(p)) = (h.get(b), b.checked_sub(DAY).and_then(|p| h.get(p))) {
                        now += a;
                        then += p;
                        pairs += 1;
                    }
                }
                if pairs < 30 || then <= 0.0 {
                    return None;
                }
                let ratio = (now / then).clamp(0.5, 2.0);
                Some(base.into_iter().map(|v| v * ratio).collect())
            }
            Model::MstlEts => {
                if self.mstl.as_ref().is_none_or(|f| end < f.end || end - f.end >= MSTL_REFIT) {
                    // A failed fit is kept (empty) until the next refit is due: not retried every minute.
                    let aligned = end - end % MSTL_STEP;
                    self.mstl = Some(MstlFit { end: aligned, path: fit_mstl(h, aligned, n).unwrap_or_default() });
                }
                let fit = self.mstl.as_ref()?;
                (0..n)
                    .map(|k| {
                        let i = usize::try_from((end + k - fit.end) / MSTL_STEP).ok()?;
                        fit.path.get(i).map(|v| v.max(0.0))
                    })
                    .collect()
            }
        }
    }

    fn choose(&self, end: u64, paths: &[Option<Path>; 5]) -> Result<Outlook, NoForecast> {
        let known = self.history.known();
        if known < MIN_HISTORY {
            return Err(NoForecast::ShortHistory { known_minutes: known, needed_minutes: MIN_HISTORY });
        }
        let best = Model::ALL
            .iter()
            .filter(|m| m.enabled(self.spec.seasons) && self.scores[m.index()].pairs.len() >= MIN_SCORED)
            .filter_map(|&m| Some((m, self.scores[m.index()].smape(CHOICE_WINDOW)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((model, smape)) = best else {
            let scored = self.scores.iter().map(|s| s.pairs.len()).max().unwrap_or(0);
            return Err(NoForecast::Unscored { scored, needed: MIN_SCORED });
        };
        let s = &self.scores[model.index()];
        let (Some(point), Some(interval)) = (paths[model.index()].as_ref(), s.interval(self.spec.level)) else {
            return Err(NoForecast::NoPath { model });
        };
        let (lower, upper) = point.iter().map(|p| interval.bounds(*p)).unzip();
        Ok(Outlook {
            model,
            from_s: end * BUCKET_S,
            upper,
            lower,
            point: point.clone(),
            smape,
            mase: s.mase(CHOICE_WINDOW),
            scored: s.pairs.len(),
        })
    }
}

/// Errors of forecasts at the horizon.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorSummary {
    /// Forecasts scored.
    pub scored: usize,
    /// sMAPE over them (0..2; x 100 for the usual percentage).
    pub smape: Option<f64>,
    /// MASE over them (mean absolute error over that of the demand one horizon before).
    pub mase: Option<f64>,
}

/// One model's error at the horizon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelError {
    /// The model.
    pub model: Model,
    /// Over its last day of forecasts (the choice and the interval read these).
    pub last_day: ErrorSummary,
    /// Since this forecaster started.
    pub since_start: ErrorSummary,
}

/// One MSTL refit on `snapshot` as the forecaster does it every 30 minutes (five-minute means of
/// the last week, daily season, AutoETS trend), returning the five-minute path it forecasts
/// over the next refit interval and `horizon_buckets`: what `benches/forecast.rs` times.
pub fn mstl_refit(snapshot: &HistorySnapshot, horizon_buckets: u64) -> Option<Vec<f64>> {
    let mut h = History::empty();
    for (i, v) in snapshot.values.iter().enumerate() {
        h.push(snapshot.start + i as u64, v.unwrap_or(f32::NAN));
    }
    let end = h.end() - h.end() % MSTL_STEP;
    fit_mstl(&h, end, horizon_buckets + 1)
}

/// Fits MSTL (daily season) with an AutoETS trend to the five-minute means of the history before
/// `end` (a multiple of five minutes), and forecasts far enough for `n` buckets after the next
/// refit: five-minute means from `end` on. `None` with less than two days of points (STL needs two
/// seasons), when the last five minutes are unknown (the path would start from a guess), or when
/// the fit fails.
fn fit_mstl(h: &History, end: u64, n: u64) -> Option<Vec<f64>> {
    let from = end.saturating_sub(WEEK).max(h.start);
    let from = from + (MSTL_STEP - from % MSTL_STEP) % MSTL_STEP;
    let mut y: Vec<f64> = (from..end).step_by(MSTL_STEP as usize).map(|b| h.mean(b, b + MSTL_STEP).unwrap_or(f64::NAN)).collect();
    let first = y.iter().position(|v| !v.is_nan())?;
    if y.last().is_none_or(|v| v.is_nan()) {
        return None;
    }
    y.drain(..first);
    let season = (DAY / MSTL_STEP) as usize;
    if y.len() < 2 * season {
        return None;
    }
    interpolate_gaps(&mut y);
    let steps = (MSTL_REFIT + n).div_ceil(MSTL_STEP) as usize + 1;
    let model = MSTLModel::new(vec![season], AutoETS::non_seasonal().into_trend_model());
    let forecast = model.fit(&y).ok()?.predict(steps, None).ok()?;
    forecast.point.iter().all(|v| v.is_finite()).then_some(forecast.point)
}

/// Fills interior `NaN` runs linearly between the known values around them (the first and last
/// values are known). Written here because augurs-mstl 0.10 accepts an `impute` flag but does
/// not act on it, and STL cannot take a `NaN`.
fn interpolate_gaps(y: &mut [f64]) {
    let mut last_known = 0;
    for i in 1..y.len() {
        if y[i].is_nan() {
            continue;
        }
        let gap = i - last_known;
        if gap > 1 {
            let (a, b) = (y[last_known], y[i]);
            for k in 1..gap {
                y[last_known + k] = a + (b - a) * k as f64 / gap as f64;
            }
        }
        last_known = i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A diurnal demand: 1000 tokens/s at night, 5000 at the afternoon peak, per minute `b`.
    fn diurnal(b: u64) -> f64 {
        let phase = (b % DAY) as f64 / DAY as f64 * std::f64::consts::TAU;
        3000.0 - 2000.0 * phase.cos()
    }

    fn fed(days: u64, demand: impl Fn(u64) -> f64) -> Forecaster {
        let mut f = Forecaster::new(ForecastSpec::default());
        for b in 0..days * DAY {
            f.observe(Duration::from_secs(b * BUCKET_S), demand(b));
        }
        f
    }

    #[test]
    fn with_less_than_a_day_of_history_it_does_not_forecast_and_says_why() {
        let f = fed(1, diurnal);
        let err = f.outlook().unwrap_err();
        assert_eq!(err, &NoForecast::ShortHistory { known_minutes: 1439, needed_minutes: 1440 });
        assert_eq!(err.to_string(), "1439 min of demand history, needs 1440: reactive only");
    }

    #[test]
    fn on_a_diurnal_curve_a_seasonal_model_is_chosen_and_its_band_holds_the_demand() {
        let f = fed(3, diurnal);
        let o = f.outlook().unwrap();
        assert_ne!(o.model, Model::LastValue, "{o:?}");
        assert!(o.smape < 0.02, "{o:?}");
        let end = 3 * DAY - 1;
        for (k, (lo, hi)) in o.lower.iter().zip(&o.upper).enumerate() {
            let actual = diurnal(end + k as u64);
            assert!(*lo <= actual * 1.01 && actual <= *hi * 1.01, "minute {k}: {lo} <= {actual} <= {hi}");
        }
    }

    #[test]
    fn a_step_change_switches_the_choice_to_the_model_that_follows_the_new_level() {
        // Three days diurnal, then a client doubles the demand for half a day.
        let f = fed(4, |b| if b >= 3 * DAY + 600 { 2.0 * diurnal(b) } else { diurnal(b) });
        let o = f.outlook().unwrap();
        assert!(matches!(o.model, Model::DailyScaled | Model::LastValue | Model::MstlEts), "{o:?}");
        let actual = 2.0 * diurnal(4 * DAY - 1 + 15);
        assert!(o.upper[15] >= actual * 0.95, "{} vs {actual}", o.upper[15]);
    }

    #[test]
    fn gaps_are_unknown_not_zero_and_do_not_stop_the_forecast() {
        // An hour of nothing recorded (a restart) on the second day.
        let mut f = Forecaster::new(ForecastSpec::default());
        for b in (0..3 * DAY).filter(|b| !(DAY + 100..DAY + 160).contains(b)) {
            f.observe(Duration::from_secs(b * BUCKET_S), diurnal(b));
        }
        assert_eq!(f.history().known(), 3 * DAY as usize - 60 - 1);
        assert!(f.history().get(DAY + 120).is_none());
        let o = f.outlook().unwrap();
        assert!(o.point.iter().all(|v| *v > 500.0), "{o:?}");
    }

    #[test]
    fn zero_traffic_forecasts_zero_without_dividing_by_it() {
        let f = fed(2, |_| 0.0);
        let o = f.outlook().unwrap();
        assert!(o.point.iter().chain(&o.upper).all(|v| *v == 0.0), "{o:?}");
        assert_eq!(o.smape, 0.0);
    }

    #[test]
    fn a_restored_history_forecasts_at_once_as_the_live_one_does() {
        let live = fed(3, diurnal);
        let mut restored = Forecaster::new(ForecastSpec::default());
        restored.restore(&live.snapshot()).unwrap();
        let (a, b) = (live.outlook().unwrap(), restored.outlook().unwrap());
        assert_eq!(a.model, b.model);
        assert!((a.point[15] - b.point[15]).abs() < 1.0, "{} vs {}", a.point[15], b.point[15]);
        // JSON round trip, under the ConfigMap limit.
        let json = serde_json::to_string(&live.snapshot()).unwrap();
        assert!(json.len() < 100_000, "{}", json.len());
        let back: HistorySnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back.values.len(), live.history().values.len());
    }

    #[test]
    fn two_replicas_histories_merge_into_one_with_neither_gap() {
        let snap = |start: u64, values: Vec<Option<f32>>| HistorySnapshot { version: 1, bucket_s: 60, start, values };
        let a = snap(10, vec![Some(1.0), None, Some(3.0)]);
        let b = snap(11, vec![Some(20.0), Some(30.0), Some(40.0)]);
        assert_eq!(a.merged_with(&b), snap(10, vec![Some(1.0), Some(20.0), Some(3.0), Some(40.0)]));
        let foreign = HistorySnapshot { bucket_s: 300, ..b.clone() };
        assert_eq!(a.merged_with(&foreign), a);
    }

    #[test]
    fn bad_or_foreign_history_is_refused_whole() {
        let mut f = Forecaster::new(ForecastSpec::default());
        let good = fed(1, diurnal).snapshot();
        let mut s = good.clone();
        s.version = 9;
        assert_eq!(f.restore(&s), Err(RestoreError::Version(9)));
        let mut s = good.clone();
        s.bucket_s = 300;
        assert_eq!(f.restore(&s), Err(RestoreError::BucketSize(300)));
        let mut s = good.clone();
        s.values[7] = Some(-1.0);
        assert!(matches!(f.restore(&s), Err(RestoreError::BadValue { index: 7, .. })));
        let mut s = good.clone();
        s.values = vec![Some(1.0); CAPACITY + 1];
        assert_eq!(f.restore(&s), Err(RestoreError::TooLong(CAPACITY + 1)));
        assert_eq!(f.history().known(), 0, "nothing taken from a refused snapshot");
        // A snapshot from the future of what this forecaster already saw.
        let mut early = Forecaster::new(ForecastSpec::default());
        early.observe(Duration::from_secs(600), 5.0);
        assert!(matches!(early.restore(&good), Err(RestoreError::Ahead { .. })));
    }

    #[test]
    fn the_floor_window_is_cold_start_plus_buffer_capped_at_the_horizon() {
        let s = ForecastSpec::default();
        assert_eq!((s.horizon_buckets(), s.lead_buckets()), (15, 7));
        let long = ForecastSpec { cold_start: Duration::from_secs(1200), ..ForecastSpec::default() };
        assert_eq!(long.lead_buckets(), 15);
        let o = Outlook {
            model: Model::LastValue,
            from_s: 0,
            point: vec![1.0, 2.0, 3.0],
            lower: vec![0.0; 3],
            upper: vec![5.0, 9.0, 4.0],
            smape: 0.0,
            mase: None,
            scored: 60,
        };
        assert_eq!(o.ahead(0, 1), Some(Ahead { peak_upper: 9.0, point: 2.0, lower: 0.0 }));
        assert_eq!(o.ahead(0, 10), Some(Ahead { peak_upper: 9.0, point: 3.0, lower: 0.0 }));
        // Read a minute later, from where the clock is now; too old, or before it, nothing.
        assert_eq!(o.ahead(1, 1), Some(Ahead { peak_upper: 9.0, point: 3.0, lower: 0.0 }));
        assert_eq!(o.ahead(2, 1), Some(Ahead { peak_upper: 4.0, point: 3.0, lower: 0.0 }));
        assert_eq!(o.ahead(3, 1), None);
        let later = Outlook { from_s: 600, ..o };
        assert_eq!(later.ahead(9, 1), None);
    }

    #[test]
    fn seasons_and_modes_parse_as_written_in_metadata() {
        assert_eq!(Seasons::parse("daily"), Some(Seasons { daily: true, weekly: false }));
        assert_eq!(Seasons::parse("daily, weekly"), Some(Seasons { daily: true, weekly: true }));
        assert_eq!(Seasons::parse("none"), Some(Seasons { daily: false, weekly: false }));
        assert_eq!(Seasons::parse("hourly"), None);
        assert_eq!(ForecastMode::parse("forecastAndScale"), Some(ForecastMode::ForecastAndScale));
        assert_eq!(ForecastMode::parse("on"), None);
    }
}

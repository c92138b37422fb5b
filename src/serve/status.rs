//! `llm-scaler status`: a person's view of a running scaler, read from its decisions API and
//! printed the way `kubectl get hpa` prints autoscalers.
//!
//! The API's JSON (`/api/v1/decisions`) carries everything, including 60 past decisions per
//! ScaledObject; at 3 a.m. a person wants one line per fleet: how big it is and should be, which
//! signal decided, why, how old that answer is, and what the fleet costs. This module reads only
//! those fields (so a newer server with more fields still reads), turns each target into a typed
//! [`ObjectRow`] or [`JobRow`], and renders them as an aligned table or as JSON.
//!
//! A row never shows a number it does not have: no decision yet, a stale decision or an unknown
//! cost are printed as such (`-`, `unavailable: ...`, `unknown`), never as zero.

use std::{fmt::Write as _, io::Write as _, time::Duration};

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::spec::tenancy::is_namespace_name;

/// Where the scaler's HTTP port is when no address is given: the server's default `http_addr`
/// port, on this machine (a `kubectl port-forward` puts it there).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// How long one request may take before the scaler counts as unreachable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest reason the narrow table prints before cutting it (`-o wide` prints all of it).
const REASON_WIDTH: usize = 72;

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The address is not `host:port` or an `http://` URL.
    #[error("--addr {addr:?}: {why}")]
    BadAddress {
        /// What was given.
        addr: String,
        /// What was expected.
        why: String,
    },
    /// No HTTP answer (refused, timed out, reset).
    #[error("GET {url}: {source} (is `llm-scaler serve` listening there? its HTTP port is `http_addr`, 8080 by default)")]
    Unreachable {
        /// The URL asked.
        url: Url,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// An HTTP answer other than 200.
    #[error("GET {url}: HTTP {status}: {body}")]
    Refused {
        /// The URL asked.
        url: Url,
        /// The status code.
        status: u16,
        /// The server's explanation, trimmed.
        body: String,
    },
    /// A namespace or name Kubernetes would not accept.
    #[error("{flag} {value:?}: expected {expected}")]
    BadName {
        /// The flag or argument.
        flag: &'static str,
        /// What was given.
        value: String,
        /// What Kubernetes accepts there.
        expected: &'static str,
    },
    /// A 200 whose body is not the decisions API's JSON.
    #[error("GET {url}: not the decisions API's JSON ({source}); is this llm-scaler's HTTP port?")]
    Body {
        /// The URL asked.
        url: Url,
        /// Where the JSON did not fit.
        #[source]
        source: serde_json::Error,
    },
}

/// Which targets to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every served ScaledObject and ScaledJob.
    All,
    /// One namespace's.
    Namespace(String),
    /// One ScaledObject or ScaledJob.
    One {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

impl Scope {
    /// The scope of `--namespace` and the optional name, both checked the way Kubernetes checks
    /// them, so that nothing else ends up in the URL.
    pub fn new(namespace: Option<String>, name: Option<String>) -> Result<Scope, StatusError> {
        if let Some(ns) = &namespace
            && !is_namespace_name(ns)
        {
            return Err(StatusError::BadName { flag: "--namespace", value: ns.clone(), expected: NAMESPACE_RULE });
        }
        if let Some(n) = &name
            && !is_object_name(n)
        {
            return Err(StatusError::BadName { flag: "NAME", value: n.clone(), expected: NAME_RULE });
        }
        Ok(match (namespace, name) {
            (None, None) => Scope::All,
            (Some(ns), None) => Scope::Namespace(ns),
            (Some(namespace), Some(name)) => Scope::One { namespace, name },
            (None, Some(n)) => {
                return Err(StatusError::BadName {
                    flag: "NAME",
                    value: n,
                    expected: "a --namespace with it (ScaledObjects are namespaced)",
                });
            }
        })
    }

    fn path(&self) -> String {
        match self {
            Scope::All => "api/v1/decisions".into(),
            Scope::Namespace(ns) => format!("api/v1/decisions?namespace={ns}"),
            Scope::One { namespace, name } => format!("api/v1/decisions/{namespace}/{name}"),
        }
    }
}

const NAMESPACE_RULE: &str = "a namespace name: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit";
const NAME_RULE: &str =
    "a ScaledObject or ScaledJob name: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit";

/// Whether `s` is a valid object name (an RFC 1123 subdomain), as ScaledObject names are.
fn is_object_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// How `llm-scaler status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns, reasons cut to fit.
    Table,
    /// More columns (outcome, cost per 1k tokens, batch work) and whole reasons.
    Wide,
    /// The rows as JSON (`state` says whether KEDA gets a decision, and whether the cost is known).
    Json,
}

/// Reads a scaler's decisions API.
#[derive(Debug, Clone)]
pub struct Client {
    base: Url,
    http: reqwest::Client,
}

impl Client {
    /// A client for the scaler at `addr`: `host:port`, or an `http://` URL (with a path prefix
    /// when a proxy serves the API under one).
    pub fn new(addr: &str, timeout: Duration) -> Result<Client, StatusError> {
        let bad = |why: &str| StatusError::BadAddress { addr: addr.to_string(), why: why.to_string() };
        let bare = !addr.contains("://");
        let with_scheme = if bare { format!("http://{addr}") } else { addr.to_string() };
        let mut base = Url::parse(&with_scheme).map_err(|e| bad(&format!("{e}; expected host:port or http://host:port")))?;
        // `localhost` alone would mean port 80: a host without a port is a mistake, not a
        // choice (an http:// URL without one does mean 80).
        if bare && base.port().is_none() && !addr.ends_with(":80") {
            return Err(bad("no port; expected host:port or http://host:port"));
        }
        if base.scheme() != "http" {
            return Err(bad("the scaler's HTTP port speaks plain http://, not TLS; expected host:port or http://host:port"));
        }
        if base.host_str().is_none_or(str::is_empty) || base.port_or_known_default().is_none() {
            return Err(bad("expected host:port or http://host:port"));
        }
        if !base.path().ends_with('/') {
            let dir = format!("{}/", base.path());
            base.set_path(&dir);
        }
        let http = reqwest::Client::builder().timeout(timeout).build().map_err(|e| bad(&e.to_string()))?;
        Ok(Client { base, http })
    }

    /// The decisions API's answer for `scope`, as rows.
    pub async fn fetch(&self, scope: &Scope) -> Result<Status, StatusError> {
        let url = self.base.join(&scope.path()).map_err(|e| StatusError::BadAddress { addr: self.base.to_string(), why: e.to_string() })?;
        let unreachable = |source: reqwest::Error| StatusError::Unreachable { url: url.clone(), source: source.without_url() };
        let resp = self.http.get(url.clone()).send().await.map_err(unreachable)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&body).trim().chars().take(500).collect();
            return Err(StatusError::Refused { url, status: status.as_u16(), body });
        }
        let listing: Listing = serde_json::from_slice(&body).map_err(|source| StatusError::Body { url, source })?;
        Ok(Status::from(listing))
    }
}

// ---- What the API says (only the fields shown) ------------------------------------------------

/// `/api/v1/decisions`.
#[derive(Debug, Deserialize)]
struct Listing {
    scaledobjects: Vec<ObjectView>,
    #[serde(default)]
    scaledjobs: Vec<JobView>,
}

#[derive(Debug, Deserialize)]
struct ObjectView {
    namespace: String,
    name: String,
    latest: Option<LatestView>,
    age_seconds: Option<f64>,
    fresh: bool,
    last_error: Option<String>,
    cost: Option<CostView>,
    #[serde(flatten)]
    presence: PresenceFields,
}

/// Since when KEDA has not asked about a target, and when its collection stops (absent from a
/// server older than these fields: then no row is ever shown as replaced).
#[derive(Debug, Default, Deserialize)]
struct PresenceFields {
    #[serde(default)]
    asked_seconds_ago: Option<f64>,
    #[serde(default)]
    stops_in_seconds: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct LatestView {
    desired_replicas: u32,
    current_replicas: u32,
    dominant: Option<String>,
    outcome: String,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum CostView {
    Known {
        dollars_per_hour: f64,
        dollars_per_1k_tokens: Option<f64>,
    },
    Unknown {
        reason: String,
    },
    /// A state a newer server has and this client does not know: shown as unknown.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct JobView {
    namespace: String,
    name: String,
    decision: Option<BatchView>,
    age_seconds: Option<f64>,
    fresh: bool,
    last_error: Option<String>,
    #[serde(flatten)]
    presence: PresenceFields,
}

#[derive(Debug, Deserialize)]
struct BatchView {
    /// `null` if the server had no finite number (serde_json writes NaN and infinities so).
    work: Option<f64>,
    jobs_wanted: u64,
    jobs: u64,
    bound: String,
    cost_per_hour: f64,
    reason: String,
}

// ---- What a person sees ----------------------------------------------------------------------

/// Every target's row, as `-o json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// One row per served ScaledObject.
    pub scaledobjects: Vec<ObjectRow>,
    /// One row per served ScaledJob.
    pub scaledjobs: Vec<JobRow>,
}

/// What KEDA is told about a target, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Answer<T> {
    /// A fresh decision: KEDA gets it.
    Deciding(T),
    /// No fresh decision: KEDA gets UNAVAILABLE (the HPA holds, or applies its fallback).
    Unavailable {
        /// The last decision, too old to serve, if there was one.
        stale: Option<T>,
        /// Why: the last problem, else that no decision was made yet.
        reason: String,
    },
}

/// One ScaledObject's decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replicas {
    /// Ready + starting pods when it decided.
    pub current: u32,
    /// What KEDA gets.
    pub desired: u32,
    /// The signal that decided (`None` when no signal set it, e.g. held at a bound).
    pub signal: Option<String>,
    /// Scale up, down or hold.
    pub outcome: String,
    /// The one-line explanation.
    pub reason: String,
}

/// A fleet's cost as the scaler meters it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Cost {
    /// Not counted yet (no discovery yet).
    NotYet,
    /// Known.
    Known {
        /// Dollars per hour now.
        dollars_per_hour: f64,
        /// Dollars per 1,000 tokens over the last minutes, while tokens flow.
        dollars_per_1k_tokens: Option<f64>,
    },
    /// Some pod's GPUs are unknown.
    Unknown {
        /// Which pod and which key to set.
        reason: String,
    },
}

/// One served ScaledObject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectRow {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The decision KEDA gets, or why it gets none.
    pub answer: Answer<Replicas>,
    /// Seconds since the latest decision.
    pub age_seconds: Option<f64>,
    /// The cost of its pods.
    pub cost: Cost,
    /// Set when KEDA now asks about this ScaledObject with other metadata (it was edited):
    /// this row is the old metadata's, winding down.
    pub replaced: Option<Replaced>,
}

/// A target of old metadata: KEDA asks about its namespace and name with other metadata now
/// (the ScaledObject or ScaledJob was edited), so nothing reads this target's answer and its
/// collection stops once the idle timeout has passed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replaced {
    /// Seconds since KEDA last asked with this metadata.
    pub asked_seconds_ago: f64,
    /// Seconds until its collection stops (`None`: a push stream keeps it).
    pub stops_in_seconds: Option<f64>,
}

/// How long KEDA may leave a live target unasked: the HPA asks for metrics every 15 s and KEDA
/// checks activity every `pollingInterval` (30 s by default), so a minute without a question
/// while a same-named target was asked within it means this one's metadata was replaced.
pub const REPLACED_AFTER_SECONDS: f64 = 60.0;

/// Which of the targets `(namespace, name, presence)` are replaced: not asked for
/// [`REPLACED_AFTER_SECONDS`] while another of the same namespace and name was. Two triggers of
/// one ScaledObject with different metadata are both asked and so neither is replaced.
fn replaced(targets: &[(&str, &str, &PresenceFields)]) -> Vec<Option<Replaced>> {
    let live = |p: &PresenceFields| p.asked_seconds_ago.is_some_and(|a| a < REPLACED_AFTER_SECONDS);
    targets
        .iter()
        .enumerate()
        .map(|(i, (ns, name, p))| {
            let asked_seconds_ago = p.asked_seconds_ago.filter(|a| *a >= REPLACED_AFTER_SECONDS)?;
            let superseded = targets.iter().enumerate().any(|(j, (ns2, name2, p2))| j != i && ns == ns2 && name == name2 && live(p2));
            superseded.then_some(Replaced { asked_seconds_ago, stops_in_seconds: p.stops_in_seconds })
        })
        .collect()
}

/// One ScaledJob's batch decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Jobs {
    /// Jobs the queue's work asks for.
    pub wanted: u64,
    /// Jobs planned after the deadline and budget (what KEDA gets).
    pub planned: u64,
    /// Which limit set them (`queue`, `deadline`, `budget`).
    pub bound: String,
    /// Work items queued or in flight (`None`: the server had no finite number).
    pub work: Option<f64>,
    /// Dollars per hour of the planned Jobs at the Spot price.
    pub dollars_per_hour: f64,
    /// The one-line explanation.
    pub reason: String,
}

/// One served ScaledJob.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The decision KEDA gets, or why it gets none.
    pub answer: Answer<Jobs>,
    /// Seconds since the latest decision.
    pub age_seconds: Option<f64>,
    /// Set when KEDA now asks about this ScaledJob with other metadata (see [`Replaced`]).
    pub replaced: Option<Replaced>,
}

fn answer<T>(decision: Option<T>, fresh: bool, last_error: Option<String>) -> Answer<T> {
    match decision {
        Some(d) if fresh => Answer::Deciding(d),
        stale => {
            let reason = match (last_error, &stale) {
                (Some(e), _) => e,
                (None, Some(_)) => "the latest decision is older than stale_after".into(),
                (None, None) => "no decision yet".into(),
            };
            Answer::Unavailable { stale, reason }
        }
    }
}

impl From<Listing> for Status {
    fn from(l: Listing) -> Status {
        let replaced_objects =
            replaced(&l.scaledobjects.iter().map(|o| (o.namespace.as_str(), o.name.as_str(), &o.presence)).collect::<Vec<_>>());
        let scaledobjects = l
            .scaledobjects
            .into_iter()
            .zip(replaced_objects)
            .map(|(o, replaced)| ObjectRow {
                replaced,
                answer: answer(
                    o.latest.map(|d| Replicas {
                        current: d.current_replicas,
                        desired: d.desired_replicas,
                        signal: d.dominant,
                        outcome: d.outcome,
                        reason: d.reason,
                    }),
                    o.fresh,
                    o.last_error,
                ),
                age_seconds: o.age_seconds,
                cost: match o.cost {
                    None => Cost::NotYet,
                    Some(CostView::Known { dollars_per_hour, dollars_per_1k_tokens }) => {
                        Cost::Known { dollars_per_hour, dollars_per_1k_tokens }
                    }
                    Some(CostView::Unknown { reason }) => Cost::Unknown { reason },
                    Some(CostView::Other) => Cost::Unknown { reason: "a cost state this llm-scaler status does not know".into() },
                },
                namespace: o.namespace,
                name: o.name,
            })
            .collect();
        let replaced_jobs =
            replaced(&l.scaledjobs.iter().map(|j| (j.namespace.as_str(), j.name.as_str(), &j.presence)).collect::<Vec<_>>());
        let scaledjobs = l
            .scaledjobs
            .into_iter()
            .zip(replaced_jobs)
            .map(|(j, replaced)| JobRow {
                replaced,
                answer: answer(
                    j.decision.map(|d| Jobs {
                        wanted: d.jobs_wanted,
                        planned: d.jobs,
                        bound: d.bound,
                        work: d.work,
                        dollars_per_hour: d.cost_per_hour,
                        reason: d.reason,
                    }),
                    j.fresh,
                    j.last_error,
                ),
                age_seconds: j.age_seconds,
                namespace: j.namespace,
                name: j.name,
            })
            .collect();
        Status { scaledobjects, scaledjobs }
    }
}

impl Status {
    /// Whether nothing is being served.
    pub fn is_empty(&self) -> bool {
        self.scaledobjects.is_empty() && self.scaledjobs.is_empty()
    }

    /// The text `output` asks for: a table, or JSON (one line with `compact`, for `--watch`).
    pub fn render(&self, output: Output, compact: bool) -> String {
        let json = |s: &Status| if compact { serde_json::to_string(s) } else { serde_json::to_string_pretty(s) };
        match output {
            Output::Table => self.table(false),
            Output::Wide => self.table(true),
            // Plain structs of strings and finite numbers: serialising cannot fail.
            Output::Json => json(self).map(|j| j + "\n").unwrap_or_default(),
        }
    }

    /// What `--watch` compares to print a table again only when it matters: the rows without
    /// what moves every tick (ages, reasons with their live numbers, cost per 1k tokens, the
    /// batch work), so replicas, signal, outcome, state, cost per hour and Jobs remain.
    pub fn material(&self) -> Status {
        let mut s = self.clone();
        let still = |r: &mut Option<Replaced>| {
            if let Some(r) = r {
                (r.asked_seconds_ago, r.stops_in_seconds) = (0.0, r.stops_in_seconds.map(|_| 0.0));
            }
        };
        for o in &mut s.scaledobjects {
            o.age_seconds = None;
            still(&mut o.replaced);
            match &mut o.answer {
                Answer::Deciding(d) | Answer::Unavailable { stale: Some(d), .. } => d.reason.clear(),
                Answer::Unavailable { stale: None, .. } => {}
            }
            if let Cost::Known { dollars_per_1k_tokens, .. } = &mut o.cost {
                *dollars_per_1k_tokens = None;
            }
        }
        for j in &mut s.scaledjobs {
            j.age_seconds = None;
            still(&mut j.replaced);
            if let Answer::Deciding(d) | Answer::Unavailable { stale: Some(d), .. } = &mut j.answer {
                d.reason.clear();
                d.work = None;
            }
        }
        s
    }

    /// The table `llm-scaler status` prints: ScaledObjects, then (after a blank line) ScaledJobs,
    /// each sorted by namespace and name, a replaced target after the live one it gave way to.
    /// `wide` adds columns and prints whole reasons.
    pub fn table(&self, wide: bool) -> String {
        let mut out = String::new();
        let mut objects: Vec<&ObjectRow> = self.scaledobjects.iter().collect();
        objects.sort_by(|a, b| (&a.namespace, &a.name, a.replaced.is_some()).cmp(&(&b.namespace, &b.name, b.replaced.is_some())));
        let mut jobs: Vec<&JobRow> = self.scaledjobs.iter().collect();
        jobs.sort_by(|a, b| (&a.namespace, &a.name, a.replaced.is_some()).cmp(&(&b.namespace, &b.name, b.replaced.is_some())));
        if !objects.is_empty() {
            let mut head = vec!["NAMESPACE", "SCALEDOBJECT", "REPLICAS", "SIGNAL", "COST/H", "AGE"];
            if wide {
                head.extend(["OUTCOME", "$/1K TOKENS"]);
            }
            head.push("REASON");
            let rows = objects.iter().map(|o| object_cells(o, wide)).collect::<Vec<_>>();
            out.push_str(&align(&head, &rows));
        }
        if !jobs.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            let mut head = vec!["NAMESPACE", "SCALEDJOB", "JOBS", "WANTED", "BOUND", "COST/H", "AGE"];
            if wide {
                head.push("WORK");
            }
            head.push("REASON");
            let rows = jobs.iter().map(|j| job_cells(j, wide)).collect::<Vec<_>>();
            out.push_str(&align(&head, &rows));
        }
        out
    }
}

fn object_cells(o: &ObjectRow, wide: bool) -> Vec<String> {
    let (replicas, signal, outcome, reason) = match &o.answer {
        Answer::Deciding(d) => {
            (format!("{}/{}", d.current, d.desired), d.signal.clone().unwrap_or_else(|| "-".into()), d.outcome.clone(), d.reason.clone())
        }
        Answer::Unavailable { stale, reason } => (
            stale.as_ref().map_or("-".into(), |d| format!("{}/{}", d.current, d.desired)),
            "-".into(),
            "unavailable".into(),
            format!("unavailable: {reason}"),
        ),
    };
    let (per_hour, per_1k) = match &o.cost {
        Cost::NotYet => ("-".into(), "-".into()),
        Cost::Known { dollars_per_hour, dollars_per_1k_tokens } => {
            (dollars(*dollars_per_hour), dollars_per_1k_tokens.map_or("-".into(), |p| format!("${p:.4}")))
        }
        Cost::Unknown { .. } => ("unknown".into(), "unknown".into()),
    };
    let reason = o.replaced.as_ref().map_or(reason, |r| r.reason());
    let mut cells = vec![o.namespace.clone(), o.name.clone(), replicas, signal, per_hour, age(o.age_seconds, &o.answer)];
    if wide {
        cells.extend([outcome, per_1k]);
    }
    cells.push(if wide { reason } else { cut(&reason, REASON_WIDTH) });
    cells
}

fn job_cells(j: &JobRow, wide: bool) -> Vec<String> {
    let (planned, wanted, bound, per_hour, work, reason) = match &j.answer {
        Answer::Deciding(d) => (
            d.planned.to_string(),
            d.wanted.to_string(),
            d.bound.clone(),
            dollars(d.dollars_per_hour),
            d.work.map_or("-".into(), |w| format!("{w:.0}")),
            d.reason.clone(),
        ),
        Answer::Unavailable { reason, .. } => {
            ("-".into(), "-".into(), "-".into(), "-".into(), "-".into(), format!("unavailable: {reason}"))
        }
    };
    let reason = j.replaced.as_ref().map_or(reason, |r| r.reason());
    let mut cells = vec![j.namespace.clone(), j.name.clone(), planned, wanted, bound, per_hour, age(j.age_seconds, &j.answer)];
    if wide {
        cells.push(work);
    }
    cells.push(if wide { reason } else { cut(&reason, REASON_WIDTH) });
    cells
}

impl Replaced {
    /// The reason a replaced row shows instead of its decision's: its numbers are not what
    /// KEDA acts on, the row above (the same name) is.
    fn reason(&self) -> String {
        let stops = match self.stops_in_seconds {
            Some(s) => format!("stops in {}", short_duration(s)),
            None => "kept by a push stream".into(),
        };
        format!("replaced by new metadata: last asked {} ago, {stops}", short_duration(self.asked_seconds_ago))
    }
}

fn dollars(x: f64) -> String {
    format!("${x:.2}")
}

/// The latest decision's age like kubectl's AGE (`45s`, `3m12s`, `2h5m`, `3d4h`), marked when
/// KEDA no longer gets it.
fn age<T>(seconds: Option<f64>, answer: &Answer<T>) -> String {
    let Some(s) = seconds.filter(|s| s.is_finite() && *s >= 0.0) else { return "-".into() };
    let short = short_duration(s);
    match answer {
        Answer::Deciding(_) => short,
        Answer::Unavailable { .. } => format!("{short} (stale)"),
    }
}

/// Whole units, the two largest, as kubectl prints ages.
pub fn short_duration(seconds: f64) -> String {
    let s = seconds.floor() as u64;
    let (d, h, m, sec) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    match () {
        _ if d > 0 => format!("{d}d{h}h"),
        _ if h > 0 => format!("{h}h{m}m"),
        _ if m > 0 => format!("{m}m{sec}s"),
        _ => format!("{sec}s"),
    }
}

/// At most `max` characters, cut after a whole word (unless that loses over half) and marked
/// with `...`, so that no number is shown cut short ("x 1..." for "x 1.5").
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let kept: String = s.chars().take(max.saturating_sub(3)).collect();
    let next_is_space = s.chars().nth(kept.chars().count()).is_some_and(char::is_whitespace);
    let words = match kept.rfind(char::is_whitespace) {
        _ if next_is_space => kept.as_str(),
        Some(at) if at >= kept.len() / 2 => &kept[..at],
        _ => kept.as_str(),
    };
    format!("{}...", words.trim_end())
}

/// Columns padded to their widest cell with three spaces between, as kubectl prints them
/// (tabwriter: Go's text/tabwriter, which kubectl uses, in Rust).
fn align(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut tw = tabwriter::TabWriter::new(Vec::new()).padding(3);
    let mut text = head.join("\t");
    text.push('\n');
    for r in rows {
        // A tab or newline inside a cell would break the columns, and other control
        // characters (from a pod's error text) have no business reaching the terminal.
        let cells: Vec<String> = r.iter().map(|c| c.chars().map(|ch| if ch.is_control() { ' ' } else { ch }).collect()).collect();
        let _ = writeln!(text, "{}", cells.join("\t"));
    }
    // Writing to a Vec cannot fail; the bytes are the UTF-8 given.
    let _ = tw.write_all(text.as_bytes());
    let bytes = tw.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests;

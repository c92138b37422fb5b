//! A small streaming parser for the Prometheus text exposition format.
//!
//! Why not `prometheus-parse`: version 0.2.5 silently drops every metric whose name contains `:`
//! (its regexes use `\w+`), so all of vLLM's `vllm:*` series vanish without an error; it splits
//! label values naively on `,` and `=`; and it costs 1.4-2 ms and about 15,000 allocations for a
//! 75 KB vLLM body. This parser instead:
//!
//! - hands the caller ([`Visitor`]) only the samples whose metric name it asks for; other lines are
//!   skipped after reading their name, which is where the speed comes from;
//! - parses each HTTP response chunk as it arrives ([`StreamParser::feed`]), keeping only the
//!   unfinished last line of a chunk in a carry buffer bounded by [`Limits::max_line_len`];
//! - allocates nothing per sample line: names, label names and label values are borrowed
//!   (`&str` / [`LabelValue`]) from the input.
//!
//! Accepted syntax (the classic `text/plain; version=0.0.4` format, which `version=1.0.0` bodies
//! share, plus the OpenMetrics bits vLLM may emit):
//!
//! - metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`;
//! - label values in double quotes with the escapes `\\`, `\"` and `\n`; they may hold `,`, `=`,
//!   `}`, spaces and any UTF-8; a trailing comma before `}` is allowed;
//! - blanks (spaces, tabs) before a line and around every token, as Prometheus' own parser allows;
//! - values as Go's `ParseFloat` would mostly read them: `3.0`, `1.79546178108279e+09`, `+Inf`,
//!   `-Inf`, `Inf`, `NaN`, integers;
//! - an optional timestamp after the value: integer milliseconds, or OpenMetrics float seconds
//!   (converted to milliseconds); an OpenMetrics exemplar (` # {...} ...`) after it is ignored;
//! - `# TYPE` lines are reported through [`Visitor::type_hint`]; `# HELP` and other comments are
//!   ignored; an OpenMetrics `# EOF` line ends the body (anything after it is ignored);
//! - blank lines are ignored and `\r\n` line endings are tolerated.
//!
//! Every other line must at least start with a valid metric name followed by `{`, a space or a tab,
//! so an HTML error page or random bytes are rejected with a clear error instead of being read as
//! "no samples". Duplicate label names are not rejected ([`Sample::label`] returns the first).
//!
//! A body that repeats a series (same name and label set, in any label order) among the wanted
//! samples is rejected with [`ParseError::DuplicateSeries`], naming the series and both lines:
//! it is invalid exposition, Prometheus refuses such a scrape, and summing both samples would
//! double that pod's load. Lines the visitor skips are not checked (they are never parsed past
//! their name, and cannot change a decision).

use std::{
    borrow::Cow,
    collections::{HashMap, hash_map::Entry},
    hash::BuildHasher as _,
};

use foldhash::fast::{FixedState, RandomState};

/// Longest excerpt of an offending line kept in a [`ParseError`], in bytes: enough to recognise
/// the line in a log, bounded so that a hostile body cannot blow up error messages.
const EXCERPT_LEN: usize = 80;

/// What kind a `# TYPE` line declared.
///
/// Why: a scraper needs to know which families are histograms (to read `_bucket`/`_count`/`_sum`)
/// or counters (to compute rates and detect resets) without hard-coding every name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// `counter`: monotonically increasing; rates come from deltas between scrapes.
    Counter,
    /// `gauge`: a value that goes up and down.
    Gauge,
    /// `histogram`: `_bucket{le=..}`, `_count` and `_sum` samples.
    Histogram,
    /// `summary`: `{quantile=..}`, `_count` and `_sum` samples.
    Summary,
    /// `untyped`: the classic format's "no type given".
    Untyped,
    /// OpenMetrics `info`: a constant 1 carrying labels.
    Info,
    /// OpenMetrics `stateset`: one 0/1 sample per state.
    StateSet,
    /// OpenMetrics `gaugehistogram`.
    GaugeHistogram,
    /// OpenMetrics `unknown`: the OpenMetrics spelling of untyped.
    Unknown,
}

impl MetricType {
    /// Reads the keyword of a `# TYPE` line; `None` for anything Prometheus would reject.
    fn from_keyword(word: &[u8]) -> Option<Self> {
        Some(match word {
            b"counter" => Self::Counter,
            b"gauge" => Self::Gauge,
            b"histogram" => Self::Histogram,
            b"summary" => Self::Summary,
            b"untyped" => Self::Untyped,
            b"info" => Self::Info,
            b"stateset" => Self::StateSet,
            b"gaugehistogram" => Self::GaugeHistogram,
            b"unknown" => Self::Unknown,
            _ => return None,
        })
    }

    /// The keyword as written in a `# TYPE` line, for logs and explanations.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Summary => "summary",
            Self::Untyped => "untyped",
            Self::Info => "info",
            Self::StateSet => "stateset",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Unknown => "unknown",
        }
    }
}

/// One sample line that the [`Visitor`] wanted, fully validated, borrowed from the input.
///
/// Why borrowed: building owned names and label maps per line is what makes generic parsers slow;
/// the visitor copies out only the few numbers it needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// The sample's metric name as written, e.g. `vllm:e2e_request_latency_seconds_bucket`.
    pub name: &'a str,
    /// The sample value (may be `±Inf` or `NaN`).
    pub value: f64,
    /// The optional timestamp in milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
    /// Validated text between `{` and `}` (empty without labels), still escaped.
    raw_labels: &'a str,
}

impl<'a> Sample<'a> {
    /// Iterates the `(label name, value)` pairs in the order written, without allocating.
    pub fn labels(&self) -> Labels<'a> {
        Labels { rest: self.raw_labels }
    }

    /// The value of the first label called `name`, if any.
    ///
    /// Why a linear scan: series carry a handful of labels, and scanning the validated text is
    /// cheaper than building any map.
    pub fn label(&self, name: &str) -> Option<LabelValue<'a>> {
        self.labels().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The raw label text between the braces (still escaped, empty without labels).
    ///
    /// Why: a stable, allocation-free key for a series (labels keep their written order between
    /// scrapes of the same exporter), e.g. to match samples across two scrapes.
    pub fn labels_raw(&self) -> &'a str {
        self.raw_labels
    }
}

/// A label value as written between the quotes, still escaped.
///
/// Why not a `String`: most values never need unescaping (they hold no backslash), so comparing
/// or parsing them in place avoids an allocation per label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LabelValue<'a> {
    raw: &'a str,
}

impl<'a> LabelValue<'a> {
    /// The text between the quotes, escapes (`\\`, `\"`, `\n`) left as written.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether the unescaped value equals `s`, compared without allocating.
    pub fn eq_unescaped(&self, s: &str) -> bool {
        let mut want = s.bytes();
        let mut raw = self.raw.bytes();
        while let Some(b) = raw.next() {
            let got = if b == b'\\' { unescape_byte(raw.next()) } else { b };
            if want.next() != Some(got) {
                return false;
            }
        }
        want.next().is_none()
    }

    /// The unescaped value: borrowed when the raw text holds no backslash (the usual case).
    pub fn unescape(&self) -> Cow<'a, str> {
        if !self.raw.contains('\\') {
            return Cow::Borrowed(self.raw);
        }
        let mut out = String::with_capacity(self.raw.len());
        let mut chars = self.raw.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// The value read as a float, e.g. a histogram bucket bound `le="0.5"` or `le="+Inf"`.
    pub fn as_f64(&self) -> Option<f64> {
        parse_float(self.unescape().as_bytes())
    }
}

/// The byte an escape sequence `\x` stands for (only `\n` differs from the escaped byte).
fn unescape_byte(escaped: Option<u8>) -> u8 {
    match escaped {
        Some(b'n') => b'\n',
        Some(other) => other,
        None => b'\\',
    }
}

/// Iterator over a sample's `(label name, value)` pairs, from [`Sample::labels`].
///
/// Why an iterator over text: it re-reads the already validated label text lazily, so a visitor
/// that needs one label pays for nothing else.
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Labels<'a> {
    type Item = (&'a str, LabelValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let text = self.rest;
        let bytes = text.as_bytes();
        let start = skip_blanks(bytes, 0);
        if start >= bytes.len() {
            self.rest = "";
            return None;
        }
        let Ok(pair) = scan_label_pair(bytes, start) else {
            // Unreachable for text that passed validation; stop rather than panic.
            self.rest = "";
            return None;
        };
        let name = text.get(pair.name_start..pair.name_end)?;
        let raw = text.get(pair.value_start..pair.value_end)?;
        let mut next = skip_blanks(bytes, pair.end);
        if bytes.get(next) == Some(&b',') {
            next += 1;
        }
        self.rest = text.get(next..).unwrap_or("");
        Some((name, LabelValue { raw }))
    }
}

/// Receives the samples of a body; decides which ones are worth parsing.
///
/// Why a visitor rather than a returned list: the scaler reads a dozen families out of hundreds
/// of lines, and asking before parsing lets every other line be skipped after its name.
pub trait Visitor {
    /// Called with the sample's metric name (e.g. `vllm:e2e_request_latency_seconds_bucket`)
    /// before its labels and value are parsed; return false to skip the line cheaply.
    fn wants(&mut self, name: &str) -> bool;

    /// Called for every wanted sample line, after it was fully validated.
    fn sample(&mut self, sample: &Sample<'_>);

    /// Called for every `# TYPE` line with the family name and declared kind; does nothing by
    /// default because most visitors know the names they ask for.
    fn type_hint(&mut self, _family: &str, _kind: MetricType) {}
}

/// Bounds on what one body may cost, so a broken or hostile endpoint cannot exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line accepted, in bytes without the newline; also the most the carry buffer ever
    /// holds. Default 64 KiB (vLLM's longest line, `cache_config_info`, is well under 1 KiB).
    pub max_line_len: usize,
    /// Largest body accepted, in bytes. Default 16 MiB (a two-engine vLLM body is about 75 KB).
    pub max_body_len: usize,
    /// Most distinct wanted series in one body: bounds the duplicate check's memory (about 32
    /// bytes a series). Default 50,000; a two-engine vLLM body has about 500 the scaler reads.
    pub max_series: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_line_len: 64 * 1024, max_body_len: 16 * 1024 * 1024, max_series: 50_000 }
    }
}

/// Counts for one parsed body, for logs and metrics about the scrape itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes fed (including any after `# EOF`).
    pub bytes: u64,
    /// Lines read, comments and blank lines included, up to and including `# EOF`.
    pub lines: u64,
    /// Sample lines seen, wanted or not.
    pub samples_seen: u64,
    /// Sample lines the visitor wanted (and received).
    pub samples_wanted: u64,
}

/// Why a body was rejected. Line numbers are 1-based; excerpts are bounded and lossy UTF-8.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// A line that is neither blank nor a comment does not start with a metric name followed by
    /// `{`, a space or a tab (e.g. an HTML error page), or a `# TYPE` line names no valid metric.
    #[error("line {line}: expected a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) followed by '{{', space or tab: {excerpt:?}")]
    BadName {
        /// 1-based line number.
        line: u64,
        /// Bounded part of the line.
        excerpt: String,
    },
    /// The label set of a wanted sample is malformed.
    #[error("line {line}: bad labels ({reason}): {excerpt:?}")]
    BadLabels {
        /// 1-based line number.
        line: u64,
        /// What was expected.
        reason: &'static str,
        /// Bounded part of the line around the problem.
        excerpt: String,
    },
    /// The value of a wanted sample is missing or not a number.
    #[error("line {line}: missing or invalid sample value: {excerpt:?}")]
    BadValue {
        /// 1-based line number.
        line: u64,
        /// Bounded part of the line around the problem.
        excerpt: String,
    },
    /// The timestamp of a wanted sample is not a number, or text follows it.
    #[error("line {line}: invalid timestamp or trailing text after the value: {excerpt:?}")]
    BadTimestamp {
        /// 1-based line number.
        line: u64,
        /// Bounded part of the line around the problem.
        excerpt: String,
    },
    /// A `# TYPE` line declares an unknown kind.
    #[error("line {line}: unknown metric type in # TYPE line: {excerpt:?}")]
    BadType {
        /// 1-based line number.
        line: u64,
        /// Bounded part of the line.
        excerpt: String,
    },
    /// A line is longer than [`Limits::max_line_len`].
    #[error("line {line} is longer than {limit} bytes")]
    LineTooLong {
        /// 1-based line number.
        line: u64,
        /// The limit in force.
        limit: usize,
    },
    /// The body is longer than [`Limits::max_body_len`].
    #[error("body is longer than {limit} bytes")]
    BodyTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// A wanted sample line is not valid UTF-8.
    #[error("line {line}: invalid UTF-8: {excerpt:?}")]
    InvalidUtf8 {
        /// 1-based line number.
        line: u64,
        /// Bounded, lossily decoded part of the line.
        excerpt: String,
    },
    /// The body holds more wanted series than [`Limits::max_series`].
    #[error("line {line}: more than {limit} series of the families read")]
    TooManySeries {
        /// 1-based line number of the first series over the limit.
        line: u64,
        /// The limit in force.
        limit: usize,
    },
    /// A wanted series (same name and labels) appears a second time in the body.
    #[error("line {line}: duplicate series (also on line {first_line}), invalid exposition that Prometheus rejects: {excerpt:?}")]
    DuplicateSeries {
        /// 1-based line number of the repeat.
        line: u64,
        /// 1-based line number where the series first appeared.
        first_line: u64,
        /// Bounded part of the repeated line.
        excerpt: String,
    },
}

/// A problem found inside one line, before the line number is known to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineError {
    Name,
    Labels(&'static str),
    Value,
    Timestamp,
    Type,
    Utf8,
    /// The series was already seen, on this line.
    Duplicate(u64),
    /// One series more than [`Limits::max_series`].
    TooManySeries,
}

/// Incremental parser: feed it the chunks of one body as they arrive, then call
/// [`finish`](StreamParser::finish).
///
/// Why streaming: the scaler scrapes hundreds of pods; parsing each chunk as it arrives avoids
/// buffering whole bodies. Only a line split across two chunks is copied, into a carry buffer that
/// never grows beyond [`Limits::max_line_len`] and is kept (with its capacity) across scrapes.
#[derive(Debug, Clone)]
pub struct StreamParser {
    limits: Limits,
    /// Start of a line whose end has not arrived yet.
    carry: Vec<u8>,
    stats: Stats,
    /// `# EOF` seen (or `finish` called): ignore whatever follows.
    done: bool,
    /// The error that stopped this body; returned again by later calls until `reset`.
    failed: Option<ParseError>,
    /// Series identity ([`series_id`]) of every wanted sample of this body -> its line. Cleared
    /// by `reset` with its capacity kept, so a reused parser allocates nothing per body.
    seen: HashMap<u64, u64, FixedState>,
    /// Seeds [`series_id`]: random per parser, so a body's author cannot craft two series whose
    /// identities collide (a false "duplicate" would fail a shared exporter's scrape).
    ids: RandomState,
}

impl Default for StreamParser {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl StreamParser {
    /// A parser with the given limits; allocates nothing until a line is split across chunks or
    /// the first wanted series is recorded for the duplicate check.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            carry: Vec::new(),
            stats: Stats::default(),
            done: false,
            failed: None,
            seen: HashMap::with_hasher(FixedState::default()),
            ids: RandomState::default(),
        }
    }

    /// Parses the complete lines of `chunk` (plus any line begun in earlier chunks) and keeps the
    /// unfinished last line for the next call.
    ///
    /// After an error the parser is stopped: later calls return the same error until
    /// [`reset`](StreamParser::reset).
    pub fn feed<V: Visitor>(&mut self, chunk: &[u8], v: &mut V) -> Result<(), ParseError> {
        self.guard(|p| p.feed_inner(chunk, v, false))
    }

    /// Parses the last line if the body did not end with a newline, and returns the counts.
    ///
    /// Call [`reset`](StreamParser::reset) before feeding the next body.
    pub fn finish<V: Visitor>(&mut self, v: &mut V) -> Result<Stats, ParseError> {
        self.guard(|p| p.finish_inner(v))
    }

    /// Makes the parser ready for the next body, keeping the carry buffer's capacity.
    pub fn reset(&mut self) {
        self.carry.clear();
        self.stats = Stats::default();
        self.done = false;
        self.failed = None;
        self.seen.clear();
    }

    /// Counts so far for the current body.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Current capacity of the carry buffer in bytes.
    ///
    /// Why public: it lets tests and memory accounting check that it never exceeds
    /// [`Limits::max_line_len`].
    pub fn carry_capacity(&self) -> usize {
        self.carry.capacity()
    }

    /// Runs one step, remembering its error so the parser stays stopped after a failure.
    fn guard<T>(&mut self, step: impl FnOnce(&mut Self) -> Result<T, ParseError>) -> Result<T, ParseError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = step(self);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.carry.clear();
        }
        result
    }

    /// Feeds one chunk; with `last`, a trailing line without newline is parsed in place
    /// instead of being copied into the carry buffer (the one-shot [`parse`] path).
    ///
    /// Bytes up to [`Limits::max_body_len`] are parsed first and the limit is enforced after,
    /// so that how a body is cut into chunks never changes what the visitor sees (a `# EOF` within
    /// the limit still ends the body cleanly).
    fn feed_inner<V: Visitor>(&mut self, chunk: &[u8], v: &mut V, last: bool) -> Result<(), ParseError> {
        let before = self.stats.bytes;
        self.stats.bytes = before.saturating_add(chunk.len() as u64);
        if self.done {
            return Ok(());
        }
        let room = (self.limits.max_body_len as u64).saturating_sub(before);
        let allowed = usize::try_from(room).unwrap_or(usize::MAX).min(chunk.len());
        let over = allowed < chunk.len();
        self.feed_lines(chunk.get(..allowed).unwrap_or(chunk), v, last && !over)?;
        if over && !self.done {
            return Err(ParseError::BodyTooLong { limit: self.limits.max_body_len });
        }
        Ok(())
    }

    /// Parses the complete lines of `chunk`, carrying (or with `last`, parsing) its tail.
    fn feed_lines<V: Visitor>(&mut self, chunk: &[u8], v: &mut V, last: bool) -> Result<(), ParseError> {
        let mut rest = chunk;
        if !self.carry.is_empty() {
            match self.complete_carry(rest, v)? {
                Some(after) => rest = after,
                None => return Ok(()),
            }
        }
        let max = self.limits.max_line_len;
        while !self.done && !rest.is_empty() {
            let window = rest.get(..max.saturating_add(1)).unwrap_or(rest);
            match find_newline(window) {
                Some(end) => {
                    self.process_line(rest.get(..end).unwrap_or(&[]), v)?;
                    rest = rest.get(end + 1..).unwrap_or(&[]);
                }
                None if rest.len() > max => return Err(self.line_too_long()),
                None if last => {
                    self.process_line(rest, v)?;
                    rest = &[];
                }
                None => {
                    self.append_carry(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    /// Extends the carried line with the start of `chunk`; once its newline is found, parses it
    /// and returns the rest of the chunk (`None` when the chunk holds no newline).
    fn complete_carry<'c, V: Visitor>(&mut self, chunk: &'c [u8], v: &mut V) -> Result<Option<&'c [u8]>, ParseError> {
        let room = self.limits.max_line_len.saturating_sub(self.carry.len());
        let window = chunk.get(..room.saturating_add(1)).unwrap_or(chunk);
        let Some(end) = find_newline(window) else {
            self.append_carry(chunk)?;
            return Ok(None);
        };
        self.append_carry(chunk.get(..end).unwrap_or(&[]))?;
        self.process_carry(v)?;
        Ok(Some(chunk.get(end + 1..).unwrap_or(&[])))
    }

    /// Parses the carried line and empties the buffer (keeping its capacity).
    fn process_carry<V: Visitor>(&mut self, v: &mut V) -> Result<(), ParseError> {
        let carry = std::mem::take(&mut self.carry);
        let result = self.process_line(&carry, v);
        self.carry = carry;
        self.carry.clear();
        result
    }

    fn finish_inner<V: Visitor>(&mut self, v: &mut V) -> Result<Stats, ParseError> {
        if !self.done && !self.carry.is_empty() {
            self.process_carry(v)?;
        }
        self.done = true;
        Ok(self.stats)
    }

    /// Appends to the carry buffer, growing its capacity geometrically but never past
    /// `max_line_len`, so a body without newlines fails fast with bounded memory.
    fn append_carry(&mut self, bytes: &[u8]) -> Result<(), ParseError> {
        let max = self.limits.max_line_len;
        let needed = self.carry.len().saturating_add(bytes.len());
        if needed > max {
            return Err(self.line_too_long());
        }
        if needed > self.carry.capacity() {
            let target = needed.max(self.carry.capacity().saturating_mul(2)).max(256).min(max);
            self.carry.reserve_exact(target - self.carry.len());
        }
        self.carry.extend_from_slice(bytes);
        Ok(())
    }

    fn line_too_long(&self) -> ParseError {
        ParseError::LineTooLong { line: self.stats.lines + 1, limit: self.limits.max_line_len }
    }

    /// Handles one complete line (without its `\n`).
    fn process_line<V: Visitor>(&mut self, line: &[u8], v: &mut V) -> Result<(), ParseError> {
        self.stats.lines += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let start = skip_blanks(line, 0);
        let result = match line.get(start) {
            None => Ok(()),
            Some(b'#') => self.comment(line, start + 1, v),
            Some(_) => self.sample_line(line, start, v),
        };
        result.map_err(|(kind, pos)| self.error(kind, line, pos))
    }

    /// Handles a `#` line: `# TYPE` is reported, `# EOF` ends the body, the rest is ignored.
    fn comment<V: Visitor>(&mut self, line: &[u8], after_hash: usize, v: &mut V) -> Result<(), (LineError, usize)> {
        let word_start = skip_blanks(line, after_hash);
        let word_end = token_end(line, word_start);
        match sub(line, word_start, word_end) {
            b"TYPE" => type_line(line, word_end, v),
            b"EOF" if skip_blanks(line, word_end) == line.len() => {
                self.done = true;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Handles a sample line: reads the name, asks the visitor, and parses the rest if wanted.
    fn sample_line<V: Visitor>(&mut self, line: &[u8], start: usize, v: &mut V) -> Result<(), (LineError, usize)> {
        let name_end = metric_name_end(line, start);
        match line.get(name_end) {
            _ if name_end == start => return Err((LineError::Name, start)),
            Some(b'{' | b' ' | b'\t') => {}
            None => return Err((LineError::Value, name_end)),
            Some(_) => return Err((LineError::Name, name_end)),
        }
        let name = std::str::from_utf8(sub(line, start, name_end)).map_err(|_| (LineError::Name, start))?;
        self.stats.samples_seen += 1;
        if !v.wants(name) {
            return Ok(());
        }
        let text = std::str::from_utf8(line).map_err(|e| (LineError::Utf8, e.valid_up_to()))?;
        let sample = parse_sample_rest(text, name, name_end)?;
        let full = self.seen.len() >= self.limits.max_series;
        match self.seen.entry(series_id(&self.ids, &sample)) {
            Entry::Occupied(first) => return Err((LineError::Duplicate(*first.get()), start)),
            Entry::Vacant(_) if full => return Err((LineError::TooManySeries, start)),
            Entry::Vacant(slot) => {
                slot.insert(self.stats.lines);
            }
        }
        self.stats.samples_wanted += 1;
        v.sample(&sample);
        Ok(())
    }

    /// Turns a problem inside the current line into a [`ParseError`] with line number and excerpt.
    fn error(&self, kind: LineError, line: &[u8], pos: usize) -> ParseError {
        let line_no = self.stats.lines;
        let excerpt = excerpt(line, pos);
        match kind {
            LineError::Name => ParseError::BadName { line: line_no, excerpt },
            LineError::Labels(reason) => ParseError::BadLabels { line: line_no, reason, excerpt },
            LineError::Value => ParseError::BadValue { line: line_no, excerpt },
            LineError::Timestamp => ParseError::BadTimestamp { line: line_no, excerpt },
            LineError::Type => ParseError::BadType { line: line_no, excerpt },
            LineError::Utf8 => ParseError::InvalidUtf8 { line: line_no, excerpt },
            LineError::Duplicate(first_line) => ParseError::DuplicateSeries { line: line_no, first_line, excerpt },
            LineError::TooManySeries => ParseError::TooManySeries { line: line_no, limit: self.limits.max_series },
        }
    }
}

/// Parses a whole body held in memory (one chunk) with default [`Limits`].
///
/// Why: tests, fixtures and callers that already buffered the body; unlike feeding and finishing
/// by hand it never copies the last line, so it allocates nothing per line (only the duplicate check's table, once per body; a reused [`StreamParser`] keeps that too).
pub fn parse<V: Visitor>(body: &[u8], v: &mut V) -> Result<Stats, ParseError> {
    let mut parser = StreamParser::default();
    parser.guard(|p| {
        p.feed_inner(body, v, true)?;
        p.finish_inner(v)
    })
}

/// Identity of a series: its name and its set of label pairs, whatever order they are written
/// in (the pairs' hashes are added, which commutes); a label with an empty value is no label, as
/// for Prometheus. 64 bits from a per-parser random seed: two distinct series of one body
/// collide with probability about n^2 / 2^65, i.e. never in practice for bodies of thousands of
/// series, and nobody can aim for a collision.
fn series_id(ids: &RandomState, sample: &Sample<'_>) -> u64 {
    let labels = sample
        .labels()
        .filter(|(_, value)| !value.raw().is_empty())
        .fold(0u64, |acc, (name, value)| acc.wrapping_add(ids.hash_one((name, value.raw()))));
    ids.hash_one((sample.name, labels))
}

/// Parses `# TYPE <name> <kind>` from just after the word `TYPE`.
fn type_line<V: Visitor>(line: &[u8], after_word: usize, v: &mut V) -> Result<(), (LineError, usize)> {
    let name_start = skip_blanks(line, after_word);
    let name_end = metric_name_end(line, name_start);
    if name_end == name_start || name_start == after_word || token_end(line, name_start) != name_end {
        return Err((LineError::Name, name_start));
    }
    let kind_start = skip_blanks(line, name_end);
    let kind_end = token_end(line, kind_start);
    let kind = MetricType::from_keyword(sub(line, kind_start, kind_end))
        .filter(|_| skip_blanks(line, kind_end) == line.len())
        .ok_or((LineError::Type, kind_start))?;
    let name = std::str::from_utf8(sub(line, name_start, name_end)).map_err(|_| (LineError::Name, name_start))?;
    v.type_hint(name, kind);
    Ok(())
}

/// Parses labels, value and timestamp of a wanted line whose name ends at `name_end`.
fn parse_sample_rest<'a>(text: &'a str, name: &'a str, name_end: usize) -> Result<Sample<'a>, (LineError, usize)> {
    let bytes = text.as_bytes();
    let mut pos = skip_blanks(bytes, name_end);
    let mut raw_labels = "";
    if bytes.get(pos) == Some(&b'{') {
        let close = validate_labels(bytes, pos + 1)?;
        raw_labels = text.get(pos + 1..close).unwrap_or("");
        pos = skip_blanks(bytes, close + 1);
    }
    let value_end = token_end(bytes, pos);
    let value = parse_float(sub(bytes, pos, value_end)).ok_or((LineError::Value, pos))?;
    // The value token ends at a blank or the end, so anything after it follows a blank.
    let ts_start = skip_blanks(bytes, value_end);
    let mut timestamp_ms = None;
    let mut after = ts_start;
    if !ends_sample(bytes, ts_start) {
        let ts_end = token_end(bytes, ts_start);
        let ts = parse_timestamp(sub(bytes, ts_start, ts_end)).ok_or((LineError::Timestamp, ts_start))?;
        timestamp_ms = Some(ts);
        after = skip_blanks(bytes, ts_end);
    }
    if !ends_sample(bytes, after) {
        return Err((LineError::Timestamp, after));
    }
    Ok(Sample { name, value, timestamp_ms, raw_labels })
}

/// Whether a sample line may end at `pos`: at the end of the line, or where an OpenMetrics
/// exemplar (`# {...} value`) begins, which the scaler does not need.
fn ends_sample(bytes: &[u8], pos: usize) -> bool {
    matches!(bytes.get(pos), None | Some(b'#'))
}

/// Validates a label set starting just after `{`; returns the position of the closing `}`.
fn validate_labels(bytes: &[u8], start: usize) -> Result<usize, (LineError, usize)> {
    let mut pos = skip_blanks(bytes, start);
    loop {
        match bytes.get(pos) {
            Some(b'}') => return Ok(pos),
            None => return Err((LineError::Labels("missing '}'"), pos)),
            Some(_) => {}
        }
        let pair = scan_label_pair(bytes, pos)?;
        pos = skip_blanks(bytes, pair.end);
        match bytes.get(pos) {
            Some(b',') => pos = skip_blanks(bytes, pos + 1),
            Some(b'}') => return Ok(pos),
            _ => {
                return Err((LineError::Labels("expected ',' or '}' after a label value"), pos));
            }
        }
    }
}

/// Byte positions of one `name="value"` pair within a line or label text.
struct LabelPair {
    name_start: usize,
    name_end: usize,
    /// First byte after the opening quote.
    value_start: usize,
    /// Position of the closing quote.
    value_end: usize,
    /// First byte after the closing quote.
    end: usize,
}

/// Reads `name = "value"` at `start` (blanks allowed around `=`), checking the escapes.
fn scan_label_pair(bytes: &[u8], start: usize) -> Result<LabelPair, (LineError, usize)> {
    let name_end = label_name_end(bytes, start);
    if name_end == start {
        return Err((LineError::Labels("expected a label name"), start));
    }
    let eq = skip_blanks(bytes, name_end);
    if bytes.get(eq) != Some(&b'=') {
        return Err((LineError::Labels("expected '=' after a label name"), eq));
    }
    let quote = skip_blanks(bytes, eq + 1);
    if bytes.get(quote) != Some(&b'"') {
        return Err((LineError::Labels("expected '\"' to open a label value"), quote));
    }
    let value_start = quote + 1;
    let value_end = quoted_end(bytes, value_start)?;
    Ok(LabelPair { name_start: start, name_end, value_start, value_end, end: value_end + 1 })
}

/// Finds the closing quote of a label value starting at `start`, rejecting unknown escapes.
///
/// Why jump between quotes and backslashes: this is the hottest loop of a full parse (vLLM's
/// `cache_config_info` alone has 23 labels), and the search compiles to a tight scan.
fn quoted_end(bytes: &[u8], start: usize) -> Result<usize, (LineError, usize)> {
    let mut pos = start;
    loop {
        let rest = bytes.get(pos..).unwrap_or(&[]);
        let Some(offset) = find_quote_or_backslash(rest) else {
            return Err((LineError::Labels("unterminated label value"), start));
        };
        pos += offset;
        match (bytes.get(pos), bytes.get(pos + 1)) {
            (Some(b'"'), _) => return Ok(pos),
            (_, Some(b'\\' | b'"' | b'n')) => pos += 2,
            _ => return Err((LineError::Labels("invalid escape in a label value"), pos)),
        }
    }
}

/// Reads a sample value or label-value number the way Go's `ParseFloat` mostly does
/// (`+Inf`, `-Inf`, `Inf`, `NaN` in any case, decimal and exponent forms).
fn parse_float(bytes: &[u8]) -> Option<f64> {
    if bytes.is_empty() {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Reads a timestamp: integer milliseconds, or OpenMetrics float seconds converted to ms.
fn parse_timestamp(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let seconds: f64 = text.parse().ok()?;
    let ms = (seconds * 1000.0).round();
    // i64::MAX as f64 rounds up to 2^63, so the bound must be exclusive.
    (ms.is_finite() && ms.abs() < 9.2e18).then_some(ms as i64)
}

/// Bytes allowed in metric names (`[a-zA-Z0-9_:]`); the first byte must also not be a digit.
const METRIC_CHAR: [bool; 256] = byte_class(true);
/// Bytes allowed in label names (`[a-zA-Z0-9_]`).
const LABEL_CHAR: [bool; 256] = byte_class(false);

/// Builds a lookup table of name bytes: a table is the cheapest test in the hot loop.
const fn byte_class(colon: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_' || (colon && c == b':');
        b += 1;
    }
    table
}

/// End of the metric name starting at `start` (equal to `start` when there is none).
fn metric_name_end(bytes: &[u8], start: usize) -> usize {
    name_end(bytes, start, &METRIC_CHAR)
}

/// End of the label name starting at `start` (equal to `start` when there is none).
fn label_name_end(bytes: &[u8], start: usize) -> usize {
    name_end(bytes, start, &LABEL_CHAR)
}

fn name_end(bytes: &[u8], start: usize, table: &[bool; 256]) -> usize {
    let rest = bytes.get(start..).unwrap_or(&[]);
    match rest.first() {
        Some(b) if !b.is_ascii_digit() && table[usize::from(*b)] => {}
        _ => return start,
    }
    let len = rest.iter().position(|&b| !table[usize::from(b)]).unwrap_or(rest.len());
    start + len
}

/// First position at or after `pos` that is not a space or tab.
fn skip_blanks(bytes: &[u8], pos: usize) -> usize {
    let rest = bytes.get(pos..).unwrap_or(&[]);
    pos + rest.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(rest.len())
}

/// First position at or after `pos` that is a space or tab (or the end).
fn token_end(bytes: &[u8], pos: usize) -> usize {
    let rest = bytes.get(pos..).unwrap_or(&[]);
    pos + rest.iter().position(|&b| b == b' ' || b == b'\t').unwrap_or(rest.len())
}

/// `bytes[start..end]`, or empty when out of range: slicing that cannot panic.
fn sub(bytes: &[u8], start: usize, end: usize) -> &[u8] {
    bytes.get(start..end).unwrap_or(&[])
}

/// A bounded, lossily decoded window of `line` around `pos`, for error messages.
fn excerpt(line: &[u8], pos: usize) -> String {
    if line.len() <= EXCERPT_LEN {
        return String::from_utf8_lossy(line).into_owned();
    }
    let start = pos.saturating_sub(EXCERPT_LEN / 2).min(line.len() - EXCERPT_LEN);
    let end = start + EXCERPT_LEN;
    let mut out = String::with_capacity(EXCERPT_LEN + 8);
    if start > 0 {
        out.push('…');
    }
    out.push_str(&String::from_utf8_lossy(sub(line, start, end)));
    if end < line.len() {
        out.push('…');
    }
    out
}

/// Position of the first `\n` in `hay`.
///
/// Why not `iter().position`: that loop is byte-at-a-time and this scan is the cost of every
/// skipped line; a word-at-a-time (SWAR) search in safe `std` code is several times faster.
fn find_newline(hay: &[u8]) -> Option<usize> {
    find_word_at_a_time(hay, |w| zero_byte_mask(w ^ splat(b'\n')), |b| b == b'\n')
}

/// Position of the first `"` or `\\` in `hay` (the end of a label value or an escape).
fn find_quote_or_backslash(hay: &[u8]) -> Option<usize> {
    find_word_at_a_time(hay, |w| zero_byte_mask(w ^ splat(b'"')) | zero_byte_mask(w ^ splat(b'\\')), |b| b == b'"' || b == b'\\')
}

/// `byte` repeated in every byte of a word.
const fn splat(byte: u8) -> u64 {
    0x0101_0101_0101_0101 * byte as u64
}

/// High bit set in the bytes of `w` that are zero; exact up to (and including) the lowest zero
/// byte, which is all a forward search needs ("has zero byte" trick, little-endian order).
const fn zero_byte_mask(w: u64) -> u64 {
    w.wrapping_sub(splat(1)) & !w & splat(0x80)
}

/// Scans `hay` eight bytes at a time with `mask` (high bit per matching byte), then finishes the
/// tail bytewise with `is_match`.
#[inline(always)]
fn find_word_at_a_time(hay: &[u8], mask: impl Fn(u64) -> u64, is_match: impl Fn(u8) -> bool) -> Option<usize> {
    let mut words = hay.chunks_exact(8);
    let mut base = 0;
    for word in &mut words {
        let Ok(arr) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let found = mask(u64::from_le_bytes(arr));
        if found != 0 {
            return Some(base + (found.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    let tail = hay.get(base..).unwrap_or(&[]);
    tail.iter().position(|&b| is_match(b)).map(|p| base + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample as owned data, so results of different runs can be compared.
    #[derive(Debug, Clone, PartialEq)]
    struct Seen {
        name: String,
        labels: Vec<(String, String)>,
        value_bits: u64,
        ts: Option<i64>,
    }

    /// A visitor that records what it wants (everything by default).
    struct Collect {
        want: fn(&str) -> bool,
        samples: Vec<Seen>,
        types: Vec<(String, MetricType)>,
    }

    impl Collect {
        fn all() -> Self {
            Self::wanting(|_| true)
        }

        fn wanting(want: fn(&str) -> bool) -> Self {
            Self { want, samples: Vec::new(), types: Vec::new() }
        }
    }

    impl Visitor for Collect {
        fn wants(&mut self, name: &str) -> bool {
            (self.want)(name)
        }

        fn sample(&mut self, s: &Sample<'_>) {
            self.samples.push(Seen {
                name: s.name.to_owned(),
                labels: s.labels().map(|(n, v)| (n.to_owned(), v.unescape().into_owned())).collect(),
                value_bits: s.value.to_bits(),
                ts: s.timestamp_ms,
            });
        }

        fn type_hint(&mut self, family: &str, kind: MetricType) {
            self.types.push((family.to_owned(), kind));
        }
    }

    type Outcome = Result<(Vec<Seen>, Vec<(String, MetricType)>, Stats), ParseError>;

    fn one_shot(body: &[u8]) -> Outcome {
        let mut v = Collect::all();
        let stats = parse(body, &mut v)?;
        Ok((v.samples, v.types, stats))
    }

    fn chunked(body: &[u8], cuts: &[usize]) -> Outcome {
        let mut v = Collect::all();
        let mut p = StreamParser::default();
        let mut from = 0;
        for &cut in cuts {
            p.feed(&body[from..cut], &mut v)?;
            from = cut;
        }
        p.feed(&body[from..], &mut v)?;
        let stats = p.finish(&mut v)?;
        Ok((v.samples, v.types, stats))
    }

    fn samples(body: &str) -> Vec<Seen> {
        match one_shot(body.as_bytes()) {
            Ok((s, _, _)) => s,
            Err(e) => panic!("unexpected error {e} for {body:?}"),
        }
    }

    fn only(body: &str) -> Seen {
        let s = samples(body);
        assert_eq!(s.len(), 1, "{s:?}");
        s[0].clone()
    }

    fn err(body: &[u8]) -> ParseError {
        match one_shot(body) {
            Ok(r) => panic!("expected an error, got {r:?}"),
            Err(e) => e,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    const SMALL: &str = "# HELP vllm:num_requests_waiting Number of requests waiting.\n\
        # TYPE vllm:num_requests_waiting gauge\n\
        vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0\n\
        vllm:num_requests_waiting{engine=\"1\",model_name=\"m\"} 0.0\r\n\
        \n\
        # TYPE vllm:e2e_request_latency_seconds histogram\n\
        vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"0.3\",model_name=\"m\"} 1.0\n\
        vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"m\"} 2.0\n\
        vllm:e2e_request_latency_seconds_sum{engine=\"0\",model_name=\"m\"} 1.79546178108279e+09\n\
        odd{x=\"a,b=c}d \\\"q\\\" \\\\ \\n é\",} NaN 1700000000000\n\
        plain -Inf";

    #[test]
    fn colon_names_are_read() {
        let s = only("vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0\n");
        assert_eq!(s.name, "vllm:num_requests_waiting");
        assert_eq!(s.labels, labels(&[("engine", "0"), ("model_name", "m")]));
        assert_eq!(f64::from_bits(s.value_bits), 3.0);
        assert_eq!(only(":leading:colon 1").name, ":leading:colon");
    }

    #[test]
    fn escapes_are_unescaped() {
        let s = only(r#"a{q="say \"hi\"",b="back\\slash",n="two\nlines"} 1"#);
        assert_eq!(s.labels, labels(&[("q", "say \"hi\""), ("b", "back\\slash"), ("n", "two\nlines")]));
    }

    #[test]
    fn label_values_may_hold_separators_spaces_and_utf8() {
        let s = only(r#"a{x="a,b=c}d {e} ",y="Grüße ☃"} 2"#);
        assert_eq!(s.labels, labels(&[("x", "a,b=c}d {e} "), ("y", "Grüße ☃")]));
    }

    #[test]
    fn trailing_comma_empty_braces_and_blanks_are_tolerated() {
        assert_eq!(only(r#"a{x="1",} 1"#).labels, labels(&[("x", "1")]));
        assert_eq!(only("a{} 1").labels, labels(&[]));
        let s = only("  \ta  {  x = \"1\" ,\ty=\"2\" , }  5 \t 123  \n");
        assert_eq!(s.labels, labels(&[("x", "1"), ("y", "2")]));
        assert_eq!((f64::from_bits(s.value_bits), s.ts), (5.0, Some(123)));
        assert_eq!(f64::from_bits(only(r#"a{x="1"}7"#).value_bits), 7.0);
    }

    #[test]
    fn special_and_plain_values() {
        let cases = [
            ("+Inf", f64::INFINITY),
            ("Inf", f64::INFINITY),
            ("-Inf", f64::NEG_INFINITY),
            ("1.79546178108279e+09", 1.79546178108279e+09),
            ("42", 42.0),
            ("-0.5", -0.5),
            ("0.4375", 0.4375),
        ];
        for (text, want) in cases {
            let s = only(&format!("m {text}"));
            assert_eq!(f64::from_bits(s.value_bits), want, "{text}");
        }
        assert!(f64::from_bits(only("m NaN").value_bits).is_nan());
        for bad in ["m", "m ", "m{a=\"1\"}", "m abc", "m 0x10", "m 1_000"] {
            assert!(matches!(err(bad.as_bytes()), ParseError::BadValue { line: 1, .. }), "{bad:?}");
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(only("m 1 1700000000123").ts, Some(1_700_000_000_123));
        assert_eq!(only("m 1 -5").ts, Some(-5));
        assert_eq!(only("m 1 1.5").ts, Some(1500), "OpenMetrics float seconds");
        assert_eq!(only("m 1").ts, None);
        assert_eq!(only("m 1 # {trace_id=\"x\"} 0.5").ts, None, "exemplar ignored");
        assert_eq!(only("m 1 2 # {trace_id=\"x\"} 0.5").ts, Some(2));
        for bad in ["m 1 abc", "m 1 2 3", "m 1 Inf", "m 1 1e300"] {
            assert!(matches!(err(bad.as_bytes()), ParseError::BadTimestamp { line: 1, .. }), "{bad:?}");
        }
    }

    #[test]
    fn eof_stops_reading() {
        let body = b"a 1\n# EOF\nb 2\n<html>garbage\n";
        let (s, _, stats) = one_shot(body).expect("ok");
        assert_eq!(s.len(), 1);
        assert_eq!(stats.lines, 2);
        assert_eq!(stats.bytes, body.len() as u64);
        let (s, _, _) = chunked(body, &[7, 12]).expect("ok");
        assert_eq!(s.len(), 1);
        // `# EOF` must be the whole comment; anything else is an ordinary comment.
        assert_eq!(samples("# EOF now\nb 2\n").len(), 1);
        assert_eq!(samples("a 1\n# EOF").len(), 1);
    }

    #[test]
    fn crlf_line_endings() {
        let s = samples("# TYPE a gauge\r\na{x=\"1\"} 1\r\nb 2 3\r\n\r\n");
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].ts, Some(3));
    }

    #[test]
    fn type_lines_are_reported() {
        let (_, types, _) = one_shot(b"# TYPE vllm:x counter\n#TYPE h histogram\n# TYPE o gaugehistogram  \n").expect("ok");
        assert_eq!(
            types,
            vec![
                ("vllm:x".to_owned(), MetricType::Counter),
                ("h".to_owned(), MetricType::Histogram),
                ("o".to_owned(), MetricType::GaugeHistogram),
            ]
        );
        assert!(matches!(err(b"# TYPE a weird\n"), ParseError::BadType { line: 1, .. }));
        assert!(matches!(err(b"# TYPE a gauge x\n"), ParseError::BadType { .. }));
        assert!(matches!(err(b"# TYPE 1a gauge\n"), ParseError::BadName { .. }));
        assert!(matches!(err(b"# TYPE a-b gauge\n"), ParseError::BadName { .. }));
        // HELP and free comments are not validated.
        assert!(one_shot(b"# HELP a \xff anything\n# just a comment\n#\n").is_ok());
    }

    #[test]
    fn every_chunk_boundary_gives_the_one_shot_result() {
        let body = SMALL.as_bytes();
        let expected = one_shot(body);
        let (samples, types, _) = expected.as_ref().expect("one shot");
        assert_eq!((samples.len(), types.len()), (7, 2));
        for cut in 0..=body.len() {
            assert_eq!(chunked(body, &[cut]), expected, "cut at {cut}");
        }
        let every_byte: Vec<usize> = (1..body.len()).collect();
        assert_eq!(chunked(body, &every_byte), expected);
        for a in (0..body.len()).step_by(7) {
            for b in a..=body.len() {
                assert_eq!(chunked(body, &[a, b]), expected, "cuts at {a}, {b}");
            }
        }
    }

    #[test]
    fn small_body_values() {
        let (s, _, stats) = one_shot(SMALL.as_bytes()).expect("ok");
        assert_eq!(stats.lines, 11);
        assert_eq!((stats.samples_seen, stats.samples_wanted), (7, 7));
        assert_eq!(s[5].labels, labels(&[("x", "a,b=c}d \"q\" \\ \n é")]));
        assert_eq!(s[5].ts, Some(1_700_000_000_000));
        assert_eq!(f64::from_bits(s[6].value_bits), f64::NEG_INFINITY);
    }

    #[test]
    fn unwanted_lines_are_not_parsed_past_the_name() {
        let body = b"skip{bad labels \xff 1\nkeep 2\n";
        let mut v = Collect::wanting(|n| n == "keep");
        let stats = parse(body, &mut v).expect("unwanted line is skipped");
        assert_eq!(v.samples.len(), 1);
        assert_eq!((stats.samples_seen, stats.samples_wanted), (2, 1));
        let e = err(b"keep 2\nskip{bad labels 1\n");
        assert!(matches!(e, ParseError::BadLabels { line: 2, .. }), "{e}");
    }

    #[test]
    fn bad_labels_are_reported() {
        let cases: [&[u8]; 8] = [
            b"a{x=\"1\" 1",
            b"a{x=1} 1",
            b"a{x\"1\"} 1",
            b"a{1x=\"1\"} 1",
            b"a{x=\"1\"y=\"2\"} 1",
            b"a{x=\"\\t\"} 1",
            b"a{x=\"unterminated} 1",
            b"a{,} 1",
        ];
        for body in cases {
            let e = err(body);
            assert!(matches!(e, ParseError::BadLabels { line: 1, .. }), "{e}");
        }
    }

    #[test]
    fn invalid_utf8_in_a_wanted_line_is_an_error() {
        let e = err(b"ok 1\na{x=\"\xff\xfe\"} 1\n");
        assert!(matches!(e, ParseError::InvalidUtf8 { line: 2, .. }), "{e}");
    }

    #[test]
    fn garbage_and_html_are_rejected() {
        let html = b"<!DOCTYPE html>\n<html><body>502 Bad Gateway</body></html>\n";
        let e = err(html);
        assert!(matches!(e, ParseError::BadName { line: 1, .. }), "{e}");
        assert!(e.to_string().contains("<!DOCTYPE html>"), "{e}");
        for body in [&b"\xff\xfe\x00garbage"[..], b"{\"error\": \"not found\"}", b"foo-bar 1", b"9lives 1", b"a 1\nfoo,bar 2"] {
            assert!(matches!(err(body), ParseError::BadName { .. }), "{body:?}");
        }
        // An unwanted line still needs a name followed by `{`, space or tab.
        let mut v = Collect::wanting(|_| false);
        assert!(parse(b"Not Found", &mut v).is_ok(), "name then space: a sample line");
        assert!(matches!(parse(b"Not-Found", &mut v), Err(ParseError::BadName { .. })));
        assert!(matches!(parse(b"a 1\nfoo", &mut v), Err(ParseError::BadValue { line: 2, .. })));
    }

    #[test]
    fn empty_and_comment_only_bodies_have_no_samples() {
        let (s, _, stats) = one_shot(b"").expect("ok");
        assert!(s.is_empty());
        assert_eq!(stats, Stats::default());
        let (s, _, stats) = one_shot(b"\n\n# HELP a x\n  \n").expect("ok");
        assert!(s.is_empty());
        assert_eq!(stats.lines, 4);
    }

    #[test]
    fn line_too_long_one_shot_and_chunked() {
        let limits = Limits { max_line_len: 16, max_body_len: 1 << 20, ..Limits::default() };
        let ok = b"a 1234567890123\n"; // 15 bytes + newline
        let exact = b"c 12345678901234\nb 1"; // 16 bytes: allowed (another series: a body may not repeat one)
        let long = b"a 1\nb 123456789012345\n"; // second line 17 bytes
        for cut in 0..=long.len() {
            let mut v = Collect::all();
            let mut p = StreamParser::new(limits);
            assert!(p.feed(&ok[..], &mut v).is_ok());
            assert!(p.feed(&exact[..], &mut v).is_ok());
            assert!(p.finish(&mut v).is_ok(), "exact limit passes");
            p.reset();
            let r = p.feed(&long[..cut], &mut v).and_then(|()| p.feed(&long[cut..], &mut v)).and_then(|()| p.finish(&mut v).map(|_| ()));
            assert_eq!(r, Err(ParseError::LineTooLong { line: 2, limit: 16 }), "cut {cut}");
            assert!(p.carry_capacity() <= 16);
        }
        let e = err(&vec![b'a'; 70 * 1024]);
        assert!(matches!(e, ParseError::LineTooLong { line: 1, limit: 65536 }), "{e}");
    }

    #[test]
    fn body_without_newlines_fails_fast_with_bounded_memory() {
        let limits = Limits { max_line_len: 64 * 1024, max_body_len: usize::MAX, ..Limits::default() };
        let chunk = vec![b'x'; 4096];
        let mut p = StreamParser::new(limits);
        let mut v = Collect::all();
        let mut fed = 0;
        let mut failure = None;
        // 50 MB offered in 4 KiB chunks: must stop after 64 KiB.
        while fed < 50_000_000 {
            if let Err(e) = p.feed(&chunk, &mut v) {
                failure = Some(e);
                break;
            }
            fed += chunk.len();
            assert!(p.carry_capacity() <= limits.max_line_len);
        }
        assert_eq!(fed, 64 * 1024);
        assert!(matches!(failure, Some(ParseError::LineTooLong { line: 1, .. })));
        assert!(p.carry_capacity() <= limits.max_line_len);
        // One big chunk fails without copying anything.
        let mut p = StreamParser::new(limits);
        let big = vec![b'x'; 1 << 20];
        assert!(matches!(p.feed(&big, &mut v), Err(ParseError::LineTooLong { .. })));
        assert_eq!(p.carry_capacity(), 0);
    }

    #[test]
    fn body_too_long() {
        let limits = Limits { max_line_len: 1024, max_body_len: 10, ..Limits::default() };
        let mut p = StreamParser::new(limits);
        let mut v = Collect::all();
        assert!(p.feed(b"a 1\nb 2\n", &mut v).is_ok());
        assert_eq!(p.feed(b"c 3\n", &mut v), Err(ParseError::BodyTooLong { limit: 10 }));
        assert_eq!(v.samples.len(), 2);
        // The parser stays stopped until reset.
        assert!(p.feed(b"", &mut v).is_err());
        assert!(p.finish(&mut v).is_err());
        p.reset();
        assert!(p.feed(b"c 3\n", &mut v).is_ok());
        assert_eq!(p.finish(&mut v).map(|s| s.samples_wanted), Ok(1));
    }

    #[test]
    fn reset_reuses_the_carry_buffer() {
        let mut p = StreamParser::default();
        let mut v = Collect::all();
        assert!(p.feed(b"a{x=\"long enough", &mut v).is_ok());
        let cap = p.carry_capacity();
        assert!(cap > 0);
        assert!(p.feed(b"\"} 1\n", &mut v).is_ok());
        assert!(p.finish(&mut v).is_ok());
        p.reset();
        assert_eq!(p.carry_capacity(), cap);
        assert_eq!(p.stats(), Stats::default());
        assert!(p.feed(b"b 2", &mut v).is_ok());
        assert_eq!(p.finish(&mut v).map(|s| s.samples_wanted), Ok(1));
        assert_eq!(v.samples.len(), 2);
    }

    #[test]
    fn error_line_numbers_and_bounded_excerpts() {
        let mut body = b"a 1\n\n# c\n".to_vec();
        body.extend_from_slice(b"b{");
        body.extend(std::iter::repeat_n(b'x', 10_000));
        body.extend_from_slice(b"=1} 2\n");
        match err(&body) {
            ParseError::BadLabels { line, excerpt, .. } => {
                assert_eq!(line, 4);
                assert!(excerpt.chars().count() <= EXCERPT_LEN + 2, "{excerpt}");
                assert!(excerpt.contains("=1}"), "window around the problem: {excerpt}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn label_access_without_allocation() {
        let body = br#"h_bucket{engine="0",le="0.5",model_name="a\"b"} 3"#;
        struct Check(usize);
        impl Visitor for Check {
            fn wants(&mut self, _: &str) -> bool {
                true
            }
            fn sample(&mut self, s: &Sample<'_>) {
                self.0 += 1;
                let le = s.label("le").expect("le");
                assert_eq!(le.as_f64(), Some(0.5));
                assert!(matches!(le.unescape(), Cow::Borrowed("0.5")));
                let m = s.label("model_name").expect("model_name");
                assert_eq!(m.raw(), r#"a\"b"#);
                assert!(m.eq_unescaped("a\"b"));
                assert!(!m.eq_unescaped("a\""));
                assert!(!m.eq_unescaped("a\"bc"));
                assert!(!m.eq_unescaped(r#"a\"b"#));
                assert_eq!(m.unescape(), "a\"b");
                assert!(s.label("missing").is_none());
                assert_eq!(s.labels().count(), 3);
                assert_eq!(s.labels_raw(), r#"engine="0",le="0.5",model_name="a\"b""#);
            }
        }
        let mut v = Check(0);
        assert!(parse(body, &mut v).is_ok());
        assert_eq!(v.0, 1);
        let inf = LabelValue { raw: "+Inf" };
        assert_eq!(inf.as_f64(), Some(f64::INFINITY));
        assert_eq!(LabelValue { raw: "x" }.as_f64(), None);
    }

    #[test]
    fn a_repeated_series_is_rejected_naming_both_lines_in_any_label_order_and_chunking() {
        let body = b"# TYPE w gauge\nw{a=\"1\",b=\"x\"} 30\nw{a=\"2\",b=\"x\"} 1\nw{ b = \"x\" , a=\"1\" } 30\n";
        for cut in 0..body.len() {
            match chunked(body, &[cut]) {
                Err(ParseError::DuplicateSeries { line: 4, first_line: 2, excerpt }) => assert!(excerpt.starts_with("w{ b"), "{excerpt}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        let err = one_shot(b"up 1\nup 1\n").unwrap_err();
        assert_eq!(err, ParseError::DuplicateSeries { line: 2, first_line: 1, excerpt: "up 1".into() });
        assert!(err.to_string().contains("line 2: duplicate series (also on line 1)"), "{err}");
    }

    #[test]
    fn distinct_series_and_skipped_lines_are_not_repeats() {
        // Same labels under another name, another label value, a label more: all distinct.
        let body = "a{x=\"1\"} 1\nb{x=\"1\"} 1\na{x=\"2\"} 1\na{x=\"1\",y=\"1\"} 1\na{x=\"1\",y=\"2\"} 1\na{x=\"2\",y=\"1\"} 1\n";
        assert_eq!(samples(body).len(), 6);
        // Label values that swap between names are different series.
        assert_eq!(samples("c{x=\"1\",y=\"2\"} 1\nc{x=\"2\",y=\"1\"} 1\n").len(), 2);
        // Only wanted families are checked: a repeat the visitor skips changes nothing.
        let mut v = Collect::wanting(|n| n == "a");
        assert!(parse(b"skip 1\nskip 1\na 2\n", &mut v).is_ok());
        assert_eq!(v.samples.len(), 1);
    }

    #[test]
    fn an_empty_label_is_no_label_so_writing_it_does_not_hide_a_repeat() {
        let err = one_shot(b"a{x=\"\"} 1\na 1\n").unwrap_err();
        assert!(matches!(err, ParseError::DuplicateSeries { line: 2, first_line: 1, .. }), "{err:?}");
    }

    #[test]
    fn more_wanted_series_than_the_limit_is_an_error_not_unbounded_memory() {
        let body: String = (0..11).map(|i| format!("w{{i=\"{i}\"}} 1\n")).collect();
        let mut p = StreamParser::new(Limits { max_series: 10, ..Limits::default() });
        let mut v = Collect::all();
        let err = p.feed(body.as_bytes(), &mut v).and_then(|()| p.finish(&mut v).map(|_| ())).unwrap_err();
        assert_eq!(err, ParseError::TooManySeries { line: 11, limit: 10 });
        let mut p = StreamParser::new(Limits { max_series: 11, ..Limits::default() });
        assert!(p.feed(body.as_bytes(), &mut Collect::all()).is_ok(), "exactly the limit passes");
    }

    #[test]
    fn a_reused_parser_forgets_the_series_of_the_previous_body() {
        let mut p = StreamParser::default();
        for _ in 0..3 {
            let mut v = Collect::all();
            p.feed(b"up 1\n", &mut v).unwrap();
            p.finish(&mut v).unwrap();
            p.reset();
        }
    }

    #[test]
    fn newline_search_matches_a_plain_scan() {
        let mut hay = vec![b'a'; 40];
        for at in 0..hay.len() {
            hay[at] = b'\n';
            for start in 0..=at {
                assert_eq!(find_newline(&hay[start..]), Some(at - start));
            }
            hay[at] = b'\n' ^ 0x80;
            assert_eq!(find_newline(&hay), None);
            hay[at] = b'a';
        }
        assert_eq!(find_newline(b"\x0b\x09\x8a\n"), Some(3));
    }
}

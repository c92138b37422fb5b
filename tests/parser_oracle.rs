//! Our exposition parser checked against prometheus-parse 0.2.5, the crate it replaces.
//!
//! Why keep prometheus-parse around as a dev-dependency: it is an independent reading of the
//! format, so where it is correct (colon-free names, plain label values) both parsers must agree;
//! and the tests that record its defects explain why the project has its own parser.

use std::io;

use llm_scaler::read::exposition::{self, Limits, ParseError, Sample, StreamParser, Visitor};
use proptest::prelude::*;

/// A sample reduced to comparable data: name, sorted unescaped labels, value bits, timestamp.
type Flat = (String, Vec<(String, String)>, u64, Option<i64>);

/// Collects every sample (or those `want` accepts) as [`Flat`] rows.
struct Collect {
    want: fn(&str) -> bool,
    rows: Vec<Flat>,
}

impl Collect {
    fn all() -> Self {
        Self { want: |_| true, rows: Vec::new() }
    }
}

impl Visitor for Collect {
    fn wants(&mut self, name: &str) -> bool {
        (self.want)(name)
    }

    fn sample(&mut self, s: &Sample<'_>) {
        let mut labels: Vec<(String, String)> = s.labels().map(|(n, v)| (n.to_owned(), v.unescape().into_owned())).collect();
        labels.sort();
        self.rows.push((s.name.to_owned(), labels, s.value.to_bits(), s.timestamp_ms));
    }
}

fn ours(body: &str) -> Result<Vec<Flat>, ParseError> {
    let mut v = Collect::all();
    exposition::parse(body.as_bytes(), &mut v)?;
    Ok(v.rows)
}

fn theirs(body: &str) -> io::Result<prometheus_parse::Scrape> {
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
}

/// Canonical text of a bucket bound, so `le="1"` and `le="1.0"` compare equal.
fn canonical_le(text: &str) -> String {
    match text.parse::<f64>() {
        Ok(le) => format!("{le:?}"),
        Err(_) => text.to_owned(),
    }
}

/// prometheus-parse's samples flattened back to one row per exposition line.
///
/// Why: it groups histogram buckets (and summary quantiles) into one value per series; undoing
/// that gives rows comparable with ours. Its timestamps default to "now" when a line has none, so
/// anything later than 2023 counts as "no timestamp" (generated timestamps are earlier).
fn flatten_theirs(scrape: &prometheus_parse::Scrape) -> Vec<Flat> {
    const NO_TIMESTAMP_AFTER_MS: i64 = 1_672_531_200_000;
    let mut rows = Vec::new();
    for s in &scrape.samples {
        let labels = || -> Vec<(String, String)> { s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect() };
        let ts = Some(s.timestamp.timestamp_millis()).filter(|&t| t < NO_TIMESTAMP_AFTER_MS);
        let single = |value: f64| (s.metric.clone(), labels(), value.to_bits(), ts);
        match &s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => {
                rows.push(single(*v))
            }
            prometheus_parse::Value::Histogram(buckets) => {
                for b in buckets {
                    let mut l = labels();
                    l.push(("le".to_owned(), format!("{:?}", b.less_than)));
                    rows.push((format!("{}_bucket", s.metric), l, b.count.to_bits(), None));
                }
            }
            prometheus_parse::Value::Summary(quantiles) => {
                for q in quantiles {
                    let mut l = labels();
                    l.push(("quantile".to_owned(), format!("{:?}", q.quantile)));
                    rows.push((s.metric.clone(), l, q.count.to_bits(), None));
                }
            }
        }
    }
    normalise(rows)
}

/// Sorts labels and rows, and canonicalises `le`/`quantile` values, for multiset comparison.
fn normalise(mut rows: Vec<Flat>) -> Vec<Flat> {
    for row in &mut rows {
        for (name, value) in &mut row.1 {
            if name == "le" || name == "quantile" {
                *value = canonical_le(value);
            }
        }
        row.1.sort();
    }
    rows.sort();
    rows
}

const SMALL_VLLM_BODY: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 5.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
vllm:num_requests_waiting{engine="1",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 123456.0
vllm:prompt_tokens_created{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.79546178108279e+09
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="0.3",model_name="meta-llama/Llama-3.1-8B-Instruct"} 1.0
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 9.5
# HELP http_requests_total Total number of requests by method, status and handler.
# TYPE http_requests_total counter
http_requests_total{handler="/v1/chat/completions",method="POST",status="2xx"} 42.0
"#;

/// Records the defect that made us write a parser: prometheus-parse 0.2.5 drops every name with
/// a colon, silently (no error), so a scaler built on it would see an idle vLLM fleet.
#[test]
fn prometheus_parse_silently_drops_colon_names() {
    let scrape = match theirs(SMALL_VLLM_BODY) {
        Ok(s) => s,
        Err(e) => panic!("prometheus-parse reports no error on this body, got {e}"),
    };
    let vllm = scrape.samples.iter().filter(|s| s.metric.starts_with("vllm")).count();
    assert_eq!(vllm, 0, "prometheus-parse 0.2.5 drops every vllm:* sample");
    let names: Vec<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(names, ["http_requests_total"], "only the colon-free line survives");

    let rows = match ours(SMALL_VLLM_BODY) {
        Ok(rows) => rows,
        Err(e) => panic!("our parser must read the body: {e}"),
    };
    assert_eq!(rows.len(), 11);
    assert_eq!(rows.iter().filter(|r| r.0.starts_with("vllm:")).count(), 10);
    let waiting: f64 = rows.iter().filter(|r| r.0 == "vllm:num_requests_waiting").map(|r| f64::from_bits(r.2)).sum();
    assert_eq!(waiting, 7.0);
}

/// Records prometheus-parse's naive label splitting (values holding `,`, `=` or `}`), which our
/// parser reads correctly.
#[test]
fn prometheus_parse_splits_label_values_naively() {
    let body = "a{task=\"sql,chat\"} 1\nb{q=\"x=y\",k=\"v\"} 2\nc{q=\"}\"} 3\n";
    let scrape = match theirs(body) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let get =
        |metric: &str, label: &str| scrape.samples.iter().find(|s| s.metric == metric).map(|s| s.labels.get(label).map(str::to_owned));
    assert_eq!(get("a", "task"), Some(Some("sql".to_owned())), "cut at the comma");
    assert_eq!(get("b", "q"), Some(None), "a value with '=' drops the label");
    assert_eq!(get("c", "q"), None, "a value with '}}' drops the line");

    let rows = match ours(body) {
        Ok(rows) => rows,
        Err(e) => panic!("{e}"),
    };
    let label = |i: usize, name: &str| rows.get(i).and_then(|r| r.1.iter().find(|l| l.0 == name)).map(|l| l.1.as_str());
    assert_eq!(label(0, "task"), Some("sql,chat"));
    assert_eq!(label(1, "q"), Some("x=y"));
    assert_eq!(label(2, "q"), Some("}"));
}

/// A body that repeats a series is invalid exposition: Prometheus rejects the scrape. prometheus-
/// parse keeps both samples (so a sum over them doubles the load); ours names the series and both
/// lines, whatever order the labels are written in.
#[test]
fn prometheus_parse_keeps_repeated_series_that_prometheus_rejects() {
    let body = "# TYPE waiting gauge\nwaiting{model=\"llama\",engine=\"0\"} 30\nother 1\nwaiting{engine=\"0\",model=\"llama\"} 30\n";
    let scrape = match theirs(body) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let total: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "waiting")
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(total, 60.0, "prometheus-parse counts the repeated series twice");

    match ours(body) {
        Err(ParseError::DuplicateSeries { line: 4, first_line: 2, excerpt }) => {
            assert!(excerpt.starts_with("waiting{engine=\"0\",model=\"llama\"}"), "{excerpt}")
        }
        other => panic!("expected a duplicate-series error naming lines 4 and 2, got {other:?}"),
    }
    // The same name with another label set, or the same labels under another name, is no repeat.
    assert!(ours("waiting{engine=\"0\"} 1\nwaiting{engine=\"1\"} 1\nrunning{engine=\"0\"} 1\n").is_ok());
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!("cannot read {path}: {e}"),
    }
}

/// On every committed fixture, ours reads every sample line, and agrees with prometheus-parse once
/// `vllm:` is renamed to `vllm_` so that it can read them too.
#[test]
fn fixtures_agree_with_prometheus_parse_after_renaming() {
    let names = [
        "vllm-0.33-two-engines.prom",
        "vllm-0.33-one-engine.prom",
        "vllm-legacy-v0.prom",
        "vllm-multiprocess.prom",
        "dcgm-4.5.prom",
        "dcgm-4.9.prom",
        "dcgm-old-namespace.prom",
    ];
    for name in names {
        let body = fixture(name);
        let sample_lines = body.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count();
        let rows = match ours(&body) {
            Ok(rows) => rows,
            Err(e) => panic!("{name}: {e}"),
        };
        assert_eq!(rows.len(), sample_lines, "{name}: every sample line is read");
        let renamed_ours = normalise(
            rows.into_iter()
                .map(|mut r| {
                    r.0 = r.0.replace("vllm:", "vllm_");
                    r
                })
                .collect(),
        );
        let scrape = match theirs(&body.replace("vllm:", "vllm_")) {
            Ok(s) => s,
            Err(e) => panic!("{name}: {e}"),
        };
        assert_eq!(renamed_ours, flatten_theirs(&scrape), "{name}");
    }
}

/// Characters prometheus-parse reads correctly inside label values (no `,` `=` `}` `"` `\`).
const SAFE_VALUE: &str = "[a-zA-Z0-9 _./:;!?@#$%^&*()|~<>{+-]{0,12}|[éü☃日本 a]{1,4}";

#[derive(Debug, Clone)]
enum Kind {
    Gauge,
    Counter,
    Untyped,
    Histogram,
}

#[derive(Debug, Clone)]
struct Series {
    values: Vec<String>,
    value: f64,
    value_style: u8,
    timestamp: Option<i64>,
}

#[derive(Debug, Clone)]
struct Family {
    base: String,
    kind: Kind,
    label_names: Vec<String>,
    series: Vec<Series>,
    trailing_comma: bool,
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![(-1_000_000i64..1_000_000).prop_map(|i| i as f64), -1e6f64..1e6, any::<f64>().prop_filter("finite", |v| v.is_finite()),]
}

/// Writes a finite value in one of the spellings exporters use.
fn render_value(v: f64, style: u8) -> String {
    match style % 3 {
        0 => format!("{v}"),
        1 => format!("{v:e}"),
        _ => format!("{v:?}"),
    }
}

fn family() -> impl Strategy<Value = Family> {
    let kind = prop_oneof![Just(Kind::Gauge), Just(Kind::Counter), Just(Kind::Untyped), Just(Kind::Histogram)];
    let label_names = prop::collection::btree_set("[a-zA-Z_][a-zA-Z0-9_]{0,6}", 0..4)
        .prop_map(|s| s.into_iter().filter(|n| n != "le").collect::<Vec<_>>());
    ("[a-zA-Z_][a-zA-Z0-9_]{0,10}", kind, label_names, any::<bool>()).prop_flat_map(|(base, kind, label_names, trailing_comma)| {
        let n = label_names.len();
        let series = (prop::collection::vec(SAFE_VALUE, n), finite(), any::<u8>(), prop::option::of(0i64..1_600_000_000_000))
            .prop_map(|(values, value, value_style, timestamp)| Series { values, value, value_style, timestamp });
        prop::collection::vec(series, 1..4).prop_map(move |mut series| {
            // One sample per label set: a repeated series is invalid exposition, which our
            // parser rejects (see prometheus_parse_keeps_repeated_series_that_prometheus_rejects).
            let mut label_sets = std::collections::HashSet::new();
            series.retain(|s| label_sets.insert(s.values.clone()));
            Family { base: base.clone(), kind: kind.clone(), label_names: label_names.clone(), series, trailing_comma }
        })
    })
}

/// Renders `{a="x",b="y"}` (with an optional trailing comma), or nothing without labels.
fn render_labels(names: &[String], values: &[String], extra: Option<&str>, comma: bool) -> String {
    let mut parts: Vec<String> = names.iter().zip(values).map(|(n, v)| format!("{n}=\"{v}\"")).collect();
    if let Some(le) = extra {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        return String::new();
    }
    format!("{{{}{}}}", parts.join(","), if comma { "," } else { "" })
}

/// Renders families as an exposition body; family names get their index so they never collide.
fn render_body(families: &[Family], crlf: bool) -> String {
    let eol = if crlf { "\r\n" } else { "\n" };
    let mut out = String::new();
    for (i, f) in families.iter().enumerate() {
        let name = format!("{}_{i}", f.base);
        let kind = match f.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Untyped => "untyped",
            Kind::Histogram => "histogram",
        };
        out.push_str(&format!("# HELP {name} Help for {name}.{eol}"));
        out.push_str(&format!("# TYPE {name} {kind}{eol}"));
        for s in &f.series {
            let value = render_value(s.value, s.value_style);
            if let Kind::Histogram = f.kind {
                let mut cumulative = 0.0;
                for le in ["0.5", "1", "+Inf"] {
                    cumulative += s.value.abs().floor().min(1e6);
                    let labels = render_labels(&f.label_names, &s.values, Some(le), false);
                    out.push_str(&format!("{name}_bucket{labels} {cumulative}{eol}"));
                }
                let labels = render_labels(&f.label_names, &s.values, None, f.trailing_comma);
                out.push_str(&format!("{name}_count{labels} {cumulative}{eol}"));
                out.push_str(&format!("{name}_sum{labels} {value}{eol}"));
            } else {
                let labels = render_labels(&f.label_names, &s.values, None, f.trailing_comma);
                let ts = s.timestamp.map(|t| format!(" {t}")).unwrap_or_default();
                out.push_str(&format!("{name}{labels} {value}{ts}{eol}"));
            }
        }
        out.push_str(eol);
    }
    out
}

/// Splits `body` at the given (sorted, deduplicated, in range) offsets.
fn split_at_points<'a>(body: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (body.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut chunks = Vec::new();
    let mut from = 0;
    for cut in cuts {
        chunks.push(body.get(from..cut).unwrap_or(&[]));
        from = cut;
    }
    chunks.push(body.get(from..).unwrap_or(&[]));
    chunks
}

/// A visitor for arbitrary input: wants about half the names, and checks the label accessors
/// against each other on every wanted sample.
struct Checking {
    rows: Vec<Flat>,
}

impl Visitor for Checking {
    fn wants(&mut self, name: &str) -> bool {
        name.len().is_multiple_of(2) || name.contains('a')
    }

    fn sample(&mut self, s: &Sample<'_>) {
        let mut labels = Vec::new();
        for (n, v) in s.labels() {
            let unescaped = v.unescape();
            assert!(v.eq_unescaped(&unescaped), "{:?}", v.raw());
            let _ = v.as_f64();
            assert!(s.label(n).is_some());
            labels.push((n.to_owned(), unescaped.into_owned()));
        }
        self.rows.push((s.name.to_owned(), labels, s.value.to_bits(), s.timestamp_ms));
    }
}

/// Small pieces that steer arbitrary input into the parser's interesting paths.
fn fuzz_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..6),
        prop::sample::select(vec![
            &b"a"[..],
            b"vllm:x",
            b"{",
            b"}",
            b"\"",
            b"\\",
            b"\\n",
            b"=",
            b",",
            b" ",
            b"\t",
            b"\n",
            b"\r\n",
            b"#",
            b"# EOF\n",
            b"# TYPE a gauge\n",
            b"# HELP a x\n",
            b"1",
            b"1.5e+09",
            b"+Inf",
            b"NaN",
            b"le=\"0.5\"",
            b"\xc3\xa9",
            b"\xff",
        ])
        .prop_map(<[u8]>::to_vec),
    ]
}

/// Well-formed lines that the mutating strategy damages one byte at a time.
const TEMPLATES: [&str; 6] = [
    "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0",
    "h_bucket{le=\"+Inf\",x=\"a\\\"b\\\\c\\nd\",} 1.79546178108279e+09 1700000000000",
    "  a  { b = \"Grüße, =}\" }  NaN  -5 # {trace_id=\"x\"} 1",
    "# TYPE vllm:x histogram",
    "plain -Inf 1.5",
    "ab 1",
];

/// One line of fuzz input: a valid start then random pieces, a template (often damaged by one
/// inserted, replaced or removed byte), or noise.
fn fuzz_line() -> impl Strategy<Value = Vec<u8>> {
    let start = prop::sample::select(vec!["a", "ab", "vllm:x", "a_b:c", "x", "9"]);
    let sep = prop::sample::select(vec!["{", " ", "\t", ""]);
    let pieces = || prop::collection::vec(fuzz_piece(), 0..10).prop_map(|p| p.concat());
    let mutated = (prop::sample::select(TEMPLATES.to_vec()), any::<usize>(), any::<u8>(), 0u8..5).prop_map(|(template, at, byte, op)| {
        let mut line = template.as_bytes().to_vec();
        let at = at % (line.len() + 1);
        match op {
            0 => line.insert(at, byte),
            1 if at < line.len() => line[at] = byte,
            2 if at < line.len() => {
                line.remove(at);
            }
            _ => {}
        }
        line.push(b'\n');
        line
    });
    prop_oneof![
        3 => (start, sep, pieces()).prop_map(|(start, sep, rest)| {
            [start.as_bytes(), sep.as_bytes(), &rest, b"\n"].concat()
        }),
        3 => mutated,
        1 => pieces(),
    ]
}

/// Arbitrary bytes built from lines that mostly get past the first byte of the parser.
fn fuzz_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(fuzz_line(), 0..8).prop_map(|lines| lines.concat())
}

/// Result of feeding chunks and finishing: rows seen before the end, and the outcome.
fn run_chunks(limits: Limits, chunks: &[&[u8]]) -> (Vec<Flat>, Result<(), ParseError>) {
    let mut parser = StreamParser::new(limits);
    let mut v = Checking { rows: Vec::new() };
    let mut outcome = Ok(());
    for chunk in chunks {
        outcome = parser.feed(chunk, &mut v);
        assert!(parser.carry_capacity() <= limits.max_line_len, "carry grew to {} > {}", parser.carry_capacity(), limits.max_line_len);
        if outcome.is_err() {
            break;
        }
    }
    if outcome.is_ok() {
        outcome = parser.finish(&mut v).map(|_| ());
    }
    assert!(parser.carry_capacity() <= limits.max_line_len);
    (v.rows, outcome)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    /// Where prometheus-parse is correct (no colons, plain label values), both parsers agree.
    #[test]
    fn agrees_with_prometheus_parse(
        families in prop::collection::vec(family(), 0..6),
        crlf in any::<bool>(),
    ) {
        let body = render_body(&families, crlf);
        let mine = match ours(&body) {
            Ok(rows) => normalise(rows),
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{body}"))),
        };
        let scrape = theirs(&body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&mine, &flatten_theirs(&scrape), "{}", body);
    }

    /// Arbitrary bytes in arbitrary chunks: no panic, a bounded carry buffer, and the same
    /// samples and outcome as a single chunk.
    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(
        body in fuzz_bytes(),
        points in prop::collection::vec(any::<usize>(), 0..6),
        max_line_len in prop_oneof![1 => 1usize..16, 4 => 16usize..512],
        max_body_len in prop_oneof![1 => 1usize..64, 4 => 64usize..4096],
    ) {
        let limits = Limits { max_line_len, max_body_len, ..Limits::default() };
        let chunks = split_at_points(&body, &points);
        let (rows, outcome) = run_chunks(limits, &chunks);
        let (one_rows, one_outcome) = run_chunks(limits, &[&body]);
        prop_assert_eq!(&outcome, &one_outcome);
        prop_assert_eq!(&rows, &one_rows);
        if body.len() > max_body_len && !body.windows(5).any(|w| w == b"# EOF") {
            prop_assert!(outcome.is_err(), "over the body limit without # EOF");
        }
        // The one-shot convenience agrees with a single chunk under default limits.
        let mut v = Checking { rows: Vec::new() };
        let direct = exposition::parse(&body, &mut v).map(|_| ());
        let (_, default_outcome) = run_chunks(Limits::default(), &[&body]);
        prop_assert_eq!(direct, default_outcome);
    }
}

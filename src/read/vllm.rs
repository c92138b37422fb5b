//! What one vLLM `/metrics` response says, reduced to the numbers the signals need.
//!
//! A [`VllmExtractor`] is an [`exposition::Visitor`]: it asks the parser only for the families it
//! reads and folds them as they stream by: SUM over `engine` for queue, running and counters, MAX
//! for KV-cache usage, bucket-wise SUM for the latency histograms. Current and older vLLM names
//! are both understood (`kv_cache_usage_perc` / `gpu_cache_usage_perc`,
//! `inter_token_latency_seconds` / `time_per_output_token_seconds`). A body without the core
//! gauges is an error, never a pod at zero load.
//!
//! Besides the latency signal's histogram, the extractor can read the two an SLO bounds (TTFT
//! and per-request TPOT, [`VllmExtractor::reading_slo`]): the learned capacity checks every
//! bound the SLO sets, whichever histogram the latency signal watches.

use crate::read::exposition::{MetricType, Sample, Visitor};

/// Cumulative histogram buckets of one scrape, summed over engines.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSnapshot {
    /// `(le, cumulative count)` in ascending `le`, `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
    /// `_count`.
    pub count: f64,
    /// `_sum`.
    pub sum: f64,
}

impl HistogramSnapshot {
    fn add_bucket(&mut self, le: f64, v: f64) {
        // Engines repeat the same bounds: a short linear probe finds the slot.
        if let Some(slot) = self.buckets.iter_mut().find(|(b, _)| *b == le || (b.is_infinite() && le.is_infinite())) {
            slot.1 += v;
        } else {
            let at = self.buckets.partition_point(|(b, _)| *b < le);
            self.buckets.insert(at, (le, v));
        }
    }

    fn clear(&mut self) {
        self.buckets.clear();
        self.count = 0.0;
        self.sum = 0.0;
    }
}

/// One pod's scrape, reduced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodSample {
    /// `vllm:num_requests_waiting`, summed over engines.
    pub waiting: f64,
    /// `vllm:num_requests_running`, summed over engines.
    pub running: f64,
    /// KV-cache usage 0..1, max over engines (`None` if the pod does not export it).
    pub kv_usage: Option<f64>,
    /// `vllm:prompt_tokens_total` + `vllm:generation_tokens_total`, summed over engines.
    pub tokens_total: Option<f64>,
    /// `vllm:num_preemptions_total`, summed over engines.
    pub preemptions_total: Option<f64>,
    /// KV capacity in tokens (`num_gpu_blocks x block_size` from `vllm:cache_config_info`).
    pub kv_capacity_tokens: Option<f64>,
    /// The configured latency histogram, summed over engines.
    pub latency: Option<HistogramSnapshot>,
    /// The histograms of the latencies an SLO bounds, where asked for and exported.
    pub slo_latency: SloLatency,
}

/// The TTFT and per-request TPOT histograms of one scrape (`None`: not asked for, or the pod
/// exports neither name).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SloLatency {
    /// `vllm:time_to_first_token_seconds`.
    pub ttft: Option<HistogramSnapshot>,
    /// `vllm:request_time_per_output_token_seconds`, else the inter-token latency.
    pub tpot: Option<HistogramSnapshot>,
}

/// The TTFT histogram an SLO's TTFT bound is checked against.
pub const SLO_TTFT_FAMILIES: &[&str] = &["vllm:time_to_first_token_seconds"];

/// The histogram an SLO's TPOT bound is checked against: vLLM's per-request TPOT, the SLO's own
/// definition. Older vLLM has only the inter-token latency, whose upper quantiles are per-token
/// gaps (a prefill stall shows in full) and so at least as high: a conservative stand-in.
pub const SLO_TPOT_FAMILIES: &[&str] =
    &["vllm:request_time_per_output_token_seconds", "vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"];

/// Why a body could not be read as a vLLM pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The core gauges are absent: not a vLLM endpoint, or the model filter matched nothing.
    #[error("no {missing} series{filter} in the response: not a vLLM /metrics endpoint?")]
    MissingCore {
        /// The missing family.
        missing: &'static str,
        /// Model filter note.
        filter: String,
    },
}

const WAITING: &str = "vllm:num_requests_waiting";
const RUNNING: &str = "vllm:num_requests_running";
const KV: &str = "vllm:kv_cache_usage_perc";
const KV_OLD: &str = "vllm:gpu_cache_usage_perc";
const PROMPT: &str = "vllm:prompt_tokens_total";
const GENERATION: &str = "vllm:generation_tokens_total";
const PREEMPT: &str = "vllm:num_preemptions_total";
const CACHE_INFO: &str = "vllm:cache_config_info";

/// Folds one histogram, known by several family names (newest first), over engines.
#[derive(Debug)]
struct HistogramReader {
    families: &'static [&'static str],
    /// Which of `families` the histogram came from (lower index = newer name wins).
    family: Option<usize>,
    hist: HistogramSnapshot,
}

impl HistogramReader {
    fn new(families: &'static [&'static str]) -> Self {
        HistogramReader { families, family: None, hist: HistogramSnapshot::default() }
    }

    fn reset(&mut self) {
        self.family = None;
        self.hist.clear();
    }

    /// Which family `name` is a series of, and which part (`_bucket`, `_count`, `_sum`).
    fn part<'n>(&self, name: &'n str) -> Option<(usize, &'n str)> {
        self.families.iter().enumerate().find_map(|(i, fam)| {
            let rest = name.strip_prefix(fam)?;
            matches!(rest, "_bucket" | "_count" | "_sum").then_some((i, rest))
        })
    }

    fn on(&mut self, idx: usize, part: &str, s: &Sample<'_>) {
        match self.family {
            Some(cur) if idx > cur => return, // an older name while the newer one is present
            Some(cur) if idx < cur => self.hist.clear(),
            _ => {}
        }
        self.family = Some(idx);
        match part {
            "_bucket" => {
                if let Some(le) = s.label("le").and_then(|v| v.as_f64()) {
                    self.hist.add_bucket(le, s.value);
                }
            }
            "_count" => self.hist.count += s.value,
            _ => self.hist.sum += s.value,
        }
    }

    /// Folds the series in if it is one of this histogram's.
    fn offer(&mut self, s: &Sample<'_>) {
        if let Some((idx, part)) = self.part(s.name) {
            self.on(idx, part, s);
        }
    }

    fn snapshot(&self) -> Option<HistogramSnapshot> {
        (self.family.is_some() && !self.hist.buckets.is_empty()).then(|| self.hist.clone())
    }
}

/// Streams a vLLM body into a [`PodSample`]. Reusable across scrapes (keeps its buffers).
#[derive(Debug)]
pub struct VllmExtractor {
    model_filter: Option<String>,
    /// The latency signal's histogram.
    latency: HistogramReader,
    /// The SLO's TTFT histogram, when asked for.
    slo_ttft: Option<HistogramReader>,
    /// The SLO's TPOT histogram, when asked for.
    slo_tpot: Option<HistogramReader>,
    waiting: Option<f64>,
    running: Option<f64>,
    kv_new: Option<f64>,
    kv_old: Option<f64>,
    prompt: Option<f64>,
    generation: Option<f64>,
    preempt: Option<f64>,
    kv_capacity: Option<f64>,
}

impl VllmExtractor {
    /// An extractor for a model filter and a latency histogram (family names, newest first).
    pub fn new(model_filter: Option<String>, latency_families: &'static [&'static str]) -> Self {
        VllmExtractor {
            model_filter,
            latency: HistogramReader::new(latency_families),
            slo_ttft: None,
            slo_tpot: None,
            waiting: None,
            running: None,
            kv_new: None,
            kv_old: None,
            prompt: None,
            generation: None,
            preempt: None,
            kv_capacity: None,
        }
    }

    /// Also reads the histograms of the SLO's bounds ([`SLO_TTFT_FAMILIES`],
    /// [`SLO_TPOT_FAMILIES`]) into [`PodSample::slo_latency`].
    pub fn reading_slo(mut self, ttft: bool, tpot: bool) -> Self {
        self.slo_ttft = ttft.then(|| HistogramReader::new(SLO_TTFT_FAMILIES));
        self.slo_tpot = tpot.then(|| HistogramReader::new(SLO_TPOT_FAMILIES));
        self
    }

    /// Forgets the previous body (keeps allocations).
    pub fn reset(&mut self) {
        self.latency.reset();
        for r in [&mut self.slo_ttft, &mut self.slo_tpot].into_iter().flatten() {
            r.reset();
        }
        self.waiting = None;
        self.running = None;
        self.kv_new = None;
        self.kv_old = None;
        self.prompt = None;
        self.generation = None;
        self.preempt = None;
        self.kv_capacity = None;
    }

    /// The reduced sample, or why the body was not a usable vLLM response.
    pub fn finish(&mut self) -> Result<PodSample, ExtractError> {
        let filter = || match &self.model_filter {
            Some(m) => format!(" for model_name=\"{m}\""),
            None => String::new(),
        };
        let waiting = self.waiting.ok_or_else(|| ExtractError::MissingCore { missing: WAITING, filter: filter() })?;
        let running = self.running.ok_or_else(|| ExtractError::MissingCore { missing: RUNNING, filter: filter() })?;
        let tokens_total = match (self.prompt, self.generation) {
            (None, None) => None,
            (p, g) => Some(p.unwrap_or(0.0) + g.unwrap_or(0.0)),
        };
        let slo_latency = SloLatency {
            ttft: self.slo_ttft.as_ref().and_then(HistogramReader::snapshot),
            tpot: self.slo_tpot.as_ref().and_then(HistogramReader::snapshot),
        };
        Ok(PodSample {
            waiting,
            running,
            kv_usage: self.kv_new.or(self.kv_old),
            tokens_total,
            preemptions_total: self.preempt,
            kv_capacity_tokens: self.kv_capacity,
            latency: self.latency.snapshot(),
            slo_latency,
        })
    }
}

fn add(slot: &mut Option<f64>, v: f64) {
    *slot = Some(slot.unwrap_or(0.0) + v);
}

fn max(slot: &mut Option<f64>, v: f64) {
    *slot = Some(slot.map_or(v, |c| c.max(v)));
}

impl Visitor for VllmExtractor {
    fn wants(&mut self, name: &str) -> bool {
        if !name.starts_with("vllm:") {
            return false;
        }
        matches!(name, WAITING | RUNNING | KV | KV_OLD | PROMPT | GENERATION | PREEMPT | CACHE_INFO)
            || self.latency.part(name).is_some()
            || [&self.slo_ttft, &self.slo_tpot].into_iter().flatten().any(|r| r.part(name).is_some())
    }

    fn sample(&mut self, s: &Sample<'_>) {
        if let Some(filter) = &self.model_filter
            && let Some(m) = s.label("model_name")
            && !m.eq_unescaped(filter)
        {
            return;
        }
        if s.value.is_nan() {
            // A NaN carries no information; skip it rather than poison a sum.
            return;
        }
        match s.name {
            WAITING => add(&mut self.waiting, s.value),
            RUNNING => add(&mut self.running, s.value),
            KV => max(&mut self.kv_new, s.value),
            KV_OLD => max(&mut self.kv_old, s.value),
            PROMPT => add(&mut self.prompt, s.value),
            GENERATION => add(&mut self.generation, s.value),
            PREEMPT => add(&mut self.preempt, s.value),
            CACHE_INFO => {
                let get = |k: &str| s.label(k).and_then(|v| v.as_f64());
                if let (Some(blocks), Some(size)) = (get("num_gpu_blocks"), get("block_size")) {
                    add(&mut self.kv_capacity, blocks * size);
                }
            }
            _ => {
                // A histogram series may feed the signal's histogram and an SLO's (TTFT both).
                self.latency.offer(s);
                for r in [&mut self.slo_ttft, &mut self.slo_tpot].into_iter().flatten() {
                    r.offer(s);
                }
            }
        }
    }

    fn type_hint(&mut self, _family: &str, _kind: MetricType) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::exposition;

    const TTFT: &[&str] = &["vllm:time_to_first_token_seconds"];
    const ITL: &[&str] = &["vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"];

    fn extract(body: &str, filter: Option<&str>, fams: &'static [&'static str]) -> Result<PodSample, ExtractError> {
        let mut x = VllmExtractor::new(filter.map(str::to_string), fams);
        exposition::parse(body.as_bytes(), &mut x).expect("parse");
        x.finish()
    }

    fn fixture(name: &str) -> String {
        let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    const TWO_ENGINES: &str = r#"# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama"} 3.0
vllm:num_requests_waiting{engine="1",model_name="llama"} 4.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 10.0
vllm:num_requests_running{engine="1",model_name="llama"} 12.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="llama"} 0.5
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{engine="0",model_name="llama"} 100.0
vllm:prompt_tokens_total{engine="1",model_name="llama"} 50.0
vllm:prompt_tokens_created{engine="0",model_name="llama"} 1.79546178108279e+09
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{engine="0",model_name="llama"} 7.0
vllm:generation_tokens_total{engine="1",model_name="llama"} 3.0
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",cache_dtype="auto",engine="0",num_gpu_blocks="1000"} 1.0
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.5",model_name="llama"} 2.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="llama"} 3.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="llama"} 3.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="llama"} 1.5
vllm:time_to_first_token_seconds_bucket{engine="1",le="0.5",model_name="llama"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="1",le="+Inf",model_name="llama"} 1.0
vllm:time_to_first_token_seconds_count{engine="1",model_name="llama"} 1.0
vllm:time_to_first_token_seconds_sum{engine="1",model_name="llama"} 0.2
"#;

    #[test]
    fn sums_engines_and_maxes_kv() {
        let s = extract(TWO_ENGINES, None, TTFT).unwrap();
        assert_eq!((s.waiting, s.running), (7.0, 22.0));
        assert_eq!(s.kv_usage, Some(0.5));
        assert_eq!(s.tokens_total, Some(160.0));
        assert_eq!(s.kv_capacity_tokens, Some(16_000.0));
        let h = s.latency.unwrap();
        assert_eq!(h.buckets, vec![(0.5, 3.0), (f64::INFINITY, 4.0)]);
        assert_eq!(h.count, 4.0);
    }

    #[test]
    fn model_filter_and_missing_core() {
        let err = extract(TWO_ENGINES, Some("mistral"), TTFT).unwrap_err();
        assert!(err.to_string().contains("model_name=\"mistral\""), "{err}");
        assert!(extract(TWO_ENGINES, Some("llama"), TTFT).is_ok());
        let err = extract("http_requests_total{handler=\"/v1\"} 3\n", None, TTFT).unwrap_err();
        assert!(err.to_string().contains(WAITING));
    }

    #[test]
    fn realistic_two_engine_fixture() {
        let s = extract(&fixture("vllm-0.33-two-engines.prom"), None, TTFT).unwrap();
        let h = s.latency.expect("ttft histogram");
        assert_eq!(h.buckets.len(), 23, "22 default TTFT bounds + Inf");
        assert_eq!(h.buckets.last().map(|b| b.1), Some(h.count));
        assert!(s.kv_usage.is_some() && s.tokens_total.is_some() && s.kv_capacity_tokens.is_some());
    }

    #[test]
    fn legacy_names_are_understood() {
        let s = extract(&fixture("vllm-legacy-v0.prom"), None, ITL).unwrap();
        assert!(s.kv_usage.is_some(), "gpu_cache_usage_perc fallback");
        assert!(s.latency.is_some(), "time_per_output_token_seconds fallback");
    }

    #[test]
    fn multiprocess_body() {
        let s = extract(&fixture("vllm-multiprocess.prom"), None, TTFT).unwrap();
        let h = s.latency.expect("histogram with _sum first");
        assert_eq!(h.buckets.last().map(|b| b.1), Some(h.count));
    }

    #[test]
    fn the_slo_histograms_are_read_beside_the_signal_s_and_tpot_falls_back_to_the_inter_token_latency() {
        let read = |body: &str| {
            let mut x = VllmExtractor::new(None, ITL).reading_slo(true, true);
            exposition::parse(body.as_bytes(), &mut x).expect("parse");
            x.finish().expect("a vLLM body")
        };
        let s = read(TWO_ENGINES);
        assert_eq!(s.slo_latency.ttft.map(|h| h.count), Some(4.0), "TTFT summed over engines, beside the ITL signal");
        assert_eq!(s.slo_latency.tpot, None, "no TPOT or ITL family in the body: absent, not zero");
        let legacy = read(&fixture("vllm-legacy-v0.prom"));
        assert_eq!(legacy.slo_latency.tpot, legacy.latency, "older vLLM: time_per_output_token_seconds stands in for TPOT");
        let both = format!(
            "{TWO_ENGINES}vllm:request_time_per_output_token_seconds_bucket{{le=\"0.1\"}} 5\n\
             vllm:request_time_per_output_token_seconds_bucket{{le=\"+Inf\"}} 6\n\
             vllm:inter_token_latency_seconds_bucket{{le=\"0.1\"}} 50\nvllm:inter_token_latency_seconds_bucket{{le=\"+Inf\"}} 60\n"
        );
        let s = read(&both);
        assert_eq!(s.slo_latency.tpot.map(|h| h.buckets), Some(vec![(0.1, 5.0), (f64::INFINITY, 6.0)]), "per-request TPOT wins");
        assert_eq!(s.latency.map(|h| h.buckets.len()), Some(2), "the signal still reads the ITL");
        assert_eq!(extract(TWO_ENGINES, None, TTFT).unwrap().slo_latency, SloLatency::default(), "not asked for: not read");
    }
}

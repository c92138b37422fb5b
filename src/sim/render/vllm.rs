//! A fake vLLM pod's `/metrics` body.
//!
//! The output reproduces what vLLM 0.33 serves through Python's
//! `prometheus_client` (see `docs/metrics.md` and
//! `tests/fixtures/vllm-0.33-two-engines.prom`): HELP/TYPE lines, labels in
//! alphabetical order (so `le` sits between `engine` and `model_name`),
//! counters as `<name>_total` followed by a `<name>_created` gauge family,
//! histograms as cumulative `_bucket` lines then `_count`, `_sum` and a
//! `_created` family, every value as a Python float. The families come in
//! vLLM's registration order. Only the `vllm:` families are rendered: the
//! `process_*`, `python_*` and `http_*` ones carry nothing the scaler reads.
//!
//! [`VllmFlavor::LegacyV0`] plays an old V0-engine pod instead: only the
//! `model_name` label, the pre-rename names and no `_created` lines, so the
//! scraper's fallbacks get exercised too.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::{escape_label_value, prom_float, push_label_value};

/// Default buckets of vLLM's request-latency histograms (e2e, queue,
/// prefill, decode, inference).
pub const LATENCY_BUCKETS: &[f64] =
    &[0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0];

/// Default buckets of `vllm:time_to_first_token_seconds`.
pub const TTFT_BUCKETS: &[f64] =
    &[0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0];

/// Default buckets of the inter-token latency and per-request TPOT
/// histograms.
pub const ITL_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0];

/// Default buckets of `vllm:iteration_tokens_total`: powers of two 1..16384.
pub const ITERATION_TOKEN_BUCKETS: &[f64] =
    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0];

/// A Prometheus histogram as prometheus_client keeps it: per-bucket counts
/// (not cumulative; the last one is `+Inf`) and a running sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: Cow<'static, [f64]>,
    counts: Vec<u64>,
    sum: f64,
    /// The `le` texts of all buckets (`+Inf` last), concatenated, and where
    /// each ends: formatted once here instead of on every scrape.
    le_text: String,
    le_ends: Vec<usize>,
}

impl Histogram {
    /// An empty histogram over finite, ascending upper bounds (`+Inf` is
    /// implied and must not be listed).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self::from_bounds(Cow::Borrowed(bounds))
    }

    /// Same with bounds chosen at run time, e.g. to play a pod started with
    /// `--custom-histogram-buckets`.
    pub fn with_bounds(bounds: Vec<f64>) -> Self {
        Self::from_bounds(Cow::Owned(bounds))
    }

    fn from_bounds(bounds: Cow<'static, [f64]>) -> Self {
        let counts = vec![0; bounds.len() + 1];
        let mut le_text = String::with_capacity(8 * counts.len());
        let mut le_ends = Vec::with_capacity(counts.len());
        for &b in bounds.iter() {
            prom_float(b, &mut le_text);
            le_ends.push(le_text.len());
        }
        le_text.push_str("+Inf");
        le_ends.push(le_text.len());
        Self { bounds, counts, sum: 0.0, le_text, le_ends }
    }

    /// The `le` label value of bucket `i` as prometheus_client prints it.
    fn le(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.le_ends[i - 1] };
        self.le_text.get(start..self.le_ends[i]).unwrap_or("+Inf")
    }

    /// Records one observation.
    pub fn observe(&mut self, v: f64) {
        self.observe_n(v, 1);
    }

    /// Records `n` observations of the same value in O(log buckets), so a
    /// simulator can feed thousands of tokens per tick cheaply. NaN is
    /// dropped: it would poison `_sum` forever.
    pub fn observe_n(&mut self, v: f64, n: u64) {
        if v.is_nan() || n == 0 {
            return;
        }
        // First bucket whose bound is >= v, as prometheus_client's `<=`.
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i] += n;
        self.sum += v * n as f64;
    }

    /// The finite upper bounds.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Per-bucket (non-cumulative) counts; one more than [`Self::bounds`].
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }
}

/// Why a request finished; the `finished_reason` label of
/// `vllm:request_success_total`, in vLLM's `FinishReason` order (which is
/// also the order of the series in the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// Hit a stop token or string.
    Stop = 0,
    /// Hit `max_tokens` or the context length.
    Length = 1,
    /// Cancelled, typically by the client going away.
    Abort = 2,
    /// Failed in the engine.
    Error = 3,
    /// Stopped by the repetition detector.
    Repetition = 4,
}

impl FinishReason {
    /// All reasons, in the order vLLM 0.33 lists them.
    pub const ALL: [FinishReason; 5] =
        [FinishReason::Stop, FinishReason::Length, FinishReason::Abort, FinishReason::Error, FinishReason::Repetition];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Abort => "abort",
            FinishReason::Error => "error",
            FinishReason::Repetition => "repetition",
        }
    }
}

/// The reasons V0 engines knew; they listed only these.
const V0_FINISH_REASONS: [FinishReason; 3] = [FinishReason::Stop, FinishReason::Length, FinishReason::Abort];

/// `reason` values of `vllm:admission_rejections_total`, in body order.
pub const ADMISSION_REASONS: [&str; 2] = ["queue_full", "kv_cache_full"];

/// One finished request, to feed every per-request family at once with
/// consistent numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinishedRequest {
    /// Prompt (prefill) tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub generation_tokens: u64,
    /// Seconds from arrival to being scheduled.
    pub queue_s: f64,
    /// Seconds spent in prefill.
    pub prefill_s: f64,
    /// Seconds spent decoding (all output tokens after the first).
    pub decode_s: f64,
    /// The `finished_reason` it is counted under.
    pub reason: FinishReason,
}

/// Everything one engine (data-parallel rank) of a vLLM pod reports. Gauges
/// are plain fields to set; counters and histograms only ever grow, as a
/// real engine's do until it restarts.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineState {
    /// `vllm:num_requests_waiting`: engine-core queue length.
    pub waiting: u64,
    /// The part of `waiting` held back for another reason than lack of
    /// capacity (`reason="deferred"`); the rest is reported as `capacity`.
    pub waiting_deferred: u64,
    /// `vllm:num_requests_running`.
    pub running: u64,
    /// `vllm:kv_cache_usage_perc`, a 0..1 fraction.
    pub kv_cache_usage: f64,
    /// `vllm:prompt_tokens_total`.
    pub prompt_tokens: u64,
    /// `vllm:generation_tokens_total`: its rate is decode throughput.
    pub generation_tokens: u64,
    /// Tokens looked up in the prefix cache (vLLM counts every prompt token).
    pub prefix_cache_queries: u64,
    /// Prefix-cache tokens found cached.
    pub prefix_cache_hits: u64,
    /// `vllm:num_preemptions_total`: rising means KV-cache saturation.
    pub preemptions: u64,
    /// `vllm:request_success_total`, indexed by [`FinishReason`] as `usize`.
    pub request_success: [u64; 5],
    /// Time to first token.
    pub ttft: Histogram,
    /// Inter-token latency (V0 name: `time_per_output_token_seconds`).
    pub itl: Histogram,
    /// Per-request mean time per output token.
    pub tpot: Histogram,
    /// Arrival to last token.
    pub e2e: Histogram,
    /// Queued to scheduled.
    pub queue_time: Histogram,
    /// Prefill phase.
    pub prefill_time: Histogram,
    /// Decode phase.
    pub decode_time: Histogram,
    /// Prefill plus decode.
    pub inference_time: Histogram,
    /// Tokens per engine step.
    pub iteration_tokens: Histogram,
}

impl Default for EngineState {
    fn default() -> Self {
        Self::new()
    }
}

impl EngineState {
    /// An idle engine just after start-up: every family present at zero,
    /// histograms on vLLM's default buckets.
    pub fn new() -> Self {
        Self {
            waiting: 0,
            waiting_deferred: 0,
            running: 0,
            kv_cache_usage: 0.0,
            prompt_tokens: 0,
            generation_tokens: 0,
            prefix_cache_queries: 0,
            prefix_cache_hits: 0,
            preemptions: 0,
            request_success: [0; 5],
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            tpot: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(LATENCY_BUCKETS),
            queue_time: Histogram::new(LATENCY_BUCKETS),
            prefill_time: Histogram::new(LATENCY_BUCKETS),
            decode_time: Histogram::new(LATENCY_BUCKETS),
            inference_time: Histogram::new(LATENCY_BUCKETS),
            iteration_tokens: Histogram::new(ITERATION_TOKEN_BUCKETS),
        }
    }

    /// Accounts one finished request in the token counters, the success
    /// counter and every latency histogram, the way vLLM does when a request
    /// completes. The inter-token gaps are taken as all equal to the
    /// request's mean (one `observe_n`), which keeps this O(buckets).
    pub fn finish_request(&mut self, r: &FinishedRequest) {
        self.prompt_tokens += r.prompt_tokens;
        self.generation_tokens += r.generation_tokens;
        self.prefix_cache_queries += r.prompt_tokens;
        self.request_success[r.reason as usize] += 1;
        let first_token = r.queue_s + r.prefill_s;
        self.ttft.observe(first_token);
        let gaps = r.generation_tokens.saturating_sub(1);
        if gaps > 0 {
            let tpot = r.decode_s / gaps as f64;
            self.itl.observe_n(tpot, gaps);
            self.tpot.observe(tpot);
        }
        self.e2e.observe(first_token + r.decode_s);
        self.queue_time.observe(r.queue_s);
        self.prefill_time.observe(r.prefill_s);
        self.decode_time.observe(r.decode_s);
        self.inference_time.observe(r.prefill_s + r.decode_s);
    }
}

/// Which generation of vLLM the pod plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VllmFlavor {
    /// vLLM 0.33, V1 engine: current names, `engine` label, `_created`.
    #[default]
    V1,
    /// Old V0 engine: `model_name` only, `vllm:gpu_cache_usage_perc`,
    /// `vllm:gpu_prefix_cache_*`, `vllm:time_per_output_token_seconds`, no
    /// `_created`. V0 had no data parallelism: only the first engine is
    /// rendered.
    LegacyV0,
}

/// A fake vLLM pod: one model served by one or more engines.
#[derive(Debug, Clone, PartialEq)]
pub struct VllmPod {
    /// The `model_name` label (the served model name).
    pub model_name: String,
    /// One per data-parallel rank; the index is the `engine` label.
    pub engines: Vec<EngineState>,
    /// KV blocks per engine; capacity in tokens = `num_gpu_blocks * block_size`.
    pub num_gpu_blocks: u64,
    /// Tokens per KV block.
    pub block_size: u64,
    /// Unix time the counters were created (the `_created` values).
    pub created_unix: f64,
    /// `vllm:admission_rejections_total`, indexed like [`ADMISSION_REASONS`]
    /// (V1 only: it is a frontend counter with no `engine` label).
    pub admission_rejections: [u64; 2],
    /// Which vLLM generation to play.
    pub flavor: VllmFlavor,
}

/// Label values shared by a family's series.
#[derive(Clone, Copy)]
struct Series<'a> {
    engine: Option<usize>,
    /// Already escaped: done once per body rather than once per line.
    model: &'a str,
}

impl VllmPod {
    /// A freshly started V1 pod with `engines` idle engines and the KV
    /// capacity of a Llama-3.1-70B on four H100s per engine.
    pub fn new(model_name: impl Into<String>, engines: usize) -> Self {
        let created_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        Self {
            model_name: model_name.into(),
            engines: (0..engines).map(|_| EngineState::new()).collect(),
            num_gpu_blocks: 28_159,
            block_size: 16,
            created_unix,
            admission_rejections: [0; 2],
            flavor: VllmFlavor::V1,
        }
    }

    /// Appends the pod's exposition text to `out` (nothing is cleared, so a
    /// server can reuse one buffer across scrapes).
    pub fn render(&self, out: &mut String) {
        let model = escape_label_value(&self.model_name);
        match self.flavor {
            VllmFlavor::V1 => self.render_v1(out, &model),
            VllmFlavor::LegacyV0 => self.render_v0(out, &model),
        }
    }

    fn render_v1(&self, out: &mut String, model: &str) {
        let created = Some(self.created_unix);
        let all = self.engines.iter().enumerate().map(|(i, e)| {
            let s = Series { engine: Some(i), model };
            (s, e)
        });
        gauge(
            out,
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            all.clone().map(|(s, e)| (s, e.running as f64)),
        );
        gauge(
            out,
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            all.clone().map(|(s, e)| (s, e.waiting as f64)),
        );
        {
            let name = "vllm:num_requests_waiting_by_reason";
            header(out, name, "", "Number of requests waiting to be processed, split by why they wait.", "gauge");
            for (s, e) in all.clone() {
                let capacity = e.waiting.saturating_sub(e.waiting_deferred);
                let reason = Some(("reason", Extra::Str("capacity")));
                sample(out, name, "", s, reason, capacity as f64);
            }
            for (s, e) in all.clone() {
                let deferred = e.waiting_deferred as f64;
                let reason = Some(("reason", Extra::Str("deferred")));
                sample(out, name, "", s, reason, deferred);
            }
        }
        gauge(
            out,
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            all.clone().map(|(s, e)| (s, e.kv_cache_usage)),
        );
        let prefix = ["vllm:prefix_cache_queries", "vllm:prefix_cache_hits"];
        self.render_counters(out, model, created, prefix);
        self.render_histograms(out, model, created, false);
        header(out, "vllm:cache_config_info", "", "Information of the LLMEngine CacheConfig", "gauge");
        for i in 0..self.engines.len() {
            self.cache_config_v1(out, i);
        }
        let pod = Series { engine: None, model };
        let rejections = ADMISSION_REASONS.iter().zip(self.admission_rejections).map(|(&reason, n)| (pod, Some(("reason", reason)), n));
        counter(out, "vllm:admission_rejections", "Number of requests rejected by the API server before admission.", created, rejections);
    }

    fn render_v0(&self, out: &mut String, model: &str) {
        let Some(e) = self.engines.first() else {
            return;
        };
        let s = Series { engine: None, model };
        header(out, "vllm:cache_config_info", "", "Information of the LLMEngine CacheConfig", "gauge");
        out.push_str("vllm:cache_config_info{block_size=\"");
        let _ = writeln!(
            out,
            "{}\",cache_dtype=\"auto\",calculate_kv_scales=\"False\",cpu_offload_gb=\"0\",\
             enable_prefix_caching=\"True\",gpu_memory_utilization=\"0.9\",\
             is_attention_free=\"False\",num_cpu_blocks=\"1638\",num_gpu_blocks=\"{}\",\
             num_gpu_blocks_override=\"None\",sliding_window=\"None\",\
             swap_space_bytes=\"4294967296\"}} 1.0",
            self.block_size, self.num_gpu_blocks
        );
        let one = std::iter::once((s, e));
        gauge(
            out,
            "vllm:num_requests_running",
            "Number of requests currently running on GPU.",
            one.clone().map(|(s, e)| (s, e.running as f64)),
        );
        gauge(
            out,
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            one.clone().map(|(s, e)| (s, e.waiting as f64)),
        );
        gauge(out, "vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", one.map(|(s, e)| (s, e.kv_cache_usage)));
        let prefix = ["vllm:gpu_prefix_cache_queries", "vllm:gpu_prefix_cache_hits"];
        self.render_counters(out, model, None, prefix);
        self.render_histograms(out, model, None, true);
    }

    /// The prefix-cache, preemption, token and success counters, shared by
    /// both flavors (only the prefix-cache names differ). Without
    /// `created` the `_created` families are left out, as V0 did.
    fn render_counters(&self, out: &mut String, model: &str, created: Option<f64>, prefix: [&str; 2]) {
        let legacy = created.is_none();
        let engines: &[EngineState] = if legacy { self.engines.get(..1).unwrap_or(&[]) } else { &self.engines };
        let series = |i: usize| Series { engine: (!legacy).then_some(i), model };
        let each = |f: fn(&EngineState) -> u64| engines.iter().enumerate().map(move |(i, e)| (series(i), None, f(e)));
        let (queries_help, hits_help) = if legacy {
            (
                "GPU prefix cache queries, in terms of number of queried tokens.",
                "GPU prefix cache hits, in terms of number of cached tokens.",
            )
        } else {
            ("Prefix cache queries, in terms of number of queried tokens.", "Prefix cache hits, in terms of number of cached tokens.")
        };
        counter(out, prefix[0], queries_help, created, each(|e| e.prefix_cache_queries));
        counter(out, prefix[1], hits_help, created, each(|e| e.prefix_cache_hits));
        counter(out, "vllm:num_preemptions", "Cumulative number of preemption from the engine.", created, each(|e| e.preemptions));
        counter(out, "vllm:prompt_tokens", "Number of prefill tokens processed.", created, each(|e| e.prompt_tokens));
        counter(out, "vllm:generation_tokens", "Number of generation tokens processed.", created, each(|e| e.generation_tokens));
        // vLLM creates these children reason by reason, each for all engines.
        let reasons: &[FinishReason] = if legacy { &V0_FINISH_REASONS } else { &FinishReason::ALL };
        let success = reasons.iter().flat_map(|&r| {
            engines.iter().enumerate().map(move |(i, e)| (series(i), Some(("finished_reason", r.as_str())), e.request_success[r as usize]))
        });
        counter(out, "vllm:request_success", "Count of successfully processed requests.", created, success);
    }

    fn render_histograms(&self, out: &mut String, model: &str, created: Option<f64>, legacy: bool) {
        let engines: &[EngineState] = if legacy { self.engines.get(..1).unwrap_or(&[]) } else { &self.engines };
        let mut family = |name: &str, help: &str, pick: fn(&EngineState) -> &Histogram| {
            let series = engines.iter().enumerate().map(|(i, e)| {
                let s = Series { engine: (!legacy).then_some(i), model };
                (s, pick(e))
            });
            histogram(out, name, help, created, series);
        };
        family("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", |e| &e.iteration_tokens);
        family("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", |e| &e.ttft);
        if legacy {
            family("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", |e| &e.itl);
            family("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", |e| &e.e2e);
        } else {
            family("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", |e| &e.itl);
            family("vllm:request_time_per_output_token_seconds", "Histogram of time_per_output_token_seconds per request.", |e| &e.tpot);
            family("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", |e| &e.e2e);
        }
        family("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", |e| &e.queue_time);
        family("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", |e| &e.inference_time);
        family("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", |e| &e.prefill_time);
        family("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", |e| &e.decode_time);
    }

    /// One `vllm:cache_config_info` series: every CacheConfig field of vLLM
    /// 0.33 as `str(value)`, sorted by name (`engine` falls in the middle).
    fn cache_config_v1(&self, out: &mut String, engine: usize) {
        let _ = writeln!(
            out,
            "vllm:cache_config_info{{block_size=\"{}\",cache_dtype=\"auto\",\
             calculate_kv_scales=\"False\",cpu_kvcache_space_bytes=\"None\",\
             cpu_offload_gb=\"0\",enable_prefix_caching=\"True\",engine=\"{}\",\
             gpu_memory_utilization=\"0.9\",is_attention_free=\"False\",\
             kv_cache_memory_bytes=\"None\",kv_offloading_backend=\"None\",\
             kv_offloading_size=\"None\",kv_sharing_fast_prefill=\"False\",\
             mamba_block_size=\"None\",mamba_cache_dtype=\"auto\",\
             mamba_page_size_padded=\"None\",mamba_ssm_cache_dtype=\"auto\",\
             num_cpu_blocks=\"None\",num_gpu_blocks=\"{}\",num_gpu_blocks_override=\"None\",\
             prefix_caching_hash_algo=\"sha256\",sliding_window=\"None\",swap_space=\"4\"}} 1.0",
            self.block_size, engine, self.num_gpu_blocks
        );
    }
}

/// `# HELP` and `# TYPE` lines (help text is ASCII without backslashes or
/// newlines here, so prometheus_client's escaping is a no-op).
fn header(out: &mut String, name: &str, suffix: &str, help: &str, kind: &str) {
    let _ = write!(out, "# HELP {name}{suffix} {help}\n# TYPE {name}{suffix} {kind}\n");
}

/// The value of the one label a family adds to `engine` and `model_name`.
#[derive(Clone, Copy)]
enum Extra<'a> {
    /// Needs escaping.
    Str(&'a str),
    /// Known to need none (a histogram `le`).
    Raw(&'a str),
}

impl Extra<'_> {
    fn push(self, key: &str, out: &mut String) {
        out.push_str(key);
        out.push_str("=\"");
        match self {
            Extra::Str(v) => push_label_value(out, v),
            Extra::Raw(v) => out.push_str(v),
        }
        out.push('"');
    }
}

/// One sample line. Labels come out sorted: `engine` < `finished_reason` <
/// `le` < `model_name` < `reason`, the only names used here.
fn sample(out: &mut String, name: &str, suffix: &str, s: Series<'_>, extra: Option<(&str, Extra<'_>)>, value: f64) {
    out.push_str(name);
    out.push_str(suffix);
    out.push('{');
    if let Some(engine) = s.engine {
        out.push_str("engine=\"");
        match u8::try_from(engine) {
            Ok(d @ 0..=9) => out.push(char::from(b'0' + d)),
            _ => {
                let _ = write!(out, "{engine}");
            }
        }
        out.push_str("\",");
    }
    let extra_after = match extra {
        Some((k, v)) if k < "model_name" => {
            v.push(k, out);
            out.push(',');
            None
        }
        other => other,
    };
    out.push_str("model_name=\"");
    out.push_str(s.model);
    out.push('"');
    if let Some((k, v)) = extra_after {
        out.push(',');
        v.push(k, out);
    }
    out.push_str("} ");
    prom_float(value, out);
    out.push('\n');
}

fn gauge<'a>(out: &mut String, name: &str, help: &str, series: impl Iterator<Item = (Series<'a>, f64)>) {
    header(out, name, "", help, "gauge");
    for (s, v) in series {
        sample(out, name, "", s, None, v);
    }
}

/// A counter family: `<name>_total` lines, then (when `created` is given)
/// the `<name>_created` gauge family prometheus_client appends.
fn counter<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    created: Option<f64>,
    series: impl Iterator<Item = (Series<'a>, Option<(&'a str, &'a str)>, u64)> + Clone,
) {
    header(out, name, "_total", help, "counter");
    for (s, extra, v) in series.clone() {
        let extra = extra.map(|(k, v)| (k, Extra::Str(v)));
        sample(out, name, "_total", s, extra, v as f64);
    }
    if let Some(t) = created {
        header(out, name, "_created", help, "gauge");
        for (s, extra, _) in series {
            let extra = extra.map(|(k, v)| (k, Extra::Str(v)));
            sample(out, name, "_created", s, extra, t);
        }
    }
}

/// A histogram family: per series cumulative `_bucket` lines (bounds
/// printed like Python floats, `+Inf` last), `_count`, `_sum`; then the
/// `_created` family when `created` is given.
fn histogram<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    created: Option<f64>,
    series: impl Iterator<Item = (Series<'a>, &'a Histogram)> + Clone,
) {
    header(out, name, "", help, "histogram");
    for (s, h) in series.clone() {
        let mut acc = 0u64;
        for (i, &n) in h.counts.iter().enumerate() {
            acc += n;
            let le = Extra::Raw(h.le(i));
            sample(out, name, "_bucket", s, Some(("le", le)), acc as f64);
        }
        sample(out, name, "_count", s, None, acc as f64);
        sample(out, name, "_sum", s, None, h.sum);
    }
    if let Some(t) = created {
        header(out, name, "_created", help, "gauge");
        for (s, _) in series {
            sample(out, name, "_created", s, None, t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Value of the first sample line starting with `prefix` (name and
    /// labels, up to the space before the value).
    fn value_of(body: &str, prefix: &str) -> Option<f64> {
        body.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit_once(' ')).and_then(|(_, v)| v.parse().ok())
    }

    #[test]
    fn histogram_observe_puts_values_in_the_first_bucket_at_or_above() {
        let mut h = Histogram::new(&[0.5, 1.0, 2.5]);
        h.observe(0.5); // on the bound: `le` is inclusive
        h.observe(0.7);
        h.observe(1.0);
        h.observe(3.0); // +Inf
        h.observe_n(0.1, 3);
        h.observe(f64::NAN); // dropped
        assert_eq!(h.counts(), &[4, 2, 0, 1]);
        assert_eq!(h.count(), 7);
        assert!((h.sum() - (0.5 + 0.7 + 1.0 + 3.0 + 0.3)).abs() < 1e-12);
    }

    #[test]
    fn histogram_renders_cumulative_buckets_count_sum_created() {
        let mut pod = VllmPod::new("m", 1);
        pod.created_unix = 1_795_461_781.082_79;
        let e = &mut pod.engines[0];
        e.e2e.observe(0.4);
        e.e2e.observe(0.4);
        e.e2e.observe(9.0);
        e.e2e.observe(10_000.0);
        let mut out = String::new();
        pod.render(&mut out);
        let lines: Vec<&str> = out.lines().filter(|l| l.contains("vllm:e2e_request_latency_seconds")).collect();
        assert_eq!(lines[0], "# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.");
        assert_eq!(lines[1], "# TYPE vllm:e2e_request_latency_seconds histogram");
        assert_eq!(lines[2], "vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"0.3\",model_name=\"m\"} 0.0");
        assert_eq!(lines[3], "vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"0.5\",model_name=\"m\"} 2.0");
        assert!(lines.contains(&"vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"10.0\",model_name=\"m\"} 3.0"));
        assert!(lines.contains(&"vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"7680.0\",model_name=\"m\"} 3.0"));
        let n = LATENCY_BUCKETS.len();
        assert_eq!(lines[2 + n], "vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"m\"} 4.0");
        assert_eq!(lines[3 + n], "vllm:e2e_request_latency_seconds_count{engine=\"0\",model_name=\"m\"} 4.0");
        assert_eq!(lines[4 + n], "vllm:e2e_request_latency_seconds_sum{engine=\"0\",model_name=\"m\"} 10009.8");
        assert_eq!(lines[5 + n], "# HELP vllm:e2e_request_latency_seconds_created Histogram of e2e request latency in seconds.");
        assert_eq!(lines[6 + n], "# TYPE vllm:e2e_request_latency_seconds_created gauge");
        assert_eq!(lines[7 + n], "vllm:e2e_request_latency_seconds_created{engine=\"0\",model_name=\"m\"} 1.79546178108279e+09");
    }

    #[test]
    fn counters_are_monotonic_across_renders() {
        let mut pod = VllmPod::new("m", 2);
        let mut last = [0.0f64; 3];
        let mut out = String::new();
        for step in 1..=50u64 {
            for e in &mut pod.engines {
                e.finish_request(&FinishedRequest {
                    prompt_tokens: 100 * step,
                    generation_tokens: 7 * step,
                    queue_s: 0.05,
                    prefill_s: 0.1,
                    decode_s: 0.03 * (7 * step) as f64,
                    reason: FinishReason::Stop,
                });
            }
            out.clear();
            pod.render(&mut out);
            let now = [
                value_of(&out, "vllm:generation_tokens_total{engine=\"1\",").unwrap_or(-1.0),
                value_of(&out, "vllm:prompt_tokens_total{engine=\"0\",").unwrap_or(-1.0),
                value_of(&out, "vllm:inter_token_latency_seconds_count{engine=\"0\",").unwrap_or(-1.0),
            ];
            for (a, b) in last.iter().zip(now) {
                assert!(b > *a, "counter went from {a} to {b}");
            }
            last = now;
        }
        // 7 * (1 + ... + 50) tokens, one fewer gap than tokens per request.
        assert_eq!(last[0], 7.0 * 1275.0);
        assert_eq!(last[2], 7.0 * 1275.0 - 50.0);
    }

    #[test]
    fn request_success_is_reason_major() {
        let mut pod = VllmPod::new("m", 2);
        pod.engines[1].request_success[FinishReason::Length as usize] = 3;
        let mut out = String::new();
        pod.render(&mut out);
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("vllm:request_success_total{")).collect();
        assert_eq!(lines.len(), 10);
        assert_eq!(lines[0], "vllm:request_success_total{engine=\"0\",finished_reason=\"stop\",model_name=\"m\"} 0.0");
        assert_eq!(lines[3], "vllm:request_success_total{engine=\"1\",finished_reason=\"length\",model_name=\"m\"} 3.0");
    }

    #[test]
    fn waiting_by_reason_splits_waiting() {
        let mut pod = VllmPod::new("m", 1);
        pod.engines[0].waiting = 5;
        pod.engines[0].waiting_deferred = 2;
        let mut out = String::new();
        pod.render(&mut out);
        let p = "vllm:num_requests_waiting_by_reason{engine=\"0\",model_name=\"m\",reason=";
        assert_eq!(value_of(&out, &format!("{p}\"capacity\"")), Some(3.0));
        assert_eq!(value_of(&out, &format!("{p}\"deferred\"")), Some(2.0));
    }

    #[test]
    fn legacy_has_no_engine_label_and_no_created() {
        let mut pod = VllmPod::new("m", 2);
        pod.flavor = VllmFlavor::LegacyV0;
        pod.engines[0].kv_cache_usage = 0.25;
        let mut out = String::new();
        pod.render(&mut out);
        assert!(!out.contains("engine="));
        assert!(!out.contains("_created"));
        assert!(!out.contains("vllm:kv_cache_usage_perc"));
        assert_eq!(value_of(&out, "vllm:gpu_cache_usage_perc{"), Some(0.25));
        assert!(out.contains("# TYPE vllm:time_per_output_token_seconds histogram\n"));
    }

    #[test]
    fn render_appends() {
        let pod = VllmPod::new("m", 1);
        let mut out = String::from("x\n");
        pod.render(&mut out);
        assert!(out.starts_with("x\n# HELP vllm:num_requests_running "));
        assert!(out.ends_with('\n'));
    }
}

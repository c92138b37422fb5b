//! Parsing cost of a realistic vLLM `/metrics` body (two engines, about 75 KB).
//!
//! Why: the scaler scrapes every vLLM pod each round, so the parser's cost multiplies by the fleet
//! size. Groups: (a) the scaler's focused visitor, (b) a visitor wanting every line, (c) the
//! focused visitor fed in 16 KiB chunks as an HTTP body arrives, (d) prometheus-parse 0.2.5 on the
//! same body with `vllm:` renamed to `vllm_` (it cannot read colons at all). A counting global
//! allocator prints the allocations of one parse of each, once.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llm_scaler::read::exposition::{self, Limits, Sample, StreamParser, Visitor};

/// Counts every allocation (and reallocation) so the bench can show allocations per parse.
struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vllm-0.33-two-engines.prom");

const CHUNK: usize = 16 * 1024;

/// What the scaler reads from one vLLM body, summed over engines.
#[derive(Debug, Default)]
struct ScalerView {
    waiting: f64,
    running: f64,
    kv_usage_max: f64,
    prompt_tokens: f64,
    generation_tokens: f64,
    preemptions: f64,
    kv_capacity_tokens: f64,
    e2e_buckets: [(f64, f64); 32],
    e2e_bucket_len: usize,
    e2e_count: f64,
    e2e_sum: f64,
}

impl ScalerView {
    /// Adds a bucket count to the cumulative count for its upper bound.
    fn add_bucket(&mut self, le: f64, count: f64) {
        let used = self.e2e_bucket_len.min(self.e2e_buckets.len());
        if let Some(slot) = self.e2e_buckets[..used].iter_mut().find(|(b, _)| *b == le) {
            slot.1 += count;
        } else if let Some(slot) = self.e2e_buckets.get_mut(used) {
            *slot = (le, count);
            self.e2e_bucket_len += 1;
        }
    }
}

impl Visitor for ScalerView {
    fn wants(&mut self, name: &str) -> bool {
        matches!(
            name,
            "vllm:num_requests_waiting"
                | "vllm:num_requests_running"
                | "vllm:kv_cache_usage_perc"
                | "vllm:gpu_cache_usage_perc"
                | "vllm:prompt_tokens_total"
                | "vllm:generation_tokens_total"
                | "vllm:num_preemptions_total"
                | "vllm:cache_config_info"
                | "vllm:e2e_request_latency_seconds_bucket"
                | "vllm:e2e_request_latency_seconds_count"
                | "vllm:e2e_request_latency_seconds_sum"
        )
    }

    fn sample(&mut self, s: &Sample<'_>) {
        let label = |name| s.label(name).and_then(|v| v.as_f64()).unwrap_or(0.0);
        match s.name {
            "vllm:num_requests_waiting" => self.waiting += s.value,
            "vllm:num_requests_running" => self.running += s.value,
            "vllm:kv_cache_usage_perc" | "vllm:gpu_cache_usage_perc" => {
                self.kv_usage_max = self.kv_usage_max.max(s.value);
            }
            "vllm:prompt_tokens_total" => self.prompt_tokens += s.value,
            "vllm:generation_tokens_total" => self.generation_tokens += s.value,
            "vllm:num_preemptions_total" => self.preemptions += s.value,
            "vllm:cache_config_info" => {
                self.kv_capacity_tokens += label("num_gpu_blocks") * label("block_size");
            }
            "vllm:e2e_request_latency_seconds_bucket" => {
                if let Some(le) = s.label("le").and_then(|v| v.as_f64()) {
                    self.add_bucket(le, s.value);
                }
            }
            "vllm:e2e_request_latency_seconds_count" => self.e2e_count += s.value,
            "vllm:e2e_request_latency_seconds_sum" => self.e2e_sum += s.value,
            _ => {}
        }
    }
}

/// A generic consumer: wants every sample and touches every label.
#[derive(Debug, Default)]
struct Everything {
    samples: u64,
    label_bytes: usize,
    value_sum: f64,
}

impl Visitor for Everything {
    fn wants(&mut self, _name: &str) -> bool {
        true
    }

    fn sample(&mut self, s: &Sample<'_>) {
        self.samples += 1;
        self.value_sum += s.value;
        self.label_bytes += s.labels().map(|(n, v)| n.len() + v.raw().len()).sum::<usize>();
    }
}

fn load_body() -> Vec<u8> {
    match std::fs::read(FIXTURE) {
        Ok(body) => body,
        Err(e) => panic!("cannot read {FIXTURE}: {e}"),
    }
}

fn parse_focused(body: &[u8]) -> ScalerView {
    let mut view = ScalerView::default();
    if let Err(e) = exposition::parse(body, &mut view) {
        panic!("fixture must parse: {e}");
    }
    view
}

fn parse_everything(body: &[u8]) -> Everything {
    let mut all = Everything::default();
    if let Err(e) = exposition::parse(body, &mut all) {
        panic!("fixture must parse: {e}");
    }
    all
}

fn parse_chunked(parser: &mut StreamParser, body: &[u8]) -> ScalerView {
    let mut view = ScalerView::default();
    parser.reset();
    for chunk in body.chunks(CHUNK) {
        if let Err(e) = parser.feed(chunk, &mut view) {
            panic!("fixture must parse: {e}");
        }
    }
    if let Err(e) = parser.finish(&mut view) {
        panic!("fixture must parse: {e}");
    }
    view
}

fn parse_prometheus_parse(text: &str) -> prometheus_parse::Scrape {
    match prometheus_parse::Scrape::parse(text.lines().map(|l| Ok::<_, io::Error>(l.to_owned()))) {
        Ok(scrape) => scrape,
        Err(e) => panic!("prometheus-parse failed: {e}"),
    }
}

/// Allocations made while running `f` once.
fn allocations<T>(f: impl FnOnce() -> T) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    black_box(f());
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

fn report_allocations(body: &[u8], renamed: &str) {
    let mut parser = StreamParser::new(Limits::default());
    parse_chunked(&mut parser, body); // warm the carry buffer, as a long-lived scraper would
    let view = parse_focused(body);
    let all = parse_everything(body);
    let lines = body.iter().filter(|&&b| b == b'\n').count();
    eprintln!(
        "body: {} bytes, {lines} lines, {} samples; focused view: waiting={} running={} kv_max={} \
         e2e_count={} buckets={}",
        body.len(),
        all.samples,
        view.waiting,
        view.running,
        view.kv_usage_max,
        view.e2e_count,
        view.e2e_bucket_len
    );
    eprintln!(
        "allocations per parse: (a) focused {}, (b) every line {}, (c) 16 KiB chunks (reused \
         parser) {}, (d) prometheus-parse {}",
        allocations(|| parse_focused(body)),
        allocations(|| parse_everything(body)),
        allocations(|| parse_chunked(&mut parser, body)),
        allocations(|| parse_prometheus_parse(renamed)),
    );
}

fn bench_parse(c: &mut Criterion) {
    let body = load_body();
    let renamed = String::from_utf8_lossy(&body).replace("vllm:", "vllm_");
    report_allocations(&body, &renamed);

    let mut group = c.benchmark_group("vllm_two_engines");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("a_focused", |b| b.iter(|| parse_focused(black_box(&body))));
    group.bench_function("b_every_line", |b| b.iter(|| parse_everything(black_box(&body))));
    let mut parser = StreamParser::new(Limits::default());
    group.bench_function("c_focused_16k_chunks", |b| b.iter(|| parse_chunked(&mut parser, black_box(&body))));
    group.bench_function("d_prometheus_parse_renamed", |b| b.iter(|| parse_prometheus_parse(black_box(&renamed))));
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);

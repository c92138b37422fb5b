#!/usr/bin/env python3
"""Generate the /metrics test fixtures under tests/fixtures/.

Why this exists: the scaler parses bodies that vLLM renders with the PyPI
`prometheus_client` library, so the vLLM fixtures are rendered by that very
library (not hand-written) to get its exact shape: HELP/TYPE lines, sorted
labels, `_total` + `_created` for counters, histogram `le` strings, Python
float formatting, multi-process merge order.  The values are invented but
plausible and reproducible (fixed seed, fake clock, fake /proc).

Requires: Python >= 3.9 and prometheus_client == 0.26.0
(`pip install prometheus_client==0.26.0`).  Other versions may shift the
output (e.g. 0.26 formats big floats as `1.79546178108279e+09`).

dcgm-exporter bodies are Go-rendered, so they are produced with plain string
formatting following docs/metrics.md section 2.

Usage (writes every fixture, deterministically):
    python3 scripts/gen_vllm_fixture.py --all tests/fixtures

or a single vLLM body to stdout:
    python3 scripts/gen_vllm_fixture.py --flavor v1 --engines 2 \
        --model meta-llama/Llama-3.1-70B-Instruct --seed 33
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import time

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    generate_latest,
    values,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

EXPECTED_PROMETHEUS_CLIENT = "0.26.0"

# ---------------------------------------------------------------------------
# Buckets: vLLM 0.33 defaults (docs/metrics.md section 1).
LATENCY_BUCKETS = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
                   40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]
TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]
ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
               2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
ITERATION_TOKEN_BUCKETS = [float(2 ** i) for i in range(15)]  # 1 .. 16384

# prometheus-fastapi-instrumentator defaults, as mounted by vLLM's API server.
HTTP_LOWR_BUCKETS = [0.1, 0.5, 1.0]
HTTP_HIGHR_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0,
                      2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 7.5, 10.0, 30.0, 60.0]

V1_FINISH_REASONS = ["stop", "length", "abort", "error", "repetition"]
V0_FINISH_REASONS = ["stop", "length", "abort"]
WAITING_REASONS = ["capacity", "deferred"]
ADMISSION_REASONS = ["queue_full", "kv_cache_full"]

# Boot time of the fake node and start of the fake API server process.
BTIME = 1795400000
PROCESS_START = 1795461712.34
CLOCK_START = 1795461781.0827916  # when the stat loggers register (after weight load)


class FakeClock:
    """Deterministic stand-in for time.time(): `_created` values and
    multi-process `mostrecent` timestamps come from it."""

    def __init__(self, start):
        self.now = start

    def __call__(self):
        self.now += 0.000137
        return self.now


class FakePlatform:
    """What vLLM images run (CPython 3.12), independent of the generating host."""

    @staticmethod
    def python_version_tuple():
        return ("3", "12", "11")

    @staticmethod
    def python_version():
        return "3.12.11"

    @staticmethod
    def python_implementation():
        return "CPython"

    @staticmethod
    def system():
        return "Linux"


class FakeGC:
    """Fixed gc.get_stats() so python_gc_* lines are reproducible."""

    @staticmethod
    def get_stats():
        return [
            {"collections": 18234, "collected": 1873312, "uncollectable": 0},
            {"collections": 1657, "collected": 402017, "uncollectable": 0},
            {"collections": 93, "collected": 86213, "uncollectable": 0},
        ]


def fake_proc(root):
    """A minimal /proc tree for ProcessCollector (values of a 70B API server)."""
    pid = "1"
    os.makedirs(os.path.join(root, pid, "fd"))
    with open(os.path.join(root, "stat"), "w") as f:
        f.write("cpu  1 2 3 4\nbtime %d\n" % BTIME)
    ticks = 100
    starttime = int(round((PROCESS_START - BTIME) * ticks))
    utime, stime = 7421833, 1208811
    vsize, rss_pages = 187_492_315_136, 1_843_211
    fields = ["S", "0", "1", "1", "0", "-1", "4194560", "0", "0", "0", "0",
              str(utime), str(stime), "0", "0", "20", "0", "617", "0",
              str(starttime), str(vsize), str(rss_pages)]
    with open(os.path.join(root, pid, "stat"), "w") as f:
        f.write("1 (python3) " + " ".join(fields) + " 0 0 0\n")
    with open(os.path.join(root, pid, "limits"), "w") as f:
        f.write("Limit                     Soft Limit           Hard Limit           Units\n")
        f.write("Max open files            1048576              1048576              files\n")
    for i in range(412):
        open(os.path.join(root, pid, "fd", str(i)), "w").close()
    return pid


def add_default_collectors(registry, proc_root):
    """GC, platform and process collectors in prometheus_client's own order."""
    import prometheus_client.gc_collector as gcmod
    gcmod.gc = FakeGC
    GCCollector(registry=registry)
    PlatformCollector(registry=registry, platform=FakePlatform)
    pid = fake_proc(proc_root)
    pc = ProcessCollector(registry=None, pid=lambda: pid, proc=proc_root)
    pc._ticks = 100.0  # host-independent
    pc._pagesize = 4096
    registry.register(pc)


# ---------------------------------------------------------------------------
# Simulated load.

class EngineLoad:
    """Everything one engine has seen since start, drawn from a seeded RNG."""

    def __init__(self, rng, requests, finish_reasons, busy):
        self.requests = []
        for _ in range(requests):
            prompt = max(8, int(rng.lognormvariate(6.9, 0.8)))      # ~1000 tokens
            out = max(2, min(4096, int(rng.lognormvariate(5.5, 0.7))))  # ~250 tokens
            queue = rng.expovariate(1 / 0.12) if rng.random() < 0.7 else rng.expovariate(1 / 2.5)
            prefill = prompt / rng.uniform(6000, 14000)
            itl_mean = rng.uniform(0.028, 0.055)
            itls = [max(0.004, rng.gauss(itl_mean, itl_mean / 4)) if rng.random() > 0.01
                    else rng.uniform(0.2, 1.2) for _ in range(out - 1)]
            decode = sum(itls)
            r = rng.random()
            reason = finish_reasons[0] if r < 0.85 else (
                finish_reasons[1] if r < 0.98 else finish_reasons[2])
            self.requests.append((prompt, out, queue, prefill, itls, decode, reason))
        self.prompt_tokens = sum(r[0] for r in self.requests)
        self.generation_tokens = sum(r[1] for r in self.requests)
        self.prefix_queries = self.prompt_tokens
        self.prefix_hits = int(self.prompt_tokens * rng.uniform(0.35, 0.55)) // 16 * 16
        self.preemptions = rng.randint(3, 40) if busy else 0
        total = self.prompt_tokens + self.generation_tokens
        self.steps = []
        while total > 0:
            # Mostly decode steps (one token per running request), now and
            # then a step carrying a chunked prefill.
            n = int(rng.lognormvariate(3.5, 0.35)) if rng.random() > 0.035 else rng.randint(512, 8192)
            n = max(1, min(n, total))
            self.steps.append(n)
            total -= n
        self.running = rng.randint(24, 64) if busy else 0
        self.waiting = rng.randint(2, 9) if busy else 0
        self.waiting_deferred = rng.randint(0, min(2, self.waiting))
        self.kv = round(rng.uniform(0.55, 0.9), 4) if busy else 0.0


def plausible_loads(engines, seed, finish_reasons, requests=2400):
    rng = random.Random(seed)
    return [EngineLoad(rng, requests + 137 * i, finish_reasons, busy=True) for i in range(engines)]


def cache_config_v1(block_size, num_gpu_blocks):
    """vLLM's CacheConfig.metrics_info(): every field as str(value)."""
    return {
        "block_size": str(block_size),
        "gpu_memory_utilization": "0.9",
        "swap_space": "4",
        "cache_dtype": "auto",
        "is_attention_free": "False",
        "num_gpu_blocks_override": "None",
        "sliding_window": "None",
        "enable_prefix_caching": "True",
        "prefix_caching_hash_algo": "sha256",
        "cpu_offload_gb": "0",
        "calculate_kv_scales": "False",
        "cpu_kvcache_space_bytes": "None",
        "mamba_page_size_padded": "None",
        "mamba_block_size": "None",
        "mamba_cache_dtype": "auto",
        "mamba_ssm_cache_dtype": "auto",
        "kv_sharing_fast_prefill": "False",
        "kv_cache_memory_bytes": "None",
        "kv_offloading_size": "None",
        "kv_offloading_backend": "None",
        "num_gpu_blocks": str(num_gpu_blocks),
        "num_cpu_blocks": "None",
    }


def cache_config_v0(block_size, num_gpu_blocks):
    """The shorter CacheConfig of the V0-era releases."""
    return {
        "block_size": str(block_size),
        "gpu_memory_utilization": "0.9",
        "swap_space_bytes": "4294967296",
        "cache_dtype": "auto",
        "is_attention_free": "False",
        "num_gpu_blocks_override": "None",
        "sliding_window": "None",
        "enable_prefix_caching": "True",
        "cpu_offload_gb": "0",
        "calculate_kv_scales": "False",
        "num_gpu_blocks": str(num_gpu_blocks),
        "num_cpu_blocks": "1638",
    }


def observe_requests(h, loads, engine_labels):
    """Fill the per-request histograms of every engine."""
    for load, labels in zip(loads, engine_labels):
        for prompt, out, queue, prefill, itls, decode, _ in load.requests:
            h["ttft"].labels(*labels).observe(queue + prefill + (itls[0] if itls else 0.0) * 0.1)
            tpot = decode / (out - 1)
            if "itl" in h:
                for x in itls:
                    h["itl"].labels(*labels).observe(x)
            if "tpot_req" in h:
                h["tpot_req"].labels(*labels).observe(tpot)
            h["e2e"].labels(*labels).observe(queue + prefill + decode)
            h["queue"].labels(*labels).observe(queue)
            h["inference"].labels(*labels).observe(prefill + decode)
            h["prefill"].labels(*labels).observe(prefill)
            h["decode"].labels(*labels).observe(decode)
        for n in load.steps:
            h["iter"].labels(*labels).observe(n)


def register_vllm_v1(reg, model, loads, block_size, num_gpu_blocks, multiproc=False,
                     set_gauges=True):
    """The families of vLLM 0.33's V1 PrometheusStatLogger, in its order."""
    ln = ["model_name", "engine"]
    engines = [(model, str(i)) for i in range(len(loads))]
    gkw = (lambda mode: {"multiprocess_mode": mode}) if multiproc else (lambda mode: {})

    # Multi-process mode: running/waiting keep the old default mode "all",
    # which adds a `pid` label (what older releases exposed).
    running = Gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
                    ln, registry=reg, **gkw("all"))
    waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
                    ln, registry=reg, **gkw("all"))
    by_reason = Gauge("vllm:num_requests_waiting_by_reason",
                      "Number of requests waiting to be processed, split by why they wait.",
                      ln + ["reason"], registry=reg, **gkw("mostrecent"))
    kv = Gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
               ln, registry=reg, **gkw("mostrecent"))
    pq = Counter("vllm:prefix_cache_queries",
                 "Prefix cache queries, in terms of number of queried tokens.", ln, registry=reg)
    ph = Counter("vllm:prefix_cache_hits",
                 "Prefix cache hits, in terms of number of cached tokens.", ln, registry=reg)
    pre = Counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.",
                  ln, registry=reg)
    pt = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", ln, registry=reg)
    gt = Counter("vllm:generation_tokens", "Number of generation tokens processed.", ln, registry=reg)
    succ = Counter("vllm:request_success", "Count of successfully processed requests.",
                   ln + ["finished_reason"], registry=reg)
    h = {
        "iter": Histogram("vllm:iteration_tokens_total",
                          "Histogram of number of tokens per engine_step.", ln,
                          buckets=ITERATION_TOKEN_BUCKETS, registry=reg),
        "ttft": Histogram("vllm:time_to_first_token_seconds",
                          "Histogram of time to first token in seconds.", ln,
                          buckets=TTFT_BUCKETS, registry=reg),
        "itl": Histogram("vllm:inter_token_latency_seconds",
                         "Histogram of inter-token latency in seconds.", ln,
                         buckets=ITL_BUCKETS, registry=reg),
        "tpot_req": Histogram("vllm:request_time_per_output_token_seconds",
                              "Histogram of time_per_output_token_seconds per request.", ln,
                              buckets=ITL_BUCKETS, registry=reg),
        "e2e": Histogram("vllm:e2e_request_latency_seconds",
                         "Histogram of e2e request latency in seconds.", ln,
                         buckets=LATENCY_BUCKETS, registry=reg),
        "queue": Histogram("vllm:request_queue_time_seconds",
                           "Histogram of time spent in WAITING phase for request.", ln,
                           buckets=LATENCY_BUCKETS, registry=reg),
        "inference": Histogram("vllm:request_inference_time_seconds",
                               "Histogram of time spent in RUNNING phase for request.", ln,
                               buckets=LATENCY_BUCKETS, registry=reg),
        "prefill": Histogram("vllm:request_prefill_time_seconds",
                             "Histogram of time spent in PREFILL phase for request.", ln,
                             buckets=LATENCY_BUCKETS, registry=reg),
        "decode": Histogram("vllm:request_decode_time_seconds",
                            "Histogram of time spent in DECODE phase for request.", ln,
                            buckets=LATENCY_BUCKETS, registry=reg),
    }
    # vLLM creates every child at start-up so all series exist with 0.
    for e in engines:
        for m in (running, waiting, kv, pq, ph, pre, pt, gt, *h.values()):
            m.labels(*e)
    for reason in WAITING_REASONS:
        for e in engines:
            by_reason.labels(*e, reason)
    for reason in V1_FINISH_REASONS:
        for e in engines:
            succ.labels(*e, reason)

    for load, e in zip(loads, engines):
        if set_gauges:
            running.labels(*e).set(load.running)
            waiting.labels(*e).set(load.waiting)
            by_reason.labels(*e, "capacity").set(load.waiting - load.waiting_deferred)
            by_reason.labels(*e, "deferred").set(load.waiting_deferred)
            kv.labels(*e).set(load.kv)
        pq.labels(*e).inc(load.prefix_queries)
        ph.labels(*e).inc(load.prefix_hits)
        pre.labels(*e).inc(load.preemptions)
        pt.labels(*e).inc(load.prompt_tokens)
        gt.labels(*e).inc(load.generation_tokens)
        for r in load.requests:
            succ.labels(*e, r[6]).inc()
    observe_requests(h, loads, engines)

    info = Gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
                 list(cache_config_v1(block_size, num_gpu_blocks).keys()) + ["engine"],
                 registry=reg, **gkw("mostrecent"))
    for i in range(len(loads)):
        labels = cache_config_v1(block_size, num_gpu_blocks)
        labels["engine"] = str(i)
        info.labels(**labels).set(1)

    # Frontend (API server) counter: one per pod, no engine label.
    rej = Counter("vllm:admission_rejections",
                  "Number of requests rejected by the API server before admission.",
                  ["model_name", "reason"], registry=reg)
    for reason, n in zip(ADMISSION_REASONS, (31, 0)):
        rej.labels(model, reason).inc(n)


def register_vllm_v0(reg, model, load, block_size, num_gpu_blocks):
    """An old V0-engine pod: model_name only, old names (no `_created`: the
    caller disables them, as V0's metrics.py did)."""
    ln = ["model_name"]
    e = (model,)
    info = Gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig",
                 list(cache_config_v0(block_size, num_gpu_blocks).keys()), registry=reg)
    info.labels(**cache_config_v0(block_size, num_gpu_blocks)).set(1)
    running = Gauge("vllm:num_requests_running", "Number of requests currently running on GPU.",
                    ln, registry=reg)
    waiting = Gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
                    ln, registry=reg)
    kv = Gauge("vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.",
               ln, registry=reg)
    pq = Counter("vllm:gpu_prefix_cache_queries",
                 "GPU prefix cache queries, in terms of number of queried tokens.", ln, registry=reg)
    ph = Counter("vllm:gpu_prefix_cache_hits",
                 "GPU prefix cache hits, in terms of number of cached tokens.", ln, registry=reg)
    pre = Counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.",
                  ln, registry=reg)
    pt = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", ln, registry=reg)
    gt = Counter("vllm:generation_tokens", "Number of generation tokens processed.", ln, registry=reg)
    succ = Counter("vllm:request_success", "Count of successfully processed requests.",
                   ln + ["finished_reason"], registry=reg)
    h = {
        "iter": Histogram("vllm:iteration_tokens_total",
                          "Histogram of number of tokens per engine_step.", ln,
                          buckets=ITERATION_TOKEN_BUCKETS, registry=reg),
        "ttft": Histogram("vllm:time_to_first_token_seconds",
                          "Histogram of time to first token in seconds.", ln,
                          buckets=TTFT_BUCKETS, registry=reg),
        "itl": Histogram("vllm:time_per_output_token_seconds",
                         "Histogram of time per output token in seconds.", ln,
                         buckets=ITL_BUCKETS, registry=reg),
        "e2e": Histogram("vllm:e2e_request_latency_seconds",
                         "Histogram of end to end request latency in seconds.", ln,
                         buckets=LATENCY_BUCKETS, registry=reg),
        "queue": Histogram("vllm:request_queue_time_seconds",
                           "Histogram of time spent in WAITING phase for request.", ln,
                           buckets=LATENCY_BUCKETS, registry=reg),
        "inference": Histogram("vllm:request_inference_time_seconds",
                               "Histogram of time spent in RUNNING phase for request.", ln,
                               buckets=LATENCY_BUCKETS, registry=reg),
        "prefill": Histogram("vllm:request_prefill_time_seconds",
                             "Histogram of time spent in PREFILL phase for request.", ln,
                             buckets=LATENCY_BUCKETS, registry=reg),
        "decode": Histogram("vllm:request_decode_time_seconds",
                            "Histogram of time spent in DECODE phase for request.", ln,
                            buckets=LATENCY_BUCKETS, registry=reg),
    }
    for m in (running, waiting, kv, pq, ph, pre, pt, gt, *h.values()):
        m.labels(*e)
    for reason in V0_FINISH_REASONS:
        succ.labels(*e, reason)
    running.labels(*e).set(load.running)
    waiting.labels(*e).set(load.waiting)
    kv.labels(*e).set(load.kv)
    pq.labels(*e).inc(load.prefix_queries)
    ph.labels(*e).inc(load.prefix_hits)
    pre.labels(*e).inc(load.preemptions)
    pt.labels(*e).inc(load.prompt_tokens)
    gt.labels(*e).inc(load.generation_tokens)
    for r in load.requests:
        succ.labels(*e, r[6]).inc()
    observe_requests(h, [load], [e])


HTTP_TRAFFIC = [
    # handler, method, {status group: requests}
    ("/v1/chat/completions", "POST", {"2xx": 4581, "4xx": 37, "5xx": 31}),
    ("/v1/completions", "POST", {"2xx": 1093, "4xx": 4}),
    ("/v1/models", "GET", {"2xx": 2880}),
    ("/tokenize", "POST", {"2xx": 212}),
    ("/v1/embeddings", "POST", {"4xx": 3}),
]


def register_http(reg, seed, multiproc=False):
    """prometheus-fastapi-instrumentator's default families (vLLM mounts them)."""
    rng = random.Random(seed)
    total = Counter("http_requests", "Total number of requests by method, status and handler.",
                    ["handler", "method", "status"], registry=reg)
    req_size = Summary("http_request_size_bytes",
                       "Content length of incoming requests by handler. Only value of header is "
                       "respected. Otherwise ignored. No percentile calculated. ",
                       ["handler"], registry=reg)
    resp_size = Summary("http_response_size_bytes",
                        "Content length of outgoing responses by handler. Only value of header is "
                        "respected. Otherwise ignored. No percentile calculated. ",
                        ["handler"], registry=reg)
    highr = Histogram("http_request_duration_highr_seconds",
                      "Latency with many buckets but no API specific labels. Made for more "
                      "accurate percentile calculations. ",
                      buckets=HTTP_HIGHR_BUCKETS, registry=reg)
    lowr = Histogram("http_request_duration_seconds",
                     "Latency with only few buckets by handler. Made to be only used if "
                     "aggregation by handler is important. ",
                     ["handler", "method"], buckets=HTTP_LOWR_BUCKETS, registry=reg)
    for handler, method, statuses in HTTP_TRAFFIC:
        for status, n in statuses.items():
            total.labels(handler, method, status).inc(n)
            for _ in range(n):
                if handler.startswith("/v1/c") and status == "2xx":
                    d = rng.lognormvariate(2.0, 0.9)  # streamed generations: seconds
                    size_in, size_out = rng.randint(400, 60000), 0  # streaming: no length
                else:
                    d = rng.expovariate(1 / 0.004)
                    size_in, size_out = rng.randint(0, 2000), rng.randint(60, 900)
                highr.observe(d)
                lowr.labels(handler, method).observe(d)
                req_size.labels(handler).observe(size_in)
                resp_size.labels(handler).observe(size_out)


# ---------------------------------------------------------------------------
# vLLM bodies.

def render_v1(engines, model, seed, block_size=16, num_gpu_blocks=28159):
    prometheus_client.enable_created_metrics()
    time.time = FakeClock(CLOCK_START)
    reg = CollectorRegistry()
    proc_root = tempfile.mkdtemp(prefix="fakeproc")
    try:
        add_default_collectors(reg, proc_root)
        loads = plausible_loads(engines, seed, V1_FINISH_REASONS)
        register_vllm_v1(reg, model, loads, block_size, num_gpu_blocks)
        register_http(reg, seed + 1)
        return generate_latest(reg)
    finally:
        shutil.rmtree(proc_root)


def render_legacy(model, seed, block_size=16, num_gpu_blocks=7341):
    prometheus_client.disable_created_metrics()
    time.time = FakeClock(CLOCK_START)
    reg = CollectorRegistry()
    proc_root = tempfile.mkdtemp(prefix="fakeproc")
    try:
        add_default_collectors(reg, proc_root)
        (load,) = plausible_loads(1, seed, V0_FINISH_REASONS, requests=1800)
        register_vllm_v0(reg, model, load, block_size, num_gpu_blocks)
        register_http(reg, seed + 1)
        return generate_latest(reg)
    finally:
        shutil.rmtree(proc_root)
        prometheus_client.enable_created_metrics()


class SortedMultiProcessCollector(MultiProcessCollector):
    """MultiProcessCollector reads files in glob() order, which depends on the
    file system; sorting them keeps the fixture reproducible."""

    def collect(self):
        import glob
        files = sorted(glob.glob(os.path.join(self._path, "*.db")))
        return self.merge(files, accumulate=True)


def render_multiprocess(engines, model, seed, pids=(1043, 1058), block_size=16,
                        num_gpu_blocks=28159):
    """`--api-server-count 2`: two API server processes write mmap files that
    MultiProcessCollector merges (counters summed, no `_created`, no
    process_*/python_*, histograms `_sum` first)."""
    time.time = FakeClock(CLOCK_START)
    mpdir = tempfile.mkdtemp(prefix="prom_mp")
    saved = values.ValueClass
    try:
        loads = plausible_loads(engines, seed, V1_FINISH_REASONS, requests=1200)
        for n, pid in enumerate(pids):
            # Each API server process saw part of the traffic; the first one
            # publishes the scheduler gauges, the second created them at 0.
            values.ValueClass = values.MultiProcessValue(process_identifier=lambda p=pid: p)
            reg = CollectorRegistry()
            part = [EngineLoad.__new__(EngineLoad) for _ in loads]
            for src, dst in zip(loads, part):
                dst.__dict__.update(src.__dict__)
                dst.requests = src.requests[n::len(pids)]
                dst.steps = src.steps[n::len(pids)]
                for k in ("prompt_tokens", "generation_tokens", "prefix_queries", "prefix_hits",
                          "preemptions"):
                    setattr(dst, k, getattr(src, k) // len(pids))
            old_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = mpdir
            try:
                register_vllm_v1(reg, model, part, block_size, num_gpu_blocks, multiproc=True,
                                 set_gauges=(n == 0))
                register_http(reg, seed + 1 + n)
            finally:
                if old_dir is None:
                    del os.environ["PROMETHEUS_MULTIPROC_DIR"]
                else:
                    os.environ["PROMETHEUS_MULTIPROC_DIR"] = old_dir
        values.ValueClass = saved
        reg = CollectorRegistry()
        SortedMultiProcessCollector(reg, path=mpdir)
        return generate_latest(reg)
    finally:
        values.ValueClass = saved
        shutil.rmtree(mpdir)


# ---------------------------------------------------------------------------
# dcgm-exporter bodies (Go text rendering; docs/metrics.md section 2).

DCGM_FIELDS = [
    # (field, 4.9 name or None, help, integer?, attr)
    ("DCGM_FI_DEV_SM_CLOCK", None, "SM clock frequency (in MHz).", True, "sm_clock"),
    ("DCGM_FI_DEV_MEM_CLOCK", None, "Memory clock frequency (in MHz).", True, "mem_clock"),
    ("DCGM_FI_DEV_MEMORY_TEMP", None, "Memory temperature (in C).", True, "mem_temp"),
    ("DCGM_FI_DEV_GPU_TEMP", None, "GPU temperature (in C).", True, "gpu_temp"),
    ("DCGM_FI_DEV_POWER_USAGE", None, "Power draw (in W).", False, "power_w"),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", None,
     "Total energy consumption since boot (in mJ).", True, "energy_mj"),
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", None, "Total number of PCIe retries.", True, "pcie_replay"),
    ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_GPU_UTIL_RATIO", "GPU utilization (in %).", True, "util"),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", None, "Memory utilization (in %).", True, "mem_copy_util"),
    ("DCGM_FI_DEV_ENC_UTIL", None, "Encoder utilization (in %).", True, "zero"),
    ("DCGM_FI_DEV_DEC_UTIL", None, "Decoder utilization (in %).", True, "zero"),
    ("DCGM_FI_DEV_XID_ERRORS", None, "Value of the last XID error encountered.", True, "zero"),
    ("DCGM_FI_DEV_FB_FREE", None, "Framebuffer memory free (in MiB).", True, "fb_free_mib"),
    ("DCGM_FI_DEV_FB_USED", None, "Framebuffer memory used (in MiB).", True, "fb_used_mib"),
    ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", None,
     "Total number of NVLink bandwidth counters for all lanes.", True, "nvlink_bw"),
    ("DCGM_FI_DEV_VGPU_LICENSE_STATUS", None, "vGPU License status", True, "zero"),
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO",
     "Ratio of time the graphics engine is active.", False, "gr_engine_active"),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_TENSOR_UTIL_RATIO",
     "Ratio of cycles the tensor (HMMA) pipe is active.", False, "tensor_active"),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "DCGM_FI_PROF_DRAM_UTIL_RATIO",
     "Ratio of cycles the device memory interface is active sending or receiving data.",
     False, "dram_active"),
    ("DCGM_FI_PROF_PCIE_TX_BYTES", None, "The rate of data transmitted over the PCIe bus - "
     "including both protocol headers and data payloads - in bytes per second.", True, "pcie_tx"),
    ("DCGM_FI_PROF_PCIE_RX_BYTES", None, "The rate of data received over the PCIe bus - "
     "including both protocol headers and data payloads - in bytes per second.", True, "pcie_rx"),
]

DCGM_HELP_49 = {
    "DCGM_FI_DEV_GPU_UTIL_RATIO": "GPU utilization (ratio).",
    "DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO": "Ratio of time the graphics engine is active.",
    "DCGM_FI_PROF_TENSOR_UTIL_RATIO": "Ratio of cycles the tensor (HMMA) pipe is active.",
    "DCGM_FI_PROF_DRAM_UTIL_RATIO":
        "Ratio of cycles the device memory interface is active sending or receiving data.",
}

# Counters in dcgm-exporter's default-counters.csv.
DCGM_COUNTERS = {"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
                 "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"}

H100_UUIDS = [
    "GPU-7ad09335-aadb-19c3-e3a8-1f0c2d7b9e41",
    "GPU-5bd39b62-4c1e-8a0f-2d6e-93b7a1c40f58",
    "GPU-c2e81f4a-90d3-47b5-a61e-0b8f3d2c7e19",
    "GPU-19f0a7d2-3b6c-4e81-95d0-7c2a8e4f1b63",
    "GPU-e4b7c910-58a2-4d3f-b0e6-2f9c71a8d305",
    "GPU-8d3a0f6e-c714-4b92-8e5d-a1f04c9b7e26",
    "GPU-0f6c2b91-d8e3-45a7-9c1b-6e4d3a0f8b72",
    "GPU-b5a1e84c-2f07-4c6d-83e9-d07b1f5c2a94",
]
H100_BUSES = ["00000000:18:00.0", "00000000:2A:00.0", "00000000:3A:00.0", "00000000:5D:00.0",
              "00000000:9A:00.0", "00000000:AB:00.0", "00000000:BA:00.0", "00000000:DB:00.0"]


def dcgm_gpus():
    """8 H100s: 0-3 held by the TP4 Llama pod (busy decode), 4-5 by another
    pod (lightly loaded), 6-7 idle and unheld."""
    gpus = []
    for i in range(8):
        if i < 4:
            holder = ("vllm", "ai-inference", "vllm-llama-70b-7d9f8-abcde")
            util, gr, dram, tensor = 100, 0.912 - 0.013 * i, 0.734 + 0.011 * i, 0.287 + 0.004 * i
            fb_used, power = 74872 + i, 612.338 - 7.91 * i
        elif i < 6:
            holder = ("vllm", "ai-inference", "vllm-qwen-7b-5c6b4-fghij")
            util, gr, dram, tensor = 37 + 6 * (i - 4), 0.214 + 0.02 * (i - 4), 0.118 + 0.01 * (i - 4), 0.041
            fb_used, power = 73520 + 3 * i, 231.045 + 4.2 * (i - 4)
        else:
            holder = None
            util, gr, dram, tensor = 0, 0.0, 0.0, 0.0
            fb_used, power = 0, 69.872 + 1.3 * (i - 6)
        gpus.append({
            "index": i, "uuid": H100_UUIDS[i], "bus": H100_BUSES[i], "holder": holder,
            "util": util, "gr_engine_active": gr, "dram_active": dram, "tensor_active": tensor,
            "fb_used_mib": fb_used, "fb_free_mib": 81559 - fb_used, "power_w": power,
            "sm_clock": 1980 if util else 345, "mem_clock": 2619, "mem_temp": 41 + i if util else 31,
            "gpu_temp": 62 + i if util > 50 else (44 if util else 29),
            "energy_mj": 4_212_937_112 + 97_313_271 * i, "pcie_replay": 0,
            "mem_copy_util": int(dram * 100), "zero": 0,
            "nvlink_bw": 0, "pcie_tx": 81_932_211 + 1_013 * i if util else 0,
            "pcie_rx": 203_110_876 + 877 * i if util else 0,
        })
    return gpus


def render_dcgm(flavor, hostname="gpu-node-1", model_name="NVIDIA H100 80GB HBM3"):
    # "old" is an older release (driver 550, `Hostname`) run with
    # --use-old-namespace: `uuid`, pod_name/pod_namespace/container_name, and
    # empty pod labels on GPUs no pod holds.
    old = flavor == "old"
    host_label = "Hostname" if flavor in ("4.5", "old") else "hostname"
    uuid_label = "uuid" if old else "UUID"
    drv_label = "DCGM_FI_SYSTEM_DRIVER_VERSION" if flavor == "4.9" else "DCGM_FI_DRIVER_VERSION"
    drv = "550.127.05" if old else "580.159.04"
    if old:
        pod_labels = ("container_name", "pod_namespace", "pod_name")
    else:
        pod_labels = ("container", "namespace", "pod")
    gpus = dcgm_gpus()
    out = []
    for field, field49, help_text, integer, attr in DCGM_FIELDS:
        name = field
        ratio = False
        if flavor == "4.9" and field49:
            name, help_text = field49, DCGM_HELP_49[field49]
            ratio, integer = field == "DCGM_FI_DEV_GPU_UTIL", False
        kind = "counter" if field in DCGM_COUNTERS else "gauge"
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        for g in gpus:
            v = g[attr]
            if ratio:
                v = v / 100.0
            value = str(int(v)) if integer else f"{float(v):.6f}"
            labels = [f'gpu="{g["index"]}"', f'{uuid_label}="{g["uuid"]}"', f'pci_bus_id="{g["bus"]}"',
                      f'device="nvidia{g["index"]}"', f'modelName="{model_name}"',
                      f'{host_label}="{hostname}"', f'{drv_label}="{drv}"']
            if g["holder"]:
                labels += [f'{k}="{v}"' for k, v in zip(pod_labels, g["holder"])]
            elif old:
                labels += [f'{k}=""' for k in pod_labels]
            out.append(f"{name}{{{','.join(labels)}}} {value}\n")
    return "".join(out).encode()


# ---------------------------------------------------------------------------
# Float formatting cases: what the Rust renderer's formatter must reproduce.

def render_float_cases(seed=20260, n=250):
    """`<IEEE bits hex> <repr(v)> <floatToGoString(v)>` per line: random bit
    patterns, metric-like magnitudes, and exact ties between two shortest
    candidates (where the even digit wins)."""
    import struct
    from prometheus_client.utils import floatToGoString
    rng = random.Random(seed)
    vals = [0.0, -0.0, 1.0, 0.1, 1e16, 1e-5, 5e-324, 1.7976931348623157e308]
    for _ in range(n):
        vals.append(struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0])
        vals.append(rng.uniform(0, 10) * 10 ** rng.randint(-8, 20))
        vals.append(float(rng.randint(0, 10 ** 12)))
        vals.append(rng.randint(2 ** 40, 2 ** 56) / 2 ** rng.randint(0, 6))
    out = []
    for v in vals:
        if v != v or v in (float("inf"), float("-inf")):
            continue
        bits = struct.unpack("<Q", struct.pack("<d", v))[0]
        out.append(f"{bits:016x} {v!r} {floatToGoString(v)}\n")
    return "".join(out).encode()


MODEL = "meta-llama/Llama-3.1-70B-Instruct"


def write_all(outdir):
    os.makedirs(outdir, exist_ok=True)
    bodies = {
        "vllm-0.33-two-engines.prom": lambda: render_v1(2, MODEL, seed=33),
        "vllm-0.33-one-engine.prom": lambda: render_v1(1, MODEL, seed=34),
        "vllm-legacy-v0.prom": lambda: render_legacy("meta-llama/Llama-2-13b-chat-hf", seed=6),
        "vllm-multiprocess.prom": lambda: render_multiprocess(2, MODEL, seed=35),
        "dcgm-4.5.prom": lambda: render_dcgm("4.5"),
        "dcgm-4.9.prom": lambda: render_dcgm("4.9"),
        "dcgm-old-namespace.prom": lambda: render_dcgm("old"),
        "py-floats.txt": render_float_cases,
    }
    for name, make in bodies.items():
        body = make()
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(body)
        lines = body.count(b"\n")
        print(f"{name}: {len(body)} bytes, {lines} lines", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", metavar="DIR", help="write every fixture into DIR")
    ap.add_argument("--flavor", choices=["v1", "legacy", "multiprocess", "dcgm-4.5", "dcgm-4.9",
                                         "dcgm-old"], default="v1")
    ap.add_argument("--engines", type=int, default=2)
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--seed", type=int, default=33)
    args = ap.parse_args()
    from importlib.metadata import version
    if version("prometheus_client") != EXPECTED_PROMETHEUS_CLIENT:
        print("warning: fixtures were made with prometheus_client " + EXPECTED_PROMETHEUS_CLIENT,
              file=sys.stderr)
    if args.all:
        write_all(args.all)
        return
    if args.flavor == "v1":
        body = render_v1(args.engines, args.model, args.seed)
    elif args.flavor == "legacy":
        body = render_legacy(args.model, args.seed)
    elif args.flavor == "multiprocess":
        body = render_multiprocess(args.engines, args.model, args.seed)
    else:
        body = render_dcgm(args.flavor.split("-", 1)[1])
    sys.stdout.buffer.write(body)


if __name__ == "__main__":
    main()

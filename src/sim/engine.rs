//! One modelled vLLM replica: continuous batching in virtual time.
//!
//! The engine runs iterations. Each iteration decodes one token for every sequence in the
//! running batch and spends the rest of its token budget (`max_num_batched_tokens`) on prompt
//! chunks of admitted requests, first come first served (vLLM V1 with chunked prefill). An
//! iteration takes
//!
//! ```text
//! tau = base + per_seq * B + per_kv_token * KV + per_prefill_token * P
//! ```
//!
//! with `B` sequences decoding, `KV` tokens held in the KV cache and `P` prompt tokens in the
//! iteration. The four coefficients are a least-squares fit of vLLM's measured TPOT for
//! Llama-3.1-70B FP8 on two H100s (see [`ModelProfile::llama70b_fp8_h100_tp2`] and
//! `docs/simulator.md`).
//!
//! The simulation is event driven, not iteration by iteration: between two events (a prompt
//! finishing, a sequence finishing, the KV cache filling up, an arrival) the batch is constant,
//! so the iteration counter advances linearly and every sequence's finish is known in advance
//! (a heap keyed by the iteration at which it ends). The cost is a few heap operations per
//! request, whatever the batch size, which is what lets a 14-day replay of tens of millions of
//! requests run in minutes.
//!
//! Requests wait in the engine queue until a batch slot (`max_num_seqs`) and room for their
//! prompt in the KV cache are free; a running sequence that needs a KV slot when the cache is
//! full preempts the most recently admitted one, which goes back to the front of the queue and
//! recomputes its prompt and the tokens it had generated (vLLM's recompute preemption).
//! The engine's state and counters live in a [`VllmPod`] so that `render` produces exactly the
//! `/metrics` text a vLLM 0.33 pod would serve.

use std::{
    cmp::{Ordering, Reverse},
    collections::{BinaryHeap, VecDeque},
};

use crate::sim::render::vllm::{FinishReason, FinishedRequest, VllmPod};

use super::workload::Request;

/// The modelled replica: hardware, vLLM settings and the calibrated iteration-time model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelProfile {
    /// Served model (the `model_name` label).
    pub model: String,
    /// Accelerator.
    pub gpu: String,
    /// Tensor parallelism = GPUs per replica.
    pub tp: u32,
    /// `--max-num-seqs`: batch slots.
    pub max_num_seqs: u32,
    /// `--max-num-batched-tokens`: tokens per iteration (decode + prompt chunks).
    pub max_batched_tokens: u32,
    /// KV-cache capacity in tokens (`num_gpu_blocks x block_size`).
    pub kv_capacity_tokens: u64,
    /// KV block size in tokens.
    pub block_size: u64,
    /// Fixed cost of an iteration, seconds.
    pub iter_base_s: f64,
    /// Added per decoding sequence, seconds.
    pub iter_per_seq_s: f64,
    /// Added per token held in the KV cache (attention reads), seconds.
    pub iter_per_kv_token_s: f64,
    /// Added per prompt token computed in the iteration, seconds.
    pub iter_per_prefill_token_s: f64,
}

impl ModelProfile {
    /// Llama-3.1-70B FP8 weights (BF16 KV cache) on 2 x H100 SXM 80GB, vLLM, TP2.
    ///
    /// Iteration model fitted (least squares, 12 rows, every row within 3%) to the vLLM /
    /// Llama-3.1-70B / h100_sxm / fp8 / tp_size 2 rows of
    /// `data/calibration/llm_serving_latency_profiles.csv` with TTFT under 2 s (the three rows
    /// above it are KV-cache exhaustion at 8k prompts x 32-64 sequences, which the capacity
    /// below reproduces instead). KV capacity from memory: 2 x 80 GB x 0.9 minus 70.6 GB of FP8
    /// weights and about 4 GB of activations leaves ~69 GB; at 320 KiB per token (80 layers x 8
    /// KV heads x 128 x 2 x BF16) that is ~210k tokens, consistent with the rows that run out.
    pub fn llama70b_fp8_h100_tp2() -> Self {
        ModelProfile {
            model: "meta-llama/Llama-3.1-70B-Instruct".to_string(),
            gpu: "NVIDIA H100 80GB HBM3".to_string(),
            tp: 2,
            max_num_seqs: 256,
            max_batched_tokens: 8192,
            kv_capacity_tokens: 13_125 * 16,
            block_size: 16,
            iter_base_s: 16.5425e-3,
            iter_per_seq_s: 0.035_973e-3,
            iter_per_kv_token_s: 5.922e-8,
            iter_per_prefill_token_s: 0.069_980e-3,
        }
    }

    /// Iteration time for `b` decoding sequences, `kv` cached tokens and `p` prompt tokens.
    pub fn iteration_s(&self, b: f64, kv: f64, p: f64) -> f64 {
        self.iter_base_s + self.iter_per_seq_s * b + self.iter_per_kv_token_s * kv + self.iter_per_prefill_token_s * p
    }

    /// Steady-state TPOT of a closed loop of `b` concurrent requests of `isl` / `osl` tokens, the
    /// benchmark the calibration rows come from: on average each sequence holds `isl + osl/2`
    /// tokens and each iteration carries `b * isl / osl` prompt tokens.
    pub fn steady_tpot_s(&self, b: f64, isl: f64, osl: f64) -> f64 {
        self.iteration_s(b, b * (isl + osl / 2.0), b * isl / osl)
    }
}

/// A finished (or dropped) request, for the run's statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Done {
    /// Arrival at the gateway.
    pub arrival_s: f64,
    /// First token, seconds after arrival (`None` if dropped before).
    pub ttft_s: Option<f64>,
    /// Mean time per output token after the first (`None` for one-token outputs or drops).
    pub tpot_s: Option<f64>,
    /// Arrival to last token.
    pub e2e_s: f64,
    /// Output tokens.
    pub output: u32,
    /// False when the request was dropped (rejected or aborted at the end of a drain).
    pub completed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Prefill,
    Decode,
    Free,
}

#[derive(Debug, Clone)]
struct Slot {
    arrival: f64,
    input: u32,
    output: u32,
    /// Output tokens produced so far (kept across preemptions).
    generated: u32,
    /// KV tokens reserved at admission (prompt + tokens generated before a preemption).
    ctx: u32,
    admitted_at: f64,
    first_token: f64,
    prefill_left: f64,
    start_v: f64,
    epoch: u32,
    state: State,
}

/// An `f64` ordered for the heap (never NaN here).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ord64(f64);
impl Eq for Ord64 {}
impl PartialOrd for Ord64 {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ord64 {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// What limited a step of the event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Horizon,
    Decode,
    Prefill,
    KvFull,
}

/// One replica's engine.
#[derive(Debug)]
pub struct Replica {
    p: ModelProfile,
    now: f64,
    slots: Vec<Slot>,
    free: Vec<u32>,
    waiting: VecDeque<u32>,
    prefill: VecDeque<u32>,
    prefill_backlog: f64,
    /// Prompt tokens of the iteration in progress (fixed when it starts) and still to compute.
    chunk: f64,
    chunk_left: f64,
    decode: BinaryHeap<Reverse<(Ord64, u32, u32)>>,
    /// Admission order of running requests, `(slot, epoch)`, for preemption (lazy deletion).
    order: VecDeque<(u32, u32)>,
    n_decode: u32,
    /// Decode iterations so far (fractional: the fluid clock of the batch).
    v: f64,
    start_v_sum: f64,
    kv_fixed: f64,
    /// Seconds with a batch running (the GPU duty cycle's numerator).
    pub busy_s: f64,
    /// Prompt tokens computed (including recomputation after preemption).
    pub prompt_tokens: f64,
    /// Output tokens generated.
    pub generation_tokens: f64,
    /// Preemptions so far.
    pub preemptions: u64,
    /// The render state: gauges, counters and histograms as vLLM keeps them.
    pub pod: VllmPod,
}

impl Replica {
    /// An idle replica at time `now`.
    pub fn new(p: &ModelProfile, now: f64) -> Self {
        let mut pod = VllmPod::new(p.model.clone(), 1);
        pod.num_gpu_blocks = p.kv_capacity_tokens / p.block_size.max(1);
        pod.block_size = p.block_size;
        Replica {
            p: p.clone(),
            now,
            slots: Vec::new(),
            free: Vec::new(),
            waiting: VecDeque::new(),
            prefill: VecDeque::new(),
            prefill_backlog: 0.0,
            chunk: 0.0,
            chunk_left: 0.0,
            decode: BinaryHeap::new(),
            order: VecDeque::new(),
            n_decode: 0,
            v: 0.0,
            start_v_sum: 0.0,
            kv_fixed: 0.0,
            busy_s: 0.0,
            prompt_tokens: 0.0,
            generation_tokens: 0.0,
            preemptions: 0,
            pod,
        }
    }

    /// Requests waiting in the engine queue.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Requests in the running batch (prefilling or decoding).
    pub fn running(&self) -> usize {
        self.prefill.len() + self.n_decode as usize
    }

    /// Running requests over batch slots, 0..1 (what the DCGM load figures follow).
    pub fn batch_fill(&self) -> f64 {
        (self.running() as f64 / f64::from(self.p.max_num_seqs.max(1))).min(1.0)
    }

    /// Requests the replica holds.
    pub fn outstanding(&self) -> usize {
        self.waiting() + self.running()
    }

    /// Tokens held in the KV cache.
    pub fn kv_used(&self) -> f64 {
        self.kv_fixed + f64::from(self.n_decode) * self.v - self.start_v_sum
    }

    /// KV-cache usage 0..1.
    pub fn kv_usage(&self) -> f64 {
        (self.kv_used() / self.p.kv_capacity_tokens as f64).clamp(0.0, 1.0)
    }

    /// Virtual time the state is advanced to.
    pub fn now(&self) -> f64 {
        self.now
    }

    /// Hands a request to the engine at `r.arrival_s` (advance to it first).
    pub fn submit(&mut self, r: &Request, arrival_at_gateway: f64) {
        let slot = Slot {
            arrival: arrival_at_gateway,
            input: r.input,
            output: r.output.max(1),
            generated: 0,
            ctx: 0,
            admitted_at: f64::NAN,
            first_token: f64::NAN,
            prefill_left: 0.0,
            start_v: 0.0,
            epoch: 0,
            state: State::Waiting,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.waiting.push_back(idx);
    }

    /// Copies the live gauges and token counters into the render state.
    pub fn sync_gauges(&mut self) {
        let (waiting, running, kv) = (self.waiting() as u64, self.running() as u64, self.kv_usage());
        let (prompt, generated, pre) = (self.prompt_tokens as u64, self.generation_tokens as u64, self.preemptions);
        let e = &mut self.pod.engines[0];
        e.waiting = waiting;
        e.running = running;
        e.kv_cache_usage = kv;
        e.prompt_tokens = prompt;
        e.prefix_cache_queries = prompt;
        e.generation_tokens = generated;
        e.preemptions = pre;
    }

    /// Drops every request still held (end of a drain's grace period): each is reported as not
    /// completed.
    pub fn abort_all(&mut self, done: &mut impl FnMut(Done)) {
        let now = self.now;
        for s in self.slots.iter_mut().filter(|s| s.state != State::Free) {
            let ttft = (!s.first_token.is_nan()).then_some(s.first_token - s.arrival);
            done(Done { arrival_s: s.arrival, ttft_s: ttft, tpot_s: None, e2e_s: now - s.arrival, output: s.output, completed: false });
            s.state = State::Free;
        }
        self.waiting.clear();
        self.prefill.clear();
        self.prefill_backlog = 0.0;
        self.chunk_left = 0.0;
        self.decode.clear();
        self.order.clear();
        self.n_decode = 0;
        self.start_v_sum = 0.0;
        self.kv_fixed = 0.0;
        self.free = (0..self.slots.len() as u32).collect();
    }

    fn admit(&mut self, done: &mut impl FnMut(Done)) {
        let cap = self.p.kv_capacity_tokens as f64;
        while self.running() < self.p.max_num_seqs as usize {
            let Some(&idx) = self.waiting.front() else { break };
            let s = &self.slots[idx as usize];
            let ctx = s.input + s.generated;
            if f64::from(ctx) > cap * 0.99 {
                // Longer than the whole cache: vLLM rejects it.
                self.waiting.pop_front();
                let s = &mut self.slots[idx as usize];
                done(Done {
                    arrival_s: s.arrival,
                    ttft_s: None,
                    tpot_s: None,
                    e2e_s: self.now - s.arrival,
                    output: s.output,
                    completed: false,
                });
                s.state = State::Free;
                self.free.push(idx);
                continue;
            }
            // Admission keeps vLLM's 1% watermark of free blocks.
            if self.kv_used() + f64::from(ctx) > cap * 0.99 {
                break;
            }
            self.waiting.pop_front();
            let s = &mut self.slots[idx as usize];
            s.ctx = ctx;
            s.prefill_left = f64::from(ctx);
            s.state = State::Prefill;
            if s.admitted_at.is_nan() {
                s.admitted_at = self.now;
            }
            self.kv_fixed += f64::from(ctx);
            self.prefill_backlog += f64::from(ctx);
            self.prefill.push_back(idx);
            self.order.push_back((idx, s.epoch));
        }
    }

    fn clean_heap(&mut self) {
        while let Some(Reverse((_, idx, epoch))) = self.decode.peek() {
            let s = &self.slots[*idx as usize];
            if s.state == State::Decode && s.epoch == *epoch {
                break;
            }
            self.decode.pop();
        }
    }

    fn finish(&mut self, idx: u32, done: &mut impl FnMut(Done)) {
        let now = self.now;
        let s = &mut self.slots[idx as usize];
        if s.state == State::Decode {
            self.n_decode -= 1;
            self.start_v_sum -= s.start_v;
        }
        self.kv_fixed -= f64::from(s.ctx);
        if self.n_decode == 0 {
            self.start_v_sum = 0.0;
        }
        s.state = State::Free;
        s.epoch = s.epoch.wrapping_add(1);
        let ttft = s.first_token - s.arrival;
        let gaps = s.output.saturating_sub(1);
        let decode_s = now - s.first_token;
        let tpot = (gaps > 0).then(|| decode_s / f64::from(gaps));
        let queue_s = s.admitted_at - s.arrival;
        self.pod.engines[0].finish_request(&FinishedRequest {
            prompt_tokens: u64::from(s.input),
            generation_tokens: u64::from(s.output),
            queue_s,
            prefill_s: s.first_token - s.admitted_at,
            decode_s,
            reason: FinishReason::Stop,
        });
        done(Done { arrival_s: s.arrival, ttft_s: Some(ttft), tpot_s: tpot, e2e_s: now - s.arrival, output: s.output, completed: true });
        self.free.push(idx);
    }

    /// Preempts the most recently admitted running request.
    fn preempt_newest(&mut self) -> bool {
        while let Some((idx, epoch)) = self.order.pop_back() {
            let v = self.v;
            let s = &mut self.slots[idx as usize];
            if s.epoch != epoch || !matches!(s.state, State::Prefill | State::Decode) {
                continue;
            }
            match s.state {
                State::Prefill => {
                    // The newest running request is the last one admitted, so it is the back of
                    // the prompt queue.
                    if self.prefill.back() == Some(&idx) {
                        self.prefill.pop_back();
                    } else {
                        self.prefill.retain(|&i| i != idx);
                    }
                    self.prefill_backlog -= s.prefill_left;
                }
                _ => {
                    s.generated = (s.generated + (v - s.start_v).max(0.0).floor() as u32).min(s.output.saturating_sub(1));
                    self.n_decode -= 1;
                    self.start_v_sum -= s.start_v;
                    if self.n_decode == 0 {
                        self.start_v_sum = 0.0;
                    }
                }
            }
            self.kv_fixed -= f64::from(s.ctx);
            s.epoch = s.epoch.wrapping_add(1);
            s.state = State::Waiting;
            self.waiting.push_front(idx);
            self.preemptions += 1;
            if self.prefill.is_empty() {
                self.prefill_backlog = 0.0;
            }
            return true;
        }
        false
    }

    /// Runs the engine up to `t_end`, reporting every request that finishes.
    pub fn advance_to(&mut self, t_end: f64, done: &mut impl FnMut(Done)) {
        let cap = self.p.kv_capacity_tokens as f64;
        let budget = f64::from(self.p.max_batched_tokens);
        while self.now < t_end {
            self.admit(done);
            self.clean_heap();
            let b = f64::from(self.n_decode);
            let q = self.prefill_backlog;
            if self.n_decode == 0 && self.prefill.is_empty() {
                self.now = t_end;
                break;
            }
            // An iteration's prompt chunk is fixed when it starts (what the scheduler packed);
            // requests admitted meanwhile join the next one.
            if self.prefill.is_empty() {
                self.chunk_left = 0.0;
            } else if self.chunk_left <= 1e-9 {
                self.chunk = (budget - b).max(1.0).min(q.max(1.0));
                self.chunk_left = self.chunk;
            }
            let p = if self.prefill.is_empty() { 0.0 } else { self.chunk };
            let kv = self.kv_used();
            let tau = self.p.iteration_s(b, kv, p);
            let mut dt = t_end - self.now;
            let mut next = Next::Horizon;
            if let Some(Reverse((Ord64(fv), _, _))) = self.decode.peek() {
                let d = (fv - self.v).max(0.0) * tau;
                if d <= dt {
                    dt = d;
                    next = Next::Decode;
                }
            }
            if let Some(&head) = self.prefill.front() {
                let d = self.slots[head as usize].prefill_left / (p / tau);
                if d <= dt {
                    dt = d;
                    next = Next::Prefill;
                }
                let d = self.chunk_left / (p / tau);
                if d < dt {
                    dt = d;
                    next = Next::Horizon;
                }
            }
            if b > 0.0 {
                let d = ((cap - kv).max(0.0) / b) * tau;
                if d < dt {
                    dt = d;
                    next = Next::KvFull;
                }
            }
            let iters = dt / tau;
            self.v += iters;
            self.generation_tokens += b * iters;
            self.busy_s += dt;
            self.now += dt;
            if let Some(&head) = self.prefill.front() {
                let used = (p * iters).min(self.slots[head as usize].prefill_left);
                self.slots[head as usize].prefill_left -= used;
                self.chunk_left = (self.chunk_left - used).max(0.0);
                self.prefill_backlog = (self.prefill_backlog - used).max(0.0);
                self.prompt_tokens += used;
            }
            match next {
                Next::Horizon => {}
                Next::Decode => {
                    while let Some(&Reverse((Ord64(fv), idx, epoch))) = self.decode.peek() {
                        if fv > self.v + 1e-9 {
                            break;
                        }
                        self.decode.pop();
                        let s = &self.slots[idx as usize];
                        if s.state == State::Decode && s.epoch == epoch {
                            self.finish(idx, done);
                        }
                    }
                }
                Next::Prefill => {
                    if let Some(idx) = self.prefill.pop_front() {
                        if self.prefill.is_empty() {
                            self.prefill_backlog = 0.0;
                        }
                        let now = self.now;
                        let v = self.v;
                        let s = &mut self.slots[idx as usize];
                        s.prefill_left = 0.0;
                        if s.first_token.is_nan() {
                            // The prompt's last chunk produces the first output token.
                            s.first_token = now;
                            s.generated = 1;
                            self.generation_tokens += 1.0;
                        }
                        let remaining = s.output.saturating_sub(s.generated);
                        if remaining == 0 {
                            s.state = State::Prefill;
                            self.finish(idx, done);
                        } else {
                            s.state = State::Decode;
                            s.start_v = v;
                            s.ctx = s.ctx.max(1);
                            // The reserved context grows as the sequence decodes; `ctx` counts
                            // what was reserved at admission, the rest is `v - start_v`.
                            self.n_decode += 1;
                            self.start_v_sum += v;
                            self.decode.push(Reverse((Ord64(v + f64::from(remaining)), idx, s.epoch)));
                        }
                    }
                }
                Next::KvFull => {
                    if !self.preempt_newest() {
                        // Nothing to preempt (cannot happen with b > 0); avoid spinning.
                        self.now = t_end;
                    }
                }
            }
        }
        self.now = self.now.max(t_end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(t: f64, input: u32, output: u32) -> Request {
        Request { arrival_s: t, input, output }
    }

    /// Closed loop: `b` clients each sending the next request as soon as the previous ends.
    fn closed_loop(p: &ModelProfile, b: usize, isl: u32, osl: u32, secs: f64) -> (f64, f64, u64) {
        let mut r = Replica::new(p, 0.0);
        for _ in 0..b {
            r.submit(&req(0.0, isl, osl), 0.0);
        }
        let mut tpots = Vec::new();
        let mut out_tokens = 0u64;
        let mut t = 0.0;
        let step = 0.05;
        while t < secs {
            t += step;
            let mut finished = Vec::new();
            r.advance_to(t, &mut |d| finished.push(d));
            for d in finished {
                if d.arrival_s > secs * 0.2 {
                    tpots.push(d.tpot_s.unwrap());
                    out_tokens += u64::from(d.output);
                }
                r.submit(&req(t, isl, osl), t);
            }
        }
        let mean = tpots.iter().sum::<f64>() / tpots.len() as f64;
        (mean, out_tokens as f64 / (secs * 0.8), r.preemptions)
    }

    #[test]
    fn steady_tpot_matches_calibration_rows() {
        // vLLM, Llama-3.1-70B FP8, H100 TP2, measured TPOT (ms) from the calibration CSV.
        let p = ModelProfile::llama70b_fp8_h100_tp2();
        for (isl, osl, b, tpot_ms) in
            [(1024.0, 1024.0, 4.0, 17.407), (1024.0, 1024.0, 16.0, 19.740), (1024.0, 1024.0, 64.0, 28.769), (8192.0, 1024.0, 16.0, 34.625)]
        {
            let model = p.steady_tpot_s(b, isl, osl) * 1e3;
            assert!((model - tpot_ms).abs() / tpot_ms < 0.03, "{isl}/{osl} x{b}: model {model:.2} ms vs measured {tpot_ms} ms");
        }
    }

    #[test]
    fn simulated_throughput_at_batch_64_matches_the_row() {
        // Row: 1k in / 1k out, 64 concurrent: TPOT 28.77 ms, 1,097.9 output tok/s per GPU (TP2).
        let p = ModelProfile::llama70b_fp8_h100_tp2();
        let (tpot, tok_s, preempt) = closed_loop(&p, 64, 1024, 1024, 600.0);
        assert_eq!(preempt, 0);
        assert!((tpot * 1e3 - 28.77).abs() / 28.77 < 0.06, "TPOT {:.2} ms", tpot * 1e3);
        let per_gpu = tok_s / 2.0;
        assert!((per_gpu - 1097.9).abs() / 1097.9 < 0.08, "{per_gpu:.0} tok/s per GPU");
    }

    #[test]
    fn preempts_when_the_kv_cache_runs_out() {
        // 8k prompts x 32 sequences need ~290k tokens: more than the ~210k the cache holds.
        let p = ModelProfile::llama70b_fp8_h100_tp2();
        let (_, _, preempt) = closed_loop(&p, 32, 8192, 1024, 300.0);
        assert!(preempt > 0);
        // A small cache and long outputs: admitted sequences grow until one must yield.
        let small = ModelProfile { kv_capacity_tokens: 4000, ..p };
        let mut r = Replica::new(&small, 0.0);
        for _ in 0..3 {
            r.submit(&req(0.0, 1000, 2000), 0.0);
        }
        let mut done = Vec::new();
        r.advance_to(10.0, &mut |d| done.push(d));
        assert!(r.preemptions >= 1, "no preemption");
        assert!(r.kv_used() <= 4000.0 + 1.0, "{}", r.kv_used());
        r.advance_to(600.0, &mut |d| done.push(d));
        assert_eq!(done.len(), 3, "every request still finishes");
        assert!(done.iter().all(|d| d.completed));
    }

    #[test]
    fn latency_parts_and_render_state() {
        let p = ModelProfile::llama70b_fp8_h100_tp2();
        let mut r = Replica::new(&p, 0.0);
        r.submit(&req(0.0, 1000, 101), 0.0);
        let mut done = Vec::new();
        r.advance_to(0.01, &mut |d| done.push(d));
        r.sync_gauges();
        assert_eq!((r.pod.engines[0].running, r.pod.engines[0].waiting), (1, 0));
        r.advance_to(10.0, &mut |d| done.push(d));
        let d = done[0];
        // Prefill of 1000 tokens in one chunk: base + 1000 x per-token.
        let ttft = d.ttft_s.unwrap();
        assert!((ttft - p.iteration_s(0.0, 1000.0, 1000.0)).abs() < 1e-3, "{ttft}");
        let tpot = d.tpot_s.unwrap();
        assert!((tpot - p.iteration_s(1.0, 1050.0, 0.0)).abs() < 1e-3, "{tpot}");
        assert!((r.busy_s - d.e2e_s).abs() < 1e-9);
        assert_eq!(r.pod.engines[0].ttft.count(), 1);
        assert!((r.generation_tokens - 101.0).abs() < 1e-6 && (r.prompt_tokens - 1000.0).abs() < 1e-6);
        assert_eq!(r.outstanding(), 0);
    }
}

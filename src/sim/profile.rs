//! The modelled replica types: hardware, vLLM settings and the calibrated iteration-time model
//! of each, selectable by name (`simulate --replica NAME`).
//!
//! The coefficients are constants fitted once, offline, on rows of
//! `data/calibration/llm_serving_latency_profiles.csv` (see [`crate::sim::calibration`] and
//! `docs/replica-model.md`); the server never reads the CSV.

use std::{fmt, str::FromStr};

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
    /// Added once to an iteration that carries prompt tokens, seconds: a mixed batch does not
    /// run as the captured CUDA graph of a decode-only step and pays the prompt's scheduling
    /// and sampling set-up.
    pub iter_prefill_base_s: f64,
    /// From a request's arrival at the pod to the engine's queue, seconds: the API server's
    /// HTTP handling, tokenisation and hand-off to the engine core (part of the TTFT the
    /// client measures, not of the GPU's time).
    pub frontend_s: f64,
}

impl ModelProfile {
    /// Iteration time for `b` decoding sequences, `kv` cached tokens and `p` prompt tokens.
    pub fn iteration_s(&self, b: f64, kv: f64, p: f64) -> f64 {
        let mixed = if p > 0.0 { self.iter_prefill_base_s } else { 0.0 };
        self.iter_base_s + mixed + self.iter_per_seq_s * b + self.iter_per_kv_token_s * kv + self.iter_per_prefill_token_s * p
    }

    /// Steady-state TPOT of a closed loop of `b` concurrent requests of `isl` / `osl` tokens
    /// whose prompts spread evenly over the iterations: on average each sequence holds
    /// `isl + osl/2` tokens and each iteration carries `b * isl / osl` prompt tokens (in
    /// `b / osl` of the iterations, which pay the mixed-batch cost). A closed form for checks;
    /// the calibration itself simulates the benchmark ([`crate::sim::benchmark`]).
    pub fn steady_tpot_s(&self, b: f64, isl: f64, osl: f64) -> f64 {
        let decode_only = ModelProfile { iter_prefill_base_s: 0.0, ..self.clone() };
        decode_only.iteration_s(b, b * (isl + osl / 2.0), b * isl / osl) + self.iter_prefill_base_s * (b / osl).min(1.0)
    }

    /// KV-cache capacity in tokens from memory: what is left of `gpu_memory_utilization` of the
    /// replica's GPU memory after the weights and the activation reserve, over the bytes one
    /// token's keys and values take in every layer, rounded down to whole blocks.
    pub fn kv_tokens_from_memory(m: &KvMemory) -> u64 {
        let free = f64::from(m.gpus) * m.gpu_gb * m.utilization - m.weights_gb - m.activations_gb;
        let per_token = f64::from(m.layers) * f64::from(m.kv_heads) * f64::from(m.head_dim) * 2.0 * m.kv_bytes;
        let tokens = (free.max(0.0) * 1e9 / per_token).floor() as u64;
        tokens / m.block_size * m.block_size
    }
}

impl ModelProfile {
    /// Llama-3.1-70B FP8 weights (BF16 KV cache) on 2 x H100 SXM 80GB, vLLM, TP2.
    ///
    /// Fit (`simulate --replica-fit --replica llama70b-fp8-h100-tp2`, Nelder-Mead, 400 steps,
    /// sum of squared log errors 0.0291): TTFT and TPOT of the 8 fit rows of the vLLM /
    /// Llama-3.1-70B / h100_sxm / fp8 / tp_size 2 rows of
    /// `data/calibration/llm_serving_latency_profiles.csv`, each simulated as its closed-loop
    /// benchmark in the engine ([`crate::sim::calibration::closed_loop`]). Fit rows within
    /// 6 % (TTFT) and 4 % (TPOT) but one (8k/1k x4 TTFT +14 %); validation rows in
    /// `docs/replica-model.md`. The prefill cost is 75 us per prompt token (13.3k tokens/s);
    /// the mixed-batch and front-end terms came out negligible (0.1 ms, 1.1 ms). KV capacity
    /// from memory ([`LLAMA70B_FP8_H100_TP2_MEMORY`]).
    pub fn llama70b_fp8_h100_tp2() -> Self {
        ModelProfile {
            model: "meta-llama/Llama-3.1-70B-Instruct".to_string(),
            gpu: "NVIDIA H100 80GB HBM3".to_string(),
            tp: 2,
            max_num_seqs: 256,
            max_batched_tokens: 8192,
            kv_capacity_tokens: ModelProfile::kv_tokens_from_memory(&LLAMA70B_FP8_H100_TP2_MEMORY),
            block_size: 16,
            iter_base_s: 1.675772e-2,
            iter_per_seq_s: 4.079144e-5,
            iter_per_kv_token_s: 6.635238e-8,
            iter_per_prefill_token_s: 7.517222e-5,
            iter_prefill_base_s: 1.057199e-4,
            frontend_s: 1.111318e-3,
        }
    }

    /// Llama-3.1-8B FP8 on 1 x H200 SXM 141GB, vLLM 0.12.
    ///
    /// **Not validated.** Fit as for the 70B (400 steps, loss 2.53) on the 7 fit rows of the
    /// vLLM / nvidia/Llama-3.1-8B-Instruct-FP8 / h200_sxm / fp8 / tp_size 1 rows (the only vLLM
    /// rows of an 8B on one GPU; there are none on H100), measured warm. The 10 rows are not
    /// one sweep but one operating point per length pair (concurrency 16-128, chosen by
    /// aiconfigurator), and they contradict a single iteration model: TPOT at 100 output
    /// tokens and 112 sequences (11.3 ms) is below TPOT at 2,000 and 128 (23.5 ms). The fit
    /// misses rows by up to 2x (`docs/replica-model.md`); results on this replica show a
    /// second shape of replica, not a measured one.
    pub fn llama8b_fp8_h200() -> Self {
        ModelProfile {
            model: "nvidia/Llama-3.1-8B-Instruct-FP8".to_string(),
            gpu: "NVIDIA H200".to_string(),
            tp: 1,
            max_num_seqs: 256,
            max_batched_tokens: 8192,
            kv_capacity_tokens: ModelProfile::kv_tokens_from_memory(&LLAMA8B_FP8_H200_MEMORY),
            block_size: 16,
            iter_base_s: 1.654532e-4,
            iter_per_seq_s: 1.223754e-5,
            iter_per_kv_token_s: 2.179915e-8,
            iter_per_prefill_token_s: 1.329676e-5,
            iter_prefill_base_s: 3.578457e-5,
            frontend_s: 2.180557e-2,
        }
    }

    /// Llama-3.1-70B FP8 weights (BF16 KV cache) on 1 x H200 SXM 141GB, vLLM, TP1.
    ///
    /// Fit (`simulate --replica-fit --replica llama70b-fp8-h200`, Nelder-Mead, two runs of 400
    /// steps: from the H100 TP2 coefficients to loss 0.0260, then from that result to 0.0236; a
    /// third run from these constants ends at 0.0236 again): TTFT and TPOT of the 8 fit rows of
    /// the vLLM / Llama-3.1-70B / h200_sxm / fp8 / tp_size 1 rows of
    /// `data/calibration/llm_serving_latency_profiles.csv`, simulated as their first-wave
    /// closed loops like the H100 TP2 rows. Fit rows within 5.3 % (TTFT) and 8.7 % (TPOT); the
    /// 3 validation rows within 11 % (TTFT) and 3 % (TPOT); the 4 rows at 32 and 64 clients
    /// with 8k tokens are KV exhausted with the cache from memory, and two of them (the x32)
    /// are not exhausted in the measurement (`docs/replica-model.md`). The prefill cost is
    /// 135 us per prompt token (7.4k tokens/s, 56 % of the two H100s' rate), the iteration
    /// 20.9 ms; the mixed-batch and front-end terms came out negligible (0.1 ms, 1.0 ms). KV
    /// capacity from memory ([`LLAMA70B_FP8_H200_MEMORY`]).
    pub fn llama70b_fp8_h200() -> Self {
        ModelProfile {
            model: "meta-llama/Llama-3.1-70B-Instruct".to_string(),
            gpu: "NVIDIA H200".to_string(),
            tp: 1,
            max_num_seqs: 256,
            max_batched_tokens: 8192,
            kv_capacity_tokens: ModelProfile::kv_tokens_from_memory(&LLAMA70B_FP8_H200_MEMORY),
            block_size: 16,
            iter_base_s: 2.091319e-2,
            iter_per_seq_s: 6.726116e-5,
            iter_per_kv_token_s: 7.864691e-8,
            iter_per_prefill_token_s: 1.351613e-4,
            iter_prefill_base_s: 9.634526e-5,
            frontend_s: 9.742959e-4,
        }
    }
}

/// 2 x 80 GB at 0.9, 70.6 GB of FP8 weights, ~4 GB of activations; 80 layers x 8 KV heads x
/// 128 x 2 (K and V) x 2 bytes (BF16) = 320 KiB per token.
pub const LLAMA70B_FP8_H100_TP2_MEMORY: KvMemory = KvMemory {
    gpus: 2,
    gpu_gb: 80.0,
    utilization: 0.9,
    weights_gb: 70.6,
    activations_gb: 4.0,
    layers: 80,
    kv_heads: 8,
    head_dim: 128,
    kv_bytes: 2.0,
    block_size: 16,
};

/// 1 x 141 GB at 0.9, 9.1 GB of weights (FP8 linear layers, BF16 embeddings and head), ~4 GB
/// of activations; 32 layers x 8 KV heads x 128 x 2 x 2 bytes = 128 KiB per token.
pub const LLAMA8B_FP8_H200_MEMORY: KvMemory = KvMemory {
    gpus: 1,
    gpu_gb: 141.0,
    utilization: 0.9,
    weights_gb: 9.1,
    activations_gb: 4.0,
    layers: 32,
    kv_heads: 8,
    head_dim: 128,
    kv_bytes: 2.0,
    block_size: 16,
};

/// 1 x 141 GB at 0.9, 70.6 GB of FP8 weights, ~4 GB of activations; 80 layers x 8 KV heads x
/// 128 x 2 (K and V) x 2 bytes (BF16) = 320 KiB per token: 52.3 GB leave 159,600 tokens, a
/// quarter fewer than the two H100s' 211,776. The rows at 32 clients imply a cache about twice
/// as large (an FP8 cache would be 319,200 tokens; `docs/replica-model.md`).
pub const LLAMA70B_FP8_H200_MEMORY: KvMemory = KvMemory {
    gpus: 1,
    gpu_gb: 141.0,
    utilization: 0.9,
    weights_gb: 70.6,
    activations_gb: 4.0,
    layers: 80,
    kv_heads: 8,
    head_dim: 128,
    kv_bytes: 2.0,
    block_size: 16,
};

/// What sizes a replica's KV cache: memory, weights and the model's attention shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvMemory {
    /// GPUs in the replica.
    pub gpus: u32,
    /// Memory per GPU, GB (1e9 bytes).
    pub gpu_gb: f64,
    /// vLLM's `--gpu-memory-utilization`.
    pub utilization: f64,
    /// Weights over all GPUs, GB.
    pub weights_gb: f64,
    /// Activations, CUDA graphs and the sampler's reserve over all GPUs, GB.
    pub activations_gb: f64,
    /// Transformer layers.
    pub layers: u32,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: u32,
    /// Dimension of one head.
    pub head_dim: u32,
    /// Bytes per cached element (2 for a BF16 cache).
    pub kv_bytes: f64,
    /// vLLM's block size in tokens.
    pub block_size: u64,
}

/// The replica types the simulator knows, by the name `--replica` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplicaKind {
    /// Llama-3.1-70B FP8 on 2 x H100 SXM, vLLM, TP2 (the default).
    #[default]
    Llama70bFp8H100Tp2,
    /// Llama-3.1-8B FP8 on 1 x H200 SXM, vLLM.
    Llama8bFp8H200,
    /// Llama-3.1-70B FP8 on 1 x H200 SXM, vLLM.
    Llama70bFp8H200,
}

impl ReplicaKind {
    /// Every kind, in the order `--help` lists them.
    pub const ALL: [ReplicaKind; 3] = [ReplicaKind::Llama70bFp8H100Tp2, ReplicaKind::Llama8bFp8H200, ReplicaKind::Llama70bFp8H200];

    /// The name `--replica` takes.
    pub fn name(self) -> &'static str {
        match self {
            ReplicaKind::Llama70bFp8H100Tp2 => "llama70b-fp8-h100-tp2",
            ReplicaKind::Llama8bFp8H200 => "llama8b-fp8-h200",
            ReplicaKind::Llama70bFp8H200 => "llama70b-fp8-h200",
        }
    }

    /// The calibrated profile.
    pub fn profile(self) -> ModelProfile {
        match self {
            ReplicaKind::Llama70bFp8H100Tp2 => ModelProfile::llama70b_fp8_h100_tp2(),
            ReplicaKind::Llama8bFp8H200 => ModelProfile::llama8b_fp8_h200(),
            ReplicaKind::Llama70bFp8H200 => ModelProfile::llama70b_fp8_h200(),
        }
    }
}

impl fmt::Display for ReplicaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--replica` name that is not one of [`ReplicaKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown replica \"{0}\": expected one of llama70b-fp8-h100-tp2, llama8b-fp8-h200, llama70b-fp8-h200")]
pub struct UnknownReplica(pub String);

impl FromStr for ReplicaKind {
    type Err = UnknownReplica;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReplicaKind::ALL.into_iter().find(|k| k.name() == s.trim()).ok_or_else(|| UnknownReplica(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_replica_kind_parses_from_its_name_and_the_error_lists_them_all() {
        for k in ReplicaKind::ALL {
            assert_eq!(k.name().parse::<ReplicaKind>(), Ok(k));
            assert_eq!(k.profile().tp, if k == ReplicaKind::Llama70bFp8H100Tp2 { 2 } else { 1 });
        }
        let e = "h200".parse::<ReplicaKind>().expect_err("unknown").to_string();
        for k in ReplicaKind::ALL {
            assert!(e.contains(k.name()), "{e}");
        }
    }

    #[test]
    fn the_kv_caches_from_memory() {
        assert_eq!(ModelProfile::kv_tokens_from_memory(&LLAMA70B_FP8_H100_TP2_MEMORY), 211_776);
        assert_eq!(ModelProfile::kv_tokens_from_memory(&LLAMA8B_FP8_H200_MEMORY), 868_224);
        assert_eq!(ModelProfile::kv_tokens_from_memory(&LLAMA70B_FP8_H200_MEMORY), 159_600);
    }
}

//! Reading: bytes -> samples. Pure parsers, no I/O: the fetchers ([`crate::fetch`]) hand them
//! the bytes as they arrive, the simulator hands them rendered text.
//!
//! * [`exposition`]: the Prometheus text format, streamed, allocation-free per sample line.
//! * [`vllm`]: one vLLM pod's queue, tokens, latency histograms and KV cache ([`vllm::PodSample`]).
//! * [`dcgm`]: dcgm-exporter's GPU activity per pod.

pub mod dcgm;
pub mod exposition;
pub mod vllm;

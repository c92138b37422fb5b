//! Reading: bytes -> samples. Pure parsers, no I/O: the fetchers ([`crate::fetch`]) hand them
//! the bytes as they arrive, the simulator hands them rendered text.
//!
//! * [`exposition`]: the Prometheus text format, streamed, allocation-free per sample line.
//! * [`vllm`]: one vLLM pod's queue, tokens, latency histograms and KV cache ([`vllm::PodSample`]).
//! * [`dcgm`]: dcgm-exporter's GPU activity per pod.
//! * [`queue`]: what a batch queue holds (a key's length, a stream group's lag and pending work).

pub mod dcgm;
pub mod exposition;
pub mod queue;
pub mod vllm;

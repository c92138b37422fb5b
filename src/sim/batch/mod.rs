//! `llm-scaler simulate-batch`: a ScaledJob's queue drained by Spot Jobs, in virtual time, under
//! KEDA's own Redis streams scaler and under llm-scaler's batch mode, on the same items and
//! the same preemptions.
//!
//! [`stream`] is the Redis stream and its consumer group, [`keda`] KEDA's side (its Redis
//! trigger's metric, the ScaledJob strategies), [`world`] the Jobs, workers, preemptions and the
//! bill of one run (llm-scaler's decision is the server's own `decide::batch::decide`, called
//! from one adapter, [`world::llm_scaler_decide`]), [`report`] the table over seeds, [`plots`]
//! the queue and Jobs over time, [`cli`] the flags.

pub mod cli;
pub mod keda;
pub mod plots;
pub mod report;
pub mod stream;
pub mod world;

pub use world::{BatchConfig, Contender, Drops, RunResult, Scaler, run};

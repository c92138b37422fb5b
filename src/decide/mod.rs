//! Deciding: the pure core shared by the server and the simulator. No tokio, no I/O, no clock:
//! time comes in as a `Duration` since the caller's origin (wall clock in the server, virtual
//! time in the simulator). `tests/architecture.rs` holds this room to that.
//!
//! * [`decider`]: one ScaledObject's state across ticks; what the collector and the simulator
//!   own and call ([`Decider::tick`]).
//! * [`signals`]: per-pod histories -> one fleet observation (rates, windowed quantiles).
//! * [`policy`]: an observation -> an explained replica decision.
//! * [`calibrate`]: the learned tokens/s capacity (`targetTokensPerSecond: auto`).
//! * [`forecast`]: demand history and its forecast (predictive scaling's floor).
//! * [`batch`]: a batch queue's reading -> the work reported to a ScaledJob.

pub mod batch;
pub mod calibrate;
pub mod decider;
pub mod forecast;
pub mod policy;
pub mod signals;

pub use decider::{Decider, Tick, TickError};

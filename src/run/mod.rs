//! Running: the per-ScaledObject state and its background loop.
//!
//! * [`target`]: one served ScaledObject, and what every collector shares.
//! * [`registry`]: every served ScaledObject, parsed once, each with its collector task.
//! * [`collector`]: one ScaledObject's loop, discover -> fetch -> read -> decide -> store.
//! * [`cost`]: what a serving fleet's GPUs cost, metered tick by tick, and per token served.
//! * [`batch`]: one ScaledJob trigger's store and loop, read the queue -> decide -> store.
//! * [`history`]: the learned state (demand history, capacity) restored and saved by a collector.
//! * [`history_store`]: the ConfigMap that state is kept in (read, create, replace at a version).
//! * [`prewarm`]: the ScaledObjects naming this scaler, collected from start (failover answers warm).
//! * [`store`]: the latest decision, its history and freshness (what RPCs read).
//! * [`telemetry`]: the scaler's own Prometheus metrics, fed by the loop, served by HTTP.

pub mod batch;
pub mod collector;
pub mod cost;
pub mod history;
pub mod history_store;
pub mod job_pods;
pub mod prewarm;
pub mod registry;
pub mod store;
pub mod target;
pub mod telemetry;

//! Running: the per-ScaledObject state and its background loop.
//!
//! * [`target`]: one served ScaledObject, and what every collector shares.
//! * [`registry`]: every served ScaledObject, parsed once, each with its collector task.
//! * [`collector`]: one ScaledObject's loop, discover -> fetch -> read -> decide -> store.
//! * [`store`]: the latest decision, its history and freshness (what RPCs read).
//! * [`telemetry`]: the scaler's own Prometheus metrics, fed by the loop, served by HTTP.

pub mod collector;
pub mod registry;
pub mod store;
pub mod target;
pub mod telemetry;

//! llm-scaler: a KEDA external scaler for vLLM fleets.
//!
//! Data flows one way, and so do the imports between these rooms (`tests/architecture.rs`
//! checks it): [`discovery`] (which pods) -> [`fetch`] (their bytes) -> [`read`] (bytes ->
//! samples) -> [`decide`] (the pure core, shared with the simulator) -> [`run`] (per-ScaledObject
//! state, the loop, the store) -> [`serve`] (gRPC for KEDA, HTTP). [`spec`] is the metadata,
//! parsed once. [`sim`] (feature `sim`) plays the world around the scaler: modelled vLLM pods,
//! KEDA and the HPA, the simulator and the demo. See docs/architecture.md.

pub mod decide;
pub mod discovery;
pub mod fetch;
pub mod read;
pub mod run;
pub mod serve;
#[cfg(feature = "sim")]
pub mod sim;
pub mod spec;

pub use decide::{Decider, Tick, TickError};
pub use serve::{
    config::{ServeFlags, Settings},
    server::{DiscoveryMode, Server},
};
pub use spec::ScalerSpec;

pub mod proto {
    //! KEDA's `externalscaler` gRPC contract, generated from `proto/externalscaler.proto`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("externalscaler");
    /// Encoded descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("externalscaler_descriptor");
}

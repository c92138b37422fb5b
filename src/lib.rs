//! llm-scaler: a KEDA external scaler for vLLM fleets.
//!
//! Data flows one way: [`discovery`] -> [`scrape`] ([`exposition`], [`vllm`], [`dcgm`]) ->
//! [`signals`] -> [`policy`] -> [`store`] -> [`grpc`] / [`http`]. The [`collector`] runs that
//! pipeline per ScaledObject in the background; RPCs only read the store. [`policy`] and
//! [`signals`] are pure so the simulator shares them as they are.

pub mod collector;
pub mod config;
pub mod dcgm;
pub mod demo;
pub mod discovery;
pub mod exposition;
pub mod grpc;
pub mod hpa;
pub mod http;
pub mod policy;
pub mod registry;
pub mod render;
pub mod scrape;
pub mod server;
pub mod signals;
pub mod sim;
pub mod spec;
pub mod store;
pub mod telemetry;
pub mod tenancy;
pub mod tls;
pub mod vllm;

pub mod proto {
    //! KEDA's `externalscaler` gRPC contract, generated from `proto/externalscaler.proto`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("externalscaler");
    /// Encoded descriptor set, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("externalscaler_descriptor");
}

//! Serving: configuration, listeners and the two APIs.
//!
//! * [`config`]: settings from defaults, TOML, environment and flags.
//! * [`server`]: wires gRPC (KEDA's protocol, health, reflection), HTTP and discovery.
//! * [`grpc`]: KEDA's `externalscaler` service, answered from the store.
//! * [`http`]: `/metrics`, health and the decisions API.
//! * [`tls`]: TLS and mTLS for gRPC, certificates reloaded from disk.
//! * [`transport`]: TCP_NODELAY on accepted connections, waiting for shutdown.
//! * [`status`]: `llm-scaler status`, the client side of the decisions API: a table for people.

pub mod config;
pub mod grpc;
pub mod http;
pub mod server;
pub mod status;
pub mod tls;
pub mod transport;

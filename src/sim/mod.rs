//! `llm-scaler simulate`: replay a workload against a modelled vLLM fleet under several scaling
//! policies at once, in virtual time, and report GPU-hours, cost and SLO attainment; and
//! `llm-scaler demo`, the real server against the same modelled fleet over loopback HTTP.
//!
//! llm-scaler itself is not re-implemented: its pods render their state as vLLM and
//! dcgm-exporter text ([`render`]), which goes through the scaler's own parser and extractors
//! ([`crate::read`]) into the same [`crate::decide::Decider`] the server's collector owns: the
//! production path, with the HTTP hop replaced by a function call and the clock by virtual time.
//!
//! The world, bottom up: [`workload`] (the arrivals), [`engine`] (one replica), [`fleet`] (the
//! replicas behind a gateway), [`accounting`] (what the requests got); the cluster's side:
//! [`hpa`], [`kpa`], [`scrape`] (what the policies read) and [`driver`] (who acts when);
//! [`config`] and [`lineup`] set a run up, [`replay`] runs one policy, [`pool`] runs them all,
//! [`capacity`] measures a replica, [`report`] and [`plots`] show the outcome. [`pods`] serves
//! rendered bodies over loopback HTTP for the demo, the integration tests and the benches.

pub mod accounting;
pub mod batch;
pub mod benchmark;
pub mod calibration;
pub mod capacity;
pub mod clairvoyant;
pub mod cli;
pub mod config;
pub mod contest;
pub mod criterion;
pub mod demo;
pub mod driver;
pub mod engine;
pub mod fleet;
pub mod hpa;
pub mod kpa;
pub mod lineup;
pub mod plots;
pub mod pods;
pub mod pool;
pub mod profile;
pub mod render;
pub mod replay;
pub mod replica_report;
pub mod report;
pub mod schedule;
pub mod scoreboard;
pub mod scrape;
pub mod search;
pub mod seeds;
pub mod stats;
pub mod tune;
pub mod warm;
pub mod workload;

pub use capacity::replica_capacity;
pub use config::{Router, SimConfig, Slo};
pub use kpa::KpaConfig;
pub use lineup::{Lineup, LineupError, Policy, PolicyKind, hpa_config, llm_scaler_policy, standard_policies};
pub use pool::run;
pub use replay::{Progress, run_policy};
pub use report::{PolicyResult, Series, SimReport, signal_names};

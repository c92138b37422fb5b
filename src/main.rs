//! `llm-scaler`: the binary edge. Parses flags, loads configuration, sets up logging and runs a
//! subcommand; everything else lives in the library.

use std::path::PathBuf;
#[cfg(feature = "sim")]
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
#[cfg(feature = "sim")]
use llm_scaler::sim::demo::{self, DemoOptions};
use llm_scaler::{
    Server,
    serve::{
        config::{LogFormat, Settings},
        server::DiscoveryMode,
    },
};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "llm-scaler",
    version,
    about = "KEDA external scaler for vLLM fleets: scrapes vLLM and DCGM, blends queue, tokens/s, latency, KV cache and GPU activity into one explained replica decision"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the external scaler (gRPC for KEDA, HTTP for metrics, health and the decisions API).
    Serve(Box<ServeArgs>),
    /// Offline demo: the real server scraping a modelled vLLM fleet (loopback HTTP) that replays
    /// a bundled trace fast-forwarded, with KEDA and the HPA played in virtual time; a live view
    /// of replicas, demand and per-signal contributions, and a report at the end.
    #[cfg(feature = "sim")]
    Demo(DemoArgs),
    /// Replay a workload (trace, rate curve or pattern) against a modelled vLLM fleet under
    /// several scaling policies at once, in virtual time: GPU-hours, cost and SLO attainment.
    #[cfg(feature = "sim")]
    Simulate(Box<llm_scaler::sim::cli::SimulateArgs>),
}

/// Flags override `LLM_SCALER_*` environment variables, which override the config file.
#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (see README, "Configuration").
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// gRPC listen address (KEDA's scalerAddress points here) [default: 0.0.0.0:9090].
    #[arg(long, value_name = "ADDR")]
    grpc_addr: Option<String>,
    /// HTTP listen address for /metrics, /healthz, /readyz, /api/v1/decisions [default: 0.0.0.0:8080].
    #[arg(long, value_name = "ADDR")]
    http_addr: Option<String>,
    /// Time between scrapes of a ScaledObject's pods, e.g. 5s [default: 5s].
    #[arg(long, value_name = "DURATION")]
    scrape_interval: Option<String>,
    /// Whole-request timeout of one scrape, e.g. 3s [default: 3s].
    #[arg(long, value_name = "DURATION")]
    scrape_timeout: Option<String>,
    /// Serve a decision for this many intervals after the last successful scrape, then answer
    /// UNAVAILABLE [default: 3].
    #[arg(long, value_name = "N")]
    stale_intervals: Option<u32>,
    /// Stop scraping a ScaledObject nobody asked about for this long, e.g. 10m [default: 10m].
    #[arg(long, value_name = "DURATION")]
    idle_timeout: Option<String>,
    /// Largest /metrics body accepted, in bytes [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<usize>,
    /// Concurrent scrapes, process-wide [default: 256].
    #[arg(long, value_name = "N")]
    scrape_concurrency: Option<usize>,
    /// Run without Kubernetes: pods come only from the `endpoints` metadata key.
    #[arg(long)]
    no_kube: bool,
    /// Accept the `endpoints` and `dcgmEndpoints` metadata keys (off by default: anyone who can
    /// write a ScaledObject could otherwise make the scaler fetch arbitrary URLs).
    #[arg(long)]
    allow_static_endpoints: bool,
    /// Let ScaledObjects in namespace FROM read pods in namespace TO: rules FROM:TO, namespace
    /// names or *, comma-separated or repeated (e.g. ml-platform:team-b, *:shared-models, or *
    /// for all). Off by default: a ScaledObject reads pods only in its own namespace, and a
    /// `namespace` key naming another is refused with InvalidArgument.
    #[arg(long, value_name = "FROM:TO", value_delimiter = ',')]
    allow_cross_namespace: Vec<String>,
    /// Label selector of the cluster's dcgm-exporter pods: the default of `dcgmSelector`, and
    /// the only one accepted in a DCGM namespace a ScaledObject may not otherwise read
    /// [default: app=nvidia-dcgm-exporter].
    #[arg(long, value_name = "SELECTOR")]
    dcgm_selector: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Log filter, e.g. info or llm_scaler=debug [default: info; RUST_LOG wins].
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
    /// gRPC server certificate chain, PEM, leaf first (e.g. tls.crt of a cert-manager Secret).
    /// With --tls-key, the gRPC port speaks TLS only (ALPN h2, TLS 1.2/1.3; KEDA: enableTLS
    /// "true" and a caCert in the TriggerAuthentication); the HTTP port stays plaintext.
    /// It must name the host of KEDA's scalerAddress. [default: none, plaintext h2c]
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Private key of --tls-cert, PEM (PKCS#8, PKCS#1 or SEC1; e.g. tls.key).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// CA bundle, PEM: turns on mTLS. gRPC clients must present a certificate issued by it (KEDA:
    /// tlsClientCert and tlsClientKey in the TriggerAuthentication); others are refused.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// How often the TLS files are re-read; a changed certificate is used for new connections
    /// without a restart (open connections keep theirs), a broken one is logged and ignored,
    /// e.g. 10s [default: 10s].
    #[arg(long, value_name = "DURATION")]
    tls_reload_interval: Option<String>,
}

#[cfg(feature = "sim")]
#[derive(Args)]
struct DemoArgs {
    /// Wall-clock length of the demo: the trace is fast-forwarded to fit.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Replay this trace (Azure CSV, or CSV/JSONL with arrival seconds and token counts)
    /// instead of the bundled Azure 2023 code trace.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Lower replica bound.
    #[arg(long, default_value_t = 1)]
    min_replicas: u32,
    /// Upper replica bound.
    #[arg(long, default_value_t = 8)]
    max_replicas: u32,
    /// Virtual time from a scale-up decision to a Ready replica.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    cold_start: Duration,
}

impl ServeArgs {
    fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut o = Vec::new();
        let mut put = |k: &'static str, v: Option<String>| {
            if let Some(v) = v {
                o.push((k, v));
            }
        };
        put("grpc_addr", self.grpc_addr.clone());
        put("http_addr", self.http_addr.clone());
        put("scrape_interval", self.scrape_interval.clone());
        put("scrape_timeout", self.scrape_timeout.clone());
        put("stale_intervals", self.stale_intervals.map(|v| v.to_string()));
        put("idle_timeout", self.idle_timeout.clone());
        put("max_body_bytes", self.max_body_bytes.map(|v| v.to_string()));
        put("scrape_concurrency", self.scrape_concurrency.map(|v| v.to_string()));
        put("kube", self.no_kube.then(|| "false".to_string()));
        put("allow_static_endpoints", self.allow_static_endpoints.then(|| "true".to_string()));
        put("allow_cross_namespace", (!self.allow_cross_namespace.is_empty()).then(|| self.allow_cross_namespace.join(",")));
        put("dcgm_selector", self.dcgm_selector.clone());
        put("log_format", self.log_format.clone());
        put("log_level", self.log_level.clone());
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        put("tls_cert", path(&self.tls_cert));
        put("tls_key", path(&self.tls_key));
        put("tls_client_ca", path(&self.tls_client_ca));
        put("tls_reload_interval", self.tls_reload_interval.clone());
        o
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().with_current_span(true).with_span_list(true).init(),
        LogFormat::Text => b.init(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(args.config.as_deref(), &args.overrides()).context("loading configuration")?;
    init_logging(settings.log_format, &settings.log_level);
    let mode = if settings.kube { DiscoveryMode::Kube } else { DiscoveryMode::None };
    let server = Server::start(settings, mode).await.context("starting the server")?;
    let stop = server.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: shutting down gracefully");
        let _ = stop.send(true);
    });
    server.wait().await.context("server")?;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(a) => serve(*a).await,
        #[cfg(feature = "sim")]
        Command::Demo(a) => {
            init_logging(LogFormat::Text, "warn");
            let opts = DemoOptions {
                duration: a.duration,
                trace: a.trace,
                min_replicas: a.min_replicas,
                max_replicas: a.max_replicas,
                cold_start: a.cold_start,
            };
            demo::run(opts).await.context("demo")
        }
        #[cfg(feature = "sim")]
        Command::Simulate(a) => tokio::task::spawn_blocking(move || llm_scaler::sim::cli::run(*a)).await.context("simulate")?,
    }
}

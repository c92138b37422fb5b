//! `llm-scaler`: the binary edge. Parses flags, loads configuration, sets up logging and runs a
//! subcommand; everything else lives in the library.

use std::{
    io::{IsTerminal as _, Write as _},
    path::PathBuf,
    time::{Duration, SystemTime},
};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
#[cfg(feature = "sim")]
use llm_scaler::sim::demo::{self, DemoOptions, DemoWorkload};
use llm_scaler::{
    Server,
    serve::{
        config::{LogFormat, ServeFlags, Settings},
        server::DiscoveryMode,
        status::{self, Client, Output, Scope, Status},
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
    /// A running scaler's decisions as a table, like `kubectl get hpa`: each ScaledObject's
    /// replicas now/desired, the signal that decided, its cost per hour, the decision's age and
    /// its reason; ScaledJobs below. Reads the scaler's HTTP port (`/api/v1/decisions`).
    Status(StatusArgs),
    /// Offline demo: the real server scraping a modelled vLLM fleet (loopback HTTP) that replays
    /// a day of the bundled ServeGen curve fast-forwarded, with KEDA and the HPA played in
    /// virtual time; a live view of load, readings and per-signal demand, and `simulate`'s table
    /// (smallest static fleet meeting the SLO, llm-scaler) at the end.
    #[cfg(feature = "sim")]
    Demo(DemoArgs),
    /// Replay a workload (trace, rate curve or pattern) against a modelled vLLM fleet under
    /// several scaling policies at once, in virtual time: GPU-hours, cost and SLO attainment.
    #[cfg(feature = "sim")]
    Simulate(Box<llm_scaler::sim::cli::SimulateArgs>),
    /// A ScaledJob's stream queue drained by Spot Jobs in virtual time, under KEDA's own Redis
    /// streams scaler (default and accurate strategies) and under llm-scaler's batch mode, on the
    /// same items and preemptions: completion time, GPU-hours, cost, work lost.
    #[cfg(feature = "sim")]
    SimulateBatch(Box<llm_scaler::sim::batch::cli::SimulateBatchArgs>),
}

/// Flags override `LLM_SCALER_*` environment variables, which override the config file.
#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (see README, "Configuration").
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: ServeFlags,
}

#[derive(Args)]
struct StatusArgs {
    /// Only this ScaledObject or ScaledJob (needs --namespace).
    #[arg(value_name = "NAME", requires = "namespace")]
    name: Option<String>,
    /// The scaler's HTTP port: host:port or an http:// URL (e.g. after
    /// `kubectl -n llm-scaler port-forward deploy/llm-scaler 8080`).
    #[arg(long, env = "LLM_SCALER_STATUS_ADDR", default_value = status::DEFAULT_ADDR)]
    addr: String,
    /// Only this namespace's ScaledObjects and ScaledJobs.
    #[arg(short, long)]
    namespace: Option<String>,
    /// table, wide (more columns, whole reasons) or json.
    #[arg(short, long, value_enum, default_value = "table")]
    output: status::Output,
    /// Keep reading: on a terminal the table is redrawn every --interval; into a pipe or file it
    /// is printed again (JSON: one line) only when a row's replicas, signal, outcome, state or
    /// cost per hour changed, each table after a time line.
    #[arg(short, long)]
    watch: bool,
    /// How often --watch reads (at least 100ms).
    #[arg(long, default_value = "2s", value_parser = watch_interval)]
    interval: Duration,
    /// How long one request may take.
    #[arg(long, default_value = "5s", value_parser = request_timeout)]
    timeout: Duration,
}

#[cfg(feature = "sim")]
#[derive(Args)]
struct DemoArgs {
    /// Wall-clock length of the demo: the workload is fast-forwarded to fit.
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Replay this trace (Azure CSV, or CSV/JSONL with arrival seconds and token counts)
    /// instead of a day of the bundled ServeGen curve.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Day of the bundled 14-day ServeGen curve to replay (0-based).
    #[arg(long, default_value_t = 9, conflicts_with = "trace")]
    day: u32,
    /// How many times faster than real time the day plays in virtual time (12: two hours).
    #[arg(long, default_value_t = 12.0, conflicts_with = "trace")]
    compress: f64,
    /// Lower replica bound.
    #[arg(long, default_value_t = 2)]
    min_replicas: u32,
    /// Upper replica bound.
    #[arg(long, default_value_t = 20)]
    max_replicas: u32,
    /// Virtual time from a scale-up decision to a Ready replica.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    cold_start: Duration,
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
    let settings = Settings::load(args.config.as_deref(), &args.flags).context("loading configuration")?;
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

/// `llm-scaler status`: one read, or `--watch`.
async fn status(a: StatusArgs) -> anyhow::Result<()> {
    let client = Client::new(&a.addr, a.timeout)?;
    let scope = Scope::new(a.namespace.clone(), a.name.clone())?;
    let result = if a.watch {
        // One signal future for the whole watch, raced against each read and print: a Ctrl-C
        // that lands while a request is in flight still ends it.
        let stop = wait_for_signal();
        tokio::pin!(stop);
        tokio::select! {
            r = watch(&client, &scope, &a) => r,
            _ = &mut stop => Ok(()),
        }
    } else {
        once(&client, &scope, a.output).await
    };
    match result {
        // `llm-scaler status | head`: the reader left, which is not an error of ours.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => Ok(()),
        r => r,
    }
}

async fn once(client: &Client, scope: &Scope, output: Output) -> anyhow::Result<()> {
    let status = client.fetch(scope).await?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", status.render(output, false))?;
    out.flush()?;
    if status.is_empty() && output != Output::Json {
        eprintln!("{}", nothing_served(scope));
    }
    Ok(())
}

/// Reads every `--interval` until stopped: on a terminal the table is redrawn each time; into a
/// pipe it is printed when a row's material values changed ([`Status::material`]).
async fn watch(client: &Client, scope: &Scope, a: &StatusArgs) -> anyhow::Result<()> {
    let tty = std::io::stdout().is_terminal();
    let mut shown: Option<Status> = None;
    let mut failing: Option<String> = None;
    let mut ticker = tokio::time::interval(a.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = humantime::format_rfc3339_seconds(SystemTime::now());
        match client.fetch(scope).await {
            Ok(status) => {
                failing = None;
                let text = if status.is_empty() && a.output != Output::Json {
                    format!("{}\n", nothing_served(scope))
                } else {
                    status.render(a.output, true)
                };
                let mut out = std::io::stdout().lock();
                if tty {
                    // Home and clear, then the table under a line saying where and when.
                    write!(out, "\x1b[H\x1b[2J{} at {now}, every {}\n\n{text}", a.addr, humantime::format_duration(a.interval))?;
                } else {
                    let material = status.material();
                    if shown.as_ref() != Some(&material) {
                        if a.output != Output::Json {
                            writeln!(out, "# {now}")?;
                        }
                        write!(out, "{text}")?;
                        shown = Some(material);
                    }
                }
                out.flush()?;
            }
            // Keep reading through a restart of the scaler; say each new failure once.
            Err(e) => {
                let msg = e.to_string();
                if failing.as_ref() != Some(&msg) {
                    eprintln!("{now}: {msg}");
                    failing = Some(msg);
                }
            }
        }
    }
}

/// `--interval`: a duration of at least 100 ms (a zero period would spin, and tokio refuses it).
fn watch_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) {
        return Err(format!("{s:?} is too short: at least 100ms"));
    }
    Ok(d)
}

/// `--timeout`: a duration above zero.
fn request_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("0s would refuse every answer: expected a duration above zero".into());
    }
    Ok(d)
}

fn nothing_served(scope: &Scope) -> String {
    let what = match scope {
        Scope::All => "No ScaledObjects or ScaledJobs are being served".to_string(),
        Scope::Namespace(ns) => format!("No ScaledObjects or ScaledJobs of namespace {ns} are being served"),
        Scope::One { namespace, name } => format!("No ScaledObject or ScaledJob {namespace}/{name} is being served"),
    };
    format!("{what} (the scaler serves one once KEDA has asked about it).")
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
        Command::Status(a) => status(a).await,
        #[cfg(feature = "sim")]
        Command::Demo(a) => {
            init_logging(LogFormat::Text, "warn");
            let workload = match a.trace {
                Some(p) => DemoWorkload::Trace(p),
                None => DemoWorkload::ServeGenDay { day: a.day, compress: a.compress },
            };
            let opts = DemoOptions {
                duration: a.duration,
                workload,
                min_replicas: a.min_replicas,
                max_replicas: a.max_replicas,
                cold_start: a.cold_start,
            };
            demo::run(opts).await.context("demo")
        }
        #[cfg(feature = "sim")]
        Command::Simulate(a) => tokio::task::spawn_blocking(move || llm_scaler::sim::cli::run(*a)).await.context("simulate")?,
        #[cfg(feature = "sim")]
        Command::SimulateBatch(a) => {
            tokio::task::spawn_blocking(move || llm_scaler::sim::batch::cli::run(*a)).await.context("simulate-batch")?
        }
    }
}

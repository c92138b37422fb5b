//! `llm-scaler simulate`: flags, workload and policy set-up, progress bars and output.

use std::{io::IsTerminal as _, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::sim::{
    capacity::replica_capacity,
    config::{NodePool, Router, SimConfig, Slo},
    contest::{self, Contender, Plan},
    criterion::{Share, SloCriterion},
    kpa::KpaConfig,
    lineup::{Lineup, Policy, PolicyKind, default_tokens_target},
    plots,
    profile::ReplicaKind,
    replica_report, scoreboard,
    seeds::Trials,
    tune::{self, Family, Kept},
    workload::{LengthDist, LengthDrift, Process, RateCurve, Source, Workload, read_trace},
};

/// Flags of `llm-scaler simulate`.
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Per-request trace: Azure 2023 CSV, or CSV/JSONL with arrival seconds and token counts.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["rate_curve", "pattern"])]
    pub trace: Option<PathBuf>,
    /// Rate curve in ServeGen's aggregate format (window_start_s, window_len_s, total_rate_rps, ...).
    #[arg(long, value_name = "FILE", conflicts_with = "pattern")]
    pub rate_curve: Option<PathBuf>,
    /// Synthetic rate pattern (req/s, seconds): step:LOW:HIGH:AT, ramp:FROM:TO,
    /// sine:MEAN:AMPLITUDE:PERIOD, spike:BASE:PEAK:AT:WIDTH.
    #[arg(long, value_name = "SPEC")]
    pub pattern: Option<String>,
    /// Length of a synthetic pattern.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Arrival process for rate curves and patterns: poisson or gamma:CV.
    #[arg(long, default_value = "poisson")]
    pub process: String,
    /// Input length distribution for rate curves: fixed:N or lognormal:P50:P99[:MAX]
    /// [default: ServeGen's, lognormal:601:5452].
    #[arg(long, value_name = "DIST")]
    pub input_len: Option<String>,
    /// Output length distribution [default: ServeGen's, lognormal:53:872].
    #[arg(long, value_name = "DIST")]
    pub output_len: Option<String>,
    /// Drift the length mix over the source: prompt and output lengths grow linearly to these
    /// factors by the source's end (e.g. 1:2 doubles the outputs; tuning and evaluated parts
    /// then see different mixes).
    #[arg(long, value_name = "IN:OUT")]
    pub length_drift: Option<String>,
    /// Start of the part of the source to replay (e.g. 7d for a hold-out split).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub from: Option<Duration>,
    /// End of the part of the source to replay.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub to: Option<Duration>,
    /// Timeline multiplier (0.5 = twice as fast, same requests).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Rate multiplier (2 = twice the requests on the same timeline).
    #[arg(long, conflicts_with = "fit_peak_replicas")]
    pub rate_scale: Option<f64>,
    /// Scale the rate so the source's peak needs this many replicas at their SLO capacity
    /// (e.g. 16 fits a 14-day curve to a 2-20 replica fleet).
    #[arg(long, value_name = "N")]
    pub fit_peak_replicas: Option<f64>,
    /// Requests/s one replica serves within the SLO [default: measured by bisection].
    #[arg(long, value_name = "RPS")]
    pub replica_capacity: Option<f64>,
    /// Seed of arrivals, lengths, routing and jitter (the first of `--seeds`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seeds every policy runs on: --seed, --seed+1, ... A policy meets the SLO only if it meets
    /// on every seed.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub seeds: u32,
    /// Policies to compare (comma separated): static, hpa-gpu70, keda-queue5, kpa, keda-tokens,
    /// llm-scaler. `static` is the smallest static fleet meeting the SLO (bisected) and the
    /// peak-sized one for reference.
    #[arg(long, default_value = "static,hpa-gpu70,keda-queue5,kpa,keda-tokens,llm-scaler")]
    pub policies: String,
    /// llm-scaler metadata KEY=VALUE (repeatable), exactly as in a ScaledObject's trigger.
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    pub meta: Vec<String>,
    /// Extra llm-scaler configuration to compare, NAME:KEY=VALUE,KEY=VALUE (repeatable).
    #[arg(long = "variant", value_name = "NAME:KEY=VALUE,...")]
    pub variants: Vec<String>,
    /// Size of the static fleet [default: --max-replicas].
    #[arg(long)]
    pub static_replicas: Option<u32>,
    /// Lower replica bound of the autoscaled policies.
    #[arg(long, default_value_t = 2)]
    pub min_replicas: u32,
    /// Upper replica bound.
    #[arg(long, default_value_t = 20)]
    pub max_replicas: u32,
    /// Replicas Ready at the start for autoscaled policies [default: --min-replicas].
    #[arg(long)]
    pub initial_replicas: Option<u32>,
    /// From the scale-up decision to Ready.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub cold_start: Duration,
    /// Extra random cold-start delay, uniform in [0, JITTER].
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub cold_start_jitter: Duration,
    /// Grace period of a draining replica before its requests are aborted.
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Prometheus' scrape interval (what the KEDA/HPA baselines read).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub scrape_interval: Duration,
    /// KEDA polling interval (how often the HPA's metric is refreshed).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub polling_interval: Duration,
    /// HPA sync period.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub hpa_sync: Duration,
    /// HPA tolerance for the baseline HPA/KEDA policies (cluster default 0.1).
    #[arg(long, default_value_t = 0.1)]
    pub tolerance: f64,
    /// HPA tolerance for llm-scaler (its examples set 0; KEP-4951).
    #[arg(long, default_value_t = 0.0)]
    pub scaler_tolerance: f64,
    /// HPA scale-down stabilisation window for every HPA-driven policy.
    #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
    pub scale_down_window: Duration,
    /// KPA target concurrency per pod.
    #[arg(long, default_value_t = 64.0)]
    pub kpa_target: f64,
    /// hpa-gpu's target GPU utilisation (DCGM duty cycle), percent.
    #[arg(long, default_value_t = 70.0, value_name = "PERCENT")]
    pub hpa_gpu_target: f64,
    /// keda-queue's threshold: waiting requests per replica.
    #[arg(long, default_value_t = 5.0, value_name = "N")]
    pub keda_queue_threshold: f64,
    /// keda-tokens' AverageValue target, prompt + generation tokens/s per replica [default:
    /// llm-scaler's default targetTokensPerSecond / its default peakFactor].
    #[arg(long, value_name = "TOKENS_PER_S")]
    pub keda_tokens_target: Option<f64>,
    /// TTFT SLO.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub ttft_slo: Duration,
    /// TPOT SLO.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    pub tpot_slo: Duration,
    /// Share of all requests that must be within the SLO, percent.
    #[arg(long, default_value = "99", value_name = "PERCENT")]
    pub slo_target: Share,
    /// Attainment an hour must reach to count as a good hour, percent.
    #[arg(long, default_value = "99", value_name = "PERCENT")]
    pub hour_target: Share,
    /// Share of judged hours that must be good hours, percent.
    #[arg(long, default_value = "95", value_name = "PERCENT")]
    pub hour_share: Share,
    /// Attainment the worst judged hour must reach, percent.
    #[arg(long, default_value = "95", value_name = "PERCENT")]
    pub worst_hour: Share,
    /// Hours with fewer requests are listed as not judged.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub hour_min_requests: u64,
    /// Price of one GPU-hour, dollars.
    #[arg(long, default_value_t = 4.0)]
    pub price: f64,
    /// GPUs per replica [default: the modelled replica's tensor parallelism, 2].
    #[arg(long)]
    pub gpus_per_replica: Option<u32>,
    /// vLLM --max-num-seqs of the modelled replica.
    #[arg(long)]
    pub max_num_seqs: Option<u32>,
    /// vLLM --max-num-batched-tokens of the modelled replica (tokens per iteration; smaller
    /// chunks mean shorter iterations, so less TPOT interference from long prompts).
    #[arg(long)]
    pub max_batched_tokens: Option<u32>,
    /// Request routing: least-request (Envoy's power of two choices) or round-robin.
    #[arg(long, default_value = "least-request")]
    pub router: String,
    /// Time series resolution in the report and plots [default: about 600 points].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub series_step: Option<Duration>,
    /// Parallel policy simulations [default: available cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// llm-scaler's collector tick [default: the server's own default, 5s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub collector_interval: Option<Duration>,
    /// Pack replicas on GPU nodes of this many GPUs (first fit) and bill whole nodes.
    #[arg(long, value_name = "GPUS")]
    pub gpus_per_node: Option<u32>,
    /// With --gpus-per-node: from asking for a new node to a replica starting on it [default: 300s].
    #[arg(long, requires = "gpus_per_node", value_parser = humantime::parse_duration)]
    pub node_provisioning: Option<Duration>,

    /// Tune every baseline's knob on --tune-from..--tune-to (a grid of six values each; the
    /// cheapest setting meeting the SLO is kept, else the closest), then run them on --from..--to.
    /// llm-scaler is not tuned.
    #[arg(long, requires_all = ["tune_from", "tune_to"])]
    pub tune_baselines: bool,
    /// Start of the tuning part (source time).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub tune_from: Option<Duration>,
    /// End of the tuning part (source time).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub tune_to: Option<Duration>,
    /// Leave out the clairvoyant bound (it takes about ten replays to find).
    #[arg(long)]
    pub no_clairvoyant: bool,
    /// Write the full report (with time series) as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write SVG plots into this directory.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// The modelled replica: llama70b-fp8-h100-tp2, llama8b-fp8-h200 or llama70b-fp8-h200
    /// (docs/replica-model.md).
    #[arg(long, default_value = "llama70b-fp8-h100-tp2")]
    pub replica: String,
    /// Print the replica model's report instead of simulating a fleet: calibration rows measured
    /// vs modelled, SLO vs Poisson load, `vllm bench serve` at saturation and at goodput.
    #[arg(long)]
    pub replica_report: bool,
    /// With --replica-report: refit the replica's coefficients on its fit rows first.
    #[arg(long, requires = "replica_report")]
    pub replica_fit: bool,
    /// Calibration rows for --replica-report.
    #[arg(long, value_name = "FILE", default_value = "data/calibration/llm_serving_latency_profiles.csv")]
    pub calibration: PathBuf,
}

fn kv(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s.split_once('=').with_context(|| format!("\"{s}\": expected KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// Builds the workload the flags describe (without rate fitting).
pub fn workload(a: &SimulateArgs) -> anyhow::Result<Workload> {
    let process = match a.process.as_str() {
        "poisson" => Process::Poisson,
        p => match p.strip_prefix("gamma:").and_then(|cv| cv.parse::<f64>().ok()).filter(|cv| *cv > 0.0) {
            Some(cv) => Process::Gamma { cv },
            None => bail!("--process {p}: expected poisson or gamma:CV"),
        },
    };
    let input = a.input_len.as_deref().map(LengthDist::parse).transpose()?.unwrap_or(LengthDist::SERVEGEN_INPUT);
    let output = a.output_len.as_deref().map(LengthDist::parse).transpose()?.unwrap_or(LengthDist::SERVEGEN_OUTPUT);
    let (name, source) = if let Some(p) = &a.trace {
        (p.file_name().map_or("trace".into(), |n| n.to_string_lossy().into_owned()), Source::Trace(Arc::new(read_trace(p)?)))
    } else if let Some(p) = &a.rate_curve {
        let curve = RateCurve::read_servegen(p)?;
        (p.file_name().map_or("rate curve".into(), |n| n.to_string_lossy().into_owned()), Source::Rate { curve, process, input, output })
    } else if let Some(pat) = &a.pattern {
        let step = (a.duration.as_secs_f64() / 2000.0).clamp(1.0, 60.0);
        (
            format!("pattern {pat}"),
            Source::Rate { curve: RateCurve::synthetic(pat, a.duration.as_secs_f64(), step)?, process, input, output },
        )
    } else {
        bail!("give a workload: --trace FILE, --rate-curve FILE or --pattern SPEC");
    };
    let mut w = Workload::new(name, source, a.seed);
    w.from_s = a.from.map_or(0.0, |d| d.as_secs_f64());
    w.to_s = a.to.map_or(f64::INFINITY, |d| d.as_secs_f64());
    if a.time_scale.is_nan() || a.time_scale <= 0.0 {
        bail!("--time-scale must be positive");
    }
    w.time_scale = a.time_scale;
    if let Some(r) = a.rate_scale {
        if r.is_nan() || r <= 0.0 {
            bail!("--rate-scale must be positive");
        }
        w.rate_scale = r;
    }
    if let Some(d) = &a.length_drift {
        w.length_drift =
            LengthDrift::parse(d).with_context(|| format!("--length-drift {d}: expected IN:OUT factors in (0, 100], e.g. 1:2"))?;
    }
    if w.duration_s() <= 0.0 {
        bail!("the workload is empty (check --from/--to)");
    }
    Ok(w)
}

/// The cluster model the flags describe.
pub fn sim_config(a: &SimulateArgs) -> anyhow::Result<SimConfig> {
    let mut cfg = SimConfig { profile: a.replica.parse::<ReplicaKind>()?.profile(), ..SimConfig::default() };
    if let Some(n) = a.gpus_per_replica {
        cfg.profile.tp = n.max(1);
    }
    if let Some(n) = a.max_num_seqs {
        cfg.profile.max_num_seqs = n.max(1);
    }
    if let Some(n) = a.max_batched_tokens {
        cfg.profile.max_batched_tokens = n.max(cfg.profile.max_num_seqs.min(n).max(1));
    }
    cfg.price_per_gpu_hour = a.price;
    cfg.slo = Slo { ttft_s: a.ttft_slo.as_secs_f64(), tpot_s: a.tpot_slo.as_secs_f64() };
    cfg.cold_start_s = a.cold_start.as_secs_f64();
    cfg.cold_start_jitter_s = a.cold_start_jitter.as_secs_f64();
    cfg.drain_timeout_s = a.drain_timeout.as_secs_f64();
    cfg.scrape_interval_s = a.scrape_interval.as_secs_f64();
    cfg.polling_interval_s = a.polling_interval.as_secs_f64();
    if let Some(d) = a.collector_interval {
        cfg.collector_interval_s = d.as_secs_f64();
    }
    cfg.nodes = match a.gpus_per_node {
        None => None,
        Some(n) if n < cfg.profile.tp => bail!("--gpus-per-node {n}: a replica needs {} GPUs on one node", cfg.profile.tp),
        Some(gpus_per_node) => Some(NodePool {
            gpus_per_node,
            provisioning_s: a.node_provisioning.map_or(NodePool::DEFAULT_PROVISIONING_S, |d| d.as_secs_f64()),
        }),
    };
    if a.min_replicas > a.max_replicas || a.max_replicas == 0 {
        bail!("--min-replicas must be <= --max-replicas (and max > 0)");
    }
    cfg.min_replicas = a.min_replicas;
    cfg.max_replicas = a.max_replicas;
    cfg.initial_replicas = a.initial_replicas;
    cfg.router = match a.router.as_str() {
        "least-request" => Router::LeastRequest,
        "round-robin" => Router::RoundRobin,
        r => bail!("--router {r}: expected least-request or round-robin"),
    };
    cfg.series_step_s = a.series_step.map(|d| d.as_secs_f64().max(1.0));
    cfg.seed = a.seed;
    Ok(cfg)
}

/// What "meets the SLO" means, from the flags (each share was checked when parsed).
pub fn criterion(a: &SimulateArgs) -> SloCriterion {
    SloCriterion {
        overall: a.slo_target,
        hour_target: a.hour_target,
        hour_share: a.hour_share,
        worst_hour: a.worst_hour,
        min_hour_requests: a.hour_min_requests,
    }
}

/// The policies the flags ask for.
pub fn policies(a: &SimulateArgs, cfg: &SimConfig) -> anyhow::Result<Vec<Policy>> {
    policies_of(&lineup(a)?, a, cfg)
}

/// The line-up's knobs, from the flags.
pub fn lineup(a: &SimulateArgs) -> anyhow::Result<Lineup> {
    let lineup = Lineup {
        static_replicas: a.static_replicas,
        tolerance: a.tolerance,
        scaler_tolerance: a.scaler_tolerance,
        scale_down_window: a.scale_down_window,
        hpa_sync: a.hpa_sync,
        kpa: KpaConfig { target_concurrency: a.kpa_target, ..KpaConfig::default() },
        gpu_target: a.hpa_gpu_target / 100.0,
        queue_threshold: a.keda_queue_threshold,
        tokens_target: a.keda_tokens_target.unwrap_or_else(default_tokens_target),
        metadata: a.meta.iter().map(|s| kv(s)).collect::<anyhow::Result<_>>()?,
    };
    for (flag, v) in [
        ("--kpa-target", a.kpa_target),
        ("--hpa-gpu-target", a.hpa_gpu_target),
        ("--keda-queue-threshold", a.keda_queue_threshold),
        ("--keda-tokens-target", lineup.tokens_target),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{flag} must be a positive number, not {v}");
        }
    }
    Ok(lineup)
}

fn policies_of(lineup: &Lineup, a: &SimulateArgs, cfg: &SimConfig) -> anyhow::Result<Vec<Policy>> {
    let mut out = Vec::new();
    for name in a.policies.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        out.push(lineup.policy(name, cfg)?);
    }
    for v in &a.variants {
        let (name, rest) = v.split_once(':').with_context(|| format!("--variant {v}: expected NAME:KEY=VALUE,..."))?;
        let mut m = lineup.metadata.clone();
        for item in rest.split(',').filter(|s| !s.trim().is_empty()) {
            let (k, val) = kv(item)?;
            m.retain(|(x, _)| *x != k);
            m.push((k, val));
        }
        out.push(lineup.llm_scaler(name, cfg, &m).map_err(|e| anyhow::anyhow!("--variant {name}: {e}"))?);
    }
    if out.is_empty() {
        bail!("no policy to simulate");
    }
    Ok(out)
}

/// The tuning part, source seconds: `--tune-from`..`--tune-to`, which must not overlap the
/// evaluated part (`--from`..`--to`) so the table reports settings on requests they were not
/// chosen on.
fn tuning_part(a: &SimulateArgs, w: &Workload) -> anyhow::Result<(f64, f64)> {
    let (Some(from), Some(to)) = (a.tune_from, a.tune_to) else {
        bail!("--tune-baselines needs --tune-from and --tune-to (a part of the workload apart from --from/--to)");
    };
    let (from, to) = (from.as_secs_f64(), to.as_secs_f64());
    if to <= from {
        bail!("--tune-to must be after --tune-from");
    }
    if from < w.to_s && w.from_s < to {
        bail!(
            "the tuning part {from:.0}..{to:.0} s overlaps the evaluated part {:.0}..{} s: tune on other requests than those reported",
            w.from_s,
            if w.to_s.is_finite() { format!("{:.0}", w.to_s) } else { "end".into() }
        );
    }
    Ok((from, to))
}

/// Runs `simulate`.
pub fn run(a: SimulateArgs) -> anyhow::Result<()> {
    if a.replica_report {
        let conv = a.trace.clone().unwrap_or_else(|| PathBuf::from("data/traces/azure_2023/AzureLLMInferenceTrace_conv.csv"));
        let slo = Slo { ttft_s: a.ttft_slo.as_secs_f64(), tpot_s: a.tpot_slo.as_secs_f64() };
        print!("{}", replica_report::render(a.replica.parse()?, &a.calibration, &conv, slo, a.replica_fit)?);
        return Ok(());
    }
    let mut cfg = sim_config(&a)?;
    let mut w = workload(&a)?;
    let tty = std::io::stderr().is_terminal();
    cfg.replica_capacity_rps = match a.replica_capacity {
        Some(c) => c,
        None => {
            if tty {
                eprintln!("measuring one replica's capacity within the SLO...");
            }
            replica_capacity(&cfg, &w, 0.99)
        }
    };
    if let Some(n) = a.fit_peak_replicas {
        let peak = w.source_peak_rps();
        if peak <= 0.0 {
            bail!("cannot fit: the source has no arrivals");
        }
        w.rate_scale = n * cfg.replica_capacity_rps / peak;
    }
    let lineup = lineup(&a)?;
    let policies = policies_of(&lineup, &a, &cfg)?;
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let static_search = policies.iter().any(|p| matches!(p.kind, PolicyKind::Static { .. })).then_some(cfg.max_replicas);
    let trials = Trials::new(&cfg, &w, a.seeds, criterion(&a), threads);
    let spinner = if tty { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    spinner
        .set_style(ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    spinner.enable_steady_tick(Duration::from_millis(250));
    let status = |m: &str| spinner.set_message(m.to_string());
    let mut contenders: Vec<Contender> = policies.into_iter().map(Contender::of).collect();
    let mut notes = Vec::new();
    let mut tuned = Vec::new();
    if a.tune_baselines {
        let (from, to) = tuning_part(&a, &w)?;
        let families: Vec<Family> = contenders.iter().filter_map(|c| Family::of(&c.policy.kind)).collect();
        status(&format!("tuning {} baselines on {from:.0}..{to:.0} s of the source (first seed)", families.len()));
        tuned = tune::tune(&families, &lineup, &trials.first_only().on_part(from, to))?;
        for t in &tuned {
            notes.push(t.note());
            let Some(c) = contenders.iter_mut().find(|c| Family::of(&c.policy.kind) == Some(t.family)) else { continue };
            let Some(kept) = t.chosen else { continue };
            c.policy = t.family.policy(&lineup, &cfg, kept.value())?;
            let how = match kept {
                Kept::Cheapest(_) => "tuned",
                Kept::Closest(_) => "tuned, closest: none met",
            };
            c.setting = c.policy.setting().map(|s| format!("{s} ({how})"));
        }
    }
    let plan = Plan { lineup: contenders, static_search, clairvoyant: !a.no_clairvoyant };
    let mut board = contest::run(&plan, &trials, &status);
    board.notes.extend(notes);
    board.tuning = tuned;
    spinner.finish_and_clear();
    print!("{}", scoreboard::table(&board));
    if let Some(p) = &a.json {
        std::fs::write(p, scoreboard::json(&board)?).with_context(|| format!("writing {}", p.display()))?;
        println!("JSON report: {}", p.display());
    }
    if let Some(d) = &a.plots {
        // The axes name the source's days when the replay runs on its timeline.
        let cal = plots::Calendar { start_s: if w.time_scale == 1.0 { w.from_s } else { 0.0 } };
        let files = plots::write_scoreboard(&board, cal, d).map_err(anyhow::Error::msg)?;
        for f in files {
            println!("plot: {}", f.display());
        }
    }
    Ok(())
}

//! `llm-scaler simulate-batch`: flags, the line-up, the runs over the seeds, the output.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::Args;

use crate::{
    decide::batch::{DEFAULT_SPOT_GPU_HOUR, WorkCount},
    sim::{
        batch::{
            keda::{Strategy, StreamsMetric},
            plots, report,
            world::{self, BatchConfig, Contender, Drops, RunResult, Scaler},
        },
        workload::LengthDist,
    },
};

/// The policies `--policies` knows, in report order.
pub const POLICIES: &[&str] = &[
    "keda-pending-default",
    "keda-pending-accurate",
    "keda-lag-default",
    "keda-lag-accurate",
    "llm-scaler-outstanding-default",
    "llm-scaler-waiting-accurate",
    "llm-scaler-watch-accurate",
    "on-demand-watch-accurate",
];

/// Flags of `llm-scaler simulate-batch`.
#[derive(Args, Debug, Clone)]
pub struct SimulateBatchArgs {
    /// Items in the stream at t = 0 (the back-fill).
    #[arg(long, default_value_t = 2000)]
    pub items: u64,
    /// Tokens per item: fixed:N or lognormal:P50:P99[:MAX] (default: p50 0.8 M, p99 2.4 M, at
    /// most 3 M tokens: 76 s, 228 s and 285 s on one Job at the default throughput).
    #[arg(long, default_value = "lognormal:800000:2400000:3000000")]
    pub tokens: String,
    /// Items of each later drop (0: none).
    #[arg(long, default_value_t = 0)]
    pub drop_items: u64,
    /// Time between drops (the first one this long after the back-fill).
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub drop_every: Duration,
    /// Number of drops.
    #[arg(long, default_value_t = 1)]
    pub drops: u32,
    /// Tokens per second one Job processes [default: the 70B FP8 TP2 replica's saturation
    /// throughput, docs/replica-model.md].
    #[arg(long, default_value_t = 10_543.0)]
    pub job_tokens_per_s: f64,
    /// GPUs per Job.
    #[arg(long, default_value_t = 2)]
    pub gpus_per_job: u32,
    /// From the Job's creation to its node (not billed).
    #[arg(long, default_value = "150s", value_parser = humantime::parse_duration)]
    pub provisioning: Duration,
    /// Image pull once the node is there (billed).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub image_pull: Duration,
    /// Model load after the pull (billed).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub model_load: Duration,
    /// KEDA's pollingInterval.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub polling_interval: Duration,
    /// llm-scaler's collector interval.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub collector_interval: Duration,
    /// The worker's --claim-timeout and the trigger's claimTimeout.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub claim_timeout: Duration,
    /// The worker's --idle-exit.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub idle_exit: Duration,
    /// The worker's --max-items.
    #[arg(long, default_value_t = 20)]
    pub max_items: u32,
    /// Spot notice.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub notice: Duration,
    /// Spot preemptions per pod-hour (Poisson).
    #[arg(long, default_value_t = 0.1)]
    pub preemption_rate: f64,
    /// The worker checkpoints: an abandoned item's progress is kept.
    #[arg(long)]
    pub checkpoint: bool,
    /// Dollars per Spot GPU-hour.
    #[arg(long, default_value_t = DEFAULT_SPOT_GPU_HOUR)]
    pub spot_price: f64,
    /// Dollars per on-demand GPU-hour.
    #[arg(long, default_value_t = 4.0)]
    pub on_demand_price: f64,
    /// The ScaledJob's maxReplicaCount.
    #[arg(long, default_value_t = 50)]
    pub max_replicas: u64,
    /// No `pendingPodConditions`: a Job is pending only until its pod runs (not until Ready).
    #[arg(long)]
    pub pending_until_running: bool,
    /// Items per Job (targetSize, lagCount, pendingEntriesCount), each a row of every policy.
    #[arg(long, default_value = "1,5,20", value_delimiter = ',')]
    pub target_sizes: Vec<f64>,
    /// Policies (comma separated), of: keda-pending-default, keda-pending-accurate,
    /// keda-lag-default, keda-lag-accurate, llm-scaler-outstanding-default,
    /// llm-scaler-waiting-accurate, llm-scaler-watch-accurate (watchPods), on-demand-watch-accurate.
    #[arg(long, value_delimiter = ',')]
    pub policies: Option<Vec<String>>,
    /// Adds llm-scaler-watch-accurate with this budgetPerHour (dollars).
    #[arg(long)]
    pub budget_per_hour: Option<f64>,
    /// Adds llm-scaler-watch-accurate with a deadline this long after the back-fill arrives.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub deadline: Option<Duration>,
    /// Give up after this much virtual time.
    #[arg(long, default_value = "48h", value_parser = humantime::parse_duration)]
    pub horizon: Duration,
    /// Time series resolution.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub series_step: Duration,
    /// First seed (item sizes and preemptions).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Seeds: --seed, --seed+1, ...
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub seeds: u32,
    /// Runs at once.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Write results.csv, report.json and the plots (queue_jobs_T<size>.svg, first seed) here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The world the flags describe (seed `--seed`).
pub fn config(a: &SimulateBatchArgs) -> anyhow::Result<BatchConfig> {
    let tokens = LengthDist::parse(&a.tokens).with_context(|| format!("--tokens {}", a.tokens))?;
    for (flag, v) in [
        ("--job-tokens-per-s", a.job_tokens_per_s),
        ("--spot-price", a.spot_price),
        ("--on-demand-price", a.on_demand_price),
        ("--polling-interval", secs(a.polling_interval)),
        ("--collector-interval", secs(a.collector_interval)),
        ("--series-step", secs(a.series_step)),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{flag} must be positive");
        }
    }
    if !(a.preemption_rate.is_finite() && a.preemption_rate >= 0.0) {
        bail!("--preemption-rate must be >= 0");
    }
    if a.max_items == 0 || a.max_replicas == 0 || a.gpus_per_job == 0 {
        bail!("--max-items, --max-replicas and --gpus-per-job must be at least 1");
    }
    Ok(BatchConfig {
        backfill_items: a.items,
        tokens,
        drops: (a.drop_items > 0 && a.drops > 0).then_some(Drops { items: a.drop_items, every_s: secs(a.drop_every), count: a.drops }),
        job_tokens_per_s: a.job_tokens_per_s,
        gpus_per_job: a.gpus_per_job,
        provisioning_s: secs(a.provisioning),
        image_pull_s: secs(a.image_pull),
        model_load_s: secs(a.model_load),
        polling_s: secs(a.polling_interval),
        collector_s: secs(a.collector_interval),
        claim_timeout_s: secs(a.claim_timeout),
        idle_exit_s: secs(a.idle_exit),
        max_items: a.max_items,
        notice_s: secs(a.notice),
        preemptions_per_hour: a.preemption_rate,
        checkpoint: a.checkpoint,
        spot_price: a.spot_price,
        on_demand_price: a.on_demand_price,
        max_replicas: a.max_replicas,
        pending_until_ready: !a.pending_until_running,
        horizon_s: secs(a.horizon),
        series_step_s: secs(a.series_step),
        seed: a.seed,
    })
}

fn llm(count: WorkCount, watch_pods: bool) -> Scaler {
    Scaler::LlmScaler { count, watch_pods, budget_per_hour: None, deadline_s: None }
}

/// The contender a policy name means at one target size.
pub fn contender(name: &str, target_size: f64) -> anyhow::Result<Contender> {
    let (scaler, strategy, on_demand) = match name {
        "keda-pending-default" => (Scaler::Keda(StreamsMetric::PendingEntries), Strategy::Default, false),
        "keda-pending-accurate" => (Scaler::Keda(StreamsMetric::PendingEntries), Strategy::Accurate, false),
        "keda-lag-default" => (Scaler::Keda(StreamsMetric::Lag), Strategy::Default, false),
        "keda-lag-accurate" => (Scaler::Keda(StreamsMetric::Lag), Strategy::Accurate, false),
        "llm-scaler-outstanding-default" => (llm(WorkCount::Outstanding, false), Strategy::Default, false),
        "llm-scaler-waiting-accurate" => (llm(WorkCount::Waiting, false), Strategy::Accurate, false),
        "llm-scaler-watch-accurate" => (llm(WorkCount::Waiting, true), Strategy::Accurate, false),
        "on-demand-watch-accurate" => (llm(WorkCount::Waiting, true), Strategy::Accurate, true),
        n => bail!("unknown policy {n}: expected one of {}", POLICIES.join(", ")),
    };
    Ok(Contender { name: format!("{name} T={target_size}"), scaler, strategy, target_size, on_demand })
}

/// Every contender the flags ask for.
pub fn lineup(a: &SimulateBatchArgs) -> anyhow::Result<Vec<Contender>> {
    let names: Vec<String> = a.policies.clone().unwrap_or_else(|| POLICIES.iter().map(|s| s.to_string()).collect());
    let mut out = Vec::new();
    for &t in &a.target_sizes {
        if !(t.is_finite() && t > 0.0) {
            bail!("--target-sizes: {t} is not a positive number of items");
        }
        for n in &names {
            out.push(contender(n.trim(), t)?);
        }
        let capped = |suffix: &str, budget: Option<f64>, deadline: Option<f64>| Contender {
            name: format!("llm-scaler-watch-accurate-{suffix} T={t}"),
            scaler: Scaler::LlmScaler { count: WorkCount::Waiting, watch_pods: true, budget_per_hour: budget, deadline_s: deadline },
            strategy: Strategy::Accurate,
            target_size: t,
            on_demand: false,
        };
        if let Some(b) = a.budget_per_hour {
            out.push(capped(&format!("budget{b}"), Some(b), None));
        }
        if let Some(d) = a.deadline {
            out.push(capped(&format!("deadline{}", humantime::format_duration(d)), None, Some(secs(d))));
        }
    }
    if out.is_empty() {
        bail!("no policy to simulate");
    }
    Ok(out)
}

/// Every contender on every seed, `threads` at a time; results in (contender, seed) order.
pub fn run_all(cfg: &BatchConfig, contenders: &[Contender], seeds: u32, threads: usize) -> Vec<RunResult> {
    let jobs: Vec<(BatchConfig, &Contender)> = contenders
        .iter()
        .flat_map(|c| (0..u64::from(seeds)).map(move |i| (BatchConfig { seed: cfg.seed.wrapping_add(i), ..cfg.clone() }, c)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((cfg, c)) = jobs.get(i) else { break };
                    let r = world::run(cfg, c);
                    out.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
                }
            });
        }
    });
    out.into_inner().unwrap_or_else(|p| p.into_inner()).into_iter().flatten().collect()
}

/// Runs `simulate-batch`.
pub fn run(a: SimulateBatchArgs) -> anyhow::Result<()> {
    let cfg = config(&a)?;
    let contenders = lineup(&a)?;
    let runs = run_all(&cfg, &contenders, a.seeds, a.threads);
    let summaries = report::summarise(&runs);
    print!("{}", report::table(&cfg, &summaries));
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let csv = dir.join("results.csv");
        std::fs::write(&csv, report::csv(&runs)).with_context(|| format!("writing {}", csv.display()))?;
        let json = dir.join("report.json");
        std::fs::write(&json, report::json(&cfg, &summaries, &runs)?).with_context(|| format!("writing {}", json.display()))?;
        println!("results: {}, {}", csv.display(), json.display());
        for &t in &a.target_sizes {
            let first: Vec<&RunResult> =
                runs.iter().filter(|r| r.seed == cfg.seed && contenders.iter().any(|c| c.name == r.policy && c.target_size == t)).collect();
            let f = dir.join(format!("queue_jobs_T{t}.svg"));
            plots::queue_and_jobs(&first, &f).map_err(anyhow::Error::msg)?;
            println!("plot: {}", f.display());
        }
    }
    Ok(())
}

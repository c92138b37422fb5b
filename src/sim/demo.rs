//! `llm-scaler demo`: the real scaler against the modelled fleet, on one machine, no cluster.
//!
//! By default one day of the bundled ServeGen rate curve (fitted to a 2..20 replica fleet as
//! `simulate --fit-peak-replicas 16` fits the 14 days) is compressed into two virtual hours and
//! replayed, fast-forwarded, against the simulator's modelled fleet ([`crate::sim::fleet`]: the
//! same routing, cold starts and drains); each replica serves its `/metrics` over loopback HTTP
//! (one [`FakePod`] per pod, sharing a port on its own IP). The REAL server ([`Server`] with
//! [`DiscoveryMode::Custom`]) discovers and scrapes them over HTTP as it would in a cluster; a
//! poller calls the gRPC RPCs as KEDA does, applies the HPA arithmetic ([`crate::sim::hpa`]) in
//! virtual time and resizes the fleet. A line per few virtual minutes shows the load, the
//! scaler's reading of it and each signal's demand; the end is `simulate`'s scoreboard
//! ([`scoreboard::table`]) for the same workload on one seed: the smallest static fleet meeting
//! the SLO (bisected), the peak-sized one, the `keda-tokens` baseline and llm-scaler replayed in
//! virtual time, then the live run judged by the same [`SloCriterion`]. A compressed day is
//! judged hour by hour over the hours of the SOURCE day ([`SimConfig::hour_s`]: 300 s of replay
//! at 12x), in the live run and the scoreboard alike.
//!
//! Time: virtual time is the wall clock times the speed-up S, read whenever anyone looks at the
//! fleet. The fleet is advanced to that instant both by the demo's loop and by every scrape
//! before the pod renders ([`World::render`]), so a body always shows the pod's counters at the
//! moment it is served. The server measures rates in wall-clock time, so it gets wall-clock
//! settings scaled by 1/S (its default collector tick, the latency window) and a tokens/s target
//! scaled by S; what it decides on is otherwise unchanged.

use std::{
    collections::HashMap,
    iter::Peekable,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use axum::body::Bytes;

use crate::{
    decide::policy::{PolicyConfig, Signal},
    discovery::{PodInfo, PodLister},
    proto::{GetMetricsRequest, ScaledObjectRef, external_scaler_client::ExternalScalerClient},
    serve::config::Settings,
    serve::grpc::METRIC_NAME,
    serve::server::{DiscoveryMode, Server},
    sim::{
        accounting::Ledger,
        capacity::replica_capacity,
        config::SimConfig,
        contest::{self, Contender, Plan},
        criterion::{HOUR_S, SloCriterion, Verdict},
        fleet::Fleet,
        hpa::Hpa,
        lineup::{Lineup, hpa_config},
        pods::{FakePod, LiveBody, next_loopback_ip},
        scoreboard::{self, Role, Scoreboard},
        search::static_fleet,
        seeds::Trials,
        stats::Percentiles,
        workload::{Arrivals, LengthDist, Process, RateCurve, Source, Workload, read_trace},
    },
    spec::LatencySpec,
};

/// The rate curve replayed by default (ServeGen, language m-large; see `data/README.md`).
const BUNDLED_CURVE: &[u8] = include_bytes!("../../data/traces/servegen/servegen_language_m-large_aggregate_rate.csv");

/// The 14-day curve's peak is fitted to this many replicas, as `simulate --fit-peak-replicas 16`
/// fits it to a 2..20 fleet (trough ~1.3, peak 16).
const FIT_PEAK_REPLICAS: f64 = 16.0;

/// KEDA's polling and the HPA's sync, virtual seconds.
const SYNC_S: f64 = 15.0;

/// How long the replay goes on after the workload for the fleet to finish, virtual seconds.
const TAIL_S: f64 = 60.0;

/// Decision lines printed over the replay.
const LINES: f64 = 30.0;

/// What the demo replays.
#[derive(Debug, Clone)]
pub enum DemoWorkload {
    /// One day of the bundled ServeGen curve, `compress` times faster (same rates).
    ServeGenDay {
        /// Day of the 14 (0-based).
        day: u32,
        /// Timeline compression: 12 plays the day in two virtual hours.
        compress: f64,
    },
    /// A per-request trace (Azure CSV, CSV/JSONL), as it is.
    Trace(PathBuf),
}

/// Demo knobs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Wall-clock length: the workload is fast-forwarded to fit.
    pub duration: Duration,
    /// What to replay.
    pub workload: DemoWorkload,
    /// Lower replica bound.
    pub min_replicas: u32,
    /// Upper replica bound.
    pub max_replicas: u32,
    /// Virtual cold start.
    pub cold_start: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            duration: Duration::from_secs(90),
            // Day 9: held out when the defaults were chosen, trough ~2.3 and peak ~14.4 replicas.
            workload: DemoWorkload::ServeGenDay { day: 9, compress: 12.0 },
            min_replicas: 2,
            max_replicas: 20,
            cold_start: Duration::from_secs(120),
        }
    }
}

/// Why the demo stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The scaler did not start.
    #[error("server: {0}")]
    Server(#[from] crate::serve::server::ServerError),
    /// A loopback listener could not bind.
    #[error("binding a fake pod on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The gRPC client failed.
    #[error("gRPC client: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The workload could not be read.
    #[error("workload: {0}")]
    Workload(#[from] crate::sim::workload::WorkloadError),
    /// The options describe nothing to replay.
    #[error("{0}")]
    Invalid(String),
}

/// Virtual time from the wall clock: `speed` virtual seconds per wall second since `start`.
/// Reading it, rather than adding a fixed step per loop turn, keeps the rates the server
/// measures in wall-clock time exact even when the loop falls behind on a busy machine.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    speed: f64,
}

impl Clock {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * self.speed
    }
}

/// The modelled world: the fleet, what is still to arrive, and what the requests got.
struct World {
    fleet: Fleet<'static>,
    arrivals: Peekable<Arrivals>,
    /// What the requests got, overall and per judged hour (`cfg.hour_s`), as a replay counts it.
    ledger: Ledger,
    clock: Clock,
    /// Virtual time the fleet is advanced to.
    now: f64,
    /// GPU time is counted up to here (the workload's end).
    count_until: f64,
    /// Arrivals of the current line window: count and tokens.
    window: (u64, f64),
}

impl World {
    /// `cfg.min_replicas` pods Ready at the start, nothing arrived yet.
    fn new(cfg: &SimConfig, workload: &Workload, clock: Clock) -> Self {
        let duration = workload.duration_s();
        World {
            fleet: Fleet::owned(cfg.clone(), cfg.seed).with_pods(cfg.min_replicas),
            arrivals: workload.arrivals().peekable(),
            ledger: Ledger::new(duration, cfg.hour_s, cfg.hour_s, cfg.slo),
            clock,
            now: 0.0,
            count_until: duration,
            window: (0, 0.0),
        }
    }

    /// Routes what arrived up to the clock's now and advances the fleet there.
    fn advance(&mut self) {
        let t = self.clock.now();
        if t <= self.now {
            return;
        }
        let World { fleet, arrivals, ledger, window, .. } = self;
        while let Some(r) = arrivals.next_if(|r| r.arrival_s <= t) {
            window.0 += 1;
            window.1 += f64::from(r.input) + f64::from(r.output);
            ledger.arrived(&r);
            fleet.route(r, &mut |d| ledger.done(d));
        }
        fleet.tick(t, t - self.now, self.count_until, &mut |d| ledger.done(d));
        self.now = t;
    }

    /// `pod`'s `/metrics` as it is at this instant (`None` once it has left).
    fn render(&mut self, pod: &str) -> Option<Bytes> {
        self.advance();
        let p = self.fleet.pods_mut().find(|p| p.name == pod)?;
        p.replica.sync_gauges();
        let mut body = String::with_capacity(16 * 1024);
        p.replica.pod.render(&mut body);
        Some(body.into())
    }
}

type SharedWorld = Arc<Mutex<World>>;

fn lock(w: &SharedWorld) -> std::sync::MutexGuard<'_, World> {
    // The world is plain data, whole after any panic.
    w.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the server's discovery sees.
#[derive(Default)]
struct Snapshot(Mutex<Vec<PodInfo>>);

struct FleetLister(Arc<Snapshot>);

impl PodLister for FleetLister {
    fn pods(&self, namespace: &str, _name: &str) -> Vec<PodInfo> {
        let v = self.0.0.lock().map(|v| v.clone()).unwrap_or_default();
        v.into_iter()
            .map(|mut p| {
                p.namespace = namespace.to_string();
                p
            })
            .collect()
    }
}

/// The pods' HTTP servers, one per pod, rendering from the shared world.
struct Servers {
    world: SharedWorld,
    by_pod: HashMap<String, FakePod>,
    /// The `metricsPort` every pod's server shares (0 until the first one binds).
    port: u16,
}

impl Servers {
    /// Starts a server for each new pod, stops those of pods gone, and returns what discovery
    /// should list: every pod as production's discovery lists it ([`crate::sim::fleet::Pod::info`]).
    async fn publish(&mut self) -> Result<Vec<PodInfo>, DemoError> {
        let names: Vec<String> = lock(&self.world).fleet.pods().iter().map(|p| p.name.clone()).collect();
        self.by_pod.retain(|name, _| names.contains(name));
        let new: Vec<&String> = names.iter().filter(|n| !self.by_pod.contains_key(*n)).collect();
        for name in new {
            let addr = SocketAddr::new(next_loopback_ip(), self.port);
            let (world, pod) = (self.world.clone(), name.clone());
            let body = LiveBody(Arc::new(move || lock(&world).render(&pod)));
            let server = FakePod::live(addr, body).await.map_err(|e| DemoError::Bind(addr, e))?;
            self.port = server.addr.port();
            self.by_pod.insert(name.clone(), server);
        }
        let w = lock(&self.world);
        Ok(w.fleet.pods().iter().filter_map(|p| self.by_pod.get(&p.name).map(|s| p.info(Some(s.addr.ip())))).collect())
    }
}

/// The workload, its name, and one replica's capacity within the SLO.
fn build_workload(opts: &DemoOptions, cfg: &SimConfig) -> Result<(Workload, f64), DemoError> {
    match &opts.workload {
        DemoWorkload::Trace(p) => {
            let trace = Arc::new(read_trace(p)?);
            let w = Workload::new(p.display().to_string(), Source::Trace(trace), 1);
            let cap = replica_capacity(cfg, &w, 0.99);
            Ok((w, cap))
        }
        DemoWorkload::ServeGenDay { day, compress } => {
            if !(compress.is_finite() && *compress >= 1.0) {
                return Err(DemoError::Invalid(format!("compression {compress}: expected a number >= 1")));
            }
            let curve = RateCurve::parse_servegen(BUNDLED_CURVE, "bundled ServeGen curve")?;
            let days = (curve.end_s() / 86_400.0).floor() as u32;
            if *day >= days {
                return Err(DemoError::Invalid(format!("day {day}: the curve has days 0..{}", days.saturating_sub(1))));
            }
            let global_peak = curve.peak_rps();
            let source =
                Source::Rate { curve, process: Process::Poisson, input: LengthDist::SERVEGEN_INPUT, output: LengthDist::SERVEGEN_OUTPUT };
            let mut w = Workload::new(format!("ServeGen language m-large, day {day} in {:.1} h", 24.0 / compress), source, 1);
            w.from_s = f64::from(*day) * 86_400.0;
            w.to_s = w.from_s + 86_400.0;
            let cap = replica_capacity(cfg, &w, 0.99);
            // Compressing the timeline multiplies the rate; the fit undoes it, so each moment of
            // the day keeps the rate `simulate --fit-peak-replicas 16` gives it.
            w.time_scale = 1.0 / compress;
            w.rate_scale = FIT_PEAK_REPLICAS * cap / global_peak.max(1e-9) * w.time_scale;
            Ok((w, cap))
        }
    }
}

/// The live run judged by `criterion`, as the scoreboard judges a replay (requests that arrived;
/// within the SLO by the hourly tallies, which count every finished request once, by arrival).
fn judge_live(criterion: &SloCriterion, ledger: &Ledger) -> Verdict {
    let within = ledger.hours().iter().map(|h| h.within_slo).sum();
    criterion.judge(ledger.requests, within, ledger.hours())
}

/// A verdict in one phrase: overall, good hours, worst hour, and whether it meets.
fn verdict_line(criterion: &SloCriterion, v: &Verdict) -> String {
    let mut s = format!("{:.2}% overall, {}/{} judged hours >= {}", v.overall * 100.0, v.good_hours, v.judged_hours, criterion.hour_target);
    if let Some(w) = v.worst_hour {
        s += &format!(", worst hour {:.2}% (hour {})", w.attainment * 100.0, w.hour);
    }
    if !v.unjudged_hours.is_empty() {
        s += &format!(", {} hour(s) not judged", v.unjudged_hours.len());
    }
    if v.meets() {
        s += ": meets the SLO";
    } else {
        let what: Vec<&str> = v.shortfalls.iter().map(|f| f.as_str()).collect();
        s += &format!(": misses the SLO ({})", what.join(", "));
    }
    s
}

/// `simulate`'s scoreboard for the same workload on one seed (`cfg.seed`), judged by
/// `criterion`: the smallest static fleet meeting it (bisected over `1..=max_replicas`), the
/// peak-sized static fleet, `keda-tokens` at its default target and llm-scaler with its defaults.
fn offline(cfg: &SimConfig, w: &Workload, criterion: SloCriterion) -> Result<Scoreboard, DemoError> {
    let lineup = Lineup::default();
    let mut contenders = vec![Contender::of(static_fleet(cfg.max_replicas))];
    for name in ["keda-tokens", "llm-scaler"] {
        contenders.push(Contender::of(lineup.policy(name, cfg).map_err(|e| DemoError::Invalid(e.to_string()))?));
    }
    let plan = Plan { lineup: contenders, static_search: Some(cfg.max_replicas), clairvoyant: false };
    let mut board = contest::run(&plan, &Trials::new(cfg, w, 1, criterion, 2), &|_| {});
    if cfg.hour_s != HOUR_S {
        board.notes.push(format!(
            "a judged hour is an hour of the source's timeline: {:.0} s of this replay (hours ok, worst h and the hour numbers count these)",
            cfg.hour_s
        ));
    }
    Ok(board)
}

/// The latest decision's reason, its tokens/s reading and each signal's demand, from the HTTP
/// API.
async fn explain(http: &reqwest::Client, url: &str) -> (String, Option<f64>) {
    let Ok(resp) = http.get(url).send().await else { return ("(decisions API unreachable)".into(), None) };
    let Ok(text) = resp.text().await else { return (String::new(), None) };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { return (String::new(), None) };
    let latest = &v["scaledobjects"][0]["latest"];
    let mut parts = Vec::new();
    let mut tokens = None;
    if let Some(sigs) = latest["signals"].as_array() {
        for s in sigs {
            if s["signal"].as_str() == Some(Signal::TokensPerSecond.as_str()) {
                tokens = s["raw"].as_f64();
            }
            if let (Some(name), Some(d)) = (s["signal"].as_str(), s["demand"].as_f64()) {
                parts.push(format!("{name} {d:.1}"));
            }
        }
    }
    let reason = latest["reason"].as_str().unwrap_or("-");
    let short = reason.split(':').next().unwrap_or(reason);
    (format!("{short} [{}]", parts.join(", ")), tokens)
}

/// The server's settings under a speed-up of `speed`: it runs in wall-clock time, so its
/// default collector tick is 1/S as long.
fn server_settings(speed: f64) -> Settings {
    let defaults = Settings::default();
    let tick = defaults.scrape_interval.div_f64(speed).max(Duration::from_millis(5));
    Settings {
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        scrape_interval: tick,
        scrape_timeout: tick.mul_f64(0.8).max(Duration::from_millis(40)),
        kube: false,
        ..defaults
    }
}

/// The modelled cluster and the workload the options describe: one replica's capacity measured
/// on the workload, and judged hours that are hours of the source's timeline (`3600 s x
/// time_scale` of virtual time: 300 s for a day compressed 12x).
fn setup(opts: &DemoOptions) -> Result<(SimConfig, Workload), DemoError> {
    let min = opts.min_replicas.max(1);
    let mut cfg = SimConfig {
        min_replicas: min,
        max_replicas: opts.max_replicas.max(min),
        cold_start_s: opts.cold_start.as_secs_f64(),
        ..SimConfig::default()
    };
    let (workload, capacity) = build_workload(opts, &cfg)?;
    cfg.replica_capacity_rps = capacity;
    cfg.hour_s = HOUR_S * workload.time_scale;
    Ok((cfg, workload))
}

/// Runs the demo, printing as it goes.
pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    let (cfg, workload) = setup(&opts)?;
    let criterion = SloCriterion::default();
    let virtual_len = workload.duration_s().max(1.0);
    let speed = (virtual_len / opts.duration.as_secs_f64().max(1.0)).max(1.0);
    let clock = Clock { start: Instant::now(), speed };

    let world = Arc::new(Mutex::new(World::new(&cfg, &workload, clock)));
    let mut servers = Servers { world: world.clone(), by_pod: HashMap::new(), port: 0 };
    let snapshot = Arc::new(Snapshot(Mutex::new(servers.publish().await?)));

    let defaults = Settings::default();
    let server = Server::start(server_settings(speed), DiscoveryMode::Custom(Arc::new(FleetLister(snapshot.clone())))).await?;
    let mut client = ExternalScalerClient::connect(format!("http://{}", server.grpc_addr)).await?;
    let http = reqwest::Client::new();
    let decisions_url = format!("http://{}/api/v1/decisions/demo/vllm-demo", server.http_addr);
    let tokens_target = PolicyConfig::default().targets.get(Signal::TokensPerSecond);
    let window_ms = (LatencySpec::default().window.as_secs_f64() * 1e3 / speed).max(200.0).round() as u64;
    let meta: HashMap<String, String> = [
        ("metricsPort", servers.port.to_string()),
        // Rates are per wall-clock second: S times the virtual rate.
        ("targetTokensPerSecond", format!("{}", tokens_target * speed)),
        ("latencyWindow", format!("{window_ms}ms")),
        ("minReplicas", cfg.min_replicas.to_string()),
        ("maxReplicas", cfg.max_replicas.to_string()),
        ("scalerAddress", server.grpc_addr.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let so = ScaledObjectRef { name: "vllm-demo".into(), namespace: "demo".into(), scaler_metadata: meta };
    let mut hpa = Hpa::new(hpa_config(&cfg, 0.0));

    println!("llm-scaler demo: the real scaler (gRPC {} / HTTP {}) against a modelled vLLM fleet", server.grpc_addr, server.http_addr);
    println!(
        "  workload  {}: {:.0} virtual min, ~{:.0} req/s on average, replayed {speed:.0}x faster",
        workload.name,
        virtual_len / 60.0,
        workload.mean_rps()
    );
    println!(
        "  replica   {} on {} x {} (vLLM TP{}), ~{:.2} req/s within the SLO",
        cfg.profile.model, cfg.profile.tp, cfg.profile.gpu, cfg.profile.tp, cfg.replica_capacity_rps
    );
    println!(
        "  cluster   pods on their own loopback IPs, port {}, Ready {:.0} s after a scale-up; collector every {:.0} s, KEDA/HPA every {SYNC_S:.0} s (tolerance 0, scale-down window 300 s); bounds {}..{}",
        servers.port,
        cfg.cold_start_s,
        defaults.scrape_interval.as_secs_f64(),
        cfg.min_replicas,
        cfg.max_replicas
    );
    println!("  SLO       TTFT <= {} s and TPOT <= {} ms  (times below are virtual)", cfg.slo.ttft_s, cfg.slo.tpot_s * 1e3);
    println!("  columns   req/s and tok/s arrived over the last {SYNC_S:.0} s; read = the scaler's tokens/s; demand in replicas");
    println!();
    println!(
        "{:>5} {:>6} {:>7} {:>7} {:>7} {:>6} {:>7}  decision (per-signal demand in replicas)",
        "t", "req/s", "tok/s", "read", "demand", "pods", "desired"
    );

    let syncs_per_line = ((virtual_len / SYNC_S / LINES).round() as u64).max(1);
    let (mut next_sync, mut syncs, mut last_value) = (SYNC_S, 0u64, f64::NAN);
    let end = virtual_len + TAIL_S;
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = {
            let mut w = lock(&world);
            w.advance();
            w.now
        };
        let infos = servers.publish().await?;
        if let Ok(mut s) = snapshot.0.lock() {
            *s = infos;
        }
        if now >= end {
            break;
        }
        if now < next_sync {
            continue;
        }
        // KEDA + HPA, every 15 virtual seconds.
        let at = next_sync;
        next_sync += SYNC_S;
        syncs += 1;
        let spec = client.get_metric_spec(so.clone()).await;
        let metrics = client.get_metrics(GetMetricsRequest { scaled_object_ref: Some(so.clone()), metric_name: METRIC_NAME.into() }).await;
        let (arrived, tokens, ready, current) = {
            let mut w = lock(&world);
            if let (Ok(spec), Ok(m)) = (spec, metrics) {
                let target = spec.into_inner().metric_specs.first().map_or(1.0, |s| s.target_size_float);
                let value: f64 = m.into_inner().metric_values.iter().map(|v| v.metric_value_float).sum();
                last_value = value;
                let cur = w.fleet.current();
                let desired = hpa.sync(Duration::from_secs_f64(at), cur, value, target);
                if at <= virtual_len || desired > cur {
                    w.fleet.scale_to(desired, at);
                }
            }
            let (n, tok) = std::mem::take(&mut w.window);
            (n, tok, w.fleet.ready(), w.fleet.current())
        };
        // Discovery sees a scale-down's drains at once, as a watch would within milliseconds.
        let infos = servers.publish().await?;
        if let Ok(mut s) = snapshot.0.lock() {
            *s = infos;
        }
        if syncs % syncs_per_line != 0 || at > virtual_len {
            continue;
        }
        let (why, read) = explain(&http, &decisions_url).await;
        let rps = arrived as f64 / SYNC_S;
        let m = (at / 60.0).floor();
        let desired = if last_value.is_nan() { "-".to_string() } else { format!("{last_value:.0}") };
        let read = read.map_or("-".to_string(), |r| format!("{:.0}", r / speed));
        let pods = format!("{ready}+{}", current.saturating_sub(ready));
        println!(
            "{:>2.0}:{:02.0} {rps:>6.1} {:>7.0} {read:>7} {:>7.1} {pods:>6} {desired:>7}  {why}",
            m,
            at - m * 60.0,
            tokens / SYNC_S,
            rps / cfg.replica_capacity_rps.max(1e-9)
        );
    }
    server.shutdown().await?;
    drop(servers);
    let (gpuh, actions, live, ttft, dropped) = {
        let mut w = lock(&world);
        let World { fleet, ledger, now, .. } = &mut *w;
        fleet.abort_all(*now, &mut |d| ledger.done(d));
        let live = judge_live(&criterion, ledger);
        (fleet.gpu_seconds() / 3600.0, fleet.actions(), live, Percentiles::of(&ledger.tally.ttft), ledger.tally.dropped)
    };
    let wall = clock.start.elapsed().as_secs_f64();

    println!();
    println!("the same workload in `simulate`'s scoreboard, one seed, in virtual time (static-N bisected):");
    let board = offline(&cfg, &workload, criterion)?;
    print!("{}", scoreboard::table(&board));
    let vs_static = match board.rows.iter().find(|r| r.role == Role::StaticMin && r.meets && r.gpu_hours.mean > 0.0) {
        Some(st) => {
            let saved = 1.0 - gpuh / st.gpu_hours.mean;
            format!("{:.1}% {} GPU-hours than {}", saved.abs() * 100.0, if saved >= 0.0 { "fewer" } else { "more" }, st.name)
        }
        None => "no static fleet within the bounds meets the SLO".into(),
    };
    println!();
    println!(
        "live (real server over HTTP + HPA model, {:.0} virtual min in {wall:.0} s): {gpuh:.1} GPU-hours, {}; {vs_static}; TTFT p50/p95/p99 {:.0}/{:.0}/{:.0} ms, {actions} scaling actions",
        virtual_len / 60.0,
        verdict_line(&criterion, &live),
        ttft.p50 * 1e3,
        ttft.p95 * 1e3,
        ttft.p99 * 1e3,
    );
    if dropped > 0 {
        println!("{dropped} requests dropped (a drain timed out, or still held when the run ended)");
    }
    println!("next: `llm-scaler simulate --help` compares every policy on your own traces");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sim::{criterion::Shortfall, engine::Done, workload::Request};

    #[test]
    fn the_default_demo_judges_the_twenty_four_hours_of_its_source_day_not_two_hours_of_replay() {
        let (cfg, w) = setup(&DemoOptions::default()).unwrap();
        assert_eq!(cfg.hour_s, 300.0);
        assert_eq!(w.duration_s(), 7200.0);
        let ledger = Ledger::new(w.duration_s(), cfg.hour_s, cfg.hour_s, cfg.slo);
        assert_eq!(ledger.hours().len(), 24);
    }

    #[test]
    fn a_bad_compressed_hour_misses_the_slo_that_wall_hours_would_hide() {
        // Two hours of replay holding 24 source hours of 100 requests each, all within the SLO
        // but 7 of source hour 13 (over the TTFT bound): 99.7 % overall.
        let count = |hour_s: f64| {
            let mut l = Ledger::new(7200.0, hour_s, hour_s, SimConfig::default().slo);
            for i in 0..2400u32 {
                let arrival_s = f64::from(i) * 3.0;
                l.arrived(&Request { arrival_s, input: 100, output: 10 });
                let late = (3900.0..3921.0).contains(&arrival_s);
                let ttft_s = Some(if late { 10.0 } else { 0.2 });
                l.done(Done { arrival_s, ttft_s, tpot_s: Some(0.02), e2e_s: 1.0, output: 10, completed: true });
            }
            l
        };
        let c = SloCriterion::default();
        let v = judge_live(&c, &count(300.0));
        assert_eq!((v.judged_hours, v.good_hours), (24, 23));
        assert_eq!(v.shortfalls, vec![Shortfall::WorstHour]);
        assert_eq!(v.worst_hour.map(|w| (w.hour, w.requests)), Some((13, 100)));
        let line = verdict_line(&c, &v);
        assert!(line.contains("23/24 judged hours >= 99%, worst hour 93.00% (hour 13): misses the SLO (worst hour)"), "{line}");
        // Judged by hours of replay time, the same requests meet: the bad hour is diluted.
        let wall = judge_live(&c, &count(HOUR_S));
        assert!(wall.meets(), "{}", verdict_line(&c, &wall));
        assert!(verdict_line(&c, &wall).ends_with("2/2 judged hours >= 99%, worst hour 99.42% (hour 1): meets the SLO"));
    }

    #[test]
    fn the_scoreboard_has_the_bisected_static_fleet_the_peak_one_keda_tokens_and_llm_scaler_judged_by_source_hours() {
        // 20 minutes at 12 req/s, judged in hours of 300 s (a source compressed 12x).
        let curve = RateCurve::synthetic("step:12:12:0", 1200.0, 10.0).unwrap();
        let source =
            Source::Rate { curve, process: Process::Poisson, input: LengthDist::SERVEGEN_INPUT, output: LengthDist::SERVEGEN_OUTPUT };
        let w = Workload::new("flat", source, 3);
        let cfg = SimConfig { min_replicas: 1, max_replicas: 8, replica_capacity_rps: 5.27, hour_s: 300.0, ..SimConfig::default() };
        let board = offline(&cfg, &w, SloCriterion::default()).unwrap();
        let rows: Vec<(&str, Role)> = board.rows.iter().map(|r| (r.name.as_str(), r.role)).collect();
        let n = board.static_search.as_ref().and_then(|s| s.size).expect("8 replicas are plenty");
        let static_n = format!("static-{n}");
        assert_eq!(
            rows,
            vec![
                (static_n.as_str(), Role::StaticMin),
                ("static-peak", Role::StaticPeak),
                ("keda-tokens", Role::Baseline),
                ("llm-scaler", Role::LlmScaler)
            ]
        );
        assert_eq!(board.seeds.len(), 1);
        for r in &board.rows {
            assert_eq!(r.runs[0].verdict.judged_hours, 4, "{}: 1200 s in hours of 300 s", r.name);
        }
        assert!(board.row(&static_n).unwrap().meets);
        let t = scoreboard::table(&board);
        assert!(t.contains("a judged hour is an hour of the source's timeline: 300 s of this replay"), "{t}");
    }

    /// The regression test of the demo's tokens/s reading. Before, the demo rendered every
    /// pod's body once per 10 ms loop turn and counted virtual time in fixed steps; a collector
    /// ticking faster than that (here every 10 ms wall = 5 virtual s at 500x) read the same
    /// body twice and saw 0 tokens/s on a loaded fleet, and a loop falling behind stretched
    /// virtual time against the wall clock. Now every scrape renders its pod at the virtual
    /// instant of the request: the reading follows the load.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_scaler_reads_the_token_rate_the_fleet_serves_even_when_it_scrapes_faster_than_the_loop_turns() {
        let speed = 500.0;
        let cfg = SimConfig { min_replicas: 4, max_replicas: 4, ..SimConfig::default() };
        let (rps, input, output) = (20.0, 500, 50);
        let curve = RateCurve::synthetic(&format!("step:{rps}:{rps}:0"), 4000.0, 60.0).unwrap();
        let source = Source::Rate { curve, process: Process::Poisson, input: LengthDist::Fixed(input), output: LengthDist::Fixed(output) };
        let w = Workload::new("steady", source, 3);
        let clock = Clock { start: Instant::now(), speed };
        let world = Arc::new(Mutex::new(World::new(&cfg, &w, clock)));
        let mut servers = Servers { world: world.clone(), by_pod: HashMap::new(), port: 0 };
        let snapshot = Arc::new(Snapshot(Mutex::new(servers.publish().await.unwrap())));
        let server = Server::start(server_settings(speed), DiscoveryMode::Custom(Arc::new(FleetLister(snapshot.clone())))).await.unwrap();
        let mut client = ExternalScalerClient::connect(format!("http://{}", server.grpc_addr)).await.unwrap();
        let meta: HashMap<String, String> =
            [("metricsPort".to_string(), servers.port.to_string()), ("targetTokensPerSecond".to_string(), format!("{}", 5500.0 * speed))]
                .into_iter()
                .collect();
        let so = ScaledObjectRef { name: "vllm-demo".into(), namespace: "demo".into(), scaler_metadata: meta };
        // The first RPC starts the collector.
        client.get_metric_spec(so.clone()).await.unwrap();
        let http = reqwest::Client::new();
        let url = format!("http://{}/api/v1/decisions/demo/vllm-demo", server.http_addr);
        let mut readings = Vec::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            lock(&world).advance();
            // Warm-up: the first virtual minute fills the pods.
            if clock.now() < 60.0 {
                continue;
            }
            if let (_, Some(r)) = explain(&http, &url).await {
                readings.push(r / speed);
            }
            client.get_metric_spec(so.clone()).await.unwrap();
        }
        server.shutdown().await.unwrap();
        let offered = rps * f64::from(input + output);
        assert!(readings.len() >= 20, "{} readings", readings.len());
        let zeros = readings.iter().filter(|r| **r == 0.0).count();
        assert_eq!(zeros, 0, "a loaded fleet read as idle: {readings:?}");
        readings.sort_by(f64::total_cmp);
        let median = readings[readings.len() / 2];
        assert!((median / offered - 1.0).abs() < 0.3, "median reading {median:.0} tok/s vs {offered:.0} offered: {readings:?}");
    }
}

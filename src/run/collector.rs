//! One ScaledObject's background loop: discover -> scrape -> signals -> policy -> store.
//!
//! Runs every scrape interval, never inside an RPC. Pods are scraped concurrently under a
//! per-ScaledObject and a process-wide bound; each failure is logged with the pod and the cause
//! and counted, never read as zero load. A tick in which no pod could be scraped produces no
//! decision: the previous one is served until it goes stale, then RPCs answer UNAVAILABLE.

use std::{collections::HashSet, net::SocketAddr, sync::Arc};

use futures::{StreamExt, stream};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    decide::{Decider, Tick, policy::Decision},
    discovery::{Exporter, FleetSource, PodInfo},
    read::dcgm::DcgmExtractor,
    read::vllm::PodSample,
    run::cost::{CostMeter, LedgerKind, max_gap},
    run::history::Persistence,
    run::target::{Shared, Target},
    run::telemetry::PodLabels,
    spec::{GpuField, ScalerSpec},
};

/// Runs until the ScaledObject goes idle, finding its pods through `fleet`.
pub async fn run(shared: Arc<Shared>, target: Arc<Target>, mut fleet: FleetSource) {
    let span = info_span!("scaledobject", namespace = %target.key.namespace, name = %target.key.name);
    async move {
        let spec = target.spec.clone();
        let mut decider = Decider::new(spec.policy.clone(), spec.latency.window, spec.latency.quantile);
        let mut persistence =
            shared.history.as_ref().map(|(store, every)| Persistence::new(store.clone(), &target.key.namespace, &target.key.name, *every));
        if let Some(p) = &mut persistence {
            p.restore(&mut decider).await;
        }
        let mut known: HashSet<String> = HashSet::new();
        // Late ticks (slow scrapes) are still charged; a process paused for minutes is not.
        let ledger =
            shared.ledgers.get(LedgerKind::ScaledObject, &target.key.namespace, &target.key.name, max_gap(shared.settings.stale_after));
        let mut cost = CostMeter::new(spec.cost, ledger);
        shared.metrics.slo(&target.labels, spec.slo.as_ref());
        let mut ticker = tokio::time::interval(shared.settings.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if target.presence.expired(shared.origin, shared.settings.idle_timeout) {
                info!(idle_for = ?target.presence.idle_for(shared.origin), "no RPC about this ScaledObject for a while: stopping collection");
                break;
            }
            let started = Instant::now();
            tick(&shared, &target, &spec, &mut fleet, &mut decider, &mut cost, &mut known).await;
            shared.metrics.tick(&target.labels, started.elapsed().as_secs_f64());
            if let Some(p) = &mut persistence {
                p.maybe_save(&decider, calendar().as_secs()).await;
            }
        }
        if let Some(p) = &mut persistence {
            p.save(&decider, calendar().as_secs()).await;
        }
        for pod in known {
            shared.metrics.forget_pod(&PodLabels { namespace: target.key.namespace.clone(), scaledobject: target.key.name.clone(), pod });
        }
    }
    .instrument(span)
    .await
}

/// The forecaster's calendar, since the Unix epoch (a clock set before 1970 reads as 0, which
/// the forecaster treats as older than any history: nothing is recorded rather than a wrong time).
fn calendar() -> std::time::Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

async fn tick(
    shared: &Shared,
    target: &Target,
    spec: &ScalerSpec,
    fleet: &mut FleetSource,
    decider: &mut Decider,
    cost: &mut CostMeter,
    known: &mut HashSet<String>,
) {
    let now = shared.origin.elapsed();
    let all = match fleet.pods().await {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "pod discovery failed");
            cost.interrupted();
            target.store.record_problem(e.to_string());
            shared.metrics.unavailable(&target.labels);
            return;
        }
    };
    let starting = all.iter().filter(|p| p.is_starting()).count() as u32;
    let ready: Vec<PodInfo> = all.iter().filter(|p| p.scrapeable().is_some()).cloned().collect();
    let results = scrape_pods(shared, target, spec, fleet, &ready).await;
    let tokens = results.iter().filter_map(|(pod, r)| Some((*pod, r.as_ref().ok()?.tokens_total?)));
    let (reading, news) = cost.observe(now, &all, tokens);
    if let (crate::run::cost::CostReading::Unknown { reason }, true) = (&reading, news) {
        warn!(%reason, "no cost metrics for this ScaledObject until its pods' GPUs are known");
    }
    shared.metrics.cost_of(&target.labels, &reading);
    target.store.record_cost(reading);
    let gpu_activity = scrape_gpus(shared, fleet, &ready).await;
    let ready_names: HashSet<&str> = ready.iter().map(|p| p.name.as_str()).collect();
    forget_departed(shared, target, &ready_names, known);
    let cold_starts = ready.iter().filter_map(|p| p.ready_after).collect();
    let tick = Tick { now, calendar: calendar(), starting, cold_starts, pods: results, gpus: gpu_activity };
    match decider.tick(tick) {
        Ok(d) => publish(shared, target, d),
        Err(e) => {
            warn!(reason = %e, "no decision this tick");
            target.store.record_problem(e.to_string());
            shared.metrics.unavailable(&target.labels);
        }
    }
}

fn publish(shared: &Shared, target: &Target, d: Decision) {
    let contributions: Vec<String> = d
        .signals
        .iter()
        .filter(|r| r.raw.is_some())
        .map(|r| {
            format!(
                "{}={:.3}(demand {:.2}, contrib {:.2})",
                r.signal,
                r.raw.unwrap_or_default(),
                r.demand.unwrap_or_default(),
                r.contribution
            )
        })
        .collect();
    info!(
        desired = d.desired_replicas,
        current = d.current_replicas,
        outcome = ?d.outcome,
        active = d.active,
        signals = %contributions.join(" "),
        reason = %d.reason,
        "decision"
    );
    shared.metrics.decision(&target.labels, &d);
    target.store.publish(d, Instant::now());
}

async fn scrape_pods<'p>(
    shared: &Shared,
    target: &Target,
    spec: &ScalerSpec,
    fleet: &FleetSource,
    ready: &'p [PodInfo],
) -> Vec<(&'p str, Result<PodSample, String>)> {
    // Futures collected first: a `stream::map` closure over borrowed pods trips the compiler's
    // higher-ranked Send check inside `tokio::spawn`.
    let futs: Vec<_> = ready.iter().map(|pod| scrape_pod(shared, target, spec, pod, fleet.metrics_addr(pod))).collect();
    stream::iter(futs).buffer_unordered(shared.settings.per_target_concurrency.max(1)).collect().await
}

async fn scrape_pod<'p>(
    shared: &Shared,
    target: &Target,
    spec: &ScalerSpec,
    pod: &'p PodInfo,
    addr: Option<SocketAddr>,
) -> (&'p str, Result<PodSample, String>) {
    let span = info_span!("pod", pod = %pod.name);
    async move {
        let Some(addr) = addr else { return (pod.name.as_str(), Err("no IP".to_string())) };
        let url = format!("http://{addr}{}", spec.metrics_path);
        let labels = PodLabels { namespace: target.key.namespace.clone(), scaledobject: target.key.name.clone(), pod: pod.name.clone() };
        let Ok(_permit) = shared.limiter.acquire().await else {
            return (pod.name.as_str(), Err("shutting down".to_string()));
        };
        let started = Instant::now();
        let mut x = spec.vllm_extractor();
        let res = match shared.scraper.scrape(&url, &mut x).await {
            Ok(_) => x.finish().map_err(|e| (format!("{url}: {e}"), "no_vllm_metrics")),
            Err(e) => Err((e.to_string(), e.kind())),
        };
        let secs = started.elapsed().as_secs_f64();
        shared.metrics.pod_scrape(&labels, secs, res.as_ref().err().map(|e| e.1));
        match res {
            Ok(s) => {
                debug!(waiting = s.waiting, running = s.running, secs, "scraped");
                (pod.name.as_str(), Ok(s))
            }
            Err((e, _)) => {
                warn!(error = %e, "scrape failed");
                (pod.name.as_str(), Err(e))
            }
        }
    }
    .instrument(span)
    .await
}

/// GPU activity of the Ready pods, from the dcgm-exporter on each of their nodes.
async fn scrape_gpus<'p>(shared: &Shared, fleet: &FleetSource, ready: &'p [PodInfo]) -> Vec<(&'p str, f64)> {
    let ns = fleet.namespace();
    let futs: Vec<_> =
        fleet.exporters(ready).into_iter().map(|Exporter { addr, pods, field }| scrape_dcgm(shared, ns, addr, pods, field)).collect();
    let results: Vec<_> = stream::iter(futs).buffer_unordered(shared.settings.per_target_concurrency.max(1)).collect().await;
    let mut activity = Vec::new();
    for (url, pods, res) in results {
        match res {
            Ok(act) => activity.extend(pods.into_iter().filter_map(|p| act.mean(p).map(|m| (p, m)))),
            Err(e) => warn!(exporter = %url, error = %e, "dcgm-exporter scrape failed; GPU signal missing for its pods"),
        }
    }
    activity
}

async fn scrape_dcgm<'p>(
    shared: &Shared,
    ns: &str,
    addr: SocketAddr,
    pods: Vec<&'p str>,
    field: GpuField,
) -> (String, Vec<&'p str>, Result<crate::read::dcgm::GpuActivity, String>) {
    let url = format!("http://{addr}/metrics");
    let Ok(_permit) = shared.limiter.acquire().await else { return (url, pods, Err("shutting down".to_string())) };
    let res = {
        let mut x = DcgmExtractor::new(field, ns, &pods);
        match shared.scraper.scrape(&url, &mut x).await {
            Ok(_) => x.finish(),
            Err(e) => Err(e.to_string()),
        }
    };
    (url, pods, res)
}

/// Drops the per-pod metric series of pods that left the fleet.
fn forget_departed(shared: &Shared, target: &Target, ready: &HashSet<&str>, known: &mut HashSet<String>) {
    known.retain(|pod| {
        let keep = ready.contains(pod.as_str());
        if !keep {
            shared.metrics.forget_pod(&PodLabels {
                namespace: target.key.namespace.clone(),
                scaledobject: target.key.name.clone(),
                pod: pod.clone(),
            });
        }
        keep
    });
    for p in ready {
        if !known.contains(*p) {
            known.insert((*p).to_string());
        }
    }
}

//! One ScaledObject's background loop: discover -> scrape -> signals -> policy -> store.
//!
//! Runs every scrape interval, never inside an RPC. Pods are scraped concurrently under a
//! per-ScaledObject and a process-wide bound; each failure is logged with the pod and the cause
//! and counted, never read as zero load. A tick in which no pod could be scraped produces no
//! decision: the previous one is served until it goes stale, then RPCs answer UNAVAILABLE.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, stream};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::{
    decide::{Decider, Tick, policy::Decision},
    discovery::{Discovery, PodInfo, kube::PodWatch},
    read::dcgm::DcgmExtractor,
    read::vllm::{PodSample, VllmExtractor},
    run::target::{Shared, Target},
    run::telemetry::PodLabels,
    spec::{GpuField, GpuSource, PodSource, ScalerSpec},
};

/// How often a scale target's selector is looked up again (it rarely changes).
const RESOLVE_EVERY: Duration = Duration::from_secs(300);

/// Where this ScaledObject's pods come from, with any cached discovery state.
enum FleetPods {
    Static(Vec<PodInfo>),
    Custom(Arc<dyn crate::discovery::PodLister>),
    Kube {
        disc: crate::discovery::kube::KubeDiscovery,
        namespace: String,
        explicit: Option<String>,
        watch: Option<(String, PodWatch, Instant)>,
    },
    Unavailable(&'static str),
}

impl FleetPods {
    fn new(spec: &ScalerSpec, discovery: &Discovery) -> Self {
        match (&spec.pods, discovery) {
            (PodSource::Static(eps), _) => FleetPods::Static(
                eps.iter()
                    .map(|e| PodInfo { name: e.name.clone(), namespace: String::new(), ip: Some(e.addr.ip()), node: None, ready: true })
                    .collect(),
            ),
            (PodSource::Kube { .. }, Discovery::Custom(l)) => FleetPods::Custom(l.clone()),
            (PodSource::Kube { namespace, selector }, Discovery::Kube(d)) => {
                FleetPods::Kube { disc: d.clone(), namespace: namespace.clone(), explicit: selector.clone(), watch: None }
            }
            (PodSource::Kube { .. }, Discovery::None) => FleetPods::Unavailable("Kubernetes discovery is disabled (--no-kube)"),
        }
    }

    /// The pods now, from memory (an API call only to resolve a scale target's selector, at
    /// most every few minutes).
    async fn pods(&mut self, namespace: &str, name: &str) -> Result<Vec<PodInfo>, String> {
        match self {
            FleetPods::Static(p) => Ok(p.clone()),
            FleetPods::Custom(l) => Ok(l.pods(namespace, name)),
            FleetPods::Unavailable(why) => Err((*why).to_string()),
            FleetPods::Kube { disc, namespace: pod_ns, explicit, watch } => {
                let due = watch.as_ref().is_none_or(|(_, _, at)| explicit.is_none() && at.elapsed() >= RESOLVE_EVERY);
                if due {
                    let selector = match explicit {
                        Some(s) => Ok(s.clone()),
                        None => disc.resolve_selector(namespace, name).await.map_err(|e| e.to_string()),
                    };
                    match selector {
                        Ok(sel) if watch.as_ref().is_some_and(|(s, _, _)| *s == sel) => {
                            if let Some(w) = watch.as_mut() {
                                w.2 = Instant::now();
                            }
                        }
                        Ok(sel) => {
                            info!(selector = %sel, namespace = %pod_ns, "watching pods");
                            let w = disc.watch_pods(pod_ns, &sel);
                            *watch = Some((sel, w, Instant::now()));
                        }
                        // Keep the last known selector and cache while the API server is away.
                        Err(e) if watch.is_some() => {
                            warn!(error = %e, "could not refresh the scale target's selector; keeping the last one")
                        }
                        Err(e) => return Err(format!("cannot find the pods: {e}")),
                    }
                }
                let Some((sel, w, _)) = watch.as_ref() else { return Err("pod selector not resolved yet".into()) };
                if !w.is_synced() {
                    return Err(format!("pod cache for \"{sel}\" in {pod_ns} has not synced with the API server yet"));
                }
                Ok(w.snapshot())
            }
        }
    }
}

/// Where the GPU numbers of the fleet's pods come from.
enum GpuPods {
    None,
    Static(Vec<SocketAddr>, GpuField),
    Kube { watch: PodWatch, port: u16, field: GpuField },
}

impl GpuPods {
    fn new(spec: &ScalerSpec, discovery: &Discovery) -> Self {
        match (&spec.gpu, discovery) {
            (GpuSource::None, _) => GpuPods::None,
            (GpuSource::StaticDcgm { endpoints, field }, _) => GpuPods::Static(endpoints.clone(), *field),
            (GpuSource::KubeDcgm { namespace, selector, port, field }, Discovery::Kube(d)) => {
                GpuPods::Kube { watch: d.watch_pods(namespace, selector), port: *port, field: *field }
            }
            (GpuSource::KubeDcgm { .. }, _) => GpuPods::None,
        }
    }

    /// `(exporter address, pods of the fleet it covers, field)` for every exporter to scrape.
    fn plan<'p>(&self, ready: &'p [PodInfo]) -> Vec<(SocketAddr, Vec<&'p str>, GpuField)> {
        match self {
            GpuPods::None => Vec::new(),
            GpuPods::Static(eps, field) => {
                let all: Vec<&str> = ready.iter().map(|p| p.name.as_str()).collect();
                eps.iter().map(|a| (*a, all.clone(), *field)).collect()
            }
            GpuPods::Kube { watch, port, field } => {
                let exporters = watch.snapshot();
                let mut by_node: HashMap<&str, Vec<&str>> = HashMap::new();
                for p in ready {
                    if let Some(n) = p.node.as_deref() {
                        by_node.entry(n).or_default().push(p.name.as_str());
                    }
                }
                by_node
                    .into_iter()
                    .filter_map(|(node, pods)| {
                        let ex = exporters.iter().find(|e| e.node.as_deref() == Some(node) && e.scrapeable().is_some())?;
                        Some((SocketAddr::new(ex.ip?, *port), pods, *field))
                    })
                    .collect()
            }
        }
    }
}

/// Runs until the ScaledObject goes idle.
pub async fn run(shared: Arc<Shared>, target: Arc<Target>) {
    let span = info_span!("scaledobject", namespace = %target.key.namespace, name = %target.key.name);
    async move {
        let spec = target.spec.clone();
        let mut pods = FleetPods::new(&spec, &shared.discovery);
        let gpus = GpuPods::new(&spec, &shared.discovery);
        let mut decider = Decider::new(spec.policy.clone(), spec.latency.window, spec.latency.quantile);
        let mut known: HashSet<String> = HashSet::new();
        let mut ticker = tokio::time::interval(shared.settings.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if !target.has_streams() && target.idle_for(shared.origin) > shared.settings.idle_timeout {
                info!(idle_for = ?target.idle_for(shared.origin), "no RPC about this ScaledObject for a while: stopping collection");
                break;
            }
            let started = Instant::now();
            tick(&shared, &target, &spec, &mut pods, &gpus, &mut decider, &mut known).await;
            shared.metrics.tick(&target.labels, started.elapsed().as_secs_f64());
        }
        for pod in known {
            shared.metrics.forget_pod(&PodLabels { namespace: target.key.namespace.clone(), scaledobject: target.key.name.clone(), pod });
        }
    }
    .instrument(span)
    .await
}

async fn tick(
    shared: &Shared,
    target: &Target,
    spec: &ScalerSpec,
    fleet: &mut FleetPods,
    gpus: &GpuPods,
    decider: &mut Decider,
    known: &mut HashSet<String>,
) {
    let now = shared.origin.elapsed();
    let all = match fleet.pods(&target.key.namespace, &target.key.name).await {
        Ok(p) => p,
        Err(e) => {
            warn!(error = %e, "pod discovery failed");
            target.store.record_problem(e);
            shared.metrics.unavailable(&target.labels);
            return;
        }
    };
    let (ready, starting): (Vec<PodInfo>, Vec<PodInfo>) = all.into_iter().partition(|p| p.scrapeable().is_some());
    let results = scrape_pods(shared, target, spec, &ready).await;
    let gpu_activity = scrape_gpus(shared, target, gpus, &ready).await;
    let ready_names: HashSet<&str> = ready.iter().map(|p| p.name.as_str()).collect();
    forget_departed(shared, target, &ready_names, known);
    let tick = Tick { now, starting: starting.len() as u32, pods: results, gpus: gpu_activity };
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
    ready: &'p [PodInfo],
) -> Vec<(&'p str, Result<PodSample, String>)> {
    // Futures collected first: a `stream::map` closure over borrowed pods trips the compiler's
    // higher-ranked Send check inside `tokio::spawn`.
    // Static endpoints carry their own port; discovered pods use `metricsPort`.
    let static_addrs: HashMap<&str, SocketAddr> = match &spec.pods {
        PodSource::Static(eps) => eps.iter().map(|e| (e.name.as_str(), e.addr)).collect(),
        PodSource::Kube { .. } => HashMap::new(),
    };
    let futs: Vec<_> = ready
        .iter()
        .map(|pod| {
            let addr =
                static_addrs.get(pod.name.as_str()).copied().or_else(|| pod.scrapeable().map(|ip| SocketAddr::new(ip, spec.metrics_port)));
            scrape_pod(shared, target, spec, pod, addr)
        })
        .collect();
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
        let mut x = VllmExtractor::new(spec.model_name.clone(), spec.latency.histogram.families());
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
async fn scrape_gpus<'p>(shared: &Shared, target: &Target, gpus: &GpuPods, ready: &'p [PodInfo]) -> Vec<(&'p str, f64)> {
    let plan = gpus.plan(ready);
    let ns = target.pod_namespace();
    let futs: Vec<_> = plan.into_iter().map(|(addr, pods, field)| scrape_dcgm(shared, ns, addr, pods, field)).collect();
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

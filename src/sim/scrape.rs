//! What the HPA-driven policies read from the fleet, through the production parsers: each pod
//! renders its state as vLLM and dcgm-exporter text, which the scaler's own extractors read
//! (the HTTP hop replaced by a function call). llm-scaler's number comes from the same
//! [`Decider`] the server's collector owns; the baselines' from a Prometheus-like sum.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    time::Duration,
};

use crate::{
    decide::{Decider, Tick, forecast::HistorySnapshot, policy::Signal},
    read::{
        dcgm::DcgmExtractor,
        exposition,
        vllm::{PodSample, VllmExtractor},
    },
    sim::{
        fleet::{Fleet, Pod},
        render::dcgm::{self as dcgm_render, DcgmFlavor},
        report::{DeciderMinute, DeciderTrace},
        workload::Workload,
    },
    spec::{GpuField, GpuSource, LatencyHistogram, ScalerSpec},
};

/// Reusable buffers for scraping modelled pods through the production parsers.
pub struct Scraper {
    body: String,
    vllm: Option<VllmExtractor>,
}

impl Default for Scraper {
    fn default() -> Self {
        Scraper { body: String::with_capacity(64 * 1024), vllm: None }
    }
}

impl Scraper {
    /// The pod's vLLM `/metrics`, read by `extractor` (made once, on the first scrape) as the
    /// collector reads it.
    pub fn vllm(&mut self, pod: &mut Pod, extractor: impl FnOnce() -> VllmExtractor) -> Result<PodSample, String> {
        pod.replica.sync_gauges();
        self.body.clear();
        pod.replica.pod.render(&mut self.body);
        let x = self.vllm.get_or_insert_with(extractor);
        x.reset();
        exposition::parse(self.body.as_bytes(), x).map_err(|e| e.to_string())?;
        x.finish().map_err(|e| e.to_string())
    }

    /// The pod's GPUs as dcgm-exporter shows them: the mean of `field` over its GPUs.
    pub fn gpu(&mut self, pod: &mut Pod, field: GpuField) -> Option<f64> {
        let load = pod.replica.batch_fill();
        for g in &mut pod.gpus {
            g.apply_load(load);
            // dcgm-exporter's GPU_UTIL is a duty cycle: the share of the last sample period a
            // kernel ran, near 100 % whenever a batch is running.
            g.util = pod.duty;
            g.gr_engine_active = 0.95 * pod.duty;
        }
        self.body.clear();
        dcgm_render::render(&pod.gpus, DcgmFlavor::V4_6, &mut self.body);
        let wanted = [pod.name.as_str()];
        let mut x = DcgmExtractor::new(field, "sim", &wanted);
        exposition::parse(self.body.as_bytes(), &mut x).ok()?;
        x.finish().ok()?.mean(&pod.name)
    }
}

/// Where an HPA-driven policy gets its number, and the latest one.
pub enum Source {
    /// Prometheus' latest `sum(DCGM_FI_DEV_GPU_UTIL)/100` over the fleet's pods.
    Gpu {
        /// The latest sum.
        latest: Option<f64>,
    },
    /// Prometheus' latest `sum(vllm:num_requests_waiting)`.
    Queue {
        /// The latest sum.
        latest: Option<f64>,
    },
    /// Prometheus' latest `sum(rate(vllm:prompt_tokens_total[1m]) +
    /// rate(vllm:generation_tokens_total[1m]))` over the fleet's pods.
    Tokens {
        /// The latest sum, tokens/s.
        latest: Option<f64>,
        /// Per pod, its scrapes of the last minute: `(time, prompt + generation tokens)`.
        history: HashMap<String, VecDeque<(f64, f64)>>,
    },
    /// llm-scaler's collector: its decider, ticked on every scrape.
    LlmScaler {
        /// The parsed metadata.
        spec: Box<ScalerSpec>,
        /// Source time of each replay time (the forecaster's calendar).
        calendar: Calendar,
        /// The server's decision step.
        decider: Box<Decider>,
        /// The latest desired replicas.
        latest: Option<f64>,
        /// Decisions each signal dominated.
        dominant: BTreeMap<String, u64>,
        /// The first decision of each minute.
        minutes: Vec<DeciderMinute>,
    },
}

impl Source {
    /// llm-scaler configured by `spec`, on `calendar`, its forecaster warmed with `history` (what
    /// the server would have persisted before the replay starts) when there is one.
    pub fn llm_scaler(spec: &ScalerSpec, calendar: Calendar, history: Option<&HistorySnapshot>) -> Self {
        let mut decider = Decider::new(spec.policy.clone(), spec.latency.window, spec.latency.quantile);
        if let Some(h) = history {
            // The same restore the server does; a refusal leaves it cold, as there.
            let _ = decider.restore_history(h);
        }
        Source::LlmScaler {
            spec: Box::new(spec.clone()),
            calendar,
            decider: Box::new(decider),
            latest: None,
            dominant: BTreeMap::new(),
            minutes: Vec::new(),
        }
    }

    /// The latest number (what KEDA would hand the HPA now).
    pub fn latest(&self) -> Option<f64> {
        match self {
            Source::LlmScaler { latest, .. } | Source::Gpu { latest } | Source::Queue { latest } | Source::Tokens { latest, .. } => *latest,
        }
    }

    /// For llm-scaler: decisions each signal dominated.
    pub fn dominant(&self) -> Option<&BTreeMap<String, u64>> {
        match self {
            Source::LlmScaler { dominant, .. } => Some(dominant),
            _ => None,
        }
    }

    /// For llm-scaler: its decider minute by minute, and its forecast errors.
    pub fn trace(&self) -> Option<DeciderTrace> {
        let Source::LlmScaler { decider, minutes, .. } = self else { return None };
        let f = decider.forecaster();
        Some(DeciderTrace {
            minutes: minutes.clone(),
            forecast_errors: f.map(|f| f.errors()).unwrap_or_default(),
            chosen_errors: f.map(|f| f.chosen_errors()),
            lead_s: minutes.iter().rev().find_map(|m| m.lead_s).unwrap_or(0),
        })
    }

    /// Scrapes the Ready pods at `t`: llm-scaler's collector tick, or Prometheus' scrape.
    pub fn scrape(&mut self, fleet: &mut Fleet<'_>, scraper: &mut Scraper, t: f64) {
        // The Prometheus-based baselines read the same rendered text through the same parsers.
        match self {
            Source::Gpu { latest } => {
                let mut total = None;
                for pod in fleet.ready_pods_mut() {
                    if let Some(g) = scraper.gpu(pod, GpuField::GpuUtil) {
                        *total.get_or_insert(0.0) += g;
                    }
                }
                *latest = total;
            }
            Source::Queue { latest } => {
                let mut total = None;
                for pod in fleet.ready_pods_mut() {
                    if let Ok(s) = scraper.vllm(pod, || VllmExtractor::new(None, LatencyHistogram::Ttft.families())) {
                        *total.get_or_insert(0.0) += s.waiting;
                    }
                }
                *latest = total;
            }
            Source::Tokens { latest, history } => {
                let mut seen = Vec::new();
                for pod in fleet.ready_pods_mut() {
                    if let Ok(Some(total)) =
                        scraper.vllm(pod, || VllmExtractor::new(None, LatencyHistogram::Ttft.families())).map(|s| s.tokens_total)
                    {
                        history.entry(pod.name.clone()).or_default().push_back((t, total));
                        seen.push(pod.name.clone());
                    }
                }
                // A pod that is no longer scraped has no series in the window any more.
                history.retain(|name, _| seen.contains(name));
                *latest = tokens_rate(history, t);
            }
            Source::LlmScaler { spec, calendar, decider, latest, dominant, minutes } => {
                let gpu_field = match &spec.gpu {
                    GpuSource::None => None,
                    GpuSource::StaticDcgm { field, .. } | GpuSource::KubeDcgm { field, .. } => Some(*field),
                };
                // Scrape every Ready pod (rendering needs the pod mutably), then hand the tick
                // to the decider with the pods' names, as the collector does.
                let readings: Vec<(Result<PodSample, String>, Option<f64>)> = fleet
                    .ready_pods_mut()
                    .map(|pod| {
                        let sample = scraper.vllm(pod, || spec.vllm_extractor());
                        let gpu = gpu_field.and_then(|field| scraper.gpu(pod, field));
                        (sample, gpu)
                    })
                    .collect();
                let names: Vec<&str> = fleet.ready_pods().map(|p| p.name.as_str()).collect();
                let tick = Tick {
                    now: Duration::from_secs_f64(t),
                    calendar: Duration::from_secs_f64(calendar.at(t)),
                    // As production's discovery counts them: every pod listed but not
                    // scraped (starting, and draining ones, which are being deleted).
                    starting: fleet.starting(),
                    // In source time, as the forecaster's minutes are (a compressed replay's
                    // cold start spans more source seconds).
                    cold_starts: fleet.ready_pods().filter_map(|p| p.ready_after()).map(|c| c.div_f64(calendar.time_scale)).collect(),
                    gpus: names.iter().zip(&readings).filter_map(|(name, (_, g))| g.map(|g| (*name, g))).collect(),
                    pods: names.iter().zip(readings).map(|(name, (sample, _))| (*name, sample)).collect(),
                };
                // Like the server: a tick without a decision leaves KEDA reading the last one.
                if let Ok(d) = decider.tick(tick) {
                    if let Some(s) = d.dominant {
                        *dominant.entry(s.as_str().to_string()).or_default() += 1;
                    }
                    if minutes.last().is_none_or(|m| (m.t / 60.0).floor() < (t / 60.0).floor()) {
                        let tokens = d.signals.iter().find(|r| r.signal == Signal::TokensPerSecond);
                        let f = d.forecast.as_ref();
                        minutes.push(DeciderMinute {
                            t,
                            desired: d.desired_replicas,
                            demand: tokens.filter(|r| r.reporting_pods == d.ready_pods).and_then(|r| r.raw),
                            capacity: d.capacity.as_ref().map(|c| c.learned),
                            forecast: f.and_then(|f| f.point),
                            lead_s: f.map(|f| f.lead_s),
                            upper: f.and_then(|f| f.upper),
                            floor: f.and_then(|f| f.floor),
                            bound: f.is_some_and(|f| f.bound),
                        });
                    }
                    *latest = Some(f64::from(d.desired_replicas));
                }
            }
        }
    }
}

/// Replay time to source time: `origin + t / time_scale` (a compressed replay's minute is
/// several source minutes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calendar {
    /// Source seconds at replay time 0 (`--from`).
    pub origin_s: f64,
    /// The workload's time scale.
    pub time_scale: f64,
}

impl Calendar {
    /// The calendar of `workload`.
    pub fn of(workload: &Workload) -> Self {
        Calendar { origin_s: workload.from_s, time_scale: workload.time_scale }
    }

    /// Source seconds at replay time `t`.
    pub fn at(self, t: f64) -> f64 {
        self.origin_s + t / self.time_scale
    }
}

/// Prometheus' `rate(x[1m])` summed over pods: per pod, the increase between the first and last
/// sample of the last minute over the time between them (no extrapolation to the window's
/// edges); a pod with fewer than two samples in the window has no rate yet. `None` when no pod
/// has one (the query returns nothing and KEDA keeps the last value).
pub fn tokens_rate(history: &mut HashMap<String, VecDeque<(f64, f64)>>, t: f64) -> Option<f64> {
    const WINDOW_S: f64 = 60.0;
    let mut sum = None;
    for samples in history.values_mut() {
        while samples.front().is_some_and(|(at, _)| t - at > WINDOW_S) {
            samples.pop_front();
        }
        if let (Some(&(t0, v0)), Some(&(t1, v1))) = (samples.front(), samples.back())
            && t1 > t0
        {
            // Counters only go up; a reset (a restarted pod) counts from zero like Prometheus.
            let increase = if v1 >= v0 { v1 - v0 } else { v1 };
            *sum.get_or_insert(0.0) += increase / (t1 - t0);
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_rate_is_the_last_minute_s_increase_summed_over_pods() {
        let mut h: HashMap<String, VecDeque<(f64, f64)>> = HashMap::new();
        // Pod a: 1,000 tokens/s, scraped every 15 s for 90 s; pod b: one sample only.
        h.insert("a".into(), (0..=6).map(|i| (f64::from(i) * 15.0, f64::from(i) * 15_000.0)).collect());
        h.insert("b".into(), VecDeque::from([(90.0, 5e6)]));
        let r = tokens_rate(&mut h, 90.0).unwrap();
        assert!((r - 1000.0).abs() < 1e-9, "{r}");
        assert_eq!(h["a"].len(), 5, "samples older than a minute are dropped");
        assert_eq!(tokens_rate(&mut HashMap::new(), 0.0), None);
    }
}

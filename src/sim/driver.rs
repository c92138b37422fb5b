//! What acts on the fleet's size under each policy, on its own schedule: nothing (a static
//! fleet), KEDA + the HPA reading a [`Source`] (scrape, KEDA's polling, the HPA's sync), or the
//! KPA on its tick.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use crate::{
    decide::forecast::ForecastMode,
    sim::{
        config::SimConfig,
        fleet::Fleet,
        hpa::{Hpa, HpaConfig},
        kpa::Kpa,
        lineup::PolicyKind,
        report::DeciderTrace,
        schedule::Schedule,
        scrape::{Calendar, Scraper, Source},
        warm,
        workload::Workload,
    },
};

/// Something due every `every` seconds, first at `next`.
#[derive(Debug, Clone, Copy)]
pub struct Every {
    every: f64,
    next: f64,
}

impl Every {
    /// Due at `every`, `2 x every`, ...
    pub fn new(every: f64) -> Self {
        Every { every, next: every }
    }

    /// Whether it is due at `t` (then it moves on by one period).
    pub fn due(&mut self, t: f64) -> bool {
        let due = t >= self.next - 1e-9;
        if due {
            self.next += self.every;
        }
        due
    }
}

/// KEDA and the HPA over a source: the source is scraped, KEDA refreshes the value the HPA
/// reads, and the HPA resizes the Deployment on its sync period.
pub struct HpaDriver {
    hpa: Hpa,
    source: Source,
    /// What KEDA last handed the HPA.
    value: Option<f64>,
    /// The HPA's AverageValue target.
    target: f64,
    scrape: Every,
    poll: Every,
    sync: Every,
}

/// What acts on the fleet's size.
pub enum Driver {
    /// Nothing: a fixed fleet.
    Static,
    /// KEDA + the HPA.
    Hpa(Box<HpaDriver>),
    /// A replica schedule known in advance (the clairvoyant bound), every step.
    Schedule(Arc<Schedule>),
    /// The KPA, every tick.
    Kpa {
        /// Its state.
        kpa: Kpa,
        /// Its tick.
        tick: Every,
    },
}

impl Driver {
    /// The driver of a policy on `workload`, on the simulator's step of `dt` seconds.
    pub fn new(kind: &PolicyKind, cfg: &SimConfig, dt: f64, workload: &Workload) -> Self {
        let hpa = |hpa: &HpaConfig, source: Source, target: f64| {
            // llm-scaler's collector ticks at the server's default; Prometheus scrapes for the
            // baselines.
            let scrape = if matches!(source, Source::LlmScaler { .. }) { cfg.collector_interval_s } else { cfg.scrape_interval_s };
            Driver::Hpa(Box::new(HpaDriver {
                hpa: Hpa::new(hpa.clone()),
                source,
                value: None,
                target,
                scrape: Every::new(scrape.max(dt)),
                poll: Every::new(cfg.polling_interval_s.max(dt)),
                sync: Every::new(hpa.sync_period.as_secs_f64().max(dt)),
            }))
        };
        match kind {
            PolicyKind::Static { .. } => Driver::Static,
            PolicyKind::HpaGpu { target, hpa: h } => hpa(h, Source::Gpu { latest: None }, *target),
            PolicyKind::KedaQueue { threshold, hpa: h } => hpa(h, Source::Queue { latest: None }, *threshold),
            PolicyKind::KedaTokens { target, hpa: h } => hpa(h, Source::Tokens { latest: None, history: Default::default() }, *target),
            PolicyKind::Clairvoyant(s) => Driver::Schedule(Arc::clone(s)),
            PolicyKind::Kpa(k) => Driver::Kpa { kpa: Kpa::new(k.clone()), tick: Every::new(k.tick_s) },
            PolicyKind::LlmScaler { spec, hpa: h, .. } => {
                // A forecasting scaler starts from the history the server would have persisted.
                let history = (spec.policy.forecast.mode != ForecastMode::Off).then(|| warm::history_before(workload)).flatten();
                hpa(h, Source::llm_scaler(spec, Calendar::of(workload), history.as_ref()), 1.0)
            }
        }
    }

    /// Does what is due at `t`. Scale-downs count only while `count_actions` (in the replay,
    /// not its tail); scale-ups always happen.
    pub fn step(&mut self, t: f64, fleet: &mut Fleet<'_>, scraper: &mut Scraper, count_actions: bool, cfg: &SimConfig) {
        match self {
            Driver::Static => {}
            Driver::Hpa(d) => d.step(t, fleet, scraper, count_actions),
            Driver::Schedule(s) => {
                let desired = s.desired_at(t);
                if count_actions || desired > fleet.current() {
                    fleet.scale_to(desired, t);
                }
            }
            Driver::Kpa { kpa, tick } => {
                if tick.due(t) {
                    let desired = kpa.decide(t, fleet.concurrency(), fleet.ready(), cfg.min_replicas, cfg.max_replicas);
                    fleet.scale_to(desired, t);
                }
            }
        }
    }

    /// For llm-scaler: decisions each signal dominated.
    pub fn dominant_signals(&self) -> BTreeMap<String, u64> {
        match self {
            Driver::Hpa(d) => d.source.dominant().cloned().unwrap_or_default(),
            _ => BTreeMap::new(),
        }
    }

    /// For llm-scaler: its decider minute by minute.
    pub fn decider_trace(&self) -> Option<DeciderTrace> {
        match self {
            Driver::Hpa(d) => d.source.trace(),
            _ => None,
        }
    }
}

impl HpaDriver {
    fn step(&mut self, t: f64, fleet: &mut Fleet<'_>, scraper: &mut Scraper, count_actions: bool) {
        // Scrapes: llm-scaler's collector tick / Prometheus' scrape.
        if self.scrape.due(t) {
            self.source.scrape(fleet, scraper, t);
        }
        // KEDA refreshes what the HPA will read.
        if self.poll.due(t) {
            self.value = self.source.latest();
        }
        if self.sync.due(t)
            && let Some(v) = self.value
        {
            let cur = fleet.current();
            let desired = self.hpa.sync(Duration::from_secs_f64(t), cur, v, self.target);
            if count_actions || desired > cur {
                fleet.scale_to(desired, t);
            }
        }
    }
}

//! What one serving fleet costs, tick by tick: GPUs provisioned x price, integrated over time
//! into dollars, and set against the tokens the fleet served.
//!
//! GPUs provisioned are those of the pods the decision counts as the fleet (Ready + starting, the
//! `current_replicas` of the decision), each with its own `nvidia.com/gpu` request, else the
//! ScaledObject's `gpusPerPod`. When a pod's GPUs are unknown the cost is unknown: the meter
//! says why and the metrics drop the cost series, because a fleet priced at zero GPUs would read
//! as free. An interval is charged at the GPUs counted at its start, and only when both ends
//! were counted (no failed discovery between them) and lie at most `max_gap` apart: a gap in
//! discovery is left out, not guessed.
//!
//! The dollars and tokens live in a [`Ledger`], one per ScaledObject (or ScaledJob) name and
//! shared by every target of that name: an edited ScaledObject is a new target while the old
//! one runs on until its idle timeout, and both must count each interval and each token once,
//! into counters that never go back.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use serde::Serialize;

use crate::{discovery::PodInfo, spec::cost::CostSpec};

/// Over how long the cost per 1,000 tokens is measured: long enough that a burst of a few
/// requests does not swing it, short enough to follow the day.
pub const PER_TOKEN_WINDOW: Duration = Duration::from_secs(300);

/// The fleet's cost now, as metrics, the decisions API and `llm-scaler status` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CostReading {
    /// Every pod's GPUs are known.
    Known(CostNow),
    /// Some pod's GPUs are not (the reason names the pod and the key to set).
    Unknown {
        /// Why, for a person.
        reason: String,
    },
}

/// The numbers of a known cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostNow {
    /// GPUs of the Ready and starting pods.
    pub gpus: u32,
    /// Dollars per GPU-hour.
    pub gpu_hour_price: f64,
    /// `gpus x gpu_hour_price`.
    pub dollars_per_hour: f64,
    /// Dollars since this scaler started metering the fleet.
    pub dollars_total: f64,
    /// Prompt + generation tokens served since then (vLLM's counters, summed over pods).
    pub tokens_total: f64,
    /// Dollars per 1,000 tokens over the last [`PER_TOKEN_WINDOW`] (`None` while no token
    /// flowed or the window is shorter than two counts: undefined, not zero).
    pub dollars_per_1k_tokens: Option<f64>,
    /// The ScaledObject's budget, dollars per hour.
    pub budget_dollars_per_hour: Option<f64>,
}

/// The longest interval between two counts that is charged: a scaler that missed counts for
/// longer (paused, overloaded) does not guess what ran meanwhile.
pub fn max_gap(stale_after: Duration) -> Duration {
    stale_after.max(Duration::from_secs(300))
}

/// Dollars spent at a rate that is counted now and then (a serving fleet's GPUs, a ScaledJob's
/// Job pods): each interval is charged at the rate counted at its start. An interval longer
/// than `max_gap` (counts missed, the scaler paused) or after an interruption is not charged:
/// an unseen interval is not guessed at.
#[derive(Debug, Clone)]
pub struct Spend {
    max_gap: Duration,
    /// When the rate was last counted, and the rate (dollars per hour).
    last: Option<(Duration, f64)>,
    dollars: f64,
}

impl Spend {
    /// Nothing spent yet.
    pub fn new(max_gap: Duration) -> Self {
        Spend { max_gap, last: None, dollars: 0.0 }
    }

    /// The rate counted at `now`; returns the dollars spent so far.
    pub fn charge(&mut self, now: Duration, dollars_per_hour: f64) -> f64 {
        if let Some((at, rate)) = self.last {
            let dt = now.saturating_sub(at);
            if dt <= self.max_gap {
                self.dollars += rate * dt.as_secs_f64() / 3600.0;
            }
        }
        self.last = dollars_per_hour.is_finite().then_some((now, dollars_per_hour.max(0.0)));
        self.dollars
    }

    /// The rate could not be counted: the interval up to the next count is not charged.
    pub fn interrupt(&mut self) {
        self.last = None;
    }

    /// Dollars spent so far.
    pub fn total(&self) -> f64 {
        self.dollars
    }
}

/// What a fleet has cost and served since this scaler began metering it.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// Dollars.
    pub spend: Spend,
    tokens: f64,
    /// Each pod's last token counter.
    pod_tokens: HashMap<String, f64>,
}

impl Ledger {
    /// Empty; intervals longer than `max_gap` are not charged.
    pub fn new(max_gap: Duration) -> Self {
        Ledger { spend: Spend::new(max_gap), tokens: 0.0, pod_tokens: HashMap::new() }
    }

    /// Adds each pod's tokens since its last scrape. A counter that went down restarted (vLLM
    /// restarted in the pod): what it reads now was served since. A pod seen for the first time
    /// only sets its baseline; pods gone from the fleet are forgotten.
    fn count_tokens<'a>(&mut self, pods: &[PodInfo], tokens: impl IntoIterator<Item = (&'a str, f64)>) {
        for (pod, now) in tokens {
            if !now.is_finite() || now < 0.0 {
                continue;
            }
            match self.pod_tokens.insert(pod.to_string(), now) {
                Some(before) if now >= before => self.tokens += now - before,
                Some(_) => self.tokens += now,
                None => {}
            }
        }
        let present: HashSet<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        self.pod_tokens.retain(|pod, _| present.contains(pod.as_str()));
    }
}

/// Which kind of target a ledger is for (a ScaledObject and a ScaledJob may share a name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedgerKind {
    /// A serving fleet.
    ScaledObject,
    /// A ScaledJob's Jobs.
    ScaledJob,
}

/// The ledgers of the targets being served, by kind, namespace and name. A ledger lives as
/// long as a target holds it; a name served again after every target of it stopped starts
/// from zero (a counter reset, as after a restart).
#[derive(Debug, Default)]
pub struct Ledgers {
    book: Mutex<HashMap<LedgerKey, Weak<Mutex<Ledger>>>>,
}

/// Kind, namespace and name.
type LedgerKey = (LedgerKind, String, String);

impl Ledgers {
    /// The ledger of `namespace/name`, shared with every other live target of that name.
    pub fn get(&self, kind: LedgerKind, namespace: &str, name: &str, max_gap: Duration) -> Arc<Mutex<Ledger>> {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        book.retain(|_, l| l.strong_count() > 0);
        let key = (kind, namespace.to_string(), name.to_string());
        if let Some(l) = book.get(&key).and_then(Weak::upgrade) {
            return l;
        }
        let l = Arc::new(Mutex::new(Ledger::new(max_gap)));
        book.insert(key, Arc::downgrade(&l));
        l
    }
}

/// One fleet's running cost and tokens.
#[derive(Debug)]
pub struct CostMeter {
    spec: CostSpec,
    ledger: Arc<Mutex<Ledger>>,
    /// (when, dollars, tokens) of recent counts, oldest first, for the per-token cost.
    recent: VecDeque<(Duration, f64, f64)>,
    /// Why the cost was unknown at the last count, so that a reason is logged once, not every tick.
    unknown_because: Option<String>,
}

impl CostMeter {
    /// A meter charging by `spec` into `ledger` (see [`Ledgers`]).
    pub fn new(spec: CostSpec, ledger: Arc<Mutex<Ledger>>) -> Self {
        CostMeter { spec, ledger, recent: VecDeque::new(), unknown_because: None }
    }

    /// Counts the fleet at `now`: `pods` as discovered, `tokens` each scraped pod's token
    /// counter (`vllm:prompt_tokens_total + vllm:generation_tokens_total`).
    /// The second value is true when the cost just became unknown, or for another reason
    /// than before: the moment to log it.
    pub fn observe<'a>(
        &mut self,
        now: Duration,
        pods: &[PodInfo],
        tokens: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> (CostReading, bool) {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        ledger.count_tokens(pods, tokens);
        let gpus = match self.gpus(pods) {
            Ok(g) => g,
            Err(reason) => {
                ledger.spend.interrupt();
                self.recent.clear();
                let new = self.unknown_because.as_ref() != Some(&reason);
                self.unknown_because = Some(reason.clone());
                return (CostReading::Unknown { reason }, new);
            }
        };
        self.unknown_because = None;
        let dollars_per_hour = f64::from(gpus) * self.spec.gpu_hour_price;
        let dollars = ledger.spend.charge(now, dollars_per_hour);
        let tokens_total = ledger.tokens;
        drop(ledger);
        self.recent.push_back((now, dollars, tokens_total));
        while self.recent.front().is_some_and(|(at, ..)| now.saturating_sub(*at) > PER_TOKEN_WINDOW) {
            self.recent.pop_front();
        }
        let known = CostReading::Known(CostNow {
            gpus,
            gpu_hour_price: self.spec.gpu_hour_price,
            dollars_per_hour,
            dollars_total: dollars,
            tokens_total,
            dollars_per_1k_tokens: self.per_1k_tokens(),
            budget_dollars_per_hour: self.spec.budget_per_hour,
        });
        (known, false)
    }

    /// A count failed (discovery): the interval up to the next count is not charged.
    pub fn interrupted(&mut self) {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner()).spend.interrupt();
        self.recent.clear();
    }

    /// GPUs of the pods that are the fleet (Ready or starting), or why they cannot be known.
    fn gpus(&self, pods: &[PodInfo]) -> Result<u32, String> {
        let mut total = 0u32;
        for p in pods.iter().filter(|p| p.scrapeable().is_some() || p.is_starting()) {
            let Some(n) = p.gpus.or(self.spec.gpus_per_pod) else {
                return Err(format!(
                    "pod {} requests no nvidia.com/gpu and the ScaledObject sets no gpusPerPod: its GPUs, and so the fleet's \
                     cost, are unknown",
                    p.name
                ));
            };
            total = total.saturating_add(n);
        }
        Ok(total)
    }

    fn per_1k_tokens(&self) -> Option<f64> {
        let (first, last) = (self.recent.front()?, self.recent.back()?);
        let tokens = last.2 - first.2;
        (tokens > 0.0).then(|| (last.1 - first.1) / tokens * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Readiness;

    fn pod(name: &str, readiness: Readiness, gpus: Option<u32>) -> PodInfo {
        PodInfo {
            name: name.into(),
            namespace: "ai".into(),
            ip: Some("10.0.0.1".parse().expect("ip")),
            node: None,
            readiness,
            ready_after: None,
            gpus,
        }
    }

    fn meter(gpus_per_pod: Option<u32>) -> CostMeter {
        let spec = CostSpec { gpu_hour_price: 4.0, gpus_per_pod, budget_per_hour: Some(50.0) };
        CostMeter::new(spec, Arc::new(Mutex::new(Ledger::new(Duration::from_secs(15)))))
    }

    fn known((r, _): (CostReading, bool)) -> CostNow {
        match r {
            CostReading::Known(c) => c,
            CostReading::Unknown { reason } => panic!("cost unknown: {reason}"),
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn spend_charges_each_interval_at_the_rate_counted_at_its_start_and_skips_what_it_did_not_see() {
        let mut s = Spend::new(S(60));
        assert_eq!(s.charge(S(0), 3.6), 0.0);
        assert!((s.charge(S(10), 7.2) - 0.01).abs() < 1e-12, "10 s at $3.60/h");
        assert!((s.charge(S(20), 0.0) - 0.03).abs() < 1e-12, "then 10 s at $7.20/h");
        s.charge(S(30), 3.6);
        s.interrupt();
        assert!((s.charge(S(40), 3.6) - 0.03).abs() < 1e-12, "30..40 s was not counted at its end: not charged");
        assert!((s.charge(S(200), 3.6) - 0.03).abs() < 1e-12, "160 s without a count is over the 60 s gap");
        assert!((s.charge(S(210), f64::NAN) - 0.04).abs() < 1e-12);
        assert!((s.charge(S(220), 3.6) - 0.04).abs() < 1e-12, "an interval begun at no rate is not charged");
        assert!((s.total() - 0.04).abs() < 1e-12);
    }

    #[test]
    fn two_targets_of_one_scaledobject_count_each_interval_and_each_token_once() {
        let ledgers = Ledgers::default();
        let spec = CostSpec { gpu_hour_price: 3.6, gpus_per_pod: Some(1), budget_per_hour: None };
        let ledger = || ledgers.get(LedgerKind::ScaledObject, "ai", "llama", S(60));
        // The old target (before an edit) and the new one tick in turn over the same pod.
        let (mut old, mut new) = (CostMeter::new(spec, ledger()), CostMeter::new(spec, ledger()));
        let pods = [pod("a", Readiness::Ready, None)];
        known(old.observe(S(0), &pods, [("a", 100.0)]));
        known(new.observe(S(5), &pods, [("a", 150.0)]));
        known(old.observe(S(10), &pods, [("a", 200.0)]));
        let c = known(new.observe(S(15), &pods, [("a", 250.0)]));
        assert!((c.dollars_total - 0.015).abs() < 1e-12, "15 s at $3.60/h once, not twice: {c:?}");
        assert_eq!(c.tokens_total, 150.0, "100 -> 250 once");
        // A ScaledJob of the same name has its own; once every holder is gone, so is the ledger.
        let job = ledgers.get(LedgerKind::ScaledJob, "ai", "llama", S(60));
        assert_eq!(job.lock().unwrap().spend.total(), 0.0);
        drop((old, new, job));
        assert_eq!(ledger().lock().unwrap().spend.total(), 0.0, "a name served again starts afresh");
        assert_eq!(ledgers.book.lock().unwrap().len(), 1, "dead entries are pruned");
    }

    #[test]
    fn ready_and_starting_pods_are_charged_at_their_own_gpus_and_draining_ones_are_not() {
        let mut m = meter(Some(1));
        let pods = [pod("a", Readiness::Ready, Some(2)), pod("b", Readiness::Starting, None), pod("c", Readiness::Terminating, Some(8))];
        let c = known(m.observe(S(0), &pods, []));
        assert_eq!((c.gpus, c.dollars_per_hour, c.dollars_total), (3, 12.0, 0.0));
        let c = known(m.observe(S(10), &pods, []));
        assert!((c.dollars_total - 12.0 * 10.0 / 3600.0).abs() < 1e-12, "{c:?}");
        assert_eq!(c.budget_dollars_per_hour, Some(50.0));
    }

    #[test]
    fn a_pod_whose_gpus_are_unknown_makes_the_cost_unknown_and_the_gap_is_not_charged() {
        let mut m = meter(None);
        let two = [pod("a", Readiness::Ready, Some(2))];
        known(m.observe(S(0), &two, []));
        let mystery = [pod("a", Readiness::Ready, Some(2)), pod("x", Readiness::Starting, None)];
        match m.observe(S(5), &mystery, []) {
            (CostReading::Unknown { reason }, true) => assert!(reason.contains("pod x") && reason.contains("gpusPerPod"), "{reason}"),
            k => panic!("expected a new unknown, got {k:?}"),
        }
        assert!(!m.observe(S(7), &mystery, []).1, "the same reason again is not news");
        // 0..5 s is not charged either: its end was not counted.
        let c = known(m.observe(S(10), &two, []));
        assert_eq!(c.dollars_total, 0.0);
        let c = known(m.observe(S(20), &two, []));
        assert!((c.dollars_total - 8.0 * 10.0 / 3600.0).abs() < 1e-12, "{c:?}");
    }

    #[test]
    fn an_interval_longer_than_the_gap_allowed_is_left_out() {
        let mut m = meter(Some(1));
        let pods = [pod("a", Readiness::Ready, None)];
        known(m.observe(S(0), &pods, []));
        assert_eq!(known(m.observe(S(60), &pods, [])).dollars_total, 0.0, "60 s without a count is not guessed at");
    }

    #[test]
    fn tokens_count_what_each_pod_served_across_a_restart_and_the_cost_per_1k_tokens_follows() {
        let mut m = meter(Some(1));
        let pods = [pod("a", Readiness::Ready, None), pod("b", Readiness::Ready, None)];
        let c = known(m.observe(S(0), &pods, [("a", 1_000.0), ("b", 50.0)]));
        assert_eq!((c.tokens_total, c.dollars_per_1k_tokens), (0.0, None), "first sight sets the baseline");
        let c = known(m.observe(S(10), &pods, [("a", 3_000.0), ("b", 20.0)]));
        assert_eq!(c.tokens_total, 2_000.0 + 20.0, "b restarted: its 20 tokens are new");
        let dollars = 8.0 * 10.0 / 3600.0;
        let per_1k = c.dollars_per_1k_tokens.expect("tokens flowed");
        assert!((per_1k - dollars / 2_020.0 * 1000.0).abs() < 1e-12, "{per_1k}");
        let idle = known(m.observe(S(310), &pods, [("a", 3_000.0), ("b", 20.0)]));
        assert_eq!(idle.dollars_per_1k_tokens, None, "no token in the window: undefined, not zero");
    }
}

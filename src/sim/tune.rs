//! `--tune-baselines`: every baseline gets its knob tuned with the same effort on a tuning part
//! of the workload, so llm-scaler (run with its defaults, untuned) is compared with baselines a
//! careful user would have set up, not with generic thresholds. Each knob is swept over a grid of
//! six values; the cheapest setting that meets the strict SLO on the tuning part is kept. When
//! none meets, the setting that came closest is kept (not the standard one: a careful user who
//! cannot reach the SLO still picks the best they found), and the table says so.

use serde::Serialize;

use crate::sim::{
    config::SimConfig,
    lineup::{Lineup, LineupError, Policy, PolicyKind},
    seeds::{Trial, Trials},
};

/// A baseline family and the knob swept for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// HPA on GPU utilisation: the target utilisation.
    HpaGpu,
    /// KEDA on waiting requests: the threshold per replica.
    KedaQueue,
    /// The KPA: target concurrency per pod.
    Kpa,
    /// KEDA on token rate: tokens/s per replica.
    KedaTokens,
}

impl Family {
    /// The family of a policy (`None`: not a tunable baseline).
    pub fn of(kind: &PolicyKind) -> Option<Self> {
        match kind {
            PolicyKind::HpaGpu { .. } => Some(Family::HpaGpu),
            PolicyKind::KedaQueue { .. } => Some(Family::KedaQueue),
            PolicyKind::Kpa(_) => Some(Family::Kpa),
            PolicyKind::KedaTokens { .. } => Some(Family::KedaTokens),
            _ => None,
        }
    }

    /// Its name in notes.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::HpaGpu => "hpa-gpu (target utilisation)",
            Family::KedaQueue => "keda-queue (threshold)",
            Family::Kpa => "kpa (target concurrency)",
            Family::KedaTokens => "keda-tokens (tokens/s per replica)",
        }
    }

    /// The grid swept: six values each, around and beyond the standard setting. The GPU target
    /// reaches 98 % because the duty cycle is ~95 % whenever a replica holds a request.
    pub fn grid(self) -> &'static [f64] {
        match self {
            Family::HpaGpu => &[0.6, 0.7, 0.8, 0.9, 0.95, 0.98],
            Family::KedaQueue => &[1.0, 2.0, 3.0, 5.0, 10.0, 20.0],
            Family::Kpa => &[8.0, 12.0, 16.0, 24.0, 32.0, 64.0],
            Family::KedaTokens => &[2500.0, 3500.0, 4500.0, 5500.0, 6500.0, 8000.0],
        }
    }

    /// The policy of this family with its knob at `value`.
    pub fn policy(self, lineup: &Lineup, cfg: &SimConfig, value: f64) -> Result<Policy, LineupError> {
        let mut l = lineup.clone();
        let name = match self {
            Family::HpaGpu => {
                l.gpu_target = value;
                "hpa-gpu70"
            }
            Family::KedaQueue => {
                l.queue_threshold = value;
                "keda-queue5"
            }
            Family::Kpa => {
                l.kpa.target_concurrency = value;
                "kpa"
            }
            Family::KedaTokens => {
                l.tokens_target = value;
                "keda-tokens"
            }
        };
        l.policy(name, cfg)
    }
}

/// One setting tried on the tuning part.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tried {
    /// The knob's value.
    pub value: f64,
    /// GPU-hours on the tuning part.
    pub gpu_hours: f64,
    /// Overall attainment on the tuning part.
    pub attainment: f64,
    /// Met the strict SLO there.
    pub meets: bool,
    /// How near it came ([`crate::sim::criterion::Verdict::closeness`]; 1 when it meets).
    pub closeness: f64,
}

/// The setting tuning kept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum Kept {
    /// The cheapest setting that met the SLO on the tuning part.
    Cheapest(f64),
    /// None met: the one that came closest (ties: the cheaper).
    Closest(f64),
}

impl Kept {
    /// The knob's value.
    pub fn value(self) -> f64 {
        match self {
            Kept::Cheapest(v) | Kept::Closest(v) => v,
        }
    }
}

/// What tuning gave one baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Tuned {
    /// The family.
    pub family: Family,
    /// Every setting tried, in grid order.
    pub tried: Vec<Tried>,
    /// The setting kept (`None`: nothing was tried).
    pub chosen: Option<Kept>,
}

/// The cheapest setting that met the SLO (ties go to the earlier grid value); when none met, the
/// closest one (ties go to the cheaper).
pub fn keep(tried: &[Tried]) -> Option<Kept> {
    let cheapest = |a: &&Tried, b: &&Tried| a.gpu_hours.total_cmp(&b.gpu_hours);
    match tried.iter().filter(|t| t.meets).min_by(cheapest) {
        Some(t) => Some(Kept::Cheapest(t.value)),
        None => {
            tried.iter().min_by(|a, b| b.closeness.total_cmp(&a.closeness).then_with(|| cheapest(a, b))).map(|t| Kept::Closest(t.value))
        }
    }
}

/// Sweeps `families` on `trials` (the tuning part, first seed), every setting in one batch of
/// replays.
pub fn tune(families: &[Family], lineup: &Lineup, trials: &Trials) -> Result<Vec<Tuned>, LineupError> {
    tune_grids(&families.iter().map(|f| (*f, f.grid().to_vec())).collect::<Vec<_>>(), lineup, trials)
}

/// [`tune`] with given grids.
pub fn tune_grids(grids: &[(Family, Vec<f64>)], lineup: &Lineup, trials: &Trials) -> Result<Vec<Tuned>, LineupError> {
    let cfg = &trials.seeds[0].cfg;
    let mut batch = Vec::new();
    for (f, values) in grids {
        for v in values {
            batch.push(Trial { seed: 0, policy: f.policy(lineup, cfg, *v)?, initial: None });
        }
    }
    let mut results = trials.run(&batch).into_iter();
    Ok(grids
        .iter()
        .map(|(family, values)| {
            let tried: Vec<Tried> = values
                .iter()
                .zip(results.by_ref())
                .map(|(value, r)| {
                    let verdict = trials.verdict(&r);
                    Tried {
                        value: *value,
                        gpu_hours: r.gpu_hours,
                        attainment: r.slo_attainment,
                        meets: verdict.meets(),
                        closeness: verdict.closeness(&trials.criterion),
                    }
                })
                .collect();
            Tuned { family: *family, chosen: keep(&tried), tried }
        })
        .collect())
}

impl Tuned {
    /// A sentence for the report.
    pub fn note(&self) -> String {
        let tried: Vec<String> = self
            .tried
            .iter()
            .map(|t| {
                let verdict = if t.meets { " meets".to_string() } else { format!(" closeness {:.3}", t.closeness) };
                format!("{} {:.1} GPU-h {:.2}%{verdict}", t.value, t.gpu_hours, t.attainment * 100.0)
            })
            .collect();
        let (family, tried) = (self.family.as_str(), tried.join("; "));
        match self.chosen {
            Some(Kept::Cheapest(v)) => format!("tuned {family}: kept {v}, the cheapest meeting the SLO on the tuning part ({tried})"),
            Some(Kept::Closest(v)) => format!(
                "tuned {family}: none met the SLO on the tuning part; kept {v}, the closest (weakest criterion nearest its target) ({tried})"
            ),
            None => format!("tuned {family}: nothing tried"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{
        criterion::SloCriterion,
        workload::{RateCurve, Workload},
    };

    fn t(value: f64, gpu_hours: f64, closeness: f64) -> Tried {
        Tried { value, gpu_hours, attainment: 0.99, meets: closeness >= 1.0, closeness }
    }

    #[test]
    fn tuning_keeps_the_cheapest_setting_that_meets_the_slo() {
        // The cheapest overall misses; of those meeting, 24 is cheapest.
        let tried = [t(8.0, 30.0, 1.0), t(16.0, 22.0, 1.0), t(24.0, 20.0, 1.0), t(32.0, 15.0, 0.97)];
        assert_eq!(keep(&tried), Some(Kept::Cheapest(24.0)));
    }

    #[test]
    fn when_no_setting_meets_tuning_keeps_the_closest_and_of_equals_the_cheaper() {
        let tried = [t(8.0, 30.0, 0.99), t(16.0, 22.0, 0.99), t(24.0, 20.0, 0.95)];
        assert_eq!(keep(&tried), Some(Kept::Closest(16.0)));
        assert_eq!(keep(&[]), None);
    }

    #[test]
    fn a_sweep_on_the_tuning_part_judges_every_setting_and_keeps_the_cheapest_meeting() {
        let curve = RateCurve::synthetic("step:3:20:300", 1200.0, 10.0).unwrap();
        let w = Workload::servegen("step", curve, 4);
        let cfg = SimConfig { min_replicas: 1, max_replicas: 10, replica_capacity_rps: 5.27, ..SimConfig::default() };
        let trials = Trials::new(&cfg, &w, 1, SloCriterion::default(), 2);
        let grids = vec![(Family::KedaTokens, vec![1500.0, 3000.0, 20_000.0])];
        let tuned = tune_grids(&grids, &Lineup::default(), &trials).unwrap();
        let k = &tuned[0];
        assert_eq!(k.tried.len(), 3);
        // A lower token target means more replicas.
        assert!(k.tried[0].gpu_hours > k.tried[2].gpu_hours, "{:?}", k.tried);
        assert!(!k.tried[2].meets, "one replica per 20,000 tokens/s cannot hold the SLO: {:?}", k.tried);
        assert_eq!(k.chosen, keep(&k.tried));
        assert!(matches!(k.chosen, Some(Kept::Cheapest(_))), "{:?}", k.tried);
        assert!(k.tried[2].closeness < 1.0 && k.tried.iter().filter(|t| t.meets).all(|t| t.closeness == 1.0), "{:?}", k.tried);
    }
}

//! When a policy "meets the SLO": not one number over the whole replay (a quiet night hides a
//! saturated peak), but overall attainment AND attainment hour by hour. An hour with too few
//! requests to say anything is listed as not judged, never counted as passing.

use std::{fmt, str::FromStr};

use serde::Serialize;

/// Seconds in a judged hour (the default of [`crate::sim::config::SimConfig::hour_s`]; a
/// compressed timeline judges the hours of its source, `HOUR_S x time_scale` of replay time).
pub const HOUR_S: f64 = 3600.0;

/// Requests that arrived in one judged hour of the replay and how many of them were served
/// within the SLO (dropped ones count as misses). Kept apart from the series step so the hourly
/// criterion does not depend on the plot resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct HourTally {
    /// Requests that arrived in the hour.
    pub requests: u64,
    /// Of them, served within the SLO.
    pub within_slo: u64,
}

/// A share in `(0, 1]`, written as a percentage on the command line (`99`, `99.5%`).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Share(f64);

/// Why a criterion was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CriterionError {
    /// Not a number.
    #[error("\"{0}\": expected a percentage such as 99 or 99.5%")]
    NotANumber(String),
    /// Outside `(0, 100]`.
    #[error("{0}: a percentage must be above 0 and at most 100")]
    OutOfRange(f64),
}

impl Share {
    /// `percent` in `(0, 100]`.
    pub fn from_percent(percent: f64) -> Result<Self, CriterionError> {
        if percent.is_finite() && percent > 0.0 && percent <= 100.0 {
            Ok(Share(percent / 100.0))
        } else {
            Err(CriterionError::OutOfRange(percent))
        }
    }

    /// The share, 0..1.
    pub fn get(self) -> f64 {
        self.0
    }

    /// Whether `ok` of `n` reaches this share (counts, so 99 of 100 reaches 99 % exactly).
    pub fn reached_by(self, ok: u64, n: u64) -> bool {
        n > 0 && ok as f64 >= self.0 * n as f64 * (1.0 - 1e-12)
    }
}

impl FromStr for Share {
    type Err = CriterionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_end_matches('%').trim();
        let v: f64 = t.parse().map_err(|_| CriterionError::NotANumber(s.to_string()))?;
        Share::from_percent(v)
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", (self.0 * 1e6).round() / 1e4)
    }
}

/// The strict SLO criterion. Built only from valid shares, so every criterion can be judged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SloCriterion {
    /// Share of all requests within the SLO over the whole replay (`--slo-target`).
    pub overall: Share,
    /// Attainment an hour must reach to count as a good hour (`--hour-target`).
    pub hour_target: Share,
    /// Share of judged hours that must be good hours (`--hour-share`).
    pub hour_share: Share,
    /// Attainment the worst judged hour must reach (`--worst-hour`).
    pub worst_hour: Share,
    /// Hours with fewer requests are not judged (`--hour-min-requests`).
    pub min_hour_requests: u64,
}

impl Default for SloCriterion {
    /// At least 99 % overall, 99 % in at least 95 % of hours, worst hour at least 95 %, hours
    /// of fewer than 20 requests not judged (issue 12).
    fn default() -> Self {
        SloCriterion {
            overall: Share(0.99),
            hour_target: Share(0.99),
            hour_share: Share(0.95),
            worst_hour: Share(0.95),
            min_hour_requests: 20,
        }
    }
}

/// Which part of the criterion a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shortfall {
    /// Overall attainment below the target.
    Overall,
    /// Too few judged hours at the hourly target.
    HourShare,
    /// The worst judged hour below its floor.
    WorstHour,
    /// No hour had enough requests to judge, so the hourly part cannot be shown to hold.
    NoJudgedHour,
}

impl Shortfall {
    /// Short label for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Shortfall::Overall => "overall",
            Shortfall::HourShare => "hours",
            Shortfall::WorstHour => "worst hour",
            Shortfall::NoJudgedHour => "no judged hour",
        }
    }
}

/// The worst judged hour of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WorstHour {
    /// Hour of the replay, from 0 (by arrival time).
    pub hour: usize,
    /// Its attainment.
    pub attainment: f64,
    /// Requests that arrived in it.
    pub requests: u64,
}

/// One run judged against a [`SloCriterion`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// Share of all requests within the SLO.
    pub overall: f64,
    /// Hours with at least `min_hour_requests` requests.
    pub judged_hours: usize,
    /// Hours with fewer (listed, not counted as passing).
    pub unjudged_hours: Vec<usize>,
    /// Judged hours at or above the hourly target.
    pub good_hours: usize,
    /// `good_hours / judged_hours` (`None`: no judged hour).
    pub good_hour_share: Option<f64>,
    /// The worst judged hour.
    pub worst_hour: Option<WorstHour>,
    /// What failed; empty when the run meets the SLO.
    pub shortfalls: Vec<Shortfall>,
}

impl Verdict {
    /// Whether every part of the criterion holds.
    pub fn meets(&self) -> bool {
        self.shortfalls.is_empty()
    }

    /// How near the run came to `criterion`: the smallest of achieved / required over its three
    /// parts (overall, share of good hours, worst hour), so 1 means every part holds and 0.98
    /// means the weakest part reached 98 % of what it needed. No judged hour gives 0.
    pub fn closeness(&self, criterion: &SloCriterion) -> f64 {
        let (Some(share), Some(worst)) = (self.good_hour_share, self.worst_hour) else { return 0.0 };
        [self.overall / criterion.overall.get(), share / criterion.hour_share.get(), worst.attainment / criterion.worst_hour.get()]
            .into_iter()
            .fold(1.0, f64::min)
    }
}

impl SloCriterion {
    /// Judges a run of `requests` requests, `within` of them within the SLO, with its hourly tallies.
    pub fn judge(&self, requests: u64, within: u64, hours: &[HourTally]) -> Verdict {
        let overall = if requests > 0 { within as f64 / requests as f64 } else { 1.0 };
        let mut unjudged_hours = Vec::new();
        let (mut judged, mut good) = (0usize, 0usize);
        let mut worst: Option<(usize, HourTally)> = None;
        for (hour, h) in hours.iter().enumerate() {
            if h.requests < self.min_hour_requests.max(1) {
                unjudged_hours.push(hour);
                continue;
            }
            judged += 1;
            good += usize::from(self.hour_target.reached_by(h.within_slo, h.requests));
            // Compared as counts: a/b < c/d  <=>  a*d < c*b.
            if worst
                .is_none_or(|(_, w)| u128::from(h.within_slo) * u128::from(w.requests) < u128::from(w.within_slo) * u128::from(h.requests))
            {
                worst = Some((hour, *h));
            }
        }
        let mut shortfalls = Vec::new();
        if !self.overall.reached_by(within, requests) {
            shortfalls.push(Shortfall::Overall);
        }
        match worst {
            None => shortfalls.push(Shortfall::NoJudgedHour),
            Some((_, w)) => {
                if !self.hour_share.reached_by(good as u64, judged as u64) {
                    shortfalls.push(Shortfall::HourShare);
                }
                if !self.worst_hour.reached_by(w.within_slo, w.requests) {
                    shortfalls.push(Shortfall::WorstHour);
                }
            }
        }
        Verdict {
            overall,
            judged_hours: judged,
            unjudged_hours,
            good_hours: good,
            good_hour_share: (judged > 0).then(|| good as f64 / judged as f64),
            worst_hour: worst.map(|(hour, w)| WorstHour {
                hour,
                attainment: w.within_slo as f64 / w.requests as f64,
                requests: w.requests,
            }),
            shortfalls,
        }
    }
}

impl fmt::Display for SloCriterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            ">= {} overall, >= {} in at least {} of judged hours, worst hour >= {} (hours of < {} requests not judged)",
            self.overall, self.hour_target, self.hour_share, self.worst_hour, self.min_hour_requests
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(requests: u64, within_slo: u64) -> HourTally {
        HourTally { requests, within_slo }
    }

    #[test]
    fn percentages_outside_zero_to_a_hundred_are_refused_with_the_value() {
        assert_eq!("99".parse::<Share>().unwrap().get(), 0.99);
        assert_eq!("99.5%".parse::<Share>().unwrap(), Share::from_percent(99.5).unwrap());
        assert_eq!("100".parse::<Share>().unwrap().get(), 1.0);
        assert_eq!("0".parse::<Share>().unwrap_err(), CriterionError::OutOfRange(0.0));
        assert_eq!("101".parse::<Share>().unwrap_err(), CriterionError::OutOfRange(101.0));
        assert!("NaN".parse::<Share>().is_err());
        let e = "0.99x".parse::<Share>().unwrap_err();
        assert!(e.to_string().contains("expected a percentage"), "{e}");
    }

    #[test]
    fn exactly_the_target_counts_as_reaching_it() {
        let c = SloCriterion::default();
        // 99 of 100 is 99 % exactly, in every hour.
        let v = c.judge(2000, 1980, &vec![h(100, 99); 20]);
        assert!(v.meets(), "{v:?}");
        assert_eq!((v.judged_hours, v.good_hours), (20, 20));
        let v = c.judge(2000, 1979, &[vec![h(100, 99); 19], vec![h(100, 98)]].concat());
        assert_eq!(v.shortfalls, vec![Shortfall::Overall], "98.95 % overall; 19/20 = 95 % good hours is enough");
    }

    #[test]
    fn a_bad_peak_hour_fails_although_the_whole_replay_is_above_target() {
        let c = SloCriterion::default();
        // 23 perfect hours of 1000 requests and one peak hour at 90 %: 99.6 % overall.
        let mut hours = vec![h(1000, 1000); 23];
        hours.push(h(1000, 900));
        let v = c.judge(24_000, 23_900, &hours);
        assert!(v.overall > 0.99);
        assert_eq!(v.shortfalls, vec![Shortfall::WorstHour]);
        assert_eq!(v.worst_hour, Some(WorstHour { hour: 23, attainment: 0.9, requests: 1000 }));
        // Two hours at 98 %: each above the 95 % floor, but only 22/24 = 91.7 % good hours.
        let mut hours = vec![h(1000, 1000); 22];
        hours.extend([h(1000, 980), h(1000, 980)]);
        let v = c.judge(24_000, 23_960, &hours);
        assert_eq!(v.shortfalls, vec![Shortfall::HourShare]);
    }

    #[test]
    fn hours_with_too_few_requests_are_listed_and_not_judged() {
        let c = SloCriterion::default();
        // A quiet hour of 10 requests, all missed: not judged, and it does not pass either.
        let v = c.judge(2010, 2000, &[h(1000, 1000), h(10, 0), h(1000, 1000)]);
        assert_eq!(v.unjudged_hours, vec![1]);
        assert_eq!((v.judged_hours, v.good_hours), (2, 2));
        assert!(v.meets());
        // Nothing to judge hour by hour: the strict criterion cannot be shown to hold.
        let v = c.judge(15, 15, &[h(15, 15)]);
        assert_eq!(v.shortfalls, vec![Shortfall::NoJudgedHour]);
    }
}

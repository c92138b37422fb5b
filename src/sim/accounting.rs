//! Bookkeeping of what the requests got: latencies and SLO attainment over the run
//! ([`SloTally`]), per step for the report's time series and per judged hour for the strict SLO
//! criterion ([`Ledger`], what the demo's live run is counted in too).

use crate::sim::{
    config::Slo,
    criterion::{HOUR_S, HourTally},
    engine::Done,
    report::Series,
    stats::LogHist,
    workload::Request,
};

/// How one finished request counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// Never admitted, or aborted after a drain's grace period.
    Dropped,
    /// Completed, with its time to first token and whether it met both SLO bounds.
    Served {
        /// Seconds (infinite if it never had a first token).
        ttft_s: f64,
        /// Within the TTFT and TPOT SLO.
        within_slo: bool,
    },
}

/// Latencies and SLO attainment of every finished request.
#[derive(Debug, Clone)]
pub struct SloTally {
    /// TTFT of completed requests, seconds.
    pub ttft: LogHist,
    /// TPOT of completed requests, seconds.
    pub tpot: LogHist,
    /// End-to-end latency of completed requests, seconds.
    pub e2e: LogHist,
    /// Requests completed.
    pub completed: u64,
    /// Requests dropped.
    pub dropped: u64,
    /// Completed requests within the SLO.
    pub slo_ok: u64,
    /// Completed requests over the TTFT SLO.
    pub ttft_miss: u64,
    /// Completed requests over the TPOT SLO.
    pub tpot_miss: u64,
    slo: Slo,
}

impl SloTally {
    /// Nothing counted yet, against `slo`.
    pub fn new(slo: Slo) -> Self {
        SloTally {
            ttft: LogHist::default(),
            tpot: LogHist::default(),
            e2e: LogHist::default(),
            completed: 0,
            dropped: 0,
            slo_ok: 0,
            ttft_miss: 0,
            tpot_miss: 0,
            slo,
        }
    }

    /// Counts a finished request.
    pub fn done(&mut self, d: &Done) -> Outcome {
        if !d.completed {
            self.dropped += 1;
            return Outcome::Dropped;
        }
        self.completed += 1;
        let ttft = d.ttft_s.unwrap_or(f64::INFINITY);
        self.ttft.record(ttft);
        if let Some(t) = d.tpot_s {
            self.tpot.record(t);
        }
        self.e2e.record(d.e2e_s);
        let ttft_ok = ttft <= self.slo.ttft_s;
        let tpot_ok = d.tpot_s.is_none_or(|t| t <= self.slo.tpot_s);
        self.ttft_miss += u64::from(!ttft_ok);
        self.tpot_miss += u64::from(!tpot_ok);
        let within_slo = ttft_ok && tpot_ok;
        self.slo_ok += u64::from(within_slo);
        Outcome::Served { ttft_s: ttft, within_slo }
    }

    /// Requests finished so far, completed or dropped.
    pub fn finished(&self) -> u64 {
        self.completed + self.dropped
    }

    /// Share of `requests` served within the SLO (1 when there were none).
    pub fn attainment(&self, requests: u64) -> f64 {
        if requests > 0 { self.slo_ok as f64 / requests as f64 } else { 1.0 }
    }
}

/// One policy's accounting over a replay: the run's tally and, per step of the report's time
/// series, arrivals, fleet size, TTFT and SLO attainment.
pub struct Ledger {
    /// The whole run.
    pub tally: SloTally,
    /// Requests that arrived.
    pub requests: u64,
    step: f64,
    hour_s: f64,
    s_replicas: Vec<f64>,
    s_ready: Vec<f64>,
    s_arrivals: Vec<u64>,
    s_ttft: Vec<LogHist>,
    s_n: Vec<u64>,
    s_ok: Vec<u64>,
    hours: Vec<HourTally>,
}

impl Ledger {
    /// Buckets of `step` seconds over `duration`, judged hours of `hour_s` seconds of replay
    /// time ([`HOUR_S`], or less when the timeline is compressed).
    pub fn new(duration: f64, step: f64, hour_s: f64, slo: Slo) -> Self {
        let hour_s = if hour_s.is_finite() && hour_s > 0.0 { hour_s } else { HOUR_S };
        let n = (duration / step).ceil() as usize + 1;
        Ledger {
            tally: SloTally::new(slo),
            requests: 0,
            step,
            hour_s,
            s_replicas: vec![0.0; n],
            s_ready: vec![0.0; n],
            s_arrivals: vec![0; n],
            s_ttft: (0..n).map(|_| LogHist::with_growth(1.05)).collect(),
            s_n: vec![0; n],
            s_ok: vec![0; n],
            hours: vec![HourTally::default(); (duration / hour_s).ceil().max(1.0) as usize],
        }
    }

    fn bucket(&self, t: f64) -> usize {
        ((t / self.step) as usize).min(self.s_n.len() - 1)
    }

    /// Counts an arrival.
    pub fn arrived(&mut self, r: &Request) {
        self.requests += 1;
        let b = self.bucket(r.arrival_s);
        self.s_arrivals[b] += 1;
    }

    /// Counts `provisioned` and `ready` replicas over the `dt` seconds up to `t`.
    pub fn fleet(&mut self, t: f64, dt: f64, provisioned: usize, ready: u32) {
        let b = self.bucket(t - dt / 2.0);
        self.s_replicas[b] += provisioned as f64 * dt;
        self.s_ready[b] += f64::from(ready) * dt;
    }

    /// Counts a finished request.
    pub fn done(&mut self, d: Done) {
        let b = self.bucket(d.arrival_s);
        self.s_n[b] += 1;
        // By arrival: the hour the request was asked for, whenever it finished.
        let hi = ((d.arrival_s.max(0.0) / self.hour_s) as usize).min(self.hours.len() - 1);
        self.hours[hi].requests += 1;
        match self.tally.done(&d) {
            Outcome::Dropped => self.s_ttft[b].record(d.ttft_s.unwrap_or(d.e2e_s)),
            Outcome::Served { ttft_s, within_slo } => {
                self.s_ttft[b].record(ttft_s);
                self.s_ok[b] += u64::from(within_slo);
                self.hours[hi].within_slo += u64::from(within_slo);
            }
        }
    }

    /// Requests and requests within the SLO per judged hour of the replay, by arrival time.
    pub fn hours(&self) -> &[HourTally] {
        &self.hours
    }

    /// The time series of a replay of `duration` seconds (the last step may be shorter).
    pub fn series(&self, duration: f64) -> Series {
        let (n, step) = (self.s_n.len(), self.step);
        let step_len = |i: usize| if i + 1 == n { (duration - step * i as f64).max(1e-9) } else { step };
        Series {
            step_s: step,
            replicas: (0..n).map(|i| self.s_replicas[i] / step_len(i)).collect(),
            ready: (0..n).map(|i| self.s_ready[i] / step_len(i)).collect(),
            arrivals_rps: (0..n).map(|i| self.s_arrivals[i] as f64 / step_len(i)).collect(),
            ttft_p99_s: self.s_ttft.iter().map(|h| h.quantile(0.99)).collect(),
            slo: (0..n).map(|i| (self.s_n[i] > 0).then(|| self.s_ok[i] as f64 / self.s_n[i] as f64)).collect(),
            hourly: self.hours.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(ttft_s: Option<f64>, tpot_s: Option<f64>, completed: bool) -> Done {
        Done { arrival_s: 1.0, ttft_s, tpot_s, e2e_s: 3.0, output: 10, completed }
    }

    #[test]
    fn hours_are_tallied_by_arrival_whatever_the_series_step_and_drops_are_misses() {
        // 2.5 h with a 7-minute series step: three hours, the last one partial.
        let mut l = Ledger::new(9000.0, 420.0, 3600.0, Slo::default());
        assert_eq!(l.hours().len(), 3);
        let at =
            |arrival_s, ttft_s: Option<f64>, completed| Done { arrival_s, ttft_s, tpot_s: Some(0.05), e2e_s: 1.0, output: 10, completed };
        l.done(at(10.0, Some(0.1), true));
        l.done(at(3599.9, Some(5.0), true)); // over the TTFT SLO
        l.done(at(3600.0, Some(0.1), true)); // the first second of hour 1
        l.done(at(3700.0, None, false)); // dropped
        l.done(at(8999.0, Some(0.1), true));
        // Finished in the tail after the replay: still the last hour's.
        l.done(at(9000.0, Some(0.1), true));
        let hours = l.hours();
        assert_eq!(hours[0], HourTally { requests: 2, within_slo: 1 });
        assert_eq!(hours[1], HourTally { requests: 2, within_slo: 1 });
        assert_eq!(hours[2], HourTally { requests: 2, within_slo: 2 });
        assert_eq!(l.series(9000.0).hourly, hours);
    }

    #[test]
    fn a_request_counts_within_the_slo_only_if_both_bounds_hold() {
        let mut t = SloTally::new(Slo::default());
        assert_eq!(t.done(&done(Some(0.5), Some(0.05), true)), Outcome::Served { ttft_s: 0.5, within_slo: true });
        assert_eq!(t.done(&done(Some(0.5), Some(0.5), true)), Outcome::Served { ttft_s: 0.5, within_slo: false });
        assert_eq!(t.done(&done(None, None, false)), Outcome::Dropped);
        assert_eq!((t.finished(), t.slo_ok, t.tpot_miss, t.ttft_miss, t.dropped), (3, 1, 1, 0, 1));
        assert!((t.attainment(t.finished()) - 1.0 / 3.0).abs() < 1e-12);
    }
}

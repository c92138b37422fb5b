//! Latency statistics that fit tens of millions of requests in a few kilobytes.

use serde::Serialize;

/// A log-bucketed histogram: bucket `i` covers `[MIN * G^(i-1), MIN * G^i)` with `G = 1.01` by
/// default, so any quantile is read to within 1% from 1 ms to about 3 hours.
#[derive(Debug, Clone, PartialEq)]
pub struct LogHist {
    counts: Vec<u64>,
    total: u64,
    sum: f64,
    growth_ln: f64,
}

const MIN: f64 = 1e-3;

impl Default for LogHist {
    fn default() -> Self {
        Self::with_growth(1.01)
    }
}

impl LogHist {
    /// Buckets growing by `growth` (> 1) from 1 ms to about 3 hours.
    pub fn with_growth(growth: f64) -> Self {
        let growth_ln = growth.ln();
        let buckets = (1e7f64.ln() / growth_ln).ceil() as usize;
        LogHist { counts: vec![0; buckets + 1], total: 0, sum: 0.0, growth_ln }
    }

    /// Records `v` seconds.
    pub fn record(&mut self, v: f64) {
        let last = self.counts.len() - 1;
        let i = if v <= MIN { 0 } else { (((v / MIN).ln() / self.growth_ln) as usize + 1).min(last) };
        self.counts[i] += 1;
        self.total += 1;
        self.sum += v;
    }

    /// Observations.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Mean of the observations.
    pub fn mean(&self) -> Option<f64> {
        (self.total > 0).then(|| self.sum / self.total as f64)
    }

    /// The `q` quantile (bucket midpoint, geometric).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                if i == 0 {
                    return Some(MIN);
                }
                return Some(MIN * ((i as f64 - 0.5) * self.growth_ln).exp());
            }
        }
        None
    }

    /// Adds another histogram's observations.
    pub fn merge(&mut self, o: &LogHist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.total += o.total;
        self.sum += o.sum;
    }
}

/// p50 / p95 / p99 of a distribution, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    /// Reads them off a histogram (NaN when empty).
    pub fn of(h: &LogHist) -> Self {
        let q = |x| h.quantile(x).unwrap_or(f64::NAN);
        Percentiles { p50: q(0.5), p95: q(0.95), p99: q(0.99) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_one_percent() {
        let mut h = LogHist::default();
        for i in 1..=10_000 {
            h.record(f64::from(i) * 0.001);
        }
        for (q, want) in [(0.5, 5.0), (0.95, 9.5), (0.99, 9.9)] {
            let got = h.quantile(q).unwrap();
            assert!((got - want).abs() / want < 0.01, "q{q}: {got} vs {want}");
        }
        assert!((h.mean().unwrap() - 5.0005).abs() < 1e-9);
        let mut g = LogHist::default();
        g.record(1e9);
        g.record(0.0);
        h.merge(&g);
        assert_eq!(h.count(), 10_002);
    }
}

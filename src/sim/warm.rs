//! The demand history a forecasting scaler starts a replay with: what the server would have
//! persisted had it run over the part of the source before `--from`. The arrivals of that part
//! are drawn as the replay's own would be (same process, lengths and rate scale) and their
//! prompt + generation tokens summed per minute, which is the fleet's token rate as the
//! scaler records it (every token attributed to its request's arrival minute: the requests last
//! seconds, the buckets a minute). It is loaded through `Decider::restore_history`, the path
//! the server's persisted history takes.

use crate::{
    decide::forecast::{BUCKET_S, CAPACITY, HistorySnapshot},
    sim::workload::Workload,
};

/// The history of the source part before `workload.from_s` (at most the forecaster's capacity),
/// `None` when there is none or the replay is time-compressed (its minutes are not the source's).
pub fn history_before(workload: &Workload) -> Option<HistorySnapshot> {
    let bucket = BUCKET_S as f64;
    let end = (workload.from_s / bucket).floor() as u64;
    if end == 0 || workload.time_scale != 1.0 {
        return None;
    }
    let start = end.saturating_sub(CAPACITY as u64);
    let mut before = workload.clone();
    before.from_s = start as f64 * bucket;
    before.to_s = end as f64 * bucket;
    // Its own stream: the warm-up's arrivals are not the replay's.
    before.seed = workload.seed ^ 0x5eed_0f41_570e_1d00;
    let mut tokens = vec![0.0f64; (end - start) as usize];
    for r in before.arrivals() {
        // Arrival times are relative to the part's start.
        let i = (r.arrival_s / bucket).floor() as usize;
        if let Some(t) = tokens.get_mut(i) {
            *t += f64::from(r.input) + f64::from(r.output);
        }
    }
    Some(HistorySnapshot {
        version: HistorySnapshot::VERSION,
        bucket_s: BUCKET_S,
        start,
        values: tokens.into_iter().map(|t| Some((t / bucket) as f32)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::workload::{LengthDist, Process, RateCurve, Source};

    #[test]
    fn the_warm_history_is_the_token_rate_of_the_part_before_the_replay_minute_by_minute() {
        let curve = RateCurve::synthetic("step:2:2:0", 3.0 * 3600.0, 60.0).unwrap();
        let mut w = Workload::new(
            "flat",
            Source::Rate { curve, process: Process::Poisson, input: LengthDist::Fixed(100), output: LengthDist::Fixed(50) },
            1,
        );
        w.from_s = 7200.0;
        let h = history_before(&w).unwrap();
        assert_eq!((h.start, h.values.len()), (0, 120));
        // 2 req/s x 150 tokens = 300 tokens/s: the mean within 5 %, each Poisson minute within a third.
        let mean = h.values.iter().map(|v| f64::from(v.unwrap())).sum::<f64>() / 120.0;
        assert!((mean - 300.0).abs() < 15.0, "{mean}");
        assert!(h.values.iter().all(|v| (200.0..400.0).contains(&v.unwrap())), "{:?}", h.values);
        w.from_s = 0.0;
        assert_eq!(history_before(&w), None, "nothing before the start");
    }
}

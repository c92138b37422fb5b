//! A Redis stream with one consumer group, as the batch workers and the scalers see it: entries
//! not yet delivered (the group's lag), delivered and not acknowledged (the pending entries list,
//! each with its owner and the time of its last delivery), and acknowledged (gone from both).
//!
//! Only the commands the example worker (`scaledobjects/worker/stream_worker.py`) and the
//! scalers use are modelled: `XADD`, `XREADGROUP ... >` one entry at a time, `XAUTOCLAIM` with a
//! minimum idle time, `XACK`, and the counts of `XPENDING`, `XINFO GROUPS` (lag, entries-read)
//! and `XINFO CONSUMERS`. As in Redis, an entry's idle time runs from its last delivery, whether
//! its worker is still at it or long gone: nothing refreshes it while the work goes on.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use crate::read::queue::{Consumer, QueueReading};

/// An entry's index in the stream (its ID order).
pub type EntryId = usize;

/// A consumer of the group (one per worker pod).
pub type ConsumerId = u64;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Delivery {
    consumer: ConsumerId,
    at: f64,
}

/// The stream and its group.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    len: usize,
    /// First entry not yet delivered to the group (the group's last-delivered ID + 1).
    next: usize,
    pel: BTreeMap<EntryId, Delivery>,
    acked: u64,
    /// Last read or claim of each consumer holding entries (`XINFO CONSUMERS` idle).
    seen: HashMap<ConsumerId, f64>,
}

impl Stream {
    /// `XADD`: appends an entry, returns its ID.
    pub fn add(&mut self) -> EntryId {
        self.len += 1;
        self.len - 1
    }

    /// Entries not yet delivered to the group (`XINFO GROUPS` lag).
    pub fn lag(&self) -> u64 {
        (self.len - self.next) as u64
    }

    /// Entries delivered and not acknowledged (`XPENDING` count).
    pub fn pending(&self) -> u64 {
        self.pel.len() as u64
    }

    /// Entries acknowledged so far.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Of the pending entries, those idle for at least `min_idle` seconds at `now`.
    pub fn stale(&self, now: f64, min_idle: f64) -> u64 {
        self.pel.values().filter(|d| now - d.at >= min_idle).count() as u64
    }

    /// Who holds `id`, if it is pending.
    pub fn owner(&self, id: EntryId) -> Option<ConsumerId> {
        self.pel.get(&id).map(|d| d.consumer)
    }

    /// `XREADGROUP GROUP g consumer COUNT 1 STREAMS s >`: the next undelivered entry, now pending
    /// for `consumer`.
    pub fn read_group(&mut self, consumer: ConsumerId, now: f64) -> Option<EntryId> {
        self.seen.insert(consumer, now);
        if self.next >= self.len {
            return None;
        }
        let id = self.next;
        self.next += 1;
        self.pel.insert(id, Delivery { consumer, at: now });
        Some(id)
    }

    /// `XAUTOCLAIM s g consumer min-idle 0-0 COUNT 1`: the first pending entry (in ID order) idle
    /// for at least `min_idle` seconds, now delivered to `consumer` (its idle time restarts).
    pub fn autoclaim(&mut self, consumer: ConsumerId, now: f64, min_idle: f64) -> Option<EntryId> {
        self.seen.insert(consumer, now);
        let (&id, d) = self.pel.iter_mut().find(|(_, d)| now - d.at >= min_idle)?;
        *d = Delivery { consumer, at: now };
        Some(id)
    }

    /// `XACK`: true if `id` was pending (whoever held it); an entry acknowledged twice, or never
    /// delivered, is not.
    pub fn ack(&mut self, id: EntryId) -> bool {
        let was = self.pel.remove(&id).is_some();
        if was {
            self.acked += 1;
        }
        was
    }

    /// What llm-scaler's Redis reader reports for the group: lag, pending, stale (idle for at
    /// least `claim_timeout`), acknowledged entries, and per consumer holding entries its pending
    /// and stale counts and its idle time, named by `name`.
    pub fn reading(&self, now: f64, claim_timeout: f64, name: impl Fn(ConsumerId) -> String) -> QueueReading {
        let mut per: BTreeMap<ConsumerId, (u64, u64)> = BTreeMap::new();
        for d in self.pel.values() {
            let e = per.entry(d.consumer).or_default();
            e.0 += 1;
            if now - d.at >= claim_timeout {
                e.1 += 1;
            }
        }
        let consumers = per
            .into_iter()
            .map(|(c, (pending, stale))| Consumer {
                name: name(c),
                pending,
                stale,
                idle: Duration::from_secs_f64((now - self.seen.get(&c).copied().unwrap_or(now)).max(0.0)),
            })
            .collect();
        QueueReading::Stream {
            lag: self.lag(),
            pending: self.pending(),
            stale: self.stale(now, claim_timeout),
            stale_idle: Duration::from_secs_f64(claim_timeout.max(0.0)),
            stale_truncated: false,
            acked: Some(self.acked),
            consumers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(n: usize) -> Stream {
        let mut s = Stream::default();
        for _ in 0..n {
            s.add();
        }
        s
    }

    #[test]
    fn a_read_moves_an_entry_from_the_lag_to_the_pending_list_and_an_ack_removes_it() {
        let mut s = stream(3);
        assert_eq!((s.lag(), s.pending()), (3, 0));
        assert_eq!(s.read_group(1, 0.0), Some(0));
        assert_eq!(s.read_group(2, 0.0), Some(1));
        assert_eq!((s.lag(), s.pending()), (1, 2));
        assert!(s.ack(0));
        assert!(!s.ack(0), "an acknowledged entry has left the pending list");
        assert!(!s.ack(2), "an undelivered entry cannot be acknowledged");
        assert_eq!((s.lag(), s.pending(), s.acked()), (1, 1, 1));
    }

    #[test]
    fn an_abandoned_entry_becomes_stale_after_the_claim_timeout_and_another_worker_claims_it() {
        let mut s = stream(2);
        assert_eq!(s.read_group(1, 0.0), Some(0));
        // Consumer 1 is preempted; its entry sits in the pending list.
        assert_eq!(s.autoclaim(2, 299.0, 300.0), None, "not idle long enough");
        assert_eq!(s.stale(299.0, 300.0), 0);
        assert_eq!(s.stale(300.0, 300.0), 1, "waiting again: counted as work to redo");
        assert_eq!(s.autoclaim(2, 300.0, 300.0), Some(0));
        assert_eq!(s.owner(0), Some(2));
        assert_eq!(s.stale(301.0, 300.0), 0, "the claim restarted its idle time");
        assert_eq!(s.lag(), 1, "claiming does not touch the undelivered entries");
    }

    #[test]
    fn the_reading_names_each_holder_with_its_pending_stale_and_idle() {
        let mut s = stream(4);
        s.read_group(7, 0.0);
        s.read_group(7, 10.0);
        s.read_group(9, 100.0);
        let r = s.reading(320.0, 300.0, |c| format!("pod-{c}"));
        let QueueReading::Stream { lag, pending, stale, acked, consumers, .. } = r else { panic!("{r:?}") };
        assert_eq!((lag, pending, stale, acked), (1, 3, 2, Some(0)));
        let by: Vec<(String, u64, u64, u64)> = consumers.iter().map(|c| (c.name.clone(), c.pending, c.stale, c.idle.as_secs())).collect();
        assert_eq!(by, vec![("pod-7".into(), 2, 2, 310), ("pod-9".into(), 1, 0, 220)]);
    }
}

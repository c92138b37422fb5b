//! One batch run in virtual time: a stream of items, the Jobs a ScaledJob's scaler has KEDA
//! create for it, their workers, Spot preemptions and the bill.
//!
//! A Job's pod waits for a node (`provisioning`, not billed: the node is not there yet), pulls
//! the image and loads the model (billed: the node is), then runs the example worker's loop
//! (`scaledobjects/worker/stream_worker.py`): `XAUTOCLAIM` entries idle for the claim timeout,
//! else `XREADGROUP` a new one, work, `XACK`, until `--max-items` entries or `--idle-exit`
//! without one. A Spot notice stops it taking entries: it finishes the entry in hand if that
//! fits in the notice, else abandons it (its progress is lost, or kept with a checkpoint) and
//! exits. The worker exits 0 on the notice, so its pod Succeeds and the Job completes: KEDA
//! replaces it only if the metric asks. A pod preempted before its worker runs fails with
//! `DisruptionTarget`, and the example's `podFailurePolicy` (Ignore) has the Job start a new pod.

use std::{
    cmp::Ordering,
    collections::{BTreeSet, BinaryHeap},
};

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};
use serde::Serialize;

use crate::{
    decide::batch::{BatchContext, BatchDecision, BatchPolicy, CostPolicy, DrainRate, JobPods, WorkCount, decide},
    read::queue::QueueReading,
    sim::{
        batch::{
            keda::{self, JobCounts, Strategy, StreamsMetric},
            stream::{ConsumerId, EntryId, Stream},
        },
        workload::LengthDist,
    },
};

/// Items that arrive together after the back-fill, every `every_s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Drops {
    /// Items per drop.
    pub items: u64,
    /// Seconds between drops (the first one `every_s` after the back-fill).
    pub every_s: f64,
    /// Drops.
    pub count: u32,
}

/// The world every policy runs in.
#[derive(Debug, Clone, Serialize)]
pub struct BatchConfig {
    /// Items in the stream at t = 0.
    pub backfill_items: u64,
    /// Tokens per item.
    #[serde(skip)]
    pub tokens: LengthDist,
    /// Later drops.
    pub drops: Option<Drops>,
    /// Tokens per second one Job's worker processes.
    pub job_tokens_per_s: f64,
    /// GPUs one Job holds.
    pub gpus_per_job: u32,
    /// From the Job's creation to its node (not billed).
    pub provisioning_s: f64,
    /// Image pull on the node (billed; the pod is Pending).
    pub image_pull_s: f64,
    /// Model load (billed; the pod is Running, not Ready).
    pub model_load_s: f64,
    /// KEDA's pollingInterval.
    pub polling_s: f64,
    /// llm-scaler's collector interval (it reads the queue and decides; KEDA gets the last one).
    pub collector_s: f64,
    /// The worker's and the trigger's claim timeout.
    pub claim_timeout_s: f64,
    /// The worker exits after this long without an entry.
    pub idle_exit_s: f64,
    /// Entries one worker takes before it exits.
    pub max_items: u32,
    /// Spot notice before the node goes.
    pub notice_s: f64,
    /// Spot preemptions per pod-hour (Poisson, from the pod's node being there).
    pub preemptions_per_hour: f64,
    /// The worker checkpoints: an abandoned entry's progress is kept for whoever redoes it.
    pub checkpoint: bool,
    /// Dollars per Spot GPU-hour.
    pub spot_price: f64,
    /// Dollars per on-demand GPU-hour.
    pub on_demand_price: f64,
    /// The ScaledJob's maxReplicaCount.
    pub max_replicas: u64,
    /// `pendingPodConditions: [Ready]`: a Job counts as pending until its pod is Ready (else until
    /// its pod is Running).
    pub pending_until_ready: bool,
    /// Stop here if the work is not done.
    pub horizon_s: f64,
    /// Time series resolution.
    pub series_step_s: f64,
    /// Item sizes and preemptions.
    pub seed: u64,
}

/// What makes the ScaledJob's metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scaler {
    /// KEDA's own `redis-streams` trigger.
    Keda(StreamsMetric),
    /// llm-scaler's batch mode (`type: external`, `mode: batch`), the server's own decision.
    LlmScaler {
        /// `workCount`.
        count: WorkCount,
        /// `watchPods`.
        watch_pods: bool,
        /// `budgetPerHour`.
        budget_per_hour: Option<f64>,
        /// `deadline`, seconds after the back-fill arrives.
        deadline_s: Option<f64>,
    },
}

/// One policy: a scaler, a strategy, a target and the node pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contender {
    /// Its name in the report.
    pub name: String,
    /// The trigger.
    pub scaler: Scaler,
    /// The ScaledJob's strategy.
    pub strategy: Strategy,
    /// Items per Job (`targetSize`, `lagCount`, `pendingEntriesCount`).
    pub target_size: f64,
    /// On-demand nodes: the on-demand price and no preemption.
    pub on_demand: bool,
}

/// Queue and Jobs over time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    /// Seconds between points.
    pub step_s: f64,
    /// Entries not yet delivered.
    pub lag: Vec<f64>,
    /// Entries delivered and not acknowledged.
    pub pending: Vec<f64>,
    /// Jobs not finished.
    pub jobs: Vec<f64>,
    /// Of those, at work (Ready).
    pub working: Vec<f64>,
}

/// One policy on one seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunResult {
    /// The policy.
    pub policy: String,
    /// The seed.
    pub seed: u64,
    /// Seconds from each arrival (the back-fill, then each drop) to its last item done; `None`:
    /// not done by the horizon.
    pub completion_s: Vec<Option<f64>>,
    /// Items that arrived.
    pub items: u64,
    /// Items done (acknowledged at least once).
    pub items_done: u64,
    /// Item completions in all (a duplicate is an item done a second time).
    pub completions: u64,
    /// GPU-hours billed: from each pod's node to its exit.
    pub gpu_hours: f64,
    /// Of those, without an item in hand (pulling, loading, idle, on notice).
    pub idle_gpu_hours: f64,
    /// Dollars per GPU-hour.
    pub price: f64,
    /// `gpu_hours x price`.
    pub cost_usd: f64,
    /// Item-seconds of work abandoned on a notice and not checkpointed.
    pub work_lost_s: f64,
    /// Item-seconds spent on items another worker had already done.
    pub work_duplicated_s: f64,
    /// Items started more than once.
    pub items_redone: u64,
    /// Spot notices received.
    pub preemptions: u64,
    /// Most Jobs at once.
    pub peak_jobs: u64,
    /// Jobs KEDA created.
    pub jobs_created: u64,
    /// When the run ended (all done and every Job finished, or the horizon).
    pub end_s: f64,
    /// Queue and Jobs over time.
    #[serde(skip)]
    pub series: Series,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for its node.
    Provisioning,
    /// Pulling the image (pod Pending).
    Pulling,
    /// Loading the model (pod Running, not Ready).
    Loading,
    /// The worker's loop (pod Ready).
    Working,
    /// Finished.
    Done,
}

#[derive(Debug, Clone, Copy)]
struct InHand {
    entry: EntryId,
    started: f64,
    ends: f64,
}

#[derive(Debug, Clone)]
struct Job {
    pod: u32,
    phase: Phase,
    /// When the current pod's node came (billing starts).
    node_at: f64,
    notice: bool,
    in_hand: Option<InHand>,
    items_done: u32,
    /// Invalidates events scheduled for an earlier state.
    epoch: u64,
    idle: bool,
}

#[derive(Debug, Clone)]
struct Item {
    tokens: f64,
    saved: f64,
    arrival: usize,
    done_at: Option<f64>,
    starts: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Tick,
    Poll,
    Sample,
    Drop(usize),
    NodeReady(usize, u64),
    Pulled(usize, u64),
    Loaded(usize, u64),
    ItemDone(usize, u64),
    IdleExit(usize, u64),
    Notice(usize, u32),
    Wake,
}

impl Kind {
    /// At equal times: the collector decides before KEDA polls it, and the poll sees the state
    /// before the workers' moves at that instant.
    fn rank(self) -> u8 {
        match self {
            Kind::Drop(_) => 0,
            Kind::Tick => 1,
            Kind::Poll => 2,
            Kind::Sample => 3,
            _ => 4,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Event {
    t: f64,
    rank: u8,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    /// Reversed: the heap pops the earliest.
    fn cmp(&self, o: &Self) -> Ordering {
        o.t.total_cmp(&self.t).then(o.rank.cmp(&self.rank)).then(o.seq.cmp(&self.seq))
    }
}

/// The one place the simulator calls llm-scaler's batch decision: the function the server's
/// batch collector calls (`run::batch::tick`), with the context it builds (the time, the pods
/// when watched, the drain rate learned so far), and the drain observed after it as the server
/// does.
pub fn llm_scaler_decide(
    policy: &BatchPolicy,
    reading: QueueReading,
    now: f64,
    pods: Option<JobPods>,
    drain: &mut DrainRate,
) -> BatchDecision {
    let ctx = BatchContext { now, pods, job_rate: drain.per_job() };
    let d = decide(policy, "sim-stream/workers", reading, &ctx);
    drain.observe(now, &d.reading, d.busy);
    d
}

fn consumer(job: usize, pod: u32) -> ConsumerId {
    ((job as u64) << 16) | u64::from(pod)
}

fn pod_name(c: ConsumerId) -> String {
    format!("w{}-{}", c >> 16, c & 0xffff)
}

struct World<'a> {
    cfg: &'a BatchConfig,
    who: &'a Contender,
    policy: Option<BatchPolicy>,
    drain: DrainRate,
    decision: Option<(f64, bool)>,
    stream: Stream,
    items: Vec<Item>,
    arrivals: Vec<f64>,
    jobs: Vec<Job>,
    live: BTreeSet<usize>,
    heap: BinaryHeap<Event>,
    seq: u64,
    now: f64,
    gpu_s: f64,
    busy_s: f64,
    lost_s: f64,
    dup_s: f64,
    completions: u64,
    done: u64,
    preemptions: u64,
    peak: u64,
    series: Series,
}

/// Runs one policy on the world `cfg` describes.
pub fn run(cfg: &BatchConfig, who: &Contender) -> RunResult {
    let mut w = World::new(cfg, who);
    w.main_loop();
    w.result()
}

impl<'a> World<'a> {
    fn new(cfg: &'a BatchConfig, who: &'a Contender) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
        let drops = cfg.drops.map_or(0, |d| d.count as usize);
        let per_drop = cfg.drops.map_or(0, |d| d.items);
        let total = cfg.backfill_items + per_drop * drops as u64;
        let sizes = cfg.tokens.sample_n(total as usize, &mut rng);
        let items = sizes
            .iter()
            .enumerate()
            .map(|(i, &t)| Item {
                tokens: f64::from(t),
                saved: 0.0,
                arrival: if (i as u64) < cfg.backfill_items { 0 } else { 1 + ((i as u64 - cfg.backfill_items) / per_drop.max(1)) as usize },
                done_at: None,
                starts: 0,
            })
            .collect();
        let mut arrivals = vec![0.0];
        arrivals.extend((1..=drops).map(|k| k as f64 * cfg.drops.map_or(0.0, |d| d.every_s)));
        let policy = match who.scaler {
            Scaler::Keda(_) => None,
            Scaler::LlmScaler { count, budget_per_hour, deadline_s, .. } => Some(BatchPolicy {
                target_size: who.target_size,
                activation: 0.0,
                count,
                cost: CostPolicy {
                    gpu_hour_price: if who.on_demand { cfg.on_demand_price } else { cfg.spot_price },
                    gpus_per_job: cfg.gpus_per_job,
                    budget_per_hour,
                    deadline: deadline_s,
                },
            }),
        };
        let mut w = World {
            cfg,
            who,
            policy,
            drain: DrainRate::default(),
            decision: None,
            stream: Stream::default(),
            items,
            arrivals,
            jobs: Vec::new(),
            live: BTreeSet::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            now: 0.0,
            gpu_s: 0.0,
            busy_s: 0.0,
            lost_s: 0.0,
            dup_s: 0.0,
            completions: 0,
            done: 0,
            preemptions: 0,
            peak: 0,
            series: Series { step_s: cfg.series_step_s, ..Series::default() },
        };
        for k in 0..=drops {
            let at = w.arrivals[k];
            w.at(at, Kind::Drop(k));
        }
        if w.policy.is_some() {
            w.at(0.0, Kind::Tick);
        }
        w.at(0.0, Kind::Poll);
        w.at(0.0, Kind::Sample);
        w
    }
}

impl World<'_> {
    fn at(&mut self, t: f64, kind: Kind) {
        self.seq += 1;
        self.heap.push(Event { t, rank: kind.rank(), seq: self.seq, kind });
    }

    fn finished(&self) -> bool {
        self.done == self.items.len() as u64 && self.live.is_empty() && self.now >= *self.arrivals.last().unwrap_or(&0.0)
    }

    fn main_loop(&mut self) {
        while let Some(e) = self.heap.pop() {
            if e.t > self.cfg.horizon_s {
                self.now = self.cfg.horizon_s;
                break;
            }
            self.now = e.t;
            match e.kind {
                Kind::Drop(k) => self.arrive(k),
                Kind::Tick => {
                    self.tick();
                    self.at(self.now + self.cfg.collector_s, Kind::Tick);
                }
                Kind::Poll => {
                    self.poll();
                    self.at(self.now + self.cfg.polling_s, Kind::Poll);
                }
                Kind::Sample => {
                    self.sample();
                    self.at(self.now + self.cfg.series_step_s, Kind::Sample);
                }
                Kind::NodeReady(j, ep) if self.jobs[j].epoch == ep => self.node_ready(j),
                Kind::Pulled(j, ep) if self.jobs[j].epoch == ep => {
                    self.jobs[j].phase = Phase::Loading;
                    self.jobs[j].epoch += 1;
                    let ep = self.jobs[j].epoch;
                    self.at(self.now + self.cfg.model_load_s, Kind::Loaded(j, ep));
                }
                Kind::Loaded(j, ep) if self.jobs[j].epoch == ep => {
                    self.jobs[j].phase = Phase::Working;
                    self.jobs[j].epoch += 1;
                    self.take(j);
                }
                Kind::ItemDone(j, ep) if self.jobs[j].epoch == ep => self.item_done(j),
                Kind::IdleExit(j, ep) if self.jobs[j].epoch == ep && self.jobs[j].idle => self.exit(j),
                Kind::Notice(j, pod) if self.jobs[j].pod == pod && self.jobs[j].phase != Phase::Done => self.notice(j),
                Kind::Wake => self.wake(),
                _ => {}
            }
            if self.finished() {
                self.sample();
                break;
            }
        }
    }

    fn arrive(&mut self, k: usize) {
        for _ in self.items.iter().filter(|i| i.arrival == k) {
            self.stream.add();
        }
        self.wake();
    }

    /// llm-scaler's collector: reads the stream (and the pods), decides, keeps the answer.
    fn tick(&mut self) {
        let Some(policy) = self.policy else { return };
        let Scaler::LlmScaler { watch_pods, .. } = self.who.scaler else { return };
        let reading = self.stream.reading(self.now, self.cfg.claim_timeout_s, pod_name);
        let pods = watch_pods.then(|| self.job_pods());
        let d = llm_scaler_decide(&policy, reading, self.now, pods, &mut self.drain);
        self.decision = Some((d.work, d.active));
    }

    /// What a pod watch of the ScaledJob shows (`run::job_pods`): live pods, those at work,
    /// those starting, those with a disruption notice.
    fn job_pods(&self) -> JobPods {
        let mut p = JobPods::default();
        for &j in &self.live {
            let job = &self.jobs[j];
            let name = pod_name(consumer(j, job.pod));
            if job.notice {
                p.disrupted.push(format!("{name}:TerminationByKubelet"));
            } else if job.phase == Phase::Working {
                p.working += 1;
            } else {
                p.starting += 1;
            }
            p.live.push(name);
            p.on_nodes += 1;
        }
        p.live.sort();
        p
    }

    fn counts(&self) -> JobCounts {
        let pending = self
            .live
            .iter()
            .filter(|&&j| match self.jobs[j].phase {
                Phase::Provisioning | Phase::Pulling => true,
                Phase::Loading => self.cfg.pending_until_ready,
                Phase::Working | Phase::Done => false,
            })
            .count() as u64;
        JobCounts { running: self.live.len() as u64, pending }
    }

    /// KEDA's poll: the trigger's metric and activity, the strategy, new Jobs.
    fn poll(&mut self) {
        let (metric, active) = match self.who.scaler {
            Scaler::Keda(m) => {
                let v = m.value(self.stream.lag(), self.stream.pending()) as f64;
                (v, v > 0.0)
            }
            Scaler::LlmScaler { .. } => self.decision.unwrap_or((0.0, false)),
        };
        let n = keda::jobs_to_create(self.who.strategy, metric, self.who.target_size, self.cfg.max_replicas, self.counts(), active);
        for _ in 0..n {
            let j = self.jobs.len();
            self.jobs.push(Job {
                pod: 0,
                phase: Phase::Provisioning,
                node_at: 0.0,
                notice: false,
                in_hand: None,
                items_done: 0,
                epoch: 0,
                idle: false,
            });
            self.live.insert(j);
            self.at(self.now + self.cfg.provisioning_s, Kind::NodeReady(j, 0));
        }
        self.peak = self.peak.max(self.live.len() as u64);
    }

    fn sample(&mut self) {
        let s = &mut self.series;
        s.lag.push(self.stream.lag() as f64);
        s.pending.push(self.stream.pending() as f64);
        s.jobs.push(self.live.len() as f64);
        s.working.push(self.live.iter().filter(|&&j| self.jobs[j].phase == Phase::Working).count() as f64);
    }

    fn node_ready(&mut self, j: usize) {
        let (now, cfg) = (self.now, self.cfg);
        let job = &mut self.jobs[j];
        job.phase = Phase::Pulling;
        job.node_at = now;
        job.epoch += 1;
        let (ep, pod) = (job.epoch, job.pod);
        self.at(now + cfg.image_pull_s, Kind::Pulled(j, ep));
        if cfg.preemptions_per_hour > 0.0 && !self.who.on_demand {
            // Each pod draws from its own generator, so a policy's preemptions do not depend on
            // how many pods the others started.
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed ^ consumer(j, pod).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let wait = -(1.0 - rng.random::<f64>()).ln() / (cfg.preemptions_per_hour / 3600.0);
            self.at(now + wait, Kind::Notice(j, pod));
        }
    }

    /// The worker's loop at one instant: claim a stale entry, else read a new one, else wait.
    fn take(&mut self, j: usize) {
        let (now, cfg) = (self.now, self.cfg);
        let job = &self.jobs[j];
        if job.phase != Phase::Working || job.in_hand.is_some() || job.notice {
            return;
        }
        if job.items_done >= cfg.max_items {
            self.exit(j);
            return;
        }
        let c = consumer(j, job.pod);
        let got = self.stream.autoclaim(c, now, cfg.claim_timeout_s).or_else(|| self.stream.read_group(c, now));
        let job = &mut self.jobs[j];
        match got {
            Some(entry) => {
                let item = &mut self.items[entry];
                item.starts += 1;
                let ends = now + (item.tokens - item.saved).max(0.0) / cfg.job_tokens_per_s;
                job.in_hand = Some(InHand { entry, started: now, ends });
                job.idle = false;
                job.epoch += 1;
                let ep = job.epoch;
                self.at(ends, Kind::ItemDone(j, ep));
                // The entry turns stale then if still pending: idle workers look again.
                self.at(now + cfg.claim_timeout_s, Kind::Wake);
            }
            None if !job.idle => {
                job.idle = true;
                job.epoch += 1;
                let ep = job.epoch;
                self.at(now + cfg.idle_exit_s, Kind::IdleExit(j, ep));
            }
            None => {}
        }
    }

    fn wake(&mut self) {
        let idle: Vec<usize> = self.live.iter().copied().filter(|&j| self.jobs[j].idle).collect();
        for j in idle {
            self.take(j);
        }
    }

    fn item_done(&mut self, j: usize) {
        let now = self.now;
        let Some(h) = self.jobs[j].in_hand.take() else { return };
        self.busy_s += now - h.started;
        self.stream.ack(h.entry);
        self.completions += 1;
        let item = &mut self.items[h.entry];
        if item.done_at.is_none() {
            item.done_at = Some(now);
            self.done += 1;
        } else {
            self.dup_s += now - h.started;
        }
        let job = &mut self.jobs[j];
        job.items_done += 1;
        job.epoch += 1;
        if job.notice || job.items_done >= self.cfg.max_items {
            self.exit(j);
        } else {
            self.take(j);
        }
    }

    fn notice(&mut self, j: usize) {
        let (now, cfg) = (self.now, self.cfg);
        self.preemptions += 1;
        let job = &mut self.jobs[j];
        match job.phase {
            Phase::Pulling | Phase::Loading => {
                // The worker never ran: the pod fails with DisruptionTarget, the Job starts another.
                self.gpu_s += (now - job.node_at) * f64::from(cfg.gpus_per_job);
                job.pod += 1;
                job.phase = Phase::Provisioning;
                job.epoch += 1;
                let ep = job.epoch;
                self.at(now + cfg.provisioning_s, Kind::NodeReady(j, ep));
            }
            Phase::Working => {
                job.notice = true;
                match job.in_hand {
                    Some(h) if h.ends - now <= cfg.notice_s => {} // finishes, then exits
                    Some(h) => {
                        job.in_hand = None;
                        self.busy_s += now - h.started;
                        let item = &mut self.items[h.entry];
                        if cfg.checkpoint {
                            item.saved += (now - h.started) * cfg.job_tokens_per_s;
                        } else {
                            self.lost_s += now - h.started;
                        }
                        self.exit(j);
                    }
                    None => self.exit(j),
                }
            }
            Phase::Provisioning | Phase::Done => {}
        }
    }

    fn exit(&mut self, j: usize) {
        let job = &mut self.jobs[j];
        if job.phase == Phase::Done {
            return;
        }
        if job.phase != Phase::Provisioning {
            self.gpu_s += (self.now - job.node_at) * f64::from(self.cfg.gpus_per_job);
        }
        job.phase = Phase::Done;
        job.idle = false;
        job.epoch += 1;
        self.live.remove(&j);
    }

    fn result(mut self) -> RunResult {
        // Pods still up at the horizon are billed to it.
        for j in self.live.clone() {
            self.exit(j);
        }
        let price = if self.who.on_demand { self.cfg.on_demand_price } else { self.cfg.spot_price };
        let gpu_hours = self.gpu_s / 3600.0;
        let completion_s = self
            .arrivals
            .iter()
            .enumerate()
            .map(|(k, at)| {
                let mut last: Option<f64> = Some(*at);
                for i in self.items.iter().filter(|i| i.arrival == k) {
                    last = match (last, i.done_at) {
                        (Some(l), Some(d)) => Some(l.max(d)),
                        _ => None,
                    };
                }
                last.map(|l| l - at)
            })
            .collect();
        RunResult {
            policy: self.who.name.clone(),
            seed: self.cfg.seed,
            completion_s,
            items: self.items.len() as u64,
            items_done: self.done,
            completions: self.completions,
            gpu_hours,
            idle_gpu_hours: (self.gpu_s - self.busy_s * f64::from(self.cfg.gpus_per_job)).max(0.0) / 3600.0,
            price,
            cost_usd: gpu_hours * price,
            work_lost_s: self.lost_s,
            work_duplicated_s: self.dup_s,
            items_redone: self.items.iter().filter(|i| i.starts > 1).count() as u64,
            preemptions: self.preemptions,
            peak_jobs: self.peak,
            jobs_created: self.jobs.len() as u64,
            end_s: self.now,
            series: self.series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One item of 250 s on one Job, no random preemption: the tests place the notice.
    fn one_item(checkpoint: bool) -> BatchConfig {
        BatchConfig {
            backfill_items: 1,
            tokens: LengthDist::Fixed(3_000_000),
            drops: None,
            job_tokens_per_s: 12_000.0,
            gpus_per_job: 2,
            provisioning_s: 150.0,
            image_pull_s: 30.0,
            model_load_s: 60.0,
            polling_s: 30.0,
            collector_s: 5.0,
            claim_timeout_s: 300.0,
            idle_exit_s: 10.0,
            max_items: 20,
            notice_s: 120.0,
            preemptions_per_hour: 0.0,
            checkpoint,
            spot_price: 1.8,
            on_demand_price: 4.0,
            max_replicas: 10,
            pending_until_ready: true,
            horizon_s: 4.0 * 3600.0,
            series_step_s: 60.0,
            seed: 1,
        }
    }

    fn contender(scaler: Scaler, strategy: Strategy) -> Contender {
        Contender { name: "t".into(), scaler, strategy, target_size: 1.0, on_demand: false }
    }

    fn waiting(watch_pods: bool) -> Contender {
        contender(Scaler::LlmScaler { count: WorkCount::Waiting, watch_pods, budget_per_hour: None, deadline_s: None }, Strategy::Accurate)
    }

    /// The first Job takes the item at 240 s (node 150 + pull 30 + load 60); its notice comes
    /// at 340 s, with 150 s of the item left: more than the 120 s notice, so it is abandoned.
    fn preempted_at_340(cfg: &BatchConfig, who: &Contender) -> RunResult {
        let mut w = World::new(cfg, who);
        w.at(340.0, Kind::Notice(0, 0));
        w.main_loop();
        w.result()
    }

    #[test]
    fn an_item_without_preemption_costs_its_pod_s_billed_time_at_the_spot_price() {
        let cfg = one_item(false);
        let r = run(&cfg, &waiting(false));
        assert_eq!(r.completion_s, vec![Some(490.0)], "taken at 240 s, 250 s of work");
        // Billed from the node (150 s) to the exit after the idle timeout (500 s), 2 GPUs.
        assert!((r.gpu_hours - 2.0 * 350.0 / 3600.0).abs() < 1e-9, "{}", r.gpu_hours);
        assert!((r.cost_usd - r.gpu_hours * 1.8).abs() < 1e-12);
        assert!((r.idle_gpu_hours - 2.0 * 100.0 / 3600.0).abs() < 1e-9, "pull + load + idle exit: {}", r.idle_gpu_hours);
        assert_eq!((r.jobs_created, r.items_redone, r.work_lost_s), (1, 0, 0.0));
    }

    #[test]
    fn an_abandoned_item_is_lost_work_redone_in_full_once_its_entry_is_stale() {
        let cfg = one_item(false);
        let r = preempted_at_340(&cfg, &waiting(false));
        assert_eq!((r.preemptions, r.work_lost_s, r.items_redone, r.jobs_created), (1, 100.0, 1, 2));
        // Stale at 540 s (delivered at 240 s, 300 s claim timeout): the tick and poll at 540 s
        // create a Job, ready at 780 s, which claims it and does all 250 s again.
        assert_eq!(r.completion_s, vec![Some(1030.0)]);
        assert_eq!((r.items_done, r.completions), (1, 1), "done once");
    }

    #[test]
    fn a_checkpointing_worker_keeps_the_progress_and_the_redo_does_only_the_rest() {
        let cfg = one_item(true);
        let r = preempted_at_340(&cfg, &waiting(false));
        assert_eq!((r.work_lost_s, r.items_redone), (0.0, 1));
        assert_eq!(r.completion_s, vec![Some(930.0)], "150 s left after the 100 s kept");
    }

    #[test]
    fn watching_pods_counts_the_abandoned_entry_at_once_and_its_redo_starts_sooner() {
        let cfg = one_item(false);
        let r = preempted_at_340(&cfg, &waiting(true));
        // Orphaned from the 345 s tick; the 360 s poll creates a Job, ready at 600 s, when the
        // entry (idle since 240 s) is stale enough to claim.
        assert_eq!(r.completion_s, vec![Some(850.0)]);
    }

    #[test]
    fn keda_s_lag_trigger_never_replaces_a_job_for_an_abandoned_entry_and_its_pending_trigger_never_starts() {
        let cfg = one_item(false);
        let lag = preempted_at_340(&cfg, &contender(Scaler::Keda(StreamsMetric::Lag), Strategy::Accurate));
        assert_eq!((lag.items_done, lag.completion_s.clone(), lag.jobs_created), (0, vec![None], 1), "stranded in the pending list");
        let pending = run(&cfg, &contender(Scaler::Keda(StreamsMetric::PendingEntries), Strategy::Default));
        assert_eq!((pending.items_done, pending.jobs_created), (0, 0), "nothing is pending before a worker reads");
    }

    #[test]
    fn a_notice_with_the_item_nearly_done_lets_the_worker_finish_and_acknowledge_it() {
        let cfg = one_item(false);
        let who = waiting(false);
        let mut w = World::new(&cfg, &who);
        w.at(440.0, Kind::Notice(0, 0));
        w.main_loop();
        let r = w.result();
        assert_eq!((r.completion_s[0], r.work_lost_s, r.items_redone, r.jobs_created), (Some(490.0), 0.0, 0, 1));
    }
}

//! The modelled fleet: replicas behind a gateway, with a Deployment's lifecycle. Requests are
//! routed to Ready pods (held at the gateway while there are none), scale-ups become Ready after
//! a cold start, scale-downs remove pods not Ready yet and drain Ready ones, and the fleet counts
//! the GPU time it holds. The simulator and the demo both run their replicas here.

use std::collections::VecDeque;

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

use crate::sim::{
    config::{Router, SimConfig},
    engine::{Done, Replica},
    render::dcgm::{Gpu, PodRef},
    workload::Request,
};

/// Where a pod is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PodState {
    /// Scheduled, not Ready yet (cold start).
    Starting,
    /// Serving.
    Ready,
    /// Scaled down: finishing what it holds, taking no new requests.
    Draining {
        /// When the drain began.
        since: f64,
    },
}

/// One replica of the fleet.
pub struct Pod {
    /// Pod name.
    pub name: String,
    /// When it becomes (or became) Ready.
    ready_at: f64,
    /// Private: the fleet keeps its index of Ready pods in step with it.
    state: PodState,
    /// The modelled vLLM replica.
    pub replica: Replica,
    /// Its GPUs, for dcgm-exporter's view.
    pub gpus: Vec<Gpu>,
    busy_prev: f64,
    /// Share of the last tick a batch was running (dcgm-exporter's duty cycle).
    pub duty: f64,
}

impl Pod {
    /// Where it is in its life.
    pub fn state(&self) -> PodState {
        self.state
    }
}

/// The replicas and the gateway in front of them.
pub struct Fleet<'c> {
    cfg: &'c SimConfig,
    pods: Vec<Pod>,
    next_id: u32,
    rng: Xoshiro256PlusPlus,
    /// Round-robin position.
    rr: usize,
    /// Requests waiting for a Ready pod.
    gateway: VecDeque<Request>,
    /// Indices of Ready pods (rebuilt when the fleet changes).
    routable: Vec<usize>,
    gpu_seconds: f64,
    busy_seconds: f64,
    actions: u64,
    peak: u32,
    /// Preemptions of pods that have left (their replicas are gone with them).
    preemptions_gone: u64,
}

impl<'c> Fleet<'c> {
    /// An empty fleet; `seed` drives routing and cold-start jitter.
    pub fn new(cfg: &'c SimConfig, seed: u64) -> Self {
        Fleet {
            cfg,
            pods: Vec::new(),
            next_id: 0,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            rr: 0,
            gateway: VecDeque::new(),
            routable: Vec::new(),
            gpu_seconds: 0.0,
            busy_seconds: 0.0,
            actions: 0,
            peak: 0,
            preemptions_gone: 0,
        }
    }

    /// A fleet of `n` pods Ready at t = 0.
    pub fn with_ready(cfg: &'c SimConfig, seed: u64, n: u32) -> Self {
        let mut f = Fleet::new(cfg, seed);
        for _ in 0..n {
            f.add_pod(0.0, 0.0);
        }
        f.peak = n;
        f
    }

    fn add_pod(&mut self, now: f64, ready_at: f64) {
        let id = self.next_id;
        self.next_id += 1;
        let name = format!("vllm-sim-{id}");
        let holder = PodRef { namespace: "sim".into(), pod: name.clone(), container: "vllm".into() };
        let gpus = (0..self.cfg.profile.tp)
            .map(|i| {
                let mut g = Gpu::h100(i, &format!("gpu-node-{id}"));
                g.holder = Some(holder.clone());
                g.apply_load(0.0);
                g
            })
            .collect();
        let state = if ready_at <= now { PodState::Ready } else { PodState::Starting };
        self.pods.push(Pod { name, ready_at, state, replica: Replica::new(&self.cfg.profile, now), gpus, busy_prev: 0.0, duty: 0.0 });
        self.reindex();
    }

    fn reindex(&mut self) {
        self.routable = self.pods.iter().enumerate().filter(|(_, p)| p.state == PodState::Ready).map(|(i, _)| i).collect();
    }

    /// Deployment replicas: pods not being drained.
    pub fn current(&self) -> u32 {
        self.pods.iter().filter(|p| !matches!(p.state, PodState::Draining { .. })).count() as u32
    }

    /// Ready pods.
    pub fn ready(&self) -> u32 {
        self.routable.len() as u32
    }

    /// Pods not Ready yet.
    pub fn starting(&self) -> u32 {
        self.pods.iter().filter(|p| p.state == PodState::Starting).count() as u32
    }

    /// Resizes the Deployment to `n` replicas at `now`.
    pub fn scale_to(&mut self, n: u32, now: f64) {
        let cur = self.current();
        if n == cur {
            return;
        }
        self.actions += 1;
        if n > cur {
            for _ in cur..n {
                let jitter = if self.cfg.cold_start_jitter_s > 0.0 { self.rng.random::<f64>() * self.cfg.cold_start_jitter_s } else { 0.0 };
                self.add_pod(now, now + self.cfg.cold_start_s + jitter);
            }
        } else {
            let mut remove = cur - n;
            // Like a ReplicaSet: pods not Ready yet go first (youngest first), then the Ready pods
            // with the least work.
            while remove > 0 {
                if let Some(i) = self.pods.iter().rposition(|p| p.state == PodState::Starting) {
                    // Its GPU time so far was counted tick by tick.
                    self.pods.remove(i);
                    remove -= 1;
                    continue;
                }
                let Some(i) = self
                    .pods
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.state == PodState::Ready)
                    .min_by_key(|(_, p)| p.replica.outstanding())
                    .map(|(i, _)| i)
                else {
                    break;
                };
                self.pods[i].state = PodState::Draining { since: now };
                remove -= 1;
            }
            self.reindex();
        }
        self.peak = self.peak.max(self.pods.len() as u32);
    }

    /// Hands `r` to a Ready pod (by the configured router), or holds it at the gateway.
    pub fn route(&mut self, r: Request, done: &mut impl FnMut(Done)) {
        let n = self.routable.len();
        if n == 0 {
            self.gateway.push_back(r);
            return;
        }
        let i = match self.cfg.router {
            Router::RoundRobin => {
                self.rr = (self.rr + 1) % n;
                self.routable[self.rr]
            }
            Router::LeastRequest => {
                let a = self.routable[self.rng.random_range(0..n)];
                let b = if n > 1 { self.routable[self.rng.random_range(0..n)] } else { a };
                self.pods[a].replica.advance_to(r.arrival_s, done);
                if b != a {
                    self.pods[b].replica.advance_to(r.arrival_s, done);
                }
                if self.pods[b].replica.outstanding() < self.pods[a].replica.outstanding() { b } else { a }
            }
        };
        let p = &mut self.pods[i].replica;
        p.advance_to(r.arrival_s, done);
        p.submit(&r, r.arrival_s);
    }

    /// Advances every pod to `t` and runs the lifecycle: pods become Ready, drains end.
    pub fn tick(&mut self, t: f64, dt: f64, count_until: f64, done: &mut impl FnMut(Done)) {
        let mut changed = false;
        let tp = f64::from(self.cfg.profile.tp);
        let counted = (t.min(count_until) - (t - dt).min(count_until)).max(0.0);
        for p in &mut self.pods {
            p.replica.advance_to(t, done);
            let busy = p.replica.busy_s - p.busy_prev;
            p.busy_prev = p.replica.busy_s;
            p.duty = if dt > 0.0 { (busy / dt).clamp(0.0, 1.0) } else { 0.0 };
            self.gpu_seconds += counted * tp;
            if counted > 0.0 {
                self.busy_seconds += busy.min(counted) * tp;
            }
            if p.state == PodState::Starting && p.ready_at <= t {
                p.state = PodState::Ready;
                changed = true;
            }
        }
        // Finished drains leave; overdue ones abort what they still hold.
        let timeout = self.cfg.drain_timeout_s;
        let mut i = 0;
        while i < self.pods.len() {
            if let PodState::Draining { since } = self.pods[i].state {
                let idle = self.pods[i].replica.outstanding() == 0;
                if idle || t - since >= timeout {
                    if !idle {
                        self.pods[i].replica.abort_all(done);
                    }
                    let p = self.pods.remove(i);
                    self.preemptions_gone += p.replica.preemptions;
                    changed = true;
                    continue;
                }
            }
            i += 1;
        }
        if changed {
            self.reindex();
        }
        while !self.routable.is_empty()
            && let Some(r) = self.gateway.pop_front()
        {
            self.route(r, done);
        }
    }

    /// The pods, in creation order.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// The pods, in creation order, to render (their state stays the fleet's to change).
    pub fn pods_mut(&mut self) -> impl Iterator<Item = &mut Pod> {
        self.pods.iter_mut()
    }

    /// The Ready pods, in creation order.
    pub fn ready_pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.iter().filter(|p| p.state == PodState::Ready)
    }

    /// The Ready pods, in creation order, to scrape (rendering updates a pod's gauges).
    pub fn ready_pods_mut(&mut self) -> impl Iterator<Item = &mut Pod> {
        self.pods.iter_mut().filter(|p| p.state == PodState::Ready)
    }

    /// Pods provisioned: starting, Ready or draining (what GPU time is counted for).
    pub fn provisioned(&self) -> usize {
        self.pods.len()
    }

    /// Requests in flight on Ready pods plus those held at the gateway (the KPA's concurrency).
    pub fn concurrency(&self) -> f64 {
        self.routable.iter().map(|&i| self.pods[i].replica.outstanding() as f64).sum::<f64>() + self.gateway.len() as f64
    }

    /// Nothing is held anywhere: no pod has work and the gateway is empty.
    pub fn idle(&self) -> bool {
        self.pods.iter().all(|p| p.replica.outstanding() == 0) && self.gateway.is_empty()
    }

    /// Drops whatever is still held at `t`: every pod's requests and the gateway's queue.
    pub fn abort_all(&mut self, t: f64, done: &mut impl FnMut(Done)) {
        for p in &mut self.pods {
            p.replica.abort_all(done);
        }
        while let Some(r) = self.gateway.pop_front() {
            done(Done { arrival_s: r.arrival_s, ttft_s: None, tpot_s: None, e2e_s: t - r.arrival_s, output: r.output, completed: false });
        }
    }

    /// GPU-seconds provisioned (counted up to each tick's `count_until`).
    pub fn gpu_seconds(&self) -> f64 {
        self.gpu_seconds
    }

    /// GPU-seconds a batch was running, over the same time.
    pub fn busy_seconds(&self) -> f64 {
        self.busy_seconds
    }

    /// Times the replica target changed.
    pub fn actions(&self) -> u64 {
        self.actions
    }

    /// Most pods provisioned at once.
    pub fn peak(&self) -> u32 {
        self.peak
    }

    /// KV-cache preemptions, of the pods still here and of those gone.
    pub fn preemptions(&self) -> u64 {
        self.preemptions_gone + self.pods.iter().map(|p| p.replica.preemptions).sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_time_counts_starting_and_draining_pods_once() {
        let cfg = SimConfig { cold_start_s: 100.0, ..SimConfig::default() };
        let mut f = Fleet::new(&cfg, 1);
        f.add_pod(0.0, 0.0);
        let mut sink = |_d: Done| {};
        f.scale_to(3, 0.0);
        assert_eq!((f.current(), f.ready(), f.starting()), (3, 1, 2));
        for t in 1..=10 {
            f.tick(f64::from(t), 1.0, 1e9, &mut sink);
        }
        // Back to one: the two starting pods go at once, after 10 s of GPU time each.
        f.scale_to(1, 10.0);
        assert_eq!(f.pods.len(), 1);
        for t in 11..=20 {
            f.tick(f64::from(t), 1.0, 1e9, &mut sink);
        }
        let tp = f64::from(cfg.profile.tp);
        assert!((f.gpu_seconds - (3.0 * 10.0 + 10.0) * tp).abs() < 1e-9, "{}", f.gpu_seconds);
        assert_eq!(f.actions, 2);
    }
}

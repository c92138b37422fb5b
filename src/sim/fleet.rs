//! The modelled fleet: replicas behind a gateway, with a Deployment's lifecycle. Requests are
//! routed to Ready pods (held at the gateway while there are none), scale-ups become Ready after
//! a cold start, scale-downs remove pods not Ready yet and drain Ready ones, and the fleet counts
//! the GPU time it holds. The simulator and the demo both run their replicas here.
//!
//! With a [`NodePool`] the replicas are also packed on GPU nodes (first fit, in the order the
//! nodes were added): a replica that fits on no node asks for a new one and waits for it, and
//! whole nodes are billed while any replica holds GPUs on them.
//!
//! What the scaler sees of the fleet is what production's discovery lists: every pod object,
//! Ready only while it serves ([`Pod::info`]; a draining pod has a deletionTimestamp, which
//! `discovery::kube::watch::pod_info` reads as not Ready).

use std::{borrow::Cow, collections::VecDeque, net::IpAddr};

use rand::{RngExt, SeedableRng, rngs::Xoshiro256PlusPlus};

use crate::{
    discovery::{PodInfo, Readiness},
    sim::{
        config::{Router, SimConfig},
        engine::{Done, Replica},
        render::dcgm::{Gpu, PodRef},
        workload::Request,
    },
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
    /// When it was created (asked for).
    created_at: f64,
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
    /// The GPU node it is placed on (with a node pool).
    node: Option<u32>,
}

impl Pod {
    /// Where it is in its life.
    pub fn state(&self) -> PodState {
        self.state
    }

    /// What production's pod discovery lists for it, at `ip`: Ready only while it serves
    /// (starting: no Ready condition yet; draining: being deleted).
    pub fn info(&self, ip: Option<IpAddr>) -> PodInfo {
        PodInfo {
            name: self.name.clone(),
            namespace: String::new(),
            ip,
            node: self.node.map(node_name),
            readiness: match self.state {
                PodState::Starting => Readiness::Starting,
                PodState::Ready => Readiness::Ready,
                PodState::Draining { .. } => Readiness::Terminating,
            },
            ready_after: self.ready_after(),
            gpus: u32::try_from(self.gpus.len()).ok().filter(|n| *n > 0),
        }
    }

    /// As Kubernetes reports it: creation to Ready, for a Ready pod that had a cold start.
    pub fn ready_after(&self) -> Option<std::time::Duration> {
        (self.state == PodState::Ready && self.ready_at > self.created_at)
            .then(|| std::time::Duration::from_secs_f64(self.ready_at - self.created_at))
    }
}

fn node_name(id: u32) -> String {
    format!("gpu-node-{id}")
}

/// One GPU node of the pool.
#[derive(Debug, Clone)]
struct Node {
    id: u32,
    /// GPUs no replica holds.
    free: u32,
    /// When replicas can start on it.
    ready_at: f64,
}

/// The replicas and the gateway in front of them.
pub struct Fleet<'c> {
    /// Borrowed by the simulator's replays; owned by the demo, whose pods are rendered from the
    /// HTTP server's tasks and so must be `'static`.
    cfg: Cow<'c, SimConfig>,
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
    /// GPU nodes holding at least one replica, in the order they were added (with a pool).
    nodes: Vec<Node>,
    next_node: u32,
    /// GPU-seconds of whole nodes (counted up to each tick's `count_until`).
    node_gpu_seconds: f64,
    /// Most nodes held at once.
    peak_nodes: u32,
}

impl<'c> Fleet<'c> {
    /// An empty fleet; `seed` drives routing and cold-start jitter.
    pub fn new(cfg: &'c SimConfig, seed: u64) -> Self {
        Self::of(Cow::Borrowed(cfg), seed)
    }

    /// An empty fleet owning its configuration.
    pub fn owned(cfg: SimConfig, seed: u64) -> Fleet<'static> {
        Fleet::of(Cow::Owned(cfg), seed)
    }

    fn of(cfg: Cow<'c, SimConfig>, seed: u64) -> Self {
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
            nodes: Vec::new(),
            next_node: 0,
            node_gpu_seconds: 0.0,
            peak_nodes: 0,
        }
    }

    /// A fleet of `n` pods Ready at t = 0 (on nodes already there).
    pub fn with_ready(cfg: &'c SimConfig, seed: u64, n: u32) -> Self {
        Self::of(Cow::Borrowed(cfg), seed).with_pods(n)
    }

    /// Adds `n` pods Ready at t = 0 (on nodes already there).
    pub fn with_pods(mut self, n: u32) -> Self {
        let f = &mut self;
        for _ in 0..n {
            f.add_pod(0.0, None);
        }
        f.peak = f.peak.max(f.pods.len() as u32);
        self
    }

    /// The cluster model it runs on.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Adds a pod at `now`: Ready at once (`None`, the initial fleet), or after a cold start of
    /// `Some(seconds)` that begins when its node can take it.
    fn add_pod(&mut self, now: f64, cold_start: Option<f64>) {
        let id = self.next_id;
        self.next_id += 1;
        let name = format!("vllm-sim-{id}");
        let (node, schedulable_at) = match self.place(now, cold_start.is_some()) {
            Some((node, at)) => (Some(node), at),
            None => (None, now),
        };
        let ready_at = cold_start.map_or(now, |c| schedulable_at + c);
        let holder = PodRef { namespace: "sim".into(), pod: name.clone(), container: "vllm".into() };
        let host = node.map_or_else(|| format!("gpu-node-p{id}"), node_name);
        let gpus = (0..self.cfg.profile.tp)
            .map(|i| {
                let mut g = Gpu::h100(i, &host);
                g.holder = Some(holder.clone());
                g.apply_load(0.0);
                g
            })
            .collect();
        let state = if ready_at <= now { PodState::Ready } else { PodState::Starting };
        self.pods.push(Pod {
            name,
            created_at: now,
            ready_at,
            state,
            replica: Replica::new(&self.cfg.profile, now),
            gpus,
            busy_prev: 0.0,
            duty: 0.0,
            node,
        });
        self.reindex();
    }

    /// With a node pool: the first node with room for a replica's GPUs, else a new node (ready
    /// after the provisioning delay when `provision`, at once for the initial fleet). Returns
    /// the node and when the replica can start on it.
    fn place(&mut self, now: f64, provision: bool) -> Option<(u32, f64)> {
        let pool = self.cfg.nodes?;
        let need = self.cfg.profile.tp;
        if let Some(n) = self.nodes.iter_mut().find(|n| n.free >= need) {
            n.free -= need;
            return Some((n.id, n.ready_at.max(now)));
        }
        let id = self.next_node;
        self.next_node += 1;
        let ready_at = if provision { now + pool.provisioning_s } else { now };
        // A replica wider than a node still gets one node (billed whole, nothing else fits).
        self.nodes.push(Node { id, free: pool.gpus_per_node.saturating_sub(need), ready_at });
        self.peak_nodes = self.peak_nodes.max(self.nodes.len() as u32);
        Some((id, ready_at))
    }

    /// A pod left: its GPUs are free again, and a node nobody holds GPUs on is released.
    fn release(&mut self, node: Option<u32>) {
        let (Some(id), Some(pool)) = (node, self.cfg.nodes) else { return };
        if let Some(i) = self.nodes.iter().position(|n| n.id == id) {
            if self.pods.iter().all(|p| p.node != Some(id)) {
                self.nodes.remove(i);
            } else {
                let n = &mut self.nodes[i];
                n.free = (n.free + self.cfg.profile.tp).min(pool.gpus_per_node);
            }
        }
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
                self.add_pod(now, Some(self.cfg.cold_start_s + jitter));
            }
        } else {
            let mut remove = cur - n;
            // Like a ReplicaSet: pods not Ready yet go first (youngest first), then the Ready pods
            // with the least work.
            while remove > 0 {
                if let Some(i) = self.pods.iter().rposition(|p| p.state == PodState::Starting) {
                    // Its GPU time so far was counted tick by tick.
                    let gone = self.pods.remove(i);
                    self.release(gone.node);
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
        let nodes_held = self.nodes.len();
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
                    self.release(p.node);
                    changed = true;
                    continue;
                }
            }
            i += 1;
        }
        // Whole nodes are billed while they hold a replica (counted before the drains that
        // ended now released theirs, like the pods' own time).
        if let Some(pool) = self.cfg.nodes {
            self.node_gpu_seconds += counted * f64::from(pool.gpus_per_node) * nodes_held as f64;
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

    /// GPU-seconds of whole nodes held (with a node pool), over the same time as
    /// [`Fleet::gpu_seconds`].
    pub fn node_gpu_seconds(&self) -> Option<f64> {
        self.cfg.nodes.map(|_| self.node_gpu_seconds)
    }

    /// Most GPU nodes held at once (with a node pool).
    pub fn peak_nodes(&self) -> Option<u32> {
        self.cfg.nodes.map(|_| self.peak_nodes)
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
    use crate::sim::config::NodePool;

    #[test]
    fn gpu_time_counts_starting_and_draining_pods_once() {
        let cfg = SimConfig { cold_start_s: 100.0, ..SimConfig::default() };
        let mut f = Fleet::new(&cfg, 1);
        f.add_pod(0.0, None);
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

    fn pooled(gpus_per_node: u32, provisioning_s: f64) -> SimConfig {
        SimConfig { cold_start_s: 100.0, nodes: Some(NodePool { gpus_per_node, provisioning_s }), ..SimConfig::default() }
    }

    fn nodes_of(f: &Fleet<'_>) -> Vec<Option<u32>> {
        f.pods.iter().map(|p| p.node).collect()
    }

    #[test]
    fn replicas_are_packed_first_fit_and_a_freed_slot_is_reused_before_a_new_node() {
        let cfg = pooled(8, 300.0);
        let mut f = Fleet::with_ready(&cfg, 1, 4);
        assert_eq!(nodes_of(&f), vec![Some(0); 4], "four 2-GPU replicas fill one 8-GPU node");
        f.scale_to(5, 0.0);
        assert_eq!(nodes_of(&f)[4], Some(1), "the fifth needs a second node");
        // The Deployment removes the starting pod first, which releases the second node.
        f.scale_to(4, 1.0);
        assert_eq!(f.nodes.len(), 1);
        // Drain one of the first node's replicas (idle: it leaves at the next tick), then grow.
        f.scale_to(3, 2.0);
        f.tick(3.0, 1.0, 1e9, &mut |_d: Done| {});
        assert_eq!(f.pods.len(), 3);
        f.scale_to(4, 3.0);
        assert_eq!(nodes_of(&f)[3], Some(0), "first fit: the slot freed on node 0, not a new node");
        assert_eq!(f.nodes.len(), 1);
    }

    #[test]
    fn whole_nodes_are_billed_while_any_replica_holds_gpus_on_them() {
        let cfg = pooled(8, 0.0);
        let mut f = Fleet::with_ready(&cfg, 1, 5);
        let mut sink = |_d: Done| {};
        for t in 1..=10 {
            f.tick(f64::from(t), 1.0, 1e9, &mut sink);
        }
        // 5 replicas x 2 GPUs held for 10 s, on 2 nodes of 8 GPUs billed whole.
        assert!((f.gpu_seconds() - 100.0).abs() < 1e-9, "{}", f.gpu_seconds());
        assert_eq!(f.node_gpu_seconds(), Some(160.0));
        // The Deployment drains without regard to packing (the idle pod first in line, on
        // node 0): both nodes stay billed, fragmentation the per-pod model does not see.
        f.scale_to(4, 10.0);
        f.tick(11.0, 1.0, 1e9, &mut sink);
        assert_eq!((f.nodes.len(), f.pods.len()), (2, 4));
        // Down to the one replica on node 1: node 0 is released.
        f.scale_to(1, 11.0);
        f.tick(12.0, 1.0, 1e9, &mut sink);
        assert_eq!((f.nodes.len(), nodes_of(&f)), (1, vec![Some(1)]));
        for t in 13..=20 {
            f.tick(f64::from(t), 1.0, 1e9, &mut sink);
        }
        // Seconds 11 and 12 counted both nodes (the drains ended within them), then one node.
        assert_eq!(f.node_gpu_seconds(), Some(160.0 + 2.0 * 16.0 + 8.0 * 8.0));
        assert_eq!(f.peak_nodes(), Some(2));
        // Without a pool there is no node bill.
        let plain = SimConfig::default();
        assert_eq!(Fleet::with_ready(&plain, 1, 1).node_gpu_seconds(), None);
    }

    #[test]
    fn a_replica_that_needs_a_new_node_waits_for_it_before_its_cold_start() {
        let cfg = pooled(4, 300.0);
        let mut f = Fleet::with_ready(&cfg, 1, 1);
        let mut sink = |_d: Done| {};
        // The second replica fits on the first node, the third needs a new one.
        f.scale_to(3, 0.0);
        assert_eq!(nodes_of(&f), vec![Some(0), Some(0), Some(1)]);
        assert_eq!(f.pods[1].ready_at, 100.0, "cold start only");
        assert_eq!(f.pods[2].ready_at, 400.0, "node provisioning, then the cold start");
        // A fourth replica placed on the node still being provisioned waits for it too.
        f.scale_to(4, 50.0);
        assert_eq!((f.pods[3].node, f.pods[3].ready_at), (Some(1), 400.0));
        for t in 1..=399 {
            f.tick(f64::from(t), 1.0, 1e9, &mut sink);
        }
        assert_eq!((f.ready(), f.starting()), (2, 2));
        f.tick(400.0, 1.0, 1e9, &mut sink);
        assert_eq!((f.ready(), f.starting()), (4, 0));
        // The node was billed from the moment it was asked for.
        let node0 = 4.0 * 400.0;
        assert_eq!(f.node_gpu_seconds(), Some(node0 * 2.0));
    }

    #[test]
    fn the_scaler_counts_starting_pods_as_production_does_and_a_draining_one_as_neither_ready_nor_starting() {
        let cfg = SimConfig { cold_start_s: 100.0, ..SimConfig::default() };
        let mut f = Fleet::with_ready(&cfg, 1, 3);
        let mut sink = |_d: Done| {};
        // Long requests on every pod, so a drained one stays draining for a while.
        for i in 0..30 {
            f.route(Request { arrival_s: f64::from(i) * 0.01, input: 1000, output: 2000 }, &mut sink);
        }
        f.tick(1.0, 1.0, 1e9, &mut sink);
        f.scale_to(2, 1.0);
        f.scale_to(3, 1.0);
        f.tick(2.0, 1.0, 1e9, &mut sink);
        let states: Vec<PodState> = f.pods().iter().map(Pod::state).collect();
        assert!(states.contains(&PodState::Starting) && states.iter().any(|s| matches!(s, PodState::Draining { .. })), "{states:?}");
        // Production: the pods the watch lists, split by `scrapeable` (run/collector.rs).
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        let infos: Vec<PodInfo> = f.pods().iter().map(|p| p.info(ip)).collect();
        let scraped: Vec<&str> = infos.iter().filter(|p| p.scrapeable().is_some()).map(|p| p.name.as_str()).collect();
        let ready: Vec<&str> = f.ready_pods().map(|p| p.name.as_str()).collect();
        assert_eq!(ready, scraped, "the simulator scrapes exactly the pods production scrapes");
        let starting = infos.iter().filter(|p| p.is_starting()).count();
        assert_eq!(f.starting() as usize, starting, "and counts as starting exactly the pods production counts");
        assert_eq!((f.starting(), f.pods().len() as u32 - f.ready()), (1, 2), "a draining pod is not capacity on its way");
    }
}

//! A batch trigger's metadata (`mode: batch`), parsed once into a typed [`BatchSpec`].
//!
//! A batch target is a ScaledJob's queue: KEDA creates Jobs from the outstanding work we report
//! (`maxScale = min(ceil(work / targetSize), maxReplicaCount)`), so the spec says where the queue
//! is, what counts as work, and how much work one Job takes. Key names follow KEDA's own Redis
//! scalers where they mean the same thing (`address`, `host`, `port`, `databaseIndex`,
//! `username`, `password`, `listName`, `stream`, `consumerGroup`). TLS to Redis is `redisTLS`,
//! not KEDA's `enableTLS` (and `redisUnsafeSsl`, not `unsafeSsl`): in an external trigger those
//! already tell KEDA how to reach *this scaler*. KEDA does not forward TriggerAuthentication parameters to external scalers,
//! so a password comes as `passwordFromEnv` (resolved by KEDA from the Job container's env, e.g.
//! from a Secret) or, discouraged, in plain `password`.

use std::{collections::HashMap, time::Duration};

use serde::Serialize;

use super::{Meta, SpecError, bad, duration};
use crate::{
    decide::batch::{BatchPolicy, CostPolicy, DEFAULT_SPOT_GPU_HOUR, WorkCount},
    fetch::redis::{Queue, RedisEndpoint, Secret},
    read::queue::{KeyKind, LabelMatch},
};

/// Keys of every batch trigger, whatever its source.
const COMMON_KEYS: &[&str] =
    &["mode", "source", "targetSize", "activationThreshold", "gpuHourPrice", "gpusPerJob", "budgetPerHour", "deadline", "watchPods"];

/// Keys of the Redis source.
const REDIS_KEYS: &[&str] = &[
    "address",
    "host",
    "port",
    "databaseIndex",
    "username",
    "password",
    "redisTLS",
    "redisUnsafeSsl",
    "listName",
    "dataType",
    "stream",
    "consumerGroup",
    "workCount",
    "claimTimeout",
];

/// Keys of the Prometheus-endpoint source.
const PROMETHEUS_KEYS: &[&str] = &["metricsUrl", "metricName", "metricLabels", "sizeMetricName"];

/// Every batch key (README documents each): the common ones and each source's.
pub fn batch_keys() -> impl Iterator<Item = &'static str> {
    COMMON_KEYS.iter().chain(REDIS_KEYS).chain(PROMETHEUS_KEYS).copied()
}

/// Whether a trigger's metadata asks for batch mode.
pub fn is_batch(meta: &HashMap<String, String>) -> bool {
    meta.get("mode").is_some_and(|m| m.trim() == "batch")
}

/// Where the queue is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum QueueSource {
    /// A Redis server.
    Redis {
        /// The server.
        endpoint: RedisEndpoint,
        /// The queue on it.
        queue: Queue,
    },
    /// A Prometheus-format endpoint exposing the queue (an exporter for RabbitMQ, SQS, Kueue,
    /// ...), scraped with the serving path's bounded fetcher and streaming reader.
    Prometheus {
        /// `http://host:port/path`.
        url: String,
        /// The queue-length metric, summed over the matching series.
        metric: String,
        /// Labels a series must carry.
        labels: Vec<LabelMatch>,
        /// A metric of the queue's size in work units (e.g. tokens, GPU-seconds), summed alike:
        /// when given, it is the work.
        size_metric: Option<String>,
    },
}

impl QueueSource {
    /// How a decision names the queue.
    pub fn label(&self) -> String {
        match self {
            QueueSource::Redis { queue, .. } => queue.label(),
            QueueSource::Prometheus { metric, labels, .. } if labels.is_empty() => metric.clone(),
            QueueSource::Prometheus { metric, labels, .. } => {
                let m: Vec<String> = labels.iter().map(|l| format!("{}=\"{}\"", l.name, l.value)).collect();
                format!("{metric}{{{}}}", m.join(","))
            }
        }
    }
}

/// A batch trigger, parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchSpec {
    /// The queue.
    pub source: QueueSource,
    /// What counts and how much one Job takes (`workCount`, `targetSize`,
    /// `activationThreshold`), what it costs and by when it should be done.
    pub policy: BatchPolicy,
    /// Watch the ScaledJob's pods (label `scaledjob.keda.sh/name`, which KEDA puts on every
    /// Job's pod template): Jobs at work, disruption notices, and workers whose pod is gone.
    pub watch_pods: bool,
}

/// Default `claimTimeout`: Spot capacity gives 2 minutes of notice; an entry held five minutes
/// without an acknowledgement has outlived any graceful hand-back.
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(300);

fn is_metric_name(v: &str) -> bool {
    let mut c = v.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

/// `queue=embed,vhost=/` (values may be double-quoted).
fn label_matches(v: &str) -> Option<Vec<LabelMatch>> {
    v.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let (name, value) = (name.trim(), value.trim());
            let value = value.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(value);
            let valid = name.chars().next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                && name.chars().all(|x| x.is_ascii_alphanumeric() || x == '_');
            valid.then(|| LabelMatch { name: name.to_string(), value: value.to_string() })
        })
        .collect::<Option<Vec<_>>>()
        .filter(|l| !l.is_empty())
}

fn find_batch_key(name: &str) -> Option<&'static str> {
    batch_keys().find(|k| *k == name)
}

impl BatchSpec {
    /// Parses and validates a batch trigger's metadata.
    pub fn parse(raw: &HashMap<String, String>) -> Result<Self, SpecError> {
        let m = Meta::over(raw, find_batch_key, || batch_keys().collect())?;
        m.parse("mode", "batch", |v| (v == "batch").then_some(()))?;
        let prometheus = match m.get("source") {
            None | Some((_, "redis")) => false,
            Some((_, "prometheus")) => true,
            Some((k, v)) => return Err(bad(k, v, "redis or prometheus (the queue sources this scaler reads)")),
        };
        let (others, source_name) = if prometheus { (REDIS_KEYS, "prometheus") } else { (PROMETHEUS_KEYS, "redis") };
        if let Some(k) = others.iter().find_map(|k| m.values.get(k).map(|(given, _)| *given)) {
            return Err(SpecError::Conflict { key: k.to_string(), problem: format!("not a key of source {source_name}") });
        }
        let (source, count) = if prometheus {
            (Self::prometheus(&m)?, WorkCount::Waiting)
        } else {
            let endpoint = Self::endpoint(&m)?;
            let (queue, count) = Self::queue(&m)?;
            (QueueSource::Redis { endpoint, queue }, count)
        };
        let target_size = m.positive("targetSize", "work one Job takes, in items")?.unwrap_or(1.0);
        let activation = m.non_negative("activationThreshold", "items above which the ScaledJob is active")?.unwrap_or(0.0);
        let watch_pods = m.parse("watchPods", "true or false", |v| v.parse::<bool>().ok())?.unwrap_or(false);
        let cost = Self::cost(&m)?;
        // A cap under a count that leaves the running Jobs' work out must know how many Jobs
        // run: a stream's consumers say it, a list or an exporter's gauge does not.
        let stream = matches!(source, QueueSource::Redis { queue: Queue::Stream { .. }, .. });
        if !stream && !watch_pods {
            for k in ["budgetPerHour", "deadline"] {
                if let Some((given, _)) = m.values.get(k) {
                    return Err(SpecError::Conflict {
                        key: given.to_string(),
                        problem: "needs watchPods: true with this source (the Jobs at work are counted from the ScaledJob's pods; \
                                  only a stream's consumers say it otherwise)"
                            .into(),
                    });
                }
            }
        }
        Ok(BatchSpec { source, policy: BatchPolicy { target_size, activation, count, cost }, watch_pods })
    }

    fn cost(m: &Meta<'_>) -> Result<CostPolicy, SpecError> {
        let gpu_hour_price = m.positive("gpuHourPrice", "dollars per GPU-hour of the Jobs' (Spot) nodes")?.unwrap_or(DEFAULT_SPOT_GPU_HOUR);
        let gpus_per_job =
            m.parse("gpusPerJob", "a whole number of GPUs, >= 1", |v| v.parse::<u32>().ok().filter(|g| *g >= 1))?.unwrap_or(1);
        let budget_per_hour = m.positive("budgetPerHour", "dollars per hour the Jobs may cost together")?;
        let cost = CostPolicy { gpu_hour_price, gpus_per_job, budget_per_hour, deadline: None };
        if let Some(b) = budget_per_hour.filter(|b| *b < cost.job_hour()) {
            return Err(SpecError::Conflict {
                key: "budgetPerHour".into(),
                problem: format!(
                    "${b}/h pays for no Job: one costs ${:.2}/h (gpusPerJob {gpus_per_job} x gpuHourPrice ${gpu_hour_price})",
                    cost.job_hour()
                ),
            });
        }
        let deadline = m.parse("deadline", "an RFC 3339 time such as 2026-12-03T06:00:00Z", |v| {
            let t = humantime::parse_rfc3339_weak(v).ok()?;
            t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs_f64())
        })?;
        Ok(CostPolicy { deadline, ..cost })
    }

    fn prometheus(m: &Meta<'_>) -> Result<QueueSource, SpecError> {
        let url = m
            .parse("metricsUrl", "an http:// URL such as http://rabbitmq-exporter.queues:9419/metrics", |v| {
                (v.starts_with("http://") && v.len() > "http://".len() && !v.contains(char::is_whitespace)).then(|| v.to_string())
            })?
            .ok_or_else(|| SpecError::Conflict { key: "metricsUrl".into(), problem: "required with source prometheus".into() })?;
        let metric_name = |v: &str| is_metric_name(v).then(|| v.to_string());
        let metric = m
            .parse("metricName", "a Prometheus metric name such as rabbitmq_queue_messages_ready", metric_name)?
            .ok_or_else(|| SpecError::Conflict { key: "metricName".into(), problem: "required with source prometheus".into() })?;
        let size_metric = m.parse("sizeMetricName", "a Prometheus metric name", metric_name)?;
        let labels =
            m.parse("metricLabels", "label=value pairs, comma-separated, e.g. queue=embed,vhost=/", label_matches)?.unwrap_or_default();
        Ok(QueueSource::Prometheus { url, metric, labels, size_metric })
    }

    fn endpoint(m: &Meta<'_>) -> Result<RedisEndpoint, SpecError> {
        let (host, port) = match (m.get("address"), m.get("host")) {
            (Some((k, _)), Some(_)) => {
                return Err(SpecError::Conflict { key: k.to_string(), problem: "give address or host (+ port), not both".into() });
            }
            (Some((k, v)), None) => {
                if m.get("port").is_some() {
                    return Err(SpecError::Conflict { key: "port".into(), problem: "address already carries the port".into() });
                }
                let (h, p) = v.rsplit_once(':').ok_or_else(|| bad(k, v, "host:port, e.g. redis.queues.svc:6379"))?;
                let p = p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad(k, v, "host:port with a port 1-65535"))?;
                let h = h.trim_start_matches('[').trim_end_matches(']');
                if h.is_empty() {
                    return Err(bad(k, v, "host:port with a host"));
                }
                (h.to_string(), p)
            }
            (None, Some((_, h))) if !h.is_empty() => (h.to_string(), m.port("port")?.unwrap_or(6379)),
            _ => {
                return Err(SpecError::Conflict {
                    key: "address".into(),
                    problem: "required: where the queue's Redis is (address: host:port, or host and port)".into(),
                });
            }
        };
        let db = m.parse("databaseIndex", "a database index 0-15 or more, a whole number", |v| v.parse::<u32>().ok())?.unwrap_or(0);
        let tls = m.parse("redisTLS", "true or false", |v| v.parse::<bool>().ok())?.unwrap_or(false);
        let insecure = m.parse("redisUnsafeSsl", "true or false", |v| v.parse::<bool>().ok())?.unwrap_or(false);
        if insecure && !tls {
            return Err(SpecError::Conflict { key: "redisUnsafeSsl".into(), problem: "only with redisTLS: true".into() });
        }
        let username = m.parse("username", "a non-empty ACL user name", |v| (!v.is_empty()).then(|| v.to_string()))?;
        let password = m.parse("password", "a non-empty password", |v| (!v.is_empty()).then(|| Secret::new(v)))?;
        Ok(RedisEndpoint { host, port, tls, insecure, db, username, password })
    }

    /// The queue, and what of it counts as work.
    fn queue(m: &Meta<'_>) -> Result<(Queue, WorkCount), SpecError> {
        let name = |key: &'static str| m.parse(key, "a non-empty key name", |v| (!v.is_empty()).then(|| v.to_string()));
        match (name("listName")?, name("stream")?) {
            (Some(_), Some(_)) => Err(SpecError::Conflict { key: "stream".into(), problem: "give listName or stream, not both".into() }),
            (Some(key), None) => {
                for k in ["consumerGroup", "workCount", "claimTimeout"] {
                    if let Some((given, _)) = m.values.get(k) {
                        return Err(SpecError::Conflict { key: given.to_string(), problem: "only with stream".into() });
                    }
                }
                let kind = m
                    .parse("dataType", "one of list, zset, set, hash", |v| match v {
                        "list" => Some(KeyKind::List),
                        "zset" => Some(KeyKind::SortedSet),
                        "set" => Some(KeyKind::Set),
                        "hash" => Some(KeyKind::Hash),
                        _ => None,
                    })?
                    .unwrap_or(KeyKind::List);
                Ok((Queue::Key { key, kind }, WorkCount::Waiting))
            }
            (None, Some(stream)) => {
                if let Some((given, _)) = m.values.get("dataType") {
                    return Err(SpecError::Conflict { key: given.to_string(), problem: "only with listName".into() });
                }
                let group = name("consumerGroup")?.ok_or_else(|| SpecError::Conflict {
                    key: "consumerGroup".into(),
                    problem: "required with stream: the group whose lag and pending entries are the work".into(),
                })?;
                let count = m
                    .parse("workCount", "waiting or outstanding", |v| match v {
                        "waiting" => Some(WorkCount::Waiting),
                        "outstanding" => Some(WorkCount::Outstanding),
                        _ => None,
                    })?
                    .unwrap_or(WorkCount::Waiting);
                let claim_timeout = m.parse("claimTimeout", "a duration such as 5m", duration)?.unwrap_or(DEFAULT_CLAIM_TIMEOUT);
                Ok((Queue::Stream { stream, group, claim_timeout }, count))
            }
            (None, None) => Err(SpecError::Conflict {
                key: "listName".into(),
                problem: "required: the queue (listName for a list, set, sorted set or hash; stream and consumerGroup for a stream)".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_list_trigger_parses_with_keda_s_key_names_and_defaults() {
        let s = BatchSpec::parse(&meta(&[("mode", "batch"), ("address", "redis.q.svc:6380"), ("listName", "jobs")])).unwrap();
        let QueueSource::Redis { endpoint, queue } = &s.source else { panic!("{s:?}") };
        assert_eq!((endpoint.host.as_str(), endpoint.port, endpoint.db, endpoint.tls), ("redis.q.svc", 6380, 0, false));
        assert_eq!(queue, &Queue::Key { key: "jobs".into(), kind: KeyKind::List });
        let free = CostPolicy { gpu_hour_price: DEFAULT_SPOT_GPU_HOUR, gpus_per_job: 1, budget_per_hour: None, deadline: None };
        assert_eq!(s.policy, BatchPolicy { target_size: 1.0, activation: 0.0, count: WorkCount::Waiting, cost: free });
        assert!(!s.watch_pods);
        let s = BatchSpec::parse(&meta(&[
            ("mode", "batch"),
            ("host", "10.0.0.9"),
            ("listName", "jobs"),
            ("dataType", "zset"),
            ("passwordFromEnv", "s3cret"),
            ("redisTLS", "true"),
        ]))
        .unwrap();
        let QueueSource::Redis { endpoint, queue } = &s.source else { panic!("{s:?}") };
        assert_eq!((endpoint.port, endpoint.tls), (6379, true));
        assert_eq!(endpoint.password.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(!format!("{s:?}").contains("s3cret"), "a password is never printed");
        assert!(matches!(queue, Queue::Key { kind: KeyKind::SortedSet, .. }));
        let s = BatchSpec::parse(&meta(&[
            ("mode", "batch"),
            ("address", "h:1"),
            ("listName", "j"),
            ("redisTLS", "true"),
            ("redisUnsafeSsl", "true"),
        ]))
        .unwrap();
        assert!(matches!(&s.source, QueueSource::Redis { endpoint, .. } if endpoint.insecure), "{s:?}");
    }

    #[test]
    fn a_stream_trigger_needs_its_group_and_counts_waiting_work_by_default() {
        let s =
            BatchSpec::parse(&meta(&[("mode", "batch"), ("address", "127.0.0.1:6379"), ("stream", "s"), ("consumerGroup", "g")])).unwrap();
        let QueueSource::Redis { queue, .. } = &s.source else { panic!("{s:?}") };
        assert_eq!(queue, &Queue::Stream { stream: "s".into(), group: "g".into(), claim_timeout: DEFAULT_CLAIM_TIMEOUT });
        assert_eq!(s.policy.count, WorkCount::Waiting);
    }

    #[test]
    fn bad_batch_metadata_is_refused_naming_the_key() {
        let base = [("mode", "batch"), ("address", "127.0.0.1:6379")];
        for (extra, key, want) in [
            (vec![("listName", "j"), ("source", "rabbitmq")], "source", "redis or prometheus"),
            (vec![("listName", "j"), ("targetSize", "0")], "targetSize", "positive"),
            (vec![("listName", "j"), ("dataType", "queue")], "dataType", "list, zset, set, hash"),
            (vec![("listName", "j"), ("consumerGroup", "g")], "consumerGroup", "only with stream"),
            (vec![("stream", "s")], "consumerGroup", "required with stream"),
            (vec![("stream", "s"), ("consumerGroup", "g"), ("workCount", "all")], "workCount", "waiting or outstanding"),
            (vec![("stream", "s"), ("consumerGroup", "g"), ("claimTimeout", "soon")], "claimTimeout", "duration"),
            (vec![], "listName", "required"),
            (vec![("listName", "j"), ("port", "1")], "port", "address already carries the port"),
            (vec![("listName", "j"), ("podSelector", "app=x")], "podSelector", "unknown"),
            (vec![("listName", "j"), ("redisTLS", "yes")], "redisTLS", "true or false"),
            (vec![("listName", "j"), ("redisUnsafeSsl", "true")], "redisUnsafeSsl", "only with redisTLS"),
            (vec![("listName", "j"), ("gpuHourPrice", "-1")], "gpuHourPrice", "positive"),
            (vec![("listName", "j"), ("gpusPerJob", "0")], "gpusPerJob", ">= 1"),
            (vec![("listName", "j"), ("watchPods", "on")], "watchPods", "true or false"),
            (vec![("listName", "j"), ("budgetPerHour", "10")], "budgetPerHour", "needs watchPods"),
            (vec![("listName", "j"), ("deadline", "2026-12-03T06:00:00Z")], "deadline", "needs watchPods"),
            (vec![("stream", "s"), ("consumerGroup", "g"), ("deadline", "tomorrow")], "deadline", "RFC 3339"),
            (
                vec![("stream", "s"), ("consumerGroup", "g"), ("budgetPerHour", "3"), ("gpusPerJob", "2")],
                "budgetPerHour",
                "pays for no Job",
            ),
        ] {
            let mut kv = base.to_vec();
            kv.extend(extra.iter().copied());
            let err = BatchSpec::parse(&meta(&kv)).unwrap_err();
            let named = match &err {
                SpecError::BadValue { key: k, .. } | SpecError::Conflict { key: k, .. } | SpecError::UnknownKey { key: k, .. } => k == key,
            };
            assert!(named && err.to_string().contains(want), "{kv:?}: {err}");
        }
        let err = BatchSpec::parse(&meta(&[("mode", "batch"), ("listName", "j")])).unwrap_err();
        assert!(err.to_string().contains("address"), "{err}");
        let err = BatchSpec::parse(&meta(&[("mode", "batch"), ("address", "nohost"), ("listName", "j")])).unwrap_err();
        assert!(err.to_string().contains("host:port"), "{err}");
    }

    #[test]
    fn price_budget_and_deadline_parse_into_the_cost_policy() {
        let s = BatchSpec::parse(&meta(&[
            ("mode", "batch"),
            ("address", "127.0.0.1:6379"),
            ("listName", "j"),
            ("gpuHourPrice", "2.5"),
            ("gpusPerJob", "2"),
            ("budgetPerHour", "50"),
            ("deadline", "2026-12-03T06:00:00Z"),
            ("watchPods", "true"),
        ]))
        .unwrap();
        assert_eq!(
            s.policy.cost,
            CostPolicy { gpu_hour_price: 2.5, gpus_per_job: 2, budget_per_hour: Some(50.0), deadline: Some(1_796_277_600.0) }
        );
        assert_eq!(s.policy.cost.budget_jobs(), Some(10));
        assert!(s.watch_pods);
    }

    #[test]
    fn a_prometheus_source_names_its_endpoint_metric_and_labels() {
        let s = BatchSpec::parse(&meta(&[
            ("mode", "batch"),
            ("source", "prometheus"),
            ("metricsUrl", "http://rabbitmq-exporter.queues:9419/metrics"),
            ("metricName", "rabbitmq_queue_messages_ready"),
            ("metricLabels", "queue=embed, vhost=\"/\""),
            ("sizeMetricName", "queue_tokens"),
        ]))
        .unwrap();
        let QueueSource::Prometheus { url, metric, labels, size_metric } = &s.source else { panic!("{s:?}") };
        assert_eq!(
            (url.as_str(), metric.as_str(), size_metric.as_deref()),
            ("http://rabbitmq-exporter.queues:9419/metrics", "rabbitmq_queue_messages_ready", Some("queue_tokens"))
        );
        assert_eq!(
            labels,
            &[LabelMatch { name: "queue".into(), value: "embed".into() }, LabelMatch { name: "vhost".into(), value: "/".into() }]
        );
        assert_eq!(s.source.label(), "rabbitmq_queue_messages_ready{queue=\"embed\",vhost=\"/\"}");
        let base = [("mode", "batch"), ("source", "prometheus"), ("metricsUrl", "http://x:1/m"), ("metricName", "q")];
        for (extra, key, want) in [
            (vec![("listName", "j")], "listName", "not a key of source prometheus"),
            (vec![("metricLabels", "queue")], "metricLabels", "label=value"),
            (vec![("sizeMetricName", "9bad")], "sizeMetricName", "metric name"),
        ] {
            let mut kv = base.to_vec();
            kv.extend(extra.iter().copied());
            let err = BatchSpec::parse(&meta(&kv)).unwrap_err();
            assert!(err.to_string().contains(key) && err.to_string().contains(want), "{kv:?}: {err}");
        }
        let err =
            BatchSpec::parse(&meta(&[("mode", "batch"), ("source", "prometheus"), ("metricsUrl", "https://x/m"), ("metricName", "q")]))
                .unwrap_err();
        assert!(err.to_string().contains("metricsUrl"), "{err}");
        let err =
            BatchSpec::parse(&meta(&[("mode", "batch"), ("address", "127.0.0.1:1"), ("listName", "j"), ("metricName", "q")])).unwrap_err();
        assert!(err.to_string().contains("not a key of source redis"), "{err}");
    }

    #[test]
    fn every_batch_key_is_documented_in_the_readme_s_batch_table() {
        let readme = include_str!("../../README.md");
        let table = &readme[readme.find("## Batch mode").expect("README has a batch mode section")..];
        for k in batch_keys() {
            assert!(table.contains(&format!("| `{k}` |")), "README's batch table lacks `{k}`");
        }
    }

    #[test]
    fn only_mode_batch_is_a_batch_trigger() {
        assert!(is_batch(&meta(&[("mode", "batch")])));
        assert!(!is_batch(&meta(&[("mode", "serving")])));
        assert!(!is_batch(&meta(&[])));
    }
}

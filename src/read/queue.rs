//! What a batch queue holds, reduced from its server's replies to the counts a decision needs;
//! and [`QueueMetricExtractor`], which reads a queue's length (and optional size) from any
//! Prometheus-format endpoint (RabbitMQ's, an SQS or Kueue exporter's) as the text streams by.

use std::time::Duration;

use serde::Serialize;

use crate::read::exposition::{MetricType, Sample, Visitor};

/// The Redis type of a keyed queue, and so the command that counts it (as KEDA's scalers do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// `LLEN`.
    List,
    /// `ZCARD`.
    SortedSet,
    /// `SCARD`.
    Set,
    /// `HLEN`.
    Hash,
}

impl KeyKind {
    /// The counting command.
    pub fn command(self) -> &'static str {
        match self {
            KeyKind::List => "LLEN",
            KeyKind::SortedSet => "ZCARD",
            KeyKind::Set => "SCARD",
            KeyKind::Hash => "HLEN",
        }
    }
}

/// What a queue holds now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "queue")]
pub enum QueueReading {
    /// A keyed queue's length.
    Key {
        /// Items waiting.
        length: u64,
        /// How it was counted.
        kind: KeyKind,
    },
    /// A stream's consumer group.
    Stream {
        /// Entries not yet delivered to the group.
        lag: u64,
        /// Entries delivered and not acknowledged.
        pending: u64,
        /// Of `pending`, those idle for at least `stale_idle`: their consumer is presumed gone.
        stale: u64,
        /// The idle time that makes a pending entry stale (the trigger's claim timeout).
        #[serde(with = "humantime_secs")]
        stale_idle: Duration,
        /// `stale` hit the scan's limit: it is a lower bound.
        stale_truncated: bool,
        /// Entries acknowledged since the group was created (`entries-read - pending`), when Redis
        /// reports `entries-read` (7.0+): the drain, with arrivals kept out of it.
        acked: Option<u64>,
        /// The group's consumers holding entries (who holds the pending ones), for telling the
        /// work of a vanished worker from live work.
        #[serde(skip)]
        consumers: Vec<Consumer>,
    },
    /// A metric of an exporter, summed over the series that match.
    Metric {
        /// The queue length (the sum of the `metricName` series).
        count: f64,
        /// The queue's size in work units (the sum of the `sizeMetricName` series), if asked for.
        size: Option<f64>,
        /// Series that matched `metricName`.
        series: u32,
    },
}

/// One consumer of a stream's group, as `XINFO CONSUMERS` and `XPENDING ... IDLE` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Consumer {
    /// Its name (a worker names itself after its pod, e.g. `HOSTNAME`).
    pub name: String,
    /// Entries delivered to it and not acknowledged.
    pub pending: u64,
    /// Of those, entries idle longer than the claim timeout (already counted as work to redo).
    pub stale: u64,
    /// Since its last read or claim.
    #[serde(with = "humantime_secs")]
    pub idle: Duration,
}

/// A label that must have a value for a series to count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelMatch {
    /// Label name.
    pub name: String,
    /// Required value (compared unescaped).
    pub value: String,
}

/// Why an exporter's body gave no queue reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueMetricError {
    /// No series of the metric (with those labels) in the body.
    #[error("no {metric} series{matching} in the response")]
    Missing {
        /// The metric.
        metric: String,
        /// The label matchers, as text.
        matching: String,
    },
}

/// Sums one metric (and optionally a size metric) over the series matching the labels.
#[derive(Debug)]
pub struct QueueMetricExtractor {
    metric: String,
    size_metric: Option<String>,
    labels: Vec<LabelMatch>,
    count: Option<f64>,
    size: Option<f64>,
    series: u32,
}

impl QueueMetricExtractor {
    /// Reads `metric` (and `size_metric`) over the series carrying every label of `labels`.
    pub fn new(metric: &str, size_metric: Option<&str>, labels: &[LabelMatch]) -> Self {
        QueueMetricExtractor {
            metric: metric.to_string(),
            size_metric: size_metric.map(str::to_string),
            labels: labels.to_vec(),
            count: None,
            size: None,
            series: 0,
        }
    }

    /// The reading, or which metric was missing (a missing size metric is missing too: never a
    /// size of zero).
    pub fn finish(&self) -> Result<QueueReading, QueueMetricError> {
        let missing = |metric: &str| QueueMetricError::Missing {
            metric: metric.to_string(),
            matching: if self.labels.is_empty() {
                String::new()
            } else {
                let m: Vec<String> = self.labels.iter().map(|l| format!("{}=\"{}\"", l.name, l.value)).collect();
                format!(" with {{{}}}", m.join(","))
            },
        };
        let count = self.count.ok_or_else(|| missing(&self.metric))?;
        let size = match &self.size_metric {
            None => None,
            Some(m) => Some(self.size.ok_or_else(|| missing(m))?),
        };
        Ok(QueueReading::Metric { count, size, series: self.series })
    }

    fn matches(&self, s: &Sample<'_>) -> bool {
        self.labels.iter().all(|l| s.label(&l.name).is_some_and(|v| v.eq_unescaped(&l.value)))
    }
}

impl Visitor for QueueMetricExtractor {
    fn wants(&mut self, name: &str) -> bool {
        name == self.metric || self.size_metric.as_deref() == Some(name)
    }

    fn sample(&mut self, s: &Sample<'_>) {
        // NaN or an infinite length is no count (a broken exporter), not a queue to plan for.
        if !s.value.is_finite() || !self.matches(s) {
            return;
        }
        if s.name == self.metric {
            self.count = Some(self.count.unwrap_or(0.0) + s.value);
            self.series += 1;
        } else {
            self.size = Some(self.size.unwrap_or(0.0) + s.value);
        }
    }

    fn type_hint(&mut self, _family: &str, _kind: MetricType) {}
}

mod humantime_secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::exposition;

    const RABBIT: &str = "# TYPE rabbitmq_queue_messages_ready gauge
rabbitmq_queue_messages_ready{queue=\"embed\",vhost=\"/\"} 12
rabbitmq_queue_messages_ready{queue=\"embed\",vhost=\"staging\"} 100
rabbitmq_queue_messages_ready{queue=\"evals\",vhost=\"/\"} 3
queue_tokens{queue=\"embed\",vhost=\"/\"} 48000
";

    fn read(metric: &str, size: Option<&str>, labels: &[(&str, &str)], body: &str) -> Result<QueueReading, QueueMetricError> {
        let l: Vec<LabelMatch> = labels.iter().map(|(n, v)| LabelMatch { name: n.to_string(), value: v.to_string() }).collect();
        let mut x = QueueMetricExtractor::new(metric, size, &l);
        exposition::parse(body.as_bytes(), &mut x).expect("parse");
        x.finish()
    }

    #[test]
    fn the_series_matching_every_label_are_summed_and_a_size_metric_read_beside_them() {
        let r = read("rabbitmq_queue_messages_ready", Some("queue_tokens"), &[("queue", "embed"), ("vhost", "/")], RABBIT);
        assert_eq!(r, Ok(QueueReading::Metric { count: 12.0, size: Some(48_000.0), series: 1 }));
        let all = read("rabbitmq_queue_messages_ready", None, &[], RABBIT);
        assert_eq!(all, Ok(QueueReading::Metric { count: 115.0, size: None, series: 3 }));
    }

    #[test]
    fn a_metric_or_size_missing_from_the_body_is_an_error_naming_it_not_a_zero() {
        let e = read("rabbitmq_queue_messages_ready", None, &[("queue", "absent")], RABBIT).unwrap_err();
        assert_eq!(e.to_string(), "no rabbitmq_queue_messages_ready series with {queue=\"absent\"} in the response");
        let e = read("rabbitmq_queue_messages_ready", Some("queue_bytes"), &[], RABBIT).unwrap_err();
        assert!(e.to_string().starts_with("no queue_bytes series"), "{e}");
    }
}

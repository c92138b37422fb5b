//! Reading a batch queue's length from Redis: one pipelined round trip per ScaledJob, over one
//! auto-reconnecting multiplexed connection per server shared by every ScaledJob that reads it.
//!
//! Lists, sets, sorted sets and hashes are counted with their length command, as KEDA's Redis
//! scalers count them (a missing key is an empty queue, as in Redis). A stream is read through
//! its consumer group: `XINFO GROUPS` gives the group's lag (entries not yet delivered) and its
//! pending count (delivered, not acknowledged), and `XPENDING ... IDLE` the pending entries idle
//! for longer than the claim timeout, whose consumer is presumed gone (a preempted Spot pod) and
//! whose work is to be redone; `XINFO CONSUMERS` says who holds the other pending entries (so a
//! worker whose pod is gone can be told from a live one) and `entries-read` how many entries were
//! acknowledged (the drain rate the deadline plans with). Every failure is an error naming its
//! cause, never a count of zero.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::{
    ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Value,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use serde::Serialize;

use crate::read::queue::{Consumer, KeyKind, QueueReading};

/// A password, never printed nor serialised.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// Where the Redis server is, and how to log in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedisEndpoint {
    /// Host name or IP.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS.
    pub tls: bool,
    /// With TLS, accept any certificate (KEDA's `unsafeSsl`): for a test Redis only.
    pub insecure: bool,
    /// `SELECT` index.
    pub db: u32,
    /// ACL user (`None`: the default user).
    pub username: Option<String>,
    /// Password (never serialised).
    #[serde(skip)]
    pub password: Option<Secret>,
}

/// What to count on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "queue")]
pub enum Queue {
    /// A key counted by its type's length command (items popped by a worker are gone from it).
    Key {
        /// The key.
        key: String,
        /// Its type.
        kind: KeyKind,
    },
    /// A stream read by a consumer group.
    Stream {
        /// The stream key.
        stream: String,
        /// The consumer group.
        group: String,
        /// A delivered entry idle this long is presumed lost with its consumer.
        #[serde(serialize_with = "secs")]
        claim_timeout: Duration,
    },
}

impl Queue {
    /// How a decision names it: `jobs`, `evals/workers`.
    pub fn label(&self) -> String {
        match self {
            Queue::Key { key, .. } => key.clone(),
            Queue::Stream { stream, group, .. } => format!("{stream}/{group}"),
        }
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Most idle pending entries one read lists: beyond this the stale count is a lower bound (and
/// the reading says so); the lag and pending totals stay exact.
pub const STALE_SCAN_LIMIT: usize = 10_000;

/// Why a queue could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The connection or the command failed (refused, timed out, wrong password, ...).
    #[error("redis {server}: {detail}")]
    Redis {
        /// `host:port`.
        server: String,
        /// Redis' or the client's message.
        detail: String,
    },
    /// The key holds another type than the one configured.
    #[error("redis {server}: key \"{key}\" holds another type than dataType says ({detail})")]
    WrongType {
        /// `host:port`.
        server: String,
        /// The key.
        key: String,
        /// Redis' message.
        detail: String,
    },
    /// The stream does not exist.
    #[error("redis {server}: stream \"{stream}\" does not exist")]
    NoStream {
        /// `host:port`.
        server: String,
        /// The stream.
        stream: String,
    },
    /// The stream has no such consumer group.
    #[error("redis {server}: stream \"{stream}\" has no consumer group \"{group}\" (groups: {groups})")]
    NoGroup {
        /// `host:port`.
        server: String,
        /// The stream.
        stream: String,
        /// The group asked for.
        group: String,
        /// The groups it has.
        groups: String,
    },
    /// Redis answered something this reader does not understand (or cannot compute the lag).
    #[error("redis {server}: {detail}")]
    Unexpected {
        /// `host:port`.
        server: String,
        /// What was wrong.
        detail: String,
    },
}

/// One connection per Redis server and login, shared by every ScaledJob reading it.
pub struct RedisPool {
    timeout: Duration,
    /// PEM roots a TLS server is verified against (`None`: the system's).
    ca: Option<Vec<u8>>,
    conns: Mutex<HashMap<ConnKey, ConnectionManager>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ConnKey {
    host: String,
    port: u16,
    tls: bool,
    insecure: bool,
    db: u32,
    username: Option<String>,
    password: Option<String>,
}

impl RedisPool {
    /// A pool whose connections time out connects and commands after `timeout`, verifying TLS
    /// servers against the PEM roots `ca` (or the system's).
    pub fn new(timeout: Duration, ca: Option<Vec<u8>>) -> Self {
        RedisPool { timeout, ca, conns: Mutex::new(HashMap::new()) }
    }

    /// The connection to `ep` (made on first use; it connects lazily and reconnects by itself).
    fn connection(&self, ep: &RedisEndpoint) -> Result<ConnectionManager, QueueError> {
        let key = ConnKey {
            host: ep.host.clone(),
            port: ep.port,
            tls: ep.tls,
            insecure: ep.insecure,
            db: ep.db,
            username: ep.username.clone(),
            password: ep.password.as_ref().map(|p| p.expose().to_string()),
        };
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = conns.get(&key) {
            return Ok(c.clone());
        }
        let addr = if ep.tls {
            ConnectionAddr::TcpTls { host: ep.host.clone(), port: ep.port, insecure: ep.insecure, tls_params: None }
        } else {
            ConnectionAddr::Tcp(ep.host.clone(), ep.port)
        };
        let err = |e: redis::RedisError| QueueError::Redis { server: server(ep), detail: e.to_string() };
        let mut login = RedisConnectionInfo::default().set_db(i64::from(ep.db));
        if let Some(u) = &ep.username {
            login = login.set_username(u);
        }
        if let Some(p) = &ep.password {
            login = login.set_password(p.expose());
        }
        let info = addr.into_connection_info().map_err(err)?.set_redis_settings(login);
        let client = match (&self.ca, ep.tls) {
            (Some(ca), true) => {
                redis::Client::build_with_tls(info, redis::TlsCertificates { client_tls: None, root_cert: Some(ca.clone()) })
                    .map_err(err)?
            }
            _ => redis::Client::open(info).map_err(err)?,
        };
        // Few, quick retries: the collector ticks again soon, and a read must not outlive it.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let c = ConnectionManager::new_lazy_with_config(client, config).map_err(err)?;
        conns.insert(key, c.clone());
        Ok(c)
    }

    /// Reads `queue` on `ep` in one round trip.
    pub async fn read(&self, ep: &RedisEndpoint, queue: &Queue) -> Result<QueueReading, QueueError> {
        let mut conn = self.connection(ep)?;
        let started = Instant::now();
        // The manager's own timeouts bound each attempt; this bounds the attempts together.
        tokio::time::timeout(self.timeout * 2, read_queue(&mut conn, ep, queue))
            .await
            .unwrap_or_else(|_| Err(QueueError::Redis { server: server(ep), detail: format!("no answer within {:?}", started.elapsed()) }))
    }
}

fn server(ep: &RedisEndpoint) -> String {
    format!("{}:{}", ep.host, ep.port)
}

async fn read_queue(conn: &mut ConnectionManager, ep: &RedisEndpoint, queue: &Queue) -> Result<QueueReading, QueueError> {
    let redis_err = |e: redis::RedisError| {
        let detail = e.to_string();
        match (queue, e.code()) {
            (Queue::Key { key, .. }, Some("WRONGTYPE")) => QueueError::WrongType { server: server(ep), key: key.clone(), detail },
            (Queue::Stream { stream, .. }, Some("WRONGTYPE")) => QueueError::WrongType { server: server(ep), key: stream.clone(), detail },
            (Queue::Stream { stream, .. }, _) if detail.contains("no such key") => {
                QueueError::NoStream { server: server(ep), stream: stream.clone() }
            }
            _ => QueueError::Redis { server: server(ep), detail },
        }
    };
    match queue {
        Queue::Key { key, kind } => {
            let length: u64 = redis::cmd(kind.command()).arg(key).query_async(conn).await.map_err(redis_err)?;
            Ok(QueueReading::Key { length, kind: *kind })
        }
        Queue::Stream { stream, group, claim_timeout, .. } => {
            let idle_ms = u64::try_from(claim_timeout.as_millis()).unwrap_or(u64::MAX);
            // Errors come back per command, so each is read with its own code (a missing stream
            // fails XINFO; a missing group fails XPENDING, and XINFO lists the groups there are).
            let results: Vec<redis::RedisResult<Value>> = redis::pipe()
                .ignore_errors()
                .cmd("XINFO")
                .arg("GROUPS")
                .arg(stream)
                .cmd("XPENDING")
                .arg(stream)
                .arg(group)
                .arg("IDLE")
                .arg(idle_ms)
                .arg("-")
                .arg("+")
                .arg(STALE_SCAN_LIMIT)
                .cmd("XINFO")
                .arg("CONSUMERS")
                .arg(stream)
                .arg(group)
                .query_async(conn)
                .await
                .map_err(redis_err)?;
            let mut results = results.into_iter();
            let mut next = || {
                results
                    .next()
                    .unwrap_or_else(|| Err((redis::ErrorKind::Client, "the pipeline answered fewer replies than commands").into()))
            };
            let (groups, stale, consumers) = (next().map_err(redis_err)?, next(), next());
            let unexpected = |detail: String| QueueError::Unexpected { server: server(ep), detail };
            let counts = group_counts(&groups, group).map_err(|e| match e {
                GroupError::Missing(names) => {
                    QueueError::NoGroup { server: server(ep), stream: stream.clone(), group: group.clone(), groups: names }
                }
                GroupError::Shape(d) => unexpected(d),
            })?;
            let lag = counts.lag.ok_or_else(|| {
                unexpected(format!(
                    "XINFO GROUPS has no lag for group \"{group}\" (Redis cannot compute it after entries were deleted or \
                     trimmed past the group's position; Redis >= 7 needed)"
                ))
            })?;
            let stale_by = match stale.map_err(redis_err)? {
                Value::Array(v) => stale_holders(&v).map_err(unexpected)?,
                other => return Err(unexpected(format!("XPENDING IDLE answered {other:?}, not a list of entries"))),
            };
            let stale: usize = stale_by.values().sum();
            let consumers = consumer_holds(&consumers.map_err(redis_err)?, &stale_by).map_err(unexpected)?;
            Ok(QueueReading::Stream {
                lag,
                pending: counts.pending,
                stale: stale as u64,
                stale_idle: *claim_timeout,
                stale_truncated: stale >= STALE_SCAN_LIMIT,
                acked: counts.entries_read.and_then(|read| read.checked_sub(counts.pending)),
                consumers,
            })
        }
    }
}

/// Stale entries per consumer, from `XPENDING`'s extended form (`[id, consumer, idle, deliveries]`
/// per entry).
fn stale_holders(entries: &[Value]) -> Result<HashMap<String, usize>, String> {
    let mut by = HashMap::new();
    for e in entries {
        let holder = match e {
            Value::Array(f) => f.get(1).and_then(text),
            _ => None,
        };
        let holder = holder.ok_or_else(|| format!("XPENDING IDLE entry {e:?} is not [id, consumer, idle, deliveries]"))?;
        *by.entry(holder).or_insert(0) += 1;
    }
    Ok(by)
}

/// The consumers holding entries, from `XINFO CONSUMERS` (maps in RESP3, flat lists in RESP2),
/// with their stale entries beside them.
fn consumer_holds(v: &Value, stale_by: &HashMap<String, usize>) -> Result<Vec<Consumer>, String> {
    let Value::Array(list) = v else {
        return Err(format!("XINFO CONSUMERS answered {v:?}, not a list of consumers"));
    };
    let mut out = Vec::new();
    for c in list {
        let fields = fields(c).ok_or_else(|| format!("XINFO CONSUMERS entry {c:?} is not a map"))?;
        let field = |name: &str| fields.iter().find(|(k, _)| text(k).as_deref() == Some(name)).map(|(_, v)| *v);
        let (Some(name), Some(pending), Some(idle)) =
            (field("name").and_then(text), field("pending").and_then(int), field("idle").and_then(int))
        else {
            return Err(format!("XINFO CONSUMERS entry {c:?} lacks name, pending or idle"));
        };
        if pending == 0 {
            continue;
        }
        let stale = stale_by.get(&name).copied().unwrap_or(0) as u64;
        out.push(Consumer { name, pending, stale: stale.min(pending), idle: Duration::from_millis(idle) });
    }
    Ok(out)
}

fn fields(v: &Value) -> Option<Vec<(&Value, &Value)>> {
    match v {
        Value::Map(m) => Some(m.iter().map(|(k, v)| (k, v)).collect()),
        Value::Array(a) => Some(a.chunks(2).filter_map(|c| Some((c.first()?, c.get(1)?))).collect()),
        _ => None,
    }
}

enum GroupError {
    Missing(String),
    Shape(String),
}

/// A group's counts in `XINFO GROUPS`.
#[derive(Debug, PartialEq, Eq)]
struct GroupCounts {
    /// Not yet delivered (`None`: Redis could not compute it).
    lag: Option<u64>,
    /// Delivered, not acknowledged.
    pending: u64,
    /// Delivered since the group was created (Redis 7.0+).
    entries_read: Option<u64>,
}

/// The counts of `group` in an `XINFO GROUPS` answer: a list of maps (RESP3) or of flat
/// field/value lists (RESP2).
fn group_counts(v: &Value, group: &str) -> Result<GroupCounts, GroupError> {
    let Value::Array(groups) = v else {
        return Err(GroupError::Shape(format!("XINFO GROUPS answered {v:?}, not a list of groups")));
    };
    let mut names = Vec::new();
    for g in groups {
        let fields = fields(g).ok_or_else(|| GroupError::Shape(format!("XINFO GROUPS entry {g:?} is not a map")))?;
        let field = |name: &str| fields.iter().find(|(k, _)| text(k).as_deref() == Some(name)).map(|(_, v)| *v);
        let Some(this) = field("name").and_then(text) else { continue };
        if this != group {
            names.push(this);
            continue;
        }
        let pending = field("pending").and_then(int).ok_or_else(|| GroupError::Shape("XINFO GROUPS entry has no pending count".into()))?;
        return Ok(GroupCounts { lag: field("lag").and_then(int), pending, entries_read: field("entries-read").and_then(int) });
    }
    Err(GroupError::Missing(if names.is_empty() { "none".to_string() } else { names.join(", ") }))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::BulkString(_) | Value::SimpleString(_) => text(v)?.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn the_group_s_lag_and_pending_are_found_in_either_protocol_s_shape() {
        let resp2 = Value::Array(vec![
            Value::Array(vec![bulk("name"), bulk("other"), bulk("pending"), Value::Int(1), bulk("lag"), Value::Int(2)]),
            Value::Array(vec![bulk("name"), bulk("g"), bulk("pending"), Value::Int(4), bulk("lag"), Value::Int(6)]),
        ]);
        assert_eq!(group_counts(&resp2, "g").ok(), Some(GroupCounts { lag: Some(6), pending: 4, entries_read: None }));
        let resp3 =
            Value::Array(vec![Value::Map(vec![(bulk("name"), bulk("g")), (bulk("pending"), Value::Int(0)), (bulk("lag"), Value::Nil)])]);
        assert_eq!(
            group_counts(&resp3, "g").ok(),
            Some(GroupCounts { lag: None, pending: 0, entries_read: None }),
            "a nil lag is unknown, not zero"
        );
        assert!(matches!(group_counts(&resp2, "h"), Err(GroupError::Missing(n)) if n == "other, g"));
    }

    #[test]
    fn each_consumer_s_pending_entries_are_listed_with_those_of_them_gone_stale() {
        let entry = |id: &str, who: &str| Value::Array(vec![bulk(id), bulk(who), Value::Int(400_000), Value::Int(1)]);
        let stale = stale_holders(&[entry("1-0", "w1"), entry("2-0", "w1"), entry("3-0", "w2")]).expect("entries");
        let consumers = Value::Array(vec![
            Value::Array(vec![bulk("name"), bulk("w1"), bulk("pending"), Value::Int(3), bulk("idle"), Value::Int(400_000)]),
            Value::Map(vec![(bulk("name"), bulk("w2")), (bulk("pending"), Value::Int(1)), (bulk("idle"), Value::Int(5))]),
            Value::Array(vec![bulk("name"), bulk("done"), bulk("pending"), Value::Int(0), bulk("idle"), Value::Int(9)]),
        ]);
        let held = consumer_holds(&consumers, &stale).expect("consumers");
        assert_eq!(
            held,
            [
                Consumer { name: "w1".into(), pending: 3, stale: 2, idle: Duration::from_secs(400) },
                Consumer { name: "w2".into(), pending: 1, stale: 1, idle: Duration::from_millis(5) },
            ],
            "a consumer holding nothing is left out"
        );
        assert!(stale_holders(&[Value::Int(1)]).is_err(), "a malformed entry is an error, not a skipped one");
    }
}

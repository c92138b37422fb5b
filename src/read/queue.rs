//! What a batch queue holds, reduced from its server's replies to the counts a decision needs.

use std::time::Duration;

use serde::Serialize;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    },
}

mod humantime_secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

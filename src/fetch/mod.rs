//! Fetching: getting the bytes of a target's metrics, with bounded time and memory, into a
//! reader ([`crate::read`]) as they arrive: HTTP ([`scrape`]); and a batch queue's length from Redis
//! ([`redis`]), where the answer is a few integers and no reader is needed.

pub mod redis;
pub mod scrape;

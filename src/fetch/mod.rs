//! Fetching: getting the bytes of a target's metrics, with bounded time and memory, into a
//! reader ([`crate::read`]) as they arrive. HTTP today ([`scrape`]).

pub mod scrape;

//! Fetching one `/metrics` endpoint and parsing it as it arrives.
//!
//! One shared `reqwest::Client` (connection reuse across ticks and ScaledObjects), the Accept
//! header vLLM expects (an OpenMetrics Accept can make it rename samples), a per-request timeout
//! covering the whole body, and a body-size bound enforced both on `Content-Length` and while
//! streaming. Chunks go straight into the streaming parser: no body is buffered whole.

use std::time::Duration;

use crate::exposition::{Limits, ParseError, Stats, StreamParser, Visitor};

/// The Accept header vLLM's docs recommend for the classic text format.
pub const ACCEPT: &str = "text/plain;version=0.0.4";

/// Why a scrape failed. Each variant says what the operator should look at.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Could not connect or the connection broke.
    #[error("request to {url} failed: {source}")]
    Transport {
        /// URL.
        url: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// No complete answer in time.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// URL.
        url: String,
        /// Limit.
        timeout: Duration,
    },
    /// Answered with a non-2xx status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// URL.
        url: String,
        /// Status code.
        status: u16,
    },
    /// Announced a body over the limit.
    #[error("{url} announced a {len}-byte body, over the {limit}-byte limit")]
    TooLarge {
        /// URL.
        url: String,
        /// Announced length.
        len: u64,
        /// Limit.
        limit: usize,
    },
    /// The body is not valid exposition text (or exceeded a limit while streaming).
    #[error("{url}: {source}")]
    Parse {
        /// URL.
        url: String,
        /// Cause.
        #[source]
        source: ParseError,
    },
}

impl ScrapeError {
    /// A short stable label for metrics (`transport`, `timeout`, `status`, `too_large`, `parse`).
    pub fn kind(&self) -> &'static str {
        match self {
            ScrapeError::Transport { .. } => "transport",
            ScrapeError::Timeout { .. } => "timeout",
            ScrapeError::Status { .. } => "status",
            ScrapeError::TooLarge { .. } => "too_large",
            ScrapeError::Parse { .. } => "parse",
        }
    }
}

/// Scrape settings.
#[derive(Debug, Clone)]
pub struct ScrapeConfig {
    /// Whole-request timeout (connect, headers and body).
    pub timeout: Duration,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Longest line accepted.
    pub max_line_bytes: usize,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        ScrapeConfig { timeout: Duration::from_secs(3), max_body_bytes: 16 << 20, max_line_bytes: 64 << 10 }
    }
}

/// A shared HTTP client for every scrape of the process.
#[derive(Debug, Clone)]
pub struct Scraper {
    client: reqwest::Client,
    cfg: ScrapeConfig,
}

impl Scraper {
    /// Builds the client: pooled connections, no proxies (pod IPs are cluster-local).
    pub fn new(cfg: ScrapeConfig) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(2)
            .connect_timeout(cfg.timeout)
            .timeout(cfg.timeout)
            .tcp_nodelay(true)
            .user_agent(concat!("llm-scaler/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Scraper { client, cfg })
    }

    /// Fetches `url` and streams the body through `visitor`.
    pub async fn scrape<V: Visitor + Send>(&self, url: &str, visitor: &mut V) -> Result<Stats, ScrapeError> {
        let timeout = self.cfg.timeout;
        match tokio::time::timeout(timeout, self.fetch(url, visitor)).await {
            Ok(r) => r,
            Err(_) => Err(ScrapeError::Timeout { url: url.to_string(), timeout }),
        }
    }

    async fn fetch<V: Visitor + Send>(&self, url: &str, visitor: &mut V) -> Result<Stats, ScrapeError> {
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                ScrapeError::Timeout { url: url.to_string(), timeout: self.cfg.timeout }
            } else {
                ScrapeError::Transport { url: url.to_string(), source }
            }
        };
        let mut resp = self.client.get(url).header(reqwest::header::ACCEPT, ACCEPT).send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ScrapeError::Status { url: url.to_string(), status: status.as_u16() });
        }
        if let Some(len) = resp.content_length()
            && len > self.cfg.max_body_bytes as u64
        {
            return Err(ScrapeError::TooLarge { url: url.to_string(), len, limit: self.cfg.max_body_bytes });
        }
        let mut parser = StreamParser::new(Limits { max_line_len: self.cfg.max_line_bytes, max_body_len: self.cfg.max_body_bytes });
        let parse = |source| ScrapeError::Parse { url: url.to_string(), source };
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            parser.feed(&chunk, visitor).map_err(parse)?;
        }
        parser.finish(visitor).map_err(parse)
    }
}

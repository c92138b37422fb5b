//! Assembles and runs the scaler: gRPC (KEDA's service, health, reflection) and HTTP, with a
//! graceful shutdown.
//!
//! Both listeners are bound first, so probes get an answer (NOT_SERVING) while pod discovery
//! connects; the health service turns SERVING only once the scaler can decide, and back to
//! NOT_SERVING as soon as shutdown starts. Shutdown stops accepting, lets in-flight calls finish,
//! ends push streams cleanly and stops every collector.
//!
//! With `tls_cert`/`tls_key` the gRPC port (KEDA's service, health, reflection) speaks TLS only,
//! see [`crate::serve::tls`]; the HTTP port stays plaintext.

use std::{
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::{FutureExt, StreamExt, future::BoxFuture};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle, time::Instant};
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::ServingStatus;
use tracing::{error, info, warn};

use crate::{
    discovery::{
        Discovery,
        kube::{KubeDiscovery, scaled_objects::ScaledObjectWatch},
    },
    fetch::{
        redis::RedisPool,
        scrape::{ScrapeConfig, Scraper},
    },
    proto::{FILE_DESCRIPTOR_SET, external_scaler_server::ExternalScalerServer},
    run::telemetry::Metrics,
    run::{
        cost::Ledgers,
        history_store::HistoryStore,
        prewarm::Prewarm,
        registry::Registry,
        target::{CollectSettings, Shared},
    },
    serve::config::Settings,
    serve::grpc::ScalerService,
    serve::http::{HttpState, router},
    serve::tls::{self, ReloadableTls, TlsFiles},
    serve::transport::{no_delay, stopped},
};

/// How pods are found (defined with [`Discovery`], which it becomes once connected).
pub use crate::discovery::DiscoveryMode;

/// Start-up failures.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::serve::config::ConfigError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The reflection service could not be built.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
    /// The TLS files are unusable at start-up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// `redis_ca_file` cannot be read.
    #[error("redis_ca_file {path}: {source}")]
    RedisCa {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// A running server.
pub struct Server {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl Server {
    /// Binds, starts serving and connects discovery in the background.
    pub async fn start(settings: Settings, mode: DiscoveryMode) -> Result<Server, ServerError> {
        let (policy_defaults, latency_defaults) = settings.policy_defaults()?;
        let namespace_access = settings.namespace_access()?;
        let tls = TlsFiles::from_settings(&settings).map(ReloadableTls::load).transpose()?.map(Arc::new);
        let redis_ca = settings
            .redis_ca_file
            .as_ref()
            .map(|path| std::fs::read(path).map_err(|source| ServerError::RedisCa { path: path.clone(), source }))
            .transpose()?;
        let grpc = TcpListener::bind(settings.grpc_addr).await.map_err(|source| ServerError::Bind { addr: settings.grpc_addr, source })?;
        let http = TcpListener::bind(settings.http_addr).await.map_err(|source| ServerError::Bind { addr: settings.http_addr, source })?;
        let grpc_addr = grpc.local_addr().map_err(|source| ServerError::Bind { addr: settings.grpc_addr, source })?;
        let http_addr = http.local_addr().map_err(|source| ServerError::Bind { addr: settings.http_addr, source })?;
        let scraper =
            Scraper::new(ScrapeConfig { timeout: settings.scrape_timeout, max_body_bytes: settings.max_body_bytes, ..Default::default() });

        let metrics = Arc::new(Metrics::new());
        let cell: Arc<OnceLock<Arc<Registry>>> = Arc::new(OnceLock::new());
        let ready = Arc::new(AtomicBool::new(false));
        let (shutdown, shutdown_rx) = watch::channel(false);

        let (reporter, health) = tonic_health::server::health_reporter();
        reporter.set_service_status("", ServingStatus::NotServing).await;
        reporter.set_not_serving::<ExternalScalerServer<ScalerService>>().await;

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let scaler = ScalerService::new(cell.clone(), metrics.clone(), shutdown_rx.clone());

        let mut grpc_stop = shutdown_rx.clone();
        let grpc_router = tonic::transport::Server::builder()
            .add_service(health)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(ExternalScalerServer::new(scaler));
        let grpc_stop = async move {
            stopped(&mut grpc_stop).await;
        };
        // The two transports differ in IO type, hence in future type: box them to one.
        let grpc_task: BoxFuture<'static, Result<(), tonic::transport::Error>> = match &tls {
            None => {
                // `serve_with_incoming` leaves socket options to us: without TCP_NODELAY, Nagle
                // holds small responses back behind the client's delayed ACKs.
                let incoming = TcpListenerStream::new(grpc).map(|conn| conn.inspect(no_delay));
                grpc_router.serve_with_incoming_shutdown(incoming, grpc_stop).boxed()
            }
            Some(t) => {
                tokio::spawn(t.clone().watch(settings.tls_reload_interval, shutdown_rx.clone()));
                grpc_router.serve_with_incoming_shutdown(tls::incoming(grpc, t.clone(), tls::HANDSHAKE_TIMEOUT), grpc_stop).boxed()
            }
        };
        let mut http_stop = shutdown_rx.clone();
        let http_state = HttpState { registry: cell.clone(), metrics: metrics.clone(), ready: ready.clone() };
        let http_task = axum::serve(http, router(http_state)).with_graceful_shutdown(async move {
            stopped(&mut http_stop).await;
        });

        let grace = settings.shutdown_grace;
        let (history_namespace, history_interval) = (settings.history_namespace.clone(), settings.history_interval);
        let (scaler_address, warm_namespaces, scrape_interval) =
            (settings.scaler_address.clone(), settings.warm_namespaces.clone(), settings.scrape_interval);
        let shared = move |discovery: Discovery| Shared {
            settings: CollectSettings {
                interval: settings.scrape_interval,
                stale_after: settings.stale_after(),
                idle_timeout: settings.idle_timeout,
                per_target_concurrency: settings.per_scaledobject_concurrency,
            },
            policy_defaults,
            latency_defaults,
            allow_static_endpoints: settings.allow_static_endpoints,
            namespace_access,
            dcgm_selector: settings.dcgm_selector.clone(),
            gpu_hour_price: settings.gpu_hour_price,
            scraper,
            limiter: Arc::new(tokio::sync::Semaphore::new(settings.scrape_concurrency)),
            metrics: metrics.clone(),
            origin: Instant::now(),
            history: match (&discovery, &history_namespace) {
                (Discovery::Kube(k), Some(ns)) => Some((HistoryStore::new(k.client().clone(), ns), history_interval)),
                _ => None,
            },
            discovery,
            redis: RedisPool::new(settings.scrape_timeout, redis_ca),
            ledgers: Ledgers::default(),
        };
        let mut connect_stop = shutdown_rx.clone();
        let connect_cell = cell.clone();
        let connect = async move {
            let discovery = match mode {
                DiscoveryMode::None => Discovery::None,
                DiscoveryMode::Custom(l) => Discovery::Custom(l),
                DiscoveryMode::Kube => {
                    let mut backoff = Duration::from_millis(500);
                    loop {
                        match KubeDiscovery::connect().await {
                            Ok(d) => break Discovery::Kube(d),
                            Err(e) => {
                                warn!(error = %e, retry_in = ?backoff, "cannot reach the Kubernetes API yet; health stays NOT_SERVING")
                            }
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stopped(&mut connect_stop) => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            };
            let warm_kube = match (&discovery, &scaler_address) {
                (Discovery::Kube(k), Some(address)) if !warm_namespaces.is_empty() => Some((k.client().clone(), address.clone())),
                _ => None,
            };
            let registry = Arc::new(Registry::new(shared(discovery)));
            let _ = connect_cell.set(registry.clone());
            // Every ScaledObject naming this scaler is collected before health says SERVING, so
            // a failover to this replica is answered from warm state.
            let _prewarm = match warm_kube {
                Some((client, address)) => {
                    let watches = warm_namespaces.iter().map(|ns| ScaledObjectWatch::start(&client, ns)).collect();
                    let mut p = Prewarm::new(registry, watches, address);
                    p.first_round().await;
                    Some(AbortOnDrop(tokio::spawn(p.run(scrape_interval))))
                }
                None => None,
            };
            reporter.set_service_status("", ServingStatus::Serving).await;
            reporter.set_serving::<ExternalScalerServer<ScalerService>>().await;
            ready.store(true, Ordering::Relaxed);
            info!("ready: health SERVING");
            stopped(&mut connect_stop).await;
            ready.store(false, Ordering::Relaxed);
            reporter.set_service_status("", ServingStatus::NotServing).await;
            reporter.set_not_serving::<ExternalScalerServer<ScalerService>>().await;
        };

        let mut grace_stop = shutdown_rx.clone();
        let task = tokio::spawn(async move {
            let connect = tokio::spawn(connect);
            let serve = async { tokio::join!(grpc_task, http_task) };
            // Streams that never end by themselves (a health Watch) must not hold shutdown forever.
            let deadline = async {
                stopped(&mut grace_stop).await;
                tokio::time::sleep(grace).await;
            };
            let (g, h) = tokio::select! {
                r = serve => r,
                _ = deadline => {
                    warn!(?grace, "in-flight calls did not finish within the shutdown grace period; closing");
                    (Ok(()), Ok(()))
                }
            };
            if let Some(r) = cell.get() {
                r.shutdown();
            }
            let _ = connect.await;
            g?;
            h.map_err(ServerError::Http)?;
            info!("stopped");
            Ok(())
        });
        info!(%grpc_addr, %http_addr, grpc_tls = tls.is_some(), mtls = tls.as_ref().is_some_and(|t| t.files().client_ca.is_some()), "listening");
        Ok(Server { grpc_addr, http_addr, shutdown, task })
    }

    /// Starts a graceful shutdown and waits for it to finish.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(true);
        self.wait().await
    }

    /// A handle that starts the shutdown (for signal handlers).
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Waits for the server to stop.
    pub async fn wait(self) -> Result<(), ServerError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "server task failed");
                Ok(())
            }
        }
    }
}

/// Aborts the task when dropped (the prewarm loop ends with the connect task).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

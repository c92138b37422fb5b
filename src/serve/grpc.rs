//! KEDA's `externalscaler.ExternalScaler` service, answered from memory.
//!
//! Every RPC looks the ScaledObject up in the [`Registry`] (parsing its metadata the first time)
//! and reads the latest decision from its store; nothing here scrapes or calls the API server.
//! No usable decision means `UNAVAILABLE`, so KEDA marks the trigger failed and the HPA keeps
//! its size: missing data is never reported as zero.
//!
//! A trigger with `mode: batch` is a ScaledJob's queue ([`crate::run::batch`]): its metric is the
//! outstanding work with the work one Job takes as its AverageValue target, and `IsActive` says
//! whether work waits. Same lookup, same freshness rule.

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
    time::Instant as StdInstant,
};

use futures::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::{
    proto::{
        GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec, MetricValue, ScaledObjectRef,
        external_scaler_server::ExternalScaler,
    },
    run::store::Answer,
    run::telemetry::Metrics,
    run::{
        batch::BatchTarget,
        registry::{LookupError, Registry},
        target::Target,
    },
    serve::transport::stopped,
    spec::batch::is_batch,
};

/// The one metric we expose: the desired replica count, with target 1 so the HPA's
/// `ceil(value / target)` lands on our decision. Stable, and a valid path segment.
pub const METRIC_NAME: &str = "llm-scaler-desired-replicas";

/// A batch trigger's metric: the outstanding work, against the work one Job takes.
pub const BATCH_METRIC_NAME: &str = "llm-scaler-batch-work";

/// The service.
#[derive(Clone)]
pub struct ScalerService {
    registry: Arc<OnceLock<Arc<Registry>>>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
}

impl ScalerService {
    /// A service over `registry` (set once the server can decide: until then every RPC answers
    /// UNAVAILABLE); push streams end when `shutdown` turns true.
    pub fn new(registry: Arc<OnceLock<Arc<Registry>>>, metrics: Arc<Metrics>, shutdown: watch::Receiver<bool>) -> Self {
        ScalerService { registry, metrics, shutdown }
    }

    fn registry(&self) -> Result<&Arc<Registry>, Status> {
        self.registry.get().ok_or_else(|| Status::unavailable("starting: pod discovery is not connected yet"))
    }

    fn target(&self, r: &ScaledObjectRef) -> Result<Arc<Target>, Status> {
        self.registry()?.get_or_register(&r.namespace, &r.name, &r.scaler_metadata).map_err(lookup_status)
    }

    fn batch_target(&self, r: &ScaledObjectRef) -> Result<Arc<BatchTarget>, Status> {
        self.registry()?.get_or_register_batch(&r.namespace, &r.name, &r.scaler_metadata).map_err(lookup_status)
    }

    fn batch_fresh(&self, t: &BatchTarget) -> Result<Arc<crate::decide::batch::BatchDecision>, Status> {
        t.store
            .answer(tokio::time::Instant::now())
            .map_err(|why| Status::unavailable(format!("{}/{} (batch): {why}", t.key.namespace, t.key.name)))
    }

    fn fresh(&self, t: &Target) -> Result<Arc<crate::decide::policy::Decision>, Status> {
        match t.store.answer(tokio::time::Instant::now()) {
            Answer::Fresh(d) => Ok(d),
            Answer::Unavailable(why) => Err(Status::unavailable(format!("{}/{}: {why}", t.key.namespace, t.key.name))),
        }
    }

    fn timed<T>(&self, method: &'static str, started: StdInstant, r: Result<T, Status>) -> Result<T, Status> {
        let code = r.as_ref().err().map(|s| s.code());
        self.metrics.rpc(method, started.elapsed().as_secs_f64(), code);
        r
    }

    fn batch_spec_response(t: &BatchTarget) -> GetMetricSpecResponse {
        let size = t.spec.policy.target_size;
        #[allow(deprecated)]
        GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: BATCH_METRIC_NAME.to_string(),
                target_size: size.ceil() as i64,
                target_size_float: size,
            }],
        }
    }

    fn spec_response() -> GetMetricSpecResponse {
        #[allow(deprecated)]
        GetMetricSpecResponse {
            metric_specs: vec![MetricSpec { metric_name: METRIC_NAME.to_string(), target_size: 1, target_size_float: 1.0 }],
        }
    }
}

fn lookup_status(e: LookupError) -> Status {
    match e {
        LookupError::Spec(e) => Status::invalid_argument(e.to_string()),
        e @ LookupError::MissingField(_) => Status::invalid_argument(e.to_string()),
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ExternalScaler for ScalerService {
    async fn is_active(&self, request: Request<ScaledObjectRef>) -> Result<Response<IsActiveResponse>, Status> {
        let started = StdInstant::now();
        let so = request.get_ref();
        let r = if is_batch(&so.scaler_metadata) {
            self.batch_target(so).and_then(|t| self.batch_fresh(&t)).map(|d| d.active)
        } else {
            self.target(so).and_then(|t| self.fresh(&t)).map(|d| d.active)
        };
        self.timed("IsActive", started, r.map(|result| Response::new(IsActiveResponse { result })))
    }

    type StreamIsActiveStream = BoxStream<IsActiveResponse>;

    /// Pushes `true` whenever the fleet turns active (KEDA ignores `false`; scale-down comes from
    /// the polled `IsActive`). The stream ends cleanly on shutdown.
    async fn stream_is_active(&self, request: Request<ScaledObjectRef>) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let started = StdInstant::now();
        let so = request.get_ref();
        let watched = if is_batch(&so.scaler_metadata) {
            self.batch_target(so).map(|t| (t.store.subscribe_active(), t.presence.open_stream()))
        } else {
            self.target(so).map(|t| (t.store.subscribe_active(), t.presence.open_stream()))
        };
        let (mut active, guard) = self.timed("StreamIsActive", started, watched)?;
        let mut shutdown = self.shutdown.clone();
        let stream = async_stream(move |tx| async move {
            let _guard = guard;
            let mut was = *active.borrow_and_update();
            if was && tx.send(Ok(IsActiveResponse { result: true })).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    changed = active.changed() => {
                        if changed.is_err() { return; }
                        let now = *active.borrow_and_update();
                        if now && !was && tx.send(Ok(IsActiveResponse { result: true })).await.is_err() {
                            return;
                        }
                        was = now;
                    }
                    _ = stopped(&mut shutdown) => return,
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(stream))
    }

    async fn get_metric_spec(&self, request: Request<ScaledObjectRef>) -> Result<Response<GetMetricSpecResponse>, Status> {
        let started = StdInstant::now();
        let so = request.get_ref();
        let r = if is_batch(&so.scaler_metadata) {
            self.batch_target(so).map(|t| Self::batch_spec_response(&t))
        } else {
            self.target(so).map(|_| Self::spec_response())
        };
        self.timed("GetMetricSpec", started, r.map(Response::new))
    }

    async fn get_metrics(&self, request: Request<GetMetricsRequest>) -> Result<Response<GetMetricsResponse>, Status> {
        let started = StdInstant::now();
        let req = request.get_ref();
        let r = (|| {
            let so =
                req.scaled_object_ref.as_ref().ok_or_else(|| Status::invalid_argument("GetMetricsRequest.scaledObjectRef is missing"))?;
            if is_batch(&so.scaler_metadata) {
                if req.metric_name != BATCH_METRIC_NAME {
                    return Err(Status::invalid_argument(format!(
                        "unknown metricName \"{}\"; a batch trigger serves \"{BATCH_METRIC_NAME}\"",
                        req.metric_name
                    )));
                }
                let t = self.batch_target(so)?;
                let d = self.batch_fresh(&t)?;
                #[allow(deprecated)]
                let value = MetricValue {
                    metric_name: BATCH_METRIC_NAME.to_string(),
                    metric_value: d.work.ceil() as i64,
                    metric_value_float: d.work,
                };
                return Ok(Response::new(GetMetricsResponse { metric_values: vec![value] }));
            }
            if req.metric_name != METRIC_NAME {
                return Err(Status::invalid_argument(format!(
                    "unknown metricName \"{}\"; this scaler serves \"{METRIC_NAME}\"",
                    req.metric_name
                )));
            }
            let t = self.target(so)?;
            let d = self.fresh(&t)?;
            let v = f64::from(d.desired_replicas);
            #[allow(deprecated)]
            let value = MetricValue { metric_name: METRIC_NAME.to_string(), metric_value: v.ceil() as i64, metric_value_float: v };
            Ok(Response::new(GetMetricsResponse { metric_values: vec![value] }))
        })();
        self.timed("GetMetrics", started, r)
    }

    type StreamMetricSpecStream = BoxStream<GetMetricSpecResponse>;

    /// Sends the (stable) spec at once and keeps the stream open until shutdown.
    async fn stream_metric_spec(&self, request: Request<ScaledObjectRef>) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        let started = StdInstant::now();
        let target = self.target(request.get_ref());
        let target = self.timed("StreamMetricSpec", started, target)?;
        let mut shutdown = self.shutdown.clone();
        let guard = target.presence.open_stream();
        let stream = async_stream(move |tx| async move {
            let _guard = guard;
            if tx.send(Ok(Self::spec_response())).await.is_err() {
                return;
            }
            tokio::select! {
                _ = stopped(&mut shutdown) => {}
                _ = tx.closed() => {}
            }
        });
        Ok(Response::new(stream))
    }
}

/// A server stream fed by a task through a small channel.
fn async_stream<T, F, Fut>(f: F) -> BoxStream<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

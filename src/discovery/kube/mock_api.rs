//! A scripted API server for the unit tests of this module: the client sends into a
//! `tower_test` mock, the test answers request by request.

use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::Value;
use tower_test::mock;

use super::KubeDiscovery;

pub(super) type Handle = mock::Handle<Request<Body>, Response<Body>>;
pub(super) type Responder = mock::SendResponse<Response<Body>>;

/// Upper bound for any single wait in these tests, so a mismatch fails instead of hanging.
pub(super) const STEP: Duration = Duration::from_secs(5);

pub(super) fn mock_discovery() -> (KubeDiscovery, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (KubeDiscovery::from_client(Client::new(service, "default")), handle)
}

pub(super) async fn next_request(handle: &mut Handle) -> (Request<Body>, Responder) {
    tokio::time::timeout(STEP, handle.next_request())
        .await
        .expect("timed out waiting for an API request")
        .expect("client dropped before sending the expected request")
}

/// Waits for the next request, asserts it is a GET of `path`, answers `status` + `body`.
pub(super) async fn serve(handle: &mut Handle, path: &str, status: StatusCode, body: Value) {
    let (request, respond) = next_request(handle).await;
    assert_eq!(request.method(), http::Method::GET);
    assert_eq!(request.uri().path(), path);
    respond.send_response(json_response(status, &body));
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).expect("serialise test body");
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response
}

//! TLS and mTLS on the gRPC port, with clients configured the way KEDA configures grpc-go: the
//! CA from the TriggerAuthentication's `caCert` on top of the system roots, `tlsClientCert` /
//! `tlsClientKey` as identity, and the host part of `scalerAddress` as server name. Every
//! certificate is made at test time with rcgen.
#![cfg(feature = "sim")] // the fake pods (tests/common) render vLLM text with llm_scaler::sim::render

mod common;

use std::{
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use common::*;
use llm_scaler::{
    proto::{GetMetricsRequest, external_scaler_client::ExternalScalerClient},
    serve::config::Settings,
    serve::grpc::METRIC_NAME,
    serve::server::{DiscoveryMode, Server, ServerError},
};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::net::TcpStream;
use tokio_rustls::{
    TlsConnector,
    rustls::{
        self, ClientConfig, RootCertStore, SupportedProtocolVersion,
        pki_types::{CertificateDer, ServerName},
    },
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

const T: Duration = Duration::from_secs(10);
const RELOAD: Duration = Duration::from_millis(100);

/// A certificate authority.
struct Ca {
    cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key.
struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, issuer: Issuer::new(p, key) }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    fn leaf(&self, sans: &[&str], usage: ExtendedKeyUsagePurpose, serial: u64, expiry_year: i32) -> Leaf {
        let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, sans[0]);
        p.extended_key_usages = vec![usage];
        p.serial_number = Some(serial.into());
        p.not_after = rcgen::date_time_ymd(expiry_year, 1, 1);
        p.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        Leaf { cert: p.signed_by(&key, &self.issuer).unwrap(), key }
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    fn server(&self, serial: u64, expiry_year: i32) -> Leaf {
        self.leaf(&["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, serial, expiry_year)
    }

    fn client(&self, name: &str) -> Leaf {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth, 1, 2040)
    }
}

impl Leaf {
    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(self.cert.pem(), self.key.serialize_pem())
    }
}

/// A scratch directory holding the server's PEM files, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("llm-scaler-tls-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Replaces a file at once (write then rename), as the kubelet's symlink swap does.
    fn put(&self, name: &str, contents: &str) {
        let tmp = self.path(&format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).unwrap();
        std::fs::rename(&tmp, self.path(name)).unwrap();
    }

    /// Installs a server certificate and its key.
    fn install(&self, leaf: &Leaf) {
        self.put("tls.crt", &leaf.cert.pem());
        self.put("tls.key", &leaf.key.serialize_pem());
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn tls_settings(dir: &Dir, client_ca: Option<&Path>) -> Settings {
    Settings {
        tls_cert: Some(dir.path("tls.crt")),
        tls_key: Some(dir.path("tls.key")),
        tls_client_ca: client_ca.map(Path::to_path_buf),
        tls_reload_interval: RELOAD,
        ..settings(100)
    }
}

async fn start(dir: &Dir, client_ca: Option<&Path>) -> Server {
    Server::start(tls_settings(dir, client_ca), DiscoveryMode::None).await.expect("server starts")
}

/// What KEDA builds from a TriggerAuthentication: system roots plus `caCert`, the optional
/// client identity, and the host of `scalerAddress` as server name.
fn keda_tls(ca: &Ca, identity: Option<&Leaf>) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new().with_native_roots().ca_certificate(Certificate::from_pem(ca.pem())).domain_name("localhost");
    match identity {
        Some(leaf) => tls.identity(leaf.identity()),
        None => tls,
    }
}

/// `scalerAddress: localhost:PORT` with TLS.
async fn connect(addr: SocketAddr, tls: ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://localhost:{}", addr.port()))?
        .connect_timeout(Duration::from_secs(2))
        .tls_config(tls)?
        .connect()
        .await
}

/// Health of the whole server, or why the call failed.
async fn check(ch: Channel) -> Result<ServingStatus, tonic::Status> {
    Ok(HealthClient::new(ch).check(HealthCheckRequest { service: String::new() }).await?.into_inner().status())
}

/// Connects and asks for health, as a new client would: `Err` when refused at either step (with
/// TLS 1.3 the server checks a client certificate after the client considers itself connected).
async fn reachable(addr: SocketAddr, tls: ClientTlsConfig) -> Result<(), String> {
    let ch = connect(addr, tls).await.map_err(|e| format!("connect: {e:?}"))?;
    check(ch).await.map(|_| ()).map_err(|e| format!("call: {e}"))
}

/// Waits until the server answers SERVING over `ch`.
async fn wait_serving(ch: &Channel) {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        if check(ch.clone()).await.expect("health over TLS") == ServingStatus::Serving {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never SERVING");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw TLS handshake trusting only `ca`, offering `alpn`: the negotiated ALPN protocol and the
/// certificate the server presented.
async fn handshake(
    addr: SocketAddr,
    ca: &Ca,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> std::io::Result<(Option<Vec<u8>>, CertificateDer<'static>)> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await?;
    let tls = TlsConnector::from(Arc::new(cfg)).connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
    let (_, session) = tls.get_ref();
    let presented = session.peer_certificates().expect("server certificate")[0].clone();
    Ok((session.alpn_protocol().map(<[u8]>::to_vec), presented))
}

/// The certificate a new connection is served.
async fn presented(addr: SocketAddr, ca: &Ca) -> CertificateDer<'static> {
    handshake(addr, ca, rustls::ALL_VERSIONS, &[b"h2"]).await.expect("handshake").1
}

/// Polls until new connections are served `want` (a reload happened). Handshakes trusting only
/// `ca` fail until then when the certificate comes from another CA.
async fn wait_presented(addr: SocketAddr, ca: &Ca, want: &CertificateDer<'static>) {
    let deadline = tokio::time::Instant::now() + T;
    while handshake(addr, ca, rustls::ALL_VERSIONS, &[b"h2"]).await.ok().map(|(_, cert)| cert).as_ref() != Some(want) {
        assert!(tokio::time::Instant::now() < deadline, "the new certificate was never served");
        tokio::time::sleep(RELOAD / 2).await;
    }
}

#[tokio::test]
async fn keda_like_client_works_end_to_end_over_tls() {
    let ca = Ca::new("scaler-ca");
    let dir = Dir::new("e2e");
    dir.install(&ca.server(1, 2040));
    let pod = FakePod::start("llama").await;
    pod.update(|v| v.engines[0].waiting = 30);
    let server = start(&dir, None).await;

    let ch = connect(server.grpc_addr, keda_tls(&ca, None)).await.expect("TLS connect");
    wait_serving(&ch).await;
    let mut client = ExternalScalerClient::new(ch.clone());
    let so = so("ai", "llama", &[("endpoints", endpoints(&[&pod])), ("enableTLS", "true".into())]);
    let spec = client.get_metric_spec(so.clone()).await.expect("GetMetricSpec over TLS").into_inner();
    assert_eq!(spec.metric_specs[0].metric_name, METRIC_NAME);
    // 30 waiting / 10 per replica = 3 replicas x the default peak factor, rounded up.
    let want = (3.0 * llm_scaler::decide::policy::PolicyConfig::default().peak_factor).ceil();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let r = client.get_metrics(GetMetricsRequest { scaled_object_ref: Some(so.clone()), metric_name: METRIC_NAME.into() }).await;
        if r.as_ref().is_ok_and(|r| r.get_ref().metric_values[0].metric_value_float == want) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "GetMetrics over TLS: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Reflection (what grpcurl uses) runs over TLS too.
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
    };
    let req = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
    let mut refl = ServerReflectionClient::new(ch).server_reflection_info(futures::stream::iter([req])).await.unwrap().into_inner();
    assert!(refl.message().await.unwrap().is_some());

    // The HTTP port stays plaintext.
    assert!(http_get(server.http_addr, "/metrics").await.contains("llm_scaler"));
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn alpn_h2_is_negotiated_on_tls_1_2_and_1_3() {
    let ca = Ca::new("scaler-ca");
    let dir = Dir::new("alpn");
    let leaf = ca.server(1, 2040);
    dir.install(&leaf);
    let server = start(&dir, None).await;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let (alpn, cert) = handshake(server.grpc_addr, &ca, &[version], &[b"h2", b"http/1.1"]).await.expect("handshake");
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "{version:?}");
        assert_eq!(cert, leaf.der());
    }
    // A client that cannot speak HTTP/2 is refused rather than left to fail later.
    assert!(handshake(server.grpc_addr, &ca, rustls::ALL_VERSIONS, &[b"http/1.1"]).await.is_err());
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn plaintext_client_is_refused_by_a_tls_server() {
    let ca = Ca::new("scaler-ca");
    let dir = Dir::new("plain");
    dir.install(&ca.server(1, 2040));
    let server = start(&dir, None).await;
    let plain = async {
        let mut c = ExternalScalerClient::connect(format!("http://{}", server.grpc_addr)).await.map_err(|e| e.to_string())?;
        c.get_metric_spec(so("ai", "llama", &[])).await.map_err(|e| e.to_string())
    };
    let r = tokio::time::timeout(T, plain).await.expect("refused promptly, not hung");
    assert!(r.is_err(), "plaintext must not work: {r:?}");
    // A TLS client still works afterwards.
    reachable(server.grpc_addr, keda_tls(&ca, None)).await.expect("TLS client");
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_configured_ca() {
    let server_ca = Ca::new("scaler-ca");
    let client_ca = Ca::new("keda-clients-ca");
    let other_ca = Ca::new("someone-else-ca");
    let dir = Dir::new("mtls");
    dir.install(&server_ca.server(1, 2040));
    dir.put("client-ca.crt", &client_ca.pem());
    let server = start(&dir, Some(&dir.path("client-ca.crt"))).await;
    let addr = server.grpc_addr;

    let none = reachable(addr, keda_tls(&server_ca, None)).await;
    assert!(none.is_err(), "no client certificate must be refused");
    let foreign = reachable(addr, keda_tls(&server_ca, Some(&other_ca.client("keda-operator")))).await;
    assert!(foreign.is_err(), "a certificate from another CA must be refused");
    let ok = connect(addr, keda_tls(&server_ca, Some(&client_ca.client("keda-operator")))).await.expect("mTLS connect");
    wait_serving(&ok).await;
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn rotated_certificate_serves_new_connections_while_open_ones_continue() {
    let old_ca = Ca::new("scaler-ca-2025");
    let new_ca = Ca::new("scaler-ca-2026");
    let dir = Dir::new("rotate");
    let old = old_ca.server(1, 2040);
    dir.install(&old);
    let server = start(&dir, None).await;
    let addr = server.grpc_addr;
    // Trusts the old CA only: if its connection were dropped, reconnecting would fail.
    let open = connect(addr, keda_tls(&old_ca, None)).await.expect("connect");
    wait_serving(&open).await;
    assert_eq!(presented(addr, &old_ca).await, old.der());

    // cert-manager renews: new CA, new serial, new expiry.
    let new = new_ca.server(2, 2045);
    dir.install(&new);
    wait_presented(addr, &new_ca, &new.der()).await;

    assert_eq!(check(open.clone()).await.expect("the open connection still works"), ServingStatus::Serving);
    reachable(addr, keda_tls(&new_ca, None)).await.expect("a new client trusting the new CA");
    assert!(reachable(addr, keda_tls(&old_ca, None)).await.is_err(), "new connections no longer get the old certificate");
    assert_eq!(check(open).await.expect("the open connection still works"), ServingStatus::Serving);
    server.shutdown().await.expect("clean shutdown");
}

/// Log lines written by every server in this test binary (a process-wide subscriber: a
/// thread-scoped one misses events whose callsite another test's thread registered first).
/// Tests pick their own lines by their directory's path.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let sink = logs.clone();
        let subscriber =
            tracing_subscriber::fmt().with_ansi(false).with_max_level(tracing::Level::INFO).with_writer(move || sink.clone()).finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        logs
    })
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// The lines mentioning `needle`.
    fn lines(&self, needle: &str) -> String {
        let all = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        all.lines().filter(|l| l.contains(needle)).map(|l| format!("{l}\n")).collect()
    }
}

#[tokio::test]
async fn broken_replacement_keeps_the_old_certificate_and_logs_once() {
    let logs = logs();

    let ca = Ca::new("scaler-ca");
    let dir = Dir::new("broken");
    let good = ca.server(1, 2040);
    dir.install(&good);
    let server = start(&dir, None).await;
    let addr = server.grpc_addr;

    // A truncated certificate: refused, old one kept, one error naming the file.
    dir.put("tls.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n");
    tokio::time::sleep(RELOAD * 6).await;
    assert_eq!(presented(addr, &ca).await, good.der());
    reachable(addr, keda_tls(&ca, None)).await.expect("still serving the old certificate");
    let crt = dir.path("tls.crt").display().to_string();
    let text = logs.lines(&crt);
    let errors: Vec<_> = text.lines().filter(|l| l.contains("ERROR") && l.contains(&crt)).collect();
    assert_eq!(errors.len(), 1, "one error naming {crt}, not one per poll:\n{text}");
    assert!(errors[0].contains("previous certificate"), "{}", errors[0]);

    // A key that does not match the certificate: refused, both files named.
    let other = ca.server(3, 2040);
    dir.install(&good);
    dir.put("tls.key", &other.key.serialize_pem());
    tokio::time::sleep(RELOAD * 6).await;
    assert_eq!(presented(addr, &ca).await, good.der());
    let key = dir.path("tls.key").display().to_string();
    assert!(logs.lines(&key).lines().any(|l| l.contains("ERROR") && l.contains(&crt)), "{}", logs.lines(&key));

    // Fixed: the next good pair is picked up.
    dir.install(&other);
    wait_presented(addr, &ca, &other.der()).await;
    // Logged just after the swap: give the watcher a moment.
    let deadline = tokio::time::Instant::now() + T;
    while !logs.lines(&crt).contains("TLS certificate reloaded") {
        assert!(tokio::time::Instant::now() < deadline, "{}", logs.lines(&crt));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_silent_client_does_not_hold_up_other_handshakes() {
    let ca = Ca::new("scaler-ca");
    let dir = Dir::new("silent");
    dir.install(&ca.server(1, 2040));
    let server = start(&dir, None).await;
    // Connects and never sends a ClientHello.
    let _silent: Vec<TcpStream> = futures::future::join_all((0..4).map(|_| TcpStream::connect(server.grpc_addr)))
        .await
        .into_iter()
        .map(|s| s.expect("tcp connect"))
        .collect();
    tokio::time::timeout(Duration::from_secs(3), reachable(server.grpc_addr, keda_tls(&ca, None)))
        .await
        .expect("not stalled behind silent clients")
        .expect("TLS client");
    server.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn unusable_files_fail_start_up_naming_the_file() {
    let ca = Ca::new("scaler-ca");
    let dir = Dir::new("startup");
    let leaf = ca.server(1, 2040);
    dir.put("tls.crt", &leaf.cert.pem());
    dir.put("tls.key", "not a key\n");
    let err = |r: Result<Server, ServerError>| r.err().expect("start-up must fail").to_string();
    let e = err(Server::start(tls_settings(&dir, None), DiscoveryMode::None).await);
    assert!(e.contains(&dir.path("tls.key").display().to_string()) && e.contains("PRIVATE KEY"), "{e}");
    dir.put("tls.key", &leaf.key.serialize_pem());
    let e = err(Server::start(tls_settings(&dir, Some(&dir.path("missing-ca.crt"))), DiscoveryMode::None).await);
    assert!(e.contains("missing-ca.crt"), "{e}");
}

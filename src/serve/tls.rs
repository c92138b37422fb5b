//! TLS, and optionally mTLS, for the gRPC port, with certificates reloaded from disk.
//!
//! KEDA's grpc-go client turns TLS on with `enableTLS` / `caCert` / `tlsClientCert`; it checks the
//! server certificate against the host part of `scalerAddress` and, since grpc-go 1.67, refuses a
//! server that does not negotiate ALPN `h2`. So the server offers `h2` only, TLS 1.2 and 1.3.
//!
//! cert-manager rotates the Secret in place and the kubelet swaps the mounted files, but the
//! process keeps running: [`ReloadableTls::watch`] re-reads the files every
//! `tls_reload_interval` and every NEW connection takes the newest good configuration; open
//! connections keep the one they were made with. A bad replacement (half-written, key not matching
//! the certificate, ...) is logged once, naming the file and the cause, and the previous
//! configuration stays in use.
//!
//! The handshake runs in its own task with a timeout, off the accept loop, so a client that
//! connects and stays silent holds only its own task, not the port.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, RootCertStore, ServerConfig,
        crypto::CryptoProvider,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        server::{VerifierBuilderError, WebPkiClientVerifier, danger::ClientCertVerifier},
    },
    server::TlsStream,
};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, error, info, warn};

use crate::serve::config::Settings;

/// ALPN id of HTTP/2, the only protocol offered: gRPC needs nothing else.
pub const ALPN_H2: &[u8] = b"h2";

/// A client that has not finished its handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes finished but not yet taken by the gRPC server; beyond this, handshake tasks wait.
const READY_QUEUE: usize = 64;

/// The PEM files of the server's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set, clients must present a certificate issued by one of these CAs (mTLS).
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The files named in `settings`, or `None` for plaintext (settings validation already
    /// refused a certificate without a key and the reverse).
    pub fn from_settings(settings: &Settings) -> Option<TlsFiles> {
        match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone(), client_ca: settings.tls_client_ca.clone() }),
            _ => None,
        }
    }
}

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("TLS: cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// A file is not valid PEM.
    #[error("TLS: {} is not valid PEM: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: rustls::pki_types::pem::Error,
    },
    /// A file holds no item of the expected kind.
    #[error("TLS: {} holds no {what}", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// What was looked for.
        what: &'static str,
    },
    /// A client CA certificate is not usable as a trust anchor.
    #[error("TLS: client CA {}: {source}", path.display())]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: rustls::Error,
    },
    /// The client certificate verifier could not be built.
    #[error("TLS: client CA {}: {source}", path.display())]
    ClientVerifier {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: VerifierBuilderError,
    },
    /// The certificate and key do not form a usable identity (e.g. the key does not match).
    #[error("TLS: certificate {} with key {}: {source}", cert.display(), key.display())]
    Identity {
        /// Certificate file.
        cert: PathBuf,
        /// Key file.
        key: PathBuf,
        /// Cause.
        source: rustls::Error,
    },
    /// The crypto provider does not support the protocol versions asked for.
    #[error("TLS: protocol versions: {0}")]
    Versions(rustls::Error),
}

/// Raw contents of the files, as read in one pass.
#[derive(Hash)]
struct Pems {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Pems {
    fn read(files: &TlsFiles) -> Result<Pems, TlsError> {
        Ok(Pems { cert: read(&files.cert)?, key: read(&files.key)?, client_ca: files.client_ca.as_deref().map(read).transpose()? })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

/// A digest of what the files looked like, to act (and log) once per change, not once per poll.
/// Not cryptographic: it only has to tell one state of the files from the next.
fn fingerprint(value: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem { path: path.to_path_buf(), source })?;
    if certs.is_empty() {
        return Err(TlsError::Missing { path: path.to_path_buf(), what: "CERTIFICATE" });
    }
    Ok(certs)
}

fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Missing { path: path.to_path_buf(), what: "PRIVATE KEY" },
        source => TlsError::Pem { path: path.to_path_buf(), source },
    })
}

fn client_verifier(path: &Path, pem: &[u8], provider: Arc<CryptoProvider>) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, pem)? {
        roots.add(cert).map_err(|source| TlsError::ClientCa { path: path.to_path_buf(), source })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|source| TlsError::ClientVerifier { path: path.to_path_buf(), source })
}

/// Builds the rustls configuration: ring, TLS 1.2 and 1.3, ALPN `h2` only, client certificates
/// required and verified when a client CA is configured.
fn server_config(files: &TlsFiles, pems: &Pems) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let chain = certificates(&files.cert, &pems.cert)?;
    let key = private_key(&files.key, &pems.key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Versions)?;
    let builder = match (&files.client_ca, &pems.client_ca) {
        (Some(path), Some(pem)) => builder.with_client_cert_verifier(client_verifier(path, pem, provider)?),
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|source| TlsError::Identity {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    })?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(config)
}

/// The current server configuration, replaced when the files change.
pub struct ReloadableTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    /// Fingerprint of the last state of the files acted upon (loaded, or refused and logged).
    seen: Mutex<u64>,
}

impl ReloadableTls {
    /// Loads the files; any problem is an error, so a bad configuration fails start-up.
    pub fn load(files: TlsFiles) -> Result<ReloadableTls, TlsError> {
        let pems = Pems::read(&files)?;
        let config = server_config(&files, &pems)?;
        Ok(ReloadableTls { seen: Mutex::new(fingerprint(&pems)), current: RwLock::new(Arc::new(config)), files })
    }

    /// The files this configuration comes from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The configuration for a new connection.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Re-reads the files and, when they changed since the last call, rebuilds the configuration.
    ///
    /// `Ok(true)`: a new configuration is in use. `Ok(false)`: nothing changed, or the files are in
    /// the same unusable state already reported. `Err`: the files changed into something unusable;
    /// the previous configuration stays in use.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let (state, result) = match Pems::read(&self.files) {
            Ok(pems) => (fingerprint(&pems), Ok(pems)),
            // A missing file (e.g. mid-swap) is a state too: report it once, not every poll.
            Err(e) => (fingerprint(&e.to_string()), Err(e)),
        };
        if state == *seen {
            return Ok(false);
        }
        *seen = state;
        let config = server_config(&self.files, &result?)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        Ok(true)
    }

    /// Polls the files every `every` until `stop` turns true, logging each reload or refusal.
    pub async fn watch(self: Arc<Self>, every: Duration, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = crate::serve::transport::stopped(&mut stop) => return,
            }
            let me = self.clone();
            // File reads block: keep them off the async workers.
            match tokio::task::spawn_blocking(move || me.reload()).await {
                Ok(Ok(true)) => info!(cert = %self.files.cert.display(), "TLS certificate reloaded; new connections use it"),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => error!(error = %e, "TLS files changed but cannot be used; still serving the previous certificate"),
                Err(e) => error!(error = %e, "TLS reload task failed"),
            }
        }
    }
}

/// Accepts TCP connections on `listener` and yields them once their TLS handshake is done, each
/// with the configuration current when it was accepted. Stops (closing the port) when the stream
/// is dropped, which tonic does as soon as it stops accepting.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ReloadableTls>,
    handshake_timeout: Duration,
) -> ReceiverStream<Result<TlsStream<TcpStream>, io::Error>> {
    let (tx, rx) = mpsc::channel(READY_QUEUE);
    tokio::spawn(accept_loop(listener, tls, handshake_timeout, tx));
    ReceiverStream::new(rx)
}

type Ready = mpsc::Sender<Result<TlsStream<TcpStream>, io::Error>>;

async fn accept_loop(listener: TcpListener, tls: Arc<ReloadableTls>, handshake_timeout: Duration, ready: Ready) {
    loop {
        let accepted = tokio::select! {
            _ = ready.closed() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, peer)) => {
                crate::serve::transport::no_delay(&tcp);
                tokio::spawn(handshake(TlsAcceptor::from(tls.current()), tcp, peer, handshake_timeout, ready.clone()));
            }
            Err(e) => {
                // E.g. out of file descriptors: back off a little instead of spinning.
                warn!(error = %e, "gRPC: accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handshake(acceptor: TlsAcceptor, tcp: TcpStream, peer: SocketAddr, timeout: Duration, ready: Ready) {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            // Fails only when the server stopped accepting: the connection is just dropped.
            let _ = ready.send(Ok(stream)).await;
        }
        Ok(Err(e)) => log_refused(peer, &e),
        Err(_) => debug!(%peer, ?timeout, "TLS handshake timed out"),
    }
}

/// Certificate problems are worth an operator's attention (a misconfigured KEDA
/// TriggerAuthentication); anything else (probes, scanners, resets) is noise.
fn log_refused(peer: SocketAddr, e: &io::Error) {
    let tls = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(
            rustls::Error::NoCertificatesPresented
            | rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoApplicationProtocol
            | rustls::Error::AlertReceived(_),
        ) => warn!(%peer, error = %e, "TLS handshake refused"),
        _ => debug!(%peer, error = %e, "TLS handshake failed"),
    }
}

#![allow(dead_code)] // each test binary uses part of it
//! A real `redis-server` per test, on a free loopback port, started and stopped by the test.
//!
//! The binary comes from `scripts/redis/install.sh` (Debian's redis-server 7.0, installed once
//! with apt-get when missing). Each server runs in its own temporary directory, without
//! persistence, and is killed when dropped; [`RedisServer::restart`] starts it again on the same
//! port (empty, as after a crash without persistence).

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// Path of a redis-server >= 7, installing it on first use.
pub fn redis_server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/redis/install.sh");
        let out = Command::new("bash").arg(&script).env_remove("OUT_DIR").output().expect("run scripts/redis/install.sh");
        assert!(
            out.status.success(),
            "scripts/redis/install.sh failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// One running redis-server.
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    password: Option<String>,
    /// With TLS: the CA (PEM) that issued the server's certificate.
    tls_ca: Option<String>,
    dir: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl RedisServer {
    /// A server without a password.
    pub fn start() -> RedisServer {
        Self::launch(free_port(), None)
    }

    /// A server requiring `password` (`requirepass`).
    pub fn with_password(password: &str) -> RedisServer {
        Self::launch(free_port(), Some(password.to_string()))
    }

    /// A server speaking TLS only, with a certificate for 127.0.0.1 issued by a CA of its own
    /// ([`RedisServer::ca_pem`]).
    pub fn with_tls() -> RedisServer {
        let port = free_port();
        let dir = Self::dir(port);
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "redis test CA");
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("leaf params");
        let leaf = leaf.signed_by(&leaf_key, &issuer).expect("leaf cert");
        std::fs::write(dir.join("tls.crt"), leaf.pem()).expect("write cert");
        std::fs::write(dir.join("tls.key"), leaf_key.serialize_pem()).expect("write key");
        let mut s = RedisServer { child: None, port, password: None, tls_ca: Some(ca_cert.pem()), dir };
        s.spawn();
        s
    }

    /// The CA of a [`RedisServer::with_tls`] server.
    pub fn ca_pem(&self) -> &str {
        self.tls_ca.as_deref().expect("a TLS server")
    }

    fn dir(port: u16) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("llm-scaler-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        dir
    }

    fn launch(port: u16, password: Option<String>) -> RedisServer {
        let mut s = RedisServer { child: None, port, password, tls_ca: None, dir: Self::dir(port) };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(redis_server_bin());
        let port = self.port.to_string();
        if self.tls_ca.is_some() {
            cmd.args(["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(self.dir.join("tls.crt"))
                .arg("--tls-key-file")
                .arg(self.dir.join("tls.key"));
        } else {
            cmd.args(["--port", &port]);
        }
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        self.child = Some(cmd.spawn().expect("start redis-server"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            assert!(Instant::now() < deadline, "redis-server on port {} did not answer PING within 10 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        if self.tls_ca.is_some() {
            // Listening is enough: the tests speak TLS through the scaler.
            return true;
        }
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let auth = self.password.as_ref().map(|p| format!("AUTH {p}\r\n")).unwrap_or_default();
        if s.write_all(format!("{auth}PING\r\n").as_bytes()).is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        let mut got = String::new();
        while !got.contains("PONG") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        true
    }

    /// `host:port` for the `address` key.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A client connection for setting the test's data up.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        let auth = self.password.as_ref().map(|p| format!(":{p}@")).unwrap_or_default();
        let client = match &self.tls_ca {
            // The test's own set-up connection trusts the CA of the server it started.
            Some(ca) => redis::Client::build_with_tls(
                format!("rediss://127.0.0.1:{}/", self.port),
                redis::TlsCertificates { client_tls: None, root_cert: Some(ca.clone().into_bytes()) },
            )
            .expect("TLS client"),
            None => redis::Client::open(format!("redis://{auth}127.0.0.1:{}/", self.port)).expect("client"),
        };
        client.get_multiplexed_async_connection().await.expect("connect to the test's redis")
    }

    /// Kills the server (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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

    fn launch(port: u16, password: Option<String>) -> RedisServer {
        let dir = std::env::temp_dir().join(format!("llm-scaler-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut s = RedisServer { child: None, port, password, dir };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(redis_server_bin());
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
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
        let client = redis::Client::open(format!("redis://{auth}127.0.0.1:{}/", self.port)).expect("client");
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

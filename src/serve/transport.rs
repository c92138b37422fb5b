//! What both listeners (plaintext and TLS) and every long-lived task need from the transport:
//! socket options on accepted connections, and one way to wait for shutdown.

use tokio::sync::watch;
use tracing::warn;

/// Small gRPC frames must leave at once: `serve_with_incoming` leaves socket options to us, and
/// without TCP_NODELAY Nagle's algorithm holds small responses behind the client's delayed ACKs
/// (measured: p99 1.8 ms, max 49 ms, instead of 0.5 ms).
pub(crate) fn no_delay(tcp: &tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        warn!(error = %e, "cannot set TCP_NODELAY on a gRPC connection");
    }
}

/// Resolves once shutdown has started (the flag is true, or its sender is gone). Not
/// `watch::Receiver::wait_for`: its guard is not `Send`, and these futures run in spawned tasks.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

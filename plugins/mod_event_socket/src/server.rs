//! The inbound listener: accepts, applies the ACL and the connection limit,
//! and hands each client to a connection task; at unload, stops accepting
//! and waits (bounded) for every connection to say goodbye.

use crate::connection::{self, Origin};
use crate::frames;
use crate::service::Service;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// How long connections get to close at unload (the host waits 5 s for the
/// whole runtime).
const CLOSE_GRACE: Duration = Duration::from_millis(3500);

/// Serves until the service's shutdown flag is raised.
pub async fn serve(listener: std::net::TcpListener, service: Arc<Service>) {
    let mut shutdown = service.shutdown.subscribe();
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => Some(l),
        Err(e) => {
            log::error!("event socket cannot use its listening socket: {e}");
            None
        }
    };
    if let Some(listener) = listener {
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                r = listener.accept() => match r {
                    Ok((stream, peer)) => admit(stream, peer, &service),
                    Err(e) => {
                        // Out of descriptors, most likely: let some close.
                        log::warn!("event socket accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }
    // Connections saw the flag too; wait for their goodbyes.
    let all_closed = async {
        loop {
            let idle = service.idle.notified();
            if service.live.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    };
    if tokio::time::timeout(CLOSE_GRACE, all_closed).await.is_err() {
        log::warn!(
            "{} event socket connection(s) did not close in time",
            service.live.load(Ordering::Acquire)
        );
    }
}

fn admit(stream: TcpStream, peer: std::net::SocketAddr, service: &Arc<Service>) {
    let cfg = &service.config;
    if let Err(acl) = cfg.acl.check(peer.ip()) {
        log::warn!("IP {} rejected by acl \"{acl}\"", peer.ip());
        tokio::spawn(refuse(stream, frames::rude_rejection()));
        return;
    }
    let live = service.live.load(Ordering::Acquire);
    if cfg.max_connections > 0 && live >= cfg.max_connections {
        log::warn!(
            "event socket refused {peer}: max-connections ({}) reached",
            cfg.max_connections
        );
        tokio::spawn(refuse(
            stream,
            frames::disconnect_notice("Too many connections, try again later.\n", None),
        ));
        return;
    }
    let _ = stream.set_nodelay(true);
    let guard = service.enter();
    tokio::spawn(connection::serve(
        stream,
        Origin::Inbound {
            peer: peer.to_string(),
        },
        service.clone(),
        guard,
    ));
}

async fn refuse(mut stream: TcpStream, bytes: Vec<u8>) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

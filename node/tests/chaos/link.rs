//! The userspace TCP relay between a child and its parent: cut, heal, reset.

#![allow(dead_code)]

use super::*;

/// A userspace TCP relay from a listener of its own to a node, following
/// the node to the port it listens on after a restart (a connection made
/// while the node is down is closed at once, as a refused one would be).
/// [`Link::cut`] makes it a black hole in both directions, [`Link::heal`]
/// lets everything held pass again, [`Link::reset`] drops every open
/// connection.
pub(crate) struct Link {
    /// Where the relay listens: the address a child pushes to.
    pub(crate) addr: SocketAddr,
    /// False while cut.
    up: watch::Sender<bool>,
    /// Bumped to drop every open connection.
    reset: watch::Sender<u64>,
    /// The accepting task.
    accept: JoinHandle<()>,
    /// Connections relayed so far.
    pub(crate) connections: Arc<AtomicU64>,
}

impl Link {
    /// A relay to the node `to`.
    pub(crate) async fn to(to: &Proc) -> Link {
        let target = to.target.subscribe();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (up, up_rx) = watch::channel(true);
        let (reset, reset_rx) = watch::channel(0u64);
        let connections = Arc::new(AtomicU64::new(0));
        let count = connections.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(POLL).await;
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                let mut reset = reset_rx.clone();
                reset.borrow_and_update();
                tokio::spawn(relay(inbound, target.clone(), up_rx.clone(), reset));
            }
        });
        Link {
            addr,
            up,
            reset,
            accept,
            connections,
        }
    }

    /// Cuts the link: nothing passes either way, nothing is refused
    /// (connections stay open, new ones are accepted and held), as when the
    /// network between two offices goes dark.
    pub(crate) fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Heals the link: what was held passes, and new connections go
    /// through.
    pub(crate) fn heal(&self) {
        self.up.send_replace(true);
    }

    /// Drops every open connection (both ends see it close).
    pub(crate) fn reset(&self) {
        self.reset.send_modify(|n| *n += 1);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
        // Dropping the senders ends every relay.
    }
}

/// Relays one connection: waits while the link is cut, connects to where
/// the node listens now (closing the connection when it is down), then
/// copies both ways.
async fn relay(
    inbound: TcpStream,
    target: watch::Receiver<Option<SocketAddr>>,
    mut up: watch::Receiver<bool>,
    mut reset: watch::Receiver<u64>,
) {
    tokio::select! {
        r = up.wait_for(|u| *u) => if r.is_err() { return },
        _ = reset.changed() => return,
    }
    let Some(addr) = *target.borrow() else { return };
    let Ok(outbound) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (from_child, to_child) = inbound.into_split();
    let (from_node, to_node) = outbound.into_split();
    tokio::join!(
        pipe(from_child, to_node, up.clone(), reset.clone()),
        pipe(from_node, to_child, up, reset),
    );
}

/// Copies one direction, holding what it read while the link is cut.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut up: watch::Receiver<bool>,
    mut reset: watch::Receiver<u64>,
) {
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = reset.changed() => return,
        };
        tokio::select! {
            r = up.wait_for(|u| *u) => if r.is_err() { return },
            _ = reset.changed() => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

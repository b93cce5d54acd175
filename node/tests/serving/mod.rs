//! A node served in-process, shared by the helpers of the single-node tests
//! (`common`) and of the federation tests (`fed`).

use std::{net::SocketAddr, time::Duration};

use tallytree_node::{Node, NodeError};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// Longest a node may take to stop.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// A node served in-process; stopped gracefully by [`Running::stop`], told
/// to stop when dropped.
pub(crate) struct Running {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    /// Resolves the node's shutdown future.
    stop: Option<oneshot::Sender<()>>,
    /// The serving task.
    task: Option<JoinHandle<Result<(), NodeError>>>,
}

impl Running {
    /// Serves `node` on `listener` in a task.
    pub(crate) fn spawn(node: Node, listener: TcpListener) -> Running {
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(node.run(listener, async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Shuts down gracefully and waits until the node has stopped (and its
    /// store is closed).
    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(STOP_WAIT, task)
                .await
                .expect("node stops in time")
                .expect("node task")
                .expect("node ran without error");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

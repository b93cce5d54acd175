//! `tallytree-node --config FILE`: runs one unit's node.

use std::{io::Read, path::PathBuf};

use anyhow::Context;
use clap::Parser;
use tallytree_node::{
    Node,
    config::{AddressFile, Config},
};
use tracing::info;
use tracing_subscriber::EnvFilter;

/// Runs a tallytree node for one administrative unit.
#[derive(Parser, Debug)]
#[command(name = "tallytree-node", version, about)]
struct Args {
    /// The node's TOML configuration.
    #[arg(long, short, required_unless_present = "print_default_config")]
    config: Option<PathBuf>,
    /// Print a complete example configuration and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Stop, as on SIGTERM, when standard input reaches its end: a
    /// supervisor holding the other end of a pipe takes the node down with
    /// it however the supervisor ends, even by SIGKILL.
    #[arg(long)]
    stop_when_stdin_closes: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.print_default_config {
        print!("{}", Config::example().to_toml());
        return Ok(());
    }
    let path = args.config.context("--config is required")?;
    let config = Config::load(&path)?;
    let filter = EnvFilter::try_from_env("TALLYTREE_LOG")
        .or_else(|_| EnvFilter::try_new(&config.log))
        .context("log: not a valid filter")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let stdin_watch = args.stop_when_stdin_closes;
    runtime.block_on(async move {
        let listen = config.listen;
        let console_listen = config.console.listen;
        let data_dir = config.data_dir.clone();
        let address_file = config.address_file();
        let node = Node::open(config)?;
        // One left by a node that did not stop cleanly names a port this
        // node does not hold.
        address_file
            .remove()
            .with_context(|| format!("removing {}", address_file.path().display()))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listen: cannot bind {listen}"))?;
        let bound = listener.local_addr().context("listen: no local address")?;
        address_file
            .write(bound)
            .with_context(|| format!("writing {}", address_file.path().display()))?;
        info!(addr = %bound, file = %address_file.path().display(), "listening");
        let console_file = AddressFile::console_in_data_dir(&data_dir);
        let console = match console_listen {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("console.listen: cannot bind {addr}"))?;
                let bound = l.local_addr().context("console.listen: no local address")?;
                console_file
                    .write(bound)
                    .with_context(|| format!("writing {}", console_file.path().display()))?;
                info!(addr = %bound, file = %console_file.path().display(), "console listening");
                Some(l)
            }
            None => None,
        };
        let served = node
            .serve(listener, console, shutdown_signal(stdin_watch))
            .await;
        let _ = address_file.remove();
        let _ = console_file.remove();
        served?;
        Ok(())
    })
}

/// Resolves on SIGINT, SIGTERM or SIGHUP, or, when `stdin_watch` is set, at
/// the end of standard input.
async fn shutdown_signal(stdin_watch: bool) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let unix_signal = |kind: tokio::signal::unix::SignalKind| async move {
        match tokio::signal::unix::signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(unix)]
    let (term, hup) = (
        unix_signal(tokio::signal::unix::SignalKind::terminate()),
        unix_signal(tokio::signal::unix::SignalKind::hangup()),
    );
    #[cfg(not(unix))]
    let (term, hup) = (std::future::pending::<()>(), std::future::pending::<()>());
    let stdin = async {
        if stdin_watch {
            stdin_closed().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = ctrl_c => info!("SIGINT: shutting down"),
        _ = term => info!("SIGTERM: shutting down"),
        _ = hup => info!("SIGHUP: shutting down"),
        _ = stdin => info!("standard input closed: shutting down"),
    }
}

/// Resolves once standard input reaches its end or fails. A plain thread
/// reads it, not the runtime's blocking pool: a read that never returns
/// would hold the runtime's shutdown.
async fn stdin_closed() {
    let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 64];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = closed.send(());
        });
    if spawned.is_err() {
        // Without the thread there is nothing to watch; the signals remain.
        std::future::pending::<()>().await;
    }
    let _ = on_close.await;
}

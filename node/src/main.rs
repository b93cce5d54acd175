//! `tallytree-node --config FILE`: runs one unit's node.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use tallytree_node::{Node, config::Config};
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
    runtime.block_on(async move {
        let listen = config.listen;
        let node = Node::open(config)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listen: cannot bind {listen}"))?;
        node.run(listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => info!("SIGINT: shutting down"),
        _ = term => info!("SIGTERM: shutting down"),
    }
}

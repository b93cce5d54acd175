//! The demo's node processes: configs, start, health, enrolment, stop.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context, Result, bail};
use tallytree_proto::pb::{self, enrolments_client::EnrolmentsClient, intake_client::IntakeClient};
use tokio::process::{Child, Command};

use super::tree::Unit;
use crate::{
    conn::Conn,
    init::{InitArgs, init},
};

/// One running node.
pub struct Node {
    /// The unit it serves.
    pub unit: Unit,
    /// Its gRPC URL.
    pub url: String,
    /// Its operator token.
    token: String,
    /// Its public key.
    public_key: tallytree_proto::PublicKey,
    /// The process.
    child: Child,
}

/// All the demo's nodes, parents first.
pub struct Federation {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Year range label for hints.
    year: String,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Node {
    fn conn(&self) -> Conn {
        Conn {
            node: Some(self.url.clone()),
            token: Some(self.token.clone()),
            config: None,
        }
    }

    /// Records cases and tasks in one call each.
    pub async fn record(&self, cases: Vec<pb::Case>, tasks: Vec<pb::Task>) -> Result<()> {
        let mut client = IntakeClient::new(self.conn().connect().await?);
        if !cases.is_empty() {
            client
                .record_cases(pb::RecordCasesRequest { cases })
                .await
                .with_context(|| format!("recording at {}", self.unit.name))?;
        }
        if !tasks.is_empty() {
            client
                .record_tasks(pb::RecordTasksRequest { tasks })
                .await
                .with_context(|| format!("recording at {}", self.unit.name))?;
        }
        Ok(())
    }
}

impl Federation {
    /// Writes every unit's key and config and starts its node.
    pub async fn start(bin_dir: &Path, dir: &Path, units: &[Unit]) -> Result<Federation> {
        let bin = bin_dir.join("tallytree-node");
        if !bin.exists() {
            bail!(
                "{} not found: build it (cargo build --release) or pass --bin-dir",
                bin.display()
            );
        }
        std::fs::create_dir_all(dir.join("logs"))?;
        let mut ports = std::collections::HashMap::new();
        for u in units {
            ports.insert(u.code, free_port()?);
        }
        let mut nodes = Vec::with_capacity(units.len());
        for u in units {
            let port = ports[&u.code];
            let parent = u
                .code
                .parent()
                .and_then(|p| ports.get(&p))
                .map(|p| format!("http://127.0.0.1:{p}"));
            let config = init(&InitArgs {
                code: u.code,
                name: u.name.clone(),
                dir: dir.join(u.code.to_string()),
                listen: ([127, 0, 0, 1], port).into(),
                token: None,
                parent,
            })?;
            let loaded = tallytree_node::config::Config::load(&config)?;
            let key = tallytree_proto::SigningKey::load(&loaded.key_file)?;
            let log = std::fs::File::create(dir.join("logs").join(format!("{}.log", u.code)))?;
            let child = Command::new(&bin)
                .arg("--config")
                .arg(&config)
                .env("TALLYTREE_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            nodes.push(Node {
                unit: u.clone(),
                url: format!("http://127.0.0.1:{port}"),
                token: loaded.operator_token,
                public_key: key.public_key(),
                child,
            });
        }
        for n in &nodes {
            wait_ready(&n.url)
                .await
                .with_context(|| format!("{} ({}) did not start", n.unit.name, n.unit.code))?;
        }
        println!("started {} nodes on 127.0.0.1", nodes.len());
        let year = chrono::Utc::now().format("%Y").to_string();
        Ok(Federation { nodes, year })
    }

    /// A connection to node `i`.
    pub fn conn(&self, i: usize) -> Conn {
        self.nodes[i].conn()
    }

    /// A period hint for printed commands.
    pub fn year_range(&self) -> &str {
        &self.year
    }

    /// Enrols every unit with its parent and installs the enrolment.
    pub async fn enrol_all(&self) -> Result<()> {
        for child in &self.nodes[1..] {
            let Some(parent_code) = child.unit.code.parent() else {
                continue;
            };
            let parent = self
                .nodes
                .iter()
                .find(|n| n.unit.code == parent_code)
                .context("parent of a demo unit missing")?;
            let mut at_parent = EnrolmentsClient::new(parent.conn().connect().await?);
            let response = at_parent
                .enrol(pb::EnrolRequest {
                    region: child.unit.code.to_string(),
                    name: child.unit.name.clone(),
                    public_key: child.public_key.0.to_vec(),
                })
                .await?
                .into_inner();
            let mut at_child = EnrolmentsClient::new(child.conn().connect().await?);
            at_child
                .install(pb::InstallRequest {
                    enrolment: response.enrolment,
                    parent_public_key: response.parent_public_key,
                })
                .await?;
        }
        Ok(())
    }

    /// Stops every node with SIGTERM, children first; true when all exit 0.
    pub async fn stop(&mut self) -> bool {
        let mut clean = true;
        for n in self.nodes.iter_mut().rev() {
            if let Some(pid) = n.child.id() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status()
                    .await;
            }
        }
        for n in self.nodes.iter_mut() {
            match tokio::time::timeout(Duration::from_secs(15), n.child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                _ => {
                    clean = false;
                    let _ = n.child.kill().await;
                }
            }
        }
        clean
    }
}

/// Waits until the node answers gRPC health.
async fn wait_ready(url: &str) -> Result<()> {
    for _ in 0..200 {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(url.to_owned())?
            .connect()
            .await
        {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let ok = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .is_ok_and(|r| {
                    r.into_inner().status
                        == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
                });
            if ok {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("no answer from {url} after 10 s")
}

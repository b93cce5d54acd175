//! The demo's node processes: configs, a top-down start on ports the nodes
//! bind themselves, an identity check before a node is used, enrolment, and
//! stop.
//!
//! Every node is configured with `listen = "127.0.0.1:0"`: the system picks
//! a free port as the node binds, and the node reports it in its
//! [`AddressFile`]. No two nodes can hold the same port, and no port is
//! chosen by one process for another to bind later. A child's config names
//! its parent's address, so the tree starts top-down, level by level, the
//! nodes of one level at once. Before the demo uses a node it asks the
//! address who answers there (`Node.Identity`) and refuses anything but the
//! unit and key it started.
//!
//! Each node watches its standard input, a pipe whose other end only the
//! demo holds: the demo stops a node by closing it, and when the demo ends
//! in any other way (an error, a signal, SIGKILL) the system closes it, so
//! no node outlives the demo.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tallytree_node::config::{AddressFile, Config};
use tallytree_proto::{
    PublicKey, RegionCode,
    pb::{
        self, enrolments_client::EnrolmentsClient, intake_client::IntakeClient,
        node_client::NodeClient,
    },
};
use tokio::{
    process::{Child, ChildStdin, Command},
    time::Instant,
};

use super::tree::Unit;
use crate::{
    conn::Conn,
    enrol::ChildKeys,
    init::{InitArgs, init},
};

/// Longest a node may take from its start to answering as its unit.
const START_LIMIT: Duration = Duration::from_secs(60);
/// Longest a node may take to stop once told to.
const STOP_LIMIT: Duration = Duration::from_secs(15);
/// Pause between two looks while a node starts.
const POLL: Duration = Duration::from_millis(20);

/// One running node, checked to be the unit it was started for.
pub struct Node {
    /// The unit it serves.
    pub unit: Unit,
    /// Its gRPC URL.
    pub url: String,
    /// Its CA certificate file.
    ca_file: PathBuf,
    /// Its operator token.
    token: String,
    /// Its public key and TLS certificate request, for its parent.
    keys: ChildKeys,
    /// Its process id.
    pub pid: u32,
    /// Its configuration (data directory, credentials file).
    pub config: Config,
}

/// A node process the demo started, running or not.
struct Process {
    /// The unit it was started for.
    unit: Unit,
    /// Its configuration (data directory, CA).
    config: Config,
    /// Its operator token.
    token: String,
    /// The unit's public key (which the node must answer with) and TLS
    /// certificate request.
    keys: ChildKeys,
    /// The process.
    child: Child,
    /// The write end of the node's standard input. Closing it stops the
    /// node; the system closes it if the demo dies.
    lifeline: Option<ChildStdin>,
    /// Its log file.
    log: PathBuf,
}

/// All the demo's nodes, parents first.
pub struct Federation {
    /// The nodes started and checked so far.
    pub nodes: Vec<Node>,
    /// Every process started, in start order, to stop them all whatever
    /// happened.
    processes: Vec<Process>,
    /// The tallytree-node binary.
    bin: PathBuf,
    /// Where the units' directories and the logs go.
    dir: PathBuf,
    /// Year range label for hints.
    year: String,
}

impl Node {
    fn conn(&self) -> Conn {
        Conn {
            node: Some(self.url.clone()),
            ca_file: Some(self.ca_file.clone()),
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

impl Process {
    /// Waits until the node has reported its address and answers there as
    /// its unit; fails at once if it exits or someone else answers.
    async fn wait_ready(&mut self) -> Result<Node> {
        let file = self.config.address_file();
        let deadline = Instant::now() + START_LIMIT;
        let what = || format!("{} ({})", self.unit.name, self.unit.code);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before serving; see {}",
                    what(),
                    self.log.display()
                );
            }
            let ca = std::fs::read_to_string(&self.config.tls.ca_file)
                .with_context(|| format!("{}", self.config.tls.ca_file.display()))?;
            if let Some(addr) = ready_at(&file, self.unit.code, &self.keys.key, Some(&ca))
                .await
                .with_context(what)?
            {
                return Ok(Node {
                    unit: self.unit.clone(),
                    url: format!("https://{addr}"),
                    ca_file: self.config.tls.ca_file.clone(),
                    token: self.token.clone(),
                    keys: self.keys.clone(),
                    pid: self.child.id().unwrap_or_default(),
                    config: self.config.clone(),
                });
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not serving after {} s; see {}",
                    what(),
                    START_LIMIT.as_secs(),
                    self.log.display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Where the node reporting in `file` serves, once it answers there as
/// `code` with `key` (over TLS verified by `ca_pem`, the unit's own CA,
/// when given): `None` while it has not reported or does not answer yet,
/// an error when the node answering is another unit or has another key.
pub async fn ready_at(
    file: &AddressFile,
    code: RegionCode,
    key: &PublicKey,
    ca_pem: Option<&str>,
) -> Result<Option<SocketAddr>> {
    let Some(addr) = file
        .read()
        .with_context(|| format!("reading {}", file.path().display()))?
    else {
        return Ok(None);
    };
    let url = format!(
        "{}://{addr}",
        if ca_pem.is_some() { "https" } else { "http" }
    );
    let Some(found) = identity(&url, ca_pem).await? else {
        return Ok(None);
    };
    let key_id = key.key_id();
    if found.region != code.to_string() || found.key_id != key_id {
        bail!(
            "the node at {url} is {} ({}, key {}), not {code} (key {})",
            found.region,
            found.name,
            short(&found.key_id),
            short(&key_id)
        );
    }
    Ok(Some(addr))
}

/// Who the node at `url` says it is; `None` while nothing answers, an
/// error when what answers shows a certificate the unit's CA did not issue.
async fn identity(url: &str, ca_pem: Option<&str>) -> Result<Option<pb::IdentityResponse>> {
    let mut endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5));
    if let Some(ca) = ca_pem {
        endpoint = endpoint.tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(ca)),
        )?;
    }
    let channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => {
            let chain = format!("{:?}", anyhow::Error::from(e));
            if chain.contains("certificate") || chain.contains("UnknownIssuer") {
                bail!(
                    "the node at {url} is not the one started: its TLS certificate is not from the unit's CA ({chain})"
                );
            }
            return Ok(None);
        }
    };
    Ok(NodeClient::new(channel)
        .identity(pb::IdentityRequest {})
        .await
        .ok()
        .map(tonic::Response::into_inner))
}

/// A key id's first 16 hex digits, enough to tell keys apart in a message.
fn short(key_id: &str) -> &str {
    key_id.get(..16).unwrap_or(key_id)
}

impl Federation {
    /// A federation with no node yet, of `bin_dir`'s tallytree-node, its
    /// files in `dir`.
    pub fn new(bin_dir: &Path, dir: &Path) -> Result<Federation> {
        let bin = bin_dir.join("tallytree-node");
        if !bin.exists() {
            bail!(
                "{} not found: build it (cargo build --release) or pass --bin-dir",
                bin.display()
            );
        }
        std::fs::create_dir_all(dir.join("logs"))
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        Ok(Federation {
            nodes: Vec::new(),
            processes: Vec::new(),
            bin,
            dir: dir.to_owned(),
            year: chrono::Utc::now().format("%Y").to_string(),
        })
    }

    /// Writes every unit's key and config and starts its node, top-down:
    /// each level once the level above answers, since a child's config
    /// names its parent's address. `units` come parents first.
    pub async fn start(&mut self, units: &[Unit]) -> Result<()> {
        let mut rest = units;
        while let Some(first) = rest.first() {
            let level = first.code.level();
            let n = rest.iter().take_while(|u| u.code.level() == level).count();
            let (these, below) = rest.split_at(n);
            let from = self.processes.len();
            for u in these {
                let process = self.spawn(u)?;
                self.processes.push(process);
            }
            let ready = futures::future::try_join_all(self.processes[from..].iter_mut().map(|p| {
                // Each future borrows one process only.
                p.wait_ready()
            }))
            .await?;
            self.nodes.extend(ready);
            rest = below;
        }
        self.write_node_list()?;
        println!(
            "started {} nodes on 127.0.0.1, each on a port it bound itself (addresses and pids in {})",
            self.nodes.len(),
            self.node_list().display()
        );
        Ok(())
    }

    /// Writes `unit`'s key and config (its parent's address from the running
    /// parent) and starts its node.
    fn spawn(&self, u: &Unit) -> Result<Process> {
        let parent = match u.code.parent() {
            None => None,
            Some(p) => Some(
                self.nodes
                    .iter()
                    .find(|n| n.unit.code == p)
                    .with_context(|| format!("the parent of {} is not running", u.code))?
                    .url
                    .clone(),
            ),
        };
        let dir = self.dir.join(u.code.to_string());
        let made = init(&InitArgs {
            code: u.code,
            name: u.name.clone(),
            dir: dir.clone(),
            listen: ([127, 0, 0, 1], 0).into(),
            operator_name: "operator".into(),
            parent,
            server_names: Vec::new(),
            plaintext: false,
            console: None,
        })?;
        let config_path = made.config;
        let config = Config::load(&config_path)?;
        let keys = ChildKeys::load(&dir.join("node.pub"))?;
        let log = self.dir.join("logs").join(format!("{}.log", u.code));
        let log_file = std::fs::File::create(&log).with_context(|| format!("{}", log.display()))?;
        let mut command = Command::new(&self.bin);
        command
            .arg("--config")
            .arg(&config_path)
            .arg("--stop-when-stdin-closes")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log_file);
        // Overrides from the caller's shell (TALLYTREE_LISTEN, ...) would
        // give every node the same setting.
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("TALLYTREE_") {
                command.env_remove(var);
            }
        }
        let mut child = command
            .env("TALLYTREE_LOG", "info")
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let lifeline = child.stdin.take();
        Ok(Process {
            unit: u.clone(),
            config,
            token: made.operator_token,
            keys,
            child,
            lifeline,
            log,
        })
    }

    /// Enrols a unit below `parent` that never reports: its keys and
    /// request are made as for any unit, but no node runs for it, so the
    /// completeness view has someone to chase.
    pub async fn enrol_silent(&self, parent: usize, code: RegionCode, name: &str) -> Result<()> {
        let dir = self.dir.join(code.to_string());
        init(&InitArgs {
            code,
            name: name.into(),
            dir: dir.clone(),
            listen: ([127, 0, 0, 1], 0).into(),
            operator_name: "operator".into(),
            parent: Some(self.nodes[parent].url.clone()),
            server_names: Vec::new(),
            plaintext: false,
            console: None,
        })?;
        let keys = ChildKeys::load(&dir.join("node.pub"))?;
        let mut at_parent = EnrolmentsClient::new(self.nodes[parent].conn().connect().await?);
        at_parent
            .enrol(pb::EnrolRequest {
                region: code.to_string(),
                name: name.into(),
                public_key: keys.key.0.to_vec(),
                tls_csr: keys.tls_csr.clone(),
            })
            .await?;
        Ok(())
    }

    /// The web console of node `i`: its URL, from the address the node
    /// reported.
    pub fn console_url(&self, i: usize) -> Result<String> {
        let file = AddressFile::console_in_data_dir(&self.nodes[i].config.data_dir);
        let addr = file
            .read()?
            .with_context(|| format!("{}: no console address", file.path().display()))?;
        Ok(format!("https://{addr}/"))
    }

    /// The file listing every node's code, name, URL and pid.
    pub fn node_list(&self) -> PathBuf {
        self.dir.join("nodes.tsv")
    }

    fn write_node_list(&self) -> Result<()> {
        let mut text = String::from("code\tname\turl\tpid\tconsole\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let console = self.console_url(i).unwrap_or_default();
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{console}\n",
                n.unit.code, n.unit.name, n.url, n.pid
            ));
        }
        std::fs::write(self.node_list(), text)
            .with_context(|| format!("writing {}", self.node_list().display()))
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
        for child in self.nodes.iter().skip(1) {
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
                    public_key: child.keys.key.0.to_vec(),
                    tls_csr: child.keys.tls_csr.clone(),
                })
                .await?
                .into_inner();
            let mut at_child = EnrolmentsClient::new(child.conn().connect().await?);
            at_child
                .install(pb::InstallRequest {
                    enrolment: response.enrolment,
                    parent_public_key: response.parent_public_key,
                    client_certificate: response.client_certificate,
                    parent_ca_certificate: response.parent_ca_certificate,
                })
                .await?;
        }
        Ok(())
    }

    /// Stops every node the demo started, children first, by closing its
    /// standard input; kills one that has not stopped after
    /// `STOP_LIMIT`. True when every node exited 0.
    pub async fn stop(&mut self) -> bool {
        for p in self.processes.iter_mut().rev() {
            p.lifeline.take();
        }
        let mut clean = true;
        for p in self.processes.iter_mut() {
            match tokio::time::timeout(STOP_LIMIT, p.child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                outcome => {
                    clean = false;
                    eprintln!(
                        "{} ({}) did not stop cleanly ({}); see {}",
                        p.unit.name,
                        p.unit.code,
                        match outcome {
                            Ok(Ok(status)) => status.to_string(),
                            Ok(Err(e)) => e.to_string(),
                            Err(_) => format!("still running after {} s", STOP_LIMIT.as_secs()),
                        },
                        p.log.display()
                    );
                    let _ = p.child.kill().await;
                }
            }
        }
        self.processes.clear();
        clean
    }

    /// How many node processes the demo started.
    pub fn started(&self) -> usize {
        self.processes.len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tallytree_node::{access::Access, store::MemStore, tls::material::Authority};
    use tallytree_proto::SigningKey;

    use super::*;

    /// A node of `code` served in-process on a listener it holds (its
    /// files made by `init`, its store in memory); its address, key and CA.
    async fn serve(code: &str, dir: &Path) -> (SocketAddr, PublicKey, String) {
        let made = init(&InitArgs {
            code: RegionCode::parse(code).expect("code"),
            name: "单位".into(),
            dir: dir.join(code),
            listen: ([127, 0, 0, 1], 0).into(),
            operator_name: "operator".into(),
            parent: None,
            server_names: Vec::new(),
            plaintext: false,
            console: None,
        })
        .expect("init");
        let config = Config::load(&made.config).expect("config");
        let key = SigningKey::load(&config.key_file).expect("key");
        let public_key = key.public_key();
        let ca =
            Arc::new(Authority::load(&config.tls.ca_key_file, &config.tls.ca_file).expect("CA"));
        let ca_pem = ca.cert_pem().to_owned();
        let access = Arc::new(Access::open(&config.access).expect("credentials"));
        let node = tallytree_node::Node::with_store(
            config,
            key,
            None,
            Arc::new(MemStore::new()),
            ca,
            access,
        )
        .expect("node");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(node.run(listener, std::future::pending()));
        (addr, public_key, ca_pem)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_accepts_the_unit_started_and_refuses_any_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let district = RegionCode::parse("210214000000").expect("code");
        let (district_addr, district_key, ca) = serve("210214000000", dir.path()).await;
        let (city_addr, _, _) = serve("210200000000", dir.path()).await;
        let file = AddressFile::in_data_dir(dir.path());
        let ca = Some(ca.as_str());

        // Nothing reported yet: not ready, no error.
        let none = ready_at(&file, district, &district_key, ca)
            .await
            .expect("ok");
        assert_eq!(none, None);

        file.write(district_addr).expect("written");
        let ready = loop {
            if let Some(addr) = ready_at(&file, district, &district_key, ca)
                .await
                .expect("the district answers as itself")
            {
                break addr;
            }
            tokio::time::sleep(POLL).await;
        };
        assert_eq!(ready, district_addr);

        // The same unit with another key is not the node started.
        let other_key = SigningKey::generate().expect("key").0.public_key();
        let err = ready_at(&file, district, &other_key, ca)
            .await
            .expect_err("another key");
        assert!(err.to_string().contains("not 210214000000"), "{err:#}");

        // Another unit's node at the reported address is refused: its
        // certificate is not from the district's CA.
        file.write(city_addr).expect("written");
        let err = loop {
            match ready_at(&file, district, &district_key, ca).await {
                Ok(None) => tokio::time::sleep(POLL).await,
                Ok(Some(addr)) => panic!("accepted the city's node at {addr}"),
                Err(e) => break e,
            }
        };
        let msg = err.to_string();
        assert!(msg.contains("not the one started"), "{msg}");
    }
}

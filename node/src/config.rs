//! The node's configuration: one TOML file, unknown fields refused, every
//! field overridable from the environment (`TALLYTREE_<FIELD>`).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tallytree_proto::RegionCode;

/// Everything a node needs to run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The unit's 12-digit region code.
    pub region: RegionCode,
    /// The unit's Chinese name, e.g. 普兰店区.
    pub name: String,
    /// RocksDB directory; relative paths are relative to the config file.
    pub data_dir: PathBuf,
    /// The unit's Ed25519 private key (PKCS#8 PEM); relative to the config file.
    pub key_file: PathBuf,
    /// Address the gRPC server listens on; port 0 lets the system pick a
    /// free port, which the running node reports in its [`AddressFile`].
    pub listen: SocketAddr,
    /// Offset of the unit's time zone from UTC, in hours; fixes "today".
    #[serde(default = "default_utc_offset")]
    pub utc_offset_hours: i32,
    /// Log filter (tracing-subscriber syntax), e.g. "info" or "tallytree_node=debug".
    #[serde(default = "default_log")]
    pub log: String,
    /// Intake settings.
    #[serde(default)]
    pub intake: IntakeConfig,
    /// Summary signing settings.
    #[serde(default)]
    pub signer: SignerConfig,
    /// Where and how to push summaries up.
    #[serde(default)]
    pub parent: ParentConfig,
    /// Limits on what children submit.
    #[serde(default)]
    pub federation: FederationConfig,
    /// Transport security: this unit's TLS key, its CA, the names of its
    /// server.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Who may call what: the credentials file, open publishing.
    #[serde(default)]
    pub access: AccessConfig,
    /// What the node serves at once, and how often one party may write.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// Overload and abuse limits. A call beyond a concurrency limit is shed at
/// once with RESOURCE_EXHAUSTED (callers back off and retry); a party over
/// its rate too.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Calls in progress at the node, all services together.
    pub max_concurrent_calls: usize,
    /// Submissions from children being read and verified at once (each may
    /// be up to `federation.max_submission_bytes`).
    pub max_concurrent_submissions: usize,
    /// Calls in progress on one connection.
    pub max_concurrent_calls_per_connection: usize,
    /// HTTP/2 streams one connection may open at once.
    pub max_streams_per_connection: u32,
    /// Largest header block of a call (bytes).
    pub max_header_bytes: u32,
    /// Streams a client may reset before the server answers them, per
    /// connection (the HTTP/2 rapid-reset attack).
    pub max_pending_resets: usize,
    /// A call's handler not done in this time is cancelled (ms).
    pub request_timeout_ms: u64,
    /// HTTP/2 ping interval on idle connections (ms); a peer that does not
    /// answer within `keepalive_timeout_ms` is dropped.
    pub keepalive_interval_ms: u64,
    /// See `keepalive_interval_ms` (ms).
    pub keepalive_timeout_ms: u64,
    /// Submit calls a second one child may make, sustained.
    pub submit_per_second: u32,
    /// Submit calls one child may make at once.
    pub submit_burst: u32,
    /// Intake calls a second one credential may make, sustained.
    pub intake_per_second: u32,
    /// Intake calls one credential may make at once.
    pub intake_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_concurrent_calls: 256,
            max_concurrent_submissions: 16,
            max_concurrent_calls_per_connection: 64,
            max_streams_per_connection: 128,
            max_header_bytes: 16 << 10,
            max_pending_resets: 32,
            request_timeout_ms: 600_000,
            keepalive_interval_ms: 30_000,
            keepalive_timeout_ms: 20_000,
            submit_per_second: 50,
            submit_burst: 200,
            intake_per_second: 100,
            intake_burst: 400,
        }
    }
}

/// Transport security. TLS is always on, except with `plaintext = true`,
/// which is refused unless the node listens on a loopback address.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Serve and push without TLS: only for trying things on one machine;
    /// refused unless `listen` is a loopback address.
    pub plaintext: bool,
    /// This unit's TLS key (ECDSA P-256, PKCS#8 PEM); its enrolment binds it
    /// and its client certificate carries it.
    pub key_file: PathBuf,
    /// The key of this unit's CA, which issues its children's and its own
    /// server's certificates.
    pub ca_key_file: PathBuf,
    /// This unit's CA certificate: what clients of this node trust.
    pub ca_file: PathBuf,
    /// Host names and IP addresses clients reach this node by, beyond
    /// localhost and the loopback addresses (which the server certificate
    /// always names, with `<code>.node.tallytree` and a specific `listen`
    /// address).
    pub server_names: Vec<String>,
    /// A TLS handshake not finished in this time is dropped (ms).
    pub handshake_timeout_ms: u64,
    /// At most this many TLS handshakes at once.
    pub max_handshakes: usize,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            plaintext: false,
            key_file: "tls.key".into(),
            ca_key_file: "ca.key".into(),
            ca_file: "ca.pem".into(),
            server_names: Vec::new(),
            handshake_timeout_ms: 10_000,
            max_handshakes: 256,
        }
    }
}

impl TlsConfig {
    /// The unit's TLS files.
    pub fn files(&self) -> crate::tls::material::TlsFiles {
        crate::tls::material::TlsFiles {
            key: self.key_file.clone(),
            ca_key: self.ca_key_file.clone(),
            ca_cert: self.ca_file.clone(),
        }
    }
}

/// Who may call what.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// The named credentials (hashes only), managed with `tallytree token`;
    /// the node reads it again when it changes.
    pub credentials_file: PathBuf,
    /// Publish this node's figures openly: Query answers without a
    /// credential. Off unless chosen; evidence export still needs an
    /// auditor.
    pub public_figures: bool,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            credentials_file: "credentials.toml".into(),
            public_figures: false,
        }
    }
}

/// Limits on submissions from children.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// Largest submission accepted, in bytes (a first push carries the
    /// child's whole subtree of summaries and enrolments).
    pub max_submission_bytes: usize,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            max_submission_bytes: 64 << 20,
        }
    }
}

/// The parent node, and how to reach it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ParentConfig {
    /// The parent's gRPC URL, e.g. "https://10.0.0.2:7400"; none at the top.
    /// The parent is verified by its CA (from the enrolment) and its code,
    /// whatever host the URL names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Timeout of one submission (ms). A first push carries the child's
    /// whole subtree, which a loaded parent may take seconds to verify.
    pub timeout_ms: u64,
    /// First retry delay after a failed push (ms); doubles up to the maximum, with jitter.
    pub backoff_min_ms: u64,
    /// Longest retry delay (ms).
    pub backoff_max_ms: u64,
}

impl Default for ParentConfig {
    fn default() -> Self {
        ParentConfig {
            address: None,
            timeout_ms: 30_000,
            backoff_min_ms: 100,
            backoff_max_ms: 30_000,
        }
    }
}

/// Intake settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// Handling period given to a case recorded without a deadline, in days.
    pub default_deadline_days: u32,
    /// Most rows one bulk import may carry.
    pub max_import_rows: u64,
    /// Largest gRPC message accepted, in bytes.
    pub max_message_bytes: usize,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            default_deadline_days: 30,
            max_import_rows: 2_000_000,
            max_message_bytes: 8 << 20,
        }
    }
}

/// When changed months get a new signed revision.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SignerConfig {
    /// Sign once no change has arrived for this long (ms).
    pub debounce_ms: u64,
    /// Sign at the latest this long after the first unsigned change (ms).
    pub max_delay_ms: u64,
}

impl Default for SignerConfig {
    fn default() -> Self {
        SignerConfig {
            debounce_ms: 50,
            max_delay_ms: 500,
        }
    }
}

fn default_utc_offset() -> i32 {
    8
}

fn default_log() -> String {
    "info".into()
}

/// Whether a URL's host is a loopback address or `localhost`.
fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The file in the data directory where a running node reports the address
/// it listens on, written once it holds the socket and removed when it stops.
/// With `listen = "127.0.0.1:0"` it is the only way to learn the port; a
/// supervisor that starts many nodes this way gets ports no two nodes can
/// share.
#[derive(Clone, Debug, PartialEq)]
pub struct AddressFile {
    /// `<data_dir>/listen.addr`.
    path: PathBuf,
}

impl AddressFile {
    /// The file's name in the data directory.
    pub const NAME: &'static str = "listen.addr";

    /// The address file of the node whose data directory is `data_dir`.
    pub fn in_data_dir(data_dir: &Path) -> AddressFile {
        AddressFile {
            path: data_dir.join(Self::NAME),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `addr`: to a temporary file first, renamed over the file, so a
    /// reader finds a whole address or none.
    pub fn write(&self, addr: SocketAddr) -> std::io::Result<()> {
        let tmp = self.path.with_extension("addr.tmp");
        std::fs::write(&tmp, format!("{addr}\n"))?;
        std::fs::rename(&tmp, &self.path)
    }

    /// The reported address; `None` while no running node has written it.
    pub fn read(&self) -> std::io::Result<Option<SocketAddr>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        text.trim().parse().map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not an address ({e})", self.path.display()),
            )
        })
    }

    /// Removes the file; a missing file is not an error.
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("config {path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the field.
        reason: String,
    },
}

impl Config {
    /// A complete example configuration, as `--print-default-config` shows it.
    pub fn example() -> Config {
        Config {
            region: RegionCode::parse("210214000000").expect("valid example code"),
            name: "普兰店区".into(),
            data_dir: "data".into(),
            key_file: "node.key".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            utc_offset_hours: default_utc_offset(),
            log: default_log(),
            intake: IntakeConfig::default(),
            signer: SignerConfig::default(),
            parent: ParentConfig {
                address: Some("https://127.0.0.1:7300".into()),
                ..ParentConfig::default()
            },
            federation: FederationConfig::default(),
            tls: TlsConfig::default(),
            access: AccessConfig::default(),
            limits: LimitsConfig::default(),
        }
    }

    /// Where the running node reports the address it listens on.
    pub fn address_file(&self) -> AddressFile {
        AddressFile::in_data_dir(&self.data_dir)
    }

    /// The address clients reach the node at: `listen`, or, when its port
    /// is 0, the address the running node reported.
    pub fn served_address(&self) -> std::io::Result<SocketAddr> {
        if self.listen.port() != 0 {
            return Ok(self.listen);
        }
        let file = self.address_file();
        file.read()?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "listen = {} lets the node pick its port, and it has reported none in {} (is the node running?)",
                    self.listen,
                    file.path().display()
                ),
            )
        })
    }

    /// TOML text of this configuration.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses TOML text, applies `TALLYTREE_*` overrides from `env`, and
    /// resolves relative paths against `base`.
    pub fn parse(
        text: &str,
        path: &str,
        base: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for (field, var) in [
            ("region", "TALLYTREE_REGION"),
            ("name", "TALLYTREE_NAME"),
            ("data_dir", "TALLYTREE_DATA_DIR"),
            ("key_file", "TALLYTREE_KEY_FILE"),
            ("listen", "TALLYTREE_LISTEN"),
            ("log", "TALLYTREE_LOG"),
        ] {
            if let Some(value) = env(var) {
                table.insert(field.into(), toml::Value::String(value));
            }
        }
        if let Some(value) = env("TALLYTREE_UTC_OFFSET_HOURS") {
            let hours = value.parse::<i64>().map_err(|_| {
                invalid(format!(
                    "TALLYTREE_UTC_OFFSET_HOURS ({value}): not an integer"
                ))
            })?;
            table.insert("utc_offset_hours".into(), toml::Value::Integer(hours));
        }
        if let Some(address) = env("TALLYTREE_PARENT_ADDRESS") {
            let parent = table
                .entry("parent")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(t) = parent.as_table_mut() {
                t.insert("address".into(), toml::Value::String(address));
            }
        }
        let mut config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        if config.name.trim().is_empty() {
            return Err(invalid("name: required (the unit's Chinese name)".into()));
        }
        if config.tls.plaintext && !config.listen.ip().is_loopback() {
            return Err(invalid(format!(
                "tls.plaintext: refused: listen ({}) is not a loopback address; plaintext is only for one machine",
                config.listen
            )));
        }
        if let Some(address) = &config.parent.address {
            let scheme = if config.tls.plaintext {
                "http://"
            } else {
                "https://"
            };
            if config.tls.plaintext && !is_loopback_url(address) {
                return Err(invalid(format!(
                    "parent.address ({address}): refused: tls.plaintext pushes only to a loopback address"
                )));
            }
            if !address.starts_with(scheme) {
                return Err(invalid(format!(
                    "parent.address ({address}): must start with {scheme}{}",
                    if config.tls.plaintext {
                        " (tls.plaintext is set)"
                    } else {
                        " (TLS is on; tls.plaintext = true only on loopback)"
                    }
                )));
            }
        }
        if !(-12..=14).contains(&config.utc_offset_hours) {
            return Err(invalid(format!(
                "utc_offset_hours ({}): must be between -12 and 14",
                config.utc_offset_hours
            )));
        }
        config.data_dir = base.join(&config.data_dir);
        config.key_file = base.join(&config.key_file);
        for path in [
            &mut config.tls.key_file,
            &mut config.tls.ca_key_file,
            &mut config.tls.ca_file,
            &mut config.access.credentials_file,
        ] {
            *path = base.join(&*path);
        }
        Ok(config)
    }

    /// Reads a config file, with overrides from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &path.display().to_string(), base, |k| {
            std::env::var(k).ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_round_trips_and_env_overrides_apply() {
        let text = Config::example().to_toml();
        let base = Path::new("/etc/tallytree");
        let parsed = Config::parse(&text, "node.toml", base, |_| None).expect("valid");
        assert_eq!(parsed.data_dir, PathBuf::from("/etc/tallytree/data"));
        assert_eq!(parsed.region, Config::example().region);

        let env = |k: &str| (k == "TALLYTREE_LISTEN").then(|| "127.0.0.1:9999".to_owned());
        let parsed = Config::parse(&text, "node.toml", base, env).expect("valid");
        assert_eq!(parsed.listen.port(), 9999);
    }

    #[test]
    fn the_address_file_holds_a_whole_address_or_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = AddressFile::in_data_dir(dir.path());
        assert_eq!(file.read().expect("readable"), None);
        file.remove().expect("removing a missing file is fine");
        let addr: SocketAddr = "127.0.0.1:40123".parse().expect("addr");
        file.write(addr).expect("written");
        assert_eq!(file.read().expect("readable"), Some(addr));
        assert!(!file.path().with_extension("addr.tmp").exists());

        let config = Config {
            data_dir: dir.path().to_owned(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..Config::example()
        };
        assert_eq!(config.served_address().expect("reported"), addr);
        file.remove().expect("removed");
        let err = config.served_address().expect_err("nothing reported");
        assert!(err.to_string().contains("listen.addr"), "{err}");

        std::fs::write(file.path(), "not an address").expect("written");
        assert!(file.read().is_err());
    }

    #[test]
    fn plaintext_is_refused_off_loopback_and_the_parent_url_follows_tls() {
        let parse = |c: &Config| Config::parse(&c.to_toml(), "node.toml", Path::new("."), |_| None);
        let mut c = Config::example();
        c.tls.plaintext = true;
        c.parent.address = Some("http://127.0.0.1:7300".into());
        parse(&c).expect("plaintext on loopback");
        c.listen = "0.0.0.0:7400".parse().expect("addr");
        let err = parse(&c).expect_err("plaintext on every interface");
        assert!(err.to_string().contains("tls.plaintext: refused"), "{err}");
        c.listen = "127.0.0.1:7400".parse().expect("addr");
        c.parent.address = Some("http://10.0.0.2:7300".into());
        let err = parse(&c).expect_err("plaintext to another machine");
        assert!(
            err.to_string().contains("only to a loopback address"),
            "{err}"
        );
        c.parent.address = Some("http://[::1]:7300".into());
        parse(&c).expect("IPv6 loopback");

        let mut c = Config::example();
        c.parent.address = Some("http://10.0.0.2:7300".into());
        let err = parse(&c).expect_err("TLS on, http parent");
        assert!(
            err.to_string().contains("must start with https://"),
            "{err}"
        );
        c.parent.address = Some("https://dalian.example.gov.cn:7300".into());
        parse(&c).expect("TLS on, https parent");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let text = format!("{}\ncolour = \"red\"\n", Config::example().to_toml());
        let err = Config::parse(&text, "node.toml", Path::new("."), |_| None).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");

        let text = Config::example()
            .to_toml()
            .replace("210214000000", "2102140000");
        let err = Config::parse(&text, "node.toml", Path::new("."), |_| None).unwrap_err();
        assert!(err.to_string().contains("12 digits"), "{err}");
    }
}

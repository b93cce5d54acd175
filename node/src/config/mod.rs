//! The node's configuration: one TOML file, unknown fields refused, every
//! field overridable from the environment (`TALLYTREE_<FIELD>`).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use tallytree_proto::RegionCode;

mod address;
mod sections;

pub use address::AddressFile;
pub use sections::{
    AccessConfig, ConsoleConfig, FederationConfig, FindingsConfig, IntakeConfig, LimitsConfig,
    ParentConfig, SignerConfig, TlsConfig,
};

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
    /// The web console.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// The findings' thresholds.
    #[serde(default)]
    pub findings: FindingsConfig,
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
            console: ConsoleConfig::default(),
            findings: FindingsConfig::default(),
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
        if let Some(console) = config.console.listen
            && config.tls.plaintext
            && !console.ip().is_loopback()
        {
            return Err(invalid(format!(
                "console.listen ({console}): refused: tls.plaintext serves the console only on a loopback address"
            )));
        }
        config.findings.check().map_err(invalid)?;
        if config.console.session_idle_minutes == 0 || config.console.session_max_hours == 0 {
            return Err(invalid(
                "console.session_idle_minutes, console.session_max_hours: must be at least 1"
                    .into(),
            ));
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
    fn findings_thresholds_are_read_and_checked() {
        let base = Path::new("/etc/tallytree");
        // The example without its [findings] table, then one key of it.
        let mut example = String::new();
        let mut skipping = false;
        for line in Config::example().to_toml().lines() {
            if line.starts_with('[') {
                skipping = line == "[findings]";
            }
            if !skipping {
                example.push_str(line);
                example.push('\n');
            }
        }
        let with = |section: &str| format!("{example}\n[findings]\n{section}\n");
        let parsed =
            Config::parse(&with("timely_days = 20"), "node.toml", base, |_| None).expect("valid");
        assert_eq!(parsed.findings.timely_days, 20);
        assert_eq!(parsed.findings.params(8).utc_offset_minutes, 480);
        for (section, message) in [
            (
                "timely_days = 400",
                "findings.timely_days (400): at most 366",
            ),
            (
                "funnel_p = 1.5",
                "findings.funnel_p (1.5): must be between 0 and 1",
            ),
            (
                "outlier_z = -1.0",
                "findings.outlier_z (-1): must be above 0",
            ),
            ("flatline_months = 1", "findings.flatline_months"),
            ("timely = 3", "unknown field `timely`"),
        ] {
            let err = Config::parse(&with(section), "node.toml", base, |_| None)
                .expect_err(section)
                .to_string();
            assert!(err.contains(message), "{section}: {err}");
        }
    }

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

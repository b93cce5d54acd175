//! `tallytree init`: a new unit's keys, TLS material, first operator
//! credential and node config in one directory.
//!
//! ```text
//! node.key          signing key (Ed25519), 0600
//! node.pub          its public key, and the certificate request of the TLS key:
//!                   the one file the parent's operator needs to enrol this unit
//! tls.key           TLS key (ECDSA P-256), 0600
//! ca.key, ca.pem    the unit's CA (for its children and its own server)
//! credentials.toml  named credentials, hashes only
//! operator.token    the first operator's token, 0600, for this machine's CLI
//! node.toml         the node's config
//! ```

use std::{fs, net::SocketAddr, path::Path};

use anyhow::{Context, Result, bail};
use tallytree_node::{
    access::{Credentials, Role},
    config::{Config, TlsConfig},
    tls::material::{TlsFiles, write_new_private},
};
use tallytree_proto::{RegionCode, SigningKey};

/// The file beside a node's config where `init` puts the first operator's
/// token; `--config` uses it when no `--token` is given.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";

/// What `init` creates.
#[derive(Debug, Clone)]
pub struct InitArgs {
    /// The unit's code.
    pub code: RegionCode,
    /// The unit's Chinese name.
    pub name: String,
    /// Where the unit's files go.
    pub dir: std::path::PathBuf,
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// The name of the first operator credential.
    pub operator_name: String,
    /// The parent node's URL; none at the top.
    pub parent: Option<String>,
    /// Host names or addresses clients reach the node by (for its server
    /// certificate).
    pub server_names: Vec<String>,
    /// Serve without TLS (loopback only).
    pub plaintext: bool,
    /// The web console's address; `None`: the port after `listen`'s (port
    /// 0 stays 0).
    pub console: Option<SocketAddr>,
}

/// The console's address when none is given: the gRPC address's IP and the
/// next port (port 0, "any free port", stays 0).
pub fn default_console(listen: SocketAddr) -> SocketAddr {
    let port = match listen.port() {
        0 => 0,
        p => p.checked_add(1).unwrap_or(p - 1),
    };
    SocketAddr::new(listen.ip(), port)
}

/// What `init` made.
#[derive(Debug, Clone)]
pub struct Initialised {
    /// The config file.
    pub config: std::path::PathBuf,
    /// The first operator's token (also in `operator.token`).
    pub operator_token: String,
}

/// Writes `0600` files that must not exist yet.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    write_new_private(path, text.as_bytes())
        .with_context(|| format!("{}: cannot create (does it exist already?)", path.display()))
}

/// The text of a unit's `node.pub`: its public key, then the certificate
/// request of its TLS key.
pub fn public_file(code: RegionCode, name: &str, key_pem: &str, csr_pem: &str) -> String {
    format!(
        "# tallytree unit {code} {name}\n# signing key (Ed25519):\n{key_pem}# TLS key, as a certificate request for the parent's CA:\n{csr_pem}"
    )
}

/// Creates the unit's files; returns the config path and operator token.
pub fn init(args: &InitArgs) -> Result<Initialised> {
    let name = args.name.trim();
    if name.is_empty() {
        bail!("--name: required (the unit's Chinese name, e.g. 普兰店区)");
    }
    if args.plaintext && !args.listen.ip().is_loopback() {
        bail!(
            "--plaintext: refused: --listen {} is not a loopback address",
            args.listen
        );
    }
    fs::create_dir_all(&args.dir)
        .with_context(|| format!("{}: cannot create", args.dir.display()))?;
    let config_path = args.dir.join("node.toml");
    if config_path.exists() {
        bail!(
            "{}: already exists; this unit is initialised",
            config_path.display()
        );
    }
    let key = SigningKey::generate_to_file(&args.dir.join("node.key"))?;
    let tls = TlsConfig {
        plaintext: args.plaintext,
        server_names: args.server_names.clone(),
        ..TlsConfig::default()
    };
    let files = TlsFiles {
        key: args.dir.join(&tls.key_file),
        ca_key: args.dir.join(&tls.ca_key_file),
        ca_cert: args.dir.join(&tls.ca_file),
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let csr = files.create(args.code, name, now_ms)?;
    fs::write(
        args.dir.join("node.pub"),
        public_file(args.code, name, &key.public_key().to_pem(), &csr),
    )?;
    let mut credentials = Credentials::default();
    let token = credentials.add(&args.operator_name, Role::Operator, &now_rfc3339())?;
    let config = Config {
        region: args.code,
        name: name.to_owned(),
        data_dir: "data".into(),
        key_file: "node.key".into(),
        listen: args.listen,
        parent: tallytree_node::config::ParentConfig {
            address: args.parent.clone(),
            ..Default::default()
        },
        tls,
        console: tallytree_node::config::ConsoleConfig {
            listen: Some(args.console.unwrap_or_else(|| default_console(args.listen))),
            ..Default::default()
        },
        ..Config::example()
    };
    credentials.save(&args.dir.join(&config.access.credentials_file))?;
    write_private(&args.dir.join(OPERATOR_TOKEN_FILE), &format!("{token}\n"))?;
    write_private(&config_path, &config.to_toml())?;
    // The config must load as the node will load it.
    Config::load(&config_path)?;
    Ok(Initialised {
        config: config_path,
        operator_token: token,
    })
}

/// Now, as credentials record it.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_loadable_config_and_private_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = InitArgs {
            code: RegionCode::parse("211104000000").expect("code"),
            name: "大洼区".into(),
            dir: dir.path().join("dawa"),
            listen: "127.0.0.1:7401".parse().expect("addr"),
            operator_name: "值班员".into(),
            parent: Some("https://127.0.0.1:7300".into()),
            server_names: vec!["dawa.example.gov.cn".into()],
            plaintext: false,
            console: None,
        };
        let made = init(&args).expect("init");
        let config = Config::load(&made.config).expect("loads");
        assert_eq!(config.name, "大洼区");
        SigningKey::load(&config.key_file).expect("key loads");
        tallytree_node::tls::material::TlsKey::load(&config.tls.key_file).expect("TLS key");
        let creds = Credentials::load(&config.access.credentials_file).expect("credentials");
        let op = creds.verify(&made.operator_token).expect("token verifies");
        assert_eq!((op.name.as_str(), op.role), ("值班员", Role::Operator));
        let public = fs::read_to_string(args.dir.join("node.pub")).expect("node.pub");
        assert!(
            public.contains("BEGIN PUBLIC KEY") && public.contains("BEGIN CERTIFICATE REQUEST")
        );
        tallytree_proto::PublicKey::load(&args.dir.join("node.pub")).expect("public key reads");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [
                "node.toml",
                "operator.token",
                "tls.key",
                "ca.key",
                "node.key",
            ] {
                let mode = fs::metadata(args.dir.join(f))
                    .expect("meta")
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        assert!(init(&args).is_err(), "second init refused");
    }

    #[test]
    fn plaintext_is_refused_off_loopback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = init(&InitArgs {
            code: RegionCode::parse("211104000000").expect("code"),
            name: "大洼区".into(),
            dir: dir.path().join("dawa"),
            listen: "0.0.0.0:7401".parse().expect("addr"),
            operator_name: "operator".into(),
            parent: None,
            server_names: Vec::new(),
            plaintext: true,
            console: None,
        })
        .expect_err("refused");
        assert!(err.to_string().contains("--plaintext: refused"), "{err}");
    }
}

//! `tallytree init`: a new unit's key and node config in one directory.

use std::{fs, io::Write, net::SocketAddr, path::Path};

use anyhow::{Context, Result, bail};
use ring::rand::{SecureRandom, SystemRandom};
use tallytree_node::config::Config;
use tallytree_proto::{RegionCode, SigningKey};

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
    /// Operator token; generated when absent.
    pub token: Option<String>,
    /// The parent node's URL; none at the top.
    pub parent: Option<String>,
}

/// Writes `0600` files: configs hold the operator token.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("{}: cannot create (does it exist already?)", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// A random operator token: 32 hex digits.
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("system random source failed"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates the key, public key and config; returns the config path.
pub fn init(args: &InitArgs) -> Result<std::path::PathBuf> {
    if args.name.trim().is_empty() {
        bail!("--name: required (the unit's Chinese name, e.g. 普兰店区)");
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
    fs::write(args.dir.join("node.pub"), key.public_key().to_pem())?;
    let token = match &args.token {
        Some(t) if t.len() < 8 => bail!("--token: at least 8 characters"),
        Some(t) => t.clone(),
        None => new_token()?,
    };
    let config = Config {
        region: args.code,
        name: args.name.trim().to_owned(),
        data_dir: "data".into(),
        key_file: "node.key".into(),
        listen: args.listen,
        operator_token: token,
        parent: tallytree_node::config::ParentConfig {
            address: args.parent.clone(),
            ..Default::default()
        },
        ..Config::example()
    };
    write_private(&config_path, &config.to_toml())?;
    Ok(config_path)
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
            token: None,
            parent: None,
        };
        let path = init(&args).expect("init");
        let config = Config::load(&path).expect("loads");
        assert_eq!(config.name, "大洼区");
        assert_eq!(config.operator_token.len(), 32);
        SigningKey::load(&config.key_file).expect("key loads");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(init(&args).is_err(), "second init refused");
    }
}

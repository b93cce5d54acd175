//! Who this node is: its region, its name, and its signing key, which can be
//! swapped once when a rotated key's enrolment is installed.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use tallytree_proto::{KeyError, PublicKey, RegionCode, SigningKey};

/// The unit a node serves.
#[derive(Debug)]
pub struct Identity {
    /// The unit's code.
    pub region: RegionCode,
    /// The unit's Chinese name.
    pub name: String,
    /// The current signing key.
    key: RwLock<Arc<SigningKey>>,
    /// Where the key lives; a rotated key waits beside it as `<file>.next`.
    key_file: Option<PathBuf>,
    /// Where the TLS key lives (it rotates with the signing key, from
    /// `<file>.next`).
    tls_key_file: Option<PathBuf>,
}

impl Identity {
    /// An identity with `key`, read from `key_file` when there is one.
    pub fn new(
        region: RegionCode,
        name: String,
        key: SigningKey,
        key_file: Option<PathBuf>,
    ) -> Identity {
        Identity {
            region,
            name,
            key: RwLock::new(Arc::new(key)),
            key_file,
            tls_key_file: None,
        }
    }

    /// The same identity, its TLS key in `file`.
    pub fn with_tls_key_file(mut self, file: PathBuf) -> Identity {
        self.tls_key_file = Some(file);
        self
    }

    /// Where the TLS key lives, if on disk.
    pub fn tls_key_file(&self) -> Option<&Path> {
        self.tls_key_file.as_deref()
    }

    /// Switches to the waiting rotated TLS key: `<file>.next` becomes
    /// `<file>`, the old one is kept as `<file>.old`. Blocking.
    pub fn rotate_tls(&self) -> std::io::Result<()> {
        let Some(file) = &self.tls_key_file else {
            return Ok(());
        };
        let mut old = file.as_os_str().to_owned();
        old.push(".old");
        std::fs::rename(file, PathBuf::from(old))?;
        std::fs::rename(next_key_path(file), file)
    }

    /// The current signing key.
    pub fn key(&self) -> Arc<SigningKey> {
        self.key.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current public key.
    pub fn public_key(&self) -> PublicKey {
        self.key().public_key()
    }

    /// The file a rotated key waits in until its enrolment is installed.
    pub fn next_key_file(&self) -> Option<PathBuf> {
        self.key_file.as_deref().map(next_key_path)
    }

    /// Switches to the waiting rotated key: `<file>.next` becomes `<file>`,
    /// the old key is kept as `<file>.old`. Blocking.
    pub fn rotate(&self) -> Result<PublicKey, KeyError> {
        let (Some(file), Some(next)) = (&self.key_file, self.next_key_file()) else {
            return Err(KeyError::Format {
                path: "(none)".into(),
                reason: "this node has no key file to rotate".into(),
            });
        };
        let key = SigningKey::load(&next)?;
        let io = |source| KeyError::Io {
            path: file.display().to_string(),
            source,
        };
        let old = file.with_extension("key.old");
        std::fs::rename(file, &old).map_err(io)?;
        std::fs::rename(&next, file).map_err(io)?;
        let public = key.public_key();
        *self.key.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(public)
    }
}

/// `<file>.next`.
pub fn next_key_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".next");
    PathBuf::from(s)
}

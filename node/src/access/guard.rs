//! The running node's side of access: the credentials file, read again
//! whenever it changes (a revoked token stops working at the next call),
//! and the decision for one call.

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use tracing::{info, warn};

use super::{AccessError, Action, Credentials, Role};
use crate::{
    config::AccessConfig,
    error::{ErrorCode, ServiceError},
};

/// What identifies a version of the file: a rewrite (rename over it)
/// changes at least one.
#[derive(Clone, Debug, PartialEq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        #[cfg(unix)]
        inode: std::os::unix::fs::MetadataExt::ino(&meta),
    })
}

/// The node's credentials and its access rule.
#[derive(Debug)]
pub struct Access {
    file: PathBuf,
    public_figures: bool,
    loaded: Mutex<(Option<Stamp>, Arc<Credentials>)>,
}

/// A call allowed: by whom.
#[derive(Clone, Debug, PartialEq)]
pub enum Allowed {
    /// A named credential.
    Credential {
        /// Its name.
        name: String,
        /// Its role.
        role: Role,
    },
    /// Without a credential: the node publishes its figures.
    Public,
}

/// Why a call is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Denied {
    /// No credential presented.
    #[error("authorization: {needs} required (\"authorization: Bearer <token>\")")]
    Missing {
        /// What the call needs.
        needs: &'static str,
    },
    /// The header is not `Bearer <token>`.
    #[error("authorization: expected \"Bearer <token>\"")]
    Scheme,
    /// The token is no credential of this node.
    #[error("authorization: unknown or revoked credential")]
    Unknown,
    /// The credential's role may not make the call.
    #[error("authorization: credential {name} has the {role} role; this call needs {needs}")]
    WrongRole {
        /// The credential.
        name: String,
        /// Its role.
        role: Role,
        /// What the call needs.
        needs: &'static str,
    },
}

impl ServiceError for Denied {
    fn error_code(&self) -> ErrorCode {
        match self {
            Denied::Missing { .. } | Denied::Scheme | Denied::Unknown => ErrorCode::Unauthenticated,
            Denied::WrongRole { .. } => ErrorCode::PermissionDenied,
        }
    }
}

impl Access {
    /// Reads the credentials file of `config`.
    pub fn open(config: &AccessConfig) -> Result<Access, AccessError> {
        let file = config.credentials_file.clone();
        let st = stamp(&file);
        let creds = Credentials::load(&file)?;
        info!(file = %file.display(), credentials = creds.list().len(), public_figures = config.public_figures, "credentials read");
        Ok(Access {
            file,
            public_figures: config.public_figures,
            loaded: Mutex::new((st, Arc::new(creds))),
        })
    }

    /// The credentials as the file says now. A file that cannot be read
    /// keeps the last good ones (logged).
    fn current(&self) -> Arc<Credentials> {
        let now = stamp(&self.file);
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.0 != now {
            match Credentials::load(&self.file) {
                Ok(creds) => {
                    info!(file = %self.file.display(), credentials = creds.list().len(), "credentials read again");
                    *loaded = (now, Arc::new(creds));
                }
                Err(e) => {
                    warn!(error = %e, "credentials file unusable; keeping the credentials read before");
                    loaded.0 = now;
                }
            }
        }
        loaded.1.clone()
    }

    /// Decides one call of `action` presenting `authorization` (the header's
    /// value, if any).
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        action: Action,
    ) -> Result<Allowed, Denied> {
        let Some(value) = authorization else {
            if action == Action::Read && self.public_figures {
                return Ok(Allowed::Public);
            }
            return Err(Denied::Missing {
                needs: action.needs(),
            });
        };
        let Some(token) = value.strip_prefix("Bearer ") else {
            return Err(Denied::Scheme);
        };
        let creds = self.current();
        let credential = creds.verify(token).ok_or(Denied::Unknown)?;
        if !action.allowed_for(credential.role) {
            return Err(Denied::WrongRole {
                name: credential.name.clone(),
                role: credential.role,
                needs: action.needs(),
            });
        }
        Ok(Allowed::Credential {
            name: credential.name.clone(),
            role: credential.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_decided_by_role_and_a_revocation_applies_at_the_next_call() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = AccessConfig {
            credentials_file: dir.path().join("credentials.toml"),
            public_figures: false,
        };
        let mut creds = Credentials::default();
        let reader = creds.add("统计科", Role::Reader, "").expect("add");
        let operator = creds.add("值班员", Role::Operator, "").expect("add");
        creds.save(&config.credentials_file).expect("save");
        let access = Access::open(&config).expect("open");
        let bearer = |t: &str| format!("Bearer {t}");

        assert_eq!(
            access.authorize(None, Action::Read),
            Err(Denied::Missing {
                needs: Action::Read.needs()
            })
        );
        assert_eq!(
            access.authorize(Some("Bearer nope"), Action::Read),
            Err(Denied::Unknown)
        );
        assert!(
            access
                .authorize(Some(&bearer(&reader)), Action::Read)
                .is_ok()
        );
        let err = access
            .authorize(Some(&bearer(&reader)), Action::Write)
            .expect_err("reader writes");
        assert_eq!(err.error_code(), ErrorCode::PermissionDenied);
        assert!(
            err.to_string().contains("统计科 has the reader role"),
            "{err}"
        );
        assert!(
            access
                .authorize(Some(&bearer(&operator)), Action::Write)
                .is_ok()
        );
        assert!(
            access
                .authorize(Some(&bearer(&operator)), Action::Audit)
                .is_err()
        );

        creds.revoke("统计科");
        creds.save(&config.credentials_file).expect("save");
        assert_eq!(
            access.authorize(Some(&bearer(&reader)), Action::Read),
            Err(Denied::Unknown)
        );

        // A damaged file keeps the credentials read before.
        std::fs::write(&config.credentials_file, "not toml [").expect("write");
        assert!(
            access
                .authorize(Some(&bearer(&operator)), Action::Write)
                .is_ok()
        );
    }

    #[test]
    fn public_figures_open_query_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let access = Access::open(&AccessConfig {
            credentials_file: dir.path().join("none.toml"),
            public_figures: true,
        })
        .expect("open");
        assert_eq!(access.authorize(None, Action::Read), Ok(Allowed::Public));
        assert!(access.authorize(None, Action::Audit).is_err());
        assert!(access.authorize(None, Action::Write).is_err());
    }
}

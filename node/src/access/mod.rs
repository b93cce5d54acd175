//! Who may call what: named credentials with a role each, kept in a TOML
//! file as SHA-256 hashes only (`tallytree token add/list/revoke` edit it;
//! a running node reads it again when it changes), and the rule of which
//! role may make which call.
//!
//! A token is `tt_` followed by 32 random bytes in base64url: the hash of
//! such a token cannot be reversed by trying likely ones. A presented token
//! is hashed and compared with every stored hash in constant time, so
//! neither timing nor order says which credential it nearly matched.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tallytree_proto::Digest;

use crate::tls::material::write_new_private;

#[cfg(feature = "server")]
mod guard;
#[cfg(feature = "server")]
pub use guard::{Access, Allowed, Denied};

/// What a credential allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Records cases, tasks and tallies; enrols, rotates and revokes
    /// children; reads the node's figures.
    Operator,
    /// Reads figures (Query).
    Reader,
    /// Reads figures and exports evidence: revisions, bundles, proofs.
    Auditor,
}

impl Role {
    /// Every role, in the order they are shown.
    pub const ALL: [Role; 3] = [Role::Operator, Role::Reader, Role::Auditor];

    /// The name used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Reader => "reader",
            Role::Auditor => "auditor",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind of call, as the access rule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Intake: records, imports.
    Write,
    /// Enrolments: enrol, rotate, revoke, install, list.
    Enrol,
    /// Query.
    Read,
    /// Audit: revisions, evidence bundles, proofs.
    Audit,
}

impl Action {
    /// What a person is told the call needs.
    pub fn needs(self) -> &'static str {
        match self {
            Action::Write | Action::Enrol => "an operator credential",
            Action::Read => "a reader, auditor or operator credential",
            Action::Audit => "an auditor credential",
        }
    }

    /// Whether `role` may make this call.
    pub fn allowed_for(self, role: Role) -> bool {
        match self {
            Action::Write | Action::Enrol => role == Role::Operator,
            Action::Read => true,
            Action::Audit => role == Role::Auditor,
        }
    }
}

/// One named credential, as stored: never the token itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Who holds it, e.g. 省厅统计科.
    pub name: String,
    /// What it allows.
    pub role: Role,
    /// SHA-256 of the token, hex.
    pub token_sha256: String,
    /// When it was made (RFC 3339, UTC).
    pub created: String,
}

impl Credential {
    fn hash(&self) -> Option<[u8; 32]> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.token_sha256, &mut out).ok()?;
        Some(out)
    }
}

/// Why a credentials file cannot be used or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file or a value in it breaks a rule.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the field.
        reason: String,
    },
}

/// The credentials file's content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileContent {
    #[serde(default, rename = "credential")]
    credentials: Vec<Credential>,
}

/// The named credentials of a node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Credentials {
    list: Vec<Credential>,
    /// Parsed hashes, in the order of `list`.
    hashes: Vec<[u8; 32]>,
}

/// A token: `tt_` and 43 characters of base64url.
pub fn new_token() -> Result<String, AccessError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AccessError::Invalid {
            path: "(token)".into(),
            reason: "system random source failed".into(),
        })?;
    use base64::Engine;
    Ok(format!(
        "tt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

fn token_hash(token: &str) -> [u8; 32] {
    Digest::of(token.as_bytes()).0
}

impl Credentials {
    /// Reads a credentials file; a missing file holds no credentials.
    pub fn load(path: &Path) -> Result<Credentials, AccessError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(AccessError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Credentials::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Credentials, AccessError> {
        let invalid = |reason: String| AccessError::Invalid {
            path: path.display().to_string(),
            reason,
        };
        let content: FileContent = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut hashes = Vec::with_capacity(content.credentials.len());
        for (i, c) in content.credentials.iter().enumerate() {
            let hash = c.hash().ok_or_else(|| {
                invalid(format!(
                    "credential {} ({}): token_sha256 must be 64 hex digits",
                    i + 1,
                    c.name
                ))
            })?;
            if content.credentials[..i].iter().any(|o| o.name == c.name) {
                return Err(invalid(format!(
                    "credential {} ({}): name used twice",
                    i + 1,
                    c.name
                )));
            }
            hashes.push(hash);
        }
        Ok(Credentials {
            list: content.credentials,
            hashes,
        })
    }

    /// Every credential, in the file's order.
    pub fn list(&self) -> &[Credential] {
        &self.list
    }

    /// The credential a presented token belongs to. Every stored hash is
    /// compared, in constant time, whatever matches.
    pub fn verify(&self, token: &str) -> Option<&Credential> {
        let given = token_hash(token);
        let mut found = None;
        for (i, hash) in self.hashes.iter().enumerate() {
            if bool::from(hash.ct_eq(&given)) {
                found = Some(i);
            }
        }
        found.map(|i| &self.list[i])
    }

    /// Adds a credential named `name` with `role`; returns its token, which
    /// is stored nowhere.
    pub fn add(&mut self, name: &str, role: Role, created: &str) -> Result<String, AccessError> {
        let name = name.trim();
        let invalid = |reason: String| AccessError::Invalid {
            path: "--name".into(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid(
                "required (who holds the credential, e.g. 省厅统计科)".into(),
            ));
        }
        if self.list.iter().any(|c| c.name == name) {
            return Err(invalid(format!(
                "a credential named {name} exists already; revoke it first or choose another name"
            )));
        }
        let token = new_token()?;
        let hash = token_hash(&token);
        self.list.push(Credential {
            name: name.to_owned(),
            role,
            token_sha256: hex::encode(hash),
            created: created.to_owned(),
        });
        self.hashes.push(hash);
        Ok(token)
    }

    /// Removes the credential named `name`; false if there is none.
    pub fn revoke(&mut self, name: &str) -> bool {
        let Some(i) = self.list.iter().position(|c| c.name == name) else {
            return false;
        };
        self.list.remove(i);
        self.hashes.remove(i);
        true
    }

    /// Writes the file: to a new temporary file (0600) first, renamed over
    /// the old one, so that a running node reads a whole file or the old.
    pub fn save(&self, path: &Path) -> Result<(), AccessError> {
        let content = FileContent {
            credentials: self.list.clone(),
        };
        let text = format!(
            "# tallytree credentials: SHA-256 hashes of tokens, never the tokens.\n# Edit with `tallytree token add/list/revoke`.\n\n{}",
            toml::to_string_pretty(&content).unwrap_or_default()
        );
        let tmp = temp_path(path);
        let _ = std::fs::remove_file(&tmp);
        write_new_private(&tmp, text.as_bytes()).map_err(|e| AccessError::Invalid {
            path: tmp.display().to_string(),
            reason: e.to_string(),
        })?;
        std::fs::rename(&tmp, path).map_err(|source| AccessError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_by_its_hash_only_and_revocation_ends_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("credentials.toml");
        let mut creds = Credentials::load(&path).expect("missing file is empty");
        let reader = creds
            .add("省厅统计科", Role::Reader, "2026-12-01T00:00:00Z")
            .expect("added");
        let operator = creds
            .add("operator", Role::Operator, "2026-12-01T00:00:00Z")
            .expect("added");
        assert!(reader.starts_with("tt_") && reader.len() == 46, "{reader}");
        creds.save(&path).expect("saved");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains(&reader[3..]) && !text.contains(&operator[3..]));

        let loaded = Credentials::load(&path).expect("loads");
        assert_eq!(loaded, creds);
        let found = loaded.verify(&reader).expect("reader token");
        assert_eq!(
            (found.name.as_str(), found.role),
            ("省厅统计科", Role::Reader)
        );
        assert_eq!(
            loaded.verify(&operator).map(|c| c.role),
            Some(Role::Operator)
        );
        assert!(loaded.verify("tt_wrong").is_none());
        assert!(loaded.verify("").is_none());

        let mut changed = loaded.clone();
        assert!(
            changed.add("operator", Role::Auditor, "").is_err(),
            "names are unique"
        );
        assert!(changed.revoke("省厅统计科"));
        assert!(!changed.revoke("省厅统计科"));
        assert!(changed.verify(&reader).is_none());
        assert!(changed.verify(&operator).is_some());
    }

    #[test]
    fn the_rule_of_roles() {
        use Action::*;
        for (action, operator, reader, auditor) in [
            (Write, true, false, false),
            (Enrol, true, false, false),
            (Read, true, true, true),
            (Audit, false, false, true),
        ] {
            assert_eq!(action.allowed_for(Role::Operator), operator, "{action:?}");
            assert_eq!(action.allowed_for(Role::Reader), reader, "{action:?}");
            assert_eq!(action.allowed_for(Role::Auditor), auditor, "{action:?}");
        }
    }

    #[test]
    fn a_damaged_file_is_named() {
        let path = Path::new("credentials.toml");
        let err = Credentials::parse(
            "[[credential]]\nname = \"a\"\nrole = \"reader\"\ntoken_sha256 = \"zz\"\ncreated = \"\"\n",
            path,
        )
        .expect_err("bad hash");
        assert!(err.to_string().contains("token_sha256"), "{err}");
        let err = Credentials::parse(
            "[[credential]]\nname = \"a\"\nrole = \"king\"\ntoken_sha256 = \"\"\ncreated = \"\"\n",
            path,
        )
        .expect_err("bad role");
        assert!(
            err.to_string().contains("role") || err.to_string().contains("king"),
            "{err}"
        );
    }
}

//! Ed25519 keys (ring). Private keys are PKCS#8 documents, stored PEM-encoded
//! with 0600 permissions; public keys are SubjectPublicKeyInfo PEM, the form
//! `openssl pkey -pubout` writes, so other tools can read them.

use std::{fmt, fs, io::Write, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ring::{
    rand::SystemRandom,
    signature::{self, Ed25519KeyPair, KeyPair},
};

use crate::digest::Digest;

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the raw 32-byte
/// key follows it.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Problems with keys and key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds no usable key.
    #[error("key file {path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Refusing to overwrite an existing private key.
    #[error("key file {0}: already exists; refusing to overwrite a private key")]
    Exists(String),
    /// A public key that is not 32 bytes.
    #[error("public_key: must be 32 bytes of Ed25519 key, got {0}")]
    PublicKeyLength(usize),
    /// The system random source failed.
    #[error("cannot generate a key: system random source failed")]
    Random,
}

/// An Ed25519 public key (raw 32 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// From raw bytes as carried in enrolments.
    pub fn from_slice(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        Ok(PublicKey(
            bytes
                .try_into()
                .map_err(|_| KeyError::PublicKeyLength(bytes.len()))?,
        ))
    }

    /// The key id: lowercase hex SHA-256 of the raw key, used as DSSE `keyid`.
    pub fn key_id(&self) -> String {
        Digest::of(&self.0).to_hex()
    }

    /// True when `sig` is a valid Ed25519 signature of `message` by this key.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(message, sig)
            .is_ok()
    }

    /// SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----").
    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        pem_encode("PUBLIC KEY", &der)
    }

    /// Parses SubjectPublicKeyInfo PEM, or a bare base64 or hex raw key.
    pub fn parse(text: &str) -> Option<PublicKey> {
        let text = text.trim();
        if let Some(der) = pem_decode("PUBLIC KEY", text) {
            let raw = der.strip_prefix(&SPKI_PREFIX[..])?;
            return PublicKey::from_slice(raw).ok();
        }
        if let Ok(raw) = hex::decode(text) {
            return PublicKey::from_slice(&raw).ok();
        }
        B64.decode(text)
            .ok()
            .and_then(|raw| PublicKey::from_slice(&raw).ok())
    }

    /// Reads a public key file.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let text = fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        PublicKey::parse(&text).ok_or_else(|| KeyError::Format {
            path: path.display().to_string(),
            reason: "not an Ed25519 public key (expected PEM \"PUBLIC KEY\", hex or base64)".into(),
        })
    }

    /// Base64 of the raw key, as printed for operators.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.key_id()[..16])
    }
}

/// An Ed25519 signing key.
pub struct SigningKey {
    /// The ring key pair used to sign.
    pair: Ed25519KeyPair,
    /// Cached public half.
    public: PublicKey,
}

impl SigningKey {
    /// Generates a new key; returns it with its PKCS#8 v2 document.
    pub fn generate() -> Result<(SigningKey, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?;
        let key = SigningKey::from_pkcs8(doc.as_ref()).map_err(|reason| KeyError::Format {
            path: "(generated)".into(),
            reason,
        })?;
        Ok((key, doc.as_ref().to_vec()))
    }

    /// From a PKCS#8 document (v2 as ring writes, or v1 as OpenSSL writes).
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, String> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| format!("not an Ed25519 PKCS#8 private key ({e})"))?;
        Ok(SigningKey::from_pair(pair))
    }

    /// From a 32-byte seed alone (deterministic keys for synthetic data;
    /// real keys come from [`SigningKey::generate`]).
    pub fn from_seed_only(seed: &[u8]) -> Result<SigningKey, String> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| format!("not an Ed25519 seed ({e})"))?;
        Ok(SigningKey::from_pair(pair))
    }

    /// From a 32-byte seed and its public key (known-answer tests).
    pub fn from_seed(seed: &[u8], public: &[u8]) -> Result<SigningKey, String> {
        let pair = Ed25519KeyPair::from_seed_and_public_key(seed, public)
            .map_err(|e| format!("seed and public key do not match ({e})"))?;
        Ok(SigningKey::from_pair(pair))
    }

    fn from_pair(pair: Ed25519KeyPair) -> SigningKey {
        let mut raw = [0u8; 32];
        raw.copy_from_slice(pair.public_key().as_ref());
        SigningKey {
            pair,
            public: PublicKey(raw),
        }
    }

    /// Signs `message`, returning the 64-byte signature.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Generates a key and writes it to `path` as PKCS#8 PEM with mode 0600,
    /// never overwriting an existing file.
    pub fn generate_to_file(path: &Path) -> Result<SigningKey, KeyError> {
        let (key, doc) = SigningKey::generate()?;
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.display().to_string())
            } else {
                io(e)
            }
        })?;
        file.write_all(pem_encode("PRIVATE KEY", &doc).as_bytes())
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(key)
    }

    /// Reads a PKCS#8 private key file (PEM or DER).
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let bytes = fs::read(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let der = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| pem_decode("PRIVATE KEY", text))
            .unwrap_or(bytes);
        SigningKey::from_pkcs8(&der).map_err(|reason| KeyError::Format {
            path: path.display().to_string(),
            reason,
        })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({:?})", self.public)
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(label: &str, text: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = text[start..].find(&end)? + start;
    let body: String = text[start..stop].split_whitespace().collect();
    B64.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 section 7.1, tests 1-3 and "SHA(abc)" omitted: (secret, public, message, signature).
    const RFC8032: [(&str, &str, &str, &str); 3] = [
        (
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "",
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
        ),
        (
            "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "72",
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        ),
        (
            "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
            "af82",
            "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
        ),
    ];

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("hex")
    }

    #[test]
    fn ring_reproduces_rfc8032_test_vectors() {
        for (secret, public, message, expected) in RFC8032 {
            let key = SigningKey::from_seed(&unhex(secret), &unhex(public)).expect("key");
            assert_eq!(hex::encode(key.public_key().0), public);
            let sig = key.sign(&unhex(message));
            assert_eq!(hex::encode(&sig), expected);
            assert!(key.public_key().verify(&unhex(message), &sig));
            let mut bad = sig.clone();
            bad[0] ^= 1;
            assert!(!key.public_key().verify(&unhex(message), &bad));
        }
    }

    #[test]
    fn key_files_round_trip_with_private_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.key");
        let key = SigningKey::generate_to_file(&path).expect("generate");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = SigningKey::load(&path).expect("load");
        assert_eq!(loaded.public_key(), key.public_key());
        assert!(matches!(
            SigningKey::generate_to_file(&path),
            Err(KeyError::Exists(_))
        ));

        let pem = key.public_key().to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
        assert_eq!(PublicKey::parse(&pem), Some(key.public_key()));
        assert_eq!(
            PublicKey::parse(&key.public_key().to_base64()),
            Some(key.public_key())
        );
        assert_eq!(key.public_key().key_id().len(), 64);
    }

    #[test]
    fn openssl_v1_pkcs8_keys_load() {
        // RFC 8410 section 10.3 private key (PKCS#8 v1, as `openssl genpkey` writes).
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
        let der = pem_decode("PRIVATE KEY", pem).expect("pem");
        let key = SigningKey::from_pkcs8(&der).expect("v1 key");
        // RFC 8410 section 10.1 gives the matching public key.
        assert_eq!(
            key.public_key().to_pem().lines().nth(1),
            Some("MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=")
        );
    }
}

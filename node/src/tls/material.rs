//! A unit's TLS material on disk, and the certificates its CA issues.
//!
//! - `tls.key`: the unit's TLS key (ECDSA P-256). Its parent binds the
//!   SHA-256 of its SubjectPublicKeyInfo into the signed enrolment and issues
//!   the client certificate the unit pushes with.
//! - `ca.key`, `ca.pem`: the unit's own CA. It issues the certificates of
//!   the unit's children (at enrolment) and of the unit's own server, whose
//!   key lives only in memory; operators, readers and children verify the
//!   server against `ca.pem`.
//!
//! P-256 rather than Ed25519: every TLS stack and browser speaks it, and the
//! console (served with the same certificate) must work in older browsers.

use std::{
    io::Write,
    net::IpAddr,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use tallytree_proto::{Digest, RegionCode};
use time::OffsetDateTime;

/// How long a child's client certificate is valid: renewed with the key
/// rotation every unit makes at least that often.
pub const CHILD_CERT_DAYS: i64 = 2 * 366;
/// How long the node's in-memory server certificate is valid; it is issued
/// again long before (see [`crate::tls::server`]).
pub const SERVER_CERT_DAYS: i64 = 90;
/// How long a unit's CA certificate is valid.
pub const CA_CERT_DAYS: i64 = 20 * 366;

/// Why TLS material cannot be created, read or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file exists where a new key would be written.
    #[error("{0}: already exists; refusing to overwrite a private key")]
    Exists(String),
    /// A file or field does not hold what it should.
    #[error("{what}: {reason}")]
    Invalid {
        /// The file or field.
        what: String,
        /// What is wrong.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn invalid(what: impl Into<String>, reason: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// Writes a new file readable by its owner only (0600), never over an
/// existing one, and syncs it.
pub fn write_new_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            TlsError::Exists(path.display().to_string())
        } else {
            io_err(path)(e)
        }
    })?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(io_err(path))
}

/// The DNS name a unit's server certificate carries for its code, e.g.
/// `210214000000.node.tallytree`. A child verifies its parent by this name,
/// whatever address it reaches the parent at.
pub fn node_dns_name(code: RegionCode) -> String {
    format!("{code}.node.tallytree")
}

/// The URI a child's client certificate names it by, e.g.
/// `tallytree:region:210214001000` (for people reading certificates: the
/// parent trusts the key binding, not the name).
pub fn region_uri(code: RegionCode) -> String {
    format!("tallytree:region:{code}")
}

/// SHA-256 of a DER SubjectPublicKeyInfo: what an enrolment binds.
pub fn spki_digest(spki_der: &[u8]) -> Digest {
    Digest::of(spki_der)
}

fn random_serial() -> Result<SerialNumber, TlsError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| invalid("serial", "system random source failed"))?;
    // Positive, as RFC 5280 asks.
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

fn validity(params: &mut CertificateParams, now_ms: i64, days: i64) -> Result<(), TlsError> {
    let now = OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
        .map_err(|e| invalid("clock", e))?;
    // An hour of slack for clocks that differ a little between offices.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
    Ok(())
}

fn name(common: &str, unit: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common);
    dn.push(DnType::OrganizationalUnitName, unit);
    dn.push(DnType::OrganizationName, "tallytree");
    dn
}

/// A unit's TLS key (ECDSA P-256, PKCS#8 PEM on disk).
pub struct TlsKey {
    pair: KeyPair,
}

impl std::fmt::Debug for TlsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsKey({})", self.spki_digest().short())
    }
}

impl TlsKey {
    /// A new key in memory.
    pub fn generate() -> Result<TlsKey, TlsError> {
        let pair =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| invalid("TLS key", e))?;
        Ok(TlsKey { pair })
    }

    /// A new key, written to `path` (0600, never over an existing file).
    pub fn generate_to_file(path: &Path) -> Result<TlsKey, TlsError> {
        let key = TlsKey::generate()?;
        write_new_private(path, key.private_pem().as_bytes())?;
        Ok(key)
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<TlsKey, TlsError> {
        let text = read_text(path)?;
        let pair = KeyPair::from_pem(&text)
            .map_err(|e| invalid(path.display().to_string(), format!("not a TLS key ({e})")))?;
        if !pair.is_compatible(&PKCS_ECDSA_P256_SHA256) {
            return Err(invalid(
                path.display().to_string(),
                "not an ECDSA P-256 key",
            ));
        }
        Ok(TlsKey { pair })
    }

    /// The private key, PKCS#8 PEM.
    pub fn private_pem(&self) -> String {
        self.pair.serialize_pem()
    }

    /// The private key, PKCS#8 DER.
    pub fn private_der(&self) -> Vec<u8> {
        self.pair.serialize_der()
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    /// SHA-256 of the SubjectPublicKeyInfo.
    pub fn spki_digest(&self) -> Digest {
        spki_digest(&self.spki_der())
    }

    /// A certificate signing request for this key, naming `code` and `name`
    /// (PEM, label CERTIFICATE REQUEST). The parent takes only the key from
    /// it; the request's signature proves the unit holds the key.
    pub fn csr_pem(&self, code: RegionCode, unit_name: &str) -> Result<String, TlsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&code.to_string(), unit_name);
        params
            .serialize_request(&self.pair)
            .and_then(|csr| csr.pem())
            .map_err(|e| invalid("certificate request", e))
    }
}

/// The TLS public key of a certificate signing request: checked (its
/// signature, its algorithm), ready to be certified.
#[derive(Debug)]
pub struct RequestedKey {
    key: rcgen::PublicKey,
}

impl RequestedKey {
    /// Parses and checks a PEM certificate request.
    pub fn from_csr_pem(pem: &str) -> Result<RequestedKey, TlsError> {
        let start = pem
            .find("-----BEGIN CERTIFICATE REQUEST-----")
            .ok_or_else(|| {
                invalid(
                    "tls_csr",
                    "required: the child's certificate request (the CERTIFICATE REQUEST block of its node.pub)",
                )
            })?;
        let request = CertificateSigningRequestParams::from_pem(&pem[start..])
            .map_err(|e| invalid("tls_csr", format!("not a valid certificate request ({e})")))?;
        if request.public_key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(invalid("tls_csr", "the key must be ECDSA P-256"));
        }
        Ok(RequestedKey {
            key: request.public_key,
        })
    }

    /// SHA-256 of the requested key's SubjectPublicKeyInfo.
    pub fn spki_digest(&self) -> Digest {
        spki_digest(&self.key.subject_public_key_info())
    }
}

/// A unit's CA: issues its children's client certificates and its own
/// server certificate.
pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authority(..)")
    }
}

/// A certificate the CA issued, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
}

impl Authority {
    /// A new CA of `code` (`name`) in memory: its key and certificate, PEM.
    fn generate(
        code: RegionCode,
        unit_name: &str,
        now_ms: i64,
    ) -> Result<(TlsKey, String), TlsError> {
        let key = TlsKey::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&format!("tallytree CA {code}"), unit_name);
        // Issues leaf certificates only: no sub-CA below a unit.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial()?);
        validity(&mut params, now_ms, CA_CERT_DAYS)?;
        let cert = params
            .self_signed(&key.pair)
            .map_err(|e| invalid("CA certificate", e))?;
        Ok((key, cert.pem()))
    }

    fn from_parts(key: TlsKey, cert_pem: String, what: &str) -> Result<Authority, TlsError> {
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key.pair)
            .map_err(|e| invalid(what, format!("not a CA certificate ({e})")))?;
        Ok(Authority { issuer, cert_pem })
    }

    /// Creates the CA of `code` (`name`): writes its key to `key_path`
    /// (0600) and its certificate to `cert_path`.
    pub fn create(
        code: RegionCode,
        unit_name: &str,
        key_path: &Path,
        cert_path: &Path,
        now_ms: i64,
    ) -> Result<Authority, TlsError> {
        let (key, cert_pem) = Authority::generate(code, unit_name, now_ms)?;
        write_new_private(key_path, key.private_pem().as_bytes())?;
        write_new_private(cert_path, cert_pem.as_bytes())?;
        Authority::from_parts(key, cert_pem, &cert_path.display().to_string())
    }

    /// A CA that lives only in memory (for tests and throwaway nodes).
    pub fn in_memory(
        code: RegionCode,
        unit_name: &str,
        now_ms: i64,
    ) -> Result<Authority, TlsError> {
        let (key, cert_pem) = Authority::generate(code, unit_name, now_ms)?;
        Authority::from_parts(key, cert_pem, "CA certificate")
    }

    /// Reads the CA's key and certificate.
    pub fn load(key_path: &Path, cert_path: &Path) -> Result<Authority, TlsError> {
        let key = TlsKey::load(key_path)?;
        let cert_pem = read_text(cert_path)?;
        Authority::from_parts(key, cert_pem, &cert_path.display().to_string())
    }

    /// The CA certificate, PEM: what clients of this unit trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A client certificate for child `code` (`name`) over `key`.
    pub fn issue_child(
        &self,
        key: &RequestedKey,
        code: RegionCode,
        unit_name: &str,
        now_ms: i64,
    ) -> Result<Issued, TlsError> {
        self.issue_child_valid(key, code, unit_name, now_ms, CHILD_CERT_DAYS)
    }

    /// As [`Authority::issue_child`], valid for `days` from `now_ms`
    /// (negative `days` make a certificate that has expired: for tests of
    /// its refusal).
    pub fn issue_child_valid(
        &self,
        key: &RequestedKey,
        code: RegionCode,
        unit_name: &str,
        now_ms: i64,
        days: i64,
    ) -> Result<Issued, TlsError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&code.to_string(), unit_name);
        params.subject_alt_names = vec![SanType::URI(
            region_uri(code)
                .try_into()
                .map_err(|e| invalid("certificate", e))?,
        )];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        if days < 0 {
            validity(&mut params, now_ms, 0)?;
            params.not_after = params.not_before + time::Duration::minutes(1);
            params.not_before -= time::Duration::days(-days);
            params.not_after -= time::Duration::days(-days);
        } else {
            validity(&mut params, now_ms, days)?;
        }
        let cert = params
            .signed_by(&key.key, &self.issuer)
            .map_err(|e| invalid("certificate", e))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
        })
    }

    /// A server certificate for `key`, naming the unit by
    /// [`node_dns_name`], `localhost`, the loopback addresses and `names`
    /// (host names or IP addresses clients use).
    pub fn issue_server(
        &self,
        key: &TlsKey,
        code: RegionCode,
        names: &[String],
        now_ms: i64,
    ) -> Result<Issued, TlsError> {
        let mut sans: Vec<SanType> = Vec::new();
        let mut add = |n: &str| -> Result<(), TlsError> {
            let san = match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    n.try_into()
                        .map_err(|e| invalid(format!("tls.server_names ({n})"), e))?,
                ),
            };
            if !sans.contains(&san) {
                sans.push(san);
            }
            Ok(())
        };
        add(&node_dns_name(code))?;
        for n in ["localhost", "127.0.0.1", "::1"] {
            add(n)?;
        }
        for n in names {
            add(n)?;
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&node_dns_name(code), &code.to_string());
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        validity(&mut params, now_ms, SERVER_CERT_DAYS)?;
        let cert = params
            .signed_by(&key.pair, &self.issuer)
            .map_err(|e| invalid("server certificate", e))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
        })
    }
}

/// Where a unit's TLS files are, relative paths already resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// The unit's TLS key.
    pub key: PathBuf,
    /// The unit's CA key.
    pub ca_key: PathBuf,
    /// The unit's CA certificate.
    pub ca_cert: PathBuf,
}

impl TlsFiles {
    /// Creates the unit's TLS key and CA; returns the certificate request
    /// (PEM) for its parent.
    pub fn create(
        &self,
        code: RegionCode,
        unit_name: &str,
        now_ms: i64,
    ) -> Result<String, TlsError> {
        let key = TlsKey::generate_to_file(&self.key)?;
        Authority::create(code, unit_name, &self.ca_key, &self.ca_cert, now_ms)?;
        key.csr_pem(code, unit_name)
    }
}

/// `<file>.next`: where a rotated TLS key waits, as the signing key does.
pub fn next_path(file: &Path) -> PathBuf {
    crate::identity::next_key_path(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).expect("code")
    }

    #[cfg(feature = "server")]
    #[test]
    fn a_child_certificate_carries_the_requested_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Authority::create(
            code("210214000000"),
            "普兰店区",
            &dir.path().join("ca.key"),
            &dir.path().join("ca.pem"),
            1_767_225_600_000,
        )
        .expect("ca");
        let child = TlsKey::generate().expect("key");
        let csr = child
            .csr_pem(code("210214001000"), "城子坦街道")
            .expect("csr");
        let requested = RequestedKey::from_csr_pem(&csr).expect("csr parses");
        assert_eq!(requested.spki_digest(), child.spki_digest());
        let issued = ca
            .issue_child(
                &requested,
                code("210214001000"),
                "城子坦街道",
                1_767_225_600_000,
            )
            .expect("issued");
        let (_, cert) = x509_parser::parse_x509_certificate(&issued.cert_der).expect("parses");
        assert_eq!(
            spki_digest(cert.tbs_certificate.subject_pki.raw),
            child.spki_digest()
        );
        let loaded =
            Authority::load(&dir.path().join("ca.key"), &dir.path().join("ca.pem")).expect("loads");
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
    }

    #[test]
    fn a_request_that_is_not_one_is_named() {
        let err = RequestedKey::from_csr_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        )
        .expect_err("no request");
        assert!(err.to_string().starts_with("tls_csr: required"), "{err}");
        let err = RequestedKey::from_csr_pem(
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
        )
        .expect_err("garbage");
        assert!(
            err.to_string().contains("not a valid certificate request"),
            "{err}"
        );
    }
}

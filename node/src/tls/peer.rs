//! Who is at the other end of a call, as the TLS handshake showed, and the
//! check that a submitting peer is the enrolled child its summary speaks
//! for.

use tallytree_aggregator::Trust;
use tallytree_proto::{Digest, RegionCode};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::material::spki_digest;
use crate::error::{ErrorCode, ServiceError};

/// The transport identity of a caller.
#[derive(Clone, Debug, PartialEq)]
pub enum Peer {
    /// The node serves plaintext (an explicit setting, on loopback only):
    /// there is no transport identity to check.
    Plaintext,
    /// TLS without a client certificate (operators, readers, auditors).
    Anonymous,
    /// TLS with a client certificate of this node's CA, whose key is this.
    Certified {
        /// SHA-256 of the certificate's SubjectPublicKeyInfo.
        spki: Digest,
    },
}

impl Peer {
    /// The peer of a gRPC request.
    pub fn of<T>(request: &tonic::Request<T>) -> Peer {
        let Some(tls) = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>() else {
            return Peer::Plaintext;
        };
        let certs = tls.peer_certs();
        let Some(leaf) = certs.as_deref().and_then(|c| c.first()) else {
            return Peer::Anonymous;
        };
        match x509_parser::parse_x509_certificate(leaf) {
            Ok((_, cert)) => Peer::Certified {
                spki: spki_digest(cert.tbs_certificate.subject_pki.raw),
            },
            // rustls has verified the chain, so this does not happen; treat
            // it as no certificate.
            Err(_) => Peer::Anonymous,
        }
    }
}

/// Why a peer may not submit for a region.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PeerError {
    /// TLS without a client certificate.
    #[error(
        "TLS peer: no client certificate; a child submits with the certificate its enrolment gave it"
    )]
    NoCertificate,
    /// The region has no enrolment here.
    #[error("TLS peer: {0} is not enrolled at this node")]
    NotEnrolled(RegionCode),
    /// The enrolment binds no TLS key.
    #[error(
        "TLS peer: the enrolment of {region} (serial {serial}) binds no TLS key; enrol it again with its certificate request"
    )]
    NoTlsKey {
        /// The child.
        region: RegionCode,
        /// Its latest enrolment's serial.
        serial: u64,
    },
    /// The certificate's key is not the one enrolled.
    #[error(
        "TLS peer: the client certificate's key ({given}) is not the TLS key enrolled for {region} (serial {serial}, {enrolled})"
    )]
    WrongKey {
        /// The region the summary speaks for.
        region: RegionCode,
        /// Its latest enrolment's serial.
        serial: u64,
        /// Short digest of the certificate's key.
        given: String,
        /// Short digest of the enrolled key.
        enrolled: String,
    },
    /// The latest enrolment's key is revoked.
    #[error("TLS peer: the key enrolled for {region} (serial {serial}) is revoked")]
    Revoked {
        /// The child.
        region: RegionCode,
        /// Its latest enrolment's serial.
        serial: u64,
    },
}

impl ServiceError for PeerError {
    fn error_code(&self) -> ErrorCode {
        match self {
            PeerError::NoCertificate => ErrorCode::Unauthenticated,
            _ => ErrorCode::PermissionDenied,
        }
    }
}

/// Checks that `peer` may speak for `region` at `now_ms`: its certificate
/// carries the TLS key of the region's latest enrolment, and that
/// enrolment's key is not revoked. A rotation (a later serial) or a
/// revocation thus ends the old TLS identity too.
pub fn check_child(
    trust: &Trust,
    peer: &Peer,
    region: RegionCode,
    now_ms: i64,
) -> Result<(), PeerError> {
    let spki = match peer {
        Peer::Plaintext => return Ok(()),
        Peer::Anonymous => return Err(PeerError::NoCertificate),
        Peer::Certified { spki } => spki,
    };
    let enrolment = trust
        .current_enrolment(region)
        .ok_or(PeerError::NotEnrolled(region))?;
    let serial = enrolment.serial;
    let enrolled = enrolment
        .tls_spki
        .ok_or(PeerError::NoTlsKey { region, serial })?;
    if enrolled != *spki {
        return Err(PeerError::WrongKey {
            region,
            serial,
            given: spki.short(),
            enrolled: enrolled.short(),
        });
    }
    if trust
        .revocation_of(&enrolment.key)
        .is_some_and(|r| r.revoked_at_ms <= now_ms)
    {
        return Err(PeerError::Revoked { region, serial });
    }
    Ok(())
}

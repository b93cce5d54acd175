//! The tallytree protocol: every message and service, and the small types that
//! give them meaning. No I/O here except reading and writing key files.
//!
//! # Layout
//!
//! - [`pb`]: the generated protobuf messages and tonic services (`tallytree.v1`).
//! - [`region`]: [`RegionCode`], the 12-digit statistical division code, and [`Level`].
//! - [`period`]: [`Month`] (the period of a summary) and [`PeriodRange`] (queries).
//! - [`category`]: the fixed, versioned list of dispute categories.
//! - [`keys`]: Ed25519 signing keys (ring), PKCS#8 files, public keys and key ids.
//! - [`envelope`]: the DSSE envelope: PAE, signing, verification, the JSON form.
//! - [`digest`]: SHA-256 digests of statement payloads.
//! - [`statement`]: payload types and the typed open/seal of signed statements.

pub mod category;
pub mod digest;
pub mod envelope;
pub mod keys;
pub mod period;
pub mod region;
pub mod statement;

pub use category::{CATEGORY_LIST_VERSION, Category};
pub use digest::Digest;
pub use envelope::{EnvelopeError, SignedEnvelope};
pub use keys::{KeyError, PublicKey, SigningKey};
pub use period::{Month, PeriodError, PeriodRange};
pub use region::{Level, RegionCode, RegionError};

/// Generated protobuf messages and gRPC services of package `tallytree.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("tallytree.v1");

    /// The encoded file descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/tallytree_descriptor.bin"));
}

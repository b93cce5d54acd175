//! Keys: how each column family's keys are built and read back.

use tallytree_proto::{Digest, Month, PublicKey, RegionCode};

use crate::store::StoreError;

/// Slot of the task counts in the direct column family.
pub const DIRECT_TASKS_SLOT: u8 = u8::MAX;

/// Key prefix of a month.
pub fn month_key(month: Month) -> [u8; 4] {
    month.index().to_be_bytes()
}

/// The month of a stored month index.
pub fn month_of_index(index: u32, cf: &'static str) -> Result<Month, StoreError> {
    Month::from_index(index).ok_or_else(|| StoreError::Corrupt {
        cf,
        reason: "month out of range".into(),
    })
}

/// Decodes a month key.
pub fn month_of_key(bytes: &[u8], cf: &'static str) -> Result<Month, StoreError> {
    let raw: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt {
            cf,
            reason: "short month key".into(),
        })?;
    month_of_index(u32::from_be_bytes(raw), cf)
}

/// Key of a record (case or task) in its month.
pub fn record_key(month: Month, id: impl AsRef<[u8]>) -> Vec<u8> {
    let id = id.as_ref();
    let mut k = Vec::with_capacity(4 + id.len());
    k.extend_from_slice(&month_key(month));
    k.extend_from_slice(id);
    k
}

/// Key of a direct-tally slot.
pub fn direct_key(month: Month, slot: u8) -> Vec<u8> {
    let mut k = month_key(month).to_vec();
    k.push(slot);
    k
}

/// Key prefix of a region's summaries for a month.
pub fn summary_prefix(region: RegionCode, month: Month) -> Vec<u8> {
    let mut k = region.as_u64().to_be_bytes().to_vec();
    k.extend_from_slice(&month_key(month));
    k
}

/// Key of one summary revision.
pub fn summary_key(region: RegionCode, month: Month, revision: u64) -> Vec<u8> {
    let mut k = summary_prefix(region, month);
    k.extend_from_slice(&revision.to_be_bytes());
    k
}

/// Key of an enrolment.
pub fn enrolment_key(region: RegionCode, serial: u64) -> Vec<u8> {
    let mut k = region.as_u64().to_be_bytes().to_vec();
    k.extend_from_slice(&serial.to_be_bytes());
    k
}

/// Key of a revocation.
pub fn revocation_key(region: RegionCode, key: &PublicKey) -> Vec<u8> {
    let mut k = region.as_u64().to_be_bytes().to_vec();
    k.extend_from_slice(Digest::of(&key.0).as_ref());
    k
}

/// Key of a receipt from the parent.
pub fn receipt_key(month: Month, revision: u64) -> Vec<u8> {
    let mut k = month_key(month).to_vec();
    k.extend_from_slice(&revision.to_be_bytes());
    k
}

/// Key of an equivocation record.
pub fn evidence_key(region: RegionCode, month: Month, digest: &Digest) -> Vec<u8> {
    let mut k = summary_prefix(region, month);
    k.extend_from_slice(digest.as_ref());
    k
}

/// Names of single values in the meta column family.
pub mod meta {
    /// Prefix of the enrolments of this node installed from its parent
    /// (followed by the serial, u64 BE); value: `Envelope`.
    pub const OWN_ENROLMENT: &[u8] = b"own_enrolment/";
    /// The parent's raw 32-byte public key.
    pub const PARENT_KEY: &[u8] = b"parent_key";
    /// The parent's CA certificate (PEM), from the installed enrolment: the
    /// parent's server is verified against it.
    pub const PARENT_CA: &[u8] = b"parent_ca";
    /// This node's client certificate (PEM) from its parent, for the TLS key
    /// the installed enrolment binds.
    pub const CLIENT_CERT: &[u8] = b"client_cert";
    /// Prefix of the commit marks of bulk imports (followed by the import
    /// id, u64 BE); value empty. A mark means: the import is decided, its
    /// rows in staging are to be applied (again, after a crash).
    pub const IMPORT_COMMITTED: &[u8] = b"import_committed/";
}

/// Key of the commit mark of an import.
pub fn import_commit_key(import: u64) -> Vec<u8> {
    let mut k = meta::IMPORT_COMMITTED.to_vec();
    k.extend_from_slice(&import.to_be_bytes());
    k
}

/// What a staging key holds after the import id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StagedKind {
    /// A case, by id.
    Case = 1,
    /// A task, by id.
    Task = 2,
}

/// Key prefix of everything staged for `import`.
pub fn staging_prefix(import: u64) -> [u8; 8] {
    import.to_be_bytes()
}

/// Key prefix of the staged rows of one kind.
pub fn staging_kind_prefix(import: u64, kind: StagedKind) -> [u8; 9] {
    let mut k = [0; 9];
    k[..8].copy_from_slice(&import.to_be_bytes());
    k[8] = kind as u8;
    k
}

/// Key of a staged row.
pub fn staging_key(import: u64, kind: StagedKind, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + id.len());
    k.extend_from_slice(&staging_kind_prefix(import, kind));
    k.extend_from_slice(id.as_bytes());
    k
}

/// The import id a staging key (or a commit mark's suffix) belongs to.
pub fn staging_import(key: &[u8]) -> Result<u64, StoreError> {
    key.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt {
            cf: "staging",
            reason: "short key".into(),
        })
}

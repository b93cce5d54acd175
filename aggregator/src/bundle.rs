//! Evidence bundle files: a stream of length-delimited `EvidenceItem`s
//! ending with a trailer that counts the items and digests their bytes, so
//! a truncated or altered file is detected before anything is trusted.
//!
//! [`TrailerDigest`] is that count and digest, computed once here for every
//! writer (the node's export stream, bundle files) and every reader (bundle
//! files, `tallytree audit export` receiving the node's stream).

use std::io::{Read, Write};

use prost::Message;
use tallytree_proto::pb;

/// Largest single item accepted (a summary with thousands of children).
pub const MAX_ITEM_BYTES: usize = 16 << 20;

/// Items up to this size are read into a buffer of the size their prefix
/// gives; larger ones grow with the bytes that actually arrive.
const PREALLOCATED_ITEM_BYTES: usize = 64 << 10;

/// Why a bundle cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The file cannot be read.
    #[error("bundle: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a bundle.
    #[error("bundle item {index}: {reason}")]
    Corrupt {
        /// Position of the item.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file ends before its trailer.
    #[error("bundle: truncated after {0} items (no trailer)")]
    Truncated(u64),
    /// The trailer does not match what came before it.
    #[error("bundle trailer: {0}")]
    Trailer(String),
}

/// The running item count and SHA-256 a trailer states: over the
/// length-delimited bytes of every item before the trailer, header
/// included.
pub struct TrailerDigest {
    /// Digest of every item added.
    hasher: ring::digest::Context,
    /// Items added.
    items: u64,
}

impl Default for TrailerDigest {
    fn default() -> TrailerDigest {
        TrailerDigest {
            hasher: ring::digest::Context::new(&ring::digest::SHA256),
            items: 0,
        }
    }
}

impl std::fmt::Debug for TrailerDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrailerDigest")
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}

impl TrailerDigest {
    /// Adds an item; returns its length-delimited bytes, for a writer.
    pub fn add(&mut self, item: &pb::EvidenceItem) -> Vec<u8> {
        let bytes = item.encode_length_delimited_to_vec();
        self.add_bytes(&bytes, &[]);
        bytes
    }

    /// Adds an item read as its length prefix and its message bytes.
    pub fn add_bytes(&mut self, length_prefix: &[u8], message: &[u8]) {
        self.hasher.update(length_prefix);
        self.hasher.update(message);
        self.items += 1;
    }

    /// Items added so far.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// The trailer stating the items added.
    pub fn trailer(self) -> pb::EvidenceTrailer {
        pb::EvidenceTrailer {
            items: self.items,
            digest: self.hasher.finish().as_ref().to_vec(),
        }
    }

    /// Checks a trailer against the items added.
    pub fn check(self, trailer: &pb::EvidenceTrailer) -> Result<(), BundleError> {
        let items = self.items;
        let digest = self.hasher.finish();
        if trailer.items != items {
            return Err(BundleError::Trailer(format!(
                "states {} items, but {items} precede it",
                trailer.items
            )));
        }
        if trailer.digest != digest.as_ref() {
            return Err(BundleError::Trailer(
                "digest does not match the items (altered or corrupted)".into(),
            ));
        }
        Ok(())
    }
}

/// Writes items and, on [`BundleWriter::finish`], the trailer.
pub struct BundleWriter<W: Write> {
    /// The destination.
    out: W,
    /// Count and digest of every item written.
    digest: TrailerDigest,
}

impl<W: Write> BundleWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> BundleWriter<W> {
        BundleWriter {
            out,
            digest: TrailerDigest::default(),
        }
    }

    /// Writes one item. A trailer item is recomputed, not copied: pass
    /// items from a stream and the trailer is written by `finish`.
    pub fn write(&mut self, item: &pb::EvidenceItem) -> std::io::Result<()> {
        if matches!(item.item, Some(pb::evidence_item::Item::Trailer(_))) {
            return Ok(());
        }
        let bytes = self.digest.add(item);
        self.out.write_all(&bytes)
    }

    /// Writes the trailer and returns the destination.
    pub fn finish(mut self) -> std::io::Result<W> {
        let trailer = pb::EvidenceItem {
            item: Some(pb::evidence_item::Item::Trailer(self.digest.trailer())),
        };
        self.out
            .write_all(&trailer.encode_length_delimited_to_vec())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads items, checking the trailer at the end. Yields every item but the
/// trailer; a missing or wrong trailer is an error item.
pub struct BundleReader<R: Read> {
    /// The source.
    input: R,
    /// Count and digest of every item read.
    digest: TrailerDigest,
    /// The trailer was checked (or an error returned).
    done: bool,
    /// Reused buffer.
    buf: Vec<u8>,
}

impl<R: Read> BundleReader<R> {
    /// A reader over `input`.
    pub fn new(input: R) -> BundleReader<R> {
        BundleReader {
            input,
            digest: TrailerDigest::default(),
            done: false,
            buf: Vec::new(),
        }
    }

    /// Bytes of varint length prefix; `None` at a clean end of file.
    fn read_len(&mut self) -> Result<Option<(usize, Vec<u8>)>, BundleError> {
        let mut prefix = Vec::with_capacity(4);
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let mut byte = [0u8];
            let n = self.input.read(&mut byte)?;
            if n == 0 {
                if prefix.is_empty() {
                    return Ok(None);
                }
                return Err(BundleError::Truncated(self.digest.items()));
            }
            prefix.push(byte[0]);
            value |= u64::from(byte[0] & 0x7f) << shift;
            if byte[0] & 0x80 == 0 {
                return Ok(Some((value as usize, prefix)));
            }
        }
        Err(BundleError::Corrupt {
            index: self.digest.items(),
            reason: "length prefix too long".into(),
        })
    }

    fn next_item(&mut self) -> Result<Option<pb::EvidenceItem>, BundleError> {
        let Some((len, prefix)) = self.read_len()? else {
            return Err(BundleError::Truncated(self.digest.items()));
        };
        if len > MAX_ITEM_BYTES {
            return Err(BundleError::Corrupt {
                index: self.digest.items(),
                reason: format!("item of {len} bytes exceeds {MAX_ITEM_BYTES}"),
            });
        }
        if len <= PREALLOCATED_ITEM_BYTES {
            self.buf.resize(len, 0);
            self.input
                .read_exact(&mut self.buf)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => {
                        BundleError::Truncated(self.digest.items())
                    }
                    _ => BundleError::Io(e),
                })?;
        } else {
            // Read what arrives rather than allocating what the prefix
            // claims: a five-byte file claiming a 16 MiB item must not cost
            // 16 MiB.
            self.buf.clear();
            (&mut self.input)
                .take(len as u64)
                .read_to_end(&mut self.buf)?;
            if self.buf.len() < len {
                return Err(BundleError::Truncated(self.digest.items()));
            }
        }
        let item =
            pb::EvidenceItem::decode(self.buf.as_slice()).map_err(|e| BundleError::Corrupt {
                index: self.digest.items(),
                reason: e.to_string(),
            })?;
        if let Some(pb::evidence_item::Item::Trailer(t)) = &item.item {
            std::mem::take(&mut self.digest).check(t)?;
            let mut rest = [0u8];
            if self.input.read(&mut rest)? != 0 {
                return Err(BundleError::Trailer("data after the trailer".into()));
            }
            return Ok(None);
        }
        self.digest.add_bytes(&prefix, &self.buf);
        Ok(Some(item))
    }
}

impl<R: Read> Iterator for BundleReader<R> {
    type Item = Result<pb::EvidenceItem, BundleError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_item() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = BundleWriter::new(Vec::new());
        for i in 0..3 {
            w.write(&pb::EvidenceItem {
                item: Some(pb::evidence_item::Item::Header(pb::EvidenceHeader {
                    region: format!("{i}"),
                    ..Default::default()
                })),
            })
            .expect("write");
        }
        w.finish().expect("finish")
    }

    #[test]
    fn a_bundle_round_trips_and_damage_is_detected() {
        let bytes = sample();
        let items: Vec<_> = BundleReader::new(bytes.as_slice())
            .collect::<Result<_, _>>()
            .expect("reads");
        assert_eq!(items.len(), 3);

        let truncated = &bytes[..bytes.len() - 10];
        let err = BundleReader::new(truncated)
            .find_map(Result::err)
            .expect("error");
        assert!(
            matches!(err, BundleError::Truncated(_) | BundleError::Corrupt { .. }),
            "{err}"
        );

        let mut altered = bytes.clone();
        altered[4] ^= 1;
        let err = BundleReader::new(altered.as_slice())
            .find_map(Result::err)
            .expect("error");
        assert!(err.to_string().contains("bundle"), "{err}");

        let mut extra = bytes;
        extra.push(0);
        assert!(BundleReader::new(extra.as_slice()).any(|r| r.is_err()));
    }

    #[test]
    fn a_length_prefix_claiming_megabytes_costs_only_what_arrives() {
        // 0xFF 0xFF 0xFF 0x07: an item of 16 MiB - 1, followed by 3 bytes.
        let bytes = [0xFF, 0xFF, 0xFF, 0x07, 0x0A, 0x01, 0x00];
        let mut reader = BundleReader::new(bytes.as_slice());
        assert!(matches!(
            reader.next(),
            Some(Err(BundleError::Truncated(0)))
        ));
        assert!(reader.buf.capacity() < 1 << 10, "{}", reader.buf.capacity());
    }
}

//! Where a running node reports the address it listens on.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// The file in the data directory where a running node reports the address
/// it listens on, written once it holds the socket and removed when it stops.
/// With `listen = "127.0.0.1:0"` it is the only way to learn the port; a
/// supervisor that starts many nodes this way gets ports no two nodes can
/// share.
#[derive(Clone, Debug, PartialEq)]
pub struct AddressFile {
    /// `<data_dir>/listen.addr`.
    path: PathBuf,
}

impl AddressFile {
    /// The file's name in the data directory.
    pub const NAME: &'static str = "listen.addr";

    /// The console's file in the data directory.
    pub const CONSOLE_NAME: &'static str = "console.addr";

    /// The address file of the node whose data directory is `data_dir`.
    pub fn in_data_dir(data_dir: &Path) -> AddressFile {
        AddressFile {
            path: data_dir.join(Self::NAME),
        }
    }

    /// Where the node whose data directory is `data_dir` reports the
    /// address its web console listens on.
    pub fn console_in_data_dir(data_dir: &Path) -> AddressFile {
        AddressFile {
            path: data_dir.join(Self::CONSOLE_NAME),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `addr`: to a temporary file first, renamed over the file, so a
    /// reader finds a whole address or none.
    pub fn write(&self, addr: SocketAddr) -> std::io::Result<()> {
        let tmp = self.path.with_extension("addr.tmp");
        std::fs::write(&tmp, format!("{addr}\n"))?;
        std::fs::rename(&tmp, &self.path)
    }

    /// The reported address; `None` while no running node has written it.
    pub fn read(&self) -> std::io::Result<Option<SocketAddr>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        text.trim().parse().map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not an address ({e})", self.path.display()),
            )
        })
    }

    /// Removes the file; a missing file is not an error.
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

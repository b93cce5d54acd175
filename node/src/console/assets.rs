//! The console's files, embedded in the binary: its stylesheet, its script
//! and the vendored chart library (node/assets/vendor/echarts, with its
//! licence and checksum). Each is served under a name that carries a hash
//! of its content, cached for a year, and gzipped once.

use std::sync::OnceLock;

use axum::{
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its name without the hash, e.g. "console.css".
    pub name: &'static str,
    /// Its content type.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

/// The stylesheet.
pub const CSS: Asset = Asset {
    name: "console.css",
    content_type: "text/css; charset=utf-8",
    bytes: include_bytes!("../../assets/console/console.css"),
};
/// The page script: draws each page's charts from its tables' data.
pub const JS: Asset = Asset {
    name: "console.js",
    content_type: "text/javascript; charset=utf-8",
    bytes: include_bytes!("../../assets/console/console.js"),
};
/// Apache ECharts 6.1.0, the common bundle.
pub const ECHARTS: Asset = Asset {
    name: "echarts.common.min.js",
    content_type: "text/javascript; charset=utf-8",
    bytes: include_bytes!("../../assets/vendor/echarts/echarts.common.min.js"),
};

const ALL: [&Asset; 3] = [&CSS, &JS, &ECHARTS];

/// An asset's hashed name and its gzipped bytes, made once.
struct Prepared {
    url: String,
    gzipped: Vec<u8>,
}

fn prepared(i: usize) -> &'static Prepared {
    static PREPARED: [OnceLock<Prepared>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    PREPARED[i].get_or_init(|| {
        let a = ALL[i];
        let digest = ring::digest::digest(&ring::digest::SHA256, a.bytes);
        let hash = hex::encode(&digest.as_ref()[..6]);
        let (stem, ext) = a.name.rsplit_once('.').unwrap_or((a.name, ""));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let gzipped = std::io::Write::write_all(&mut gz, a.bytes)
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        Prepared {
            url: format!("/assets/{stem}.{hash}.{ext}"),
            gzipped,
        }
    })
}

impl Asset {
    fn index(&self) -> usize {
        ALL.iter().position(|a| a.name == self.name).unwrap_or(0)
    }

    /// The URL pages link it by.
    pub fn url(&self) -> &'static str {
        &prepared(self.index()).url
    }
}

/// `/assets/<stem>.<hash>.<ext>`; gzipped when the browser takes it.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let path = format!("/assets/{file}");
    let Some(i) = (0..ALL.len()).find(|i| prepared(*i).url == path) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let asset = ALL[i];
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut response = if gzip && !prepared(i).gzipped.is_empty() {
        let mut r = prepared(i).gzipped.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        asset.bytes.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

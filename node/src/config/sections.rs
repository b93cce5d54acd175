//! The sections of a node's configuration, each with its defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Overload and abuse limits. A call beyond a concurrency limit is shed at
/// once with RESOURCE_EXHAUSTED (callers back off and retry); a party over
/// its rate too.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Calls in progress at the node, all services together.
    pub max_concurrent_calls: usize,
    /// Submissions from children being read and verified at once (each may
    /// be up to `federation.max_submission_bytes`).
    pub max_concurrent_submissions: usize,
    /// Calls in progress on one connection.
    pub max_concurrent_calls_per_connection: usize,
    /// HTTP/2 streams one connection may open at once.
    pub max_streams_per_connection: u32,
    /// Largest header block of a call (bytes).
    pub max_header_bytes: u32,
    /// Streams a client may reset before the server answers them, per
    /// connection (the HTTP/2 rapid-reset attack).
    pub max_pending_resets: usize,
    /// A call's handler not done in this time is cancelled (ms).
    pub request_timeout_ms: u64,
    /// HTTP/2 ping interval on idle connections (ms); a peer that does not
    /// answer within `keepalive_timeout_ms` is dropped.
    pub keepalive_interval_ms: u64,
    /// See `keepalive_interval_ms` (ms).
    pub keepalive_timeout_ms: u64,
    /// Submit calls a second one child may make, sustained.
    pub submit_per_second: u32,
    /// Submit calls one child may make at once.
    pub submit_burst: u32,
    /// Intake calls a second one credential may make, sustained.
    pub intake_per_second: u32,
    /// Intake calls one credential may make at once.
    pub intake_burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_concurrent_calls: 256,
            max_concurrent_submissions: 16,
            max_concurrent_calls_per_connection: 64,
            max_streams_per_connection: 128,
            max_header_bytes: 16 << 10,
            max_pending_resets: 32,
            request_timeout_ms: 600_000,
            keepalive_interval_ms: 30_000,
            keepalive_timeout_ms: 20_000,
            submit_per_second: 50,
            submit_burst: 200,
            intake_per_second: 100,
            intake_burst: 400,
        }
    }
}

/// Transport security. TLS is always on, except with `plaintext = true`,
/// which is refused unless the node listens on a loopback address.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Serve and push without TLS: only for trying things on one machine;
    /// refused unless `listen` is a loopback address.
    pub plaintext: bool,
    /// This unit's TLS key (ECDSA P-256, PKCS#8 PEM); its enrolment binds it
    /// and its client certificate carries it.
    pub key_file: PathBuf,
    /// The key of this unit's CA, which issues its children's and its own
    /// server's certificates.
    pub ca_key_file: PathBuf,
    /// This unit's CA certificate: what clients of this node trust.
    pub ca_file: PathBuf,
    /// Host names and IP addresses clients reach this node by, beyond
    /// localhost and the loopback addresses (which the server certificate
    /// always names, with `<code>.node.tallytree` and a specific `listen`
    /// address).
    pub server_names: Vec<String>,
    /// A TLS handshake not finished in this time is dropped (ms).
    pub handshake_timeout_ms: u64,
    /// At most this many TLS handshakes at once.
    pub max_handshakes: usize,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            plaintext: false,
            key_file: "tls.key".into(),
            ca_key_file: "ca.key".into(),
            ca_file: "ca.pem".into(),
            server_names: Vec::new(),
            handshake_timeout_ms: 10_000,
            max_handshakes: 256,
        }
    }
}

impl TlsConfig {
    /// The unit's TLS files.
    pub fn files(&self) -> crate::tls::material::TlsFiles {
        crate::tls::material::TlsFiles {
            key: self.key_file.clone(),
            ca_key: self.ca_key_file.clone(),
            ca_cert: self.ca_file.clone(),
        }
    }
}

/// Who may call what.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// The named credentials (hashes only), managed with `tallytree token`;
    /// the node reads it again when it changes.
    pub credentials_file: PathBuf,
    /// Publish this node's figures openly: Query answers without a
    /// credential. Off unless chosen; evidence export still needs an
    /// auditor.
    pub public_figures: bool,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            credentials_file: "credentials.toml".into(),
            public_figures: false,
        }
    }
}

/// Limits on submissions from children.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// Largest submission accepted, in bytes (a first push carries the
    /// child's whole subtree of summaries and enrolments).
    pub max_submission_bytes: usize,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            max_submission_bytes: 64 << 20,
        }
    }
}

/// The parent node, and how to reach it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ParentConfig {
    /// The parent's gRPC URL, e.g. "https://10.0.0.2:7400"; none at the top.
    /// The parent is verified by its CA (from the enrolment) and its code,
    /// whatever host the URL names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Timeout of one submission (ms). A first push carries the child's
    /// whole subtree, which a loaded parent may take seconds to verify.
    pub timeout_ms: u64,
    /// First retry delay after a failed push (ms); doubles up to the maximum, with jitter.
    pub backoff_min_ms: u64,
    /// Longest retry delay (ms).
    pub backoff_max_ms: u64,
}

impl Default for ParentConfig {
    fn default() -> Self {
        ParentConfig {
            address: None,
            timeout_ms: 30_000,
            backoff_min_ms: 100,
            backoff_max_ms: 30_000,
        }
    }
}

/// Intake settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// Handling period given to a case recorded without a deadline, in days.
    pub default_deadline_days: u32,
    /// Most rows one bulk import may carry.
    pub max_import_rows: u64,
    /// Largest gRPC message accepted, in bytes.
    pub max_message_bytes: usize,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            default_deadline_days: 30,
            max_import_rows: 2_000_000,
            max_message_bytes: 8 << 20,
        }
    }
}

/// When changed months get a new signed revision.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SignerConfig {
    /// Sign once no change has arrived for this long (ms).
    pub debounce_ms: u64,
    /// Sign at the latest this long after the first unsigned change (ms).
    pub max_delay_ms: u64,
}

impl Default for SignerConfig {
    fn default() -> Self {
        SignerConfig {
            debounce_ms: 50,
            max_delay_ms: 500,
        }
    }
}

/// The web console: a second listener, HTTPS with the node's certificate,
/// for the people who read, enter and check figures in a browser.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Address the console listens on; none: no console. Port 0 lets the
    /// system pick, reported in `<data_dir>/console.addr`.
    pub listen: Option<std::net::SocketAddr>,
    /// A month's first report is late when signed more than this many days
    /// after the month's end (DHIS2's "timely" default is 15).
    pub late_after_days: u32,
    /// A session not used for this long ends (minutes).
    pub session_idle_minutes: u32,
    /// A session ends this long after login, used or not (hours).
    pub session_max_hours: u32,
    /// Largest file an operator may upload (bytes).
    pub max_upload_bytes: usize,
    /// Login attempts one client address may make a minute.
    pub logins_per_minute: u32,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            listen: None,
            late_after_days: 15,
            session_idle_minutes: 60,
            session_max_hours: 12,
            max_upload_bytes: 32 << 20,
            logins_per_minute: 10,
        }
    }
}

//! The sections of a node's configuration, each with its defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tallytree_aggregator::findings::Params;

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
            session_idle_minutes: 60,
            session_max_hours: 12,
            max_upload_bytes: 32 << 20,
            logins_per_minute: 10,
        }
    }
}

/// The findings' thresholds (docs/FINDINGS.md has each rule's definition).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FindingsConfig {
    /// A month's report is on time within this many days after the month's
    /// end (DHIS2's timely days); the console's completeness view uses it
    /// too.
    pub timely_days: u32,
    /// A month signed this many times or more is flagged.
    pub many_revisions: u64,
    /// Tail probability below which a proportion is too good against its
    /// siblings (0.001: the upper 99.8 % funnel limit).
    pub funnel_p: f64,
    /// Modified z-score above which registered cases are an outlier.
    pub outlier_z: f64,
    /// Tail probability below which a count is unusual.
    pub count_p: f64,
    /// Least change, in cases or tasks, a count rule flags.
    pub min_change: u64,
    /// Tolerance of the consistency over years (WHO: 0.33).
    pub consistency_tolerance: f64,
    /// Months in a row with the same figures that make a flat line.
    pub flatline_months: u32,
}

impl Default for FindingsConfig {
    fn default() -> Self {
        FindingsConfig::from(&Params::default())
    }
}

impl From<&Params> for FindingsConfig {
    fn from(p: &Params) -> Self {
        FindingsConfig {
            timely_days: p.timely_days,
            many_revisions: p.many_revisions,
            funnel_p: p.funnel_p,
            outlier_z: p.outlier_z,
            count_p: p.count_p,
            min_change: p.min_change,
            consistency_tolerance: p.consistency_tolerance,
            flatline_months: p.flatline_months,
        }
    }
}

impl FindingsConfig {
    /// The thresholds, for units in the time zone `utc_offset_hours`.
    pub fn params(&self, utc_offset_hours: i32) -> Params {
        Params {
            timely_days: self.timely_days,
            utc_offset_minutes: utc_offset_hours * 60,
            many_revisions: self.many_revisions,
            funnel_p: self.funnel_p,
            outlier_z: self.outlier_z,
            count_p: self.count_p,
            min_change: self.min_change,
            consistency_tolerance: self.consistency_tolerance,
            flatline_months: self.flatline_months,
            ..Params::default()
        }
    }

    /// The first broken rule, naming its key.
    pub fn check(&self) -> Result<(), String> {
        let probability = |key: &str, p: f64| {
            (p > 0.0 && p < 1.0)
                .then_some(())
                .ok_or_else(|| format!("findings.{key} ({p}): must be between 0 and 1"))
        };
        if self.timely_days > 366 {
            return Err(format!(
                "findings.timely_days ({}): at most 366",
                self.timely_days
            ));
        }
        probability("funnel_p", self.funnel_p)?;
        probability("count_p", self.count_p)?;
        // Written so that NaN is refused too.
        let positive = |key: &str, v: f64| {
            (v > 0.0 && v.is_finite())
                .then_some(())
                .ok_or_else(|| format!("findings.{key} ({v}): must be above 0"))
        };
        positive("outlier_z", self.outlier_z)?;
        positive("consistency_tolerance", self.consistency_tolerance)?;
        if self.flatline_months < 2 || self.many_revisions < 2 {
            return Err(
                "findings.flatline_months, findings.many_revisions: must be at least 2".to_owned(),
            );
        }
        Ok(())
    }
}

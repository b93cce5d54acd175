//! The channel a child pushes to its parent on: TLS with the client
//! certificate its enrolment gave it, the parent verified against the
//! parent's CA (also from the enrolment) under the parent's own name
//! ([`node_dns_name`]), whatever address reaches it.

use std::time::Duration;

use tallytree_proto::RegionCode;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use super::material::node_dns_name;

/// What a child holds to reach its parent over TLS.
#[derive(Clone, PartialEq)]
pub struct ParentTls {
    /// The parent's code: the name its server certificate must carry.
    pub parent: RegionCode,
    /// The parent's CA certificate, PEM.
    pub ca_pem: String,
    /// This unit's client certificate, PEM.
    pub cert_pem: String,
    /// This unit's TLS key, PKCS#8 PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for ParentTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ParentTls({})", self.parent)
    }
}

/// An endpoint for the parent at `address`: TLS with `tls`, plaintext
/// without (only when the node is configured so).
pub fn parent_endpoint(
    address: &str,
    tls: Option<&ParentTls>,
    timeout: Duration,
) -> Result<Endpoint, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(address.to_owned())?
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    match tls {
        None => Ok(endpoint),
        Some(t) => endpoint.tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&t.ca_pem))
                .identity(Identity::from_pem(&t.cert_pem, &t.key_pem))
                .domain_name(node_dns_name(t.parent)),
        ),
    }
}

//! Transport security. Each unit runs a small CA ([`material::Authority`])
//! for its children and its own server; a child's TLS key is bound into its
//! signed enrolment, and at Submit the parent checks that the TLS peer is
//! the enrolled child the summary speaks for ([`peer::check_child`]).
//!
//! - [`material`]: keys, the CA, certificate requests and issuing (no
//!   sockets; the CLI's `init` uses it).
//! - [`server`]: the rustls server configuration and the accepted
//!   connections, handshakes bounded.
//! - [`peer`]: a call's transport identity, and the check of a child.
//! - [`client`]: the channel to the parent with the child's certificate.

#[cfg(feature = "server")]
pub mod client;
pub mod material;
#[cfg(feature = "server")]
pub mod peer;
#[cfg(feature = "server")]
pub mod server;

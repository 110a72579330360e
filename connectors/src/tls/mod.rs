//! TLS for Medway's listeners and clients: rustls with the **ring** provider only (aws-lc-rs is
//! never linked), TLS 1.2 and 1.3.
//!
//! - [`server`]: `[source.tls]` of a listening source (MLLP, HTTP) — certificate and key from
//!   PEM files, optional mutual TLS against a client CA with an allow-list of subjects, and a
//!   reloader that picks up replaced files without a restart (new connections only).
//! - [`client`]: the client side (MLLP sender, HTTP sender, `medway send`) — trust roots, an
//!   optional client certificate, an optional server-name override.
//! - [`subject`]: the names a certificate carries (CN, SAN DNS), for the allow-list and logs.

pub mod client;
pub mod server;
pub mod subject;

pub use client::{ClientTls, ClientTlsSettings};
pub use server::{ServerTls, ServerTlsSettings, TlsError};

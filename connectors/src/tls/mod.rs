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

use medway_engine::config::SettingsError;

/// Re-homes an error about a key of the `tls` table (`cert_file`) to the table itself: the
/// message names `tls.cert_file`, and the location is the `tls = {…}` line (or the source's
/// table when `[source.tls]` is its own table).
pub fn in_tls_table(error: SettingsError) -> SettingsError {
    let message = match &error.key {
        Some(key) if !error.message.starts_with("tls.") && !error.message.contains("`tls.") => {
            format!("tls.{key}: {}", error.message)
        }
        _ => error.message,
    };
    SettingsError {
        message,
        key: Some("tls".to_string()),
        hint: error.hint,
    }
}

//! The HTTP sender's TLS client configuration now lives in `crate::tls::client` (shared with
//! the MLLP sender and `medway send`); this module keeps the names `http.rs` uses.

pub use crate::tls::client::{TlsFiles, client_config};

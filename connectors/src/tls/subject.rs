//! The names a certificate is known by: subject common names and SAN DNS names. Used for the
//! mutual-TLS allow-list and to name a client in logs (a machine identity, never patient data).

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Subject CNs and SAN DNS names of a DER certificate; `None` if it does not parse.
pub fn names(der: &[u8]) -> Option<Vec<String>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let mut out: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                out.push((*dns).to_string());
            }
        }
    }
    Some(out)
}

/// The first subject CN (or SAN DNS name) for logs; `"?"` when there is none.
pub fn display_name(der: &[u8]) -> String {
    names(der)
        .and_then(|names| names.into_iter().next())
        .unwrap_or_else(|| "?".to_string())
}

/// Whether any of the certificate's names is on `allowed` (ASCII case-insensitive, as DNS
/// names are).
pub fn is_allowed(der: &[u8], allowed: &[String]) -> bool {
    names(der).is_some_and(|names| {
        names
            .iter()
            .any(|name| allowed.iter().any(|a| a.eq_ignore_ascii_case(name)))
    })
}

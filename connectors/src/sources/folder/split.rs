//! What one inbox file holds: one HL7 v2 message, several (back-to-back, or an FHS/BHS batch,
//! split exactly like `medway hl7 inspect` does), or one JSON document. Also the file's digest,
//! which names each message's `origin` so a re-read file is recognised by the store.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// A file ready to submit.
#[derive(Debug)]
pub struct Prepared {
    /// SHA-256 of the whole file, lowercase hex.
    pub digest: String,
    /// The messages, in file order (zero-copy slices of the file).
    pub messages: Vec<Bytes>,
}

impl Prepared {
    /// The ingestion key of message `index` of the file `name` last modified at `modified`:
    /// stable when the same file is read again after a crash (same name, mtime and bytes), new
    /// when someone drops the same content again as a new file (a deliberate resend).
    pub fn origin(&self, name: &str, modified: SystemTime, index: usize) -> String {
        let nanos = modified
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("file:{name}:{nanos}:{}:{index}", self.digest)
    }
}

/// Why a file cannot be submitted at all. The text names the problem and its position, never
/// bytes of the file (they may be patient data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// Splits a file into messages. JSON when the first non-blank byte is `{` or `[`, else HL7 v2.
pub fn prepare(bytes: Bytes) -> Result<Prepared, Unreadable> {
    let digest = hex(&Sha256::digest(&bytes));
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let messages = match first {
        None => return Err(Unreadable("the file is empty".into())),
        Some(b'{' | b'[') => {
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                return Err(Unreadable(format!(
                    "not a valid JSON document ({:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                )));
            }
            vec![bytes]
        }
        Some(_) => match medway_hl7::batch::split(&bytes) {
            Ok(batch) => batch.messages,
            // The kind's label and offset only: the full text may quote bytes of the file.
            Err(e) => {
                return Err(Unreadable(format!(
                    "not an HL7 v2 file: {} at byte {}",
                    e.kind.label(),
                    e.offset
                )));
            }
        },
    };
    Ok(Prepared { digest, messages })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &[u8] = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|C1|P|2.5.1\rPID|1||X\r";

    #[test]
    fn one_message_is_the_whole_file() {
        let p = prepare(Bytes::from_static(ONE)).unwrap();
        assert_eq!(p.messages, vec![Bytes::from_static(ONE)]);
        assert_eq!(p.digest.len(), 64);
        let at = UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(
            p.origin("a.hl7", at, 0),
            format!("file:a.hl7:1700000000123456789:{}:0", p.digest)
        );
    }

    #[test]
    fn batches_and_back_to_back_messages_split() {
        let mut file = b"FHS|^~\\&\rBHS|^~\\&\r".to_vec();
        for i in 0..3 {
            file.extend_from_slice(
                format!("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|C{i}|P|2.5.1\rPID|1||X\r").as_bytes(),
            );
        }
        file.extend_from_slice(b"BTS|3\rFTS|1\r");
        let p = prepare(Bytes::from(file)).unwrap();
        assert_eq!(p.messages.len(), 3);
        assert!(p.messages[2].starts_with(b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|C2|"));
    }

    #[test]
    fn json_is_one_document() {
        let p = prepare(Bytes::from_static(b" {\"resourceType\":\"Patient\"}\n")).unwrap();
        assert_eq!(p.messages.len(), 1);
        let bad = prepare(Bytes::from_static(b"{\"secret\": tru")).unwrap_err();
        assert!(bad.0.starts_with("not a valid JSON document"), "{bad}");
        assert!(!bad.0.contains("secret"));
    }

    #[test]
    fn garbage_and_empty_files_are_unreadable_without_quoting_them() {
        let e = prepare(Bytes::from_static(b"Dear Dr Smith, patient 12345")).unwrap_err();
        assert!(e.0.starts_with("not an HL7 v2 file"), "{e}");
        assert!(!e.0.contains("Smith"));
        assert_eq!(
            prepare(Bytes::from_static(b"\n \n")).unwrap_err().0,
            "the file is empty"
        );
    }

    #[test]
    fn identical_bytes_give_identical_origins() {
        let a = prepare(Bytes::from_static(ONE)).unwrap();
        let b = prepare(Bytes::copy_from_slice(ONE)).unwrap();
        let at = SystemTime::now();
        assert_eq!(a.origin("x.hl7", at, 0), b.origin("x.hl7", at, 0));
        // The same bytes dropped again later (a new file) are a new message.
        let later = at + std::time::Duration::from_secs(1);
        assert_ne!(a.origin("x.hl7", at, 0), b.origin("x.hl7", later, 0));
        assert_ne!(a.origin("x.hl7", at, 0), b.origin("y.hl7", at, 0));
        let c = prepare(Bytes::from(
            ONE.iter().chain(b"\r").copied().collect::<Vec<_>>(),
        ))
        .unwrap();
        assert_ne!(a.digest, c.digest);
    }
}

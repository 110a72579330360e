//! Editing and re-encoding.
//!
//! `set` rebuilds only the edited segment's bytes and splices them into a new buffer; every
//! other byte (BOM, other segments, the original segment terminators — CR, CRLF or LF —,
//! blank lines and the trailer) is copied unchanged, so a modified message is re-encoded with
//! the original terminator style and an unmodified one is its input byte for byte. The index is
//! then rebuilt from the new buffer (O(message) per edit: edits are rare compared to reads).
//!
//! Values are charset-encoded, then escaped (delimiters, the escape character and CR/LF become
//! escape sequences), so an edit can never change the segment/field structure around it.
//! Never panics: all indices come from validated spans or are capped by `path::MAX_INDEX`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{ParseErrorKind, PathError};
use crate::escape::escape;
use crate::message::Message;
use crate::parser;
use crate::path::Path;

/// Replaces the `n`-th (1-based) piece of `content` split on `sep` with `f(old piece)`,
/// appending empty pieces when there are fewer than `n`.
fn replace_nth(
    content: &[u8],
    sep: u8,
    n: u32,
    f: impl FnOnce(&[u8]) -> Result<Vec<u8>, PathError>,
) -> Result<Vec<u8>, PathError> {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let mut parts: Vec<&[u8]> = content.split(|&b| b == sep).collect();
    let replaced = f(parts.get(n - 1).copied().unwrap_or(&[]))?;
    if parts.len() < n {
        parts.resize(n, &[]);
    }
    parts[n - 1] = &replaced;
    let mut out = Vec::with_capacity(content.len() + replaced.len() + n);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        out.extend_from_slice(p);
    }
    Ok(out)
}

fn level(d_role: u8, field: u8, idx: u32, name: &'static str) -> Result<(), PathError> {
    if d_role == field && idx > 1 {
        Err(PathError::NoSeparator(name))
    } else {
        Ok(())
    }
}

pub(crate) fn set(msg: &mut Message, path: &Path, value: &str) -> Result<(), PathError> {
    if path.segment == *b"MSH" && path.field <= 2 {
        return Err(PathError::ReadOnly);
    }
    let d = msg.delims;
    level(d.repetition, d.field, path.repetition, "repetition")?;
    level(
        d.component,
        d.field,
        path.component.unwrap_or(1),
        "component",
    )?;
    level(
        d.subcomponent,
        d.field,
        path.subcomponent.unwrap_or(1),
        "subcomponent",
    )?;
    let encoded = msg
        .charset
        .encode(value)
        .ok_or_else(|| PathError::Unrepresentable(msg.charset.name().into()))?;
    let escaped = escape(&encoded, &d)
        .ok_or(PathError::NoEscapeCharacter)?
        .into_owned();

    let seg = *msg
        .find_segment(&path.segment, path.occurrence)
        .ok_or_else(|| PathError::SegmentNotFound(path.segment_name().to_owned()))?;
    let fields = msg.seg_fields(&seg).to_vec();
    let buf = msg.buf.clone();
    let field_no = usize::try_from(path.field).unwrap_or(usize::MAX);

    // Current content of the field (empty if it must be created) and where it sits.
    let (old, prefix_end, suffix_start, missing) = match fields.get(field_no) {
        Some(&(s, e)) => (&buf[s..e], s, e, 0),
        None => (&[][..], seg.end, seg.end, field_no + 1 - fields.len()),
    };
    let new_field = replace_nth(old, d.repetition, path.repetition, |rep| {
        match path.component {
            None => Ok(escaped.clone()),
            Some(c) => replace_nth(rep, d.component, c, |comp| match path.subcomponent {
                None => Ok(escaped.clone()),
                Some(sc) => replace_nth(comp, d.subcomponent, sc, |_| Ok(escaped.clone())),
            }),
        }
    })?;

    let mut out = BytesMut::with_capacity(buf.len() + new_field.len() + missing + 1);
    out.put_slice(&buf[..prefix_end]);
    for _ in 0..missing {
        out.put_u8(d.field);
    }
    out.put_slice(&new_field);
    out.put_slice(&buf[suffix_start..]);
    let new_buf: Bytes = out.freeze();
    let layout = parser::index(&new_buf, msg.msh_at, &d, false).map_err(|e| match e.kind {
        // Cannot happen: escaped values hold no structural bytes. Reported, never panicked.
        ParseErrorKind::TooLarge => PathError::Unrepresentable("size".into()),
        _ => PathError::Unrepresentable("structure".into()),
    })?;
    msg.buf = new_buf;
    msg.layout = layout;
    msg.modified = true;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    const BASE: &str =
        "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r\nPID|1||123^^^H^MR||DOE^JOHN\r\n";

    #[test]
    fn set_existing_and_create() {
        let mut msg = m(BASE);
        msg.set("PID-5.1", "SMITH").unwrap();
        assert_eq!(msg.get("PID-5.1").unwrap(), "SMITH");
        assert_eq!(msg.get("PID-5.2").unwrap(), "JOHN");
        msg.set("PID-8", "F").unwrap();
        assert_eq!(msg.get("PID-8").unwrap(), "F");
        msg.set("PID-3[2].4.2", "X&Y").unwrap();
        assert_eq!(msg.get("PID-3[2].4.2").unwrap(), "X&Y");
        assert_eq!(
            msg.get_raw(&"PID-3[2]".parse().unwrap()).unwrap(),
            b"^^^&X\\T\\Y"
        );
        assert!(msg.is_modified());
        let enc = msg.encode();
        assert!(enc.ends_with(b"\r\n"));
        assert_eq!(&msg.raw()[..], BASE.as_bytes());
        let again = Message::parse(enc).unwrap();
        assert_eq!(again.get("PID-5").unwrap(), "SMITH^JOHN");
    }

    #[test]
    fn set_errors() {
        let mut msg = m(BASE);
        assert_eq!(msg.set("MSH-2", "x"), Err(PathError::ReadOnly));
        assert!(matches!(
            msg.set("OBX-5", "x"),
            Err(PathError::SegmentNotFound(_))
        ));
        assert!(matches!(
            msg.set("PID-", "x"),
            Err(PathError::Syntax { .. })
        ));
        msg.set("PID-5", "a|b\rc").unwrap();
        assert_eq!(msg.get("PID-5").unwrap(), "a|b\rc");
        assert_eq!(msg.segment_count(), 2);
    }
}

//! Segment insertion and removal for the message API (`add_segment`, `insert_segment`,
//! `remove_segment`, `remove_segments`).
//!
//! The codec has no splice operation, so an edit rebuilds the message from its segments
//! joined by CR and parses it again: the edit is all-or-nothing (a failure leaves the message
//! unchanged), untouched segments keep their bytes, but the segment terminators become CR and
//! a BOM is dropped. New segment text is written in the message's delimiters and encoded in its
//! charset; MSH and batch segments cannot be added, MSH cannot be removed. Never panics on
//! script input; never logs segment content.

use std::borrow::Cow;

use bytes::Bytes;
use medway_hl7::Message;
use rhai::INT;

use super::message_api::{Fallible, MessageHandle};

fn valid_segment_name(name: &[u8]) -> bool {
    name.len() == 3
        && name[0].is_ascii_uppercase()
        && name[1..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

pub(crate) fn segment_name(name: &str) -> Fallible<[u8; 3]> {
    match name.as_bytes() {
        n @ [a, b, c] if valid_segment_name(n) => Ok([*a, *b, *c]),
        _ => Err(format!("bad segment ID {name:?}: expected 3 characters like OBX").into()),
    }
}

/// Checks and encodes the text of one new segment in `message`'s delimiters and charset.
fn new_segment_bytes(message: &Message, text: &str) -> Fallible<Vec<u8>> {
    if text.contains(['\r', '\n']) {
        return Err("a segment's text cannot contain a line break".into());
    }
    let bytes = text.as_bytes();
    let field = message.delimiters().field;
    let well_formed = bytes.len() >= 3
        && valid_segment_name(&bytes[..3])
        && bytes.get(3).is_none_or(|&b| b == field);
    if !well_formed {
        return Err(format!(
            "a segment starts with its 3-character ID then {:?}, like NTE|1||text",
            char::from(field)
        )
        .into());
    }
    if matches!(&bytes[..3], b"MSH" | b"FHS" | b"BHS" | b"FTS" | b"BTS") {
        return Err("header and batch segments cannot be added".into());
    }
    let charset = message.effective_charset();
    charset
        .encode(text)
        .map(Cow::into_owned)
        .ok_or_else(|| format!("text not representable in {}", charset.name()).into())
}

/// Applies `edit` to the message's list of segments and parses the result; the message is
/// replaced only if that succeeds.
fn edit_segments<R>(
    handle: &MessageHandle,
    edit: impl FnOnce(&Message, &mut Vec<Vec<u8>>) -> Fallible<R>,
) -> Fallible<R> {
    handle.write(|message| {
        let mut segments: Vec<Vec<u8>> = (0..message.segment_count())
            .filter_map(|i| message.segment_bytes(i).map(<[u8]>::to_vec))
            .collect();
        let result = edit(message, &mut segments)?;
        let rebuilt = Message::parse(Bytes::from(join_segments(&segments)))
            .map_err(|e| format!("edit gives an invalid message: {e}"))?;
        *message = rebuilt;
        Ok(result)
    })
}

fn join_segments(segments: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(segments.iter().map(|s| s.len() + 1).sum());
    for segment in segments {
        out.extend_from_slice(segment);
        out.push(b'\r');
    }
    out
}

/// Indices of the segments called `name`.
fn positions(segments: &[Vec<u8>], name: &[u8; 3]) -> Vec<usize> {
    segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.get(..3) == Some(&name[..]))
        .map(|(i, _)| i)
        .collect()
}

pub(crate) fn add_segment(msg: &mut MessageHandle, text: &str) -> Fallible<()> {
    edit_segments(msg, |m, segments| {
        segments.push(new_segment_bytes(m, text)?);
        Ok(())
    })
}

pub(crate) fn insert_segment(msg: &mut MessageHandle, index: INT, text: &str) -> Fallible<()> {
    edit_segments(msg, |m, segments| {
        let at = usize::try_from(index)
            .ok()
            .filter(|&i| (1..=segments.len()).contains(&i))
            .ok_or_else(|| {
                format!(
                    "insert index {index} out of range 1..={} (0 is MSH)",
                    segments.len()
                )
            })?;
        segments.insert(at, new_segment_bytes(m, text)?);
        Ok(())
    })
}

pub(crate) fn remove_segment(
    msg: &mut MessageHandle,
    name: &str,
    occurrence: INT,
) -> Fallible<bool> {
    let id = segment_name(name)?;
    if &id == b"MSH" {
        return Err("MSH cannot be removed".into());
    }
    let Some(nth) = usize::try_from(occurrence)
        .ok()
        .and_then(|o| o.checked_sub(1))
    else {
        return Err(format!("occurrence {occurrence} is not 1-based").into());
    };
    if msg.read(|m| m.count_segments(name)) <= nth {
        return Ok(false);
    }
    edit_segments(msg, |_, segments| {
        let at = positions(segments, &id)[nth];
        segments.remove(at);
        Ok(true)
    })
}

pub(crate) fn remove_segments(msg: &mut MessageHandle, name: &str) -> Fallible<INT> {
    let id = segment_name(name)?;
    if &id == b"MSH" {
        return Err("MSH cannot be removed".into());
    }
    let count = msg.read(|m| m.count_segments(name));
    if count == 0 {
        return Ok(0);
    }
    edit_segments(msg, |_, segments| {
        segments.retain(|s| s.get(..3) != Some(&id[..]));
        Ok(count as INT)
    })
}

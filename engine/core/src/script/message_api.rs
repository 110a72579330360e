//! The message API scripts see: `msg["PID-5.1"]`, segment handles, segment edits, building
//! new messages.
//!
//! A [`MessageHandle`] is a shared reference to one `medway_hl7::Message` (an
//! `Arc<RwLock<…>>`): `let m = msg;` and passing `msg` to a function share the message, and
//! `msg.copy()` makes an independent one. A [`SegmentHandle`] names a segment by ID and
//! occurrence and reads and writes through its message, so `for obx in msg.segments("OBX")
//! { obx["5"] = … }` edits the message. Paths are the codec's 1-based HL7 paths; reading a
//! missing element gives `""`, a malformed path is a runtime error, writing creates missing
//! fields/components but never segments.
//!
//! Segment insertion and removal live in `segment_edit.rs`.
//!
//! Invariants: no lock is held while calling back into Rhai; a failed edit leaves the message
//! unchanged; nothing panics on script input. This module never logs message content.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use medway_hl7::{Message, Path};
use rhai::{Array, Dynamic, Engine, EvalAltResult, INT, ImmutableString};

use super::segment_edit::{
    add_segment, insert_segment, remove_segment, remove_segments, segment_name,
};

pub(crate) type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// A script's handle on one message; clones share the message.
#[derive(Clone)]
pub struct MessageHandle(Arc<RwLock<Message>>);

/// Shows the header only: a message body never reaches a log through `{:?}`.
impl std::fmt::Debug for MessageHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}

impl MessageHandle {
    /// Wraps a message.
    pub fn new(message: Message) -> Self {
        Self(Arc::new(RwLock::new(message)))
    }

    pub(super) fn read<R>(&self, f: impl FnOnce(&Message) -> R) -> R {
        match self.0.read() {
            Ok(guard) => f(&guard),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    pub(super) fn write<R>(&self, f: impl FnOnce(&mut Message) -> R) -> R {
        match self.0.write() {
            Ok(mut guard) => f(&mut guard),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// `Message(ORU^R01 VS000123, 13 segments)`: type, trigger, control id, size — no content.
    pub fn summary(&self) -> String {
        self.read(|m| {
            format!(
                "Message({}^{} {}, {} segments)",
                m.message_type().unwrap_or_default(),
                m.trigger_event().unwrap_or_default(),
                m.control_id().unwrap_or_default(),
                m.segment_count()
            )
        })
    }

    /// A copy of the current message (cheap: the bytes are reference-counted).
    pub fn snapshot(&self) -> Message {
        self.read(Message::clone)
    }

    fn get(&self, path: &Path) -> String {
        self.read(|m| m.get_path(path).map(Cow::into_owned).unwrap_or_default())
    }

    fn set(&self, path: &Path, value: &Dynamic) -> Fallible<()> {
        let text = value_text(value)?;
        self.write(|m| m.set_path(path, &text))
            .map_err(|e| format!("cannot set {path}: {e}").into())
    }

    fn has(&self, path: &Path) -> bool {
        self.read(|m| m.get_path(path).is_some_and(|v| !v.is_empty()))
    }

    fn clear(&self, path: &Path) -> Fallible<()> {
        if self.has(path) {
            self.set(path, &Dynamic::from(ImmutableString::new()))?;
        }
        Ok(())
    }

    fn header(&self, f: impl for<'m> FnOnce(&'m Message) -> Option<Cow<'m, str>>) -> String {
        self.read(|m| f(m).map(Cow::into_owned).unwrap_or_default())
    }
}

/// A script's handle on one segment (ID + occurrence) of a message.
#[derive(Clone, Debug)]
pub struct SegmentHandle {
    message: MessageHandle,
    name: [u8; 3],
    occurrence: u32,
}

impl SegmentHandle {
    fn name(&self) -> &str {
        std::str::from_utf8(&self.name).unwrap_or("???")
    }

    /// `5`, `5.2`, `3[2].1` relative to this segment.
    fn path(&self, relative: &str) -> Fallible<Path> {
        let mut path = parse_path(&format!("{}-{relative}", self.name()))?;
        path.occurrence = self.occurrence;
        Ok(path)
    }

    /// 0-based position among all segments, or -1 if the segment is gone.
    fn index(&self) -> INT {
        self.message.read(|m| {
            m.segment_names()
                .enumerate()
                .filter(|(_, n)| n.as_bytes() == self.name)
                .nth(self.occurrence as usize - 1)
                .map_or(-1, |(i, _)| i as INT)
        })
    }

    fn text(&self) -> String {
        let index = self.index();
        self.message.read(|m| {
            usize::try_from(index)
                .ok()
                .and_then(|i| m.segment_bytes(i))
                .map(|b| m.effective_charset().decode(Cow::Borrowed(b)).into_owned())
                .unwrap_or_default()
        })
    }
}

pub(crate) fn parse_path(text: &str) -> Fallible<Path> {
    text.parse::<Path>()
        .map_err(|e| format!("{e} (paths look like PID-5.1, OBX(3)-5, PID-3[2].1)").into())
}

/// The text written for a script value: strings as they are, numbers and booleans in their
/// usual form, `()` as empty.
fn value_text(value: &Dynamic) -> Fallible<String> {
    if value.is_unit() {
        return Ok(String::new());
    }
    if value.is_string() || value.is_int() || value.is_float() || value.is_bool() || value.is_char()
    {
        return Ok(value.to_string());
    }
    if let Some(time) = value.read_lock::<super::functions::Hl7Time>() {
        return Ok(time.to_hl7());
    }
    Err(format!("cannot write a {} into a message field", value.type_name()).into())
}

fn segments(msg: &mut MessageHandle, name: &str) -> Fallible<Array> {
    let id = segment_name(name)?;
    let count = msg.read(|m| m.count_segments(name));
    Ok((1..=count as u32)
        .map(|occurrence| {
            Dynamic::from(SegmentHandle {
                message: msg.clone(),
                name: id,
                occurrence,
            })
        })
        .collect())
}

fn all_segments(msg: &mut MessageHandle) -> Array {
    let names: Vec<[u8; 3]> = msg.read(|m| {
        m.segment_names()
            .filter_map(|n| <[u8; 3]>::try_from(n.as_bytes()).ok())
            .collect()
    });
    let mut seen: Vec<([u8; 3], u32)> = Vec::new();
    names
        .into_iter()
        .map(|name| {
            let occurrence = match seen.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => {
                    *count += 1;
                    *count
                }
                None => {
                    seen.push((name, 1));
                    1
                }
            };
            Dynamic::from(SegmentHandle {
                message: msg.clone(),
                name,
                occurrence,
            })
        })
        .collect()
}

fn message_text(msg: &mut MessageHandle) -> String {
    msg.read(|m| {
        let segments: Vec<&[u8]> = (0..m.segment_count())
            .filter_map(|i| m.segment_bytes(i))
            .collect();
        m.effective_charset()
            .decode(Cow::Owned(segments.join(&b'\r')))
            .into_owned()
    })
}

fn hl7_parse(text: &str) -> Fallible<MessageHandle> {
    Message::parse(Bytes::from(text.to_owned()))
        .map(MessageHandle::new)
        .map_err(|e| format!("cannot parse HL7: {e}").into())
}

fn new_message(message_type: &str, trigger: &str, version: &str) -> Fallible<MessageHandle> {
    let plain = |s: &str| !s.contains(['|', '^', '~', '\\', '&', '\r', '\n']);
    if !(plain(message_type) && plain(trigger) && plain(version)) {
        return Err("new_message: type, trigger and version cannot contain delimiters".into());
    }
    let control_id = format!("MW{:016X}", rand::random::<u64>());
    let text = format!(
        "MSH|^~\\&|||||{}||{message_type}^{trigger}|{control_id}|P|{version}\r",
        crate::clock::hl7_now()
    );
    hl7_parse(&text)
}

/// Registers the `Message` and `Segment` types and every message function.
pub(crate) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<MessageHandle>("Message");
    engine.register_type_with_name::<SegmentHandle>("Segment");

    // Paths on the message.
    engine.register_indexer_get(|m: &mut MessageHandle, path: ImmutableString| {
        Ok::<_, Box<EvalAltResult>>(m.get(&parse_path(&path)?))
    });
    engine.register_indexer_set(
        |m: &mut MessageHandle, path: ImmutableString, value: Dynamic| {
            m.set(&parse_path(&path)?, &value)
        },
    );
    engine.register_fn("get", |m: &mut MessageHandle, path: &str| {
        Ok::<_, Box<EvalAltResult>>(m.get(&parse_path(path)?))
    });
    engine.register_fn(
        "set",
        |m: &mut MessageHandle, path: &str, value: Dynamic| m.set(&parse_path(path)?, &value),
    );
    engine.register_fn("has", |m: &mut MessageHandle, path: &str| {
        Ok::<_, Box<EvalAltResult>>(m.has(&parse_path(path)?))
    });
    engine.register_fn("clear", |m: &mut MessageHandle, path: &str| {
        m.clear(&parse_path(path)?)
    });

    // Header properties.
    engine.register_get("type", |m: &mut MessageHandle| {
        m.header(Message::message_type)
    });
    engine.register_get("trigger", |m: &mut MessageHandle| {
        m.header(Message::trigger_event)
    });
    engine.register_get("control_id", |m: &mut MessageHandle| {
        m.header(Message::control_id)
    });
    engine.register_get("version", |m: &mut MessageHandle| {
        m.header(Message::version)
    });
    engine.register_get("processing_id", |m: &mut MessageHandle| {
        m.header(Message::processing_id)
    });

    // Segments.
    engine.register_fn("segments", segments);
    engine.register_fn("segments", all_segments);
    engine.register_fn("segment_count", |m: &mut MessageHandle| {
        m.read(Message::segment_count) as INT
    });
    engine.register_fn("segment_names", |m: &mut MessageHandle| -> Array {
        m.read(|m| {
            m.segment_names()
                .map(|n| Dynamic::from(n.to_owned()))
                .collect()
        })
    });
    engine.register_fn("count_segments", |m: &mut MessageHandle, name: &str| {
        m.read(|m| m.count_segments(name)) as INT
    });
    engine.register_fn("add_segment", add_segment);
    engine.register_fn("insert_segment", insert_segment);
    engine.register_fn("remove_segment", remove_segment);
    engine.register_fn("remove_segments", remove_segments);

    // Whole message.
    engine.register_fn("to_string", message_text);
    engine.register_fn("to_debug", |m: &mut MessageHandle| m.summary());
    engine.register_fn("to_json", |m: &mut MessageHandle| {
        m.read(|m| serde_json::to_string(&m.to_nested()).unwrap_or_default())
    });
    engine.register_fn("copy", |m: &mut MessageHandle| {
        MessageHandle::new(m.snapshot())
    });
    engine.register_fn("hl7_parse", hl7_parse);
    engine.register_fn("new_message", new_message);

    // Segment handles.
    engine.register_indexer_get(|s: &mut SegmentHandle, rel: ImmutableString| {
        Ok::<_, Box<EvalAltResult>>(s.message.get(&s.path(&rel)?))
    });
    engine.register_indexer_set(
        |s: &mut SegmentHandle, rel: ImmutableString, value: Dynamic| {
            s.message.set(&s.path(&rel)?, &value)
        },
    );
    engine.register_fn("get", |s: &mut SegmentHandle, rel: &str| {
        Ok::<_, Box<EvalAltResult>>(s.message.get(&s.path(rel)?))
    });
    engine.register_fn("set", |s: &mut SegmentHandle, rel: &str, value: Dynamic| {
        s.message.set(&s.path(rel)?, &value)
    });
    engine.register_fn("has", |s: &mut SegmentHandle, rel: &str| {
        Ok::<_, Box<EvalAltResult>>(s.message.has(&s.path(rel)?))
    });
    engine.register_fn("clear", |s: &mut SegmentHandle, rel: &str| {
        s.message.clear(&s.path(rel)?)
    });
    engine.register_get("name", |s: &mut SegmentHandle| s.name().to_owned());
    engine.register_get("occurrence", |s: &mut SegmentHandle| s.occurrence as INT);
    engine.register_get("index", |s: &mut SegmentHandle| s.index());
    engine.register_fn("to_string", |s: &mut SegmentHandle| s.text());
    engine.register_fn("to_debug", |s: &mut SegmentHandle| {
        format!("Segment({}({}))", s.name(), s.occurrence)
    });
}

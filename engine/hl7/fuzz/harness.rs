// Shared fuzz harness: included verbatim by the cargo-fuzz targets (fuzz_targets/*.rs) and by
// the stable replay test (engine/hl7/tests/fuzz_corpus_replay.rs), so both exercise exactly
// the same code paths. Every `assert!` here is an invariant of the codec, not a test of input.

#[allow(dead_code)]
mod harness {
    use bytes::{Bytes, BytesMut};
    use medway_hl7::{Message, ack, batch, mllp, parse_all};

    const PATHS: &[&str] = &[
        "MSH-1", "MSH-2", "MSH-9.1", "MSH-9.2", "MSH-10", "MSH-12", "MSH-18", "PID-3[2].1.2",
        "PID-5", "OBX(2)-5", "OBX-5.1.1", "ZZZ-9", "NTE.3",
    ];

    fn exercise(m: &Message, raw: &Bytes) {
        for p in PATHS {
            let _ = m.get(p);
        }
        assert_eq!(&m.encode(), raw, "unchanged encode must be the input");
        let nested = m.to_nested();
        assert_eq!(nested.len(), m.segment_count());
        assert_eq!(m.segment_names().count(), m.segment_count());
        let outcome = ack::Outcome::Error(ack::AckError {
            code: 101,
            text: "fuzz".into(),
            location: Some(ack::ErrorLocation { segment: "PID".into(), sequence: 1, field: 3 }),
        });
        let a = ack::build_ack(m, &outcome, "ACK1", "20240101");
        assert!(Message::parse(a).is_ok() || m.version().is_none());
        let _ = ack::accept_ack_requested(m, true);
        let mut edited = m.clone();
        for (p, v) in [("PID-5.1", "X^Y&Z~\\|\r\nü"), ("OBX(2)-5[2].3.2", "v"), ("MSH-10", "C\nI")] {
            if edited.set(p, v).is_ok() {
                assert_eq!(edited.get(p).as_deref(), Some(v));
                let again = Message::parse(edited.encode()).expect("an edited message re-parses");
                assert_eq!(again.get(p).as_deref(), Some(v));
            }
        }
    }

    /// Target `parse`: Message::parse + get + encode + to_nested + set + ACKs + parse_all.
    pub fn parse(data: &[u8]) {
        let raw = Bytes::copy_from_slice(data);
        match Message::parse(raw.clone()) {
            Ok(m) => exercise(&m, &raw),
            Err(e) => {
                assert!(e.offset <= raw.len());
                let err = ack::AckError { code: 100, text: e.kind.to_string(), location: None };
                let _ = ack::build_nak_for_unparseable(data, &err, "N1", "20240101");
            }
        }
        if let Ok(b) = batch::split(&raw) {
            assert_eq!(b.messages.len(), b.offsets.len());
            for (m, &at) in b.messages.iter().zip(&b.offsets) {
                assert_eq!(&raw[at..at + m.len()], &m[..]);
            }
        }
        if let Ok(all) = parse_all(raw.clone()) {
            for m in &all {
                exercise(m, &m.encode());
            }
        }
    }

    /// Target `mllp_framer`: the first bytes pick the frame limit and the read sizes; the rest
    /// is fed in those chunks.
    pub fn mllp_framer(data: &[u8]) {
        let (limit, sizes, stream) = match data {
            [a, b, c, rest @ ..] => (usize::from(*a) * 16 + 1, [usize::from(*b % 17) + 1, usize::from(*c % 5) + 1], rest),
            _ => (64, [1, 3], data),
        };
        let mut framer = mllp::MllpFramer::new(limit);
        let mut buf = BytesMut::new();
        let mut payload_bytes = 0usize;
        let mut pos = 0;
        let mut turn = 0;
        while pos < stream.len() {
            let n = sizes[turn % 2].min(stream.len() - pos);
            turn += 1;
            buf.extend_from_slice(&stream[pos..pos + n]);
            pos += n;
            while let Ok(Some(p)) = framer.decode(&mut buf) {
                assert!(p.len() <= limit);
                assert!(!p.contains(&mllp::SB) && !p.contains(&mllp::EB));
                payload_bytes += p.len();
            }
        }
        while let Ok(Some(p)) = framer.decode_eof(&mut buf) {
            payload_bytes += p.len();
        }
        assert!(payload_bytes <= stream.len());
        assert!(framer.discarded_garbage_bytes() <= stream.len() as u64);
        // Round trip: whatever frames we encode, we decode unchanged.
        let mut framed = BytesMut::new();
        let clean: Vec<u8> = stream.iter().copied().filter(|&b| b != mllp::SB && b != mllp::EB).collect();
        mllp::encode_frame(&clean, &mut framed);
        let mut f2 = mllp::MllpFramer::new(clean.len().max(1));
        assert_eq!(f2.decode(&mut framed).ok().flatten().as_deref(), Some(&clean[..]));
    }
}

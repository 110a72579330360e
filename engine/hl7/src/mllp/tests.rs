//! Framer unit tests, including wire vectors W5, W6 and W8.

use super::*;

fn feed(f: &mut MllpFramer, buf: &mut BytesMut, bytes: &[u8]) -> Vec<Result<Bytes, FrameError>> {
    buf.extend_from_slice(bytes);
    let mut out = Vec::new();
    loop {
        match f.decode(buf) {
            Ok(Some(p)) => out.push(Ok(p)),
            Ok(None) => break,
            Err(e) => {
                out.push(Err(e));
                break;
            }
        }
    }
    out
}

fn frame(p: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_frame(p, &mut b);
    b.to_vec()
}

#[test]
fn w5_two_frames_in_one_read() {
    let mut f = MllpFramer::new(1024);
    let mut buf = BytesMut::new();
    let mut data = frame(b"MSH|one");
    data.extend(frame(b"MSH|two"));
    let got = feed(&mut f, &mut buf, &data);
    assert_eq!(
        got,
        vec![
            Ok(Bytes::from_static(b"MSH|one")),
            Ok(Bytes::from_static(b"MSH|two"))
        ]
    );
    assert!(buf.is_empty());
}

#[test]
fn w6_end_block_split_across_reads() {
    let mut f = MllpFramer::new(1024);
    let mut buf = BytesMut::new();
    assert!(feed(&mut f, &mut buf, b"\x0bMSH|a\x1c").is_empty());
    assert_eq!(
        feed(&mut f, &mut buf, b"\x0d"),
        vec![Ok(Bytes::from_static(b"MSH|a"))]
    );
    assert_eq!(f.discarded_garbage_bytes(), 0);
}

#[test]
fn w8_whitespace_between_frames_is_silent() {
    let mut f = MllpFramer::new(1024);
    let mut buf = BytesMut::new();
    let mut data = frame(b"A");
    data.extend(b"\n\r \t");
    data.extend(frame(b"B"));
    assert_eq!(feed(&mut f, &mut buf, &data).len(), 2);
    assert_eq!(f.discarded_garbage_bytes(), 0);
}

#[test]
fn byte_by_byte_and_garbage_counted() {
    let mut f = MllpFramer::new(1024);
    let mut buf = BytesMut::new();
    let mut data = b"junk".to_vec();
    data.extend(frame(b"MSH|x\rPID|1\r"));
    data.extend(frame(b""));
    let mut got = Vec::new();
    for b in data {
        got.extend(feed(&mut f, &mut buf, &[b]));
    }
    assert_eq!(
        got,
        vec![Ok(Bytes::from_static(b"MSH|x\rPID|1\r")), Ok(Bytes::new())]
    );
    assert_eq!(f.discarded_garbage_bytes(), 4);
}

#[test]
fn missing_cr_and_bad_end_block() {
    let mut f = MllpFramer::new(1024);
    let mut buf = BytesMut::new();
    let got = feed(&mut f, &mut buf, b"\x0bA\x1c\x0bB\x1c\x0d");
    assert_eq!(
        got,
        vec![Ok(Bytes::from_static(b"A")), Ok(Bytes::from_static(b"B"))]
    );
    let got = feed(&mut f, &mut buf, b"\x0bA\x1cX\x0bB\x1c\x0d");
    assert_eq!(got, vec![Err(FrameError::BadEndBlock { byte: b'X' })]);
    // The framer recovers if the caller keeps reading.
    assert_eq!(
        feed(&mut f, &mut buf, b""),
        vec![Ok(Bytes::from_static(b"B"))]
    );
}

#[test]
fn restart_inside_frame() {
    let mut f = MllpFramer::new(1024);
    let mut buf = BytesMut::new();
    let got = feed(&mut f, &mut buf, b"\x0bpartial\x0bfull\x1c\x0d");
    assert_eq!(got, vec![Ok(Bytes::from_static(b"full"))]);
    assert_eq!(f.discarded_garbage_bytes(), 7);
}

#[test]
fn too_large_and_not_mllp() {
    let mut f = MllpFramer::new(8);
    let mut buf = BytesMut::new();
    let got = feed(&mut f, &mut buf, b"\x0b0123456789");
    assert_eq!(got, vec![Err(FrameError::TooLarge { limit: 8 })]);
    let mut f = MllpFramer::new(8);
    let got = feed(&mut f, &mut buf, b"\x0b012345678\x1c\x0d");
    assert_eq!(got, vec![Err(FrameError::TooLarge { limit: 8 })]);
    let mut f = MllpFramer::new(8);
    let mut buf = BytesMut::new();
    let got = feed(&mut f, &mut buf, b"GET / HTTP/1.1\r\n");
    assert!(matches!(got[..], [Err(FrameError::NotMllp { .. })]));
}

#[test]
fn eof_handling() {
    let mut f = MllpFramer::new(64);
    let mut buf = BytesMut::from(&b"\x0bMSH|trunc"[..]);
    assert_eq!(
        f.decode_eof(&mut buf),
        Err(FrameError::Truncated { received: 9 })
    );
    let mut buf = BytesMut::from(&b"\x0bMSH|ok\x1c"[..]);
    assert_eq!(
        f.decode_eof(&mut buf),
        Ok(Some(Bytes::from_static(b"MSH|ok")))
    );
    let mut buf = BytesMut::from(&b"\r\n"[..]);
    assert_eq!(f.decode_eof(&mut buf), Ok(None));
}

#[test]
fn linear_scan_many_small_reads() {
    // 1 MiB payload fed in 1-byte reads must finish quickly (no rescanning).
    let mut f = MllpFramer::new(2 << 20);
    let mut buf = BytesMut::new();
    let payload = vec![b'a'; 1 << 20];
    let data = frame(&payload);
    let mut n = 0;
    for chunk in data.chunks(1) {
        n += feed(&mut f, &mut buf, chunk).len();
    }
    assert_eq!(n, 1);
}

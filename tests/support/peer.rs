//! A receiving system for delivery tests: an MLLP server on 127.0.0.1 that records what it
//! receives and answers AA, or AE for the patients it is told to refuse.

use super::{CR, EB, SB, field, frame};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A receiving system: records (control id, patient) in arrival order, answers AE for the
/// patients in `refuse`, AA otherwise.
#[derive(Clone, Default)]
pub struct Peer {
    pub received: Arc<Mutex<Vec<(String, String)>>>,
    pub refuse: Arc<Mutex<HashSet<String>>>,
}

impl Peer {
    pub fn start(&self) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let me = self.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let me = me.clone();
                std::thread::spawn(move || {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 65536];
                    loop {
                        let Ok(n) = stream.read(&mut chunk) else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buffer.windows(2).position(|w| w == [EB, CR]) {
                            let start = buffer.iter().position(|&b| b == SB).unwrap_or(0);
                            let text = String::from_utf8_lossy(&buffer[start + 1..end]).to_string();
                            buffer.drain(..end + 2);
                            let segs: Vec<&str> = text.split('\r').collect();
                            let id = field(segs[0], 10);
                            let pid = segs
                                .iter()
                                .find(|s| s.starts_with("PID"))
                                .copied()
                                .unwrap_or("");
                            let patient = field(pid, 3).split('^').next().unwrap_or("").to_string();
                            let code = if me.refuse.lock().unwrap().contains(&patient) {
                                "AE"
                            } else {
                                "AA"
                            };
                            me.received.lock().unwrap().push((id.clone(), patient));
                            let ack = format!(
                                "MSH|^~\\&|PEER|X|MEDWAY|X|20240101||ACK|A{id}|P|2.5.1\rMSA|{code}|{id}\r"
                            );
                            if stream.write_all(&frame(ack.as_bytes())).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        port
    }

    pub fn received(&self) -> Vec<(String, String)> {
        self.received.lock().unwrap().clone()
    }
}

//! Shared helpers for the end-to-end tests: start the real `medway` binary in a temporary
//! folder with generated channel files, and speak raw MLLP bytes to it on 127.0.0.1.
#![allow(dead_code)]

pub mod peer;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_medway");
pub const SB: u8 = 0x0B;
pub const EB: u8 = 0x1C;
pub const CR: u8 = 0x0D;

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `0x0B payload 0x1C 0x0D`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    out.push(SB);
    out.extend_from_slice(payload);
    out.extend_from_slice(&[EB, CR]);
    out
}

/// A minimal channel file: MLLP on `port`, one file destination into `out/<name>`.
pub fn channel_toml(port: u16, extra: &str) -> String {
    format!(
        r#"
[source]
kind = "mllp"
listen = "127.0.0.1:{port}"
max_frame_bytes = 65536
max_connections = 8
idle_timeout_secs = 30
{extra}
[[destination]]
name = "archive"
kind = "file"
directory = "out"
filename = "{{control_id}}-{{delivery_id}}.hl7"
retry = {{ initial_delay_ms = 50, max_delay_ms = 500 }}
"#
    )
}

/// A running `medway run` in its own folder.
pub struct Engine {
    pub dir: PathBuf,
    pub port: u16,
    pub store: String,
    child: Option<Child>,
}

impl Engine {
    /// Writes `channels/test.toml` into `dir` (kept across restarts) and starts the engine.
    pub fn start(dir: &Path, channel: &str, port: u16, store: &str) -> Self {
        std::fs::create_dir_all(dir.join("channels")).expect("channels dir");
        std::fs::write(dir.join("channels/test.toml"), channel).expect("channel file");
        Self::restart_in(dir, port, store)
    }

    /// Starts the engine on an existing folder (after a kill, for example).
    pub fn restart_in(dir: &Path, port: u16, store: &str) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("medway.log"))
            .expect("log file");
        let mut command = Command::new(BIN);
        if dir.join("medway.toml").exists() {
            command.env("MEDWAY_CONFIG", "medway.toml");
        }
        let child = command
            .arg("run")
            .arg("--store")
            .arg(store)
            .current_dir(dir)
            .env("MEDWAY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn medway");
        let engine = Self {
            dir: dir.to_path_buf(),
            port,
            store: store.to_string(),
            child: Some(child),
        };
        engine.wait_ready();
        engine
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "medway did not listen on {} in time; log:\n{}",
            self.port,
            self.log()
        );
    }

    /// The engine's process id (to send it signals).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Sends a signal (`HUP`, `TERM`, …) to the engine.
    pub fn signal(&self, name: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(pid.to_string())
                .status();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("medway.log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("medway did not stop after SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs another `medway` command against the same folder and store.
    pub fn medway(&self, args: &[&str]) -> Output {
        medway_in(&self.dir, args)
    }

    /// Stored messages as JSON objects (`medway messages list --json`).
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let out = self.medway(&[
            "messages",
            "list",
            "--json",
            "--limit",
            "100000",
            "--store",
            &self.store,
        ]);
        assert!(
            out.status.success(),
            "messages list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    pub fn connect(&self) -> Mllp {
        Mllp::connect(self.port)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn medway_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("MEDWAY_LOG", "warn")
        .output()
        .expect("run medway")
}

/// A raw MLLP connection.
pub struct Mllp {
    pub stream: TcpStream,
    buffer: Vec<u8>,
}

impl Mllp {
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buffer: Vec::new(),
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
        self.stream.flush().expect("flush");
    }

    /// Reads one framed reply; `None` if the peer closed (or nothing came in time).
    pub fn read_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(start) = self.buffer.iter().position(|&b| b == SB)
                && let Some(end) = self.buffer[start..].windows(2).position(|w| w == [EB, CR])
            {
                let payload = self.buffer[start + 1..start + end].to_vec();
                self.buffer.drain(..start + end + 2);
                return Some(payload);
            }
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends one message and waits for its reply.
    pub fn exchange(&mut self, payload: &[u8]) -> Vec<u8> {
        self.write(&frame(payload));
        self.read_frame().expect("a reply frame")
    }

    /// True when the server closed the connection (read returns EOF or reset).
    pub fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 64];
        matches!(self.stream.read(&mut chunk), Ok(0) | Err(_))
    }
}

/// The segments of an ACK as strings.
pub fn segments(ack: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(ack)
        .split('\r')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Field `n` (MSH-aware: MSH-1 is the separator) of a segment string.
pub fn field(segment: &str, n: usize) -> String {
    let parts: Vec<&str> = segment.split('|').collect();
    if segment.starts_with("MSH") {
        if n == 1 {
            return "|".into();
        }
        parts.get(n - 1).unwrap_or(&"").to_string()
    } else {
        parts.get(n).unwrap_or(&"").to_string()
    }
}

/// The §3 vitals ORU with a chosen control id, MSH-12 and MSH-15/16.
pub fn oru(control_id: &str, version: &str, msh15: &str, msh16: &str, pid3: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|VITALS|ICU|MEDWAY|HOSP|20240501103000||ORU^R01^ORU_R01|{control_id}|P|{version}|||{msh15}|{msh16}\r\
PID|1||{pid3}||TEST^PATIENT||19600101|F\r\
PV1|1|I|WARD7^12^A^HOSP\r\
OBR|1||OBS-77|85353-1^Vital signs panel^LN|||20240501102500\r\
OBX|1|NM|9279-1^Respiratory rate^LN||24|/min^^UCUM|12-20|H|||F|||20240501102500\r\
OBX|2|NM|8310-5^Body temperature^LN||101.1|[degF]^^UCUM|||||F|||20240501102500\r"
    )
    .into_bytes()
}

/// Files a file destination has delivered into `dir`: its hidden `.name.partial` files (written,
/// not yet renamed into place) are not counted.
pub fn delivered_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// The PostgreSQL the tests use (`MEDWAY_TEST_PG_URL`, else the local trust-auth server).
pub fn pg_url() -> String {
    std::env::var("MEDWAY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Runs `sql` with psql against [`pg_url`]; panics with psql's error if it fails. Returns the
/// output unaligned, without headers, trimmed.
pub fn psql(sql: &str) -> String {
    let out = Command::new("psql")
        .arg(pg_url())
        .args(["-X", "-q", "-t", "-A", "-c", sql])
        .output()
        .expect("psql must be installed for this test");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A store URL on [`pg_url`] whose tables live in `schema` (created fresh by the caller).
pub fn pg_store_in(schema: &str) -> String {
    let base = pg_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// Waits until `check` holds, polling; panics with `what` after `seconds`.
pub fn eventually(seconds: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

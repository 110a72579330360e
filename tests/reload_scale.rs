//! Reload at scale: 500 channels, each with a small transform script and a file destination.
//! Measures (and prints, never asserts) the time of `medway check` on the set, of `medway run`
//! start-up, and of a SIGHUP reload after every channel file changed; asserts only correctness:
//! the reload reports 500 changed channels and every channel still answers AA.
//!
//! Run with `-- --nocapture` to see the timings.

mod support;

use rand::seq::IndexedRandom;
use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const CHANNELS: usize = 500;

/// `n` distinct ports that are free now, below the ephemeral range (so that outgoing
/// connections of other tests cannot take them meanwhile).
fn free_ports(n: usize) -> Vec<u16> {
    let span = 12_000u16;
    let start = rand::random::<u16>() % span;
    let mut ports = Vec::with_capacity(n);
    for i in 0..span {
        let port = 20_000 + (start + i) % span;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
            if ports.len() == n {
                return ports;
            }
        }
    }
    panic!("not {n} free ports in 20000..32000");
}

fn name(i: usize) -> String {
    format!("ch-{i:03}")
}

fn channel_file(i: usize, port: u16, version: u32) -> String {
    let name = name(i);
    format!(
        r#"description = "generated channel {i}, version {version}"

[source]
kind = "mllp"
listen = "127.0.0.1:{port}"

[[step]]
kind = "validate"
required = ["PID-3"]

[[step]]
kind = "transform"
script = "gen/{name}.rhai"

[[destination]]
name = "archive"
kind = "file"
directory = "out/{name}"
filename = "{{control_id}}.hl7"
"#
    )
}

fn script(i: usize) -> String {
    format!(
        r#"// Generated transform for channel {i}.
let family = msg["PID-5.1"];
if family != "" {{
    msg["PID-5.1"] = family.to_upper();
}}
if msg["PID-3.4"] == "" {{
    msg["PID-3.4"] = "HOSP";
}}
msg["PV1-3.1"] = "CH-{i:03}";
"#
    )
}

/// Writes the channel set; returns the ports, index by channel.
fn generate(dir: &Path, n: usize) -> Vec<u16> {
    let ports = free_ports(n);
    assert_eq!(ports.iter().collect::<HashSet<_>>().len(), n);
    std::fs::create_dir_all(dir.join("channels")).unwrap();
    std::fs::create_dir_all(dir.join("scripts/gen")).unwrap();
    for (i, port) in ports.iter().enumerate() {
        std::fs::write(
            dir.join(format!("channels/{}.toml", name(i))),
            channel_file(i, *port, 1),
        )
        .unwrap();
        std::fs::write(dir.join(format!("scripts/gen/{}.rhai", name(i))), script(i)).unwrap();
    }
    ports
}

/// `medway run` in `dir`, killed on drop. Unlike `support::Engine` it knows its pid and takes
/// extra arguments.
struct Run {
    dir: PathBuf,
    child: Child,
}

impl Run {
    fn spawn(dir: &Path, args: &[&str]) -> Self {
        let log = std::fs::File::create(dir.join("medway.log")).unwrap();
        let store = format!("sqlite://{}", dir.join("medway.db").display());
        let child = Command::new(BIN)
            .args(["run", "--store", &store])
            .args(args)
            .current_dir(dir)
            // No-op reloads log at debug level.
            .env("MEDWAY_LOG", "info,medway::cli::run=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn medway run");
        Self {
            dir: dir.to_path_buf(),
            child,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("medway.log")).unwrap_or_default()
    }

    /// Waits until a log line satisfies `wanted`, returning it; polls every 5 ms.
    fn wait_for_line(&mut self, seconds: u64, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            if let Some(line) = self.log().lines().find(|l| wanted(l)) {
                return line.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("medway run exited ({status}); log:\n{}", self.log());
            }
            if Instant::now() > deadline {
                panic!("log line not seen in {seconds} s; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The names in `key=[…]` of a `channels reloaded` log line.
fn listed(line: &str, key: &str) -> Vec<String> {
    let start = line
        .find(&format!("{key}=["))
        .unwrap_or_else(|| panic!("{key} in {line}"))
        + key.len()
        + 2;
    let end = start + line[start..].find(']').expect("closing bracket");
    line[start..end]
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn field_value<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("{key} in {line}"))
        + key.len()
        + 2;
    line[start..].split(' ').next().unwrap_or_default()
}

/// Sends one ORU to each of `picks` and expects AA.
fn assert_answers(ports: &[u16], picks: &[usize], tag: &str) {
    for &i in picks {
        let id = format!("{tag}{i:03}");
        let ack = Mllp::connect(ports[i]).exchange(&oru(&id, "2.5.1", "", "", "MRN1"));
        assert_eq!(
            segments(&ack)[1],
            format!("MSA|AA|{id}"),
            "channel {} on port {}",
            name(i),
            ports[i]
        );
    }
}

#[test]
fn five_hundred_channels_check_start_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let ports = generate(dir.path(), CHANNELS);
    let generated = started.elapsed();

    // (a) medway check on the whole set.
    let started = Instant::now();
    let out = medway_in(dir.path(), &["check"]);
    let check_time = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with(&format!("ok: {CHANNELS} channel(s) checked in channels")),
        "{stdout}"
    );

    // Start-up: load, compile and bind all 500. No folder watch: only the SIGHUP reloads.
    let started = Instant::now();
    let mut run = Run::spawn(dir.path(), &["--no-watch"]);
    let line = run.wait_for_line(120, |l| l.contains("engine started"));
    let startup = started.elapsed();
    assert!(line.contains(&format!("channels={CHANNELS}")), "{line}");
    for port in &ports {
        // Every listener is up once the engine says it started.
        std::net::TcpStream::connect(("127.0.0.1", *port))
            .unwrap_or_else(|e| panic!("port {port}: {e}; log:\n{}", run.log()));
    }

    let mut rng = rand::rng();
    let all: Vec<usize> = (0..CHANNELS).collect();
    let before: Vec<usize> = all.choose_multiple(&mut rng, 5).copied().collect();
    assert_answers(&ports, &before, "A");

    // (b) Change every channel file, then SIGHUP.
    for (i, port) in ports.iter().enumerate() {
        std::fs::write(
            dir.path().join(format!("channels/{}.toml", name(i))),
            channel_file(i, *port, 2),
        )
        .unwrap();
    }
    let started = Instant::now();
    run.signal("HUP");
    let line = run.wait_for_line(120, |l| {
        l.contains("channels reloaded") || l.contains("reload refused")
    });
    let reload = started.elapsed();
    assert!(line.contains("channels reloaded"), "{line}");
    assert!(line.contains("trigger=\"SIGHUP\""), "{line}");
    let changed = listed(&line, "changed");
    assert_eq!(changed.len(), CHANNELS, "{line}");
    assert_eq!(
        changed.iter().collect::<HashSet<_>>(),
        (0..CHANNELS).map(name).collect::<Vec<_>>().iter().collect(),
        "every channel is reported changed"
    );
    assert!(listed(&line, "added").is_empty(), "{line}");
    assert!(listed(&line, "removed").is_empty(), "{line}");
    assert_eq!(field_value(&line, "unchanged"), "0", "{line}");

    let after: Vec<usize> = all.choose_multiple(&mut rng, 8).copied().collect();
    assert_answers(&ports, &after, "B");

    // A second SIGHUP with nothing changed: every channel unchanged.
    let started = Instant::now();
    run.signal("HUP");
    let line = run.wait_for_line(120, |l| l.contains("reload: nothing changed"));
    let noop_reload = started.elapsed();
    assert!(line.contains("trigger=\"SIGHUP\""), "{line}");
    assert_eq!(
        field_value(&line, "unchanged"),
        CHANNELS.to_string(),
        "{line}"
    );
    assert_answers(&ports, &after[..3], "C");

    // The transforms ran: each answered message was written with its channel's mark.
    eventually(30, "messages delivered", || {
        after.iter().all(|&i| {
            std::fs::read_to_string(dir.path().join(format!("out/{}/B{i:03}.hl7", name(i))))
                .is_ok_and(|text| text.contains(&format!("|CH-{i:03}^")))
        })
    });
    let log = run.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");

    eprintln!(
        "reload_scale ({CHANNELS} channels, {} build): generate {generated:?}, check {check_time:?}, \
         start-up {startup:?}, SIGHUP reload with {CHANNELS} changed {reload:?}, \
         SIGHUP reload with nothing changed {noop_reload:?}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
}

/// With the folder watch on, reading the files (at start-up or during a reload) is not a change:
/// an idle engine never reloads. (Found by this file: notify 8 reports inotify IN_OPEN, and the
/// engine used to reload every ~300 ms forever; fixed in 2fec831.)
#[test]
fn idle_engine_does_not_reload_itself() {
    let dir = tempfile::tempdir().unwrap();
    let ports = generate(dir.path(), 3);
    let mut run = Run::spawn(dir.path(), &[]);
    run.wait_for_line(60, |l| l.contains("engine started"));
    std::thread::sleep(Duration::from_secs(3));
    let log = run.log();
    let reloads = log.matches("channels reloaded").count() + log.matches("reload:").count();
    assert_eq!(reloads, 0, "nothing changed; log:\n{log}");
    assert_answers(&ports, &[0, 1, 2], "I");
}

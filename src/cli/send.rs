//! `medway send`: an MLLP client. Sends files (or folders of files; batches and multi-message
//! files are split) and prints each ACK, or, with `--count`, generates load (see `load.rs`).

use super::load::{self, LoadArgs};
use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use medway_connectors::mllp::MllpClient;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Files or folders of HL7 v2 messages to send (in name order).
    pub files: Vec<PathBuf>,
    /// MLLP listener address.
    #[arg(long, default_value = "127.0.0.1:2575")]
    pub to: String,
    /// Seconds to wait for each ACK.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// Print each ACK in full (segments on separate lines), not just MSA.
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub load: LoadArgs,
}

pub async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let timeout = Duration::from_secs(args.timeout);
    if args.load.count.is_some() {
        return load::run(&args.to, timeout, &args.load, args.files.first()).await;
    }
    if args.files.is_empty() {
        anyhow::bail!("nothing to send: give files or folders, or --count N for load");
    }
    let mut files = Vec::new();
    for path in &args.files {
        collect_files(path, &mut files)?;
    }
    let mut client = MllpClient::connect(&args.to, timeout).await?;
    let (mut accepted, mut refused) = (0usize, 0usize);
    for file in files {
        let bytes = Bytes::from(
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?,
        );
        let messages = match medway_hl7::batch::split(&bytes) {
            Ok(batch) => batch.messages,
            Err(e) => {
                eprintln!(
                    "{}: cannot split into messages ({e}); sending as is",
                    file.display()
                );
                vec![bytes]
            }
        };
        for (i, message) in messages.into_iter().enumerate() {
            let ack = client
                .send(message)
                .await
                .with_context(|| format!("{} message {}: no ACK", file.display(), i + 1))?;
            let code = ack_code(&ack);
            if matches!(code.as_str(), "AA" | "CA") {
                accepted += 1;
            } else {
                refused += 1;
            }
            if args.verbose {
                println!("{} #{}:\n{}", file.display(), i + 1, printable(&ack));
            } else {
                println!("{} #{}: {}", file.display(), i + 1, msa_line(&ack));
            }
        }
    }
    println!("{accepted} accepted, {refused} refused");
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        out.extend(entries);
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// MSA-1 of an ACK ("AA", "AE", …), or "?" if unreadable.
pub fn ack_code(ack: &[u8]) -> String {
    match medway_hl7::Message::parse(Bytes::copy_from_slice(ack)) {
        Ok(m) => m
            .get("MSA-1")
            .map(|c| c.into_owned())
            .unwrap_or_else(|| "?".into()),
        Err(_) => "?".into(),
    }
}

fn msa_line(ack: &[u8]) -> String {
    let text = String::from_utf8_lossy(ack);
    let msa = text
        .split(['\r', '\n'])
        .filter(|s| s.starts_with("MSA") || s.starts_with("ERR"))
        .collect::<Vec<_>>()
        .join("  ");
    if msa.is_empty() { printable(ack) } else { msa }
}

fn printable(ack: &[u8]) -> String {
    String::from_utf8_lossy(ack)
        .replace('\r', "\n")
        .trim_end()
        .to_string()
}

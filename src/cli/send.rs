//! `medway send`: an MLLP client. Sends files (or folders of files; batches and multi-message
//! files are split) and prints each ACK, or, with `--count`, generates load (see `load.rs`).

use super::load::{self, LoadArgs};
use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use medway_connectors::mllp::MllpClient;
use medway_connectors::tls::{ClientTls, ClientTlsSettings};
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
    pub tls: TlsArgs,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// TLS to the listener: on when `--tls-ca` is given.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Connect over TLS, trusting the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_ca", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name the server certificate must carry (default: the host in --to).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub tls_server_name: Option<String>,
}

impl TlsArgs {
    /// The client TLS config, or `None` for plain TCP.
    pub fn client(&self) -> anyhow::Result<Option<ClientTls>> {
        if self.tls_ca.is_none() {
            return Ok(None);
        }
        let settings = ClientTlsSettings {
            ca_file: self.tls_ca.clone(),
            cert_file: self.tls_cert.clone(),
            key_file: self.tls_key.clone(),
            server_name: self.tls_server_name.clone(),
        };
        ClientTls::from_settings(&settings)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("TLS: {e}"))
    }
}

pub async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let timeout = Duration::from_secs(args.timeout);
    let tls = args.tls.client()?;
    if args.load.count.is_some() {
        return load::run(
            &args.to,
            tls.as_ref(),
            timeout,
            &args.load,
            args.files.first(),
        )
        .await;
    }
    if args.files.is_empty() {
        anyhow::bail!("nothing to send: give files or folders, or --count N for load");
    }
    let mut files = Vec::new();
    for path in &args.files {
        collect_files(path, &mut files)?;
    }
    let mut client = MllpClient::connect_over(&args.to, tls.as_ref(), timeout, timeout).await?;
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

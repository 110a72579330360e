//! `medway api-key new|hash`: make API keys for the HTTP source. The channel file holds only
//! the `sha256:` hash; the key itself is shown once, to hand to the client.

use clap::Subcommand;
use medway_connectors::sources::http::auth::hash_api_key;
use rand::TryRngCore;
use std::io::BufRead;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a fresh random key (32 bytes from the OS, hex) and print it with its hash.
    New,
    /// Print the `sha256:` hash of an existing key (read from stdin when KEY is left out, so it
    /// stays out of the shell history).
    Hash {
        /// The key to hash.
        key: Option<String>,
    },
}

pub fn api_key(command: ApiKeyCommand) -> anyhow::Result<ExitCode> {
    match command {
        ApiKeyCommand::New => {
            let mut bytes = [0u8; 32];
            rand::rngs::OsRng
                .try_fill_bytes(&mut bytes)
                .map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
            let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            println!("key:  {key}");
            println!("hash: {}", hash_api_key(&key));
            println!();
            println!(
                "Give the key to the client (Authorization: Bearer <key> or X-API-Key: <key>)"
            );
            println!("and add the hash to the channel's [source]:");
            println!("  api_keys = [\"{}\"]", hash_api_key(&key));
        }
        ApiKeyCommand::Hash { key } => {
            let key = match key {
                Some(key) => key,
                None => {
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if key.is_empty() {
                anyhow::bail!("no key given");
            }
            println!("{}", hash_api_key(&key));
        }
    }
    Ok(ExitCode::SUCCESS)
}

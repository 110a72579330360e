//! `medway hl7 inspect`: parse files and show their structure.
//!
//! `--json` prints the fixed contract other tools compare against: a JSON array of messages; a
//! message is an array of segments; a segment an array of fields (index 0 the segment name; for
//! MSH index 1 the field separator and index 2 the encoding characters); a field an array of
//! repetitions; a repetition an array of components; a component an array of unescaped
//! subcomponent strings. An empty field is `[[[""]]]`.

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// HL7 v2 files (single messages, multi-message files or FHS/BHS batches).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print the JSON structure contract instead of the readable listing.
    #[arg(long)]
    pub json: bool,
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let mut all = Vec::new();
    let mut failed = false;
    for file in &args.files {
        let bytes = Bytes::from(
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?,
        );
        match medway_hl7::parse_all(bytes) {
            Ok(messages) => {
                for (i, message) in messages.iter().enumerate() {
                    if args.json {
                        all.push(message.to_nested());
                    } else {
                        print_message(file, i, message);
                    }
                }
            }
            Err(error) => {
                eprintln!("{}: {error}", file.display());
                failed = true;
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&all)?);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_message(file: &std::path::Path, index: usize, message: &medway_hl7::Message) {
    let show = |v: Option<std::borrow::Cow<'_, str>>| v.map(|c| c.into_owned()).unwrap_or_default();
    println!(
        "{} #{}: {}^{} control id {:?}, version {}, {} segments",
        file.display(),
        index + 1,
        show(message.message_type()),
        show(message.trigger_event()),
        show(message.control_id()),
        show(message.version()),
        message.segment_count()
    );
    for segment in message.to_nested() {
        let name = segment
            .first()
            .and_then(|f| f.first())
            .and_then(|r| r.first())
            .and_then(|c| c.first())
            .cloned()
            .unwrap_or_default();
        for (n, field) in segment.iter().enumerate().skip(1) {
            let text = field
                .iter()
                .map(|rep| {
                    rep.iter()
                        .map(|comp| comp.join("&"))
                        .collect::<Vec<_>>()
                        .join("^")
                })
                .collect::<Vec<_>>()
                .join("~");
            if !text.is_empty() {
                println!("  {name}-{n}: {text}");
            }
        }
    }
}

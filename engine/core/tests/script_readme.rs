//! Runs every ```rhai example of `scripts/README.md` against the sample ORU message (and every
//! ```rhai json example against a FHIR Observation, as `res`), with the README's own code maps
//! and the repository's `scripts/lib`, and checks that every script call is documented with an
//! example.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use medway_engine::script::{CodeMaps, ScriptEngine, ScriptRun, ScriptSettings};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fenced block: the line its fence opens on, its info string, the line before the fence
/// and its text.
struct Block {
    line: usize,
    lang: String,
    before: String,
    text: String,
}

fn fenced_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate().peekable();
    let mut previous = "";
    while let Some((index, line)) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let mut text = String::new();
            for (_, inner) in lines.by_ref() {
                if inner.starts_with("```") {
                    break;
                }
                text.push_str(inner);
                text.push('\n');
            }
            blocks.push(Block {
                line: index + 1,
                lang: lang.trim().to_owned(),
                before: previous.to_owned(),
                text,
            });
        }
        previous = line;
    }
    blocks
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("scripts/README.md")).unwrap()
}

#[test]
fn every_readme_example_runs() {
    let readme = readme();
    let blocks = fenced_blocks(&readme);
    let maps_dir = tempfile::tempdir().unwrap();
    for block in &blocks {
        if let Some(name) = block
            .before
            .strip_prefix("<!-- map: ")
            .and_then(|r| r.strip_suffix(" -->"))
        {
            std::fs::write(maps_dir.path().join(name), &block.text).unwrap();
        }
    }
    let maps = CodeMaps::load_dir(maps_dir.path()).unwrap();
    assert_eq!(maps.names(), ["loinc_local", "wards"]);
    let settings = ScriptSettings {
        lib_dir: repo().join("scripts/lib"),
        maps: Arc::new(maps),
        salt: Arc::from("readme-salt"),
        limits: Default::default(),
    };
    let engine = ScriptEngine::new(settings);
    let sample =
        Bytes::from(std::fs::read(repo().join("channels/samples/oru-r01-vitals.hl7")).unwrap());

    let observation: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("tests/corpus/fhir/uscore_observation-heart-rate.json"))
            .unwrap(),
    )
    .unwrap();

    let mut failures = Vec::new();
    let mut ran = 0;
    let mut ran_json = 0;
    for block in blocks
        .iter()
        .filter(|b| b.lang == "rhai" || b.lang == "rhai json")
    {
        let name = format!("README.md:{}", block.line);
        let mut run = if block.lang == "rhai json" {
            ran_json += 1;
            ScriptRun::json(&observation, "readme", engine.limits()).unwrap()
        } else {
            let message = medway_hl7::Message::parse(sample.clone()).unwrap();
            ScriptRun::new(message, "readme")
        };
        if block.text.contains("response") {
            let mut response = rhai::Map::new();
            response.insert("ack_code".into(), "AA".into());
            run = run.with_response(response);
        }
        let result = engine
            .compile_source(&name, &block.text)
            .and_then(|script| engine.run(&script, &mut run));
        match result {
            Ok(out) => {
                ran += 1;
                // Only the `reject` example may stop early; anywhere else it would skip checks.
                if out.rejected.is_some() && !block.text.contains("stops here") {
                    failures.push(format!("block at {name} was rejected: {:?}", out.rejected));
                }
            }
            Err(e) => failures.push(format!("block at {name} (line in block, not README): {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(ran >= 25, "only {ran} examples ran");
    assert!(ran_json >= 4, "only {ran_json} JSON examples");
}

#[test]
fn every_script_call_has_an_example() {
    let readme = readme();
    let examples: String = fenced_blocks(&readme)
        .into_iter()
        .filter(|b| b.lang == "rhai")
        .map(|b| b.text)
        .collect();
    let calls = [
        "msg[\"",
        ".get(",
        ".set(",
        ".has(",
        ".clear(",
        ".segments(\"",
        ".segments()",
        ".segment_count()",
        ".segment_names()",
        ".count_segments(",
        ".add_segment(",
        ".insert_segment(",
        ".remove_segment(",
        ".remove_segments(",
        "msg.type",
        "msg.trigger",
        "msg.control_id",
        "msg.version",
        "msg.processing_id",
        ".to_string()",
        ".to_json()",
        "hl7_parse(",
        "new_message(",
        ".copy()",
        "hl7_time_parse(",
        "hl7_time_format(",
        "hl7_time_to_hl7(",
        "hl7_time_now()",
        ".unix_ms",
        ".offset",
        ".add_days(",
        ".add_minutes(",
        "lookup(",
        "lookup_or(",
        "mask(",
        "keep_last(",
        "hash(",
        "shift_date(",
        "channel_map",
        "reject(",
        "route_to([",
        "route_to(\"",
        "response",
        "log_info(",
        "log_warn(",
        "print(",
        "debug(",
        "import \"",
        "assert(",
        "assert_eq(",
        ".name",
        ".occurrence",
        ".index",
        "res.resourceType",
        "res = #{",
    ];
    let missing: Vec<&str> = calls
        .iter()
        .copied()
        .filter(|c| !examples.contains(c))
        .collect();
    assert!(missing.is_empty(), "no README example uses {missing:?}");
}

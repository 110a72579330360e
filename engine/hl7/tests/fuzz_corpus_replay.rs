//! Replays the cargo-fuzz seed corpus (`fuzz/corpus/<target>/`) through the exact harness the
//! fuzz targets use (`fuzz/harness.rs`), on stable, as part of `cargo test`. Crash inputs found
//! by fuzzing are added to the corpus directories and so become regression tests.

use std::path::PathBuf;

include!("../fuzz/harness.rs");

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "fuzz seed {} panicked", path.display());
        // Every prefix too: truncated input is the most common real-world damage.
        for cut in (0..data.len()).step_by(7) {
            run(&data[..cut]);
        }
        n += 1;
    }
    assert!(n > 5, "{target}: corpus too small");
}

#[test]
fn parse_corpus() {
    replay("parse", harness::parse);
}

#[test]
fn mllp_framer_corpus() {
    replay("mllp_framer", harness::mllp_framer);
}

//! Throughput over every accepted corpus message (`tests/corpus/hl7/{messages,multi}`):
//! parse (MB/s and msgs/s), `get` of 5 typical paths, and `encode` of an unchanged message.
//! Run: `cargo bench -p medway-hl7 -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::path::PathBuf;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use medway_hl7::{Message, Path, batch};

fn corpus() -> Vec<Bytes> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/hl7");
    let mut out = Vec::new();
    for dir in ["messages", "multi"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .expect("corpus")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for f in files {
            let raw = Bytes::from(std::fs::read(f).expect("read"));
            out.extend(batch::split(&raw).expect("corpus splits").messages);
        }
    }
    out
}

fn benches(c: &mut Criterion) {
    let msgs = corpus();
    let bytes: u64 = msgs.iter().map(|m| m.len() as u64).sum();
    let count = msgs.len() as u64;

    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("corpus_bytes", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(Message::parse(black_box(m.clone())).ok());
            }
        })
    });
    g.throughput(Throughput::Elements(count));
    g.bench_function("corpus_messages", |b| {
        b.iter(|| {
            for m in &msgs {
                black_box(Message::parse(black_box(m.clone())).ok());
            }
        })
    });
    g.finish();

    let parsed: Vec<Message> = msgs
        .iter()
        .filter_map(|m| Message::parse(m.clone()).ok())
        .collect();
    let paths: Vec<Path> = ["MSH-9.1", "MSH-10", "PID-3.1", "PID-5.1", "OBX-5"]
        .iter()
        .map(|p| p.parse().expect("path"))
        .collect();
    let mut g = c.benchmark_group("access");
    g.throughput(Throughput::Elements(count * paths.len() as u64));
    g.bench_function("get_5_paths", |b| {
        b.iter(|| {
            for m in &parsed {
                for p in &paths {
                    black_box(m.get_path(p));
                }
            }
        })
    });
    g.bench_function("get_5_paths_str", |b| {
        b.iter(|| {
            for m in &parsed {
                for p in ["MSH-9.1", "MSH-10", "PID-3.1", "PID-5.1", "OBX-5"] {
                    black_box(m.get(p));
                }
            }
        })
    });
    g.throughput(Throughput::Elements(count));
    g.bench_function("encode_unchanged", |b| {
        b.iter(|| {
            for m in &parsed {
                black_box(m.encode());
            }
        })
    });
    g.bench_function("to_nested", |b| {
        b.iter(|| {
            for m in &parsed {
                black_box(m.to_nested());
            }
        })
    });
    g.finish();
}

criterion_group!(parse_benches, benches);
criterion_main!(parse_benches);

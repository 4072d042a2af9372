//! Tests of the writer's behaviours, one module per concern.

mod checkpoints;
mod commit;
mod faults;
mod history;
mod leader;
mod limit;
mod permissions;
mod repair;
mod segments;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{RecordReader, VerifyReport, list_segments, segment_name, verify_file};

/// Every record of the log in `dir`, parsed, across segments.
fn records(dir: &Path) -> Vec<Value> {
    RecordReader::open(dir)
        .unwrap()
        .map(|r| serde_json::from_slice(&r.unwrap().bytes).unwrap())
        .collect()
}

/// The `kind` of every record.
fn kinds(dir: &Path) -> Vec<String> {
    records(dir)
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The records of `kind`.
fn records_of(dir: &Path, kind: &str) -> Vec<Value> {
    records(dir)
        .into_iter()
        .filter(|r| r["kind"] == kind)
        .collect()
}

/// The file names of the segments, oldest first.
fn segment_files(dir: &Path) -> Vec<String> {
    list_segments(dir)
        .unwrap()
        .iter()
        .map(|s| s.path.file_name().unwrap().to_str().unwrap().to_owned())
        .collect()
}

/// The log verifies; returns the report.
fn verified(dir: &Path) -> VerifyReport {
    verify_file(dir).unwrap_or_else(|e| panic!("the log does not verify: {e}"))
}

/// The first segment's path.
fn first_segment(dir: &Path) -> PathBuf {
    dir.join(segment_name(1))
}

/// A body of about `size` bytes.
fn body(n: u64, size: usize) -> Value {
    serde_json::json!({"kind": "note", "n": n, "text": "x".repeat(size)})
}

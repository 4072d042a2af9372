//! A host's records read back out of the database as a log directory: one
//! segment file of the exact lines, in seq order, and the shipped lines of
//! its checkpoint file. `mandate audit verify --database` and `mandate audit
//! replay --database` run the same verifier and replay as for a local log on
//! it, so the database is held to exactly the same checks.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, pin_mut};
use mandate_audit::{CHECKPOINT_FILE, segment_name};
use tokio_postgres::Client;

use crate::FleetError;

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// Records written.
    pub records: u64,
    /// The first record's seq (0 when there is none).
    pub first_seq: u64,
    /// Checkpoint lines written.
    pub checkpoints: u64,
    /// Rows whose `hash` column is not the hash their line ends with: the
    /// line or the column was changed in the database.
    pub hash_mismatches: Vec<u64>,
}

/// Why a host could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Database(#[from] FleetError),
    #[error("cannot write `{path}`: {error}")]
    Write {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error(
        "the database holds no records of host `{host_id}`; `mandate audit verify --database` lists the hosts it has"
    )]
    NoRecords { host_id: String },
}

/// The hosts the database holds records of, by name.
pub async fn hosts(client: &Client) -> Result<Vec<String>, FleetError> {
    // A loose index scan: one probe of the primary key per host rather than
    // reading every record.
    let rows = client
        .query(
            "WITH RECURSIVE h AS ( \
                 (SELECT host_id FROM audit_records ORDER BY host_id LIMIT 1) \
                 UNION ALL \
                 SELECT (SELECT r.host_id FROM audit_records r WHERE r.host_id > h.host_id \
                         ORDER BY r.host_id LIMIT 1) FROM h WHERE h.host_id IS NOT NULL) \
             SELECT host_id FROM h WHERE host_id IS NOT NULL",
            &[],
        )
        .await
        .map_err(FleetError::query("listing the hosts"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Writes `host_id`'s records and checkpoints from the database into the
/// empty directory `dir` as a log directory.
pub async fn export(client: &Client, host_id: &str, dir: &Path) -> Result<Exported, ExportError> {
    let rows = client
        .query_raw(
            "SELECT seq, hash, line FROM audit_records WHERE host_id = $1 ORDER BY seq",
            [host_id],
        )
        .await
        .map_err(FleetError::query("reading the host's records"))?;
    pin_mut!(rows);
    let mut out: Option<(PathBuf, std::io::BufWriter<std::fs::File>)> = None;
    let mut exported = Exported {
        records: 0,
        first_seq: 0,
        checkpoints: 0,
        hash_mismatches: Vec::new(),
    };
    while let Some(row) = rows.next().await {
        let row = row.map_err(FleetError::query("reading the host's records"))?;
        let seq = row.get::<_, i64>(0).max(0) as u64;
        let hash: &str = row.get(1);
        let line: &[u8] = row.get(2);
        let (path, file) = match &mut out {
            Some(open) => open,
            None => {
                exported.first_seq = seq;
                let path = dir.join(segment_name(seq));
                let file = create(&path)?;
                out.insert((path, std::io::BufWriter::new(file)))
            }
        };
        if !line_ends_with_hash(line, hash) {
            exported.hash_mismatches.push(seq);
        }
        file.write_all(line)
            .and_then(|()| file.write_all(b"\n"))
            .map_err(|error| ExportError::Write {
                path: path.clone(),
                error,
            })?;
        exported.records += 1;
    }
    let Some((path, mut file)) = out else {
        return Err(ExportError::NoRecords {
            host_id: host_id.to_owned(),
        });
    };
    file.flush()
        .map_err(|error| ExportError::Write { path, error })?;

    let rows = client
        .query(
            "SELECT line FROM audit_checkpoints WHERE host_id = $1 ORDER BY line_no",
            &[&host_id],
        )
        .await
        .map_err(FleetError::query("reading the host's checkpoints"))?;
    if !rows.is_empty() {
        let path = dir.join(CHECKPOINT_FILE);
        let mut text = Vec::new();
        for row in &rows {
            text.extend_from_slice(row.get::<_, &[u8]>(0));
            text.push(b'\n');
        }
        create(&path).and_then(|mut f| {
            f.write_all(&text).map_err(|error| ExportError::Write {
                path: path.clone(),
                error,
            })
        })?;
        exported.checkpoints = rows.len() as u64;
    }
    Ok(exported)
}

fn create(path: &Path) -> Result<std::fs::File, ExportError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|error| ExportError::Write {
            path: path.to_path_buf(),
            error,
        })
}

/// Whether `line` ends with `"hash":"<hash>"}`, as every record line does.
fn line_ends_with_hash(line: &[u8], hash: &str) -> bool {
    line.strip_suffix(b"\"}")
        .and_then(|l| l.strip_suffix(hash.as_bytes()))
        .is_some_and(|l| l.ends_with(b",\"hash\":\""))
}

//! "Even a power cut": a writer appends records on a FUSE filesystem that
//! keeps, beside what was written, only what was synced (each file's data as
//! of its last fsync/fdatasync, each directory's entries as of its last
//! fsync). The writer is killed and the power "cut": everything unsynced is
//! dropped. Every seq the writer was told is durable must be in the synced
//! image, and that image must open (repairing a torn tail) and verify.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
};
use mandate::audit::AuditLog;
use serde_json::json;

const CHILD: &str = "MANDATE_TEST_POWER_CUT_CHILD";
const ROOT: u64 = 1;

enum Kind {
    File {
        data: Vec<u8>,
        synced: Vec<u8>,
    },
    Dir {
        entries: BTreeMap<Vec<u8>, u64>,
        synced: BTreeMap<Vec<u8>, u64>,
    },
}

struct Node {
    kind: Kind,
    perm: u16,
}

/// The filesystem's whole state, shared with the test so it can cut power.
#[derive(Default)]
struct State {
    nodes: BTreeMap<u64, Node>,
    next: u64,
    fsyncs: u64,
}

impl State {
    fn new() -> State {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            ROOT,
            Node {
                kind: Kind::Dir {
                    entries: BTreeMap::new(),
                    synced: BTreeMap::new(),
                },
                perm: 0o755,
            },
        );
        State {
            nodes,
            next: ROOT + 1,
            fsyncs: 0,
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.nodes.get(&ino)?;
        let (kind, size) = match &node.kind {
            Kind::File { data, .. } => (FileType::RegularFile, data.len() as u64),
            Kind::Dir { .. } => (FileType::Directory, 0),
        };
        let now = SystemTime::UNIX_EPOCH;
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind,
            perm: node.perm,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn entries(&mut self, ino: u64) -> Option<&mut BTreeMap<Vec<u8>, u64>> {
        match &mut self.nodes.get_mut(&ino)?.kind {
            Kind::Dir { entries, .. } => Some(entries),
            Kind::File { .. } => None,
        }
    }

    fn add(&mut self, parent: u64, name: &OsStr, kind: Kind, perm: u16) -> Result<u64, i32> {
        let name = name.as_encoded_bytes().to_vec();
        let ino = self.next;
        let entries = self.entries(parent).ok_or(libc::ENOTDIR)?;
        if entries.contains_key(&name) {
            return Err(libc::EEXIST);
        }
        entries.insert(name, ino);
        self.next += 1;
        self.nodes.insert(ino, Node { kind, perm });
        Ok(ino)
    }

    /// Writes what survives the power cut (synced entries, synced data) under `to`.
    fn write_synced(&self, ino: u64, to: &Path) {
        let Some(Kind::Dir { synced, .. }) = self.nodes.get(&ino).map(|n| &n.kind) else {
            return;
        };
        std::fs::create_dir_all(to).unwrap();
        for (name, child) in synced {
            let path = to.join(String::from_utf8(name.clone()).unwrap());
            match &self.nodes[child].kind {
                Kind::File { synced, .. } => std::fs::write(&path, synced).unwrap(),
                Kind::Dir { .. } => self.write_synced(*child, &path),
            }
        }
    }
}

/// The FUSE side of [`State`]. Nothing is cached by the kernel (zero TTLs,
/// no writeback cache), so every write reaches it.
struct PowerCutFs(Arc<Mutex<State>>);

const TTL: Duration = Duration::ZERO;

impl Filesystem for PowerCutFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let mut state = self.0.lock().unwrap();
        let ino = state
            .entries(parent)
            .and_then(|e| e.get(name.as_encoded_bytes()).copied());
        match ino.and_then(|ino| state.attr(ino)) {
            Some(attr) => reply.entry(&TTL, &attr, 0),
            None => reply.error(libc::ENOENT),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.0.lock().unwrap().attr(ino) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(libc::ENOENT),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let mut state = self.0.lock().unwrap();
        let Some(node) = state.nodes.get_mut(&ino) else {
            return reply.error(libc::ENOENT);
        };
        if let Some(mode) = mode {
            node.perm = (mode & 0o7777) as u16;
        }
        if let (Some(size), Kind::File { data, .. }) = (size, &mut node.kind) {
            data.resize(size as usize, 0);
        }
        let attr = state.attr(ino).unwrap();
        reply.attr(&TTL, &attr);
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut state = self.0.lock().unwrap();
        let kind = Kind::Dir {
            entries: BTreeMap::new(),
            synced: BTreeMap::new(),
        };
        match state.add(parent, name, kind, (mode & 0o7777) as u16) {
            Ok(ino) => reply.entry(&TTL, &state.attr(ino).unwrap(), 0),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.0.lock().unwrap();
        let kind = Kind::File {
            data: Vec::new(),
            synced: Vec::new(),
        };
        match state.add(parent, name, kind, (mode & 0o7777) as u16) {
            Ok(ino) => reply.created(&TTL, &state.attr(ino).unwrap(), 0, 0, 0),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.0.lock().unwrap();
        match state
            .entries(parent)
            .and_then(|e| e.remove(name.as_encoded_bytes()))
        {
            Some(_) => reply.ok(),
            None => reply.error(libc::ENOENT),
        }
    }

    fn rmdir(&mut self, req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        self.unlink(req, parent, name, reply);
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        _flags: u32,
        reply: ReplyEmpty,
    ) {
        let mut state = self.0.lock().unwrap();
        let Some(ino) = state
            .entries(parent)
            .and_then(|e| e.remove(name.as_encoded_bytes()))
        else {
            return reply.error(libc::ENOENT);
        };
        match state.entries(newparent) {
            Some(entries) => {
                entries.insert(newname.as_encoded_bytes().to_vec(), ino);
                reply.ok();
            }
            None => reply.error(libc::ENOTDIR),
        }
    }

    fn open(&mut self, _req: &Request<'_>, _ino: u64, _flags: i32, reply: ReplyOpen) {
        // FOPEN_DIRECT_IO: no page cache on the kernel side either.
        reply.opened(0, 1);
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let state = self.0.lock().unwrap();
        let Some(Kind::File { data, .. }) = state.nodes.get(&ino).map(|n| &n.kind) else {
            return reply.error(libc::EISDIR);
        };
        let start = (offset as usize).min(data.len());
        let end = (start + size as usize).min(data.len());
        reply.data(&data[start..end]);
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        bytes: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let mut state = self.0.lock().unwrap();
        let Some(Kind::File { data, .. }) = state.nodes.get_mut(&ino).map(|n| &mut n.kind) else {
            return reply.error(libc::EISDIR);
        };
        let end = offset as usize + bytes.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(bytes);
        reply.written(bytes.len() as u32);
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lo: u64, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fsync(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, _ds: bool, reply: ReplyEmpty) {
        let mut state = self.0.lock().unwrap();
        state.fsyncs += 1;
        match state.nodes.get_mut(&ino).map(|n| &mut n.kind) {
            Some(Kind::File { data, synced }) => *synced = data.clone(),
            Some(Kind::Dir { entries, synced }) => *synced = entries.clone(),
            None => return reply.error(libc::ENOENT),
        }
        reply.ok();
    }

    fn fsyncdir(&mut self, req: &Request<'_>, ino: u64, fh: u64, ds: bool, reply: ReplyEmpty) {
        self.fsync(req, ino, fh, ds, reply);
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let mut state = self.0.lock().unwrap();
        let Some(entries) = state.entries(ino).cloned() else {
            return reply.error(libc::ENOTDIR);
        };
        let mut all = vec![
            (ino, FileType::Directory, b".".to_vec()),
            (ROOT, FileType::Directory, b"..".to_vec()),
        ];
        for (name, child) in entries {
            let kind = state.attr(child).map_or(FileType::RegularFile, |a| a.kind);
            all.push((child, kind, name));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            let name = String::from_utf8(name).unwrap();
            if reply.add(child, (i + 1) as i64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn access(&mut self, _req: &Request<'_>, _ino: u64, _mask: i32, reply: ReplyEmpty) {
        reply.ok();
    }
}

/// The writer, in the child process: appends until killed and prints each
/// seq once `append` returned Ok (the guard's promise that it is durable).
fn child_writer(dir: &Path) {
    let log = AuditLog::open(dir).unwrap();
    for n in 0.. {
        let appended = log
            .append(&json!({"kind": "decision", "n": n, "pad": "p".repeat(n % 700)}))
            .unwrap();
        println!("durable {}", appended.seq);
    }
}

#[test]
fn records_reported_durable_survive_a_power_cut_that_drops_unsynced_writes() {
    if let Some(dir) = std::env::var_os(CHILD) {
        child_writer(Path::new(&dir));
        return;
    }
    let place = tempfile::tempdir().unwrap();
    let mount = place.path().join("fuse");
    std::fs::create_dir(&mount).unwrap();
    let state = Arc::new(Mutex::new(State::new()));
    let session = match fuser::spawn_mount2(
        PowerCutFs(state.clone()),
        &mount,
        &[
            MountOption::FSName("mandate-power-cut".into()),
            MountOption::RW,
        ],
    ) {
        Ok(session) => session,
        Err(why) => {
            use std::os::unix::fs::MetadataExt;
            let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
            assert!(
                !root && std::env::var_os("CI").is_none(),
                "cannot mount the FUSE filesystem as root or in CI: {why}"
            );
            println!("skipped: cannot mount a FUSE filesystem as this user: {why}");
            return;
        }
    };
    println!("power-cut mode: FUSE filesystem at `{}`", mount.display());

    let log_dir = mount.join("audit");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "records_reported_durable_survive_a_power_cut_that_drops_unsynced_writes",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &log_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut durable = Vec::new();
    let started = Instant::now();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while durable.len() < 400 && started.elapsed() < Duration::from_secs(60) {
        let Some(line) = lines.next() else { break };
        if let Some(seq) = line.unwrap().strip_prefix("durable ") {
            durable.push(seq.parse::<u64>().unwrap());
        }
    }
    // The writer dies mid-append, then the power goes: only synced state is kept.
    child.kill().unwrap();
    child.wait().unwrap();
    for line in lines.map_while(Result::ok) {
        if let Some(seq) = line.strip_prefix("durable ") {
            durable.push(seq.parse::<u64>().unwrap());
        }
    }
    let image = place.path().join("after-power-cut");
    {
        let state = state.lock().unwrap();
        state.write_synced(ROOT, &image);
        println!(
            "{} records reported durable, {} fsyncs seen",
            durable.len(),
            state.fsyncs
        );
    }
    drop(session);
    assert!(durable.len() >= 50, "the writer reported only {durable:?}");

    // What was written but not synced is gone; the log still opens (repairing a
    // torn tail) and verifies, and holds every record reported durable.
    let image_log = image.join("audit");
    AuditLog::open(&image_log).unwrap().close().unwrap();
    let report = mandate::audit::verify_file(&image_log).unwrap();
    let seqs: Vec<u64> = common::read_records(&image_log)
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    for seq in &durable {
        assert!(
            seqs.contains(seq),
            "seq {seq} was reported durable and is lost"
        );
    }
    assert!(report.head_seq >= *durable.last().unwrap());
}

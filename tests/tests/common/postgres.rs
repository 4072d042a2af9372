//! A real PostgreSQL server for one test: Debian's server binaries (installed
//! by scripts/test when missing), `initdb` into a temporary directory, listening
//! only on a Unix socket in that directory, stopped when dropped.
//!
//! `initdb` refuses to run as root, so under root (CI containers) the server
//! runs as the `postgres` user the Debian package creates. Authentication is
//! `trust` on the socket, which only the server's user and root can reach:
//! tests connect as any role, and grants still decide what each role may do.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The database the tests use (created by [`Postgres::start`]).
pub const DATABASE: &str = "mandate";
/// The superuser `initdb` creates.
pub const SUPERUSER: &str = "postgres";
/// The socket's port number: only names the socket file, nothing listens on TCP.
const PORT: u16 = 5432;

/// The directory of the server binaries: `MANDATE_PG_BIN`, or the newest
/// `/usr/lib/postgresql/<version>/bin` with an `initdb`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MANDATE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server is not installed: run scripts/test, or apt-get install postgresql-15")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/<version>/bin/initdb: apt-get install postgresql-15")
        .1
}

/// The uid and gid the server runs as: the `postgres` user under root,
/// else whoever runs the test.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: getuid cannot fail; getpwnam returns null or a pointer to a
    // static record that is read at once, before any other getpw* call.
    unsafe {
        if libc::getuid() != 0 {
            return None;
        }
        let name = CString::new("postgres").unwrap();
        let entry = libc::getpwnam(name.as_ptr());
        assert!(
            !entry.is_null(),
            "running as root, and there is no `postgres` user to run the server as"
        );
        Some(((*entry).pw_uid, (*entry).pw_gid))
    }
}

/// One PostgreSQL server in a temporary directory.
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    server: Option<Child>,
    /// Whether the server syncs its writes (benchmarks); tests run without.
    durable: bool,
}

impl Postgres {
    /// Creates a cluster, starts it and creates the [`DATABASE`] database.
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// [`Postgres::start`], then the fleet's migrations applied by its owner,
    /// as `mandate fleet migrate` does: what every fleet test starts from.
    #[allow(dead_code)]
    pub async fn start_migrated() -> Postgres {
        let postgres = Postgres::start();
        let mut owner = mandate_fleet::connect(&postgres.url()).await.unwrap();
        mandate_fleet::migrate::migrate(&mut owner.client)
            .await
            .unwrap();
        postgres
    }

    /// [`Postgres::start`], with `fsync` on as in production: for benchmarks.
    #[allow(dead_code)]
    pub fn start_durable() -> Postgres {
        Postgres::start_with(true)
    }

    fn start_with(durable: bool) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("mandate-pg")
            .tempdir()
            .unwrap();
        let user = server_user();
        for sub in ["data", "socket"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        for path in [
            dir.path(),
            &dir.path().join("data"),
            &dir.path().join("socket"),
        ] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
            if let Some((uid, gid)) = user {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
            }
        }
        let mut postgres = Postgres {
            dir,
            bin: bin_dir(),
            user,
            server: None,
            durable,
        };
        let output = postgres
            .command("initdb")
            .args(["--auth=trust", "--username", SUPERUSER, "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync", "-D"])
            .arg(postgres.data())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        postgres.resume();
        postgres.psql(&format!("CREATE DATABASE {DATABASE}"), "postgres");
        postgres
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory holding the server's socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        command.env("LC_ALL", "C").current_dir(self.dir.path());
        command
    }

    /// Starts the server (again) on the same data and waits until it accepts
    /// connections.
    pub fn resume(&mut self) {
        assert!(self.server.is_none(), "the server is running");
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(self.dir.path().join("server.log"), Some(uid), Some(gid))
                .unwrap();
        }
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .args(["-c", "listen_addresses=", "-p", &PORT.to_string(), "-k"])
            .arg(self.socket_dir())
            // A test's cluster needs no crash safety of its own; the fleet
            // tests restart it with a clean shutdown.
            .args([
                "-c",
                if self.durable {
                    "fsync=on"
                } else {
                    "fsync=off"
                },
            ])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.server = Some(child);
        let started = Instant::now();
        loop {
            let ready = self
                .command("pg_isready")
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-p", &PORT.to_string(), "-q"])
                .status()
                .unwrap();
            if ready.success() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "PostgreSQL did not start: {}",
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (a fast shutdown: sessions are disconnected) and
    /// waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            // SIGINT is PostgreSQL's fast shutdown.
            // SAFETY: kill on a pid of our own child.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGINT);
            }
            let _ = child.wait();
        }
    }

    /// What the server wrote to its log.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A connection URL for `role` to `database`, through the socket:
    /// `postgresql://role@%2Fsocket%2Fdir:5432/database`.
    pub fn url_for(&self, role: &str, database: &str) -> String {
        let socket = self.socket_dir().display().to_string().replace('/', "%2F");
        format!("postgresql://{role}@{socket}:{PORT}/{database}")
    }

    /// The superuser's URL to the test database.
    pub fn url(&self) -> String {
        self.url_for(SUPERUSER, DATABASE)
    }

    /// Runs SQL as the superuser with psql; panics with psql's error.
    pub fn psql(&self, sql: &str, database: &str) -> String {
        self.psql_as(SUPERUSER, sql, database)
            .unwrap_or_else(|error| panic!("psql failed: {error}\n{sql}"))
    }

    /// Runs SQL as `role` with psql: its output (unaligned, tuples only), or
    /// psql's error.
    pub fn psql_as(&self, role: &str, sql: &str, database: &str) -> Result<String, String> {
        let output = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(self.socket_dir())
            .args(["-p", &PORT.to_string(), "-U", role, "-d", database])
            .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-c", sql])
            .output()
            .unwrap();
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }

    /// The temporary directory (for files a test keeps next to the server).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

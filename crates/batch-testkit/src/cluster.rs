//! [`PgCluster`]: a throwaway PostgreSQL cluster in a temporary directory on a loopback port, or the
//! server named by `PUMP_TEST_PG_URL`.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::TestkitError;
use crate::binaries::{self, Binaries, RunAs};

/// How to stop a cluster (`pg_ctl stop -m MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Wait for every client to disconnect.
    Smart,
    /// Disconnect clients, roll back their transactions, write a checkpoint: a clean restart.
    Fast,
    /// Quit at once, like a crash: the next start recovers from the write-ahead log.
    Immediate,
}

impl StopMode {
    fn as_str(self) -> &'static str {
        match self {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A database created for one test (see [`PgCluster::create_database`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDatabase {
    /// Its name, unique across processes.
    pub name: String,
    /// A URL to connect to it, `postgres://USER@HOST:PORT/NAME`.
    pub url: String,
}

/// Where the server listens and as whom the kit connects.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Address {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
}

impl Address {
    fn url(&self, dbname: &str) -> String {
        let password = self.password.as_deref().map(|password| format!(":{}", percent_encode(password)));
        format!(
            "postgres://{}{}@{}:{}/{}",
            percent_encode(&self.user),
            password.unwrap_or_default(),
            self.host,
            self.port,
            dbname
        )
    }

    fn parse(url: &str) -> Result<Address, TestkitError> {
        let bad = |reason: &str| TestkitError::BadUrl { url: url.to_owned(), reason: reason.to_owned() };
        let config = tokio_postgres::Config::from_str(url).map_err(|error| bad(&error.to_string()))?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            Some(_) => return Err(bad("a Unix socket host; give a TCP host such as 127.0.0.1")),
            None => "127.0.0.1".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_owned();
        let password = config.get_password().map(|password| String::from_utf8_lossy(password).into_owned());
        Ok(Address { host, port, user, password })
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// A cluster this process started: its directory, binaries and the reaper that removes it.
#[derive(Debug)]
struct Local {
    binaries: Binaries,
    run_as: RunAs,
    /// The scratch directory: `data/` (the cluster), `server.log`, the Unix socket.
    root: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// Server settings beyond the defaults (`name=value`, each passed as `-c name=value`).
    settings: Vec<String>,
    /// The reaper: a shell waiting for its stdin to close (this process ended or dropped the
    /// cluster), which then stops the server (`-m immediate`) and removes the directory. It makes a
    /// cluster go away even when its test process is killed.
    reaper: Mutex<Option<(Child, ChildStdin)>>,
}

#[derive(Debug)]
enum Kind {
    Local(Local),
    External,
}

/// A PostgreSQL cluster for tests: started by [`PgCluster::start`] in a temporary directory on a free
/// loopback port (stopped and removed on drop, or when the process dies), or the server named by
/// `PUMP_TEST_PG_URL` (see [`PgCluster::shared`]).
///
/// Running as root (as CI does), the server runs as the `postgres` system user through `runuser`,
/// since `initdb` refuses root. The server keeps PostgreSQL's default settings (fsync and
/// synchronous_commit on), listens on 127.0.0.1 only and trusts local connections (no password).
/// Set `PUMP_PG_KEEP=1` to keep the directory (and its `server.log`) after the cluster is dropped.
///
/// ```no_run
/// # async fn demo() -> Result<(), batch_testkit::TestkitError> {
/// use batch_testkit::{PgCluster, StopMode};
///
/// let cluster = PgCluster::start()?;
/// let database = cluster.create_database().await?;
/// let client = cluster.connect(&database.name).await?;
/// client.batch_execute("CREATE TABLE t (x int)").await.map_err(|error| batch_testkit::TestkitError::Client {
///     doing: "creating a table".into(),
///     source: error,
/// })?;
/// cluster.stop(StopMode::Fast)?;
/// cluster.start_again()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PgCluster {
    address: Address,
    kind: Kind,
}

/// Tells databases of one process apart.
static DATABASES: AtomicU64 = AtomicU64::new(0);

impl PgCluster {
    /// Starts a new cluster: `initdb -A trust -U postgres` in a fresh temporary directory, then
    /// `pg_ctl start` on a free loopback port. About a second.
    ///
    /// Fails with [`TestkitError::NotInstalled`] when no server binaries are found (install them with
    /// `apt-get install postgresql`), and with the command's output and the server log when a step
    /// fails.
    pub fn start() -> Result<PgCluster, TestkitError> {
        PgCluster::start_with(&[])
    }

    /// As [`start`](PgCluster::start), with server settings beyond the defaults, each `name=value`
    /// (passed as `-c name=value`; e.g. `shared_preload_libraries=pg_stat_statements` for a probe
    /// that reads the statements' costs). A setting with a space or a quote is refused.
    pub fn start_with(settings: &[&str]) -> Result<PgCluster, TestkitError> {
        if let Some(bad) = settings.iter().find(|setting| {
            !setting.contains('=') || setting.contains(char::is_whitespace) || setting.contains(['\'', '"'])
        }) {
            return Err(TestkitError::Setting { setting: (*bad).to_owned() });
        }
        let settings = settings.iter().map(|setting| (*setting).to_owned()).collect();
        let binaries = binaries::find()?;
        let run_as = RunAs::detect()?;
        let root = scratch_dir(run_as)?;
        let data = root.join("data");
        let log = root.join("server.log");
        let local = Local { binaries, run_as, root, data, log, settings, reaper: Mutex::new(None) };
        // From here on the reaper removes the directory (this function's error path before it).
        local.spawn_reaper().inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&local.root);
        })?;
        match local.initdb().and_then(|()| local.start_on_a_free_port()) {
            Ok(port) => Ok(PgCluster {
                address: Address {
                    host: "127.0.0.1".to_owned(),
                    port,
                    user: "postgres".to_owned(),
                    password: None,
                },
                kind: Kind::Local(local),
            }),
            Err(error) => {
                local.reap();
                Err(error)
            }
        }
    }

    /// The cluster at `url` (not owned: never stopped or removed by this process).
    pub fn external(url: &str) -> Result<PgCluster, TestkitError> {
        Ok(PgCluster { address: Address::parse(url)?, kind: Kind::External })
    }

    /// A URL to connect to database `dbname`: `postgres://postgres@127.0.0.1:PORT/DBNAME`.
    pub fn url(&self, dbname: &str) -> String {
        self.address.url(dbname)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.address.port
    }

    /// True when this process started the cluster (it can be stopped and restarted).
    pub fn is_owned(&self) -> bool {
        matches!(self.kind, Kind::Local(_))
    }

    /// The server log, for an owned cluster.
    pub fn log_path(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Local(local) => Some(&local.log),
            Kind::External => None,
        }
    }

    /// The last `lines` lines of the server log (empty when there is none).
    pub fn log_tail(&self, lines: usize) -> String {
        match &self.kind {
            Kind::Local(local) => local.log_tail(lines),
            Kind::External => String::new(),
        }
    }

    /// Connects to database `dbname` (the connection runs on the current tokio runtime).
    pub async fn connect(&self, dbname: &str) -> Result<tokio_postgres::Client, TestkitError> {
        let (client, connection) =
            tokio_postgres::connect(&self.url(dbname), tokio_postgres::NoTls).await.map_err(|source| {
                TestkitError::Client { doing: format!("connecting to {}", self.url(dbname)), source }
            })?;
        tokio::spawn(async move {
            // The connection ends when the client is dropped, or with the server; nothing to report.
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Creates a fresh, empty database with a name unique across processes, for one test.
    pub async fn create_database(&self) -> Result<TestDatabase, TestkitError> {
        let name = format!(
            "pump_test_{}_{}_{:08x}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        let client = self.connect("postgres").await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|source| TestkitError::Client { doing: format!("creating database {name}"), source })?;
        let url = self.url(&name);
        Ok(TestDatabase { name, url })
    }

    /// Drops database `name`, disconnecting its sessions (`DROP DATABASE ... WITH (FORCE)`): a test
    /// that filled a large database gives the disk back.
    pub async fn drop_database(&self, name: &str) -> Result<(), TestkitError> {
        let client = self.connect("postgres").await?;
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name.replace('"', "\"\"")))
            .await
            .map_err(|source| TestkitError::Client { doing: format!("dropping database {name}"), source })
    }

    fn local(&self) -> Result<&Local, TestkitError> {
        match &self.kind {
            Kind::Local(local) => Ok(local),
            Kind::External => Err(TestkitError::NotOwned { url: self.url("postgres") }),
        }
    }

    /// Stops the server (`pg_ctl stop -m MODE`), keeping its data; [`start_again`] brings it back on
    /// the same port. `NotOwned` for a cluster from `PUMP_TEST_PG_URL`.
    ///
    /// [`start_again`]: PgCluster::start_again
    pub fn stop(&self, mode: StopMode) -> Result<(), TestkitError> {
        let local = self.local()?;
        let mut command = local.run_as.command(&local.binaries.pg_ctl());
        command.arg("-D").arg(&local.data).args(["-m", mode.as_str(), "-w", "-t", "60", "stop"]);
        local.run(command)
    }

    /// Starts a stopped server again on the same port. `NotOwned` for a cluster from
    /// `PUMP_TEST_PG_URL`.
    pub fn start_again(&self) -> Result<(), TestkitError> {
        self.local()?.pg_ctl_start(self.address.port)
    }

    /// The process-wide shared cluster: the server named by `PUMP_TEST_PG_URL` when it is set
    /// (`cargo xtask ci` starts one for the whole test run), otherwise a cluster this process starts
    /// on first use and that goes away with the process. Tests take a fresh database each
    /// ([`create_database`](PgCluster::create_database)).
    ///
    /// The first failure is remembered: later calls fail the same way without trying again.
    pub fn shared() -> Result<&'static PgCluster, TestkitError> {
        static SHARED: std::sync::OnceLock<Result<PgCluster, (String, bool)>> = std::sync::OnceLock::new();
        let shared = SHARED.get_or_init(|| {
            let started = match std::env::var("PUMP_TEST_PG_URL") {
                Ok(url) if !url.is_empty() => PgCluster::external(&url),
                _ => PgCluster::start(),
            };
            started.map_err(|error| (error.to_string(), error.is_not_installed()))
        });
        match shared {
            Ok(cluster) => Ok(cluster),
            Err((message, not_installed)) => {
                Err(TestkitError::Shared { message: message.clone(), not_installed: *not_installed })
            }
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Kind::Local(local) = &self.kind {
            local.reap();
        }
    }
}

impl Local {
    fn log_tail(&self, lines: usize) -> String {
        let Ok(log) = std::fs::read_to_string(&self.log) else {
            return String::new();
        };
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Runs a PostgreSQL command; its output and the log tail make the error.
    fn run(&self, mut command: Command) -> Result<(), TestkitError> {
        let line = format!("{command:?}");
        let output = command
            .stdin(Stdio::null())
            .output()
            .map_err(|source| TestkitError::Io { doing: format!("running {line}"), source })?;
        if output.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Err(TestkitError::Command {
            command: line,
            status: output.status.to_string(),
            output: text.trim().to_owned(),
            log_tail: self.log_tail(30),
        })
    }

    fn initdb(&self) -> Result<(), TestkitError> {
        let mut command = self.run_as.command(&self.binaries.initdb());
        command.arg("-D").arg(&self.data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        self.run(command)
    }

    fn pg_ctl_start(&self, port: u16) -> Result<(), TestkitError> {
        let mut command = self.run_as.command(&self.binaries.pg_ctl());
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.root.display()
        );
        for setting in &self.settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        command
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-o", &options, "-w", "-t", "60", "start"]);
        self.run(command)
    }

    /// Starts the server on a free port. A port found free may be taken before the server binds it
    /// (other tests start clusters too), so a few are tried.
    fn start_on_a_free_port(&self) -> Result<u16, TestkitError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port()?;
            match self.pg_ctl_start(port) {
                Ok(()) => return Ok(port),
                Err(error) if attempts < 5 && self.log_tail(20).contains("could not bind") => {
                    drop(error);
                }
                Err(error) => return Err(error),
            }
        }
    }

    fn spawn_reaper(&self) -> Result<(), TestkitError> {
        let mut stop = self.run_as.command(&self.binaries.pg_ctl());
        stop.arg("-D").arg(&self.data).args(["-m", "immediate", "-w", "stop"]);
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(
                "cat >/dev/null 2>&1; if [ -f \"$PUMP_PG_DATA/postmaster.pid\" ]; then \"$@\" >/dev/null 2>&1; fi; \
                 if [ -z \"$PUMP_PG_KEEP\" ]; then rm -rf -- \"$PUMP_PG_ROOT\"; fi",
            )
            .arg("sh")
            .arg(stop.get_program())
            .args(stop.get_args())
            .env("PUMP_PG_ROOT", &self.root)
            .env("PUMP_PG_DATA", &self.data)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C of the tests does not kill it before it cleans up.
            .process_group(0);
        let mut child = command.spawn().map_err(|source| TestkitError::Io {
            doing: "starting the cluster's reaper".to_owned(),
            source,
        })?;
        let Some(stdin) = child.stdin.take() else {
            let _ = child.kill();
            return Err(TestkitError::Io {
                doing: "starting the cluster's reaper".to_owned(),
                source: std::io::Error::other("no stdin pipe"),
            });
        };
        *self.reaper.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((child, stdin));
        Ok(())
    }

    /// Stops the server at once and removes the directory (through the reaper), then waits for it.
    fn reap(&self) {
        let reaper = self.reaper.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some((mut child, mut stdin)) = reaper {
            // Closing the pipe is the signal; a failed write only means the reaper already went.
            let _ = stdin.flush();
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// A scratch directory the server's user can reach: the system temp dir, or `/tmp` when the server
/// runs as `postgres` and cannot reach the former.
fn scratch_dir(run_as: RunAs) -> Result<PathBuf, TestkitError> {
    let io = |doing: &str| {
        let doing = doing.to_owned();
        move |source| TestkitError::Io { doing, source }
    };
    let mut base = std::env::temp_dir();
    if let RunAs::Postgres { .. } = run_as
        && !reachable_by_others(&base)
    {
        base = PathBuf::from("/tmp");
    }
    let dir = tempfile::Builder::new()
        .prefix("pump-pg-")
        .tempdir_in(&base)
        .map_err(io(&format!("creating a directory in {}", base.display())))?;
    // The kit removes it (through the reaper), not TempDir's drop.
    let root = dir.keep();
    let setup = || -> std::io::Result<()> {
        if let RunAs::Postgres { uid, gid } = run_as {
            std::os::unix::fs::chown(&root, Some(uid), Some(gid))?;
        }
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
    };
    setup().map_err(|source| {
        let _ = std::fs::remove_dir_all(&root);
        TestkitError::Io { doing: format!("giving {} to the server's user", root.display()), source }
    })?;
    Ok(root)
}

/// Whether every directory from `/` to `dir` can be traversed by any user.
fn reachable_by_others(dir: &Path) -> bool {
    dir.ancestors().all(|ancestor| {
        std::fs::metadata(ancestor).is_ok_and(|metadata| metadata.permissions().mode() & 0o001 != 0)
    })
}

fn free_port() -> Result<u16, TestkitError> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|source| TestkitError::Io { doing: "finding a free loopback port".to_owned(), source })?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|source| TestkitError::Io { doing: "finding a free loopback port".to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_round_trip_through_the_parser() {
        let address = Address::parse("postgres://alice:p%40ss@db.local:5433/anything").unwrap();
        assert_eq!(address.host, "db.local");
        assert_eq!(address.port, 5433);
        assert_eq!(address.password.as_deref(), Some("p@ss"));
        assert_eq!(address.url("tests"), "postgres://alice:p%40ss@db.local:5433/tests");
        let defaults = Address::parse("postgres://127.0.0.1").unwrap();
        assert_eq!(defaults.url("x"), "postgres://postgres@127.0.0.1:5432/x");
    }

    #[test]
    fn a_socket_url_is_refused_with_a_reason() {
        let error = Address::parse("postgres://u@%2Frun%2Fpostgresql/db").unwrap_err();
        assert!(error.to_string().contains("Unix socket"), "{error}");
    }
}

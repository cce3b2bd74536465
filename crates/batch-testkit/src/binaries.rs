//! Finding the PostgreSQL server binaries and the user to run them as.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TestkitError;

/// The server binaries of one PostgreSQL installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binaries {
    /// The directory holding them.
    pub(crate) bindir: PathBuf,
}

impl Binaries {
    pub(crate) fn initdb(&self) -> PathBuf {
        self.bindir.join("initdb")
    }

    pub(crate) fn pg_ctl(&self) -> PathBuf {
        self.bindir.join("pg_ctl")
    }
}

fn has_server(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"].iter().all(|name| dir.join(name).is_file())
}

/// Finds the binaries: `$PUMP_PG_BINDIR`, then Debian's `/usr/lib/postgresql/<version>/bin` (the
/// newest version), then `pg_config --bindir`.
pub(crate) fn find() -> Result<Binaries, TestkitError> {
    let mut searched = Vec::new();
    if let Some(dir) = std::env::var_os("PUMP_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        if has_server(&dir) {
            return Ok(Binaries { bindir: dir });
        }
        searched.push(format!("PUMP_PG_BINDIR={}", dir.display()));
    }
    let debian = Path::new("/usr/lib/postgresql");
    searched.push(format!("{}/*/bin", debian.display()));
    if let Ok(entries) = std::fs::read_dir(debian) {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.split('.').next()?.parse::<u32>().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .filter(|(_, bin)| has_server(bin))
            .collect();
        versions.sort();
        if let Some((_, bindir)) = versions.pop() {
            return Ok(Binaries { bindir });
        }
    }
    searched.push("`pg_config --bindir`".to_owned());
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_server(&dir) {
            return Ok(Binaries { bindir: dir });
        }
    }
    Err(TestkitError::NotInstalled { searched: searched.join(", ") })
}

/// The numeric user and group ids of a user, from `id`.
fn ids_of(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let output = Command::new("id").args([flag, user]).output().ok()?;
        if !output.status.success() {
            return None;
        }
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// Whether this process runs as root (then the server must run as `postgres`: initdb refuses root).
pub(crate) fn running_as_root() -> bool {
    // The effective uid from /proc, else from `id -u`.
    let from_proc = std::fs::read_to_string("/proc/self/status").ok().and_then(|status| {
        status.lines().find_map(|line| {
            let ids = line.strip_prefix("Uid:")?;
            ids.split_whitespace().nth(1)?.parse::<u32>().ok()
        })
    });
    let uid = from_proc.or_else(|| {
        let output = Command::new("id").arg("-u").output().ok()?;
        String::from_utf8_lossy(&output.stdout).trim().parse().ok()
    });
    uid == Some(0)
}

/// Who runs the server: this process's user, or (as root) the `postgres` system user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunAs {
    /// The current user.
    Me,
    /// `runuser -u postgres --`, with its uid and gid.
    Postgres { uid: u32, gid: u32 },
}

impl RunAs {
    pub(crate) fn detect() -> Result<RunAs, TestkitError> {
        if !running_as_root() {
            return Ok(RunAs::Me);
        }
        let (uid, gid) = ids_of("postgres").ok_or(TestkitError::NoPostgresUser)?;
        Ok(RunAs::Postgres { uid, gid })
    }

    /// A command running `program` as this user.
    pub(crate) fn command(&self, program: &Path) -> Command {
        match self {
            RunAs::Me => Command::new(program),
            RunAs::Postgres { .. } => {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(program);
                command
            }
        }
    }
}

//! What the PostgreSQL probes (`src/bin/pg_statements.rs`, `src/bin/c1_statements.rs`) and c1's
//! bench (`benches/pg_tables.rs`) share: c1's tables, and the per-statement report read from
//! `pg_stat_statements`, and the CPU time of the server and of this process.

/// The columns of c1's `t1` and `t2`.
pub const C1_COLUMNS: &str =
    "id bigint PRIMARY KEY, name text NOT NULL, amount numeric(16,2), at timestamptz, doc jsonb";

/// The SQL that makes c1's `t1` with `rows` rows and an empty `t2` of the same shape (run `VACUUM
/// ANALYZE t1` after it, on its own: VACUUM cannot run in the implicit transaction of a
/// multi-statement query).
pub fn c1_tables_sql(rows: u64) -> String {
    format!(
        "CREATE TABLE t1 ({C1_COLUMNS});
         INSERT INTO t1 SELECT g, 'customer ' || g, g * 10.07, \
           timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second', \
           jsonb_build_object('g', g, 'region', 'r' || g % 7) \
         FROM generate_series(1, {rows}) AS g;
         CREATE TABLE t2 ({C1_COLUMNS});"
    )
}

/// One statement's line of `pg_stat_statements`, summed over the statements shown alike.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementStat {
    /// How often it ran.
    pub calls: i64,
    /// The rows it returned or changed.
    pub rows: i64,
    /// Its execution time, in ms.
    pub total_ms: f64,
    /// Its text, whitespace folded, shortened around its WHERE clause.
    pub query: String,
    /// Its planning time, in ms.
    pub planning_ms: f64,
    /// The WAL it wrote, in bytes.
    pub wal_bytes: f64,
    /// The full page images among its WAL records.
    pub wal_fpi: i64,
}

impl StatementStat {
    /// The statement as a markdown table cell.
    pub fn cell(&self) -> String {
        format!("`{}`", self.query.replace('|', "\\|"))
    }
}

/// The `limit` statements of the connection's database with the most execution time, heaviest
/// first (the probes' own reads of the statistics left out). Statements are told apart by their
/// start and their WHERE clause.
pub async fn statement_stats(
    client: &tokio_postgres::Client,
    limit: i64,
) -> Result<Vec<StatementStat>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT sum(calls)::int8, sum(rows)::int8, sum(total_exec_time), q, sum(total_plan_time), \
               sum(wal_bytes)::float8, sum(wal_fpi)::int8 FROM ( \
               SELECT calls, rows, total_exec_time, total_plan_time, wal_bytes, wal_fpi, \
                 CASE WHEN strpos(n, ' WHERE ') > 0 \
                      THEN left(n, 45) || ' … ' || substr(n, strpos(n, ' WHERE '), 60) \
                      ELSE left(n, 90) END AS q \
               FROM (SELECT calls, rows, total_exec_time, total_plan_time, wal_bytes, wal_fpi, regexp_replace(query, '\\s+', ' ', 'g') AS n, dbid, query \
                     FROM pg_stat_statements) p WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND query NOT LIKE '%pg_stat%') s \
             GROUP BY q ORDER BY 3 DESC LIMIT $1",
            &[&limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(StatementStat {
                calls: row.try_get(0)?,
                rows: row.try_get(1)?,
                total_ms: row.try_get(2)?,
                query: row.try_get(3)?,
                planning_ms: row.try_get(4)?,
                wal_bytes: row.try_get(5)?,
                wal_fpi: row.try_get(6)?,
            })
        })
        .collect()
}

/// The CPU time of the server and of this process since a start, from `/proc`.
#[derive(Debug, Clone, Copy)]
pub struct CpuProbe {
    postmaster: i32,
    server: f64,
    own: f64,
}

impl CpuProbe {
    /// Finds the server of `client` (its backend's postmaster); with the environment variable
    /// `pause` set, waits for a line on stdin first (to attach a profiler to the run alone); then
    /// reads the CPU times the run starts from.
    #[allow(clippy::print_stdout, reason = "the prompt of a probe (a binary), on its stdout")]
    pub async fn start(
        client: &tokio_postgres::Client,
        pause: &str,
    ) -> Result<CpuProbe, Box<dyn std::error::Error>> {
        let backend: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await?.try_get(0)?;
        let postmaster = parent_of(backend).ok_or("cannot find the server's postmaster in /proc")?;
        if std::env::var_os(pause).is_some() {
            println!("ready: the server is process {postmaster}; press enter to start");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
        }
        Ok(CpuProbe { postmaster, server: server_cpu(postmaster), own: own_cpu() })
    }

    /// The CPU seconds the server and this process used since the start.
    pub fn used(&self) -> (f64, f64) {
        (server_cpu(self.postmaster) - self.server, own_cpu() - self.own)
    }
}

/// The parent process of `pid`, from `/proc`.
fn parent_of(pid: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU seconds (user and system) of the server `postmaster` and its processes (the backends,
/// and those that ended, which it waited for), from `/proc`.
fn server_cpu(postmaster: i32) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    let mut ticks = 0u64;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else {
            continue;
        };
        if pid == postmaster || parent_of(pid) == Some(postmaster) {
            ticks += process_ticks(&entry.path().join("stat"));
        }
    }
    ticks as f64 / 100.0
}

/// This process's CPU seconds.
fn own_cpu() -> f64 {
    process_ticks(std::path::Path::new("/proc/self/stat")) as f64 / 100.0
}

/// utime + stime + cutime + cstime of `/proc/PID/stat`, in clock ticks (100 a second on Linux).
fn process_ticks(stat: &std::path::Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(stat) else { return 0 };
    // The fields after the command name (which may hold spaces) in parentheses.
    let Some(rest) = text.rsplit_once(')').map(|(_, rest)| rest) else { return 0 };
    rest.split_whitespace().skip(11).take(4).filter_map(|field| field.parse::<u64>().ok()).sum()
}

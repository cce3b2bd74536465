//! `cargo xtask fuzz-api`: schemathesis (PyPI) against `batch serve`'s OpenAPI document. The server
//! runs on a loopback port over a store and data root in a temporary folder, with a token; the run
//! is bounded in examples and time, and fails on any 5xx, any answer that does not match the
//! document, and any schema-violating request that is accepted.
//!
//! Without schemathesis the step says so in one line and passes, unless `PUMP_REQUIRE_TOOLS=1`.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const TOKEN: &str = "xtask-schemathesis-token-0123456789";

/// The server, stopped (SIGTERM, then SIGKILL) however the step ends.
struct ServerProcess {
    child: Child,
    folder: PathBuf,
}

impl ServerProcess {
    /// Sends SIGTERM and waits up to 30 s for a clean exit.
    fn terminate(&mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("the server exited with {status} after SIGTERM (log: {})", self.log().display());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the server did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> PathBuf {
        self.folder.join("server.log")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

fn schemathesis_installed() -> bool {
    Command::new("schemathesis")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `GET /healthz` answers 200.
fn wait_ready(addr: SocketAddr, server: &mut ServerProcess) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = server.child.try_wait()? {
            bail!("the server exited with {status} before it was ready (log: {})", server.log().display());
        }
        if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            let request = format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
            if stream.write_all(request.as_bytes()).is_ok() {
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 200") {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("the server did not answer /healthz within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn run(root: &Path) -> Result<()> {
    if !schemathesis_installed() {
        let required = std::env::var("PUMP_REQUIRE_TOOLS").is_ok_and(|value| value == "1");
        if required {
            bail!("PUMP_REQUIRE_TOOLS=1 but schemathesis is not installed (pip install schemathesis)");
        }
        println!("api fuzzing skipped: schemathesis is not installed (pip install schemathesis)");
        return Ok(());
    }
    crate::run(root, "cargo", &["build", "-p", "batch-cli"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let binary = target.join("debug").join("batch");
    let folder = std::env::temp_dir().join(format!("pump-fuzz-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(folder.join("data"))?;
    std::fs::write(folder.join("token"), TOKEN)?;
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = std::fs::File::create(folder.join("server.log"))?;
    let child = Command::new(&binary)
        .arg("--db")
        .arg(folder.join("batch.db"))
        .args(["serve", "--addr", &addr.to_string(), "--workers", "1", "--token-file"])
        .arg(folder.join("token"))
        .arg("--data-root")
        .arg(folder.join("data"))
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let mut server = ServerProcess { child, folder };
    wait_ready(addr, &mut server)?;
    let document = format!("http://{addr}/api/v1/openapi.json");
    let authorization = format!("Authorization: Bearer {TOKEN}");
    // Every check but `positive_data_acceptance`: a schema cannot say which paths lie inside the data
    // roots or which params a kind accepts together, so a schema-valid request may rightly get a 400.
    let status = Command::new("schemathesis")
        .args(["--no-color", "run", &document, "--header", &authorization])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        // The event stream never ends by itself; its own tests are in batch-server's `events`.
        .args(["--exclude-path", "/api/v1/events"])
        // One worker: with two, schemathesis's threads parse source concurrently and CPython
        // 3.11 before 3.11.8 can fail that with a spurious `SystemError: AST constructor recursion
        // depth mismatch` (python/cpython#106905), a runtime error of the tool (seen in local CI
        // with 3.11.7, every request having passed). Its requests share one GIL anyway.
        .args(["--max-examples", "25", "--max-time", "90", "--seed", "42", "--workers", "1"])
        .args(["--request-timeout", "20"])
        // Its cache of found failures goes to the temporary folder, not into the repository.
        .current_dir(&server.folder)
        .status()
        .context("cannot run schemathesis")?;
    server.terminate()?;
    if !status.success() {
        bail!("schemathesis found failures (exit {status})");
    }
    Ok(())
}

//! How a server runs ([`ServeConfig`]: the store, address, tokens, data roots, workers, limits) and the
//! checks made before it listens: a non-loopback address needs a token, token files must hold a
//! token, data roots must be folders.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use batch_manager::ManagerConfig;

use crate::error::ServerError;

/// Shortest token accepted in a token file, in bytes.
pub const TOKEN_MIN_LEN: usize = 16;

/// Bounds on what one request may cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, in bytes (413 above it).
    pub body_bytes: usize,
    /// Longest a request may take before it is answered 503 (`TIMEOUT_ERROR`). Event streams are not
    /// bounded by it.
    pub request_timeout: Duration,
    /// Most requests handled at once; more wait their turn.
    pub concurrent_requests: usize,
    /// Most event streams open at once; more are answered 503.
    pub event_streams: usize,
}

impl Default for Limits {
    /// 1 MiB bodies, 30 s per request, 256 requests at once, 1024 event streams.
    fn default() -> Limits {
        Limits {
            body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            concurrent_requests: 256,
            event_streams: 1024,
        }
    }
}

/// Everything `batch serve` is started with.
///
/// ```
/// use batch_server::ServeConfig;
///
/// let config = ServeConfig::default();
/// assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
/// assert_eq!(config.workers, 1);
/// assert!(config.token_file.is_none());
/// ```
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where to listen. Without a token file only a loopback address is accepted.
    pub addr: SocketAddr,
    /// Task slots run in this process (0: API only; workers run elsewhere).
    pub workers: usize,
    /// A file holding the token that may do everything.
    pub token_file: Option<PathBuf>,
    /// A file holding a token that may only read.
    pub read_token_file: Option<PathBuf>,
    /// Folders that task paths must lie in; none means the current folder.
    pub data_roots: Vec<PathBuf>,
    /// Request bounds.
    pub limits: Limits,
    /// The manager's lease timings and worker id (`max_concurrent_tasks` is set from `workers`).
    pub manager: ManagerConfig,
    /// How long the server gathers the store's changes before it reads the changed tasks once and
    /// publishes them (a task committing checkpoints in a burst costs one read per window).
    pub event_window: Duration,
}

impl Default for ServeConfig {
    /// Loopback port 8080, one worker, no token, the current folder as the data root,
    /// [`Limits::default`], 10 s leases.
    fn default() -> ServeConfig {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            workers: 1,
            token_file: None,
            read_token_file: None,
            data_roots: Vec::new(),
            limits: Limits::default(),
            manager: ManagerConfig::default()
                .with_lease_ttl(Duration::from_secs(10))
                .with_stop_grace_period(Duration::from_secs(10)),
            event_window: Duration::from_millis(100),
        }
    }
}

/// The tokens the server accepts; none means no authentication (loopback only).
#[derive(Clone, Default)]
pub struct Tokens {
    /// The token that may do everything.
    pub admin: Option<String>,
    /// The token that may only read.
    pub read: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("admin", &self.admin.as_ref().map(|_| "<redacted>"))
            .field("read", &self.read.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Tokens {
    /// Whether requests must carry a token.
    pub fn required(&self) -> bool {
        self.admin.is_some()
    }

    /// Reads the token files named by `config` and checks them against its address.
    pub fn load(config: &ServeConfig) -> Result<Tokens, ServerError> {
        let admin = config.token_file.as_deref().map(|path| read_token("--token-file", path)).transpose()?;
        let read = config
            .read_token_file
            .as_deref()
            .map(|path| read_token("--read-token-file", path))
            .transpose()?;
        if admin.is_none() && read.is_some() {
            return Err(ServerError::config(
                "--read-token-file",
                "needs --token-file too (a read-only token alone would leave nobody able to act)",
            ));
        }
        if admin.is_some() && admin == read {
            return Err(ServerError::config(
                "--read-token-file",
                "must hold another token than --token-file",
            ));
        }
        if admin.is_none() && !config.addr.ip().is_loopback() {
            return Err(ServerError::config(
                "--addr",
                format!(
                    "{} is not a loopback address: a server reachable from other machines needs --token-file",
                    config.addr
                ),
            ));
        }
        Ok(Tokens { admin, read })
    }
}

fn read_token(setting: &str, path: &Path) -> Result<String, ServerError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| ServerError::config(setting, format!("cannot read {}: {error}", path.display())))?;
    let token = text.trim();
    if token.len() < TOKEN_MIN_LEN {
        return Err(ServerError::config(
            setting,
            format!("{} must hold a token of at least {TOKEN_MIN_LEN} characters", path.display()),
        ));
    }
    if token.chars().any(|character| !character.is_ascii_graphic()) {
        return Err(ServerError::config(
            setting,
            format!("{} must hold one token of visible ASCII characters", path.display()),
        ));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token(dir: &Path, name: &str, token: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, token).unwrap();
        path
    }

    #[test]
    fn a_public_address_needs_a_token() {
        let mut config = ServeConfig { addr: "0.0.0.0:8080".parse().unwrap(), ..ServeConfig::default() };
        let error = Tokens::load(&config).unwrap_err();
        assert_eq!(error.code(), "CONFIGURATION_ERROR");
        assert!(error.to_string().contains("--addr"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        config.token_file = Some(with_token(dir.path(), "token", "0123456789abcdef0123\n"));
        let tokens = Tokens::load(&config).unwrap();
        assert_eq!(tokens.admin.as_deref(), Some("0123456789abcdef0123"));
        assert!(!format!("{tokens:?}").contains("0123"));
    }

    #[test]
    fn token_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ServeConfig {
            token_file: Some(with_token(dir.path(), "short", "abc")),
            ..ServeConfig::default()
        };
        assert!(Tokens::load(&config).unwrap_err().to_string().contains("at least 16"));
        config.token_file = Some(dir.path().join("missing"));
        assert!(Tokens::load(&config).unwrap_err().to_string().contains("cannot read"));
        config.token_file = Some(with_token(dir.path(), "a", "0123456789abcdef"));
        config.read_token_file = Some(with_token(dir.path(), "b", "0123456789abcdef"));
        assert!(Tokens::load(&config).unwrap_err().to_string().contains("another token"));
        config.token_file = None;
        assert!(Tokens::load(&config).unwrap_err().to_string().contains("needs --token-file"));
    }
}

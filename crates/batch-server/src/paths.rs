//! Confinement of task paths to the data roots: every parameter that names a file a task reads or
//! writes must lie inside a `--data-root`, after `..` is refused and symlinks are resolved, so no
//! request can read or truncate a file elsewhere.
//!
//! A relative path is taken relative to the first data root and stored absolute, so the task runs the
//! same wherever its worker was started. A path that does not exist yet (an output) is judged by its
//! deepest existing ancestor, resolved, plus the rest of its components.

use std::path::{Component, Path, PathBuf};

use crate::error::ServerError;

/// Whether a path parameter's value is an address (`scheme://…`: a `postgres://` database, the YouZan
/// API's `https://` URL) rather than a file: addresses are left as given, not confined (the kind
/// checks them), as the CLI does.
pub(crate) fn is_address(value: &str) -> bool {
    let Some((scheme, _)) = value.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The folders task paths must lie in, canonicalised once at start.
#[derive(Debug, Clone)]
pub struct DataRoots {
    roots: Vec<PathBuf>,
}

impl DataRoots {
    /// Canonicalises `roots` (each must be an existing folder); none means the current folder.
    pub fn new(roots: &[PathBuf]) -> Result<DataRoots, ServerError> {
        let given: Vec<PathBuf> = if roots.is_empty() {
            let current = std::env::current_dir()
                .map_err(|error| ServerError::config("--data-root", format!("no current folder: {error}")))?;
            vec![current]
        } else {
            roots.to_vec()
        };
        let mut canonical = Vec::with_capacity(given.len());
        for root in given {
            let resolved = root.canonicalize().map_err(|error| {
                ServerError::config("--data-root", format!("{} cannot be used: {error}", root.display()))
            })?;
            if !resolved.is_dir() {
                return Err(ServerError::config(
                    "--data-root",
                    format!("{} is not a folder", root.display()),
                ));
            }
            canonical.push(resolved);
        }
        Ok(DataRoots { roots: canonical })
    }

    /// The canonical roots.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// `value`, the parameter `param`, as an absolute path inside a root; a `VALIDATION_ERROR` naming
    /// the parameter otherwise.
    pub fn confine(&self, param: &str, value: &str) -> Result<PathBuf, ServerError> {
        let invalid = |reason: String| ServerError::invalid(format!("params.{param}"), reason);
        if value.is_empty() {
            return Err(invalid("must not be empty".to_owned()));
        }
        if value.contains('\0') {
            return Err(invalid("must not contain a NUL character".to_owned()));
        }
        let path = Path::new(value);
        if path.components().any(|component| component == Component::ParentDir) {
            return Err(invalid(format!("must not contain `..`, got {value:?}")));
        }
        let Some(first_root) = self.roots.first() else {
            return Err(invalid("no data root is configured".to_owned()));
        };
        let absolute = if path.is_absolute() { path.to_path_buf() } else { first_root.join(path) };
        let resolved =
            resolve(&absolute).map_err(|error| invalid(format!("cannot resolve {value:?}: {error}")))?;
        if self.roots.iter().any(|root| resolved.starts_with(root) && &resolved != root) {
            Ok(absolute_clean(&absolute))
        } else {
            let roots: Vec<String> = self.roots.iter().map(|root| root.display().to_string()).collect();
            Err(invalid(format!(
                "{value:?} lies outside the data roots ({}); paths must name files inside them",
                roots.join(", ")
            )))
        }
    }
}

/// `path` with its symlinks resolved: the deepest existing ancestor canonicalised, then the missing
/// components appended (they contain no `..`, refused before).
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut missing: Vec<std::ffi::OsString> = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(canonical) => {
                let mut resolved = canonical;
                for component in missing.iter().rev() {
                    resolved.push(component);
                }
                return Ok(resolved);
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                // A dangling symlink is not "missing": following it could leave the roots.
                if existing.symlink_metadata().is_ok() {
                    return Err(std::io::Error::other("it is a symlink to a missing file"));
                }
                let Some(name) = existing.file_name().map(std::ffi::OsStr::to_os_string) else {
                    return Err(error);
                };
                missing.push(name);
                if !existing.pop() {
                    return Err(error);
                }
            }
            Err(error) => return Err(error),
        }
    }
}

/// `path` without `.` components (it is absolute and has no `..`).
fn absolute_clean(path: &Path) -> PathBuf {
    path.components().filter(|component| *component != Component::CurDir).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_told_from_paths() {
        assert!(is_address("postgres://app@db:5432/sales"));
        assert!(is_address("https://open.youzan.com"));
        assert!(!is_address("data/in.jsonl"));
        assert!(!is_address("data/a://b.jsonl"));
        assert!(!is_address("://x"));
    }

    fn check(roots: &DataRoots, value: &str) -> Result<PathBuf, String> {
        roots.confine("input", value).map_err(|error| error.to_string())
    }

    #[test]
    fn paths_inside_are_accepted_and_made_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir(root.join("in")).unwrap();
        std::fs::write(root.join("in/a.jsonl"), "").unwrap();
        let roots = DataRoots::new(std::slice::from_ref(&root)).unwrap();
        assert_eq!(check(&roots, "in/a.jsonl").unwrap(), root.join("in/a.jsonl"));
        assert_eq!(check(&roots, "./out/new/b.jsonl").unwrap(), root.join("out/new/b.jsonl"));
        let absolute = root.join("in/a.jsonl");
        assert_eq!(check(&roots, absolute.to_str().unwrap()).unwrap(), absolute);
    }

    #[test]
    fn escapes_are_refused_naming_the_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("nowhere"), root.join("dangling")).unwrap();
        let roots = DataRoots::new(std::slice::from_ref(&root)).unwrap();
        for value in ["../x", "a/../../x", "/etc/passwd", "link/x.jsonl", "link", "dangling", "", "/"] {
            let error = check(&roots, value).unwrap_err();
            assert!(error.starts_with("params.input: "), "{value}: {error}");
        }
        assert!(check(&roots, root.to_str().unwrap()).unwrap_err().contains("outside"));
    }

    #[test]
    fn a_root_must_be_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert_eq!(DataRoots::new(&[file]).unwrap_err().code(), "CONFIGURATION_ERROR");
        assert_eq!(DataRoots::new(&[dir.path().join("missing")]).unwrap_err().code(), "CONFIGURATION_ERROR");
    }
}

//! Checks of a task's files when the task is created, so that a missing input or output folder is a
//! `CONFIGURATION_ERROR` naming the param before any task exists, not a failure of its first run.

use std::fs::File;
use std::path::Path;

/// Why `path` cannot be read as an input file, or `Ok` when it can (it is opened, then closed).
///
/// ```
/// use batch_tasks::records::check_input_file;
///
/// let dir = tempfile::tempdir().unwrap();
/// let missing = dir.path().join("none.jsonl");
/// assert!(check_input_file(&missing).unwrap_err().starts_with("cannot read"));
/// assert_eq!(check_input_file(dir.path()).unwrap_err(), format!("{} is a folder, not a file", dir.path().display()));
/// ```
pub fn check_input_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => {
            return Err(format!("{} is a folder, not a file", path.display()));
        }
        // A pipe or a device is not opened to check it: opening a pipe waits for its writer, and
        // the check would consume what the run should read.
        Ok(metadata) if !metadata.is_file() => return Ok(()),
        Ok(_) => {}
        Err(error) => return Err(format!("cannot read {}: {}", path.display(), os_reason(&error))),
    }
    File::open(path)
        .map(drop)
        .map_err(|error| format!("cannot read {}: {}", path.display(), os_reason(&error)))
}

/// Why the file at `path` cannot be created (its folder is missing, or is not a folder), or `Ok`.
///
/// ```
/// use batch_tasks::records::check_output_folder;
///
/// let dir = tempfile::tempdir().unwrap();
/// assert!(check_output_folder(&dir.path().join("out.jsonl")).is_ok());
/// let error = check_output_folder(&dir.path().join("no/such/out.jsonl")).unwrap_err();
/// assert!(error.starts_with("the folder"), "{error}");
/// ```
pub fn check_output_folder(path: &Path) -> Result<(), String> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    match std::fs::metadata(folder) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => {
            return Err(format!("the folder {} of {} is not a folder", folder.display(), path.display()));
        }
        Err(error) => {
            return Err(format!(
                "the folder {} of {} does not exist: {}",
                folder.display(),
                path.display(),
                os_reason(&error)
            ));
        }
    }
    if std::fs::metadata(path).is_ok_and(|metadata| metadata.is_dir()) {
        return Err(format!("{} is a folder, not a file", path.display()));
    }
    Ok(())
}

/// Why the input at `path` cannot be split into partitions (it is not a regular file: a pipe would
/// be consumed by the split), or `Ok`.
///
/// ```
/// use batch_tasks::records::check_splittable;
///
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("in.jsonl"), "{}\n").unwrap();
/// assert!(check_splittable(&dir.path().join("in.jsonl")).is_ok());
/// assert!(check_splittable(dir.path()).unwrap_err().ends_with("is not a regular file, so it cannot be split"));
/// ```
pub fn check_splittable(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => Ok(()),
        Ok(_) => Err(format!("the input {} is not a regular file, so it cannot be split", path.display())),
        Err(error) => Err(format!("cannot read {}: {}", path.display(), os_reason(&error))),
    }
}

/// An I/O error's reason without Rust's `(os error N)` suffix.
fn os_reason(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// The dead-letter file every kind uses when none is given: `<output's stem>.dead_letters.jsonl`
/// beside the output.
///
/// ```
/// use std::path::Path;
/// use batch_tasks::records::dead_letters_beside;
///
/// assert_eq!(dead_letters_beside(Path::new("/out/orders.jsonl")), Path::new("/out/orders.dead_letters.jsonl"));
/// assert_eq!(dead_letters_beside(Path::new("big.csv")), Path::new("big.dead_letters.jsonl"));
/// ```
pub fn dead_letters_beside(output: &Path) -> std::path::PathBuf {
    output.with_extension("dead_letters.jsonl")
}

//! SQLite task store: the embedded default (one file, WAL, versioned migrations).

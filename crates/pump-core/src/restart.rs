//! `restart_with_backoff`: restart a source or flow that fails as a whole.

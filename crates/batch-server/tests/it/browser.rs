//! The dashboard in the system's headless Chromium (see `dashboard.rs` for the flow).

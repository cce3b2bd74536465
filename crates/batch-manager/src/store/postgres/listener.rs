//! The change feed: one dedicated connection per store that LISTENs for task changes and forwards
//! them to subscribers ([`StoreEvent`]), reconnecting with backoff.
//!
//! Notifications are a hint, never the guarantee: they are lost while the connection is down, and a
//! subscriber that falls behind loses the oldest. So after every reconnect the feed sends
//! [`StoreEvent::Resync`] ("look again now"), and a subscriber that lags
//! ([`tokio::sync::broadcast::error::RecvError::Lagged`]) should do the same; polling stays the
//! fallback.

use std::str::FromStr as _;
use std::time::Duration;

use batch_model::{TaskId, TaskStatus};
use tokio::sync::{broadcast, watch};
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use super::error::PgLocation;
use super::queries;

/// A task that changed: inserted (`pending`), stopped, released, finished, or its status set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskChange {
    /// The task.
    pub id: TaskId,
    /// Its status after the change.
    pub status: TaskStatus,
}

/// What the change feed sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreEvent {
    /// One task changed.
    Changed(TaskChange),
    /// Changes may have been missed (the listener reconnected, or many tasks changed at once): look
    /// at the store again.
    Resync,
}

/// Parses a notification payload: `"<id> <status>"`, or `"*"` for a resync.
pub(super) fn parse_payload(payload: &str) -> Option<StoreEvent> {
    if payload == "*" {
        return Some(StoreEvent::Resync);
    }
    let (id, status) = payload.split_once(' ')?;
    Some(StoreEvent::Changed(TaskChange {
        id: TaskId::from_str(id).ok()?,
        status: TaskStatus::from_str(status).ok()?,
    }))
}

/// The first wait after a lost connection; doubled per failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs the listener until `stop` is cancelled. `listening` tells whether LISTEN is in force.
pub(super) async fn run(
    config: tokio_postgres::Config,
    location: PgLocation,
    events: broadcast::Sender<StoreEvent>,
    listening: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut connected_before = false;
    let mut failures: u32 = 0;
    loop {
        let session = tokio::select! {
            session = listen(&config, &events, &listening, connected_before) => session,
            () = stop.cancelled() => return,
        };
        let _ = listening.send(false);
        match session {
            Ok(()) => {
                connected_before = true;
                backoff = FIRST_BACKOFF;
                failures = 0;
                tracing::warn!(location = %location.shown, "task change listener lost its connection; reconnecting");
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_power_of_two() {
                    let error = location.error("listening for task changes", error);
                    tracing::warn!(%error, failures, "task change listener cannot connect; retrying");
                }
            }
        }
        // Jitter spreads the reconnects of many workers after a server restart.
        let jitter = backoff.mul_f64(fastrand::f64() * 0.25);
        tokio::select! {
            () = tokio::time::sleep(backoff + jitter) => {}
            () = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One session: connect, LISTEN, forward notifications until the connection ends. `Ok` when a
/// session that was listening ended; `Err` when it could not start.
async fn listen(
    config: &tokio_postgres::Config,
    events: &broadcast::Sender<StoreEvent>,
    listening: &watch::Sender<bool>,
    reconnect: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let forward = |message: AsyncMessage| {
        if let AsyncMessage::Notification(notification) = message {
            match parse_payload(notification.payload()) {
                // No subscriber is not an error.
                Some(event) => drop(events.send(event)),
                None => {
                    tracing::debug!(payload = notification.payload(), "ignored a malformed task notification")
                }
            }
        }
    };
    let command = format!("LISTEN {}", queries::CHANNEL);
    let subscribe = client.batch_execute(&command);
    tokio::pin!(subscribe);
    // The connection must be driven while LISTEN runs.
    loop {
        tokio::select! {
            done = &mut subscribe => {
                done?;
                break;
            }
            message = std::future::poll_fn(|cx| connection.poll_message(cx)) => match message {
                Some(Ok(message)) => forward(message),
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            },
        }
    }
    let _ = listening.send(true);
    if reconnect {
        // Changes made while the listener was away were not heard: everyone looks again.
        let _ = events.send(StoreEvent::Resync);
    }
    loop {
        match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(message)) => forward(message),
            Some(Err(error)) => {
                tracing::debug!(%error, "task change listener connection failed");
                return Ok(());
            }
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_into_events() {
        let id = TaskId::new();
        assert_eq!(
            parse_payload(&format!("{id} completed")),
            Some(StoreEvent::Changed(TaskChange { id, status: TaskStatus::Completed }))
        );
        assert_eq!(parse_payload("*"), Some(StoreEvent::Resync));
        assert_eq!(parse_payload("not-an-id pending"), None);
        assert_eq!(parse_payload(&format!("{id} sleeping")), None);
        assert_eq!(parse_payload(""), None);
    }
}

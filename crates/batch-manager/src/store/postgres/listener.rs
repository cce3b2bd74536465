//! The change feed's listener: one dedicated connection per store that LISTENs for task changes
//! (on `queries::CHANNEL`, or on a narrower channel: `queries::CLAIMABLE_CHANNEL` for a worker's
//! store, `queries::ENDED_CHANNEL` for a store that waits for tasks to end)
//! and publishes them on the store's [`ChangeFeed`], reconnecting with backoff; and the payload
//! format both ends share ([`Notifications`] written by the groups and bulk inserts, [`parse_payload`]).
//!
//! Notifications are a hint, never the guarantee: they are lost while the connection is down, and a
//! subscriber that falls behind loses the oldest. So after every reconnect the feed sends
//! [`TaskChange::Resync`] ("look again now"), and a subscriber that lags
//! ([`tokio::sync::broadcast::error::RecvError::Lagged`]) should do the same; polling stays the
//! fallback.

use std::str::FromStr as _;
use std::time::Duration;

use batch_model::{TaskId, TaskStatus};
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use super::error::PgLocation;
use super::queries;
use crate::store::feed::{ChangeFeed, TaskChange};

/// One line of a notification payload: `"<id> <status> <1|0>"` (the last field: claimable), the
/// id as its `Display` writes it. Written piece by piece: through `format!` it was 2,500
/// instructions, one line per task change.
fn payload_line(id: &TaskId, status: TaskStatus, claimable: bool) -> String {
    let status = status.as_str();
    let mut line = String::with_capacity(36 + 1 + status.len() + 2);
    line.push_str(id.encode(&mut [0; 36]));
    line.push(' ');
    line.push_str(status);
    line.push_str(if claimable { " 1" } else { " 0" });
    line
}

/// Most bytes of one notification payload (PostgreSQL's limit is 8000).
const PAYLOAD_LIMIT: usize = 7900;

/// The parameters of [`queries::NOTIFY`]: payloads of change lines packed up to [`PAYLOAD_LIMIT`],
/// every line on [`queries::CHANNEL`], the claimable ones on [`queries::CLAIMABLE_CHANNEL`] too,
/// the ends on [`queries::ENDED_CHANNEL`] too, and resyncs on all three.
#[derive(Debug, Default)]
pub(super) struct Notifications {
    pub(super) channels: Vec<&'static str>,
    pub(super) payloads: Vec<String>,
}

/// The narrower channels a line goes to besides [`queries::CHANNEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct AlsoOn {
    /// [`queries::CLAIMABLE_CHANNEL`]: the change made the task claimable.
    pub(super) claimable: bool,
    /// [`queries::ENDED_CHANNEL`]: the task ended.
    pub(super) ended: bool,
}

impl AlsoOn {
    /// A resync goes everywhere.
    const EVERYWHERE: AlsoOn = AlsoOn { claimable: true, ended: true };
}

impl Notifications {
    /// The notifications of `changes`: a task's line on the claimable channel too when it is
    /// claimable, on the ended channel too when its status is terminal, a resync on every channel.
    pub(super) fn of_changes(changes: impl IntoIterator<Item = TaskChange>) -> Notifications {
        Notifications::of(changes.into_iter().map(|change| match change {
            TaskChange::Task { id, status, claimable } => {
                (payload_line(&id, status, claimable), AlsoOn { claimable, ended: status.is_terminal() })
            }
            _ => ("*".to_owned(), AlsoOn::EVERYWHERE),
        }))
    }

    /// The notifications of `lines` (each a payload line, or `"*"`, and the narrower channels it
    /// goes to too). Each channel's lines keep their order.
    pub(super) fn of(lines: impl IntoIterator<Item = (String, AlsoOn)>) -> Notifications {
        let mut notifications = Notifications::default();
        let (mut all, mut claimable, mut ended) = (String::new(), String::new(), String::new());
        for (line, also) in lines {
            notifications.pack(&mut all, &line, queries::CHANNEL);
            if also.claimable {
                notifications.pack(&mut claimable, &line, queries::CLAIMABLE_CHANNEL);
            }
            if also.ended {
                notifications.pack(&mut ended, &line, queries::ENDED_CHANNEL);
            }
        }
        for (payload, channel) in [
            (all, queries::CHANNEL),
            (claimable, queries::CLAIMABLE_CHANNEL),
            (ended, queries::ENDED_CHANNEL),
        ] {
            if !payload.is_empty() {
                notifications.channels.push(channel);
                notifications.payloads.push(payload);
            }
        }
        notifications
    }

    fn pack(&mut self, payload: &mut String, line: &str, channel: &'static str) {
        // A resync is a payload of its own (a listener reads "*" only as a whole payload).
        let alone = line == "*" || payload == "*";
        if !payload.is_empty() && (alone || payload.len() + 1 + line.len() > PAYLOAD_LIMIT) {
            self.channels.push(channel);
            self.payloads.push(std::mem::take(payload));
        }
        if !payload.is_empty() {
            payload.push('\n');
        }
        payload.push_str(line);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }
}

/// Parses a notification payload: lines of [`payload_line`], or `"*"` for a resync. Malformed lines
/// are skipped.
pub(super) fn parse_payload(payload: &str) -> Vec<TaskChange> {
    if payload == "*" {
        return vec![TaskChange::Resync];
    }
    // Room for every line without growing: a line is at least 46 bytes and a newline.
    let mut changes = Vec::with_capacity(payload.len() / 47 + 1);
    changes.extend(payload.lines().filter_map(parse_line));
    changes
}

/// One line of [`payload_line`] (`"<id> <status> <1|0>"`, the id hyphenated as its `Display` writes
/// it); `None` for anything else. Its fields are cut at their known places: searched for, they cost
/// 970 instructions a line instead of 580, and a listener of every change (a submitter's, a
/// dashboard's) reads two lines a task.
fn parse_line(line: &str) -> Option<TaskChange> {
    let (id, rest) = line.split_at_checked(36)?;
    let (status, claimable) = rest.strip_prefix(' ')?.split_once(' ')?;
    let claimable = match claimable {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    let id = TaskId::from_str(id).ok()?;
    let status = TaskStatus::from_str(status).ok()?;
    Some(TaskChange::Task { id, status, claimable })
}

/// The first wait after a lost connection; doubled per failed attempt up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs the listener until `stop` is cancelled. `listening` tells whether LISTEN is in force.
pub(super) async fn run(
    config: tokio_postgres::Config,
    channel: &'static str,
    location: PgLocation,
    feed: ChangeFeed,
    listening: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut connected_before = false;
    let mut failures: u32 = 0;
    loop {
        let session = tokio::select! {
            session = listen(&config, channel, &feed, &listening, connected_before) => session,
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
    channel: &str,
    feed: &ChangeFeed,
    listening: &watch::Sender<bool>,
    reconnect: bool,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let forward = |message: AsyncMessage| {
        if let AsyncMessage::Notification(notification) = message {
            for change in parse_payload(notification.payload()) {
                feed.publish(change);
            }
        }
    };
    let command = format!("LISTEN {channel}");
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
        feed.publish(TaskChange::Resync);
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
    fn a_line_is_the_id_as_displayed_the_status_and_whether_claimable() {
        for _ in 0..100 {
            let id = TaskId::new();
            for status in [TaskStatus::Pending, TaskStatus::Processing, TaskStatus::Completed] {
                for claimable in [false, true] {
                    let line = payload_line(&id, status, claimable);
                    assert_eq!(line, format!("{id} {status} {}", u8::from(claimable)));
                }
            }
        }
        let id: TaskId = "01a24c1e-ac14-7366-aef5-ac730e4420ba".parse().expect("a task id");
        assert_eq!(
            payload_line(&id, TaskStatus::Failed, true),
            "01a24c1e-ac14-7366-aef5-ac730e4420ba failed 1"
        );
    }

    #[test]
    fn payloads_parse_into_changes() {
        let (first, second) = (TaskId::new(), TaskId::new());
        let payload = [
            payload_line(&first, TaskStatus::Completed, false),
            payload_line(&second, TaskStatus::Processing, true),
        ]
        .join("\n");
        assert_eq!(
            parse_payload(&payload),
            vec![
                TaskChange::Task { id: first, status: TaskStatus::Completed, claimable: false },
                TaskChange::Task { id: second, status: TaskStatus::Processing, claimable: true },
            ]
        );
        assert_eq!(parse_payload("*"), vec![TaskChange::Resync]);
        assert_eq!(parse_payload("not-an-id pending 1"), vec![]);
        assert_eq!(parse_payload(&format!("{first} sleeping 1")), vec![]);
        assert_eq!(parse_payload(&format!("{first} pending")), vec![]);
        assert_eq!(parse_payload(&format!("{first} pending 2")), vec![]);
        assert_eq!(parse_payload(&format!("{first} pending 1 extra")), vec![]);
        assert_eq!(parse_payload(&format!("{first}  pending 1")), vec![]);
        assert_eq!(parse_payload(&format!("{first}pending 1")), vec![]);
        assert_eq!(
            parse_payload(&format!("{} pending 1", first.as_bytes().map(|b| format!("{b:02x}")).concat())),
            vec![]
        );
        assert_eq!(parse_payload("01a24c1e-ac14-7366-aef5-ac730e4420bé pending 1"), vec![]);
        assert_eq!(parse_payload(""), vec![]);
        // A malformed line costs only itself.
        let mixed = format!("{first} pending 1\nnot a line\n{second} completed 0");
        assert_eq!(
            parse_payload(&mixed),
            vec![
                TaskChange::Task { id: first, status: TaskStatus::Pending, claimable: true },
                TaskChange::Task { id: second, status: TaskStatus::Completed, claimable: false },
            ]
        );
    }
}

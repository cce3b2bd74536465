//! `GET /api/v1/events[?task=ID]`: server-sent events of task changes, from the server's one
//! [`Hub`](crate::hub::Hub).
//!
//! Each change is an event `task` whose data is a [`TaskSummary`](batch_model::TaskSummary). With
//! `?task=ID` the stream starts with the task as it is now, carries only its changes, and ends after
//! the task finishes. A stream that falls more than the hub's capacity behind gets a `lagged` event
//! (`{"skipped": N}`: reload what you show) and carries on. Streams end when the server shuts down.
//! The number of open streams is bounded (`503` beyond it); a comment is sent every 15 s to keep
//! proxies from closing an idle stream.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use batch_model::{TaskId, TaskSummary};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tokio_util::sync::CancellationToken;

use crate::error::ServerError;
use crate::extract::{QueryParams, parse_task_id};
use crate::state::AppState;

/// The query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventsQuery {
    task: Option<String>,
}

/// The handler.
pub(crate) async fn stream(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Result<impl IntoResponse, ServerError> {
    let task = query.task.as_deref().map(|text| parse_task_id("task", text)).transpose()?;
    let permit =
        Arc::clone(state.event_streams()).try_acquire_owned().map_err(|_| ServerError::Unavailable {
            reason: format!(
                "{} event streams are open, the most this server keeps",
                state.limits().event_streams
            ),
        })?;
    // Subscribe before reading the task, so no change falls between the two.
    let receiver = state.hub().subscribe();
    let first = match task {
        Some(id) => Some(TaskSummary::from(&state.manager().get_task(&id).await?)),
        None => None,
    };
    let guard = StreamGuard::new(state.clone(), permit);
    let events = EventStream {
        receiver,
        task,
        first,
        finished: false,
        shutdown: state.shutdown_token().clone(),
        _guard: guard,
    };
    let stream = futures::stream::unfold(events, EventStream::next);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Counts the stream in the metrics while it is open and holds its permit.
struct StreamGuard {
    state: AppState,
    _permit: OwnedSemaphorePermit,
}

impl StreamGuard {
    fn new(state: AppState, permit: OwnedSemaphorePermit) -> StreamGuard {
        state.metrics().event_streams_add(1);
        StreamGuard { state, _permit: permit }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.state.metrics().event_streams_add(-1);
    }
}

struct EventStream {
    receiver: broadcast::Receiver<Arc<TaskSummary>>,
    task: Option<TaskId>,
    first: Option<TaskSummary>,
    finished: bool,
    shutdown: CancellationToken,
    _guard: StreamGuard,
}

fn task_event(summary: &TaskSummary) -> Event {
    let data = serde_json::to_string(summary).unwrap_or_else(|_| "{}".to_owned());
    Event::default().event("task").data(data)
}

impl EventStream {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, EventStream)> {
        if self.finished {
            return None;
        }
        if let Some(first) = self.first.take() {
            self.finished = first.status.is_terminal();
            let event = task_event(&first);
            return Some((Ok(event), self));
        }
        loop {
            let received = tokio::select! {
                received = self.receiver.recv() => received,
                () = self.shutdown.cancelled() => return None,
            };
            match received {
                Ok(summary) => {
                    if self.task.is_some_and(|id| id != summary.id) {
                        continue;
                    }
                    self.finished = self.task.is_some() && summary.status.is_terminal();
                    let event = task_event(&summary);
                    return Some((Ok(event), self));
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    let event = Event::default().event("lagged").data(format!("{{\"skipped\":{skipped}}}"));
                    return Some((Ok(event), self));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

//! The status state machine against an explicit table of every (from, to) pair for every cause.

use batch_model::{ErrorCode, ModelError, TaskStatus, TransitionCause};

use TaskStatus::{Cancelled, Completed, Failed, Pending, Processing};

/// (from, to, legal when requested, legal when a lease expired): all 25 pairs, written out.
const TABLE: [(TaskStatus, TaskStatus, bool, bool); 25] = [
    (Pending, Pending, false, false),
    (Pending, Processing, true, false),
    (Pending, Completed, false, false),
    (Pending, Failed, false, false),
    (Pending, Cancelled, true, false),
    (Processing, Pending, false, true),
    (Processing, Processing, false, false),
    (Processing, Completed, true, false),
    (Processing, Failed, true, false),
    (Processing, Cancelled, true, false),
    (Completed, Pending, false, false),
    (Completed, Processing, false, false),
    (Completed, Completed, false, false),
    (Completed, Failed, false, false),
    (Completed, Cancelled, false, false),
    (Failed, Pending, false, false),
    (Failed, Processing, false, false),
    (Failed, Completed, false, false),
    (Failed, Failed, false, false),
    (Failed, Cancelled, false, false),
    (Cancelled, Pending, false, false),
    (Cancelled, Processing, false, false),
    (Cancelled, Completed, false, false),
    (Cancelled, Failed, false, false),
    (Cancelled, Cancelled, false, false),
];

fn check(from: TaskStatus, to: TaskStatus, cause: TransitionCause, legal: bool) {
    assert_eq!(TaskStatus::can_transition(from, to, cause), legal, "can_transition({from}, {to}, {cause:?})");
    match from.transition_to(to, cause) {
        Ok(status) => {
            assert!(legal, "{from} -> {to} ({cause:?}) was allowed");
            assert_eq!(status, to);
        }
        Err(error) => {
            assert!(!legal, "{from} -> {to} ({cause:?}) was refused: {error}");
            assert_eq!(error, ModelError::InvalidTransition { from, to });
            assert_eq!(error.code(), ErrorCode::InvalidState);
            assert_eq!(error.to_string(), format!("invalid state transition from {from} to {to}"));
        }
    }
}

#[test]
fn table_covers_every_pair_once() {
    for from in TaskStatus::ALL {
        for to in TaskStatus::ALL {
            let rows = TABLE.iter().filter(|row| row.0 == from && row.1 == to).count();
            assert_eq!(rows, 1, "{from} -> {to}");
        }
    }
}

#[test]
fn every_pair_matches_the_table_when_requested() {
    for (from, to, requested, _) in TABLE {
        check(from, to, TransitionCause::Requested, requested);
    }
}

#[test]
fn every_pair_matches_the_table_when_a_lease_expired() {
    for (from, to, _, lease_expired) in TABLE {
        check(from, to, TransitionCause::LeaseExpired, lease_expired);
    }
}

#[test]
fn same_status_changes_are_illegal_for_every_cause() {
    for status in TaskStatus::ALL {
        for cause in [TransitionCause::Requested, TransitionCause::LeaseExpired] {
            assert!(!TaskStatus::can_transition(status, status, cause), "{status} -> {status}");
        }
    }
}

#[test]
fn a_terminal_status_is_exactly_one_with_no_way_out() {
    for from in TaskStatus::ALL {
        let has_way_out = TABLE.iter().any(|row| row.0 == from && (row.2 || row.3));
        assert_eq!(from.is_terminal(), !has_way_out, "{from}");
    }
}

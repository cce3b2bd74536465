//! `Progress::compute`: percentage, throughput and estimated time left.

use std::time::Duration;

use batch_model::Progress;

/// Computes progress and checks the three derived values.
fn check(
    (total, processed, failed, skipped): (Option<u64>, u64, u64, u64),
    elapsed: Duration,
    expected: (Option<f64>, Option<f64>, Option<Duration>),
) {
    let progress = Progress::compute(total, processed, failed, skipped, elapsed);
    assert_eq!(
        (progress.percentage, progress.throughput, progress.eta),
        expected,
        "total {total:?}, done {processed}+{failed}+{skipped}, elapsed {elapsed:?}"
    );
    assert_eq!(
        (progress.total, progress.processed, progress.failed, progress.skipped),
        (total, processed, failed, skipped)
    );
    assert_eq!(progress.message, None);
}

#[test]
fn failed_and_skipped_items_count_as_done() {
    // 60 + 30 + 10 = 100 of 400 in 20 s: 25 %, 5 items/s, 300 left -> 60 s.
    check(
        (Some(400), 60, 30, 10),
        Duration::from_secs(20),
        (Some(25.0), Some(5.0), Some(Duration::from_secs(60))),
    );
}

#[test]
fn half_way_in_half_a_second() {
    check(
        (Some(1000), 500, 0, 0),
        Duration::from_millis(500),
        (Some(50.0), Some(1000.0), Some(Duration::from_millis(500))),
    );
}

#[test]
fn unknown_total_gives_throughput_only() {
    check((None, 90, 10, 0), Duration::from_secs(4), (None, Some(25.0), None));
}

#[test]
fn no_time_elapsed_gives_no_rate() {
    check((Some(10), 0, 0, 0), Duration::ZERO, (Some(0.0), None, None));
    check((None, 0, 0, 0), Duration::ZERO, (None, None, None));
}

#[test]
fn nothing_done_gives_no_eta() {
    check((Some(10), 0, 0, 0), Duration::from_secs(3), (Some(0.0), Some(0.0), None));
}

#[test]
fn finished_gives_zero_eta() {
    check((Some(8), 8, 0, 0), Duration::from_secs(2), (Some(100.0), Some(4.0), Some(Duration::ZERO)));
    check((Some(0), 0, 0, 0), Duration::from_secs(2), (Some(100.0), Some(0.0), Some(Duration::ZERO)));
}

#[test]
fn percentage_is_capped_when_the_total_was_an_underestimate() {
    check((Some(50), 75, 0, 0), Duration::from_secs(5), (Some(100.0), Some(15.0), Some(Duration::ZERO)));
}

#[test]
fn fractional_percentage() {
    let progress = Progress::compute(Some(3), 1, 0, 0, Duration::from_secs(1));
    let percentage = progress.percentage.unwrap();
    assert!((percentage - 100.0 / 3.0).abs() < 1e-12, "{percentage}");
    assert_eq!(progress.eta, Some(Duration::from_secs(2)));
}

#[test]
fn compute_stamps_the_current_time() {
    let before = chrono::Utc::now();
    let progress = Progress::compute(None, 0, 0, 0, Duration::ZERO);
    assert!(progress.updated_at >= before && progress.updated_at <= chrono::Utc::now());
}

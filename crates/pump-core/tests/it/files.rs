//! File sources and writers: JSON-lines and CSV round trips with consistent positions, resuming a
//! source from a record's end and a writer from its committed length, malformed records as error
//! elements, I/O failures, acknowledged writes, and the memory bound of a file source.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use pump_core::prelude::*;
use pump_core::sink::{CsvWriter, JsonLinesWriter, RecordWriter, WriteError, WriteSummary};
use pump_core::source::file::ReadError;
use pump_core::source::{FilePosition, Record, RecordError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Row {
    id: u64,
    name: String,
    score: i64,
}

fn row(id: u64) -> Row {
    Row { id, name: format!("row {id}, \"quoted\""), score: -(id as i64) }
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    JsonLines,
    Csv,
}

const FORMATS: [Format; 2] = [Format::JsonLines, Format::Csv];

impl Format {
    fn create(self, path: &Path) -> Box<dyn RecordWriter<Row>> {
        match self {
            Format::JsonLines => Box::new(JsonLinesWriter::create(path).unwrap()),
            Format::Csv => Box::new(CsvWriter::create(path).unwrap()),
        }
    }

    fn resume(self, path: &Path, len: u64) -> Result<Box<dyn RecordWriter<Row>>, WriteError> {
        Ok(match self {
            Format::JsonLines => Box::new(JsonLinesWriter::resume(path, len)?),
            Format::Csv => Box::new(CsvWriter::resume(path, len)?),
        })
    }

    /// Writes `rows` to a new file at `path`; returns the committed length.
    fn write(self, path: &Path, rows: &[Row]) -> u64 {
        let mut writer = self.create(path);
        for row in rows {
            writer.write(row).unwrap();
        }
        writer.flush().unwrap()
    }

    async fn read(self, path: &Path, start: FilePosition) -> Vec<Result<Record<Row>, RecordError>> {
        let outcome = match self {
            Format::JsonLines => {
                source::json_lines::<Row>(path).start_at(start).to(sink::collect()).run().await
            }
            Format::Csv => source::csv::<Row>(path).start_at(start).to(sink::collect()).run().await,
        };
        outcome.unwrap().value
    }

    /// Where the first record of a file of this format starts (after the CSV header row).
    fn first_record(self, bytes: &[u8]) -> FilePosition {
        match self {
            Format::JsonLines => FilePosition::START,
            Format::Csv => match bytes.iter().position(|&byte| byte == b'\n') {
                Some(newline) => FilePosition { offset: newline as u64 + 1, line: 2 },
                None => FilePosition { offset: bytes.len() as u64, line: 1 },
            },
        }
    }
}

fn ok_records(items: Vec<Result<Record<Row>, RecordError>>) -> Vec<Record<Row>> {
    items.into_iter().map(|item| item.unwrap()).collect()
}

/// The records start at `first`, each one where the previous one ended; every line number is the
/// count of newlines before its offset, plus one; every record ends right after a newline, and the
/// last one at the end of the file.
fn assert_positions(bytes: &[u8], records: &[Record<Row>], first: FilePosition) {
    let line_at =
        |offset: u64| 1 + bytes[..offset as usize].iter().filter(|&&byte| byte == b'\n').count() as u64;
    let mut expected = first;
    for record in records {
        assert_eq!(
            FilePosition { offset: record.offset, line: record.line },
            expected,
            "start of {record:?}"
        );
        assert_eq!(record.line, line_at(record.offset));
        assert_eq!(record.end.line, line_at(record.end.offset));
        assert_eq!(bytes[record.end.offset as usize - 1], b'\n', "{record:?} ends after a newline");
        expected = record.end;
    }
    assert_eq!(expected.offset, bytes.len() as u64, "the last record ends the file");
}

fn row_strategy() -> impl Strategy<Value = Row> {
    // Names with the characters CSV and JSON must quote or escape, and multi-byte ones.
    (any::<u64>(), "[a-z ,;\"\n\r\té€]{0,12}", any::<i64>()).prop_map(|(id, name, score)| Row {
        id,
        name,
        score,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// What a writer writes, the matching source reads back: the same values, with positions that
    /// tile the file.
    #[test]
    fn round_trip_keeps_values_and_positions(
        rows in prop::collection::vec(row_strategy(), 0..40),
        csv in any::<bool>(),
    ) {
        let format = if csv { Format::Csv } else { Format::JsonLines };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows");
        let committed = format.write(&path, &rows);
        let bytes = std::fs::read(&path).unwrap();
        prop_assert_eq!(committed, bytes.len() as u64);

        let records = ok_records(block_on(format.read(&path, FilePosition::START)));
        let values: Vec<Row> = records.iter().map(|record| record.value.clone()).collect();
        prop_assert_eq!(&values, &rows);
        if !rows.is_empty() {
            assert_positions(&bytes, &records, format.first_record(&bytes));
        }
        if format == Format::JsonLines {
            for record in &records {
                let line = &bytes[record.offset as usize..record.end.offset as usize];
                prop_assert_eq!(&serde_json::from_slice::<Row>(line).unwrap(), &record.value);
            }
        }
    }

    /// Starting at the `end` of any record yields exactly the records after it, with the same
    /// positions as a full read.
    #[test]
    fn start_at_a_record_end_reads_exactly_the_rest(
        rows in prop::collection::vec(row_strategy(), 1..40),
        split in any::<prop::sample::Index>(),
        csv in any::<bool>(),
    ) {
        let format = if csv { Format::Csv } else { Format::JsonLines };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows");
        format.write(&path, &rows);
        let all = ok_records(block_on(format.read(&path, FilePosition::START)));
        let done = split.index(all.len());
        let rest = ok_records(block_on(format.read(&path, all[done].end)));
        prop_assert_eq!(&rest[..], &all[done + 1..]);
    }
}

#[test]
fn resuming_a_writer_at_its_checkpoint_gives_a_byte_identical_file() {
    let rows: Vec<Row> = (1..=10).map(row).collect();
    for format in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let uninterrupted = dir.path().join("uninterrupted");
        format.write(&uninterrupted, &rows);

        let interrupted = dir.path().join("interrupted");
        let mut writer = format.create(&interrupted);
        for row in &rows[..5] {
            writer.write(row).unwrap();
        }
        let checkpoint = writer.flush().unwrap();
        // Written after the checkpoint, then the process dies: these bytes must go.
        for row in &rows[5..8] {
            writer.write(row).unwrap();
        }
        writer.flush().unwrap();
        drop(writer);
        assert!(std::fs::metadata(&interrupted).unwrap().len() > checkpoint);

        let mut writer = format.resume(&interrupted, checkpoint).unwrap();
        assert_eq!(writer.written_len(), checkpoint);
        for row in &rows[5..] {
            writer.write(row).unwrap();
        }
        let committed = writer.flush().unwrap();

        let expected = std::fs::read(&uninterrupted).unwrap();
        assert_eq!(std::fs::read(&interrupted).unwrap(), expected, "{format:?}");
        assert_eq!(committed, expected.len() as u64);
    }
}

#[test]
fn resuming_on_a_file_shorter_than_the_checkpoint_is_refused() {
    for format in FORMATS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows");
        let len = format.write(&path, &[row(1), row(2)]);
        let error = format.resume(&path, len + 1).err().unwrap();
        match &error {
            WriteError::ShorterThanCheckpoint { path: named, expected, actual } => {
                assert_eq!((named.as_path(), *expected, *actual), (path.as_path(), len + 1, len));
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(error.to_string().contains(&*path.to_string_lossy()), "{error}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "the file is left alone");
    }
}

#[tokio::test]
async fn a_malformed_json_line_is_an_error_element_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.jsonl");
    let good = "{\"id\":1,\"name\":\"a\",\"score\":1}\n";
    let bad = "{\"id\":2,\"name\":\"b\",\"score\":}";
    let last = "{\"id\":3,\"name\":\"c\",\"score\":3}\n";
    std::fs::write(&path, format!("{good}{bad}\n  \n{last}")).unwrap();

    let outcome = source::json_lines::<Row>(&path).to(sink::collect()).run().await.unwrap();
    let items = outcome.value;
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_ref().unwrap().value.id, 1);
    let error = items[1].as_ref().unwrap_err();
    let bad_offset = good.len() as u64;
    assert_eq!((error.line, error.offset), (2, bad_offset));
    assert_eq!(error.end, FilePosition { offset: bad_offset + bad.len() as u64 + 1, line: 3 });
    assert_eq!(error.raw, bad);
    assert_eq!(error.reason, "expected value at column 28");
    assert_eq!(error.to_string(), format!("line 2 (byte {bad_offset}): expected value at column 28"));
    let third = items[2].as_ref().unwrap();
    assert_eq!((third.value.id, third.line, third.offset), (3, 4, bad_offset + bad.len() as u64 + 4));
    assert_eq!(outcome.stats.metrics.stage("json_lines").unwrap().errors, 1);
}

#[tokio::test]
async fn a_csv_row_that_does_not_deserialize_is_an_error_element_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.csv");
    std::fs::write(&path, "id,name,score\n1,a,10\n2,b,ten\n3,c\n4,d,40\n").unwrap();

    let outcome = source::csv::<Row>(&path).to(sink::collect()).run().await.unwrap();
    let items = outcome.value;
    assert_eq!(items.len(), 4);
    let ids: Vec<u64> =
        items.iter().filter_map(|item| item.as_ref().ok()).map(|record| record.value.id).collect();
    assert_eq!(ids, [1, 4]);

    let not_a_number = items[1].as_ref().unwrap_err();
    assert_eq!((not_a_number.line, not_a_number.offset), (3, 21));
    assert_eq!(not_a_number.end, FilePosition { offset: 29, line: 4 });
    assert_eq!(not_a_number.reason, "column `score`: invalid digit found in string");
    assert_eq!(not_a_number.raw, "2,b,ten");

    let too_short = items[2].as_ref().unwrap_err();
    assert_eq!((too_short.line, too_short.offset), (4, 29));
    assert_eq!(too_short.reason, "found 2 fields, expected 3");
    assert_eq!(outcome.stats.metrics.stage("csv").unwrap().errors, 2);
}

#[tokio::test]
async fn invalid_utf8_is_an_error_element_of_text_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, b"caf\xe9\nok\n").unwrap();
    let items = source::text_lines(&path).to(sink::collect()).run().await.unwrap().value;
    let error = items[0].as_ref().unwrap_err();
    assert_eq!((error.line, error.raw.as_str()), (1, "caf\u{FFFD}"));
    assert!(error.reason.contains("utf-8"), "{}", error.reason);
    assert_eq!(items[1].as_ref().unwrap().value, "ok");
}

#[tokio::test]
async fn a_missing_file_fails_the_run_with_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.data");
    let runs = [
        ("json_lines", source::json_lines::<Row>(&path).map(|_| ()).to(sink::ignore()).run().await),
        ("csv", source::csv::<Row>(&path).map(|_| ()).to(sink::ignore()).run().await),
        ("text_lines", source::text_lines(&path).map(|_| ()).to(sink::ignore()).run().await),
    ];
    for (operator, result) in runs {
        let Err(PipelineError::Io { stage, source }) = result else {
            panic!("{operator}: expected an I/O failure, got {result:?}");
        };
        assert!(stage.ends_with(operator), "{stage}");
        assert!(source.to_string().contains(&*path.to_string_lossy()), "{source}");
        let read_error = source.downcast_ref::<ReadError>().unwrap();
        assert_eq!(read_error.path, path);
        assert_eq!(read_error.source.kind(), std::io::ErrorKind::NotFound);
    }
}

#[tokio::test]
async fn a_record_that_cannot_be_written_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("maps.jsonl");
    // JSON object keys must be strings.
    let records = vec![HashMap::from([("a".to_owned(), 1)]), HashMap::from([("b".to_owned(), 2)])];
    let bad = HashMap::from([((1u8, 2u8), 3)]);
    let good =
        source::iter(records).to(sink::write(JsonLinesWriter::create(&path).unwrap())).run().await.unwrap();
    assert_eq!(good.value, WriteSummary { records: 2, bytes: 16 });

    let result = source::iter([bad]).to(sink::write(JsonLinesWriter::create(&path).unwrap())).run().await;
    let Err(PipelineError::Io { stage, source }) = result else {
        panic!("expected an I/O failure, got {result:?}");
    };
    assert!(stage.ends_with(":write"), "{stage}");
    match source.downcast_ref::<WriteError>() {
        Some(WriteError::Serialize { path: named, record, .. }) => assert_eq!((named, *record), (&path, 1)),
        other => panic!("unexpected cause {other:?}"),
    }
}

#[tokio::test]
async fn write_acked_commits_the_last_context_of_each_chunk_after_writing_it() {
    for durable in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let commits = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&commits);
        let watched = path.clone();
        let summary = source::iter((0..10u64).map(|index| Ctx::new(index, row(index))))
            .batch(NonZeroUsize::new(3).unwrap(), Duration::from_secs(60))
            .to(sink::write_acked(JsonLinesWriter::create(&path).unwrap(), move |index: u64, committed| {
                // Acknowledged only once written: the file holds exactly the rows up to `index`.
                let bytes = std::fs::read(&watched).unwrap();
                let rows: Vec<Row> = bytes
                    .split(|&byte| byte == b'\n')
                    .filter(|line| !line.is_empty())
                    .map(|line| serde_json::from_slice(line).unwrap())
                    .collect();
                log.lock().unwrap().push((index, committed, bytes.len() as u64, rows.len() as u64));
            })
            .durable(durable))
            .run()
            .await
            .unwrap()
            .value;

        let commits = commits.lock().unwrap().clone();
        let indexes: Vec<u64> = commits.iter().map(|commit| commit.0).collect();
        assert_eq!(indexes, [2, 5, 8, 9]);
        for (index, committed, file_len, rows_in_file) in &commits {
            assert_eq!(committed, file_len, "durable={durable}: committed length is the file's length");
            assert_eq!(*rows_in_file, index + 1);
        }
        let file_len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(summary, WriteSummary { records: 10, bytes: file_len });
    }
}

#[tokio::test]
async fn crlf_line_ends_and_a_last_line_without_newline() {
    let dir = tempfile::tempdir().unwrap();

    let json = dir.path().join("rows.jsonl");
    let first = "{\"id\":1,\"name\":\"a\",\"score\":1}\r\n";
    std::fs::write(&json, format!("{first}\r\n{{\"id\":2,\"name\":\"b\",\"score\":2}}")).unwrap();
    let file_len = std::fs::metadata(&json).unwrap().len();
    let records = ok_records(source::json_lines::<Row>(&json).to(sink::collect()).run().await.unwrap().value);
    assert_eq!(records.iter().map(|record| record.value.id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(records[0].end, FilePosition { offset: first.len() as u64, line: 2 });
    assert_eq!((records[1].offset, records[1].line), (first.len() as u64 + 2, 3));
    assert_eq!(records[1].end.offset, file_len);

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "one\r\ntwo").unwrap();
    let lines = source::text_lines(&text).to(sink::collect()).run().await.unwrap().value;
    let lines: Vec<String> = lines.into_iter().map(|line| line.unwrap().value).collect();
    assert_eq!(lines, ["one", "two"]);

    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "id,name,score\r\n1,a,1\r\n2,b,2").unwrap();
    let records = ok_records(source::csv::<Row>(&csv).to(sink::collect()).run().await.unwrap().value);
    let positions: Vec<(u64, u64, FilePosition)> =
        records.iter().map(|record| (record.offset, record.line, record.end)).collect();
    assert_eq!(
        positions,
        [(15, 2, FilePosition { offset: 22, line: 3 }), (22, 3, FilePosition { offset: 27, line: 3 })]
    );
    assert_eq!(records[1].value, Row { id: 2, name: "b".to_owned(), score: 2 });
}

#[tokio::test]
async fn a_quoted_csv_field_may_hold_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.csv");
    std::fs::write(&path, "id,name,score\n1,\"two\r\nlines, and \"\"quotes\"\"\",5\n2,x,6\n").unwrap();
    let records = ok_records(source::csv::<Row>(&path).to(sink::collect()).run().await.unwrap().value);
    assert_eq!(records[0].value.name, "two\r\nlines, and \"quotes\"");
    assert_eq!((records[0].line, records[0].offset), (2, 14));
    assert_eq!(records[0].end, FilePosition { offset: 47, line: 4 });
    assert_eq!((records[1].line, records[1].offset, records[1].value.id), (4, 47, 2));

    // Resuming after the multi-line record continues the line count.
    let rest = ok_records(
        source::csv::<Row>(&path).start_at(records[0].end).to(sink::collect()).run().await.unwrap().value,
    );
    assert_eq!(rest, records[1..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_dropped_early_stops_its_reader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.jsonl");
    let lines: String = (0..100_000).map(|n| format!("{n}\n")).collect();
    std::fs::write(&path, lines).unwrap();
    // The runtime waits for blocking threads when it shuts down: a reader that did not notice the
    // source was dropped would keep this test from ending.
    let first = source::json_lines::<u64>(&path).take(5).to(sink::collect()).run().await.unwrap().value;
    let values: Vec<u64> = first.into_iter().map(|record| record.unwrap().value).collect();
    assert_eq!(values, [0, 1, 2, 3, 4]);
}

/// Counts how many values the reader thread has parsed.
static PARSED: AtomicU64 = AtomicU64::new(0);

struct Counted;

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u64::deserialize(deserializer)?;
        PARSED.fetch_add(1, Ordering::SeqCst);
        Ok(Counted)
    }
}

/// A file source holds at most 3 chunks of `CHUNK_LEN` (1024) parsed records (two queued or being filled, one
/// being handed out), however far behind the pipeline is.
#[tokio::test]
async fn a_file_source_holds_at_most_three_chunks() {
    const BOUND: u64 = 3 * pump_core::source::file::CHUNK_LEN as u64;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.jsonl");
    let lines: String = (0..20_000).map(|n| format!("{n}\n")).collect();
    std::fs::write(&path, lines).unwrap();

    let consumed = Arc::new(AtomicU64::new(0));
    let most_alive = Arc::new(AtomicU64::new(0));
    let (counter, highest) = (Arc::clone(&consumed), Arc::clone(&most_alive));
    let outcome = source::json_lines::<Counted>(&path)
        .map_async(NonZeroUsize::MIN, move |record| {
            let (counter, highest) = (Arc::clone(&counter), Arc::clone(&highest));
            async move {
                assert!(record.is_ok());
                if counter.load(Ordering::SeqCst) == 0 {
                    // Let the reader run ahead until it must stop: it fills every buffer it has.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while PARSED.load(Ordering::SeqCst) < BOUND && Instant::now() < deadline {
                        tokio::task::yield_now().await;
                    }
                }
                let consumed = counter.fetch_add(1, Ordering::SeqCst);
                highest.fetch_max(PARSED.load(Ordering::SeqCst) - consumed, Ordering::SeqCst);
            }
        })
        .to(sink::count())
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.value, 20_000);
    let most_alive = most_alive.load(Ordering::SeqCst);
    assert_eq!(most_alive, BOUND, "the reader fills three chunks and no more");
}

/// A value whose deserialization panics, as a buggy `Deserialize` impl would.
#[derive(Debug)]
struct Exploding;

impl<'de> Deserialize<'de> for Exploding {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        assert!(value != 3, "cannot deserialize {value}");
        Ok(Exploding)
    }
}

#[tokio::test]
async fn a_panic_while_parsing_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("numbers.jsonl");
    std::fs::write(&path, "1\n2\n3\n4\n").unwrap();
    let result = source::json_lines::<Exploding>(&path).to(sink::count()).run().await;
    let Err(PipelineError::Panicked { stage, message }) = result else {
        panic!("expected a panic error, got {result:?}");
    };
    assert!(stage.ends_with(":json_lines"), "{stage}");
    assert_eq!(message, "cannot deserialize 3");
}

#[tokio::test]
async fn a_csv_quote_left_open_is_an_error_naming_the_line_it_opened_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.csv");
    std::fs::write(&path, "id,name,score\n1,a,1\n2,\"b,2\n3,c,3\n4,d,4\n").unwrap();
    let outcome = source::csv::<Row>(&path).to(sink::collect()).run().await.unwrap();
    assert_eq!(outcome.value.len(), 2);
    assert_eq!(outcome.value[0].as_ref().unwrap().value.id, 1);
    let error = outcome.value[1].as_ref().unwrap_err();
    assert_eq!((error.line, error.offset), (3, 20));
    assert_eq!(
        error.reason,
        "the quote opened on line 3 is never closed: the record runs to the end of the file (3 lines from there)"
    );
}

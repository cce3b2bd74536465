//! `batch gen youzan_order|train|batch_process`: deterministic sample data files from the kinds'
//! generators.

use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::Path;
use std::process::ExitCode;

use batch::model::ErrorCode;
use batch::tasks::train::DataFormat;
use batch::tasks::{batch_process, train, youzan};

use crate::cli::{GenArgs, GenKind};
use crate::commands::announce;
use crate::failure::{coded, configuration};

pub(crate) fn gen_command(args: &GenArgs) -> anyhow::Result<ExitCode> {
    let ratio = args.invalid_ratio.unwrap_or(match args.kind {
        GenKind::YouzanOrder => 0.05,
        GenKind::BatchProcess => 0.02,
        GenKind::Train => 0.0,
    });
    if !(0.0..=1.0).contains(&ratio) {
        return Err(configuration(format!("--invalid-ratio must be between 0 and 1, got {ratio}")));
    }
    let written = write_sample(args.kind, args, ratio)?;
    announce(&format!("wrote {written} records to {}", args.output.display()));
    Ok(ExitCode::SUCCESS)
}

/// Writes the file and returns how many records it holds.
pub(crate) fn write_sample(kind: GenKind, args: &GenArgs, ratio: f64) -> anyhow::Result<u64> {
    let output = &args.output;
    if let Some(parent) = output.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| cannot_write(output, &error))?;
    }
    match kind {
        GenKind::YouzanOrder => {
            let file = File::create(output).map_err(|error| cannot_write(output, &error))?;
            let config = youzan::generator::GeneratorConfig {
                count: args.count,
                seed: args.seed,
                invalid_ratio: ratio,
            };
            let stats =
                youzan::generator::generate(&config, file).map_err(|error| cannot_write(output, &error))?;
            Ok(stats.lines)
        }
        GenKind::Train => {
            if args.features == 0 {
                return Err(configuration("--features must be at least 1, got 0"));
            }
            if args.classes < 2 {
                return Err(configuration(format!("--classes must be at least 2, got {}", args.classes)));
            }
            let config = if args.classes == 2 {
                train::GeneratorConfig::binary(args.count, args.features, args.seed)
            } else {
                train::GeneratorConfig::blobs(args.count, args.features, args.classes, args.seed)
            };
            let format = DataFormat::from_path(output).unwrap_or(DataFormat::Csv);
            train::Generator::new(config.with_format(format))
                .write_file(output)
                .map_err(|error| cannot_write(output, &error))?;
            if ratio > 0.0 {
                spoil_rows(output, format, ratio)?;
            }
            Ok(args.count)
        }
        GenKind::BatchProcess => {
            let records = usize::try_from(args.count)
                .map_err(|_| configuration(format!("--count is too large: {}", args.count)))?;
            let config = batch_process::GeneratorConfig {
                records,
                seed: args.seed,
                invalid_amount_per_mille: (ratio * 1000.0).round() as u32,
                ..batch_process::GeneratorConfig::default()
            };
            let is_csv = output.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("csv"));
            let written = if is_csv {
                batch_process::write_csv(output, &config)
            } else {
                batch_process::write_json_lines(output, &config)
            };
            Ok(written.map_err(|error| cannot_write(output, &error))?.records)
        }
    }
}

/// Makes `ratio` of a training file's data rows bad, evenly spread: a CSV row's first feature becomes
/// `n/a`, a JSON line is cut in half. The train kind sends such rows to its dead-letter file.
fn spoil_rows(path: &Path, format: DataFormat, ratio: f64) -> anyhow::Result<()> {
    let spoiled = path.with_extension("spoiling");
    {
        let input = BufReader::new(File::open(path).map_err(|error| cannot_write(path, &error))?);
        let mut output =
            BufWriter::new(File::create(&spoiled).map_err(|error| cannot_write(&spoiled, &error))?);
        let header_lines = usize::from(format == DataFormat::Csv);
        for (idx, line) in input.lines().enumerate() {
            let line = line.map_err(|error| cannot_write(path, &error))?;
            let row = idx.saturating_sub(header_lines) as f64;
            let bad = idx >= header_lines && ((row + 1.0) * ratio).floor() > (row * ratio).floor();
            let line = match (bad, format) {
                (false, _) => line,
                (true, DataFormat::Csv) => match line.split_once(',') {
                    Some((_, rest)) => format!("n/a,{rest}"),
                    None => "n/a".to_owned(),
                },
                (true, DataFormat::JsonLines) => line.chars().take(line.chars().count() / 2).collect(),
            };
            writeln!(output, "{line}").map_err(|error| cannot_write(&spoiled, &error))?;
        }
        output.flush().map_err(|error| cannot_write(&spoiled, &error))?;
    }
    std::fs::rename(&spoiled, path).map_err(|error| cannot_write(path, &error))?;
    Ok(())
}

fn cannot_write(path: &Path, error: &dyn std::fmt::Display) -> anyhow::Error {
    coded(ErrorCode::StorageError, format!("cannot write {} (set it with --output): {error}", path.display()))
}

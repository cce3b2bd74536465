//! A deterministic generator of classification datasets with a known structure, for demos, tests
//! and benchmarks: two classes split by a known hyperplane (with a share of labels flipped), or
//! Gaussian blobs around known centres that overlap (two centres lie about [`BLOB_SEPARATION`]
//! standard deviations apart whatever the number of features, so no model can be right about every
//! row and a hold-out accuracy means something). Features get per-column scales and offsets, so that
//! standardisation matters. The same config and seed always write the same bytes.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use crate::train::config::DataFormat;

/// The label column of generated datasets.
pub const LABEL: &str = "label";

/// How far apart two blob centres lie on average, in blob standard deviations (at `noise` 1): far
/// enough for a linear model to tell the classes apart mostly, near enough that they overlap (two
/// such blobs alone are told apart right about 93% of the time; three about 88%).
pub const BLOB_SEPARATION: f64 = 3.0;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GeneratorConfig {
    /// Rows to write.
    pub rows: u64,
    /// Feature columns (`x0`, `x1`, ...).
    pub features: usize,
    /// Classes: 2 for a hyperplane split, 3 or more for Gaussian blobs.
    pub classes: usize,
    /// The seed: same seed, same bytes.
    pub seed: u64,
    /// Two classes: the share of labels flipped (the best achievable accuracy is `1 − noise`). Blobs:
    /// each blob's standard deviation (before scaling), against centres about
    /// [`BLOB_SEPARATION`] apart.
    pub noise: f64,
    /// CSV (with a header) or JSON lines.
    pub format: DataFormat,
}

impl GeneratorConfig {
    /// Two classes (`negative`, `positive`) split by a random hyperplane through the origin of the
    /// latent features, 5% of labels flipped; CSV.
    pub fn binary(rows: u64, features: usize, seed: u64) -> GeneratorConfig {
        GeneratorConfig { rows, features, classes: 2, seed, noise: 0.05, format: DataFormat::Csv }
    }

    /// `classes` Gaussian blobs of standard deviation 1 around centres drawn uniformly per feature
    /// from `[−a, a]`, with `a` set so that two centres lie about [`BLOB_SEPARATION`] apart whatever
    /// the number of features (the blobs overlap); classes `class_0`, `class_1`, ... (zero-padded so
    /// they sort in order); CSV.
    pub fn blobs(rows: u64, features: usize, classes: usize, seed: u64) -> GeneratorConfig {
        GeneratorConfig { rows, features, classes: classes.max(2), seed, noise: 1.0, format: DataFormat::Csv }
    }

    /// The same config writing `format`.
    #[must_use]
    pub fn with_format(self, format: DataFormat) -> GeneratorConfig {
        GeneratorConfig { format, ..self }
    }

    /// The same config with `noise`.
    #[must_use]
    pub fn with_noise(self, noise: f64) -> GeneratorConfig {
        GeneratorConfig { noise, ..self }
    }
}

/// A dataset generator: its hidden structure is drawn from the seed when it is built, its rows when
/// it writes.
///
/// ```
/// use batch_tasks::train::{Generator, GeneratorConfig};
///
/// let generator = Generator::new(GeneratorConfig::binary(3, 2, 42));
/// let mut csv = Vec::new();
/// generator.write(&mut csv)?;
/// let text = String::from_utf8(csv).unwrap();
/// assert_eq!(text.lines().next(), Some("x0,x1,label"));
/// assert_eq!(text.lines().count(), 4);
///
/// let mut again = Vec::new();
/// Generator::new(GeneratorConfig::binary(3, 2, 42)).write(&mut again)?;
/// assert_eq!(again, text.as_bytes());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Generator {
    config: GeneratorConfig,
    /// The hyperplane's normal (two classes), in latent units.
    weights: Vec<f64>,
    /// Blob centres, `classes × features` (three or more classes), in latent units.
    centres: Vec<f64>,
    scales: Vec<f64>,
    offsets: Vec<f64>,
    class_names: Vec<String>,
}

impl Generator {
    /// Draws the dataset's structure from `config.seed`.
    pub fn new(config: GeneratorConfig) -> Generator {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let features = config.features;
        let weights: Vec<f64> = (0..features).map(|_| normal(&mut rng)).collect();
        // Two coordinates drawn from [−a, a] differ by a variance of 2a²/3, so two centres lie
        // √(2a²/3 · features) apart: `a` below makes that BLOB_SEPARATION.
        let half_width = BLOB_SEPARATION * (1.5 / features.max(1) as f64).sqrt();
        let centres: Vec<f64> = if config.classes > 2 {
            (0..config.classes * features).map(|_| (rng.f64() * 2.0 - 1.0) * half_width).collect()
        } else {
            Vec::new()
        };
        let scales = (0..features).map(|_| (rng.f64() * 4.0 - 1.0).exp()).collect();
        let offsets = (0..features).map(|_| rng.f64() * 100.0 - 50.0).collect();
        let class_names = if config.classes > 2 {
            let width = (config.classes - 1).to_string().len();
            (0..config.classes).map(|class| format!("class_{class:0width$}")).collect()
        } else {
            vec!["negative".to_owned(), "positive".to_owned()]
        };
        Generator { config, weights, centres, scales, offsets, class_names }
    }

    /// The feature column names: `x0`, `x1`, ...
    pub fn feature_names(&self) -> Vec<String> {
        (0..self.config.features).map(|idx| format!("x{idx}")).collect()
    }

    /// The class names, sorted.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Two classes: the normal of the separating hyperplane over the latent features (a raw value is
    /// `offset + scale × latent`, so a model over standardised features should point the same way).
    pub fn latent_weights(&self) -> &[f64] {
        &self.weights
    }

    /// Each feature's scale: raw value = offset + scale × latent value.
    pub fn scales(&self) -> &[f64] {
        &self.scales
    }

    /// Writes the dataset to `out` (buffer it: rows are written value by value).
    pub fn write(&self, mut out: impl Write) -> io::Result<()> {
        let mut rng = fastrand::Rng::with_seed(self.config.seed ^ 0x5eed_da7a);
        let names = self.feature_names();
        let mut line = String::new();
        if self.config.format == DataFormat::Csv {
            line.push_str(&names.join(","));
            line.push(',');
            line.push_str(LABEL);
            line.push('\n');
            out.write_all(line.as_bytes())?;
        }
        let mut latent = vec![0.0; self.config.features];
        for _ in 0..self.config.rows {
            let class = self.draw(&mut rng, &mut latent);
            line.clear();
            if self.config.format == DataFormat::JsonLines {
                line.push('{');
            }
            for (idx, value) in latent.iter().enumerate() {
                let raw = self.offsets[idx] + self.scales[idx] * value;
                let _ = match self.config.format {
                    DataFormat::Csv => write!(line, "{raw:.6},"),
                    DataFormat::JsonLines => write!(line, "\"x{idx}\":{raw:.6},"),
                };
            }
            let label = &self.class_names[class];
            let _ = match self.config.format {
                DataFormat::Csv => writeln!(line, "{label}"),
                DataFormat::JsonLines => writeln!(line, "\"{LABEL}\":\"{label}\"}}"),
            };
            out.write_all(line.as_bytes())?;
        }
        out.flush()
    }

    /// Writes the dataset to the file at `path`.
    pub fn write_file(&self, path: &Path) -> io::Result<()> {
        let file = std::fs::File::create(path)?;
        self.write(io::BufWriter::with_capacity(256 * 1024, file))
    }

    /// Draws one row's latent features into `latent` and returns its class.
    fn draw(&self, rng: &mut fastrand::Rng, latent: &mut [f64]) -> usize {
        if self.config.classes > 2 {
            let class = rng.usize(..self.config.classes);
            let centre = &self.centres[class * self.config.features..(class + 1) * self.config.features];
            for (value, &centre) in latent.iter_mut().zip(centre) {
                *value = centre + self.config.noise * normal(rng);
            }
            class
        } else {
            for value in latent.iter_mut() {
                *value = normal(rng);
            }
            let margin: f64 = latent.iter().zip(&self.weights).map(|(x, w)| x * w).sum();
            let class = usize::from(margin > 0.0);
            if rng.f64() < self.config.noise { 1 - class } else { class }
        }
    }
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

//! Feature standardisation: per-feature mean and standard deviation accumulated in one streaming
//! pass ([`Welford`]), and the [`Scaler`] that maps raw features to zero mean and unit variance.
//!
//! Welford's update keeps a running mean and the running sum of squared deviations from it, so the
//! variance never comes from subtracting two large, nearly equal sums (the one-pass `Σx² − n·x̄²`
//! formula loses every digit when the mean is large against the spread). The accumulator is plain
//! data: a checkpoint stores it exactly and a resumed pass continues it bit for bit.

use serde::{Deserialize, Serialize};

/// Running per-feature mean and sum of squared deviations (Welford's online algorithm).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Welford {
    /// Rows seen.
    pub count: u64,
    /// The running mean of each feature.
    pub means: Vec<f64>,
    /// The running sum of squared deviations from the mean, per feature.
    pub squares: Vec<f64>,
}

impl Welford {
    /// An accumulator for `features` features, nothing seen yet.
    pub(super) fn new(features: usize) -> Welford {
        Welford { count: 0, means: vec![0.0; features], squares: vec![0.0; features] }
    }

    /// Adds one row.
    ///
    /// # Panics
    ///
    /// If `row` does not have one value per feature (a bug in the caller).
    pub(super) fn push(&mut self, row: &[f64]) {
        assert_eq!(row.len(), self.means.len(), "a row has one value per feature");
        self.count += 1;
        let count = self.count as f64;
        for ((mean, square), &value) in self.means.iter_mut().zip(&mut self.squares).zip(row) {
            let delta = value - *mean;
            *mean += delta / count;
            *square += delta * (value - *mean);
        }
    }

    /// The scaler of the rows seen: their means and population standard deviations. A feature with
    /// no spread (or no rows) gets a standard deviation of 1, so it maps to 0 rather than to a
    /// division by zero.
    ///
    pub(super) fn scaler(&self) -> Scaler {
        let count = self.count as f64;
        let stds = self
            .squares
            .iter()
            .map(|&square| {
                let std = if self.count == 0 { 0.0 } else { (square / count).sqrt() };
                if std > 0.0 && std.is_finite() { std } else { 1.0 }
            })
            .collect();
        Scaler { means: self.means.clone(), stds }
    }
}

/// Maps raw features to `(x − mean) / std`, feature by feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    /// Each feature's mean over the training rows.
    pub means: Vec<f64>,
    /// Each feature's population standard deviation over the training rows (1 for a constant one).
    pub stds: Vec<f64>,
}

impl Scaler {
    /// Writes the standardised `raw` into `out`.
    ///
    /// # Panics
    ///
    /// If `raw` or `out` does not have one value per feature (a bug in the caller).
    pub fn transform(&self, raw: &[f64], out: &mut [f64]) {
        assert!(raw.len() == self.means.len() && out.len() == raw.len(), "one value per feature");
        for (((out, &value), &mean), &std) in out.iter_mut().zip(raw).zip(&self.means).zip(&self.stds) {
            *out = (value - mean) / std;
        }
    }
}

#[cfg(test)]
mod welford_tests {
    use super::Welford;

    #[test]
    fn a_constant_feature_gets_a_unit_deviation() {
        let mut stats = Welford::new(2);
        for row in [[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]] {
            stats.push(&row);
        }
        let scaler = stats.scaler();
        assert_eq!(scaler.means, [2.0, 5.0]);
        assert_eq!(scaler.stds, [(2.0_f64 / 3.0).sqrt(), 1.0]);
    }
}

//! The models: logistic regression for two classes, softmax (multinomial logistic) regression for
//! three or more — their scores, log-loss and its gradient ([`LinearModel`]) — and the model file a
//! task writes ([`TrainedModel`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::train::error::TrainError;
use crate::train::scaler::Scaler;

/// Added to AdaGrad's root of summed squares, so that a parameter whose gradients were all zero does
/// not divide by zero.
const ADAGRAD_EPSILON: f64 = 1e-8;

/// The spelling of [`TrainedModel::format`] this version writes and reads.
pub const MODEL_FORMAT: &str = "batch-tasks/train-model/v1";

/// Which model a class count calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Two classes: one score `z = w·x + b`; `P(classes[1]) = σ(z)`.
    Logistic,
    /// Three or more classes: one score per class; `P(k) = softmax(z)_k`.
    Softmax,
}

/// A linear model over standardised features: one row of weights and a bias per output (1 output
/// for logistic, one per class for softmax).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LinearModel {
    /// Logistic or softmax.
    pub kind: ModelKind,
    /// Features per row.
    pub features: usize,
    /// `outputs × features` weights, row-major.
    pub weights: Vec<f64>,
    /// One bias per output.
    pub biases: Vec<f64>,
}

impl LinearModel {
    /// A model for `classes` classes (at least 2) over `features` features, all weights zero (the
    /// log-loss is convex, so the start does not decide where SGD ends).
    pub(crate) fn zeros(classes: usize, features: usize) -> LinearModel {
        let (kind, outputs) =
            if classes <= 2 { (ModelKind::Logistic, 1) } else { (ModelKind::Softmax, classes) };
        LinearModel { kind, features, weights: vec![0.0; outputs * features], biases: vec![0.0; outputs] }
    }

    /// Scores per row: 1 for logistic, one per class for softmax.
    pub(crate) fn outputs(&self) -> usize {
        self.biases.len()
    }

    /// Writes the scores `z = W·x + b` of standardised `x` into `scores` (one per output).
    pub(crate) fn scores(&self, x: &[f64], scores: &mut [f64]) {
        for ((score, weights), &bias) in
            scores.iter_mut().zip(self.weights.chunks_exact(self.features)).zip(&self.biases)
        {
            *score = bias + dot(weights, x);
        }
    }

    /// The class index the model predicts for standardised `x` (`scores` is scratch, one per
    /// output): for logistic, class 1 when `z > 0`; for softmax, the first class with the highest
    /// score.
    pub(crate) fn predict(&self, x: &[f64], scores: &mut [f64]) -> usize {
        self.scores(x, scores);
        match self.kind {
            ModelKind::Logistic => usize::from(scores[0] > 0.0),
            ModelKind::Softmax => argmax(scores),
        }
    }

    /// The log-loss of one row (`class` its true class index) — for checks; training uses
    /// [`accumulate`](Self::accumulate).
    #[cfg(test)]
    pub(crate) fn row_loss(&self, x: &[f64], class: usize) -> f64 {
        let mut scores = vec![0.0; self.outputs()];
        self.scores(x, &mut scores);
        match self.kind {
            ModelKind::Logistic => logistic_loss(scores[0], class == 1),
            ModelKind::Softmax => {
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = scores.iter().map(|score| (score - max).exp()).sum();
                sum.ln() + max - scores[class]
            }
        }
    }

    /// Adds one row's log-loss gradient to `gradient` (weights row-major like the model's, then
    /// biases), and returns the row's loss and whether the model predicted it right. `scores` is
    /// scratch, one per output.
    pub(crate) fn accumulate(
        &self,
        x: &[f64],
        class: usize,
        scores: &mut [f64],
        weight_gradient: &mut [f64],
        bias_gradient: &mut [f64],
    ) -> (f64, bool) {
        self.scores(x, scores);
        match self.kind {
            ModelKind::Logistic => {
                let z = scores[0];
                let positive = class == 1;
                let residual = sigmoid(z) - if positive { 1.0 } else { 0.0 };
                axpy(residual, x, weight_gradient);
                bias_gradient[0] += residual;
                (logistic_loss(z, positive), (z > 0.0) == positive)
            }
            ModelKind::Softmax => {
                let predicted = argmax(scores);
                let max = scores[predicted];
                let true_score = scores[class];
                let mut sum = 0.0;
                for score in scores.iter_mut() {
                    *score = (*score - max).exp();
                    sum += *score;
                }
                for (output, ((score, weights), bias)) in scores
                    .iter()
                    .zip(weight_gradient.chunks_exact_mut(self.features))
                    .zip(bias_gradient)
                    .enumerate()
                {
                    let residual = score / sum - if output == class { 1.0 } else { 0.0 };
                    axpy(residual, x, weights);
                    *bias += residual;
                }
                (sum.ln() + max - true_score, predicted == class)
            }
        }
    }

    /// One AdaGrad step from the summed gradient of `rows` rows. Each parameter's gradient is
    /// `g = G/rows + l2·w` (biases: `g = g_b/rows`, not penalised); its running sum of squares
    /// `s ← s + g²` (in `squares`: the weights' then the biases', as laid out in the model) sets its
    /// step: `w ← w − learning_rate · g / (√s + 1e-8)`. The step of a parameter shrinks as its
    /// gradients add up, which is what makes the run converge.
    ///
    /// # Panics
    ///
    /// If `squares` does not hold one value per weight and bias (a bug in the caller).
    pub(crate) fn adagrad_step(
        &mut self,
        weight_gradient: &[f64],
        bias_gradient: &[f64],
        rows: usize,
        learning_rate: f64,
        l2: f64,
        squares: &mut [f64],
    ) {
        assert_eq!(squares.len(), self.weights.len() + self.biases.len(), "one square per parameter");
        let rows = rows as f64;
        let (weight_squares, bias_squares) = squares.split_at_mut(self.weights.len());
        for ((weight, &gradient), square) in self.weights.iter_mut().zip(weight_gradient).zip(weight_squares)
        {
            let g = gradient / rows + l2 * *weight;
            *square += g * g;
            *weight -= learning_rate * g / (square.sqrt() + ADAGRAD_EPSILON);
        }
        for ((bias, &gradient), square) in self.biases.iter_mut().zip(bias_gradient).zip(bias_squares) {
            let g = gradient / rows;
            *square += g * g;
            *bias -= learning_rate * g / (square.sqrt() + ADAGRAD_EPSILON);
        }
    }

    /// `‖W‖²`, the weights' squared norm (biases left out, as in the penalty).
    pub(crate) fn weight_norm_squared(&self) -> f64 {
        self.weights.iter().map(|weight| weight * weight).sum()
    }

    /// Whether every weight and bias is a finite number.
    pub(crate) fn is_finite(&self) -> bool {
        self.weights.iter().chain(&self.biases).all(|value| value.is_finite())
    }
}

/// `Σ a·b` in a fixed order (four running sums, then their total), so the same inputs always give
/// the same bits and the additions still overlap in the processor.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut sums = [0.0_f64; 4];
    let chunks_a = a.chunks_exact(4);
    let chunks_b = b.chunks_exact(4);
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (four_a, four_b) in chunks_a.zip(chunks_b) {
        for lane in 0..4 {
            sums[lane] += four_a[lane] * four_b[lane];
        }
    }
    let mut total = (sums[0] + sums[1]) + (sums[2] + sums[3]);
    for (x, y) in rest_a.iter().zip(rest_b) {
        total += x * y;
    }
    total
}

/// `y += a·x`.
fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// The index of the first largest value.
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (idx, &value) in values.iter().enumerate().skip(1) {
        if value > values[best] {
            best = idx;
        }
    }
    best
}

/// `σ(z) = 1 / (1 + e^−z)`, computed without overflow for large `|z|`.
fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The log-loss of score `z` for a positive or negative row: `log(1 + e^z) − y·z`, computed without
/// overflow.
fn logistic_loss(z: f64, positive: bool) -> f64 {
    let softplus = z.max(0.0) + (-z.abs()).exp().ln_1p();
    if positive { softplus - z } else { softplus }
}

/// One epoch's training metrics: the mean log-loss and the accuracy of the rows as SGD met them
/// (each row scored with the weights of the moment, before its mini-batch's step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// The epoch, from 1.
    pub epoch: u32,
    /// The mean log-loss over the epoch's training rows (without the L2 term).
    pub loss: f64,
    /// The objective the stopping rule watches: `loss` plus `l2/2 · ‖W‖²` at the epoch's end.
    pub objective: f64,
    /// The share of the epoch's training rows predicted right.
    pub accuracy: f64,
    /// Training rows in the epoch.
    pub rows: u64,
}

/// The metrics a model file and a task summary report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// Per epoch, in order.
    pub epochs: Vec<EpochMetrics>,
    /// The accuracy of the final model on the held-out rows; `None` without any.
    pub holdout_accuracy: Option<f64>,
    /// The accuracy of the final model on `eval_input`'s good rows; `None` without any.
    pub eval_accuracy: Option<f64>,
}

/// How a model was trained, as recorded in its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// The input dataset.
    pub input: String,
    /// The most epochs allowed.
    pub epochs: u32,
    /// Epochs run: fewer than `epochs` when the stopping rule ended training.
    pub epochs_run: u32,
    /// Whether the stopping rule ended training before `epochs`.
    pub stopped_early: bool,
    /// The stopping rule's tolerance.
    pub tolerance: f64,
    /// The stopping rule's patience (0: off).
    pub patience: u32,
    /// AdaGrad's base step size.
    pub learning_rate: f64,
    /// The L2 penalty used (the `l2` param, or `1 / train_rows`).
    pub l2: f64,
    /// The seed of the split and the shuffle.
    pub seed: u64,
    /// Rows per mini-batch.
    pub batch_size: u32,
    /// The share of rows held out.
    pub holdout: f64,
    /// Rows trained on (per epoch).
    pub train_rows: u64,
    /// Rows held out.
    pub holdout_rows: u64,
    /// Bad rows of the input.
    pub bad_rows: u64,
}

/// A trained model as written to `model_out` (JSON), and read back by [`TrainedModel::load`].
///
/// The weights apply to standardised features: [`predict`](Self::predict) standardises raw feature
/// values with the stored scaler first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    /// [`MODEL_FORMAT`].
    pub format: String,
    /// Logistic or softmax.
    pub model: ModelKind,
    /// The label column.
    pub label: String,
    /// The feature columns, in the weights' order.
    pub features: Vec<String>,
    /// The classes, sorted; a logistic model's score is for `classes[1]`.
    pub classes: Vec<String>,
    /// One row of weights per output (1 for logistic, one per class for softmax).
    pub weights: Vec<Vec<f64>>,
    /// One bias per output.
    pub bias: Vec<f64>,
    /// The standardisation the weights expect.
    pub scaler: Scaler,
    /// Per-epoch loss and accuracy, hold-out and eval accuracy.
    pub metrics: ModelMetrics,
    /// The params and row counts of the training.
    pub training: TrainingInfo,
}

impl TrainedModel {
    /// Reads a model file.
    ///
    /// Fails with [`TrainError::Read`] when the file cannot be read and [`TrainError::LoadModel`]
    /// when it is not a model of this format (or its shapes disagree).
    pub fn load(path: &Path) -> Result<TrainedModel, TrainError> {
        let bytes =
            std::fs::read(path).map_err(|source| TrainError::Read { path: path.to_owned(), source })?;
        let load_error = |reason: String| TrainError::LoadModel { path: path.to_owned(), reason };
        let model: TrainedModel =
            serde_json::from_slice(&bytes).map_err(|error| load_error(error.to_string()))?;
        if model.format != MODEL_FORMAT {
            return Err(load_error(format!("format is {:?}, expected {MODEL_FORMAT:?}", model.format)));
        }
        let outputs = if model.model == ModelKind::Logistic { 1 } else { model.classes.len() };
        let features = model.features.len();
        let shapes_agree = model.weights.len() == outputs
            && model.weights.iter().all(|row| row.len() == features)
            && model.bias.len() == outputs
            && model.scaler.means.len() == features
            && model.scaler.stds.len() == features
            && model.classes.len() >= 2;
        if !shapes_agree {
            return Err(load_error("its weights, bias, scaler and classes disagree in shape".to_owned()));
        }
        Ok(model)
    }

    /// The linear model inside.
    pub(crate) fn linear(&self) -> LinearModel {
        LinearModel {
            kind: self.model,
            features: self.features.len(),
            weights: self.weights.concat(),
            biases: self.bias.clone(),
        }
    }

    /// The class predicted for a row of raw (unstandardised) feature values, in the order of
    /// [`features`](Self::features); `None` when `raw` has the wrong length.
    pub fn predict(&self, raw: &[f64]) -> Option<&str> {
        if raw.len() != self.features.len() {
            return None;
        }
        let mut x = vec![0.0; raw.len()];
        self.scaler.transform(raw, &mut x);
        let linear = self.linear();
        let mut scores = vec![0.0; linear.outputs()];
        let class = linear.predict(&x, &mut scores);
        self.classes.get(class).map(String::as_str)
    }
}

//! Unit tests of the train kind's parts: the log-loss gradients against finite differences, the SGD
//! step, the scaler against a two-pass reference, the threaded gradient against the sequential one
//! bit for bit, the shuffle and the hold-out split.

use proptest::prelude::*;

use crate::train::model::{LinearModel, ModelKind};
use crate::train::scaler::Welford;
use crate::train::sgd::{BLOCK_ROWS, Sgd};
use crate::train::shuffle::{ShuffleWindow, is_held_out, window_seed};

/// `rows` rows of `features` values drawn from `seed`, with class indices below `classes`.
fn data(rows: usize, features: usize, classes: usize, seed: u64) -> (Vec<f64>, Vec<u32>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let values = (0..rows * features).map(|_| rng.f64() * 4.0 - 2.0).collect();
    let labels = (0..rows).map(|_| rng.u32(..classes as u32)).collect();
    (values, labels)
}

/// A model with small random weights.
fn random_model(classes: usize, features: usize, seed: u64) -> LinearModel {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut model = LinearModel::zeros(classes, features);
    for weight in model.weights.iter_mut().chain(model.biases.iter_mut()) {
        *weight = rng.f64() - 0.5;
    }
    model
}

/// The objective SGD descends: mean log-loss plus `l2/2 · ‖W‖²`.
fn objective(model: &LinearModel, values: &[f64], labels: &[u32], l2: f64) -> f64 {
    let features = model.features;
    let loss: f64 = labels
        .iter()
        .enumerate()
        .map(|(row, &class)| model.row_loss(&values[row * features..(row + 1) * features], class as usize))
        .sum();
    let penalty: f64 = model.weights.iter().map(|weight| weight * weight).sum();
    loss / labels.len() as f64 + l2 / 2.0 * penalty
}

/// Checks the analytic gradient of the objective (`Sgd`'s summed gradient over `n`, plus the L2
/// term) against central differences, parameter by parameter.
fn check_gradient(classes: usize) {
    let (features, rows, l2) = (5, 40, 0.01);
    let (values, labels) = data(rows, features, classes, 3);
    let model = random_model(classes, features, 4);
    let all: Vec<u32> = (0..rows as u32).collect();
    let mut sgd = Sgd::new(&model, rows, 1);
    sgd.gradient(&model, &values, &labels, &all);
    let analytic: Vec<f64> = sgd
        .weight_gradient()
        .iter()
        .zip(&model.weights)
        .map(|(gradient, weight)| gradient / rows as f64 + l2 * weight)
        .chain(sgd.bias_gradient().iter().map(|gradient| gradient / rows as f64))
        .collect();

    let step = 1e-6;
    let parameters = model.weights.len() + model.biases.len();
    for (parameter, &analytic) in analytic.iter().enumerate().take(parameters) {
        let nudged = |delta: f64| {
            let mut nudged = model.clone();
            match parameter.checked_sub(model.weights.len()) {
                None => nudged.weights[parameter] += delta,
                Some(bias) => nudged.biases[bias] += delta,
            }
            objective(&nudged, &values, &labels, l2)
        };
        let numeric = (nudged(step) - nudged(-step)) / (2.0 * step);
        let error = (numeric - analytic).abs();
        assert!(
            error <= 1e-7 * numeric.abs().max(1.0),
            "{classes} classes, parameter {parameter}: analytic {analytic} numeric {numeric}"
        );
    }
}

#[test]
fn the_logistic_gradient_matches_finite_differences() {
    check_gradient(2);
}

#[test]
fn the_softmax_gradient_matches_finite_differences() {
    check_gradient(4);
}

#[test]
fn an_adagrad_step_scales_each_gradient_by_the_root_of_its_summed_squares() {
    let (values, labels) = data(10, 3, 3, 5);
    let mut model = random_model(3, 3, 6);
    let before = model.clone();
    let rows: Vec<u32> = (0..10).collect();
    let mut sgd = Sgd::new(&model, 10, 1);
    sgd.gradient(&before, &values, &labels, &rows);
    let (weights, biases) = (sgd.weight_gradient().to_vec(), sgd.bias_gradient().to_vec());
    let mut squares = vec![0.5; weights.len() + biases.len()];
    sgd.step(&mut model, &mut squares, &values, &labels, &rows, 0.5, 0.1);
    for (((after, before), gradient), square) in
        model.weights.iter().zip(&before.weights).zip(&weights).zip(&squares)
    {
        let g = gradient / 10.0 + 0.1 * before;
        assert_eq!(square.to_bits(), (0.5 + g * g).to_bits());
        assert_eq!(after.to_bits(), (before - 0.5 * g / (square.sqrt() + 1e-8)).to_bits());
    }
    for (((after, before), gradient), square) in
        model.biases.iter().zip(&before.biases).zip(&biases).zip(&squares[weights.len()..])
    {
        let g = gradient / 10.0;
        assert_eq!(after.to_bits(), (before - 0.5 * g / (square.sqrt() + 1e-8)).to_bits());
    }
    // Steps lower the objective, by less and less: the step size shrinks as gradients add up.
    let mut squares = vec![0.0; squares.len()];
    let mut model = before.clone();
    let mut objectives = vec![objective(&model, &values, &labels, 0.1)];
    for _ in 0..50 {
        sgd.step(&mut model, &mut squares, &values, &labels, &rows, 0.1, 0.1);
        objectives.push(objective(&model, &values, &labels, 0.1));
    }
    assert!(objectives.windows(2).all(|pair| pair[1] < pair[0]), "{objectives:?}");
    assert!(objectives[1] - objectives[2] > objectives[49] - objectives[50]);
}

#[test]
fn the_loss_stays_finite_for_extreme_scores() {
    let mut model = LinearModel::zeros(2, 1);
    assert_eq!(model.kind, ModelKind::Logistic);
    model.weights[0] = 1e6;
    for x in [-1e3, -1.0, 0.0, 1.0, 1e3] {
        for class in 0..2 {
            let loss = model.row_loss(&[x], class);
            assert!(loss.is_finite() && loss >= 0.0, "x {x} class {class}: {loss}");
        }
    }
    assert_eq!(model.row_loss(&[1e3], 1), 0.0);
    assert_eq!(model.row_loss(&[1e3], 0), 1e9);
    let mut softmax = LinearModel::zeros(3, 1);
    softmax.weights.copy_from_slice(&[1e6, 0.0, -1e6]);
    assert_eq!(softmax.row_loss(&[1e3], 0), 0.0);
    assert!(softmax.row_loss(&[1e3], 2).is_finite());
}

#[test]
fn welford_matches_a_two_pass_reference_even_far_from_zero() {
    let mut rng = fastrand::Rng::with_seed(9);
    let rows: Vec<[f64; 3]> =
        (0..5_000).map(|_| [rng.f64(), 1e8 + rng.f64(), -3.0 + 100.0 * rng.f64()]).collect();
    let mut welford = Welford::new(3);
    for row in &rows {
        welford.push(row);
    }
    let scaler = welford.scaler();
    let n = rows.len() as f64;
    for feature in 0..3 {
        // The reference: two passes over the values shifted by the first one (exact for values within a
        // factor of two of it), so that neither pass sums large numbers.
        let shift = rows[0][feature];
        let mean_shifted = rows.iter().map(|row| row[feature] - shift).sum::<f64>() / n;
        let variance = rows.iter().map(|row| (row[feature] - shift - mean_shifted).powi(2)).sum::<f64>() / n;
        let (mean, std) = (shift + mean_shifted, variance.sqrt());
        assert!(
            (scaler.means[feature] - mean).abs() <= 1e-12 * mean.abs().max(1.0),
            "feature {feature} mean"
        );
        assert!(
            (scaler.stds[feature] - std).abs() <= 1e-7 * std,
            "feature {feature}: {} vs {std}",
            scaler.stds[feature]
        );
    }
    // The one-pass textbook formula `E[x²] − E[x]²` loses the spread of the feature near 1e8.
    let naive = rows.iter().map(|row| row[1] * row[1]).sum::<f64>() / n
        - (rows.iter().map(|row| row[1]).sum::<f64>() / n).powi(2);
    let naive_error = (naive.max(0.0).sqrt() - scaler.stds[1]).abs() / scaler.stds[1];
    assert!(naive_error > 0.1, "the reference case is not hard: naive error {naive_error}");
}

#[test]
fn a_constant_feature_scales_to_zero_not_to_nan() {
    let mut welford = Welford::new(2);
    welford.push(&[4.0, 1.0]);
    welford.push(&[4.0, 3.0]);
    let scaler = welford.scaler();
    let mut out = [0.0; 2];
    scaler.transform(&[4.0, 3.0], &mut out);
    assert_eq!(out, [0.0, 1.0]);
}

#[test]
fn welford_resumed_from_json_continues_bit_for_bit() {
    let (values, _) = data(1_000, 4, 2, 12);
    let mut whole = Welford::new(4);
    let mut first_half = Welford::new(4);
    for (idx, row) in values.chunks(4).enumerate() {
        whole.push(row);
        if idx < 500 {
            first_half.push(row);
        }
    }
    let text = serde_json::to_string(&first_half).unwrap();
    let mut resumed: Welford = serde_json::from_str(&text).unwrap();
    for row in values.chunks(4).skip(500) {
        resumed.push(row);
    }
    assert_eq!(resumed, whole);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// However many threads share a mini-batch, and however it falls into blocks, the gradient and
    /// the step are the same bits as on one thread.
    #[test]
    fn the_threaded_gradient_is_the_sequential_one_bit_for_bit(
        rows in 1_usize..(5 * BLOCK_ROWS),
        classes in 2_usize..6,
        threads in 2_usize..6,
        seed in any::<u64>(),
    ) {
        let (values, labels) = data(rows, 7, classes, seed);
        let mut order: Vec<u32> = (0..rows as u32).collect();
        fastrand::Rng::with_seed(seed).shuffle(&mut order);
        let model = random_model(classes, 7, seed ^ 1);
        let mut sequential_model = model.clone();
        let mut threaded_model = model.clone();
        let mut sequential = Sgd::new(&model, rows, 1);
        let mut threaded = Sgd::new(&model, rows, threads).with_parallel_min_work(0);
        let parameters = model.weights.len() + model.biases.len();
        let (mut sequential_squares, mut threaded_squares) = (vec![0.0; parameters], vec![0.0; parameters]);
        let one = sequential.step(&mut sequential_model, &mut sequential_squares, &values, &labels, &order, 0.3, 0.01);
        let many = threaded.step(&mut threaded_model, &mut threaded_squares, &values, &labels, &order, 0.3, 0.01);
        prop_assert_eq!(one.loss.to_bits(), many.loss.to_bits());
        prop_assert_eq!(one.correct, many.correct);
        let bits = |model: &LinearModel| model.weights.iter().chain(&model.biases).map(|w| w.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&sequential_model), bits(&threaded_model));
    }

    /// A window's shuffle is a permutation, and the same one for the same seed.
    #[test]
    fn a_window_shuffle_is_a_reproducible_permutation(rows in 0_usize..300, seed in any::<u64>(), window in 0_u64..1000) {
        let mut shuffled = ShuffleWindow::new(1, rows.max(1));
        for row in 0..rows {
            shuffled.push(row as u32)[0] = row as f64;
        }
        shuffled.shuffle(window_seed(seed, 0, window));
        let first = shuffled.order().to_vec();
        shuffled.shuffle(window_seed(seed, 0, window));
        prop_assert_eq!(&first, shuffled.order());
        let mut sorted = first.clone();
        sorted.sort_unstable();
        prop_assert_eq!(sorted, (0..rows as u32).collect::<Vec<_>>());
    }
}

#[test]
fn windows_and_epochs_shuffle_differently() {
    let seeds = [window_seed(1, 0, 0), window_seed(1, 0, 1), window_seed(1, 1, 0), window_seed(2, 0, 0)];
    for (idx, a) in seeds.iter().enumerate() {
        for b in &seeds[idx + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn the_hold_out_split_depends_on_seed_and_line_only() {
    let held: Vec<u64> = (1..=10_000).filter(|&line| is_held_out(5, line, 0.3)).collect();
    assert!((2_800..3_200).contains(&held.len()), "{}", held.len());
    let again: Vec<u64> = (1..=10_000).filter(|&line| is_held_out(5, line, 0.3)).collect();
    assert_eq!(held, again);
    let other: Vec<u64> = (1..=10_000).filter(|&line| is_held_out(6, line, 0.3)).collect();
    assert_ne!(held, other);
    // A larger fraction holds out a superset.
    assert!(held.iter().all(|&line| is_held_out(5, line, 0.5)));
}

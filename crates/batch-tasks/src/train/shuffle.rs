//! The seeded randomness of training: the shuffle window that randomises row order within the
//! stream, the per-window RNG seeds, and the hold-out split.
//!
//! # Why a window that empties, and seeds that are derived
//!
//! A classic shuffle buffer (keep `n` rows, emit a random one as each new row comes in) never
//! empties, so a checkpoint would have to store its rows and the RNG's state. Here the stream is cut
//! into windows of `shuffle_batches × batch_size` training rows: a window is filled, shuffled as a
//! whole, trained on mini-batch by mini-batch, and is then empty again. Checkpoints are taken only
//! at window boundaries, where nothing is buffered, and each window's RNG is seeded from
//! `(seed, epoch, window index)` ([`window_seed`]) rather than continued from the previous one, so a
//! resumed run needs neither buffered rows nor RNG state to shuffle exactly as an uninterrupted one.
//! The price is that rows only mix within a window (1,000,000 rows at most; see `shuffle_batches`).
//!
//! The hold-out split hashes each row's line number with the seed ([`is_held_out`]): it needs no
//! state at all, and the same rows are held out in every epoch and after every resume.

/// Randomises the order of training rows within one window. Rows are kept as standardised `f64`
/// features in one flat buffer, with their class index.
#[derive(Debug, Clone)]
pub(super) struct ShuffleWindow {
    features: usize,
    capacity: usize,
    values: Vec<f64>,
    labels: Vec<u32>,
    order: Vec<u32>,
}

impl ShuffleWindow {
    /// A window of `capacity` rows of `features` features. Its buffers are allocated once, here.
    pub(super) fn new(features: usize, capacity: usize) -> ShuffleWindow {
        ShuffleWindow {
            features,
            capacity,
            values: Vec::with_capacity(features * capacity),
            labels: Vec::with_capacity(capacity),
            order: Vec::with_capacity(capacity),
        }
    }


    /// Whether the window holds no row.
    pub(super) fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Whether the window holds `capacity` rows.
    pub(super) fn is_full(&self) -> bool {
        self.labels.len() >= self.capacity
    }

    /// Adds a row of class `label` and returns its feature slots to fill.
    pub(super) fn push(&mut self, label: u32) -> &mut [f64] {
        self.labels.push(label);
        let start = self.values.len();
        self.values.resize(start + self.features, 0.0);
        &mut self.values[start..]
    }

    /// Shuffles the rows held with an RNG seeded by `seed` (see [`window_seed`]); [`order`](Self::order)
    /// then lists them in their new order.
    pub(super) fn shuffle(&mut self, seed: u64) {
        self.order.clear();
        self.order.extend(0..self.labels.len() as u32);
        fastrand::Rng::with_seed(seed).shuffle(&mut self.order);
    }

    /// The rows' indices in training order (after [`shuffle`](Self::shuffle)).
    pub(super) fn order(&self) -> &[u32] {
        &self.order
    }

    /// All rows' features, row after row.
    pub(super) fn values(&self) -> &[f64] {
        &self.values
    }

    /// All rows' class indices.
    pub(super) fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Empties the window, keeping its buffers.
    pub(super) fn clear(&mut self) {
        self.values.clear();
        self.labels.clear();
        self.order.clear();
    }
}

/// The RNG seed of window `window` of epoch `epoch` (both from 0) of a run seeded with `seed`.
pub(super) fn window_seed(seed: u64, epoch: u32, window: u64) -> u64 {
    mix(mix(mix(seed) ^ u64::from(epoch)) ^ window)
}

/// Whether the row starting on line `line` is held out of training, for a `fraction` of rows held
/// out: a hash of `(seed, line)` mapped to `[0, 1)` and compared with `fraction`.
pub(super) fn is_held_out(seed: u64, line: u64, fraction: f64) -> bool {
    const HOLDOUT_SALT: u64 = 0x6a09_e667_f3bc_c909;
    let hash = mix(mix(seed ^ HOLDOUT_SALT) ^ line);
    // The top 53 bits as a fraction in [0, 1).
    ((hash >> 11) as f64) * (1.0 / (1_u64 << 53) as f64) < fraction
}

/// SplitMix64's finaliser: a bijective mix of 64 bits, so nearby inputs give unrelated outputs.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod held_out_tests {
    use super::is_held_out;

    #[test]
    fn about_the_fraction_asked_is_held_out() {
        let held_out = (1..=100_000).filter(|&line| is_held_out(7, line, 0.2)).count();
        assert!((19_000..21_000).contains(&held_out));
        assert!((1..=1000).all(|line| !is_held_out(7, line, 0.0)));
    }
}

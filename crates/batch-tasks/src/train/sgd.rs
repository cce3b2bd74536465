//! Mini-batch SGD: the summed gradient of a mini-batch, computed on up to `concurrency` threads, and
//! the (AdaGrad) step.
//!
//! # Bit-identical whatever the concurrency
//!
//! Floating-point addition is not associative, so summing per-row gradients in a different grouping
//! gives different bits. The grouping here does not depend on the thread count: a mini-batch is cut
//! into fixed blocks of [`BLOCK_ROWS`] rows, each block's gradient is summed row by row from zero,
//! and the block sums are added in block order on the calling thread. Threads only decide *who*
//! computes which blocks. So a run with `concurrency` 1 and one with 8 end at the same bits, and a
//! resumed run matches an uninterrupted one whatever either's concurrency.
//!
//! # When threads are used
//!
//! Threads are scoped (`std::thread::scope`) and started per mini-batch, which costs tens of
//! microseconds; they are used only when a mini-batch has more than one block and at least
//! [`PARALLEL_MIN_WORK`] multiply-adds of work (for example 4,096 rows × 20 features × 10 classes),
//! so small batches never pay more for threads than they save.

use crate::train::model::LinearModel;

/// Rows per gradient block: the fixed unit of summation.
pub(super) const BLOCK_ROWS: usize = 64;

/// The least work (rows × outputs × features) for which a mini-batch is split across threads.
pub(super) const PARALLEL_MIN_WORK: usize = 1 << 19;

/// One block's summed gradient, loss and hits, with its own scratch.
#[derive(Debug, Clone)]
struct BlockGradient {
    weights: Vec<f64>,
    biases: Vec<f64>,
    scores: Vec<f64>,
    loss: f64,
    correct: u64,
}

impl BlockGradient {
    fn new(model: &LinearModel) -> BlockGradient {
        BlockGradient {
            weights: vec![0.0; model.weights.len()],
            biases: vec![0.0; model.biases.len()],
            scores: vec![0.0; model.outputs()],
            loss: 0.0,
            correct: 0,
        }
    }

    /// Sums the gradient of `rows` (indices into `values`/`labels`) from zero.
    fn compute(&mut self, model: &LinearModel, values: &[f64], labels: &[u32], rows: &[u32]) {
        self.weights.fill(0.0);
        self.biases.fill(0.0);
        self.loss = 0.0;
        self.correct = 0;
        let features = model.features;
        for &row in rows {
            let row = row as usize;
            let x = &values[row * features..(row + 1) * features];
            let (loss, correct) = model.accumulate(
                x,
                labels[row] as usize,
                &mut self.scores,
                &mut self.weights,
                &mut self.biases,
            );
            self.loss += loss;
            self.correct += u64::from(correct);
        }
    }
}

/// A mini-batch's loss and hits, as SGD met its rows (before the step).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct BatchOutcome {
    /// The summed log-loss of the rows.
    pub loss: f64,
    /// Rows predicted right.
    pub correct: u64,
}

/// Computes mini-batch gradients and applies SGD steps; holds every buffer it needs, allocated once.
#[derive(Debug, Clone)]
pub(super) struct Sgd {
    blocks: Vec<BlockGradient>,
    weights: Vec<f64>,
    biases: Vec<f64>,
    concurrency: usize,
    parallel_min_work: usize,
}

impl Sgd {
    /// Buffers for mini-batches of up to `batch_size` rows of `model`, on up to `concurrency` threads.
    pub(super) fn new(model: &LinearModel, batch_size: usize, concurrency: usize) -> Sgd {
        let blocks = batch_size.div_ceil(BLOCK_ROWS).max(1);
        Sgd {
            blocks: (0..blocks).map(|_| BlockGradient::new(model)).collect(),
            weights: vec![0.0; model.weights.len()],
            biases: vec![0.0; model.biases.len()],
            concurrency: concurrency.max(1),
            parallel_min_work: PARALLEL_MIN_WORK,
        }
    }

    /// The same, splitting across threads from `work` multiply-adds on (for tests of the threaded
    /// path on small batches).
    #[cfg(test)]
    pub(super) fn with_parallel_min_work(mut self, work: usize) -> Sgd {
        self.parallel_min_work = work;
        self
    }

    /// Sums the gradient of the rows `rows` (indices into `values`, `features` values per row, and
    /// `labels`), leaving it in [`weight_gradient`](Self::weight_gradient) and
    /// [`bias_gradient`](Self::bias_gradient).
    ///
    /// # Panics
    ///
    /// If `rows` holds more rows than the `batch_size` this was built for, or an index out of
    /// `labels` (bugs in the caller).
    pub(super) fn gradient(
        &mut self,
        model: &LinearModel,
        values: &[f64],
        labels: &[u32],
        rows: &[u32],
    ) -> BatchOutcome {
        let used = rows.len().div_ceil(BLOCK_ROWS);
        assert!(used <= self.blocks.len(), "a mini-batch is at most batch_size rows");
        let blocks = &mut self.blocks[..used];
        let work = rows.len() * model.weights.len();
        let threads = if work >= self.parallel_min_work { self.concurrency.min(used) } else { 1 };
        if threads <= 1 {
            for (block, rows) in blocks.iter_mut().zip(rows.chunks(BLOCK_ROWS)) {
                block.compute(model, values, labels, rows);
            }
        } else {
            let per_thread = used.div_ceil(threads);
            std::thread::scope(|scope| {
                let mut shares = blocks.chunks_mut(per_thread).zip(rows.chunks(per_thread * BLOCK_ROWS));
                let own = shares.next();
                for (blocks, rows) in shares {
                    scope.spawn(move || {
                        for (block, rows) in blocks.iter_mut().zip(rows.chunks(BLOCK_ROWS)) {
                            block.compute(model, values, labels, rows);
                        }
                    });
                }
                if let Some((blocks, rows)) = own {
                    for (block, rows) in blocks.iter_mut().zip(rows.chunks(BLOCK_ROWS)) {
                        block.compute(model, values, labels, rows);
                    }
                }
            });
        }
        self.weights.fill(0.0);
        self.biases.fill(0.0);
        let mut outcome = BatchOutcome::default();
        for block in &self.blocks[..used] {
            for (total, &part) in self.weights.iter_mut().zip(&block.weights) {
                *total += part;
            }
            for (total, &part) in self.biases.iter_mut().zip(&block.biases) {
                *total += part;
            }
            outcome.loss += block.loss;
            outcome.correct += block.correct;
        }
        outcome
    }

    /// The weight gradient summed by the last [`gradient`](Self::gradient), row-major like the model.
    #[cfg(test)]
    pub(super) fn weight_gradient(&self) -> &[f64] {
        &self.weights
    }

    /// The bias gradient summed by the last [`gradient`](Self::gradient).
    #[cfg(test)]
    pub(super) fn bias_gradient(&self) -> &[f64] {
        &self.biases
    }

    /// One step on the rows `rows`: their gradient, then [`LinearModel::adagrad_step`] with it and
    /// the running sums of squared gradients `squares`.
    #[allow(clippy::too_many_arguments, reason = "the step's inputs, each used once")]
    pub(super) fn step(
        &mut self,
        model: &mut LinearModel,
        squares: &mut [f64],
        values: &[f64],
        labels: &[u32],
        rows: &[u32],
        learning_rate: f64,
        l2: f64,
    ) -> BatchOutcome {
        if rows.is_empty() {
            return BatchOutcome::default();
        }
        let outcome = self.gradient(model, values, labels, rows);
        model.adagrad_step(&self.weights, &self.biases, rows.len(), learning_rate, l2, squares);
        outcome
    }
}

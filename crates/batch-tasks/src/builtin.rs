//! The built-in task kinds, registered together: the wiring a manager needs to run `train`,
//! `youzan_order` and `batch_process` tasks.

use crate::batch_process::BatchProcessKind;
use crate::kind::Registry;
use crate::train::TrainKind;
use crate::youzan::YouzanOrderKind;

/// A registry holding the three built-in kinds — `train` ([`TrainKind`]), `youzan_order`
/// ([`YouzanOrderKind`]) and `batch_process` ([`BatchProcessKind`]) — with their default options.
/// Register your own kinds on it as usual.
///
/// ```
/// let registry = batch_tasks::builtin_registry();
/// assert_eq!(registry.names().collect::<Vec<_>>(), ["batch_process", "train", "youzan_order"]);
/// ```
pub fn builtin_registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register(TrainKind::new())
        .register(YouzanOrderKind::default())
        .register(BatchProcessKind::default());
    registry
}

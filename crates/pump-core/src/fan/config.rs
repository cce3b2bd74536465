//! The settings every fan-out sink takes: buffer capacity per consumer and the failure policy.

use std::num::NonZeroUsize;

/// What a fan-out does when one of its consumers fails, panics, or stops early.
///
/// A consumer *stops early* when it completes (or drops its input) while elements it would have
/// received are still coming or still buffered for it, e.g. a consumer built with `take(5)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FanOutPolicy {
    /// Fail the whole run: the consumer's error (or a [`FanOutError`](crate::fan::FanOutError)
    /// naming it) becomes the run's error through [`Stage::fail`](crate::Stage::fail), which cancels
    /// every stage. The fan-out never waits on a consumer that is gone.
    #[default]
    FailPipeline,
    /// Detach the consumer and go on with the others. Its result slot holds its error; the elements
    /// it would have received are counted as `dropped` on the fan-out's stage (`broadcast`,
    /// `partition`) or go to the other consumers (`balance`). When no consumer is left the fan-out
    /// stops pulling its input and completes.
    ContinueWithout,
}

/// The configuration of a fan-out sink: how many elements each consumer may have waiting, and the
/// [`FanOutPolicy`].
///
/// ```
/// use pump_core::fan::{FanOutConfig, FanOutPolicy};
/// use std::num::NonZeroUsize;
/// let config = FanOutConfig::new(NonZeroUsize::new(64).unwrap()).with_policy(FanOutPolicy::ContinueWithout);
/// assert_eq!(config.capacity().get(), 64);
/// assert_eq!(config.policy(), FanOutPolicy::ContinueWithout);
/// assert_eq!(FanOutConfig::default().capacity().get(), FanOutConfig::DEFAULT_CAPACITY);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOutConfig {
    capacity: NonZeroUsize,
    policy: FanOutPolicy,
}

impl FanOutConfig {
    /// The per-consumer capacity of [`FanOutConfig::default`].
    pub const DEFAULT_CAPACITY: usize = 256;

    /// A configuration with `capacity` elements per consumer and [`FanOutPolicy::FailPipeline`].
    ///
    /// ```
    /// use pump_core::fan::FanOutConfig;
    /// let config = FanOutConfig::new(std::num::NonZeroUsize::MIN);
    /// assert_eq!(config.capacity().get(), 1);
    /// ```
    pub fn new(capacity: NonZeroUsize) -> Self {
        FanOutConfig { capacity, policy: FanOutPolicy::FailPipeline }
    }

    /// The same configuration with another failure policy.
    ///
    /// ```
    /// use pump_core::fan::{FanOutConfig, FanOutPolicy};
    /// let config = FanOutConfig::default().with_policy(FanOutPolicy::ContinueWithout);
    /// assert_eq!(config.policy(), FanOutPolicy::ContinueWithout);
    /// ```
    pub fn with_policy(self, policy: FanOutPolicy) -> Self {
        FanOutConfig { policy, ..self }
    }

    /// Elements each consumer may have waiting (produced, not yet yielded to it).
    ///
    /// ```
    /// use pump_core::fan::FanOutConfig;
    /// assert_eq!(FanOutConfig::default().capacity().get(), 256);
    /// ```
    pub fn capacity(&self) -> NonZeroUsize {
        self.capacity
    }

    /// The failure policy.
    ///
    /// ```
    /// use pump_core::fan::{FanOutConfig, FanOutPolicy};
    /// assert_eq!(FanOutConfig::default().policy(), FanOutPolicy::FailPipeline);
    /// ```
    pub fn policy(&self) -> FanOutPolicy {
        self.policy
    }
}

impl Default for FanOutConfig {
    fn default() -> Self {
        FanOutConfig::new(NonZeroUsize::new(Self::DEFAULT_CAPACITY).unwrap_or(NonZeroUsize::MIN))
    }
}

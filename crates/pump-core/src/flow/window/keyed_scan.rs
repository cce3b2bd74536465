//! `key_by(..).scan(init, f)`: a running state per key, with an output per element.

use std::hash::Hash;
use std::marker::PhantomData;

use futures::Stream;

use crate::flow::Flow;
use crate::flow::window::engine::Outputs;
use crate::flow::window::engine::sealed::Sealed;
use crate::flow::window::{Clock, KeyedConfig, KeyedLogic, KeyedStream};
use crate::stage::StageContext;

/// The keyed scan flow: each element updates its key's state and emits `(key, f(state, element))`.
/// Built by [`KeyBy::scan`](super::KeyBy::scan).
///
/// An evicted key's state is dropped (everything it produced was already emitted); if the key comes
/// back it starts again from `init`.
#[must_use = "flows do nothing unless run"]
pub struct KeyedScan<T, K, KF, Acc, F> {
    key_fn: KF,
    init: Acc,
    f: F,
    config: KeyedConfig,
    marker: PhantomData<fn(T) -> K>,
}

impl<T, K, KF, Acc, F> KeyedScan<T, K, KF, Acc, F> {
    pub(crate) fn new(key_fn: KF, init: Acc, f: F, config: KeyedConfig) -> Self {
        KeyedScan { key_fn, init, f, config, marker: PhantomData }
    }
}

impl<T, K, KF, Acc, F> std::fmt::Debug for KeyedScan<T, K, KF, Acc, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedScan").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The per-key half of [`KeyedScan`].
pub struct KeyedScanLogic<Acc, F> {
    init: Acc,
    f: F,
}

impl<Acc, F> std::fmt::Debug for KeyedScanLogic<Acc, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedScanLogic")
    }
}

impl<Acc, F> Sealed for KeyedScanLogic<Acc, F> {}

impl<K, T, Acc, U, F> KeyedLogic<K, T> for KeyedScanLogic<Acc, F>
where
    K: Clone + Send + 'static,
    Acc: Clone + Send + 'static,
    F: FnMut(&mut Acc, T) -> U + Send + 'static,
    U: Send + 'static,
{
    type State = Acc;
    type Out = (K, U);
    const USES_CLOCK: bool = false;

    fn new_state(&self) -> Self::State {
        self.init.clone()
    }

    fn on_element(
        &mut self,
        key: &K,
        state: &mut Self::State,
        item: T,
        _clock: &mut Clock,
        out: &mut Outputs<Self::Out>,
    ) {
        let output = (self.f)(state, item);
        out.push((key.clone(), output));
    }

    fn evict(&mut self, _key: K, _state: Self::State, _out: &mut Outputs<Self::Out>) {}
}

impl<T, K, KF, Acc, U, F> Flow<T> for KeyedScan<T, K, KF, Acc, F>
where
    T: Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
    KF: FnMut(&T) -> K + Send + 'static,
    Acc: Clone + Send + 'static,
    F: FnMut(&mut Acc, T) -> U + Send + 'static,
    U: Send + 'static,
{
    type Out = (K, U);
    type Stream<S>
        = KeyedStream<S, K, KF, KeyedScanLogic<Acc, F>>
    where
        S: Stream<Item = T> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let logic = KeyedScanLogic { init: self.init, f: self.f };
        KeyedStream::new(upstream, self.key_fn, logic, self.config, &ctx.register("keyed_scan"))
    }
}

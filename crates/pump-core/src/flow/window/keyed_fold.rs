//! `key_by(..).fold(init, f)`: one accumulator per key, emitted when the key leaves.

use std::hash::Hash;
use std::marker::PhantomData;

use futures::Stream;

use crate::flow::Flow;
use crate::flow::window::engine::Outputs;
use crate::flow::window::engine::sealed::Sealed;
use crate::flow::window::{Clock, KeyedConfig, KeyedLogic, KeyedStream};
use crate::stage::StageContext;

/// The keyed fold flow: each key folds its elements into an accumulator, emitted as `(key, acc)` when
/// the key is evicted (least recently used at `max_keys`, or idle) or the stream ends. Built by
/// [`KeyBy::fold`](super::KeyBy::fold).
#[must_use = "flows do nothing unless run"]
pub struct KeyedFold<T, K, KF, Acc, F> {
    key_fn: KF,
    init: Acc,
    f: F,
    config: KeyedConfig,
    marker: PhantomData<fn(T) -> K>,
}

impl<T, K, KF, Acc, F> KeyedFold<T, K, KF, Acc, F> {
    pub(crate) fn new(key_fn: KF, init: Acc, f: F, config: KeyedConfig) -> Self {
        KeyedFold { key_fn, init, f, config, marker: PhantomData }
    }
}

impl<T, K, KF, Acc, F> std::fmt::Debug for KeyedFold<T, K, KF, Acc, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedFold").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The per-key half of [`KeyedFold`].
pub struct KeyedFoldLogic<Acc, F> {
    init: Acc,
    f: F,
}

impl<Acc, F> std::fmt::Debug for KeyedFoldLogic<Acc, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedFoldLogic")
    }
}

impl<Acc, F> Sealed for KeyedFoldLogic<Acc, F> {}

impl<K, T, Acc, F> KeyedLogic<K, T> for KeyedFoldLogic<Acc, F>
where
    K: Send + 'static,
    Acc: Clone + Send + 'static,
    F: FnMut(Acc, T) -> Acc + Send + 'static,
{
    // `None` only while `f` runs (it takes the accumulator by value).
    type State = Option<Acc>;
    type Out = (K, Acc);
    const USES_CLOCK: bool = false;

    fn new_state(&self) -> Self::State {
        Some(self.init.clone())
    }

    fn on_element(
        &mut self,
        _key: &K,
        state: &mut Self::State,
        item: T,
        _clock: &mut Clock,
        _out: &mut Outputs<Self::Out>,
    ) {
        if let Some(acc) = state.take() {
            *state = Some((self.f)(acc, item));
        }
    }

    fn evict(&mut self, key: K, state: Self::State, out: &mut Outputs<Self::Out>) {
        if let Some(acc) = state {
            out.push((key, acc));
        }
    }
}

impl<T, K, KF, Acc, F> Flow<T> for KeyedFold<T, K, KF, Acc, F>
where
    T: Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
    KF: FnMut(&T) -> K + Send + 'static,
    Acc: Clone + Send + 'static,
    F: FnMut(Acc, T) -> Acc + Send + 'static,
{
    type Out = (K, Acc);
    type Stream<S>
        = KeyedStream<S, K, KF, KeyedFoldLogic<Acc, F>>
    where
        S: Stream<Item = T> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let logic = KeyedFoldLogic { init: self.init, f: self.f };
        KeyedStream::new(upstream, self.key_fn, logic, self.config, &ctx.register("keyed_fold"))
    }
}

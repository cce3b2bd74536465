//! `key_by(..).window(spec)`: windows per key.

use std::hash::Hash;
use std::marker::PhantomData;

use futures::Stream;

use crate::flow::Flow;
use crate::flow::window::engine::Outputs;
use crate::flow::window::engine::sealed::Sealed;
use crate::flow::window::{
    Clock, Emit, KeyedConfig, KeyedLogic, KeyedStream, Window, WindowSpec, WindowState,
};
use crate::stage::StageContext;

/// The keyed window flow: `spec`'s windows, kept per key, emitted as `(key, window)`. Built by
/// [`KeyBy::window`](super::KeyBy::window).
#[must_use = "flows do nothing unless run"]
pub struct KeyedWindows<T, K, KF, Spec> {
    key_fn: KF,
    spec: Spec,
    config: KeyedConfig,
    marker: PhantomData<fn(T) -> K>,
}

impl<T, K, KF, Spec> KeyedWindows<T, K, KF, Spec> {
    pub(crate) fn new(key_fn: KF, spec: Spec, config: KeyedConfig) -> Self {
        KeyedWindows { key_fn, spec, config, marker: PhantomData }
    }
}

impl<T, K, KF, Spec: std::fmt::Debug> std::fmt::Debug for KeyedWindows<T, K, KF, Spec> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedWindows")
            .field("spec", &self.spec)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The per-key half of [`KeyedWindows`]: one window state machine per key.
#[derive(Debug)]
pub struct KeyedWindowLogic<Spec> {
    spec: Spec,
}

/// Tags each window a key's state machine emits with the key.
struct KeyedEmit<'a, K, O> {
    key: &'a K,
    out: &'a mut Outputs<O>,
}

impl<K: Clone, T, B> Emit<T, B> for KeyedEmit<'_, K, (K, Window<T, B>)> {
    fn emit(&mut self, window: Window<T, B>) {
        self.out.push((self.key.clone(), window));
    }

    fn dropped(&mut self, n: u64) {
        self.out.dropped += n;
    }
}

impl<Spec> Sealed for KeyedWindowLogic<Spec> {}

impl<K, T, Spec> KeyedLogic<K, T> for KeyedWindowLogic<Spec>
where
    K: Clone + Send + 'static,
    T: Send + 'static,
    Spec: WindowSpec<T>,
{
    type State = Spec::State;
    type Out = (K, Window<T, Spec::Bound>);
    const USES_CLOCK: bool = <Spec::State as WindowState<T>>::USES_CLOCK;

    fn new_state(&self) -> Self::State {
        self.spec.new_state()
    }

    fn on_element(
        &mut self,
        key: &K,
        state: &mut Self::State,
        item: T,
        clock: &mut Clock,
        out: &mut Outputs<Self::Out>,
    ) {
        state.on_element(item, clock, &mut KeyedEmit { key, out });
    }

    fn on_timer(
        &mut self,
        key: &K,
        state: &mut Self::State,
        clock: &mut Clock,
        out: &mut Outputs<Self::Out>,
    ) {
        state.on_timer(clock, &mut KeyedEmit { key, out });
    }

    fn timer(state: &Self::State) -> Option<tokio::time::Instant> {
        state.timer()
    }

    fn evict(&mut self, key: K, mut state: Self::State, out: &mut Outputs<Self::Out>) {
        state.flush(&mut KeyedEmit { key: &key, out });
    }
}

impl<T, K, KF, Spec> Flow<T> for KeyedWindows<T, K, KF, Spec>
where
    T: Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
    KF: FnMut(&T) -> K + Send + 'static,
    Spec: WindowSpec<T>,
{
    type Out = (K, Window<T, Spec::Bound>);
    type Stream<S>
        = KeyedStream<S, K, KF, KeyedWindowLogic<Spec>>
    where
        S: Stream<Item = T> + Send + 'static;

    fn apply<S>(self, upstream: S, ctx: &StageContext) -> Self::Stream<S>
    where
        S: Stream<Item = T> + Send + 'static,
    {
        let logic = KeyedWindowLogic { spec: self.spec };
        KeyedStream::new(upstream, self.key_fn, logic, self.config, &ctx.register("keyed_windows"))
    }
}

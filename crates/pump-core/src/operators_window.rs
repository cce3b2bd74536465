//! The window operator methods shared by [`SourceExt`](crate::SourceExt) and [`FlowExt`](crate::FlowExt).

macro_rules! window_methods {
    ($item:ty) => {};
}

pub(crate) use window_methods;

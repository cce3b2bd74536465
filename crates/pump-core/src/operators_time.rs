//! The time operator methods shared by [`SourceExt`](crate::SourceExt) and [`FlowExt`](crate::FlowExt).

macro_rules! time_methods {
    ($item:ty) => {};
}

pub(crate) use time_methods;

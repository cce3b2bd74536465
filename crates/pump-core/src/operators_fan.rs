//! The fan operator methods shared by [`SourceExt`](crate::SourceExt) and [`FlowExt`](crate::FlowExt).

macro_rules! fan_methods {
    ($item:ty) => {};
}

pub(crate) use fan_methods;

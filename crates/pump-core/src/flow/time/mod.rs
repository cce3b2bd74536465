//! Time operators: `throttle`, `timeout`, `debounce`, `delay`.

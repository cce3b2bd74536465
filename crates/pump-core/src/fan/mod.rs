//! Fan-in (`merge`, `zip`, `concat`, `interleave`) and fan-out (`broadcast`, `balance`, `partition`).

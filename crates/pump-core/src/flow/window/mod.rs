//! Windows (tumbling, sliding, session; by count, processing time or event time) and keyed state.

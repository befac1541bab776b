//! Apply walker (in progress).

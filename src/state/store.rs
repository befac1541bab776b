//! State file store (in progress).

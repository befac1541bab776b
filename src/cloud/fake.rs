//! In-memory cloud (in progress).

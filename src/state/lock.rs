//! State lock (in progress).

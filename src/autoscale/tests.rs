//! Tests of the autoscaling core.

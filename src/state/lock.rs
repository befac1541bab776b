//! TEMPORARY stub until the state branch lands.
use std::path::Path;
use std::time::Duration;
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LockHolder { pub pid: u32, pub host: String, pub operation: String, pub acquired_at: u64, pub lease_until: u64 }
#[derive(Debug, thiserror::Error)]
#[error("lock")]
pub struct LockError;
pub struct StateLock { pub taken_over_from: Option<LockHolder> }
pub fn acquire(_p: &Path, _op: &str, _t: Duration, _l: Duration) -> Result<StateLock, LockError> { Ok(StateLock { taken_over_from: None }) }

//! TEMPORARY stub until the state branch lands.
use std::path::{Path, PathBuf};
use super::State;
#[derive(Debug, thiserror::Error)]
#[error("state error: {0}")]
pub struct StateError(String);
pub struct StateStore { path: PathBuf }
impl StateStore {
    pub fn new(path: impl Into<PathBuf>) -> Self { Self { path: path.into() } }
    pub fn path(&self) -> &Path { &self.path }
    pub fn load(&self) -> Result<Option<State>, StateError> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) => serde_json::from_str(&t).map(Some).map_err(|e| StateError(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StateError(e.to_string())),
        }
    }
    pub fn save(&self, state: &mut State) -> Result<(), StateError> {
        state.serial += 1;
        if let Some(d) = self.path.parent() { std::fs::create_dir_all(d).map_err(|e| StateError(e.to_string()))?; }
        std::fs::write(&self.path, serde_json::to_string_pretty(state).unwrap()).map_err(|e| StateError(e.to_string()))
    }
}
pub fn default_path(manifest_path: &Path, app: &str) -> PathBuf {
    manifest_path.parent().unwrap_or(Path::new(".")).join(".appgrid").join(app).join("state.json")
}

//! Recently opened workspaces, newest first, kept as a small JSON file in the app data folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{EngineError, Result};

/// At most this many entries are kept.
pub const KEEP: usize = 12;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RecentWorkspace {
    pub path: String,
    /// When it was last opened (RFC 3339, given by the caller).
    pub opened_at: String,
    /// Whether the file still exists (filled in when listed).
    #[serde(default)]
    pub exists: bool,
}

/// Where the list lives: `<data dir>/recent.json`.
pub fn default_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("dev", "Stitchbook", "Stitchbook")
        .map(|d| d.data_dir().join("recent.json"))
}

/// The list in `file` (empty when the file does not exist), with `exists` filled in.
pub fn list(file: &Path) -> Result<Vec<RecentWorkspace>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EngineError::io(file, e)),
    };
    let mut items: Vec<RecentWorkspace> = serde_json::from_str(&text)
        .map_err(|e| EngineError::unreadable(file, format!("not a recent-workspaces list: {e}")))?;
    for i in &mut items {
        i.exists = Path::new(&i.path).exists();
    }
    Ok(items)
}

/// Put `path` first (once), keep [`KEEP`] entries, and write the file.
pub fn touch(file: &Path, path: &str, opened_at: &str) -> Result<Vec<RecentWorkspace>> {
    let mut items = list(file).unwrap_or_default();
    items.retain(|i| i.path != path);
    items.insert(
        0,
        RecentWorkspace {
            path: path.to_string(),
            opened_at: opened_at.to_string(),
            exists: Path::new(path).exists(),
        },
    );
    items.truncate(KEEP);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    }
    let text = serde_json::to_string_pretty(&items)
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
    std::fs::write(file, text).map_err(|e| EngineError::io(file, e))?;
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_without_repeats_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/recent.json");
        assert!(list(&file).unwrap().is_empty());
        let a = dir.path().join("a.duckdb");
        std::fs::write(&a, b"").unwrap();
        let a = a.to_string_lossy().to_string();
        touch(&file, &a, "2024-01-01T00:00:00Z").unwrap();
        touch(&file, "/nowhere/b.duckdb", "2024-01-02T00:00:00Z").unwrap();
        let items = touch(&file, &a, "2024-01-03T00:00:00Z").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].path, a);
        assert_eq!(items[0].opened_at, "2024-01-03T00:00:00Z");
        let listed = list(&file).unwrap();
        assert!(listed[0].exists);
        assert!(!listed[1].exists);
        for i in 0..20 {
            touch(&file, &format!("/w/{i}.duckdb"), "2024-01-04T00:00:00Z").unwrap();
        }
        assert_eq!(list(&file).unwrap().len(), KEEP);
    }

    #[test]
    fn a_corrupt_list_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("recent.json");
        std::fs::write(&file, "{not json").unwrap();
        let e = list(&file).unwrap_err().to_string();
        assert!(e.contains("recent.json"), "{e}");
    }
}

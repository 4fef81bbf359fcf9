//! The demo workspace, built from `sample-data/`: a team that moved from Amplitude (an Export
//! API zip for late November 2023) to PostHog (batch exports from January 2024), plus its
//! mobile backend's own CSV log imported with a column mapping.

use std::path::{Path, PathBuf};

use crate::ingest::{import_paths, ColumnMapping, ImportOptions};
use crate::workspace::Workspace;
use crate::{EngineError, JobCtx, Result};

/// The `sample-data` folder of the source tree this build came from (the app and the CLI
/// are run from a checkout).
pub fn source_sample_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../sample-data")
}

/// The imports, in order: (path under `sample-data/`, mapping file).
const PARTS: [(&str, Option<&str>); 3] = [
    ("amplitude/demo_2023-11.zip", None),
    ("posthog", None),
    (
        "generic/app_events.csv",
        Some("generic/app_events.mapping.toml"),
    ),
];

/// The workspace setting that marks a workspace [`build`] made (written before its first
/// import, so a cancelled build is recognised too).
pub const MARKER_KEY: &str = "demo.built_by";
const MARKER_VALUE: &str = "stitchbook demo";

/// Build the demo at `out` from the `sample-data` folder, then build the model. Returns the
/// opened workspace. A file already at `out` is replaced only when it is a demo workspace
/// (see [`why_not_a_demo`]) or `force` is set; a directory never is.
pub fn build(sample_data: &Path, out: &Path, force: bool, ctx: &JobCtx) -> Result<Workspace> {
    for (part, _) in PARTS {
        let p = sample_data.join(part);
        if !p.exists() {
            return Err(EngineError::unreadable(
                &p,
                "the demo's sample data is missing (expected in the project's sample-data folder)",
            ));
        }
    }
    if let Some(reason) = not_replaceable(sample_data, out, force)? {
        let hint = if force || out.is_dir() {
            ""
        } else {
            "; pass --force to replace it"
        };
        return Err(EngineError::InvalidArgument(format!(
            "{}: not replaced: {reason}{hint}",
            out.display()
        )));
    }
    for stale in [out.to_path_buf(), wal_of(out)] {
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(|e| EngineError::io(&stale, e))?;
        }
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    }
    let ws = Workspace::open(out)?;
    ws.set_setting(MARKER_KEY, MARKER_VALUE)?;
    for (part, mapping) in PARTS {
        let opts = ImportOptions {
            mapping: mapping
                .map(|m| ColumnMapping::load(&sample_data.join(m)))
                .transpose()?,
            ..ImportOptions::default()
        };
        let report = import_paths(&ws, &[sample_data.join(part)], &opts, ctx)?;
        if report.cancelled {
            return Err(EngineError::Cancelled);
        }
    }
    crate::model::rebuild(&ws, ctx)?;
    Ok(ws)
}

/// Why the file at `out` must not be replaced by a demo (None: nothing is there, or it may
/// go). With `force` anything but a directory may go.
pub fn not_replaceable(sample_data: &Path, out: &Path, force: bool) -> Result<Option<String>> {
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EngineError::io(out, e)),
    };
    if meta.is_dir() {
        return Ok(Some("it is a directory (never replaced by a demo)".into()));
    }
    if force {
        return Ok(None);
    }
    if !meta.is_file() {
        return Ok(Some(
            "it is not a regular file (a link, a device or a pipe)".into(),
        ));
    }
    why_not_a_demo(sample_data, out)
}

/// Why the regular file at `path` is not a demo workspace; None when it is one: a DuckDB
/// database whose settings carry [`MARKER_KEY`], or (built before the marker existed) a
/// workspace whose every import is one of the demo's sample files. The file is only read:
/// its header first, then (when it is a DuckDB database) opened read-only.
pub fn why_not_a_demo(sample_data: &Path, path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    let mut header = [0u8; 12];
    let mut f = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let short = match f.read_exact(&mut header) {
        Ok(()) => false,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => true,
        Err(e) => return Err(EngineError::io(path, e)),
    };
    // A DuckDB database file has its magic bytes after the 8-byte checksum.
    if short || &header[8..12] != b"DUCK" {
        return Ok(Some(
            "it is not a DuckDB database, so not a Stitchbook demo workspace".into(),
        ));
    }
    let config = duckdb::Config::default()
        .access_mode(duckdb::AccessMode::ReadOnly)?
        .enable_external_access(false)?;
    let conn = match duckdb::Connection::open_with_flags(path, config) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Some(format!(
                "it could not be opened to check that it is a demo ({e})"
            )))
        }
    };
    let marker: duckdb::Result<Option<String>> = conn
        .prepare("SELECT max(value) FROM workspace_settings WHERE key = ?")
        .and_then(|mut st| st.query_row([MARKER_KEY], |r| r.get(0)));
    let marked = match marker {
        Err(_) => {
            return Ok(Some(
                "it is a DuckDB database that is not a Stitchbook workspace".into(),
            ))
        }
        Ok(v) => v.as_deref() == Some(MARKER_VALUE),
    };
    // Only the demo's sample files may have been imported (so also a demo built before the
    // marker is recognised, and a demo someone imported their own files into is kept).
    let names = sample_file_names(sample_data);
    let imported: Vec<String> = conn
        .prepare("SELECT path FROM imports ORDER BY import_id")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<duckdb::Result<_>>()
        })
        .unwrap_or_default();
    let foreign = imported.iter().find(|p| {
        !Path::new(p)
            .file_name()
            .is_some_and(|n| names.iter().any(|m| m.as_os_str() == n))
    });
    Ok(match (marked, foreign) {
        (_, Some(p)) => Some(format!(
            "it is a Stitchbook workspace with other data than the demo's (imported from {p})"
        )),
        (false, None) if imported.is_empty() => {
            Some("it is a Stitchbook workspace that is not the demo".to_string())
        }
        _ => None,
    })
}

/// The file names of the demo's sample files (those in its folders included).
fn sample_file_names(sample_data: &Path) -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    for (part, _) in PARTS {
        let p = sample_data.join(part);
        match std::fs::read_dir(&p) {
            Ok(entries) => out.extend(entries.flatten().map(|e| e.file_name())),
            Err(_) => out.extend(p.file_name().map(|n| n.to_os_string())),
        }
    }
    out
}

fn wal_of(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".wal");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(sample: &Path, out: &Path, force: bool) -> String {
        match build(sample, out, force, &JobCtx::silent()) {
            Err(EngineError::InvalidArgument(m)) => m,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("{} was replaced", out.display()),
        }
    }

    #[test]
    fn only_a_demo_workspace_is_replaced_without_force() {
        let sample = source_sample_data();
        let dir = tempfile::tempdir().unwrap();

        // Not a DuckDB file: refused and left as it was; --force may replace it.
        let notes = dir.path().join("notes.txt");
        std::fs::write(&notes, "my notes\n").unwrap();
        let m = refused(&sample, &notes, false);
        assert!(
            m.contains("not a DuckDB database") && m.contains("--force"),
            "{m}"
        );
        assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes\n");
        assert_eq!(not_replaceable(&sample, &notes, true).unwrap(), None);
        // An empty file is not a demo either.
        let empty = dir.path().join("empty.duckdb");
        std::fs::write(&empty, "").unwrap();
        assert!(not_replaceable(&sample, &empty, false).unwrap().is_some());

        // A DuckDB database that is not a workspace.
        let other = dir.path().join("other.duckdb");
        duckdb::Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t AS SELECT 42 AS x")
            .unwrap();
        let m = refused(&sample, &other, false);
        assert!(m.contains("not a Stitchbook workspace"), "{m}");

        // A user's workspace: refused, its data still there.
        let mine = dir.path().join("mine.duckdb");
        {
            let ws = Workspace::open(&mine).unwrap();
            ws.set_setting("k", "v").unwrap();
        }
        let m = refused(&sample, &mine, false);
        assert!(m.contains("not the demo"), "{m}");
        assert_eq!(
            Workspace::open(&mine)
                .unwrap()
                .setting("k")
                .unwrap()
                .as_deref(),
            Some("v")
        );

        // A directory: never, not even with --force.
        let folder = dir.path().join("folder");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("keep"), "x").unwrap();
        for force in [false, true] {
            let m = refused(&sample, &folder, force);
            assert!(m.contains("directory") && !m.contains("--force"), "{m}");
        }
        assert!(folder.join("keep").exists());

        // A demo built before the marker existed: recognised by its imports.
        let legacy = dir.path().join("legacy.duckdb");
        {
            let ws = Workspace::open(&legacy).unwrap();
            ws.conn()
                .execute(
                    "INSERT INTO imports (path, size_bytes, content_sha256, started_at, status)
                     VALUES (?, 1, 'x', now(), 'complete')",
                    [sample
                        .join("posthog/small_events.jsonl")
                        .display()
                        .to_string()],
                )
                .unwrap();
        }
        assert_eq!(not_replaceable(&sample, &legacy, false).unwrap(), None);

        // A built demo carries the marker and is rebuilt in place.
        let demo = dir.path().join("demo.duckdb");
        drop(build(&sample, &demo, false, &JobCtx::silent()).unwrap());
        assert_eq!(why_not_a_demo(&sample, &demo).unwrap(), None);
        let ws = build(&sample, &demo, false, &JobCtx::silent()).unwrap();
        assert_eq!(
            ws.setting(MARKER_KEY).unwrap().as_deref(),
            Some(MARKER_VALUE)
        );
        // Once someone imports their own file into it, it is theirs.
        ws.conn()
            .execute(
                "INSERT INTO imports (path, size_bytes, content_sha256, started_at, status)
                 VALUES ('/home/me/export.jsonl', 1, 'x', now(), 'complete')",
                [],
            )
            .unwrap();
        drop(ws);
        let m = refused(&sample, &demo, false);
        assert!(m.contains("/home/me/export.jsonl"), "{m}");
        assert_eq!(not_replaceable(&sample, &demo, true).unwrap(), None);
    }
}

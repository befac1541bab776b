//! Changing the manifest for the user (`appgrid scale`, the panel's Scale
//! page), as `heroku ps:scale` changes the formation: only `[web] count` and
//! `[database] replicas` are rewritten, in place, through `toml_edit`, so
//! every comment, blank line and key order the user wrote is kept. The file
//! is replaced atomically ([`crate::durable::replace`], its mode kept), and
//! only if it still holds the bytes the plan was made from.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item, Table, value};

/// The counts to write; `None` leaves a count as the file says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub web: Option<u32>,
    pub replicas: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} changed since the plan was made (its sha256 is now {now}, the plan's is {planned}); \
         nothing was changed: run the command again to plan from what the file says now"
    )]
    Changed {
        path: PathBuf,
        planned: String,
        now: String,
    },
    #[error("{path} is not TOML that can be edited in place: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("{path} has no [database] table: there are no replicas to set; add one first")]
    NoDatabase { path: PathBuf },
    #[error("{path}: `{table}` is not a table, so `{key}` cannot be set in place; edit it by hand")]
    NotATable {
        path: PathBuf,
        table: &'static str,
        key: &'static str,
    },
    #[error("cannot write manifest {path}: {source}; the file is unchanged")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `text` with the counts set, everything else as it was.
pub fn set_counts(path: &Path, text: &str, counts: Counts) -> Result<String, EditError> {
    let mut doc: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| EditError::Parse {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
    if let Some(web) = counts.web {
        set(path, &mut doc, "web", "count", web, true)?;
    }
    if let Some(replicas) = counts.replicas {
        set(path, &mut doc, "database", "replicas", replicas, false)?;
    }
    Ok(doc.to_string())
}

/// Sets `[table] key = n`, keeping the value's own decoration (a trailing
/// comment stays on its line). A missing `[web]` is created; a missing
/// `[database]` is not (replicas without a database mean nothing).
fn set(
    path: &Path,
    doc: &mut DocumentMut,
    table: &'static str,
    key: &'static str,
    n: u32,
    create: bool,
) -> Result<(), EditError> {
    if !doc.contains_key(table) {
        if !create {
            return Err(EditError::NoDatabase {
                path: path.to_path_buf(),
            });
        }
        doc.insert(table, Item::Table(Table::new()));
    }
    let t = doc[table]
        .as_table_like_mut()
        .ok_or_else(|| EditError::NotATable {
            path: path.to_path_buf(),
            table,
            key,
        })?;
    let mut new = value(i64::from(n));
    match t.get_mut(key).and_then(Item::as_value_mut) {
        Some(old) => {
            if let Some(v) = new.as_value_mut() {
                *v.decor_mut() = old.decor().clone();
            }
            *old = new.into_value().expect("an integer is a value");
        }
        None => {
            t.insert(key, new);
        }
    }
    Ok(())
}

/// Rewrites the manifest at `path` with `counts` if its bytes still have
/// the sha256 `planned`; returns the new text. A symlink is followed (the
/// file it names is replaced, the link kept); the mode is kept.
pub fn rewrite(path: &Path, planned: &str, counts: Counts) -> Result<String, EditError> {
    let read = |source| EditError::Read {
        path: path.to_path_buf(),
        source,
    };
    let real = std::fs::canonicalize(path).map_err(read)?;
    let bytes = std::fs::read(&real).map_err(read)?;
    let now = crate::hash::sha256_hex(&bytes);
    if now != planned {
        return Err(EditError::Changed {
            path: path.to_path_buf(),
            planned: planned.to_string(),
            now,
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| EditError::Parse {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let edited = set_counts(path, &text, counts)?;
    let mode = std::fs::metadata(&real).map_err(read)?.permissions().mode() & 0o7777;
    crate::durable::replace(&real, edited.as_bytes(), mode).map_err(|e| EditError::Write {
        path: path.to_path_buf(),
        source: e.source,
    })?;
    Ok(edited)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "# The blog.\n\
        [app]\n\
        name = \"blog\"   # its name\n\
        \n\
        [web]\n\
        # How many app servers.\n\
        count   =  2 # two to start\n\
        port = 8080\n\
        \n\
        [database]\n\
        instance_type = \"m5.large\"\n";

    #[test]
    fn only_the_counts_change_and_every_comment_stays() {
        let p = Path::new("appgrid.toml");
        let out = set_counts(
            p,
            MANIFEST,
            Counts {
                web: Some(5),
                replicas: Some(1),
            },
        )
        .unwrap();
        let expected = MANIFEST
            .replace("count   =  2 # two", "count   =  5 # two")
            .replace(
                "instance_type = \"m5.large\"\n",
                "instance_type = \"m5.large\"\nreplicas = 1\n",
            );
        assert_eq!(out, expected);
        // Nothing asked: the text comes back byte for byte.
        assert_eq!(
            set_counts(p, MANIFEST, Counts::default()).unwrap(),
            MANIFEST
        );
    }

    #[test]
    fn replicas_without_a_database_are_refused() {
        let text = "[app]\nname = \"a\"\n[web]\ncount = 1\n";
        let e = set_counts(
            Path::new("m.toml"),
            text,
            Counts {
                web: None,
                replicas: Some(2),
            },
        )
        .unwrap_err();
        assert!(matches!(e, EditError::NoDatabase { .. }), "{e}");
    }

    #[test]
    fn an_inline_web_table_is_edited_in_place() {
        let text = "web = { count = 1, port = 80 } # inline\n";
        let out = set_counts(
            Path::new("m.toml"),
            text,
            Counts {
                web: Some(3),
                replicas: None,
            },
        )
        .unwrap();
        assert_eq!(out, "web = { count = 3, port = 80 } # inline\n");
    }

    #[test]
    fn a_file_changed_since_the_plan_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appgrid.toml");
        std::fs::write(&path, MANIFEST).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let planned = crate::hash::sha256_hex(MANIFEST.as_bytes());
        let counts = Counts {
            web: Some(3),
            replicas: None,
        };
        // Someone edits the file after the plan was made: refused, untouched.
        let edited_by_hand = MANIFEST.replace("port = 8080", "port = 9090");
        std::fs::write(&path, &edited_by_hand).unwrap();
        let e = rewrite(&path, &planned, counts).unwrap_err();
        assert!(matches!(e, EditError::Changed { .. }), "{e}");
        assert!(e.to_string().contains("nothing was changed"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), edited_by_hand);
        // The bytes the plan was made from: rewritten, mode kept.
        std::fs::write(&path, MANIFEST).unwrap();
        let out = rewrite(&path, &planned, counts).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), out);
        assert!(out.contains("count   =  3 # two to start"), "{out}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn a_symlinked_manifest_stays_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.toml");
        let link = dir.path().join("appgrid.toml");
        std::fs::write(&real, MANIFEST).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let planned = crate::hash::sha256_hex(MANIFEST.as_bytes());
        rewrite(
            &link,
            &planned,
            Counts {
                web: Some(4),
                replicas: None,
            },
        )
        .unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(std::fs::read_to_string(&real).unwrap().contains("=  4 #"));
    }
}

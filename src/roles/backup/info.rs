//! pgBackRest's `info --output=json` (one line, an array of stanzas) and
//! appgrid's `appgrid-checksum: STANZA LABEL SHA256` lines, read into
//! [`BackupInfo`]s. Pure.

use serde::Deserialize;

use crate::ops::backup::BackupInfo;

#[derive(Deserialize)]
struct Stanza {
    name: String,
    #[serde(default)]
    backup: Vec<Backup>,
}

#[derive(Deserialize)]
struct Backup {
    label: String,
    #[serde(default)]
    annotation: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    error: bool,
    info: Sizes,
    timestamp: Times,
}

#[derive(Deserialize)]
struct Sizes {
    size: u64,
    repository: RepoSize,
}

#[derive(Deserialize)]
struct RepoSize {
    size: u64,
}

#[derive(Deserialize)]
struct Times {
    start: i64,
    stop: i64,
}

/// Every backup without an error, in the order pgBackRest lists them.
pub fn parse_info(stdout: &str) -> Result<Vec<BackupInfo>, String> {
    let json = stdout
        .lines()
        .find(|l| l.trim_start().starts_with('['))
        .ok_or_else(|| "no JSON array in its output".to_string())?;
    // pgBackRest ends its JSON without a newline: read the first value only.
    let stanzas: Vec<Stanza> = serde_json::Deserializer::from_str(json)
        .into_iter()
        .next()
        .ok_or_else(|| "an empty answer".to_string())?
        .map_err(|e| e.to_string())?;
    let checksums: Vec<(&str, &str, &str)> = stdout
        .lines()
        .filter_map(|l| l.split_once("appgrid-checksum: ").map(|(_, rest)| rest))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?, f.next()?))
        })
        .collect();
    let mut out = Vec::new();
    for s in stanzas {
        for b in s.backup.into_iter().filter(|b| !b.error) {
            let checksum = checksums
                .iter()
                .find(|(st, l, _)| *st == s.name && *l == b.label)
                .map(|(_, _, h)| h.to_string());
            let note = |k: &str| b.annotation.get(k).cloned().unwrap_or_default();
            out.push(BackupInfo {
                origin: note("appgrid-origin"),
                machine: note("appgrid-machine"),
                id: b.label,
                stanza: s.name.clone(),
                started: b.timestamp.start,
                stopped: b.timestamp.stop,
                size: b.info.size,
                repo_size: b.info.repository.size,
                checksum,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pgBackRest 2.45's answer for one stanza with one backup, as measured here.
    const INFO: &str = r#"[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000002","min":"000000010000000000000001"}],"backup":[{"annotation":{"appgrid-machine":"local-3","appgrid-origin":"db.primary","appgrid-why":"manual"},"archive":{"start":"000000010000000000000002","stop":"000000010000000000000002"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,"info":{"delta":22992374,"repository":{"delta":3043375,"size":3043375},"size":22992374},"label":"20261202-133700F","lsn":{"start":"0/2000028","stop":"0/2000100"},"prior":null,"reference":null,"timestamp":{"start":1796218620,"stop":1796218623},"type":"full"}],"cipher":"none","db":[{"id":1,"repo-key":1,"system-id":7714700219809358869,"version":"15"}],"name":"blog.local-3","repo":[{"cipher":"none","key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]"#;

    #[test]
    fn a_backup_with_its_annotations_sizes_and_checksum() {
        // As printed: the JSON has no newline of its own.
        let out = format!("{INFO}appgrid-checksum: blog.local-3 20261202-133700F abc123\n");
        let list = parse_info(&out).unwrap();
        assert_eq!(
            list,
            vec![BackupInfo {
                id: "20261202-133700F".into(),
                stanza: "blog.local-3".into(),
                origin: "db.primary".into(),
                machine: "local-3".into(),
                started: 1796218620,
                stopped: 1796218623,
                size: 22992374,
                repo_size: 3043375,
                checksum: Some("abc123".into()),
            }]
        );
    }

    #[test]
    fn an_empty_repository_and_garbage() {
        assert_eq!(parse_info("[]\n").unwrap(), vec![]);
        assert!(parse_info("ERROR: [039]: something").is_err());
        assert!(parse_info("[{\"name\": 3}]").is_err());
    }
}

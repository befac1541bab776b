//! What a manifest needs installed where its services run, and the Debian
//! package that brings it: what `appgrid doctor` and the preflight check on
//! this machine for the `local` provider. Pure: [`crate::preflight`] looks
//! the programs and packages up.
//!
//! The app's own system packages are listed in an `Aptfile` in its release
//! directory, one Debian package a line (Heroku's apt buildpack convention);
//! [`aptfile`] reads that text.

use crate::manifest::{Manifest, ProviderKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// A program name (looked up on PATH) or an absolute path.
    pub program: String,
    pub package: &'static str,
    pub why: &'static str,
}

fn req(program: impl Into<String>, package: &'static str, why: &'static str) -> Requirement {
    Requirement {
        program: program.into(),
        package,
        why,
    }
}

pub fn requirements(m: &Manifest) -> Vec<Requirement> {
    let mut out = Vec::new();
    if m.provider.kind != ProviderKind::Local {
        out.push(req(
            "ssh-keygen",
            "openssh-client",
            "to make the key appgrid logs in with",
        ));
        return out;
    }
    if !m.provider.configure {
        return out;
    }
    out.push(req("setsid", "util-linux", "the service supervisor"));
    out.push(req(
        "setpriv",
        "util-linux",
        "services run as their own users",
    ));
    out.push(req("socat", "socat", "HAProxy's runtime API"));
    out.push(req("haproxy", "haproxy", "the load balancer"));
    out.push(req("tar", "tar", "shipping the release"));
    if let Some(db) = &m.database {
        let bin = format!("/usr/lib/postgresql/{}/bin", db.version);
        let server: &'static str = match db.version {
            13 => "postgresql-13",
            14 => "postgresql-14",
            16 => "postgresql-16",
            17 => "postgresql-17",
            _ => "postgresql-15",
        };
        out.push(req(format!("{bin}/postgres"), server, "the database"));
        out.push(req(
            format!("{bin}/initdb"),
            server,
            "creating the database cluster",
        ));
        out.push(req(
            "psql",
            "postgresql-client",
            "creating the app's database and user",
        ));
        if db.backup.is_some() {
            out.push(req(
                "pgbackrest",
                "pgbackrest",
                "backups and restore ([database.backup])",
            ));
        }
        if db.replicas > 0 {
            out.push(req(
                "slonik",
                "slony1-2-bin",
                "setting up Slony-I replication",
            ));
            out.push(req(
                "slon",
                "slony1-2-bin",
                "the Slony-I replication daemon",
            ));
            let slony: &'static str = match db.version {
                13 => "postgresql-13-slony1-2",
                14 => "postgresql-14-slony1-2",
                16 => "postgresql-16-slony1-2",
                17 => "postgresql-17-slony1-2",
                _ => "postgresql-15-slony1-2",
            };
            out.push(req(
                format!(
                    "/usr/lib/postgresql/{}/lib/slony1_funcs.2.2.11.so",
                    db.version
                ),
                slony,
                "Slony-I's functions in Postgres",
            ));
        }
    }
    if m.cache.is_some() {
        out.push(req("memcached", "memcached", "the cache"));
    }
    out
}

/// The file in the release directory that lists the app's Debian packages.
pub const APTFILE: &str = "Aptfile";

/// A line of an Aptfile that is not a Debian package name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "line {line}: {text:?} is not a Debian package name (lowercase letters, digits, `+`, `-`, `.`)"
)]
pub struct BadAptfileLine {
    pub line: usize,
    pub text: String,
}

/// The packages an Aptfile lists, in order, each once. Blank lines and `#`
/// comments are skipped; anything else must be a package name (Debian
/// policy §5.6.1), so no line can smuggle options into `apt-get`.
pub fn aptfile(text: &str) -> Result<Vec<String>, BadAptfileLine> {
    let mut packages: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let valid = line.len() >= 2
            && line.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && line
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if !valid {
            return Err(BadAptfileLine {
                line: i + 1,
                text: raw.trim().to_string(),
            });
        }
        if !packages.iter().any(|p| p == line) {
            packages.push(line.to_string());
        }
    }
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aptfile_lists_packages_once_and_refuses_anything_else() {
        assert_eq!(
            aptfile(
                "# the app\npython3-psycopg2\n\n  python3-pymemcache  # cache\npython3-psycopg2\n"
            ),
            Ok(vec![
                "python3-psycopg2".to_string(),
                "python3-pymemcache".to_string()
            ])
        );
        for (bad, line) in [
            ("ok-package\n--allow-unauthenticated\n", 2),
            ("https://example.com/x.deb", 1),
            ("Python3", 1),
            ("a", 1),
            ("two words", 1),
        ] {
            assert_eq!(aptfile(bad).map_err(|e| e.line), Err(line), "{bad:?}");
        }
        assert_eq!(
            aptfile("x y").unwrap_err().to_string(),
            "line 1: \"x y\" is not a Debian package name (lowercase letters, digits, `+`, `-`, `.`)"
        );
    }

    #[test]
    fn local_blog_needs_the_servers_it_runs() {
        let mut m = crate::fixtures::manifest(2, Some(1), Some(1));
        m.provider.kind = ProviderKind::Local;
        let programs: Vec<String> = requirements(&m).into_iter().map(|r| r.program).collect();
        for p in [
            "haproxy",
            "memcached",
            "slon",
            "slonik",
            "/usr/lib/postgresql/15/bin/postgres",
        ] {
            assert!(
                programs.iter().any(|x| x == p),
                "{p} missing from {programs:?}"
            );
        }
        m.database = None;
        m.cache = None;
        let programs: Vec<String> = requirements(&m).into_iter().map(|r| r.program).collect();
        assert!(
            !programs.iter().any(|x| x == "memcached" || x == "slon"),
            "{programs:?}"
        );
    }
}

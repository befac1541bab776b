//! The app's config vars (issue 9): `appgrid config set/unset`, kept in the
//! 0600 state and written to the web servers' 0600 env files; a change is a
//! new release.
//!
//! Invariants: `Debug` shows names only; a value leaves this type only
//! through [`ConfigVars::secrets`] (as `SecretString`s) or
//! [`ConfigVars::expose`] (into the env file). The plan sees a salted digest
//! ([`ConfigVars::digest`]), so a short value cannot be guessed from a plan
//! file by hashing candidates.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Keys appgrid sets itself: the user may not.
pub const RESERVED: &[&str] = &[
    "DATABASE_URL",
    "DATABASE_REPLICA_URLS",
    "MEMCACHE_SERVERS",
    "PORT",
    "ADDR",
];

/// A bad `config set` / `config unset` argument (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigVarError {
    #[error(
        "{0} is set by appgrid (it says where the database, the caches or the port are) and cannot be set by hand"
    )]
    Reserved(String),
    #[error(
        "{0:?} is not a variable name: use letters, digits and '_', not starting with a digit (e.g. SECRET_KEY)"
    )]
    BadName(String),
    #[error("the value of {0} holds a NUL byte, which an environment cannot carry")]
    NulInValue(String),
    #[error("{0} is not set; `appgrid config FILE` lists what is")]
    NotSet(String),
}

/// The app's config vars: name → value, and the salt of their digest.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigVars {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    salt: String,
    #[serde(default)]
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for ConfigVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigVars")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A name the user may set.
pub fn check_name(name: &str) -> Result<(), ConfigVarError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
    if !ok {
        return Err(ConfigVarError::BadName(name.to_string()));
    }
    if RESERVED.contains(&name) {
        return Err(ConfigVarError::Reserved(name.to_string()));
    }
    Ok(())
}

impl ConfigVars {
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    /// Set these (all checked first: a bad one changes nothing). `salt` is
    /// used when there is none yet (the caller's randomness: this stays pure).
    pub fn set(
        &mut self,
        values: Vec<(String, SecretString)>,
        salt: impl FnOnce() -> String,
    ) -> Result<(), ConfigVarError> {
        use secrecy::ExposeSecret;
        for (name, value) in &values {
            check_name(name)?;
            if value.expose_secret().contains('\0') {
                return Err(ConfigVarError::NulInValue(name.clone()));
            }
        }
        if self.salt.is_empty() {
            self.salt = salt();
        }
        for (name, value) in values {
            self.vars.insert(name, value.expose_secret().to_string());
        }
        Ok(())
    }

    /// Remove these (every one must be set: otherwise nothing changes).
    pub fn unset(&mut self, names: &[String]) -> Result<(), ConfigVarError> {
        if let Some(missing) = names.iter().find(|n| !self.vars.contains_key(*n)) {
            return Err(ConfigVarError::NotSet(missing.clone()));
        }
        for n in names {
            self.vars.remove(n);
        }
        Ok(())
    }

    /// A salted digest of every name and value: what the plan and the
    /// release records see. Empty when there are none.
    pub fn digest(&self) -> String {
        if self.vars.is_empty() {
            return String::new();
        }
        let mut text = self.salt.clone();
        for (k, v) in &self.vars {
            text.push('\0');
            text.push_str(k);
            text.push('=');
            text.push_str(v);
        }
        crate::hash::sha256_hex(text.as_bytes())[..16].to_string()
    }

    /// The values, for the env file and the redactor.
    pub fn secrets(&self) -> BTreeMap<String, SecretString> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), SecretString::from(v.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn set(vars: &mut ConfigVars, k: &str, v: &str) -> Result<(), ConfigVarError> {
        vars.set(vec![(k.to_string(), SecretString::from(v))], || {
            "salt1".to_string()
        })
    }

    #[test]
    fn reserved_and_bad_names_are_refused_and_change_nothing() {
        let mut v = ConfigVars::default();
        assert_eq!(
            set(&mut v, "DATABASE_URL", "x"),
            Err(ConfigVarError::Reserved("DATABASE_URL".into()))
        );
        assert_eq!(
            set(&mut v, "1X", "x"),
            Err(ConfigVarError::BadName("1X".into()))
        );
        assert_eq!(
            set(&mut v, "A", "x\0y"),
            Err(ConfigVarError::NulInValue("A".into()))
        );
        let both = v.set(
            vec![
                ("GOOD".into(), SecretString::from("1")),
                ("PORT".into(), SecretString::from("2")),
            ],
            || "s".into(),
        );
        assert!(both.is_err());
        assert!(v.is_empty(), "{v:?}");
        assert!(
            ConfigVarError::Reserved("PORT".into())
                .to_string()
                .contains("cannot be set by hand")
        );
    }

    #[test]
    fn digest_follows_values_and_debug_hides_them() {
        let mut v = ConfigVars::default();
        assert_eq!(v.digest(), "");
        set(&mut v, "SECRET_KEY", "hunter2-long").unwrap();
        let d1 = v.digest();
        set(&mut v, "SECRET_KEY", "hunter3-long").unwrap();
        assert_ne!(v.digest(), d1);
        assert!(!format!("{v:?}").contains("hunter"), "{v:?}");
        assert_eq!(v.secrets()["SECRET_KEY"].expose_secret(), "hunter3-long");
        // The salt is part of the digest: the same value elsewhere differs.
        let mut other = ConfigVars::default();
        other
            .set(
                vec![("SECRET_KEY".into(), SecretString::from("hunter3-long"))],
                || "salt2".into(),
            )
            .unwrap();
        assert_ne!(other.digest(), v.digest());
        assert_eq!(
            v.unset(&["NOPE".into()]),
            Err(ConfigVarError::NotSet("NOPE".into()))
        );
        v.unset(&["SECRET_KEY".into()]).unwrap();
        assert!(v.is_empty());
    }
}

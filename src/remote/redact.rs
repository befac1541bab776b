//! Known secret values, replaced by `(sensitive)` wherever text leaves appgrid.

use std::sync::{Arc, RwLock};

/// A shared, growing set of secrets. Cheap to clone; every clone sees additions.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

pub const REDACTED: &str = "(sensitive)";

impl Redactor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Never print `secret` again. Values shorter than 6 characters are refused
    /// as secrets (they would redact ordinary words); generate longer ones.
    pub fn add(&self, secret: &str) {
        if secret.len() < 6 {
            return;
        }
        let mut s = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        if !s.iter().any(|x| x == secret) {
            s.push(secret.to_string());
            // Longest first, so a secret containing another is replaced whole.
            s.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let s = self.secrets.read().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for secret in s.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence_and_the_longest_first() {
        let r = Redactor::new();
        r.add("hunter22");
        r.add("hunter22-extended");
        assert_eq!(
            r.redact("a hunter22 b hunter22-extended c"),
            "a (sensitive) b (sensitive) c"
        );
        let clone = r.clone();
        r.add("s3cr3t-value");
        assert_eq!(clone.redact("x s3cr3t-value"), "x (sensitive)");
    }

    #[test]
    fn short_values_are_not_secrets() {
        let r = Redactor::new();
        r.add("abc");
        assert_eq!(r.redact("abc"), "abc");
    }
}

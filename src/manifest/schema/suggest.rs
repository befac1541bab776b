//! "Did you mean …?" for misspelt keys, tables and keywords.
//!
//! The distance is strsim's Levenshtein distance over characters; a
//! candidate is offered only when it is at most [`MAX_DISTANCE`] edits away,
//! so a wild guess is never suggested.

/// The largest edit distance at which a candidate is still suggested.
pub(super) const MAX_DISTANCE: usize = 2;

/// The candidate closest to `word`, if one is within [`MAX_DISTANCE`].
/// Ties go to the earlier candidate, so the order of `candidates` decides.
pub(super) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    // Words far longer than any key cannot be near one; skip the quadratic work.
    if word.chars().count() > 64 {
        return None;
    }
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(word, c), *c))
        .filter(|(d, _)| *d <= MAX_DISTANCE)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_respects_the_limit() {
        let keys = ["instance_type", "count", "port"];
        assert_eq!(closest("prot", &keys), Some("port"));
        assert_eq!(closest("instnce_type", &keys), Some("instance_type"));
        assert_eq!(closest("replicas", &keys), None);
        assert_eq!(closest(&"x".repeat(65), &keys), None);
    }

    #[test]
    fn characters_not_bytes_and_ties_go_first() {
        // `é` is one edit from `e`, not two (it is two bytes).
        assert_eq!(closest("pórt", &["port"]), Some("port"));
        assert_eq!(closest("ab", &["aa", "bb"]), Some("aa"));
        assert_eq!(closest("ab", &["bb", "aa"]), Some("bb"));
    }
}

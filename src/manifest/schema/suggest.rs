//! "Did you mean …?" for misspelt keys, tables and keywords.
//!
//! A plain Levenshtein distance over characters; a candidate is offered only
//! when it is at most [`MAX_DISTANCE`] edits away, so a wild guess is never
//! suggested.

/// The largest edit distance at which a candidate is still suggested.
pub(super) const MAX_DISTANCE: usize = 2;

/// The number of single-character insertions, deletions and substitutions
/// that turn `a` into `b`.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The candidate closest to `word`, if one is within [`MAX_DISTANCE`].
/// Ties go to the earlier candidate, so the order of `candidates` decides.
pub(super) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    // Words far longer than any key cannot be near one; skip the quadratic work.
    if word.chars().count() > 64 {
        return None;
    }
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= MAX_DISTANCE)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_single_edits() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("count", "count"), 0);
        assert_eq!(edit_distance("cont", "count"), 1);
        assert_eq!(edit_distance("instnce_type", "instance_type"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("é", "e"), 1);
    }

    #[test]
    fn closest_respects_the_limit() {
        let keys = ["instance_type", "count", "port"];
        assert_eq!(closest("prot", &keys), Some("port"));
        assert_eq!(closest("replicas", &keys), None);
    }
}

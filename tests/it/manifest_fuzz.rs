//! Issue 10: the manifest parser never panics, whatever bytes it is given —
//! arbitrary bytes, and mutations of a real manifest (which reach far deeper
//! than random bytes do). Every error it returns renders.

use std::path::Path;

use proptest::prelude::*;

fn example() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/blog/appgrid.toml"),
    )
    .unwrap()
}

fn parse(text: &str) {
    if let Err(diagnostics) = appgrid::manifest::parse(Path::new("fuzz.toml"), text) {
        let rendered = diagnostics.to_string();
        assert!(!rendered.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_manifests_never_panic(
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), "[ -~\n]{0,12}"), 1..6)
    ) {
        let mut text = example();
        for (at, len, insert) in cuts {
            let start = at.index(text.len() + 1);
            let end = (start + len.index(16)).min(text.len());
            let (start, end) = (floor(&text, start), floor(&text, end));
            text.replace_range(start..end, &insert);
        }
        parse(&text);
    }
}

/// The nearest char boundary at or below `i`.
fn floor(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

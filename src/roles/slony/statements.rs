//! The one thing appgrid reads from a migration's SQL text itself: whether a
//! top-level statement controls the transaction (BEGIN, COMMIT, ROLLBACK,
//! SAVEPOINT, …). Slony-I's EXECUTE SCRIPT runs the script inside its own
//! transaction on every node, and the migration's dry probe runs it inside a
//! transaction that is rolled back — a COMMIT in the text would break both.
//! Everything else about the change (which tables and sequences it creates,
//! whether they have primary keys) is read from the catalog, never parsed.
//!
//! The scan splits on `;` outside quotes ('…', "…", E'…'), dollar quotes
//! (`$tag$…$tag$`) and comments (`--`, nested `/* */`), and looks at the first
//! word(s) of each statement. It errs on the side of refusing: a statement
//! that merely starts like one of these is refused with its text.

/// The first top-level statement that controls the transaction, as written
/// (trimmed, at most 80 characters), if any.
pub fn transaction_control(sql: &str) -> Option<String> {
    statements(sql)
        .into_iter()
        .find(|s| controls_transaction(s))
        .map(|s| {
            let s = s.trim();
            match s.char_indices().nth(80) {
                Some((i, _)) => format!("{}…", &s[..i]),
                None => s.to_string(),
            }
        })
}

fn controls_transaction(statement: &str) -> bool {
    let words: Vec<String> = statement
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .take(2)
        .map(str::to_ascii_lowercase)
        .collect();
    let first = words.first().map(String::as_str).unwrap_or("");
    let second = words.get(1).map(String::as_str).unwrap_or("");
    matches!(
        first,
        "begin" | "commit" | "rollback" | "end" | "abort" | "savepoint" | "release"
    ) || (first == "start" && second == "transaction")
        || (first == "prepare" && second == "transaction")
        || (first == "set" && second == "transaction")
}

/// Top-level statements with comments removed (quoted text kept).
fn statements(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '-' if next == Some('-') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                current.push(' ');
                continue;
            }
            '/' if next == Some('*') => {
                let mut depth = 0usize;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                current.push(' ');
                continue;
            }
            '\'' | '"' => {
                // E'…' strings may escape the quote with a backslash.
                let escapes = c == '\''
                    && i > 0
                    && matches!(chars[i - 1], 'e' | 'E')
                    && (i < 2 || !(chars[i - 2].is_alphanumeric() || chars[i - 2] == '_'));
                current.push(c);
                i += 1;
                while i < chars.len() {
                    let d = chars[i];
                    current.push(d);
                    i += 1;
                    if escapes && d == '\\' {
                        if let Some(&e) = chars.get(i) {
                            current.push(e);
                            i += 1;
                        }
                    } else if d == c {
                        if chars.get(i) == Some(&c) {
                            current.push(c);
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
                continue;
            }
            '$' => {
                if let Some(tag) = dollar_tag(&chars, i) {
                    let tag: Vec<char> = tag.chars().collect();
                    current.extend(&tag);
                    i += tag.len();
                    while i < chars.len() && !chars[i..].starts_with(&tag) {
                        current.push(chars[i]);
                        i += 1;
                    }
                    if i < chars.len() {
                        current.extend(&tag);
                        i += tag.len();
                    }
                    continue;
                }
            }
            ';' => {
                out.push(std::mem::take(&mut current));
                i += 1;
                continue;
            }
            _ => {}
        }
        current.push(c);
        i += 1;
    }
    out.push(current);
    out.retain(|s| !s.trim().is_empty());
    out
}

/// `$tag$` starting at `i` (a dollar quote's opening), if it is one: `$$` or
/// `$name$` where the name is an identifier not starting with a digit and
/// the `$` does not continue an identifier (`a$b`) or a parameter (`$1`).
fn dollar_tag(chars: &[char], i: usize) -> Option<String> {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let mut j = i + 1;
    while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
        j += 1;
    }
    if chars.get(j) != Some(&'$') {
        return None;
    }
    if chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(chars[i..=j].iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_transaction_control_at_the_top_level() {
        for sql in [
            "BEGIN; create table a (id int primary key); COMMIT;",
            "create table a (id int primary key);\ncommit",
            "  Rollback ;",
            "start transaction isolation level serializable; select 1",
            "create table a (id int primary key); end;",
            "savepoint s1;",
            "/* note */ abort",
            "-- a comment\nBEGIN",
            "prepare transaction 'x'",
            "set transaction read only",
        ] {
            assert!(transaction_control(sql).is_some(), "{sql:?}");
        }
        assert_eq!(
            transaction_control("create table a (id int primary key);\n  commit ;").as_deref(),
            Some("commit")
        );
    }

    #[test]
    fn ordinary_ddl_passes_even_with_the_words_inside_quotes_bodies_and_comments() {
        for sql in [
            "create table comments (id bigserial primary key, body text);",
            "create sequence tickets; alter table notes add column author text",
            "create function f() returns int language plpgsql as $$ begin return 1; end; $$;",
            "create function g() returns int language plpgsql as $body$ BEGIN commit; END $body$;",
            "insert into notes(body) values ('x; commit; y');",
            "create table \"begin; commit\" (id int primary key);",
            "-- begin;\ncreate table t (id int primary key); /* commit; /* nested; */ rollback; */",
            "insert into notes(body) values (E'it\\'s; commit');",
            "select $1; create table d$x (id int primary key);",
            "create table settings (id int primary key, begin_at timestamptz, end_at timestamptz);",
        ] {
            assert_eq!(transaction_control(sql), None, "{sql:?}");
        }
    }

    proptest! {
        /// Whatever the text, the scan ends and never panics.
        #[test]
        fn never_panics(sql in "[ -~\\n$'\"/*;-]{0,200}") {
            let _ = transaction_control(&sql);
        }
    }
}

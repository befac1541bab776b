//! The database page's query box: read-only SQL against a replica, as the
//! app's user.
//!
//! Three walls, each enough for what it guards: the text is one statement
//! that reads (it starts with SELECT, WITH, VALUES or TABLE; no `;`, no
//! backslash, so nothing can follow it and psql runs no meta-command), it
//! runs inside `BEGIN READ ONLY` with `SET LOCAL statement_timeout`, and it
//! is a cursor's query (`DECLARE … CURSOR FOR`, which Postgres refuses for
//! anything but a query, a data-modifying `WITH` included), fetched up to the
//! row limit, then rolled back.

/// At most this many rows come back.
pub const ROW_LIMIT: usize = 200;
/// The statement timeout.
pub const TIMEOUT_MS: u64 = 5_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryRefused {
    #[error("the query is empty")]
    Empty,
    #[error(
        "only one statement that reads runs here (SELECT, WITH, VALUES, TABLE); `{0}` is not one"
    )]
    NotARead(String),
    #[error("one statement only: remove the `;` (a trailing one is fine)")]
    Several,
    #[error("a backslash is not accepted here (psql would read it as a command)")]
    Backslash,
    #[error("the query is longer than 10,000 characters")]
    TooLong,
}

/// The query, trimmed and without a trailing `;`, when it may run.
pub fn check(sql: &str) -> Result<&str, QueryRefused> {
    let sql = sql.trim();
    let sql = sql.strip_suffix(';').unwrap_or(sql).trim_end();
    if sql.is_empty() {
        return Err(QueryRefused::Empty);
    }
    if sql.len() > 10_000 {
        return Err(QueryRefused::TooLong);
    }
    if sql.contains('\\') {
        return Err(QueryRefused::Backslash);
    }
    if sql.contains(';') {
        return Err(QueryRefused::Several);
    }
    let first: String = sql
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    if !["SELECT", "WITH", "VALUES", "TABLE"].contains(&first.as_str()) {
        let shown: String = sql
            .split_whitespace()
            .next()
            .unwrap_or("")
            .chars()
            .take(20)
            .collect();
        return Err(QueryRefused::NotARead(shown));
    }
    Ok(sql)
}

/// The psql script (fed on stdin) that runs a checked query.
pub fn script(checked: &str) -> String {
    format!(
        "BEGIN READ ONLY;\nSET LOCAL statement_timeout = {TIMEOUT_MS};\n\
         DECLARE appgrid_panel NO SCROLL CURSOR FOR\n{checked}\n;\n\
         FETCH {ROW_LIMIT} FROM appgrid_panel;\nROLLBACK;\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass_and_everything_else_is_refused() {
        assert_eq!(check(" select 1 ; "), Ok("select 1"));
        assert_eq!(
            check("WITH a AS (SELECT 1) SELECT * FROM a"),
            Ok("WITH a AS (SELECT 1) SELECT * FROM a")
        );
        assert_eq!(check("values (1)"), Ok("values (1)"));
        assert_eq!(check("table notes"), Ok("table notes"));
        assert_eq!(check("  ;"), Err(QueryRefused::Empty));
        for (sql, first) in [
            ("INSERT INTO notes(body) VALUES ('x')", "INSERT"),
            ("update notes set body = ''", "update"),
            ("DROP TABLE notes", "DROP"),
            ("create table t(i int)", "create"),
            ("SET TRANSACTION READ WRITE", "SET"),
            ("COMMIT", "COMMIT"),
            ("(select 1)", "(select"),
        ] {
            assert_eq!(
                check(sql),
                Err(QueryRefused::NotARead(first.into())),
                "{sql}"
            );
        }
        assert_eq!(
            check("select 1; insert into notes(body) values ('x')"),
            Err(QueryRefused::Several)
        );
        assert_eq!(check("select 1;commit;"), Err(QueryRefused::Several));
        assert_eq!(check("select 1 \\g"), Err(QueryRefused::Backslash));
        assert_eq!(check("select '\\! id'"), Err(QueryRefused::Backslash));
        assert_eq!(
            check(&format!("select {}", "1".repeat(10_001))),
            Err(QueryRefused::TooLong)
        );
    }

    #[test]
    fn the_script_is_a_read_only_cursor_with_a_timeout_and_a_limit() {
        let s = script("select 1");
        assert!(
            s.starts_with("BEGIN READ ONLY;\nSET LOCAL statement_timeout = 5000;\n"),
            "{s}"
        );
        assert!(s.contains("CURSOR FOR\nselect 1\n;\nFETCH 200 FROM"), "{s}");
        assert!(s.ends_with("ROLLBACK;\n"), "{s}");
    }
}

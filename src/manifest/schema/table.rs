//! Reading one TOML table against its [`TableSpec`]: unknown keys, missing
//! keys and wrong value types, each reported at the right span.
//!
//! Every accessor that finds a problem reports it to the [`Checker`] and
//! returns [`Reported`], so callers can check all keys of a table before
//! combining the results with `?`.

use std::ops::Range;

use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::Checker;
use super::suggest;

/// A problem was found and already reported; the value is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::manifest) struct Reported;

/// One key a table accepts.
pub(super) struct Key {
    pub name: &'static str,
    /// A valid value as written in TOML, used in help texts.
    pub example: &'static str,
    pub required: bool,
}

impl Key {
    pub const fn required(name: &'static str, example: &'static str) -> Self {
        Key {
            name,
            example,
            required: true,
        }
    }

    pub const fn optional(name: &'static str, example: &'static str) -> Self {
        Key {
            name,
            example,
            required: false,
        }
    }
}

/// The keys of one table, as the schema defines them.
pub(super) struct TableSpec {
    /// The key of the table in its parent (`web`).
    pub name: &'static str,
    /// How the table is written in messages (`[web]`, `[[autoscale.schedule]]`).
    pub label: &'static str,
    pub keys: &'static [Key],
}

impl TableSpec {
    fn key(&self, name: &str) -> Option<&'static Key> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// `name = "blog"`, `count = 2`: a line to show in help.
    fn example_line(&self, name: &str) -> String {
        match self.key(name) {
            Some(key) => format!("`{} = {}`", key.name, key.example),
            None => format!("`{name}`"),
        }
    }

    /// A help text for a table that is missing altogether.
    pub fn missing_help(&self) -> String {
        let lines: Vec<String> = self
            .keys
            .iter()
            .filter(|k| k.required)
            .map(|k| self.example_line(k.name))
            .collect();
        let listed = match lines.split_last() {
            None => String::new(),
            Some((last, [])) => format!(" with {last}"),
            Some((last, rest)) => format!(" with {} and {last}", rest.join(", ")),
        };
        format!("add a table {}{listed}", self.label)
    }
}

/// A table being checked against its spec.
pub(super) struct Section<'a, 'i> {
    spec: &'static TableSpec,
    span: Range<usize>,
    table: &'a DeTable<'i>,
    /// Keys suggested for unknown keys: not reported again as missing.
    suggested: Vec<&'static str>,
}

impl<'a, 'i> Section<'a, 'i> {
    /// Start checking `table` (written at `span`): unknown keys are reported
    /// right away, with the closest known key as a suggestion.
    pub fn open(
        ck: &mut Checker,
        spec: &'static TableSpec,
        span: Range<usize>,
        table: &'a DeTable<'i>,
    ) -> Self {
        let known: Vec<&'static str> = spec.keys.iter().map(|k| k.name).collect();
        let mut suggested = Vec::new();
        for key in table.keys() {
            let name: &str = key.get_ref();
            if spec.key(name).is_some() {
                continue;
            }
            let help = match suggest::closest(name, &known) {
                Some(close) => {
                    suggested.push(close);
                    format!("did you mean `{close}`?")
                }
                None => format!(
                    "known keys in {}: {}",
                    spec.label,
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            ck.unknown(
                key.span(),
                format!("unknown key `{name}` in {}", spec.label),
                help,
            );
        }
        Section {
            spec,
            span,
            table,
            suggested,
        }
    }

    /// The top-level table `spec.name`, which must be present. Not reported
    /// as missing when an unknown table was already reported as its misspelling
    /// (`suggested`).
    pub fn required(
        ck: &mut Checker,
        root: &'a DeTable<'i>,
        spec: &'static TableSpec,
        suggested: &[&str],
    ) -> Result<Self, Reported> {
        match Self::optional(ck, root, spec)? {
            Some(section) => Ok(section),
            None if suggested.contains(&spec.name) => Err(Reported),
            None => Err(ck.missing(
                0..0,
                format!("missing table {}", spec.label),
                spec.missing_help(),
            )),
        }
    }

    /// The top-level table `spec.name`, if present.
    pub fn optional(
        ck: &mut Checker,
        root: &'a DeTable<'i>,
        spec: &'static TableSpec,
    ) -> Result<Option<Self>, Reported> {
        let Some(value) = root.get(spec.name) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::Table(table) => Ok(Some(Self::open(ck, spec, value.span(), table))),
            other => Err(ck.error(
                value.span(),
                format!(
                    "`{}` must be a table, found {}",
                    spec.name,
                    other.type_str()
                ),
                format!(
                    "write a table header `{}` and put its keys on the lines below it",
                    spec.label
                ),
            )),
        }
    }

    pub fn spec(&self) -> &'static TableSpec {
        self.spec
    }

    /// Where the table was written: its header, or its key for an implicit table.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The value of `key`, if written.
    pub fn field(&self, key: &'static str) -> Option<Field<'a, 'i>> {
        let value = self.table.get(key)?;
        Some(Field {
            key,
            spec: self.spec,
            value,
        })
    }

    /// The value of `key`; reports it missing, at the table, if not written
    /// (unless an unknown key was already reported as its misspelling).
    pub fn require(&self, ck: &mut Checker, key: &'static str) -> Result<Field<'a, 'i>, Reported> {
        self.field(key).ok_or_else(|| {
            if self.suggested.contains(&key) {
                return Reported;
            }
            ck.missing(
                self.span(),
                format!("missing `{key}` in {}", self.spec.label),
                format!(
                    "add {} under {}",
                    self.spec.example_line(key),
                    self.spec.label
                ),
            )
        })
    }
}

/// One written key and its value.
#[derive(Clone, Copy)]
pub(super) struct Field<'a, 'i> {
    key: &'static str,
    spec: &'static TableSpec,
    value: &'a Spanned<DeValue<'i>>,
}

impl<'a, 'i> Field<'a, 'i> {
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The span of the value.
    pub fn span(&self) -> Range<usize> {
        self.value.span()
    }

    pub fn value(&self) -> &'a DeValue<'i> {
        self.value.get_ref()
    }

    /// `for example: count = 2`
    pub fn example_help(&self) -> String {
        format!("for example: {}", self.spec.example_line(self.key))
    }

    /// Report that the value is not of the `expected` type (with its article:
    /// "an integer", "a string").
    pub fn wrong_type(&self, ck: &mut Checker, expected: &str) -> Reported {
        ck.error(
            self.span(),
            format!(
                "`{}` must be {expected}, found {}",
                self.key,
                self.value().type_str()
            ),
            self.example_help(),
        )
    }

    pub fn str(&self, ck: &mut Checker) -> Result<&'a str, Reported> {
        self.value()
            .as_str()
            .ok_or_else(|| self.wrong_type(ck, "a string"))
    }

    pub fn bool(&self, ck: &mut Checker) -> Result<bool, Reported> {
        self.value()
            .as_bool()
            .ok_or_else(|| self.wrong_type(ck, "a boolean (true or false)"))
    }

    /// An integer within `min..=max`.
    pub fn integer(&self, ck: &mut Checker, min: i64, max: i64) -> Result<i64, Reported> {
        let DeValue::Integer(integer) = self.value() else {
            return Err(self.wrong_type(ck, "an integer"));
        };
        let parsed = i64::from_str_radix(integer.as_str(), integer.radix());
        let (bound, found) = match parsed {
            Ok(n) if (min..=max).contains(&n) => return Ok(n),
            Ok(n) if n < min => (format!("at least {min}"), n.to_string()),
            Ok(n) => (format!("at most {max}"), n.to_string()),
            // Beyond i64: too large or too small; show it as written.
            Err(_) if integer.as_str().starts_with('-') => {
                (format!("at least {min}"), integer.as_str().to_string())
            }
            Err(_) => (format!("at most {max}"), integer.as_str().to_string()),
        };
        Err(ck.error(
            self.span(),
            format!("`{}` must be {bound}, found {found}", self.key),
            format!(
                "use a whole number from {min} to {max}, {}",
                self.example_help()
            ),
        ))
    }

    /// An integer or a float, as `f64`.
    pub fn number(&self, ck: &mut Checker) -> Result<f64, Reported> {
        let parsed = match self.value() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                // Precision loss above 2^53 is irrelevant for targets.
                .map(|n| n as f64),
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            _ => return Err(self.wrong_type(ck, "a number")),
        };
        match parsed {
            Some(n) if n.is_finite() => Ok(n),
            _ => Err(ck.error(
                self.span(),
                format!("`{}` must be a finite number", self.key),
                self.example_help(),
            )),
        }
    }

    /// An array whose items are all strings; every non-string item is reported.
    pub fn strings(&self, ck: &mut Checker) -> Result<Vec<Spanned<&'a str>>, Reported> {
        let Some(items) = self.value().as_array() else {
            return Err(self.wrong_type(ck, "an array"));
        };
        let mut strings = Vec::with_capacity(items.len());
        let mut result = Ok(());
        for item in items.iter() {
            match item.get_ref().as_str() {
                Some(s) => strings.push(Spanned::new(item.span(), s)),
                None => {
                    result = Err(ck.error(
                        item.span(),
                        format!(
                            "`{}` entries must be strings, found {}",
                            self.key,
                            item.get_ref().type_str()
                        ),
                        self.example_help(),
                    ));
                }
            }
        }
        result.map(|()| strings)
    }
}

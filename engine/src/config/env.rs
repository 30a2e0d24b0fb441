//! `SLUICE_<SECTION>__<KEY>` environment variables: an overlay on the TOML
//! file, applied to the parsed document before validation, so a value from
//! the environment passes exactly the rules a value in the file does.
//!
//! Precedence: flag > its `SLUICE_*` variable (clap) > `SLUICE_<SECTION>__<KEY>`
//! > file > built-in default. The grammar (the README's "Environment"):
//! - `__` separates levels and names are matched without case, `_` also
//!   matching `-` in a key the file already has (`SLUICE_UPSTREAM__API_V2__…`
//!   finds `[upstream.api-v2]`); new keys are lowercase.
//! - A level of digits indexes an array: `SLUICE_LISTENER__0__ADDRESS`; the
//!   index one past the end appends.
//! - The value is read as a TOML value (`8`, `true`, `["a", "b"]`,
//!   `{ address = "a:1" }`) and, when it is not one or its type is not the
//!   key's, as a string (`2s`, `p2c`, `0.0.0.0:8080`). It replaces the key's
//!   value whole.
//! - A variable naming no key is an error naming the variable; typos are
//!   never ignored. The flags' own variables (`SLUICE_LISTEN`, …) and the
//!   other programs' ([`FOREIGN`]) are left to their owners.

use super::error::{At, ConfigError};
use std::ffi::OsString;
use toml::{Table, Value};

/// What every variable of the overlay starts with.
pub const PREFIX: &str = "SLUICE_";

/// The variables of the other programs of this repository (the services,
/// the demo, the test and bench tools), which may share an environment
/// with the proxy (one systemd host, one test run); never the proxy's.
pub const FOREIGN: &[&str] = &[
    "SLUICE_APP_",
    "SLUICE_CACHE_",
    "SLUICE_LOG_",
    "SLUICE_DEMO_",
    "SLUICE_E2E_",
    "SLUICE_TEST_",
    "SLUICE_BENCH_",
    "SLUICE_BIN",
];

/// The `SLUICE_<SECTION>__<KEY>` variables of one process, sorted so that
/// appends to an array happen in index order.
#[derive(Clone, Debug, Default)]
pub struct EnvOverlay {
    vars: Vec<EnvVar>,
}

#[derive(Clone, Debug)]
struct EnvVar {
    name: String,
    path: Vec<Seg>,
    raw: String,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Index(usize),
    Key(String),
}

/// Why a variable could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("its value is not UTF-8")]
    NotUtf8,
    #[error("empty level in the name (three or more underscores in a row, or a trailing `__`)")]
    EmptyLevel,
    #[error("the top level is a table: {0} is not a key")]
    TopIndex(usize),
    #[error("{field} is {kind}, not a table")]
    NotTable { field: String, kind: &'static str },
    #[error("{field} is {kind}, not an array")]
    NotArray { field: String, kind: &'static str },
    #[error("index {index} is past the end of {field} ({len} entries; {len} appends)")]
    PastEnd {
        field: String,
        index: usize,
        len: usize,
    },
}

/// One applied variable: the field it set (`timeouts.upstream_connect`).
#[derive(Clone, Debug)]
pub struct Applied {
    pub var: String,
    pub field: String,
    raw: String,
    /// Read as a TOML value other than a string; set again as a string
    /// when the key wants one ([`Layered::retry_as_string`]).
    typed: bool,
}

impl EnvOverlay {
    /// The process environment's variables, leaving out `skip` (the flags'
    /// own) and the [`FOREIGN`] ones.
    pub fn from_env(skip: &[&str]) -> Result<EnvOverlay, ConfigError> {
        EnvOverlay::from_vars(std::env::vars_os(), skip)
    }

    /// As [`EnvOverlay::from_env`], from any list of variables.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
        skip: &[&str],
    ) -> Result<EnvOverlay, ConfigError> {
        let mut out = Vec::new();
        for (name, value) in vars {
            // Names that are not UTF-8 cannot start with our prefix's bytes
            // and still be meant for us; they are someone else's.
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(PREFIX) else {
                continue;
            };
            if skip.contains(&name) || FOREIGN.iter().any(|f| name.starts_with(f)) {
                continue;
            }
            let fail = |problem| ConfigError::Env {
                var: name.to_owned(),
                problem,
            };
            let raw = value.into_string().map_err(|_| fail(EnvError::NotUtf8))?;
            let mut path = Vec::new();
            for level in rest.split("__") {
                if level.is_empty() {
                    return Err(fail(EnvError::EmptyLevel));
                }
                path.push(match level.parse::<usize>() {
                    Ok(i) if level.bytes().all(|b| b.is_ascii_digit()) => Seg::Index(i),
                    _ => Seg::Key(level.to_ascii_lowercase()),
                });
            }
            if let Some(Seg::Index(i)) = path.first() {
                return Err(fail(EnvError::TopIndex(*i)));
            }
            out.push(EnvVar {
                name: name.to_owned(),
                path,
                raw,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(EnvOverlay { vars: out })
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The variables' names, in the order they are applied.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.iter().map(|v| v.name.as_str())
    }

    /// Sets every variable's key in `doc` (the parsed file).
    pub fn apply(&self, doc: &mut Table) -> Result<Vec<Applied>, ConfigError> {
        self.vars
            .iter()
            .map(|v| {
                let (value, typed) = read_value(&v.raw);
                let field = set(doc, &v.path, value).map_err(|problem| ConfigError::Env {
                    var: v.name.clone(),
                    problem,
                })?;
                Ok(Applied {
                    var: v.name.clone(),
                    field,
                    raw: v.raw.clone(),
                    typed,
                })
            })
            .collect()
    }
}

/// A TOML value when the text is one (a single value, nothing after it),
/// else the text as a string.
fn read_value(raw: &str) -> (Value, bool) {
    match raw.parse::<Value>() {
        Ok(Value::String(s)) => (Value::String(s), false),
        Ok(v) => (v, true),
        Err(_) => (Value::String(raw.to_owned()), false),
    }
}

/// Walks `path` in `doc`, making the tables and array entries it needs, and
/// sets the last key; returns the field path as validation names it.
fn set(doc: &mut Table, path: &[Seg], value: Value) -> Result<String, EnvError> {
    let mut field = String::new();
    let mut here = Slot::Table(doc);
    let mut value = Some(value);
    for (n, seg) in path.iter().enumerate() {
        let last = n + 1 == path.len();
        // What a missing level becomes: the value, or a container for the next.
        let mut fill = || match (last, path.get(n + 1)) {
            (true, _) => value.take().unwrap_or(Value::Boolean(false)),
            (false, Some(Seg::Index(_))) => Value::Array(Vec::new()),
            (false, _) => Value::Table(Table::new()),
        };
        let next: &mut Value = match (here, seg) {
            (Slot::Table(t), Seg::Key(k)) => {
                let key = t
                    .keys()
                    .find(|have| same_key(have, k))
                    .cloned()
                    .unwrap_or_else(|| k.clone());
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(&key);
                if last {
                    t.insert(key.clone(), fill());
                }
                t.entry(key).or_insert_with(&mut fill)
            }
            (Slot::Array(a), &Seg::Index(index)) => {
                if index > a.len() {
                    return Err(EnvError::PastEnd {
                        field,
                        index,
                        len: a.len(),
                    });
                }
                field.push_str(&format!("[{index}]"));
                if index == a.len() {
                    a.push(fill());
                } else if last {
                    a[index] = fill();
                }
                &mut a[index]
            }
            (Slot::Table(_), Seg::Index(i)) => {
                // Only the top level: a table below is reached as a Value.
                return Err(EnvError::TopIndex(*i));
            }
            // Never reached: the walk checks the next level's kind before
            // descending; an error rather than a panic all the same.
            (Slot::Array(_), Seg::Key(_)) => {
                return Err(EnvError::NotTable {
                    field,
                    kind: "an array",
                });
            }
        };
        if last {
            break;
        }
        here = match (next, &path[n + 1]) {
            (Value::Table(t), Seg::Key(_)) => Slot::Table(t),
            (Value::Array(a), Seg::Index(_)) => Slot::Array(a),
            (other, Seg::Key(_)) => {
                return Err(EnvError::NotTable {
                    field,
                    kind: kind(other),
                });
            }
            (other, Seg::Index(_)) => {
                return Err(EnvError::NotArray {
                    field,
                    kind: kind(other),
                });
            }
        };
    }
    Ok(field)
}

enum Slot<'a> {
    Table(&'a mut Table),
    Array(&'a mut Vec<Value>),
}

/// `api_v2` names `api-v2` and `API_V2`: environment names have neither
/// `-` nor reliable case.
fn same_key(have: &str, want: &str) -> bool {
    have.len() == want.len()
        && have
            .bytes()
            .zip(want.bytes())
            .all(|(h, w)| h.to_ascii_lowercase() == w || (h == b'-' && w == b'_'))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// The file and the variables applied to it: says where a field's value
/// came from, for validation's messages.
pub struct Layered<'a> {
    /// The file's own text and name (an empty text when there is none).
    pub file_text: &'a str,
    pub path: &'a std::path::Path,
    pub applied: Vec<Applied>,
    /// The file's parsed tree with spans, for the line of a file value.
    spans: Option<toml::Spanned<toml::de::DeTable<'a>>>,
}

impl<'a> Layered<'a> {
    pub fn new(file_text: &'a str, path: &'a std::path::Path, applied: Vec<Applied>) -> Self {
        Layered {
            file_text,
            path,
            applied,
            spans: toml::de::DeTable::parse(file_text).ok(),
        }
    }

    /// The variable that set `field` or a table or array holding it.
    pub fn var_of(&self, field: &str) -> Option<&Applied> {
        self.applied.iter().rev().find(|a| {
            field == a.field
                || field
                    .strip_prefix(a.field.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
    }

    /// Where `field`'s value was given: a variable, or the file's line for
    /// it (the deepest level of it the file has; line 1 when none). A field
    /// the file lacks that leads to a variable's key was made by it (an
    /// unknown key names the level serde refused).
    pub fn at(&self, field: &str) -> At {
        let (offset, in_file) = self
            .spans
            .as_ref()
            .map_or((0, false), |doc| deepest_span(doc.get_ref(), field));
        let made = || {
            self.applied.iter().find(|a| {
                a.field
                    .strip_prefix(field)
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
            })
        };
        let var = self.var_of(field).or(if in_file { None } else { made() });
        if let Some(a) = var {
            return At::Env {
                var: a.var.clone(),
                field: field.to_owned(),
            };
        }
        let before = &self.file_text[..offset.min(self.file_text.len())];
        At::File {
            path: self.path.to_owned(),
            line: before.matches('\n').count() + 1,
            column: before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
            field: field.to_owned(),
        }
    }

    /// After a type error at `at`: when a variable set that field with a
    /// TOML value that is not a string, sets its text as a string instead
    /// and says so (the caller validates again). Each variable once.
    pub fn retry_as_string(&mut self, at: &At, doc: &mut Table) -> bool {
        let At::Env { var, field } = at else {
            return false;
        };
        // Only the variable's own value: an error inside a table it set is
        // better told as it is than as "a string is not a table".
        let Some(a) = self
            .applied
            .iter_mut()
            .find(|a| &a.var == var && a.typed && &a.field == field)
        else {
            return false;
        };
        a.typed = false;
        let path = parse_field(&a.field);
        set_existing(doc, &path, Value::String(a.raw.clone()))
    }
}

/// `upstream.api.backends[0]` → its levels.
fn parse_field(field: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in field.split('.') {
        let mut it = part.split('[');
        if let Some(key) = it.next().filter(|k| !k.is_empty()) {
            out.push(Seg::Key(key.to_owned()));
        }
        for idx in it {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(Seg::Index(i));
            }
        }
    }
    out
}

/// Replaces the value at an existing `path`.
fn set_existing(doc: &mut Table, path: &[Seg], value: Value) -> bool {
    let Some((Seg::Key(first), rest)) = path.split_first() else {
        return false;
    };
    let mut here = match doc.get_mut(first) {
        Some(v) => v,
        None => return false,
    };
    for seg in rest {
        here = match (here, seg) {
            (Value::Table(t), Seg::Key(k)) => match t.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Value::Array(a), Seg::Index(i)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    *here = value;
    true
}

/// The start of the deepest level of `field` present in the file's tree,
/// and whether that level is `field` itself.
fn deepest_span(doc: &toml::de::DeTable<'_>, field: &str) -> (usize, bool) {
    use toml::de::DeValue;
    let path = parse_field(field);
    let mut best = 0;
    let mut table = Some(doc);
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    for (n, seg) in path.iter().enumerate() {
        let found = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => t
                .iter()
                .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                .map(|(key, v)| (key.span().start, v)),
            (Seg::Index(i), _, Some(a)) => a.get(*i).map(|v| (v.span().start, v)),
            _ => None,
        };
        let Some((start, v)) = found else {
            return (best, n == 0 && path.is_empty());
        };
        best = start;
        (table, array) = match v.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(a.as_ref())),
            _ => (None, None),
        };
    }
    (best, true)
}

#[cfg(test)]
mod tests;

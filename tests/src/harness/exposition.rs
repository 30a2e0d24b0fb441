//! A strict reader of the OpenMetrics text exposition `GET /metrics` serves
//! (the subset sluice writes): `# HELP`/`# TYPE` lines, samples
//! `name{label="value",...} number`, and `# EOF` last. Anything else fails
//! the test, so a malformed line cannot be skipped silently.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → type (`counter`, `gauge`, `histogram`).
    pub families: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let mut e = Exposition::default();
        let mut eof = false;
        for line in text.lines() {
            assert!(!eof, "a line after # EOF: {line:?}");
            if line == "# EOF" {
                eof = true;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').expect("# TYPE name type");
                assert!(
                    ["counter", "gauge", "histogram", "info"].contains(&ty),
                    "type {ty:?}"
                );
                let old = e.families.insert(name.to_owned(), ty.to_owned());
                assert!(old.is_none(), "family {name} twice");
            } else if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            } else {
                e.samples.push(sample(line));
            }
        }
        assert!(eof, "no # EOF at the end");
        for s in &e.samples {
            let family = e.family_of(&s.name);
            assert!(family.is_some(), "sample {} has no # TYPE", s.name);
        }
        e
    }

    /// The family a sample name belongs to (`x_total` → `x` for counters,
    /// `x_bucket`/`x_count`/`x_sum` → `x` for histograms).
    pub fn family_of(&self, sample: &str) -> Option<&str> {
        self.families.iter().find_map(|(f, ty)| {
            let ok = match ty.as_str() {
                "counter" => sample == format!("{f}_total"),
                "histogram" => ["_bucket", "_count", "_sum"]
                    .iter()
                    .any(|s| sample == format!("{f}{s}")),
                "info" => sample == format!("{f}_info"),
                _ => sample == f,
            };
            ok.then_some(f.as_str())
        })
    }

    /// Every sample name the families may have, with or without samples now.
    pub fn sample_names(&self) -> BTreeSet<String> {
        self.families
            .iter()
            .flat_map(|(f, ty)| match ty.as_str() {
                "counter" => vec![format!("{f}_total")],
                "histogram" => vec![
                    format!("{f}_bucket"),
                    format!("{f}_count"),
                    format!("{f}_sum"),
                ],
                "info" => vec![format!("{f}_info")],
                _ => vec![f.clone()],
            })
            .collect()
    }

    /// The samples named `name` whose labels include `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one sample named `name` with `labels`; 0 when there is none (a
    /// series not made yet), a failure when several match.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.find(name, labels);
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().map_or(0.0, |s| s.value)
    }

    /// The buckets of a histogram series, `(le, cumulative count)` in order.
    pub fn buckets(&self, family: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        self.find(&format!("{family}_bucket"), labels)
            .iter()
            .map(|s| {
                let le = &s.labels["le"];
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().expect("le")
                };
                (le, s.value)
            })
            .collect()
    }
}

fn sample(line: &str) -> Sample {
    let (head, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("value of {line:?}"));
    let (name, labels) = match head.split_once('{') {
        None => (head, BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line:?}"));
            (name, labels(body, line))
        }
    };
    assert!(
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
        "name {name:?}"
    );
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

fn labels(mut body: &str, line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    while !body.is_empty() {
        let (key, rest) = body
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label in {line:?}"));
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("escape {other:?} in {line:?}"),
                },
                Some((_, c)) => value.push(c),
                None => panic!("unterminated value in {line:?}"),
            }
        };
        let old = out.insert(key.to_owned(), value);
        assert!(old.is_none(), "label {key} twice in {line:?}");
        body = &rest[end + 1..];
        body = body.strip_prefix(',').unwrap_or(body);
    }
    out
}

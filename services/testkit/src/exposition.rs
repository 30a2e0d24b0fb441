//! A small parser of the Prometheus/OpenMetrics text exposition, enough to
//! check the services' `GET /metrics` numbers against the requests a test
//! sent. Strict where a service could go wrong: a sample line that does not
//! parse, or a body without the final `# EOF`, is an error.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of an exposition, and the `# TYPE` of each family.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
}

impl Exposition {
    /// Parses an OpenMetrics text body (it must end with `# EOF`).
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut out = Exposition::default();
        let mut eof = false;
        for line in text.lines() {
            if eof {
                return Err(format!("line after # EOF: {line:?}"));
            }
            if line == "# EOF" {
                eof = true;
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest
                    .split_once(' ')
                    .ok_or_else(|| format!("bad TYPE line {line:?}"))?;
                out.types.insert(name.to_owned(), kind.to_owned());
            } else if line.starts_with('#') || line.is_empty() {
                continue;
            } else {
                out.samples.push(sample(line)?);
            }
        }
        if !eof {
            return Err("no # EOF at the end".into());
        }
        Ok(out)
    }

    /// The samples named `name` whose labels include every pair of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
        })
    }

    /// The sum of [`matching`](Self::matching) samples' values; `None` if
    /// there are none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = false;
        let total = self.matching(name, labels).fold(0.0, |acc, s| {
            found = true;
            acc + s.value
        });
        found.then_some(total)
    }

    /// The value of the one sample named `name` with no labels.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.matching(name, &[])
            .find(|s| s.labels.is_empty())
            .map(|s| s.value)
    }

    /// How many distinct series (samples) are named `name`.
    pub fn count(&self, name: &str) -> usize {
        self.matching(name, &[]).count()
    }
}

fn sample(line: &str) -> Result<Sample, String> {
    let bad = || format!("bad sample line {line:?}");
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line[open..].find('}').ok_or_else(bad)? + open;
            (
                &line[..open],
                labels(&line[open + 1..close]).ok_or_else(bad)?,
                &line[close + 1..],
            )
        }
        None => {
            let (name, rest) = line.split_once(' ').ok_or_else(bad)?;
            (name, BTreeMap::new(), rest)
        }
    };
    // A timestamp or exemplar may follow the value.
    let value = rest.split_whitespace().next().ok_or_else(bad)?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|_| bad())?,
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(bad());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// `k="v",k2="v2"` (values without escapes: the services' label values are
/// plain names).
fn labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let (value, after) = after.split_once('"')?;
        out.insert(key.trim().to_owned(), value.to_owned());
        rest = after.strip_prefix(',').unwrap_or(after);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_labels_and_types() {
        let text = "# HELP a_total A.\n# TYPE a counter\na_total 3\n\
                    # TYPE h histogram\nh_bucket{le=\"0.5\",route=\"x\"} 1\nh_bucket{le=\"+Inf\",route=\"x\"} 2\n\
                    h_count{route=\"x\"} 2\n# EOF\n";
        let e = Exposition::parse(text).unwrap();
        assert_eq!(e.value("a_total"), Some(3.0));
        assert_eq!(e.types["h"], "histogram");
        assert_eq!(e.sum("h_bucket", &[("route", "x")]), Some(3.0));
        assert_eq!(e.sum("h_count", &[("route", "y")]), None);
        assert_eq!(e.count("h_bucket"), 2);
    }

    #[test]
    fn refuses_a_truncated_body_or_a_bad_line() {
        assert!(Exposition::parse("a 1\n").is_err());
        assert!(Exposition::parse("a{b=\"c\" 1\n# EOF\n").is_err());
        assert!(Exposition::parse("a x\n# EOF\n").is_err());
    }
}

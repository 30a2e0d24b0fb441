//! A drill's report: requests, failures by kind, time to recover, and each
//! check with what it saw; written as `DRILL.json` and `DRILL.md`, plus a
//! `summary.md` table of all drills.

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

impl Check {
    pub fn new(name: &str, passed: bool, detail: String) -> Check {
        Check {
            name: name.to_owned(),
            passed,
            detail,
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub drill: String,
    /// `passed`, `failed` or `skipped: why`.
    pub result: String,
    pub steps: Vec<String>,
    pub requests: u64,
    pub idempotent: u64,
    pub writes: u64,
    pub acked_writes: u64,
    /// POSTs that failed (not asserted: a write is only owed once acknowledged).
    pub failed_writes: u64,
    /// Failures by kind, outside the grace after each disruption.
    pub failures: BTreeMap<String, u64>,
    /// Idempotent failures inside the first health interval after a disruption.
    pub excused: BTreeMap<String, u64>,
    /// When each counted failure started, in ms since the load started.
    pub failure_times: BTreeMap<String, Vec<u64>>,
    /// From the first disruption to the last failed request of any kind.
    pub recover_ms: Option<u64>,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(drill: &str, steps: Vec<String>) -> Report {
        Report {
            drill: drill.to_owned(),
            steps,
            ..Report::default()
        }
    }

    pub fn skipped(drill: &str, why: &str) -> Report {
        Report {
            drill: drill.to_owned(),
            result: why.to_owned(),
            ..Report::default()
        }
    }

    pub fn finish(&mut self) {
        self.result = if self.checks.iter().all(|c| c.passed) {
            "passed".into()
        } else {
            "failed".into()
        };
    }

    pub fn failed(&self) -> bool {
        self.result == "failed"
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("# Drill `{}`: {}\n\n", self.drill, self.result);
        for step in &self.steps {
            s.push_str(&format!("- {step}\n"));
        }
        s.push_str(&format!(
            "\nRequests: {} ({} idempotent, {} writes, {} acknowledged, {} writes failed). \
             Time to recover: {} ms.\n\n",
            self.requests,
            self.idempotent,
            self.writes,
            self.acked_writes,
            self.failed_writes,
            self.recover_ms.unwrap_or(0)
        ));
        let table = |title: &str, m: &BTreeMap<String, u64>| {
            let mut t = format!("{title}: {}\n", if m.is_empty() { "none" } else { "" });
            for (k, n) in m {
                t.push_str(&format!("- {k}: {n}\n"));
            }
            t
        };
        s.push_str(&table("Failures", &self.failures));
        s.push_str(&table("\nExcused (first health interval)", &self.excused));
        s.push_str("\n| check | result | detail |\n|---|---|---|\n");
        for c in &self.checks {
            let ok = if c.passed { "pass" } else { "FAIL" };
            s.push_str(&format!(
                "| {} | {ok} | {} |\n",
                c.name,
                c.detail.replace('|', "/")
            ));
        }
        s
    }

    pub fn write(&self, dir: &Path) -> Result<(), String> {
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let write = |name: String, text: &str| {
            std::fs::write(dir.join(&name), text).map_err(|e| format!("{name}: {e}"))
        };
        write(format!("{}.json", self.drill), &json)?;
        write(format!("{}.md", self.drill), &self.markdown())
    }
}

pub fn write_summary(dir: &Path, reports: &[Report], note: &str) -> Result<(), String> {
    let mut s = String::from(
        "# Scale drills\n\n| drill | result | requests | failures | excused | acknowledged writes | recover (ms) |\n|---|---|---|---|---|---|---|\n",
    );
    for r in reports {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.drill,
            r.result,
            r.requests,
            r.failures.values().sum::<u64>(),
            r.excused.values().sum::<u64>(),
            r.acked_writes,
            r.recover_ms.unwrap_or(0)
        ));
    }
    s.push_str(note);
    std::fs::write(dir.join("summary.md"), s).map_err(|e| format!("summary.md: {e}"))
}

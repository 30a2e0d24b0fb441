//! After a drill: what failed and when, whether every acknowledged write is
//! there (through the proxies and in PostgreSQL), whether the session still
//! works, whether the job ran once in every period, and whether every log
//! entry the live replicas had acknowledged is on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::Settings;
use crate::drills::{Stack, Timeline};
use crate::load::{Failure, Record};
use crate::report::{Check, Report};

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub async fn check(
    stack: &Stack,
    settings: &Settings,
    name: &str,
    t: &Timeline,
    record: &Record,
    grace: Duration,
    writes_too: bool,
) -> Report {
    let mut report = Report::new(name, t.steps.clone());
    // A request in flight when a piece died (begun before, failed after)
    // is the disruption's, as are those begun within the grace.
    // Planned disruptions (no grace) excuse nothing.
    let in_grace = |o: &crate::load::Outcome| {
        !grace.is_zero()
            && t.disruptions
                .iter()
                .any(|d| o.done >= *d && o.at < *d + grace)
    };
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    let mut excused: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed_idempotent = 0u64;
    let mut failed_writes = 0u64;
    let mut logged_out = 0u64;
    let mut last_failure = None;
    for o in &record.outcomes {
        report.requests += 1;
        if o.idempotent {
            report.idempotent += 1;
        } else {
            report.writes += 1;
        }
        let Err(f) = &o.result else { continue };
        last_failure = Some(o.at);
        let kind = format!(
            "{} {}",
            if o.idempotent { "GET" } else { "POST" },
            f.label()
        );
        if *f == Failure::LoggedOut {
            logged_out += 1;
        }
        if o.idempotent && in_grace(o) {
            *excused.entry(kind).or_default() += 1;
            continue;
        }
        let since = o.at.saturating_duration_since(t.origin).as_millis();
        report
            .failure_times
            .entry(kind.clone())
            .or_default()
            .push(u64::try_from(since).unwrap_or(u64::MAX));
        *counted.entry(kind).or_default() += 1;
        if o.idempotent {
            failed_idempotent += 1;
        } else {
            failed_writes += 1;
        }
    }
    report.failures = counted;
    report.excused = excused;
    report.failed_writes = failed_writes;
    report.recover_ms = match (t.disruptions.first(), last_failure) {
        (Some(first), Some(last)) if last >= *first => {
            Some(u64::try_from((last - *first).as_millis()).unwrap_or(u64::MAX))
        }
        _ => Some(0),
    };
    report.checks.push(Check::new(
        "zero failed idempotent requests after the first health interval",
        failed_idempotent == 0,
        format!(
            "{failed_idempotent} failed (grace {} ms after each disruption)",
            grace.as_millis()
        ),
    ));
    if writes_too {
        report.checks.push(Check::new(
            "zero failed writes (a planned restart or upgrade)",
            failed_writes == 0,
            format!("{failed_writes} POSTs failed"),
        ));
    }
    for e in &t.errors {
        report
            .checks
            .push(Check::new("the drill's steps ran", false, e.clone()));
    }

    // Acknowledged writes: readable through the proxies, and in PostgreSQL.
    report.acked_writes = record.writes.len() as u64;
    let mut missing = Vec::new();
    for w in &record.writes {
        let ok = match stack
            .targets
            .send("GET", &format!("/posts/{}", w.id), "", "")
            .await
        {
            Ok(reply) => reply.status == 200 && reply.body.contains(&w.title),
            Err(_) => false,
        };
        if !ok {
            missing.push(w.id);
        }
    }
    let in_db = match &stack.cluster.postgres {
        Some(pg) => pg
            .query("SELECT id FROM posts")
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r.first()?.parse::<i64>().ok())
                    .collect::<BTreeSet<_>>()
            })
            .map_err(|e| e.to_string()),
        None => Err("no PostgreSQL".into()),
    };
    let lost_in_db: Vec<i64> = match &in_db {
        Ok(ids) => record
            .writes
            .iter()
            .map(|w| w.id)
            .filter(|id| !ids.contains(id))
            .collect(),
        Err(_) => Vec::new(),
    };
    report.checks.push(Check::new(
        "no acknowledged write lost",
        missing.is_empty() && lost_in_db.is_empty() && in_db.is_ok(),
        format!(
            "{} acknowledged; not readable through the proxies: {missing:?}; not in PostgreSQL: {}",
            record.writes.len(),
            match &in_db {
                Ok(_) => format!("{lost_in_db:?}"),
                Err(e) => format!("cannot tell ({e})"),
            }
        ),
    ));

    // The session: never 401, and still good now.
    let still = stack
        .targets
        .send(
            "POST",
            "/posts",
            &format!(
                "cookie: {}\r\ncontent-type: application/json\r\n",
                stack.cookie
            ),
            r#"{"title":"after the drill","body":"the session still works"}"#,
        )
        .await;
    let still_ok = matches!(&still, Ok(r) if r.status == 201);
    report.checks.push(Check::new(
        "the session stays logged in",
        logged_out == 0 && still_ok,
        format!(
            "{logged_out} answers 401 during the drill; a write after it: {}",
            match &still {
                Ok(r) => r.status.to_string(),
                Err(f) => f.label(),
            }
        ),
    ));

    report.checks.push(job_check(stack, settings, t));
    report.checks.push(log_check(stack).await);
    report.finish();
    report
}

/// Every whole period inside the drill has exactly one `job_runs` row.
fn job_check(stack: &Stack, settings: &Settings, t: &Timeline) -> Check {
    const NAME: &str = "the scheduled job ran exactly once per period";
    let Some(pg) = &stack.cluster.postgres else {
        return Check::new(NAME, false, "no PostgreSQL to read job_runs from".into());
    };
    let interval = i64::try_from(settings.job_interval.as_millis())
        .unwrap_or(1)
        .max(1);
    // Whole periods only, and not the last one: it may not have ticked yet.
    let (first, last) = (t.start_ms / interval + 1, t.end_ms / interval - 2);
    let sql = format!(
        "SELECT period, count(*), string_agg(instance, ',') FROM job_runs \
         WHERE job = 'publish' AND period BETWEEN {first} AND {last} GROUP BY period ORDER BY period"
    );
    match pg.query(&sql) {
        Ok(rows) => {
            let mut seen = BTreeMap::new();
            for r in &rows {
                if let (Some(p), Some(n)) = (r.first(), r.get(1))
                    && let (Ok(p), Ok(n)) = (p.parse::<i64>(), n.parse::<i64>())
                {
                    seen.insert(p, n);
                }
            }
            let missing: Vec<i64> = (first..=last).filter(|p| !seen.contains_key(p)).collect();
            let twice: Vec<i64> = seen
                .iter()
                .filter(|(_, n)| **n > 1)
                .map(|(p, _)| *p)
                .collect();
            let instances: BTreeSet<&str> = rows
                .iter()
                .filter_map(|r| r.get(2))
                .flat_map(|s| s.split(','))
                .collect();
            Check::new(
                NAME,
                missing.is_empty() && twice.is_empty() && last >= first,
                format!(
                    "periods {first}..={last} ({} ms each): {} ran, missing {missing:?}, more than once {twice:?}; ran on {instances:?}",
                    interval,
                    seen.len()
                ),
            )
        }
        Err(e) => Check::new(NAME, false, e.to_string()),
    }
}

/// For each live app process, the log entries it says the log service
/// acknowledged (`/stats` `logs.shipped`) are all in the log files.
async fn log_check(stack: &Stack) -> Check {
    const NAME: &str = "every acknowledged log entry is on disk";
    let mut shipped: BTreeMap<String, u64> = BTreeMap::new();
    for (i, addr) in stack.cluster.apps.iter().enumerate() {
        let Some(instance) = stack
            .cluster
            .child(&format!("app-{}", i + 1))
            .and_then(|c| c.instance())
        else {
            continue;
        };
        match crate::load::exchange(*addr, "GET", "/stats", "", "").await {
            Ok(r) if r.status == 200 => {
                let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
                let n = v["logs"]["shipped"].as_u64().unwrap_or(0);
                shipped.insert(instance, n);
            }
            _ => return Check::new(NAME, false, format!("no /stats from {instance}")),
        }
    }
    // An acknowledged entry is in the write-ahead file at once and in the
    // output once the reorder window (2 s) has passed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let on_disk = match count_log_lines(&stack.cluster.plan.data.join("log")) {
        Ok(c) => c,
        Err(e) => return Check::new(NAME, false, e),
    };
    let short: Vec<String> = shipped
        .iter()
        .filter(|(inst, n)| on_disk.get(*inst).copied().unwrap_or(0) < **n)
        .map(|(inst, n)| {
            format!(
                "{inst}: {n} acknowledged, {} on disk",
                on_disk.get(inst).copied().unwrap_or(0)
            )
        })
        .collect();
    Check::new(
        NAME,
        short.is_empty() && !shipped.is_empty(),
        if short.is_empty() {
            format!("acknowledged per live process {shipped:?}; all on disk")
        } else {
            short.join("; ")
        },
    )
}

/// Lines per `source` in the log service's output files
/// (`DATE TIME;LEVEL;SOURCE;MESSAGE`), its write-ahead files left out.
fn count_log_lines(dir: &std::path::Path) -> Result<BTreeMap<String, u64>, String> {
    let mut counts = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !path.is_file() || name.contains("wal") || name.contains("checkpoint") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines() {
            if let Some(source) = line.split(';').nth(2) {
                *counts.entry(source.to_owned()).or_default() += 1;
            }
        }
    }
    Ok(counts)
}

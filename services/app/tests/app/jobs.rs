//! The publishing job: once per period across replicas, surviving a killed
//! replica and a dead lease holder.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use sluice_app::db::{Db, now_ms};
use sluice_app::lease::{Lease, SqlLease};
use sluice_app::{DatabaseConfig, job};

use crate::support::{self, eventually, get_json};

/// `(period, instance, ran_at)` of every recorded run.
async fn runs(db: &Db) -> Vec<(i64, String, i64)> {
    let Db::Sqlite(pool) = db else {
        unreachable!("sqlite in these tests")
    };
    sqlx::query_as("SELECT period, instance, ran_at FROM job_runs WHERE job = $1 ORDER BY period")
        .bind(job::JOB)
        .fetch_all(pool)
        .await
        .expect("read job_runs")
}

async fn open(path: &Path) -> Db {
    Db::connect(&DatabaseConfig::Sqlite(path.to_owned()))
        .await
        .expect("open db")
}

async fn job_runs_of(url: &url::Url) -> u64 {
    support::stats(&support::client(url)).await["job_runs"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_job_runs_once_per_period_with_three_replicas_and_survives_a_killed_holder() {
    let dir = tempfile::tempdir().unwrap();
    let file = support::sqlite_file(&dir);
    let config = support::app_config(&file);
    let mut replicas = Vec::new();
    for i in 0..3 {
        let mut c = config.clone();
        c.instance_id = Some(format!("r{i}"));
        replicas.push(support::app(c).await);
    }
    let db = open(&file).await;
    let client = support::client(&replicas[0].url());
    let cookie = support::login(&client, "admin", "sluice").await;
    let at = time::OffsetDateTime::now_utc() + Duration::from_millis(600);
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let post = support::create_post(
        &client,
        &cookie,
        json!({"title": "later", "body": "b", "publish_at": at}),
    )
    .await;
    assert_eq!(post["published"], false);
    let path = format!("/posts/{}", post["id"]);
    assert_eq!(
        get_json(&client, &path).await.status,
        404,
        "not before publish_at"
    );
    eventually("the job publishes the post", || async {
        (get_json(&client, &path).await.status == 200).then_some(())
    })
    .await;
    eventually("ten runs", || async {
        (runs(&db).await.len() >= 10).then_some(())
    })
    .await;

    // Exactly once per period: the runs the replicas counted are the rows
    // (one per period by primary key), none double-counted, none missing.
    let before: Vec<_> = runs(&db).await;
    let mut counted = 0;
    for r in &replicas {
        counted += job_runs_of(&r.url()).await;
    }
    let after = runs(&db).await;
    assert!(
        (before.len() as u64..=after.len() as u64).contains(&counted),
        "replicas ran {counted} times for {}..{} recorded periods",
        before.len(),
        after.len()
    );

    // Kill the replica that ran the latest period; the others carry on.
    let (_, holder, _) = after.last().cloned().unwrap();
    let index: usize = holder.trim_start_matches('r').parse().unwrap();
    let victim = replicas.remove(index);
    victim.kill().await;
    let killed_at = now_ms();
    let rows = eventually("five runs after the kill", || async {
        let rows = runs(&db).await;
        (rows.iter().filter(|(_, _, ran)| *ran > killed_at).count() >= 5).then_some(rows)
    })
    .await;
    let late: Vec<_> = rows.iter().filter(|(_, _, ran)| *ran > killed_at).collect();
    assert!(
        late.iter().all(|(_, who, _)| *who != holder),
        "the killed replica ran: {late:?}"
    );
    let mut periods: Vec<i64> = rows.iter().map(|(p, _, _)| *p).collect();
    periods.dedup();
    assert_eq!(periods.len(), rows.len(), "a period ran twice");
    for r in replicas {
        r.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lease_expires_and_the_job_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let file = support::sqlite_file(&dir);
    let db = open(&file).await;
    // A holder that took the lease and died without releasing it.
    let lease = SqlLease(db.clone());
    let ttl = Duration::from_millis(1500);
    // A lower bound of the lease's expiry (taken before the lease).
    let expires = now_ms() + 1500;
    assert!(lease.try_acquire(job::JOB, "dead", ttl).await.unwrap());
    assert!(
        !lease.try_acquire(job::JOB, "other", ttl).await.unwrap(),
        "held"
    );

    let a = support::app(support::app_config(&file)).await;
    let b = support::app(support::app_config(&file)).await;
    let rows = eventually("a run after expiry", || async {
        let rows = runs(&db).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert!(
        rows.iter().all(|(_, _, ran)| *ran >= expires),
        "ran while the dead holder's lease was live: {rows:?} (expiry {expires})"
    );
    // After a run the lease was released: anyone may take it now.
    a.stop().await;
    b.stop().await;
    assert!(lease.try_acquire(job::JOB, "later", ttl).await.unwrap());
}

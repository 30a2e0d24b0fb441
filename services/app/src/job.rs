//! The scheduled job: publish the posts whose `publish_at` has come, once
//! per period, on exactly one replica.
//!
//! Every replica ticks once per `--job-interval`. A tick belongs to the
//! wall-clock period `now / interval` (the clock all replicas share). On a
//! tick a replica
//!
//! 1. tries the lease ([`crate::lease`]); without it, it skips the tick;
//! 2. in one transaction, claims the period by inserting its `job_runs` row
//!    (primary key `(job, period)`: a second claim of the same period finds
//!    the row and does nothing), publishes the due posts and records how many;
//! 3. releases the lease, then invalidates the published posts' cache keys.
//!
//! The lease keeps two replicas from running the job at the same time; the
//! `job_runs` row makes a period's run happen once even if the lease was
//! released early in the period and taken again by a later ticker. If the
//! holder dies mid-run, its transaction rolls back and the lease expires
//! after `--lease-ttl`; the next replica to tick after that runs the period
//! then current.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::App;
use crate::db::{millis, now_ms, on_pool};
use crate::lease::Lease;
use crate::sessions::StoreError;
use crate::stats::Stats;

/// Name of the job's lease and its `job_runs.job`.
pub const JOB: &str = "publish";

/// What one tick did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Another replica holds the lease.
    NotHolder,
    /// This period already ran (on this or another replica).
    AlreadyRan { period: i64 },
    /// Ran the period and published these posts.
    Ran { period: i64, published: Vec<i64> },
}

/// Ticks until `stop` turns true.
pub async fn run_loop(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(app.config.job_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        match run_once(&app).await {
            Ok(Outcome::Ran { period, published }) => {
                tracing::info!(period, published = published.len(), "publishing job ran");
                app.logs.info(format!(
                    "job {JOB} ran period {period}, published {published:?}"
                ));
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "publishing job failed"
                );
            }
        }
    }
}

/// One tick: lease, claim the period, publish, release, invalidate.
pub async fn run_once(app: &App) -> Result<Outcome, StoreError> {
    let interval = millis(app.config.job_interval).max(1);
    let period = now_ms() / interval;
    if !app
        .leases
        .try_acquire(JOB, &app.instance, app.config.lease_ttl)
        .await?
    {
        return Ok(Outcome::NotHolder);
    }
    let result = claim_and_publish(app, period).await;
    if let Err(error) = app.leases.release(JOB, &app.instance).await {
        // It expires on its own.
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            "lease release failed"
        );
    }
    match result? {
        None => Ok(Outcome::AlreadyRan { period }),
        Some(published) => {
            Stats::bump(&app.stats.job_runs);
            Stats::add(&app.stats.job_published, published.len() as u64);
            if !published.is_empty() {
                app.pages.invalidate(&published).await;
            }
            Ok(Outcome::Ran { period, published })
        }
    }
}

/// `None` if the period was already claimed.
async fn claim_and_publish(app: &App, period: i64) -> Result<Option<Vec<i64>>, StoreError> {
    let now = now_ms();
    let claim = "INSERT INTO job_runs (job, period, instance, ran_at, published) \
                 VALUES ($1, $2, $3, $4, 0) ON CONFLICT (job, period) DO NOTHING";
    let publish = "UPDATE posts SET published = 1, updated_at = $1 \
                   WHERE published = 0 AND publish_at <= $1 RETURNING id";
    let record = "UPDATE job_runs SET published = $1 WHERE job = $2 AND period = $3";
    let ids = on_pool!(&app.db, p => {
        let mut tx = p.begin().await?;
        let claimed = sqlx::query(claim)
            .bind(JOB)
            .bind(period)
            .bind(&app.instance)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            None
        } else {
            let ids: Vec<i64> = sqlx::query_scalar(publish).bind(now).fetch_all(&mut *tx).await?;
            sqlx::query(record)
                .bind(i64::try_from(ids.len()).unwrap_or(i64::MAX))
                .bind(JOB)
                .bind(period)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Some(ids)
        }
    });
    Ok(ids)
}

//! The PostgreSQL path against a real server: concurrent migrations,
//! posts, sessions across replicas, and the job once per period.

use serde_json::json;
use sluice_app::DatabaseConfig;
use sluice_app::db::Db;

use crate::postgres::Postgres;
use crate::support::{self, eventually, get_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_on_postgresql_share_posts_sessions_and_the_job() {
    let pg = Postgres::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.database = DatabaseConfig::Postgres(pg.url());
    // Two replicas migrating the empty database at the same time.
    let (a, b) = tokio::join!(support::app(config.clone()), support::app(config.clone()));
    let (ca, cb) = (support::client(&a.url()), support::client(&b.url()));
    assert_eq!(support::stats(&ca).await["database"], "postgres");

    let cookie = support::login(&ca, "admin", "sluice").await;
    let post = support::create_post(&cb, &cookie, json!({"title": "pg", "body": "b"})).await;
    let path = format!("/posts/{}", post["id"]);
    assert_eq!(support::json(&get_json(&ca, &path).await)["title"], "pg");
    let reply = support::request(
        &ca,
        http::Method::PUT,
        &path,
        &[("cookie", cookie.clone())],
        br#"{"title":"pg2"}"#,
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(support::json(&get_json(&cb, &path).await)["title"], "pg2");

    let db = Db::connect(&config.database).await.unwrap();
    let Db::Postgres(pool) = &db else {
        unreachable!()
    };
    let runs = eventually("five job runs", || async {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT period, instance FROM job_runs ORDER BY period")
                .fetch_all(pool)
                .await
                .unwrap();
        (rows.len() >= 5).then_some(rows)
    })
    .await;
    let mut periods: Vec<i64> = runs.iter().map(|(p, _)| *p).collect();
    periods.dedup();
    assert_eq!(periods.len(), runs.len());
    a.stop().await;
    b.stop().await;
    db.close().await;
}

/// Three replicas with `--seed-posts` starting together on an empty
/// PostgreSQL database insert one set of welcome posts, and a post created
/// afterwards gets the next id (the sequence was not bypassed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_seed_the_welcome_posts_once_on_postgresql() {
    let pg = Postgres::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::app_config(&support::sqlite_file(&dir));
    config.database = DatabaseConfig::Postgres(pg.url());
    config.seed_posts = true;
    let (a, b, c) = tokio::join!(
        support::app(config.clone()),
        support::app(config.clone()),
        support::app(config.clone())
    );
    let ca = support::client(&a.url());
    let welcome = sluice_app::seed::WELCOME_POSTS;
    let first = support::json(&get_json(&ca, "/posts/1").await);
    assert_eq!(first["title"], welcome[0].0);
    let cookie = support::login(&ca, "admin", "sluice").await;
    let post = support::create_post(&ca, &cookie, json!({"title": "next", "body": "b"})).await;
    assert_eq!(post["id"], welcome.len() + 1);
    let db = Db::connect(&config.database).await.unwrap();
    let Db::Postgres(pool) = &db else {
        unreachable!()
    };
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM posts")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(n, welcome.len() as i64 + 1);
    for app in [a, b, c] {
        app.stop().await;
    }
    db.close().await;
}

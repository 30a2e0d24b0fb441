//! The welcome posts a new blog starts with (`--seed-posts`, on in the
//! demo), so that a newcomer sees content at once and `GET /posts/1`
//! answers 200.
//!
//! Posts are seeded only into an empty `posts` table, and exactly once
//! however many replicas start together: the count and the inserts run in
//! one write transaction (`BEGIN IMMEDIATE` on SQLite, the migration's
//! advisory lock on PostgreSQL), so a second replica waits and then sees
//! the first one's posts. A blog that has posts, or had them and deleted
//! them all, is never touched again: seeding is recorded nowhere but in the
//! rows themselves, so the rule is "the table is empty".

use crate::db::{Db, MIGRATION_LOCK, now_ms};

/// Title and body of each welcome post, in id order.
pub const WELCOME_POSTS: &[(&str, &str)] = &[
    (
        "Welcome to the Sluice demo blog",
        "This blog runs behind Sluice, a reverse proxy and load balancer. \
         Every page you read went through the proxy to one of several app \
         replicas, which share their posts and sessions through the database \
         and cache rendered posts in the cache service.",
    ),
    (
        "What happens on a request",
        "The proxy picks a replica (round robin by default), forwards the \
         request over a pooled keep-alive connection and streams the answer \
         back. Replicas register themselves on the proxy's admin port, send \
         heartbeats, and are drained before they stop, so a restart fails \
         no request.",
    ),
    (
        "Try it",
        "Log in as the seeded author (POST /login), then POST /posts with a \
         JSON title and body. Read it back with GET /posts/{id}: the second \
         read comes from the cache service. The proxy's status page is on its \
         admin port at /status.",
    ),
];

/// In the open write transaction `$tx`: counts the posts and, if there are
/// none, inserts [`WELCOME_POSTS`] and commits. Evaluates to the count
/// inserted. A macro because the two databases' transactions are different
/// types.
macro_rules! insert_unless_any {
    ($tx:ident, $author:expr) => {{
        let mut $tx = $tx;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM posts")
            .fetch_one(&mut *$tx)
            .await?;
        if n > 0 {
            return Ok(0);
        }
        for (title, body) in WELCOME_POSTS {
            sqlx::query(
                "INSERT INTO posts (title, body, author, publish_at, published, created_at, updated_at) \
                 VALUES ($1, $2, $3, NULL, 1, $4, $4)",
            )
            .bind(title)
            .bind(body)
            .bind($author)
            .bind(now_ms())
            .execute(&mut *$tx)
            .await?;
        }
        $tx.commit().await?;
        Ok(WELCOME_POSTS.len() as u64)
    }};
}

/// Inserts [`WELCOME_POSTS`] by `author` if the blog has no posts at all.
/// Returns how many were inserted (0 when there were posts already).
pub async fn seed_posts(db: &Db, author: &str) -> Result<u64, sqlx::Error> {
    match db {
        Db::Sqlite(p) => {
            // IMMEDIATE takes the write lock before the count: a second
            // replica's transaction waits (busy_timeout), then counts 3.
            let tx = p.begin_with("BEGIN IMMEDIATE").await?;
            insert_unless_any!(tx, author)
        }
        Db::Postgres(p) => {
            let mut tx = p.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(MIGRATION_LOCK)
                .execute(&mut *tx)
                .await?;
            insert_unless_any!(tx, author)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseConfig;
    use crate::posts;

    async fn sqlite(dir: &tempfile::TempDir) -> Db {
        let path = dir.path().join("blog.db");
        Db::connect(&DatabaseConfig::Sqlite(path)).await.unwrap()
    }

    #[tokio::test]
    async fn an_empty_blog_gets_the_welcome_posts_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir).await;
        assert_eq!(seed_posts(&db, "admin").await.unwrap(), 3);
        assert_eq!(seed_posts(&db, "admin").await.unwrap(), 0);
        let first = posts::get(&db, 1).await.unwrap().expect("post 1");
        assert_eq!(first.title, WELCOME_POSTS[0].0);
        assert_eq!(first.author, "admin");
        assert!(first.published);
        assert_eq!(posts::list_published(&db, 10).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn replicas_seeding_together_insert_one_set() {
        let dir = tempfile::tempdir().unwrap();
        let dbs = [sqlite(&dir).await, sqlite(&dir).await, sqlite(&dir).await];
        let (a, b, c) = tokio::join!(
            seed_posts(&dbs[0], "admin"),
            seed_posts(&dbs[1], "admin"),
            seed_posts(&dbs[2], "admin"),
        );
        assert_eq!(a.unwrap() + b.unwrap() + c.unwrap(), 3);
        assert_eq!(posts::list_published(&dbs[0], 10).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_blog_with_posts_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite(&dir).await;
        let new = posts::NewPost {
            title: "mine".into(),
            body: "b".into(),
            publish_at: None,
        };
        posts::create(&db, "someone", &new, None).await.unwrap();
        assert_eq!(seed_posts(&db, "admin").await.unwrap(), 0);
        assert_eq!(posts::list_published(&db, 10).await.unwrap().len(), 1);
    }
}

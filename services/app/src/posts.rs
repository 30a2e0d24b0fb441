//! Posts: the model, its validation, and its SQL. Nothing here knows about
//! HTTP or the cache (that is [`crate::pages`]).

use serde::{Deserialize, Serialize};
use sqlx::Row;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::db::{Db, now_ms, on_pool};
use crate::error::Invalid;

/// Longest accepted title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest accepted body, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

const COLUMNS: &str = "id, title, body, author, publish_at, published, created_at, updated_at";

/// A post as stored, and as cached (JSON) and served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    pub id: i64,
    pub title: String,
    pub body: String,
    pub author: String,
    /// Unix milliseconds; `None`: published at creation.
    pub publish_at: Option<i64>,
    pub published: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `POST /posts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPost {
    pub title: String,
    pub body: String,
    /// RFC 3339, e.g. `2030-01-01T00:00:00Z`.
    pub publish_at: Option<String>,
}

/// `PUT /posts/{id}` body: the fields to change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostUpdate {
    pub title: Option<String>,
    pub body: Option<String>,
    pub publish_at: Option<String>,
}

fn check_title(title: &str) -> Result<(), Invalid> {
    if title.trim().is_empty() {
        return Err(Invalid::EmptyTitle);
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(Invalid::TitleTooLong);
    }
    Ok(())
}

fn check_body(body: &str) -> Result<(), Invalid> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Invalid::BodyTooLong);
    }
    Ok(())
}

/// RFC 3339 → Unix milliseconds.
pub fn parse_time(s: &str) -> Result<i64, Invalid> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| Invalid::PublishAt)?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| Invalid::PublishAt)
}

/// Unix milliseconds → RFC 3339 (for rendering).
pub fn format_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

impl NewPost {
    pub fn validate(&self) -> Result<Option<i64>, Invalid> {
        check_title(&self.title)?;
        check_body(&self.body)?;
        self.publish_at.as_deref().map(parse_time).transpose()
    }
}

impl PostUpdate {
    pub fn validate(&self) -> Result<Option<i64>, Invalid> {
        if self.title.is_none() && self.body.is_none() && self.publish_at.is_none() {
            return Err(Invalid::NothingToUpdate);
        }
        if let Some(t) = &self.title {
            check_title(t)?;
        }
        if let Some(b) = &self.body {
            check_body(b)?;
        }
        self.publish_at.as_deref().map(parse_time).transpose()
    }
}

fn from_row<R>(row: &R) -> Result<Post, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Post {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        author: row.try_get("author")?,
        publish_at: row.try_get("publish_at")?,
        published: row.try_get::<i64, _>("published")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Published posts, newest first.
pub async fn list_published(db: &Db, limit: i64) -> Result<Vec<Post>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM posts WHERE published = 1 ORDER BY id DESC LIMIT $1");
    on_pool!(db, p => {
        let rows = sqlx::query(&sql).bind(limit).fetch_all(p).await?;
        rows.iter().map(from_row).collect()
    })
}

/// One post, published or not.
pub async fn get(db: &Db, id: i64) -> Result<Option<Post>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM posts WHERE id = $1");
    on_pool!(db, p => {
        let row = sqlx::query(&sql).bind(id).fetch_optional(p).await?;
        row.as_ref().map(from_row).transpose()
    })
}

/// Inserts a post; published now unless `publish_at` is in the future.
pub async fn create(
    db: &Db,
    author: &str,
    new: &NewPost,
    publish_at: Option<i64>,
) -> Result<Post, sqlx::Error> {
    let now = now_ms();
    let published = i64::from(publish_at.is_none_or(|at| at <= now));
    let sql = format!(
        "INSERT INTO posts (title, body, author, publish_at, published, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {COLUMNS}"
    );
    on_pool!(db, p => {
        let row = sqlx::query(&sql)
            .bind(&new.title)
            .bind(&new.body)
            .bind(author)
            .bind(publish_at)
            .bind(published)
            .bind(now)
            .fetch_one(p)
            .await?;
        from_row(&row)
    })
}

/// Applies `update`; `None` if there is no such post. A new `publish_at`
/// re-evaluates `published` the same way as [`create`].
pub async fn update(
    db: &Db,
    id: i64,
    update: &PostUpdate,
    publish_at: Option<i64>,
) -> Result<Option<Post>, sqlx::Error> {
    let now = now_ms();
    let published = publish_at.map(|at| i64::from(at <= now));
    let sql = format!(
        "UPDATE posts SET title = COALESCE($2, title), body = COALESCE($3, body), \
         publish_at = COALESCE($4, publish_at), published = COALESCE($5, published), updated_at = $6 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    on_pool!(db, p => {
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(update.title.as_deref())
            .bind(update.body.as_deref())
            .bind(publish_at)
            .bind(published)
            .bind(now)
            .fetch_optional(p)
            .await?;
        row.as_ref().map(from_row).transpose()
    })
}

//! Reads through the cache service, writes' invalidation, and rendering.
//!
//! The cache key is the request path (`/posts`, `/posts/{id}`); the cached
//! value is the JSON of the data, not the rendered page, so one entry serves
//! both the HTML and the JSON representation and one delete invalidates both.
//!
//! Consistency: a write commits to the database, then deletes the affected
//! keys, and only then answers. A read that starts after that answer misses
//! the cache and reads the new row, on any replica. (A read that *started*
//! before the write and fills the cache after the delete can still put the
//! old value back until its `max-age`: the cache has no compare-and-set; keep
//! `--cache-max-age` short where that matters.)
//!
//! The cache is an optimisation: any failure to reach it is counted and the
//! read goes to the database instead.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::client::{Client, ClientError};
use crate::db::Db;
use crate::posts::{self, Post, format_time};
use crate::stats::Stats;

/// Posts listed by `GET /posts`.
pub const LIST_LIMIT: i64 = 50;
/// Attempts per key when invalidating.
const INVALIDATE_ATTEMPTS: u32 = 3;

/// Where a read was answered from (sent as `X-Cache`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Hit,
    Miss,
    /// No cache configured, or the cache failed.
    Bypass,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Hit => "hit",
            Source::Miss => "miss",
            Source::Bypass => "bypass",
        }
    }
}

/// The cache service, as the app uses it.
pub struct CacheClient {
    client: Client,
    max_age_secs: u64,
}

impl CacheClient {
    pub fn new(
        base: &url::Url,
        timeout: Duration,
        max_age: Duration,
        tls: Option<&sluice_service_common::ClientTls>,
    ) -> CacheClient {
        CacheClient {
            client: Client::new(base, timeout, tls),
            // The cache's unit is whole seconds; round up so a short max-age
            // still caches.
            max_age_secs: max_age
                .as_millis()
                .div_ceil(1000)
                .try_into()
                .unwrap_or(u64::MAX),
        }
    }

    fn uri(key: &str) -> String {
        format!("/?key={}", utf8_percent_encode(key, NON_ALPHANUMERIC))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, ClientError> {
        let reply = self
            .client
            .send(Method::GET, &Self::uri(key), &[], Bytes::new())
            .await?;
        Ok((reply.status == StatusCode::OK).then_some(reply.body))
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<bool, ClientError> {
        let headers = [
            (
                http::header::CACHE_CONTROL,
                HeaderValue::from_str(&format!("max-age={}", self.max_age_secs))
                    .unwrap_or(HeaderValue::from_static("max-age=1")),
            ),
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ];
        let reply = self
            .client
            .send(Method::POST, &Self::uri(key), &headers, value)
            .await?;
        Ok(reply.status.is_success())
    }

    /// Deleted or absent: both fine.
    async fn delete(&self, key: &str) -> Result<bool, ClientError> {
        let reply = self
            .client
            .send(Method::DELETE, &Self::uri(key), &[], Bytes::new())
            .await?;
        Ok(reply.status.is_success() || reply.status == StatusCode::NOT_FOUND)
    }

    /// The cache answers its `/ready`.
    pub async fn ready(&self) -> bool {
        let no_headers: [(HeaderName, HeaderValue); 0] = [];
        matches!(
            self.client.send(Method::GET, "/ready", &no_headers, Bytes::new()).await,
            Ok(r) if r.status.is_success()
        )
    }
}

pub struct Pages {
    db: Db,
    cache: Option<CacheClient>,
    stats: Arc<Stats>,
}

pub fn post_key(id: i64) -> String {
    format!("/posts/{id}")
}

pub const LIST_KEY: &str = "/posts";

impl Pages {
    pub fn new(db: Db, cache: Option<CacheClient>, stats: Arc<Stats>) -> Pages {
        Pages { db, cache, stats }
    }

    pub fn cache(&self) -> Option<&CacheClient> {
        self.cache.as_ref()
    }

    /// A published post, through the cache. Unpublished and unknown posts
    /// are `None` and are not cached.
    pub async fn post(&self, id: i64) -> Result<(Option<Post>, Source), sqlx::Error> {
        let key = post_key(id);
        self.cached(&key, || async {
            Ok(posts::get(&self.db, id).await?.filter(|p| p.published))
        })
        .await
    }

    /// The published posts, newest first, through the cache.
    pub async fn list(&self) -> Result<(Vec<Post>, Source), sqlx::Error> {
        let (list, source) = self
            .cached(LIST_KEY, || async {
                Ok(Some(posts::list_published(&self.db, LIST_LIMIT).await?))
            })
            .await?;
        Ok((list.unwrap_or_default(), source))
    }

    /// Cache-through read of `key`; `load` reads the database on a miss.
    async fn cached<T, F, Fut>(
        &self,
        key: &str,
        load: F,
    ) -> Result<(Option<T>, Source), sqlx::Error>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, sqlx::Error>>,
    {
        let Some(cache) = &self.cache else {
            return Ok((load().await?, Source::Bypass));
        };
        let mut source = Source::Miss;
        match cache.get(key).await {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(value) => {
                    Stats::bump(&self.stats.cache_hits);
                    return Ok((Some(value), Source::Hit));
                }
                // Not ours (or an old shape): read through and overwrite.
                Err(error) => tracing::warn!(key, %error, "undecodable cache entry"),
            },
            Ok(None) => {}
            Err(error) => {
                Stats::bump(&self.stats.cache_errors);
                tracing::debug!(
                    key,
                    error = &error as &dyn std::error::Error,
                    "cache read failed"
                );
                source = Source::Bypass;
            }
        }
        let value = load().await?;
        if source == Source::Miss {
            Stats::bump(&self.stats.cache_misses);
            if let Some(v) = &value
                && let Ok(json) = serde_json::to_vec(v)
                && let Err(error) = cache.put(key, Bytes::from(json)).await
            {
                Stats::bump(&self.stats.cache_errors);
                tracing::debug!(
                    key,
                    error = &error as &dyn std::error::Error,
                    "cache fill failed"
                );
            }
        }
        Ok((value, source))
    }

    /// Deletes the cached copies of these posts and of the list. Called
    /// after the database commit and before the write is answered.
    pub async fn invalidate(&self, ids: &[i64]) {
        let Some(cache) = &self.cache else { return };
        let keys = ids
            .iter()
            .map(|id| post_key(*id))
            .chain([LIST_KEY.to_owned()]);
        for key in keys {
            let mut done = false;
            for _ in 0..INVALIDATE_ATTEMPTS {
                if let Ok(true) = cache.delete(&key).await {
                    done = true;
                    break;
                }
            }
            if !done {
                Stats::bump(&self.stats.invalidation_failures);
                tracing::warn!(
                    key,
                    "cache invalidation failed; entry may be stale until max-age"
                );
            }
        }
    }
}

/// Minimal HTML escaping for text content and attribute values.
pub fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn page(title: &str, content: impl FnOnce(&mut String)) -> String {
    let mut out = String::from("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>");
    escape(title, &mut out);
    out.push_str("</title></head>\n<body>\n");
    content(&mut out);
    out.push_str("</body></html>\n");
    out
}

pub fn post_html(post: &Post) -> String {
    page(&post.title, |out| {
        out.push_str("<article>\n<h1>");
        escape(&post.title, out);
        out.push_str("</h1>\n<p class=\"meta\">by ");
        escape(&post.author, out);
        let _ = write!(
            out,
            " · {}</p>\n<div class=\"body\">",
            format_time(post.updated_at)
        );
        escape(&post.body, out);
        out.push_str("</div>\n</article>\n<p><a href=\"/posts\">all posts</a></p>\n");
    })
}

pub fn list_html(list: &[Post]) -> String {
    page("Posts", |out| {
        out.push_str("<h1>Posts</h1>\n<ul>\n");
        for post in list {
            let _ = write!(out, "<li><a href=\"/posts/{}\">", post.id);
            escape(&post.title, out);
            out.push_str("</a></li>\n");
        }
        out.push_str("</ul>\n");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        let post = Post {
            id: 1,
            title: "<script>".into(),
            body: "a & b".into(),
            author: "x\"y".into(),
            publish_at: None,
            published: true,
            created_at: 0,
            updated_at: 0,
        };
        let html = post_html(&post);
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains("a &amp; b"));
        assert!(list_html(&[post]).contains("href=\"/posts/1\""));
    }
}

//! Errors of the request path, and the one place they become a status
//! ([`ApiError::status`], an exhaustive match: a new variant does not
//! compile until it has a status).
//!
//! Client mistakes are small `Copy` enums ([`Invalid`]) with a fixed
//! reason; only the rare server-side failures carry a boxed-free source
//! (`sqlx::Error`, store errors) for the logs. The reason sent to the client
//! is the `Display` of the error, never the text of a source.

use http::StatusCode;

use crate::sessions::StoreError;

/// Why a request's input was refused (400 or 422).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("title must not be empty")]
    EmptyTitle,
    #[error("title is longer than 200 characters")]
    TitleTooLong,
    #[error("body is longer than 256 KiB")]
    BodyTooLong,
    #[error("publish_at must be an RFC 3339 time, e.g. 2030-01-01T00:00:00Z")]
    PublishAt,
    #[error("nothing to update: give title, body or publish_at")]
    NothingToUpdate,
    #[error("post id must be a positive integer")]
    PostId,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("{0}")]
    Invalid(#[from] Invalid),
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("reading the request body failed")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no such post")]
    NoSuchPost,
    #[error("no route for this path")]
    NoRoute,
    #[error("method not allowed (allowed: {allow})")]
    Method { allow: &'static str },
    #[error("login required: POST /login first")]
    Unauthenticated,
    #[error("wrong author or password")]
    BadCredentials,
    #[error("database unavailable")]
    Database(#[source] sqlx::Error),
    #[error("session store unavailable")]
    Sessions(#[source] StoreError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Json(_) | ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Body(_) => StatusCode::BAD_REQUEST,
            ApiError::NoSuchPost | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::Method { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthenticated | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Database(_) | ApiError::Sessions(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Whether the failure is the server's (logged at error level).
    pub fn is_server_side(&self) -> bool {
        self.status().is_server_error()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Database(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Sessions(e)
    }
}

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("connecting to or migrating the database")]
    Database(#[source] sqlx::Error),
    #[error("connecting to Redis")]
    Redis(#[source] redis::RedisError),
    #[error("reading the listener address")]
    Listener(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins every status: a change here is a change of the wire contract.
    #[test]
    fn statuses() {
        let json = serde_json::from_str::<()>("{").unwrap_err();
        let cases: Vec<(ApiError, u16)> = vec![
            (ApiError::Json(json), 400),
            (ApiError::Invalid(Invalid::EmptyTitle), 400),
            (ApiError::BodyTooLarge { limit: 1 }, 413),
            (ApiError::NoSuchPost, 404),
            (ApiError::NoRoute, 404),
            (ApiError::Method { allow: "GET" }, 405),
            (ApiError::Unauthenticated, 401),
            (ApiError::BadCredentials, 401),
            (ApiError::Database(sqlx::Error::PoolTimedOut), 503),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
        }
    }
}

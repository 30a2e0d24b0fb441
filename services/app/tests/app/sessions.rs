//! Sessions across replicas and restarts; the write API's 4xx answers.

use http::Method;
use serde_json::json;

use crate::support::{self, get, get_json, request};

#[tokio::test]
async fn a_session_made_on_one_replica_works_on_the_other_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::app_config(&support::sqlite_file(&dir));
    let a = support::app(config.clone()).await;
    let b = support::app(config.clone()).await;
    let (ca, cb) = (support::client(&a.url()), support::client(&b.url()));
    let cookie = support::login(&ca, "admin", "sluice").await;
    let post = support::create_post(&cb, &cookie, json!({"title": "from b", "body": "x"})).await;
    assert_eq!(post["author"], "admin");

    // Restart A: the session lives in the database, not in A.
    a.stop().await;
    let a = support::app(config).await;
    let ca = support::client(&a.url());
    support::create_post(&ca, &cookie, json!({"title": "after restart", "body": "y"})).await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn writes_need_a_session_and_bad_input_gets_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let app = support::app(support::app_config(&support::sqlite_file(&dir))).await;
    let c = support::client(&app.url());
    let body = json!({"title": "t", "body": "b"}).to_string();

    let anon = request(&c, Method::POST, "/posts", &[], body.as_bytes())
        .await
        .unwrap();
    assert_eq!(anon.status, 401);
    let forged = request(
        &c,
        Method::POST,
        "/posts",
        &[("cookie", "sid=deadbeef".into())],
        body.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(forged.status, 401);
    let wrong = request(
        &c,
        Method::POST,
        "/login",
        &[],
        json!({"author": "admin", "password": "nope"})
            .to_string()
            .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(wrong.status, 401);

    let cookie = support::login(&c, "admin", "sluice").await;
    let auth = [("cookie", cookie.clone())];
    for (bad, status, reason) in [
        ("{not json", 400, "malformed JSON"),
        (r#"{"title":"t"}"#, 400, "missing field"),
        (r#"{"title":"","body":"b"}"#, 400, "title must not be empty"),
        (
            r#"{"title":"t","body":"b","publish_at":"tomorrow"}"#,
            400,
            "RFC 3339",
        ),
        (
            r#"{"title":"t","body":"b","extra":1}"#,
            400,
            "unknown field",
        ),
    ] {
        let reply = request(&c, Method::POST, "/posts", &auth, bad.as_bytes())
            .await
            .unwrap();
        assert_eq!(reply.status, status, "{bad}");
        let error = support::json(&reply)["error"].as_str().unwrap().to_owned();
        assert!(error.contains(reason), "{bad}: {error}");
        assert!(reply.headers.contains_key("x-instance-id"));
    }
    let missing = request(&c, Method::PUT, "/posts/999", &auth, br#"{"title":"x"}"#)
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    let empty = request(&c, Method::PUT, "/posts/1", &auth, b"{}")
        .await
        .unwrap();
    assert_eq!(empty.status, 400);
    assert_eq!(get_json(&c, "/posts/999").await.status, 404);
    assert_eq!(get_json(&c, "/posts/abc").await.status, 400);
    assert_eq!(get(&c, "/nope").await.unwrap().status, 404);
    let method = request(&c, Method::DELETE, "/posts", &[], b"")
        .await
        .unwrap();
    assert_eq!(method.status, 405);
    app.stop().await;
}

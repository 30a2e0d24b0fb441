//! The API contract, written once and run against every store. Each check
//! takes a `writer` and a `reader`: the same cache for the memory store, two
//! replicas sharing one Redis for the Redis store.

use super::{Cache, encode_key, request};

/// The entry limit every contract run configures.
pub const MAX_ENTRY_BYTES: u64 = 1024;

pub async fn content_type_round_trip(writer: &Cache, reader: &Cache) {
    let body = br#"{"title":"hello"}"#;
    let stored = writer
        .put("/?key=post-1", 60, "application/json; charset=utf-8", body)
        .await;
    assert_eq!(stored.status, 200, "{stored:?}");

    let hit = reader.get("/?key=post-1").await;
    assert_eq!(hit.status, 200, "{hit:?}");
    assert_eq!(hit.body, body);
    assert_eq!(
        hit.header("content-type"),
        Some("application/json; charset=utf-8")
    );

    // No Content-Type stored: served as opaque bytes.
    let untyped = request(
        writer.addr,
        "PUT",
        "/?key=raw",
        &[("Cache-Control", "max-age=60")],
        b"\x00\x01\xff",
    )
    .await;
    assert_eq!(untyped.status, 200, "{untyped:?}");
    let hit = reader.get("/?key=raw").await;
    assert_eq!(hit.body, b"\x00\x01\xff");
    assert_eq!(hit.header("content-type"), Some("application/octet-stream"));

    // An empty body is a valid entry.
    assert_eq!(
        writer
            .put("/?key=empty", 60, "text/plain", b"")
            .await
            .status,
        200
    );
    let hit = reader.get("/?key=empty").await;
    assert_eq!((hit.status, hit.body.len()), (200, 0));

    let miss = reader.get("/?key=never-stored").await;
    assert_eq!(miss.status, 404, "{miss:?}");
}

pub async fn both_cache_control_forms(writer: &Cache, reader: &Cache) {
    for (key, cache_control) in [
        ("new-form", "max-age=60"),
        ("old-form", "maxage=60"),
        ("with-others", "public, max-age=60, must-revalidate"),
    ] {
        let response = request(
            writer.addr,
            "POST",
            &format!("/?key={key}"),
            &[("Cache-Control", cache_control)],
            key.as_bytes(),
        )
        .await;
        assert_eq!(response.status, 200, "{cache_control}: {response:?}");
        let hit = reader.get(&format!("/?key={key}")).await;
        assert_eq!(hit.status, 200, "{cache_control}");
        assert_eq!(hit.body, key.as_bytes());
    }
}

/// Each 400, and that a rejected store request stores nothing.
pub async fn bad_requests_get_400_and_store_nothing(writer: &Cache, reader: &Cache) {
    for target in ["/", "/?other=1", "/?key=", "/?key=a&key=b"] {
        let get = reader.get(target).await;
        assert_eq!(get.status, 400, "GET {target}: {get:?}");
        let post = writer.put(target, 60, "text/plain", b"x").await;
        assert_eq!(post.status, 400, "POST {target}: {post:?}");
        let delete = writer.delete(target).await;
        assert_eq!(delete.status, 400, "DELETE {target}: {delete:?}");
        let invalidate = writer
            .get(&format!("/invalidate{}", target.trim_start_matches('/')))
            .await;
        assert_eq!(
            invalidate.status, 400,
            "invalidate {target}: {invalidate:?}"
        );
    }

    let missing_cc = request(writer.addr, "POST", "/?key=bad-cc", &[], b"x").await;
    assert_eq!(missing_cc.status, 400, "{missing_cc:?}");
    assert!(
        missing_cc.text().contains("Cache-Control"),
        "{missing_cc:?}"
    );
    for cache_control in [
        "no-store",
        "max-age",
        "max-age=",
        "max-age=soon",
        "max-age=-5",
        "max-age=1.5",
        "maxage=10s",
        "max-age=1, maxage=2",
        "max-age=99999999999999999999",
    ] {
        let response = request(
            writer.addr,
            "POST",
            "/?key=bad-cc",
            &[("Cache-Control", cache_control)],
            b"x",
        )
        .await;
        assert_eq!(response.status, 400, "{cache_control}: {response:?}");
        assert!(!response.body.is_empty(), "an error says what is wrong");
    }
    assert_eq!(reader.get("/?key=bad-cc").await.status, 404);
}

pub async fn invalidate_every_way(writer: &Cache, reader: &Cache) {
    let ways: [(&str, &str); 4] = [
        ("DELETE", "/?key=k"),
        ("GET", "/invalidate?key=k"),
        ("POST", "/invalidate?key=k"),
        ("DELETE", "/invalidate?key=k"),
    ];
    for (method, target) in ways {
        assert_eq!(
            writer.put("/?key=k", 60, "text/plain", b"v").await.status,
            200
        );
        assert_eq!(reader.get("/?key=k").await.status, 200);
        let removed = request(reader.addr, method, target, &[], b"").await;
        assert_eq!(removed.status, 200, "{method} {target}: {removed:?}");
        assert_eq!(removed.text(), "removed");
        assert_eq!(writer.get("/?key=k").await.status, 404, "{method} {target}");
        assert_eq!(reader.get("/?key=k").await.status, 404, "{method} {target}");
        // Idempotent: removing again is fine.
        let again = request(reader.addr, method, target, &[], b"").await;
        assert_eq!((again.status, again.text().as_str()), (200, "not present"));
    }
}

/// 413 from the declared length (before any body is read) and from a
/// chunked body that grows past the limit; exactly the limit is accepted.
pub async fn oversized_entries_get_413(writer: &Cache, reader: &Cache) {
    let limit = MAX_ENTRY_BYTES as usize;
    let exact = vec![b'a'; limit];
    assert_eq!(
        writer
            .put("/?key=big", 60, "text/plain", &exact)
            .await
            .status,
        200
    );
    assert_eq!(reader.get("/?key=big").await.body.len(), limit);

    let over = vec![b'b'; limit + 1];
    let declared = writer.put("/?key=big", 60, "text/plain", &over).await;
    assert_eq!(declared.status, 413, "{declared:?}");

    let half = limit / 2 + 1;
    let chunked = format!(
        "POST /?key=big HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCache-Control: max-age=60\r\n\
         Transfer-Encoding: chunked\r\n\r\n{half:x}\r\n{a}\r\n{half:x}\r\n{a}\r\n0\r\n\r\n",
        a = "c".repeat(half)
    );
    let streamed = super::exchange(writer.addr, chunked.as_bytes()).await;
    assert_eq!(streamed.status, 413, "{streamed:?}");

    // The rejected uploads left the earlier value alone.
    assert_eq!(reader.get("/?key=big").await.body, exact);
}

pub async fn keys_are_url_encoded_byte_strings(writer: &Cache, reader: &Cache) {
    let keys: [&[u8]; 5] = [
        b"/posts/1?page=2&sort=new",
        "caf\u{e9} \u{1f600}".as_bytes(),
        b"a+b",
        b"a b",
        b"\xff\x00binary",
    ];
    for (i, key) in keys.iter().enumerate() {
        let target = format!("/?key={}", encode_key(key));
        let body = format!("value {i}");
        assert_eq!(
            writer
                .put(&target, 60, "text/plain", body.as_bytes())
                .await
                .status,
            200
        );
    }
    for (i, key) in keys.iter().enumerate() {
        let hit = reader.get(&format!("/?key={}", encode_key(key))).await;
        assert_eq!(hit.status, 200, "{key:?}");
        assert_eq!(hit.text(), format!("value {i}"), "{key:?}");
    }
    // Form encoding: a literal `+` means a space.
    assert_eq!(reader.get("/?key=a+b").await.text(), "value 3");
}

pub async fn max_age_zero_stores_nothing(writer: &Cache, reader: &Cache) {
    assert_eq!(
        writer.put("/?key=z", 60, "text/plain", b"old").await.status,
        200
    );
    let zero = writer.put("/?key=z", 0, "text/plain", b"new").await;
    assert_eq!(zero.status, 200, "{zero:?}");
    assert_eq!(reader.get("/?key=z").await.status, 404);
}

pub async fn probes_and_unknown_routes(cache: &Cache) {
    let ping = cache.get("/ping").await;
    assert_eq!((ping.status, ping.text().as_str()), (200, "pong"));
    assert_eq!(cache.get("/ready").await.status, 200);
    assert_eq!(cache.get("/nope").await.status, 404);
    let wrong = request(cache.addr, "PATCH", "/?key=k", &[], b"").await;
    assert_eq!(wrong.status, 405);
    assert!(wrong.header("allow").is_some_and(|a| a.contains("POST")));
    assert_eq!(cache.get("/purge").await.status, 405);
}

//! Shipping to the real log service (`services/log`, in process): the
//! entries arrive in order with their request ids; a dead service costs
//! entries (counted), never requests.

use super::*;

fn shipping(
    file: &Path,
    url_addr: SocketAddr,
    batch: usize,
    interval: Duration,
    pending: usize,
) -> AccessLogConfig {
    AccessLogConfig {
        path: Some(file.to_owned()),
        ship: Some(ShipConfig {
            authority: url_addr.to_string(),
            path: "/".into(),
            batch,
            interval,
            queue: 1000,
            pending,
            source: None,
        }),
        ..AccessLogConfig::default()
    }
}

#[tokio::test]
async fn entries_reach_the_log_service_in_order_with_their_request_ids() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let log_addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(sluice_log::run(
        listener,
        sluice_log::Config::new(dir.path()),
        async {
            let _ = stopped.await;
        },
    ));
    let origin = answering(200, "ok").await;
    let file = dir.path().join("access.log");
    let ship = shipping(&file, log_addr, 5, Duration::from_millis(50), 16);
    let mut c = logging(&[origin.addr()], ship);
    c.instance_id = Some("ship-1".into());
    let proxy = Proxy::start(&c).await;
    let ids: Vec<String> = (0..12).map(|i| format!("ship-{i:02}")).collect();
    // One connection: each request starts after the one before has ended.
    let mut conn = RawConn::connect(proxy.addr()).await;
    for id in &ids {
        conn.send(
            format!("GET /s HTTP/1.1\r\nHost: s.test\r\nX-Request-Id: {id}\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(conn.read_response().await.status, 200);
    }
    let query = || async {
        let r = send(
            log_addr,
            "GET /logs HTTP/1.1\r\nHost: l\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.head);
        serde_json::from_slice::<Vec<Value>>(&r.body).unwrap()
    };
    let mut got = Vec::new();
    for _ in 0..500 {
        got = query().await;
        if got.len() >= ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen: Vec<String> = got
        .iter()
        .map(|e| {
            assert_eq!(e["source"], "ship-1", "{e}");
            assert_eq!(e["level"], "INFO");
            let line: Value = serde_json::from_str(e["message"].as_str().unwrap()).unwrap();
            assert_eq!(line["instance"], "ship-1");
            assert_eq!(line["status"], 200);
            line["request_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(seen, ids);
    let c = counters(&proxy).await;
    assert_eq!(c["shipped"].as_u64(), Some(12), "{c}");
    assert_eq!(c["ship_dropped"].as_u64(), Some(0), "{c}");
    proxy.shutdown().await;
    let _ = stop.send(());
    service.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_dead_log_service_costs_entries_not_requests() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let origin = answering(200, "ok").await;
    // Batches of 2 (sealed only when full: the interval is long), one kept
    // for retry: of 10 entries, the last batch waits for the service and
    // the 8 before it are dropped, oldest first.
    let (_dir, file) = log_dir();
    let ship = shipping(&file, dead, 2, Duration::from_secs(600), 1);
    let proxy = Proxy::start(&logging(&[origin.addr()], ship)).await;
    for i in 0..10 {
        let r = send(
            proxy.addr(),
            &format!("GET /{i} HTTP/1.1\r\nHost: d.test\r\n\r\n"),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    eventually("8 entries dropped", || {
        let state = proxy.server().shared().state.load();
        let c = &state.access_log.as_ref().unwrap().counters;
        sluice::observe::access_log::Counters::get(&c.ship_dropped) >= 8
    })
    .await;
    let c = counters(&proxy).await;
    assert_eq!(c["ship_dropped"].as_u64(), Some(8), "{c}");
    assert_eq!(c["shipped"].as_u64(), Some(0), "{c}");
    assert!(c["ship_failures"].as_u64() >= Some(1), "{c}");
}

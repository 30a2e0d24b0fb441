//! A plain connection over loopback, before and around HTTP/1: what its
//! task weighs, the first-byte deadline, drain, and telling HTTP/2's
//! preface from HTTP/1 when it arrives in pieces. Paused time, no timing
//! assertions beyond "closes at the deadline, not before".

use super::*;
use crate::addr::ClientAddr;
use crate::context::Worker;
use crate::state::{Shared, State};
use crate::upstream::discovery::SystemResolver;
use crate::upstream::pool::Pool;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A worker whose one route matches no request of these tests: each is
/// answered 404 by the proxy itself, with no backend and no timer involved.
fn worker() -> Arc<Worker> {
    let text = concat!(
        "[[listener]]\naddress = \"127.0.0.1:1\"\n",
        "[upstream.a]\nbackends = [\"127.0.0.1:9\"]\n",
        "[[route]]\nhost = \"elsewhere.test\"\nupstream = \"a\"\n",
    );
    let config = crate::config::validate::parse(text, Path::new("test.toml")).expect("config");
    let state = State::new(&config, None).expect("state");
    Arc::new(Worker {
        pool: Arc::new(Pool::new(state.timeouts.upstream_idle)),
        shared: Arc::new(Shared::new(state, Arc::new(SystemResolver))),
    })
}

fn server_builder() -> Arc<ServerBuilder> {
    let timeouts = Timeouts {
        client_header: TIMEOUT,
        ..Timeouts::default()
    };
    Arc::new(builder(&Limits::default(), &timeouts))
}

/// A connected pair: (client, the proxy's end).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap());
    let (client, accepted) = tokio::join!(client, listener.accept());
    (client.unwrap(), accepted.unwrap().0)
}

/// Serves the proxy's end of a new pair the way a worker does; the clock's
/// sweeper runs too.
async fn serving(builder: &Arc<ServerBuilder>) -> (TcpStream, tokio::task::JoinHandle<()>) {
    let (client, server) = pair().await;
    let sweep = builder.clone();
    tokio::spawn(async move { sweep.idle.sweep().await });
    let ctx = Arc::new(ConnCtx::new(
        worker(),
        ClientAddr(client.local_addr().unwrap()),
        "http",
    ));
    let task = tokio::spawn(serve(server, ctx, builder.clone()));
    (client, task)
}

/// Reads one response whose body is `content-length` long.
async fn response(client: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0; 1];
    while !got.ends_with(b"\r\n\r\n") {
        client.read_exact(&mut byte).await.unwrap();
        got.push(byte[0]);
    }
    let head = String::from_utf8(got).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    client.read_exact(&mut body).await.unwrap();
    head
}

/// The whole task of an idle plain connection, as spawned. tokio adds 104
/// bytes (header, scheduler, id, trailer) and rounds a task up to 128
/// bytes: 152 bytes of future make a 256-byte task (it was 1,920). A power
/// of two matters: mimalloc aligns only those blocks to their size, so a
/// 384-byte task (aligned to 128) takes a 512-byte block.
#[tokio::test]
async fn the_task_of_an_idle_connection_stays_small() {
    let (_client, server) = pair().await;
    let ctx = Arc::new(ConnCtx::new(
        worker(),
        ClientAddr(server.peer_addr().unwrap()),
        "http",
    ));
    let (alive, _drained) = mpsc::channel(1);
    let task = crate::server::worker::plain_task(server, ctx, server_builder(), alive);
    let size = std::mem::size_of_val(&task);
    assert!(size <= 152, "an idle connection's future is {size} bytes");
}

/// Its `Arc<ConnCtx>`: 88 bytes and the `Arc`'s counts fill a 112-byte
/// allocator class (it was 136 bytes in a 160-byte class, and three more
/// allocations for the client's strings, now shared by address; 64 until
/// the connection's 1xx queue moved here from a per-request allocation;
/// 80 with the listener's connection-limit permit, still 96 with the
/// counts; 88 with a verified client certificate's field, boxed so that
/// only such connections allocate it: a 112-byte class).
#[test]
fn the_connection_context_stays_small() {
    let size = std::mem::size_of::<ConnCtx>();
    assert!(size <= 88, "ConnCtx is {size} bytes");
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_at_the_deadline_without_an_answer() {
    let builder = server_builder();
    let start = tokio::time::Instant::now();
    let (mut client, task) = serving(&builder).await;
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(
        start.elapsed() >= TIMEOUT,
        "closed after {:?}",
        start.elapsed()
    );
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn drain_closes_silent_and_idle_keep_alive_connections() {
    let builder = server_builder();
    let (mut silent, silent_task) = serving(&builder).await;
    // A keep-alive connection after one answer.
    let (mut idle, idle_task) = serving(&builder).await;
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert!(response(&mut idle).await.starts_with("HTTP/1.1 404 "));
    let mut rest = vec![0; 16];

    let start = tokio::time::Instant::now();
    builder.idle.start_drain();
    silent_task.await.unwrap();
    idle_task.await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(silent.read(&mut rest).await.unwrap(), 0);
    assert_eq!(idle.read(&mut rest).await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn requests_with_idle_time_between_then_the_idle_deadline_closes() {
    let builder = server_builder();
    let (mut client, task) = serving(&builder).await;
    for pause in [Duration::ZERO, TIMEOUT / 2] {
        tokio::time::sleep(pause).await;
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let head = response(&mut client).await;
        assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
    }
    let idle = tokio::time::Instant::now();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert!(
        idle.elapsed() >= TIMEOUT,
        "closed after {:?}",
        idle.elapsed()
    );
    task.await.unwrap();
}

#[tokio::test]
async fn a_preface_in_pieces_is_still_http2() {
    let builder = server_builder();
    let (mut client, _task) = serving(&builder).await;
    let (a, b) = H2_PREFACE.split_at(5);
    client.write_all(a).await.unwrap();
    tokio::task::yield_now().await;
    client.write_all(b).await.unwrap();
    // An empty SETTINGS frame from us, then the server's own SETTINGS.
    client
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut frame = [0; 9];
    client.read_exact(&mut frame).await.unwrap();
    assert_eq!(frame[3], 4, "not a SETTINGS frame: {frame:?}");
}

#[tokio::test(start_paused = true)]
async fn a_partial_preface_that_stalls_is_closed_at_the_deadline() {
    let builder = server_builder();
    let start = tokio::time::Instant::now();
    let (mut client, task) = serving(&builder).await;
    client.write_all(&H2_PREFACE[..10]).await.unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).await.unwrap();
    assert!(got.is_empty());
    assert!(start.elapsed() >= TIMEOUT);
    task.await.unwrap();
}

/// A panic while handling one request gives that request a 500 and leaves
/// the connection and the worker serving. The panic is induced by a header
/// that only `cfg(test)` builds of the proxy look at: no binary has it
/// (moved here from the e2e suite, which used a crate feature that
/// `cargo build --workspace` turned on for the release binary too).
#[tokio::test]
async fn a_handler_panic_gives_500_and_the_server_keeps_serving() {
    let builder = server_builder();
    let (mut client, _task) = serving(&builder).await;
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Sluice-Test-Panic: 1\r\n\r\n")
        .await
        .unwrap();
    let head = response(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 500 "), "{head}");
    assert!(
        head.contains("x-sluice-error: internal error\r\n"),
        "{head}"
    );
    // The same connection, then new ones, are served normally (404: the
    // route matches nothing here, so no backend is involved).
    assert!(get(&mut client).await.starts_with("HTTP/1.1 404 "));
    for _ in 0..3 {
        let (mut client, _task) = serving(&builder).await;
        assert!(get(&mut client).await.starts_with("HTTP/1.1 404 "));
    }
}

/// `GET /` on `client`; the response head.
async fn get(client: &mut TcpStream) -> String {
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    response(client).await
}

//! A plain connection over loopback, before and around HTTP/1: what its
//! task weighs, the first-byte deadline, drain, and telling HTTP/2's
//! preface from HTTP/1 when it arrives in pieces. Paused time, no timing
//! assertions beyond "closes at the deadline, not before".

use super::*;
use crate::addr::ClientAddr;
use crate::proxy::Worker;
use crate::state::{Shared, State};
use crate::upstream::discovery::SystemResolver;
use crate::upstream::pool::Pool;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A worker with one route to a backend nobody listens on.
fn worker() -> Arc<Worker> {
    let text = "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.a]\nbackends = [\"127.0.0.1:9\"]\n[[route]]\nupstream = \"a\"\n";
    let config = crate::config::validate::parse(text, Path::new("test.toml")).expect("config");
    let state = State::new(&config, None).expect("state");
    Arc::new(Worker {
        pool: Arc::new(Pool::new(state.timeouts.upstream_idle)),
        shared: Arc::new(Shared::new(state, Arc::new(SystemResolver))),
        legacy: None,
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

/// The whole task of an idle plain connection, as spawned. tokio adds 104
/// bytes (header, scheduler, id, trailer) and rounds a task up to 128
/// bytes: 280 bytes of future make a 384-byte task (it was 1,920).
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
    assert!(size <= 280, "an idle connection's future is {size} bytes");
}

/// Its `Arc<ConnCtx>`: 64 bytes and the `Arc`'s counts fill an 80-byte
/// allocator class (it was 136 bytes in a 160-byte class, and three more
/// allocations for the client's strings, now shared by address).
#[test]
fn the_connection_context_stays_small() {
    let size = std::mem::size_of::<ConnCtx>();
    assert!(size <= 64, "ConnCtx is {size} bytes");
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
    // A keep-alive connection after one answer (a 502: nobody listens on
    // the backend's port).
    let (mut idle, idle_task) = serving(&builder).await;
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 502");
    let mut rest = vec![0; 4096];
    let _ = idle.read(&mut rest).await.unwrap();

    let start = tokio::time::Instant::now();
    builder.idle.start_drain();
    silent_task.await.unwrap();
    idle_task.await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(silent.read(&mut rest).await.unwrap(), 0);
    assert_eq!(idle.read(&mut rest).await.unwrap(), 0);
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

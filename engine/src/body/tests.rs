use super::*;
use crate::http1::Framing;
use crate::http1::decode::Decoder;
use std::future::poll_fn;

/// A timed HTTP/1 body and the sender feeding it.
fn timed(limits: BodyLimits) -> (crate::http1::body::BodySender, ReqBody) {
    let (tx, rx) =
        crate::http1::body::channel(Decoder::new(Framing::Chunked, 1024)).expect("a body");
    (tx, ReqBody::H1(rx).timed(limits))
}

#[tokio::test(start_paused = true)]
async fn a_client_silent_past_its_limit_fails_the_body_with_a_timeout() {
    let (mut tx, mut body) = timed(BodyLimits::idle(Duration::from_secs(5)));
    let progress = body.progress().expect("timed");
    let waker = Waker::noop();
    let cx = &mut Context::from_waker(waker);
    assert!(Pin::new(&mut body).poll_frame(cx).is_pending());
    assert!(body.waits_on_client());
    assert_eq!(progress.phase(cx), Phase::Client);
    // A frame within the limit restarts the clock.
    tokio::time::advance(Duration::from_secs(4)).await;
    tx.send(Ok(Frame::data(Bytes::from_static(b"a"))));
    let f = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
    assert!(f.expect("frame").is_ok());
    assert!(!body.waits_on_client());
    assert_eq!(progress.phase(cx), Phase::Sending);
    tokio::time::advance(Duration::from_secs(4)).await;
    assert!(Pin::new(&mut body).poll_frame(cx).is_pending());
    let e = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))
        .await
        .expect("an error")
        .expect_err("timed out");
    assert_eq!(client_body_kind(&*e), ErrorKind::ClientBodyTimeout);
    assert_eq!(
        progress.phase(cx),
        Phase::Failed(ErrorKind::ClientBodyTimeout)
    );
    assert!(body.is_end_stream());
}

/// 100 B/s after a second, with a minute of silence allowed.
const AT_100_AFTER_1S: BodyLimits = BodyLimits {
    min_rate: 100,
    grace: Duration::from_secs(1),
    ..BodyLimits::idle(Duration::from_secs(60))
};

/// The next item of `body`, waited for (under paused time, the clock
/// jumps to the next timer).
async fn next(body: &mut ReqBody) -> Option<Result<Frame<Bytes>, BoxError>> {
    poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
}

#[tokio::test(start_paused = true)]
async fn an_upload_below_the_minimum_rate_fails_counting_only_client_time() {
    let (mut tx, mut body) = timed(AT_100_AFTER_1S);
    let cx = &mut Context::from_waker(Waker::noop());
    // 10 bytes after 500 ms of waiting: 20 B/s, but within the grace.
    assert!(Pin::new(&mut body).poll_frame(cx).is_pending());
    tokio::time::advance(Duration::from_millis(500)).await;
    tx.send(Ok(Frame::data(Bytes::from_static(b"0123456789"))));
    assert!(next(&mut body).await.expect("frame").is_ok());
    // The backend takes 10 s to want more: not the client's time.
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(Pin::new(&mut body).poll_frame(cx).is_pending());
    // 500 ms of grace are left (10 bytes earn only 100 ms at 100 B/s).
    tokio::time::advance(Duration::from_millis(499)).await;
    assert!(Pin::new(&mut body).poll_frame(cx).is_pending());
    tokio::time::advance(Duration::from_millis(1)).await;
    let e = next(&mut body)
        .await
        .expect("an error")
        .expect_err("too slow");
    assert_eq!(client_body_kind(&*e), ErrorKind::ClientBodyTooSlow);
    assert!(body.is_end_stream());
}

#[tokio::test(start_paused = true)]
async fn an_upload_at_the_minimum_rate_goes_on_past_the_grace() {
    let (mut tx, mut body) = timed(AT_100_AFTER_1S);
    let cx = &mut Context::from_waker(Waker::noop());
    // 50 bytes every 400 ms: 125 B/s, for 4 s of waiting.
    for _ in 0..10 {
        assert!(Pin::new(&mut body).poll_frame(cx).is_pending());
        tokio::time::advance(Duration::from_millis(400)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(&[b'x'; 50]))));
        assert!(next(&mut body).await.expect("frame").is_ok());
    }
    // Then silence: 500 bytes earn 5 s, 4 s are used: 1 s left.
    assert!(Pin::new(&mut body).poll_frame(cx).is_pending());
    tokio::time::advance(Duration::from_millis(999)).await;
    assert!(Pin::new(&mut body).poll_frame(cx).is_pending());
    let e = next(&mut body)
        .await
        .expect("an error")
        .expect_err("too slow");
    assert_eq!(client_body_kind(&*e), ErrorKind::ClientBodyTooSlow);
}

#[tokio::test]
async fn a_body_past_its_size_limit_fails_as_too_large() {
    let (mut tx, mut body) = timed(BodyLimits {
        max_bytes: 5,
        ..BodyLimits::idle(Duration::from_secs(60))
    });
    let progress = body.progress().expect("timed");
    tx.send(Ok(Frame::data(Bytes::from_static(b"abc"))));
    assert!(next(&mut body).await.expect("frame").is_ok());
    tx.send(Ok(Frame::data(Bytes::from_static(b"def"))));
    let e = next(&mut body)
        .await
        .expect("an error")
        .expect_err("too large");
    assert_eq!(client_body_kind(&*e), ErrorKind::BodyTooLarge);
    let cx = &mut Context::from_waker(Waker::noop());
    assert_eq!(progress.phase(cx), Phase::Failed(ErrorKind::BodyTooLarge));
    assert!(next(&mut body).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn the_backend_clock_stops_while_the_client_has_the_move() {
    let mut clock = std::pin::pin!(BackendClock::new(Duration::from_secs(5)));
    let waker = Waker::noop();
    let cx = &mut Context::from_waker(waker);
    assert!(clock.as_mut().poll_expired(Phase::Sending, cx).is_pending());
    tokio::time::advance(Duration::from_secs(4)).await;
    // The client is slow: however long, the backend is not timed.
    assert!(clock.as_mut().poll_expired(Phase::Client, cx).is_pending());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(clock.as_mut().poll_expired(Phase::Client, cx).is_pending());
    // The request is out: the backend has its full limit to answer.
    assert!(clock.as_mut().poll_expired(Phase::Sent, cx).is_pending());
    tokio::time::advance(Duration::from_secs(4)).await;
    assert!(clock.as_mut().poll_expired(Phase::Sent, cx).is_pending());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(clock.as_mut().poll_expired(Phase::Sent, cx).is_ready());
}

#[tokio::test(start_paused = true)]
async fn the_total_clock_pauses_for_the_client_and_resumes_where_it_was() {
    let mut clock = std::pin::pin!(BackendClock::total(Duration::from_secs(5)));
    let cx = &mut Context::from_waker(Waker::noop());
    assert!(clock.as_mut().poll_expired(Phase::Sending, cx).is_pending());
    tokio::time::advance(Duration::from_secs(2)).await;
    // A slow uploader: a minute of it costs the backend nothing.
    assert!(clock.as_mut().poll_expired(Phase::Client, cx).is_pending());
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(clock.as_mut().poll_expired(Phase::Client, cx).is_pending());
    // Back to the backend: 3 s are left, not a fresh 5.
    assert!(clock.as_mut().poll_expired(Phase::Sending, cx).is_pending());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(clock.as_mut().poll_expired(Phase::Sent, cx).is_pending());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(clock.as_mut().poll_expired(Phase::Sent, cx).is_ready());
}

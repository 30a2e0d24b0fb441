//! gRPC-style exchange over HTTP/2 end to end: an h2 client (the `h2` crate,
//! not hyper, so the proxy is checked against a second implementation) sends
//! a framed message with `te: trailers`; the h2c backend answers with a body
//! and then `grpc-status` trailers, which must reach the client.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use sluice::config::UpstreamProtocol;
use sluice_e2e::harness::origin::{Origin, reply};
use sluice_e2e::harness::proxy::{Proxy, config};
use sluice_e2e::harness::within;
use tokio::net::TcpStream;

async fn grpc_echo(req: Request<hyper::body::Incoming>) -> Response<reply::Body> {
    let body = req
        .into_body()
        .collect()
        .await
        .expect("request body")
        .to_bytes();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("grpc-message", HeaderValue::from_static("all good"));
    let mut resp = Response::new(reply::frames(vec![
        Frame::data(body),
        Frame::trailers(trailers),
    ]));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    resp
}

#[tokio::test]
async fn grpc_trailers_pass_through_h2_both_sides() {
    let origin = Origin::h2c().route("/", grpc_echo).start().await;
    let mut cfg = config(&[origin.addr()]);
    cfg.upstreams[0].protocol = UpstreamProtocol::H2c;
    let proxy = Proxy::start(&cfg).await;

    let tcp = TcpStream::connect(proxy.addr()).await.expect("connect");
    let (client, conn) = within("h2 handshake", h2::client::handshake(tcp))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    let mut client = within("h2 ready", client.ready()).await.expect("ready");
    let req = Request::post(format!("http://{}/echo.Echo/Say", proxy.addr()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (resp, mut send) = client.send_request(req, false).expect("send");
    // A gRPC message: uncompressed flag, 4-byte length, payload.
    let message = Bytes::from_static(b"\x00\x00\x00\x00\x05hello");
    send.send_data(message.clone(), true).expect("send data");

    let resp = within("response head", resp).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/grpc");
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = within("body", body.data()).await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, message);
    let trailers = within("trailers", body.trailers())
        .await
        .expect("trailers")
        .expect("the response must end with trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "all good");

    let seen = origin.last_request();
    assert_eq!(seen.version, http::Version::HTTP_2);
    assert_eq!(seen.headers["te"], "trailers");
    assert_eq!(seen.headers["content-type"], "application/grpc");
}

//! The decoder byte by byte: every split point of a body must decode to the
//! same data and trailers, and every malformed shape must fail.

use super::*;

/// Data, trailers, and what is left for the next request.
type DecodedBody = (Vec<u8>, Option<HeaderMap>, Vec<u8>);

/// Feeds `raw` in pieces split at `cuts`, collecting data and trailers.
fn run(framing: Framing, raw: &[u8], cuts: &[usize]) -> Result<DecodedBody, BodyError> {
    let mut d = Decoder::new(framing, 1024);
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut trailers = None;
    let mut fed = 0;
    let mut cuts = cuts.iter().copied().chain(std::iter::once(raw.len()));
    loop {
        match d.decode(&mut buf)? {
            Decoded::Frame(f) => match f.into_data() {
                Ok(b) => {
                    assert!(!b.is_empty(), "empty data frame");
                    data.extend_from_slice(&b);
                }
                Err(f) => trailers = f.into_trailers().ok(),
            },
            Decoded::End => {
                // What the decoder did not need, fed or not, is the next request.
                let mut rest = buf.to_vec();
                rest.extend_from_slice(&raw[fed..]);
                return Ok((data, trailers, rest));
            }
            Decoded::NeedMore => match cuts.next() {
                Some(to) => {
                    buf.extend_from_slice(&raw[fed..to]);
                    fed = to;
                }
                None => return Err(BodyError::Incomplete),
            },
        }
    }
}

fn whole(framing: Framing, raw: &[u8]) -> Result<DecodedBody, BodyError> {
    run(framing, raw, &[])
}

#[test]
fn length_is_exact_and_leaves_the_next_request() {
    let (data, t, rest) = whole(Framing::Length(5), b"helloGET /").unwrap();
    assert_eq!(data, b"hello");
    assert!(t.is_none());
    assert_eq!(rest, b"GET /");
    assert_eq!(
        whole(Framing::Length(5), b"hell"),
        Err(BodyError::Incomplete)
    );
    assert!(Decoder::new(Framing::None, 1024).is_done());
}

#[test]
fn chunked_with_trailers_at_every_split() {
    let raw = b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: abc\r\nX-Two: 2\r\n\r\nNEXT";
    for a in 0..=raw.len() {
        for b in a..=raw.len() {
            let (data, t, rest) = run(Framing::Chunked, raw, &[a, b]).unwrap();
            assert_eq!(data, b"hello0123456789", "{a} {b}");
            let t = t.expect("trailers");
            assert_eq!(t["x-sum"], "abc");
            assert_eq!(t["x-two"], "2");
            assert_eq!(rest, b"NEXT");
        }
    }
}

#[test]
fn chunked_without_trailers_at_every_split() {
    let raw = b"3\r\nabc\r\n0\r\n\r\n";
    for a in 0..=raw.len() {
        let (data, t, rest) = run(Framing::Chunked, raw, &[a]).unwrap();
        assert_eq!(
            (data.as_slice(), t.is_none(), rest.len()),
            (&b"abc"[..], true, 0)
        );
    }
}

#[test]
fn framing_fields_are_dropped_from_trailers() {
    let (_, t, _) = whole(
        Framing::Chunked,
        b"0\r\nContent-Length: 5\r\nX-Ok: 1\r\n\r\n",
    )
    .unwrap();
    let t = t.unwrap();
    assert!(!t.contains_key("content-length"));
    assert_eq!(t["x-ok"], "1");
}

#[test]
fn bad_chunked_bodies_fail() {
    let cases: &[(&[u8], BodyError)] = &[
        (b"g\r\n", BodyError::BadChunkSize),
        (b"\r\n", BodyError::BadChunkSize),
        (b"-1\r\n", BodyError::BadChunkSize),
        (b"0x5\r\nhello\r\n0\r\n\r\n", BodyError::BadChunkSize),
        (b"5 x\r\nhello\r\n0\r\n\r\n", BodyError::BadChunkSize),
        (b"5\nhello\r\n0\r\n\r\n", BodyError::MissingCrlf),
        (b"5\r\nhelloX\r\n0\r\n\r\n", BodyError::MissingCrlf),
        (b"5\r\nhello\n0\r\n\r\n", BodyError::MissingCrlf),
        (b"0\r\n\n", BodyError::MissingCrlf),
        (b"10000000000000000\r\n", BodyError::ChunkSizeOverflow),
        (b"0\r\nBad Name: x\r\n\r\n", BodyError::BadTrailers),
        (b"5\r\nhel", BodyError::Incomplete),
    ];
    for (raw, want) in cases {
        assert_eq!(
            whole(Framing::Chunked, raw).map(|_| ()),
            Err(*want),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    // Largest size that fits is not an overflow.
    let mut d = Decoder::new(Framing::Chunked, 1024);
    let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
    assert!(matches!(d.decode(&mut buf), Ok(Decoded::Frame(_))));
}

#[test]
fn chunk_line_and_trailers_are_bounded() {
    let mut line = b"5;".to_vec();
    line.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE));
    assert_eq!(
        whole(Framing::Chunked, &line).map(|_| ()),
        Err(BodyError::ChunkLineTooLong)
    );
    let mut t = b"0\r\nX-Big: ".to_vec();
    t.extend(std::iter::repeat_n(b'y', 2000));
    assert_eq!(
        whole(Framing::Chunked, &t).map(|_| ()),
        Err(BodyError::BadTrailers)
    );
}

//! The fuzz seeds and regressions (`fuzz/corpus/<target>/seed-*`,
//! `fuzz/regressions/<target>/`) on every `cargo test`: a cheap, always-on
//! check of what `fuzz/fuzz_targets/h1_request_head.rs` and
//! `h1_chunked_body.rs` assert, without a nightly toolchain.

use super::*;
use crate::http1::decode::{Decoded, Decoder};
use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in [
        fuzz.join("corpus").join(target),
        fuzz.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("seed-") || name.ends_with("-regression") {
                out.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

#[test]
fn request_head_seeds_keep_their_invariants() {
    let seeds = inputs("h1_request_head");
    assert!(seeds.len() >= 10, "seed corpus missing: {}", seeds.len());
    for (path, data) in seeds {
        let limits = Limits::default();
        let mut buf = BytesMut::from(&data[..]);
        match parse(&mut buf, &limits) {
            Ok(None) => {}
            Err(e) => assert!(e.kind().status().is_client_error(), "{path:?}: {e:?}"),
            Ok(Some(h)) => {
                assert!(h.headers.len() <= limits.max_headers, "{path:?}");
                let te = h.headers.contains_key(header::TRANSFER_ENCODING);
                let cl = h.headers.contains_key(header::CONTENT_LENGTH);
                match h.framing {
                    Framing::Length(_) => assert!(!te, "{path:?}: CL framing with TE"),
                    Framing::Chunked => assert!(!cl, "{path:?}: chunked with CL"),
                    Framing::None => assert!(!te, "{path:?}"),
                    Framing::Close => panic!("{path:?}: a request read until close"),
                }
            }
        }
    }
}

#[test]
fn chunked_body_seeds_decode_the_same_byte_by_byte() {
    let run = |pieces: &mut dyn Iterator<Item = &[u8]>| {
        let mut d = Decoder::new(Framing::Chunked, 8192);
        let (mut buf, mut body) = (BytesMut::new(), Vec::new());
        for piece in pieces {
            buf.extend_from_slice(piece);
            loop {
                match d.decode(&mut buf) {
                    Ok(Decoded::Frame(f)) => match f.into_data() {
                        Ok(b) => body.extend_from_slice(&b),
                        Err(f) => body.extend_from_slice(format!("{f:?}").as_bytes()),
                    },
                    Ok(Decoded::NeedMore) => break,
                    Ok(Decoded::End) => return Ok((body, d.is_done())),
                    Err(_) => return Err(()),
                }
            }
        }
        Ok((body, d.is_done()))
    };
    let seeds = inputs("h1_chunked_body");
    assert!(seeds.len() >= 5, "seed corpus missing: {}", seeds.len());
    for (path, data) in seeds {
        assert_eq!(
            run(&mut std::iter::once(&data[..])),
            run(&mut data.chunks(1)),
            "{path:?}"
        );
    }
}

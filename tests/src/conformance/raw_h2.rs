//! A hand-written HTTP/2 client for requests the h2 crate refuses to send
//! (connection-specific fields, bad pseudo-fields): the field block is
//! literal HPACK without indexing or Huffman coding, so that every byte is
//! what the case says. Of the response it decodes only `:status`.

use super::case::Observed;
use super::client::READ_WAIT;
use bytes::{Buf, BufMut, BytesMut};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

fn frame(out: &mut BytesMut, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("a small frame");
    out.put_uint(u64::from(len), 3);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
    out.put_slice(payload);
}

/// An HPACK integer with an `n`-bit prefix whose other bits are `first`.
fn integer(out: &mut BytesMut, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.put_u8(first | v as u8);
        return;
    }
    out.put_u8(first | max as u8);
    v -= max;
    while v >= 128 {
        out.put_u8((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.put_u8(v as u8);
}

/// Literal header field without indexing, new name, no Huffman (RFC 7541 §6.2.2).
fn literal(out: &mut BytesMut, name: &str, value: &str) {
    out.put_u8(0x00);
    integer(out, 0, 7, name.len());
    out.put_slice(name.as_bytes());
    integer(out, 0, 7, value.len());
    out.put_slice(value.as_bytes());
}

/// Sends one request on stream 1 and reads until its response head, a
/// reset, GOAWAY or the end of the connection.
pub async fn send(addr: SocketAddr, fields: &[(&str, &str)], body: &[u8], obs: &mut Observed) {
    match tokio::time::timeout(READ_WAIT * 2, exchange(addr, fields, body, obs)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => obs.h2_error = Some(e),
        Err(_) => obs.client_error = Some("no answer in time".into()),
    }
}

async fn exchange(
    addr: SocketAddr,
    fields: &[(&str, &str)],
    body: &[u8],
    obs: &mut Observed,
) -> Result<(), String> {
    let mut tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut out = BytesMut::from(PREFACE);
    frame(&mut out, SETTINGS, 0, 0, &[]);
    let mut block = BytesMut::new();
    for (k, v) in fields {
        literal(&mut block, k, v);
    }
    let flags = END_HEADERS | if body.is_empty() { END_STREAM } else { 0 };
    frame(&mut out, HEADERS, flags, 1, &block);
    if !body.is_empty() {
        frame(&mut out, DATA, END_STREAM, 1, body);
    }
    // A write error is fine: the server may have refused and closed.
    let _ = tcp.write_all(&out).await;
    let mut buf = BytesMut::new();
    loop {
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            buf.advance(9);
            let payload = buf.split_to(len);
            match kind {
                SETTINGS if flags & ACK == 0 => {
                    let mut ack = BytesMut::new();
                    frame(&mut ack, SETTINGS, ACK, 0, &[]);
                    let _ = tcp.write_all(&ack).await;
                }
                HEADERS if stream == 1 => {
                    let status = status(&payload, flags);
                    match status {
                        Some(s) if (100..200).contains(&s) => obs.interim.push(s),
                        _ => {
                            obs.status = status.or(Some(0));
                            return Ok(());
                        }
                    }
                }
                RST_STREAM if stream == 1 => {
                    let code = payload
                        .get(..4)
                        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    return Err(format!("stream reset, code {code:?}"));
                }
                GOAWAY => {
                    let code = payload
                        .get(4..8)
                        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    return Err(format!("GOAWAY, code {code:?}"));
                }
                _ => {}
            }
        }
        match tcp.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Err("connection closed".into()),
            Ok(_) => {}
        }
    }
}

/// The `:status` of a response field block, when it is the first field
/// (as RFC 9113 §8.3 requires) and the block is not padded or prioritised.
fn status(block: &[u8], flags: u8) -> Option<u16> {
    const PADDED: u8 = 0x8;
    const PRIORITY: u8 = 0x20;
    if flags & (PADDED | PRIORITY) != 0 {
        return None;
    }
    let mut b = block;
    // Dynamic table size updates may come first.
    while let Some(&first) = b.first() {
        if first & 0xe0 != 0x20 {
            break;
        }
        b = &b[1..];
        if first & 0x1f == 0x1f {
            while b.first().is_some_and(|c| c & 0x80 != 0) {
                b = &b[1..];
            }
            b = b.get(1..)?;
        }
    }
    let first = *b.first()?;
    // Static table entries 8 to 14 are `:status` 200, 204, 206, 304, 400, 404, 500.
    const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    if first & 0x80 != 0 {
        let idx = usize::from(first & 0x7f);
        return STATIC.get(idx.checked_sub(8)?).copied();
    }
    // A literal with an indexed name: 6-bit index (with indexing) or 4-bit.
    let idx = if first & 0x40 != 0 {
        first & 0x3f
    } else {
        first & 0x0f
    };
    if !(8..=14).contains(&idx) {
        return None;
    }
    let len_byte = *b.get(1)?;
    let len = usize::from(len_byte & 0x7f);
    let raw = b.get(2..2 + len)?;
    let text = if len_byte & 0x80 != 0 {
        huffman_digits(raw)?
    } else {
        String::from_utf8(raw.to_vec()).ok()?
    };
    text.parse().ok()
}

/// Huffman-decodes a string of ASCII digits (RFC 7541 Appendix B: `0`–`2`
/// are 5-bit codes `00000`–`00010`, `3`–`9` 6-bit codes `011001`–`011111`).
fn huffman_digits(raw: &[u8]) -> Option<String> {
    let bits: Vec<u8> = raw
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let mut out = String::new();
    let mut i = 0;
    let take = |i: usize, n: usize| -> Option<u32> {
        let s = bits.get(i..i + n)?;
        Some(s.iter().fold(0u32, |a, &b| (a << 1) | u32::from(b)))
    };
    while i < bits.len() {
        // The rest is padding: at most 7 one-bits.
        if bits.len() - i < 8 && bits[i..].iter().all(|&b| b == 1) {
            break;
        }
        match take(i, 5)? {
            v @ 0..=2 => {
                out.push(char::from(b'0' + v as u8));
                i += 5;
            }
            _ => {
                let v = take(i, 6)?;
                if !(0b011001..=0b011111).contains(&v) {
                    return None;
                }
                out.push(char::from(b'3' + (v - 0b011001) as u8));
                i += 6;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_read_from_indexed_and_literal_forms() {
        assert_eq!(status(&[0x88], END_HEADERS), Some(200));
        assert_eq!(status(&[0x8c], END_HEADERS), Some(400));
        assert_eq!(
            status(&[0x48, 0x03, b'4', b'2', b'1'], END_HEADERS),
            Some(421)
        );
        // "103" Huffman-coded: 00001 00000 011001 + 1111 padding.
        assert_eq!(
            status(&[0x48, 0x82, 0b0000_1000, 0b0001_1001], END_HEADERS),
            Some(103)
        );
        assert_eq!(huffman_digits(&[0b0000_1000, 0b0001_1001, 0xff]), None);
        assert_eq!(
            huffman_digits(&[0b0000_1000, 0b0001_1001]).as_deref(),
            Some("103")
        );
    }
}

//! RFC 9110 §2.5: "A recipient that receives a message with a higher minor
//! version number than it implements SHOULD process the message as if it
//! were in the highest minor version within that major version to which the
//! recipient is conformant." httparse accepts only `HTTP/1.0` and
//! `HTTP/1.1`, so a higher minor digit is rewritten to `1` in the buffer
//! before it parses (the version is `HTTP/1.` and one DIGIT, RFC 9112 §2.3).

/// A request line (`… HTTP/1.7\r\n` at the front of `buf`) with a minor
/// version above 1 becomes `HTTP/1.1`; anything else is left alone.
pub fn request_as_http11(buf: &mut [u8]) {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return;
    };
    let len = if end > 0 && buf[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    if len >= 8 {
        minor_to_1(&mut buf[len - 8..len]);
    }
}

/// A status line (`HTTP/1.7 …` at the front of `buf`) likewise.
pub fn response_as_http11(buf: &mut [u8]) {
    if let Some(v) = buf.get_mut(..8) {
        minor_to_1(v);
    }
}

fn minor_to_1(v: &mut [u8]) {
    if v.len() == 8 && v.starts_with(b"HTTP/1.") && (b'2'..=b'9').contains(&v[7]) {
        v[7] = b'1';
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_minor_versions_read_as_1_1_and_nothing_else_changes() {
        let mut b = *b"GET / HTTP/1.7\r\nHost: a\r\n\r\n";
        request_as_http11(&mut b);
        assert_eq!(&b, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        for keep in [
            &b"GET / HTTP/1.0\r\n\r\n"[..],
            b"GET / HTTP/2.5\r\n\r\n",
            b"GET / HTTP/1.\r\n",
            b"HTTP/1.5",
            b"\n",
        ] {
            let mut b = keep.to_vec();
            request_as_http11(&mut b);
            assert_eq!(b, keep);
        }
        let mut r = *b"HTTP/1.4 200 OK\r\n";
        response_as_http11(&mut r);
        assert_eq!(&r, b"HTTP/1.1 200 OK\r\n");
        let mut short = *b"HTTP/1";
        response_as_http11(&mut short);
        assert_eq!(&short, b"HTTP/1");
    }
}

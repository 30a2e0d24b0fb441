//! The two ends' own HTTP/1.1 readers, written apart from the engine's
//! codec so that the connection target checks the proxy against a second
//! opinion: the origin reads requests strictly, the client reads responses.

use std::fmt::Write;

/// A request the origin read whole.
pub struct Request {
    /// Bytes it took, head and body.
    pub len: usize,
    pub head: bool,
}

/// The next request in `buf`: `Ok(None)` while incomplete, `Err` with why
/// if it is not well-framed HTTP/1.1, which a proxy must never send.
pub fn request(buf: &[u8]) -> Result<Option<Request>, String> {
    let mut fields = [httparse::EMPTY_HEADER; 160];
    let mut req = httparse::Request::new(&mut fields);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("request head: {e}")),
    };
    if req.version != Some(1) {
        return Err(format!("HTTP/1.{:?} upstream", req.version));
    }
    let (mut hosts, mut lengths, mut codings) = (0, Vec::new(), Vec::new());
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        match name.as_str() {
            "host" => hosts += 1,
            "content-length" => lengths.push(h.value),
            "transfer-encoding" => codings.extend(
                h.value
                    .split(|&b| b == b',')
                    .map(|t| t.trim_ascii().to_ascii_lowercase())
                    .filter(|t| !t.is_empty()),
            ),
            _ => {}
        }
    }
    if hosts != 1 {
        return Err(format!("{hosts} Host fields"));
    }
    let body = match (&lengths[..], &codings[..]) {
        ([], []) => Some(0),
        ([], [c]) if c == b"chunked" => chunked(&buf[head_len..])?,
        ([l], []) => {
            let n = std::str::from_utf8(l)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or_else(|| format!("Content-Length {:?}", lossy(l)))?;
            (buf.len() - head_len >= n).then_some(n)
        }
        _ => {
            return Err(format!(
                "framing: Content-Length {lengths:?}, Transfer-Encoding {codings:?}"
            ));
        }
    };
    Ok(body.map(|b| Request {
        len: head_len + b,
        head: req.method == Some("HEAD"),
    }))
}

/// A final response the client read (1xx ones are skipped).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The origin's `x-origin-seq`: which forwarded request this answers.
    pub seq: Option<u64>,
}

/// Every response in what the proxy wrote to the client; `Err` if the
/// bytes are not a sequence of whole, well-formed HTTP/1.1 responses.
/// A body is skipped by its framing, except that a response followed at
/// once by the next status line (or by nothing) has none: the answer to a
/// HEAD, whose request method only the proxy's parser knows.
pub fn answers(out: &[u8]) -> Result<Vec<Answer>, String> {
    let mut at = 0;
    let mut all = Vec::new();
    while at < out.len() {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut fields);
        let len = match resp.parse(&out[at..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err(format!("truncated head at {at}")),
            Err(e) => return Err(format!("response head at {at}: {e}")),
        };
        if resp.version != Some(1) {
            return Err(format!("HTTP/1.{:?} to the client", resp.version));
        }
        let status = resp.code.unwrap_or_default();
        let (mut length, mut is_chunked, mut seq) = (None, false, None);
        for h in resp.headers.iter() {
            let value = std::str::from_utf8(h.value).unwrap_or("");
            match h.name.to_ascii_lowercase().as_str() {
                "content-length" if length.is_some() => return Err("two Content-Length".into()),
                "content-length" => {
                    length = Some(value.parse::<usize>().map_err(|_| "Content-Length")?)
                }
                "transfer-encoding" if value.eq_ignore_ascii_case("chunked") => is_chunked = true,
                "transfer-encoding" => return Err(format!("Transfer-Encoding {value:?}")),
                "x-origin-seq" => seq = value.parse().ok(),
                _ => {}
            }
        }
        if length.is_some() && is_chunked {
            return Err("Content-Length with chunked".into());
        }
        at += len;
        if (100..200).contains(&status) {
            if status == 101 {
                return Err("101 though the origin never upgrades".into());
            }
            continue;
        }
        let rest = &out[at..];
        let bodiless =
            status == 204 || status == 304 || rest.is_empty() || rest.starts_with(b"HTTP/1.");
        if !bodiless {
            at += if is_chunked {
                chunked(rest)?.ok_or("truncated chunked body")?
            } else if let Some(n) = length {
                if rest.len() < n {
                    return Err(format!("body of {n} truncated to {}", rest.len()));
                }
                n
            } else {
                rest.len()
            };
        }
        all.push(Answer { status, seq });
    }
    Ok(all)
}

/// The length of a chunked body at the front of `buf`, trailers and final
/// CRLF included; `Ok(None)` while incomplete. Strict: hex sizes, CRLF
/// line ends, extensions without CR or LF.
pub fn chunked(buf: &[u8]) -> Result<Option<usize>, String> {
    let line = |from: usize| -> Option<usize> {
        buf[from..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| from + p)
    };
    let mut at = 0;
    loop {
        let Some(end) = line(at) else {
            return Ok(None);
        };
        let size_line = &buf[at..end];
        let digits = size_line.split(|&b| b == b';').next().unwrap_or_default();
        if digits.is_empty() || digits.len() > 15 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!("chunk size line {:?}", lossy(size_line)));
        }
        if size_line.contains(&b'\r') || size_line.contains(&b'\n') {
            return Err("CR or LF in a chunk line".into());
        }
        let size = usize::from_str_radix(std::str::from_utf8(digits).unwrap_or("x"), 16)
            .map_err(|e| e.to_string())?;
        at = end + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(end) = line(at) else {
                    return Ok(None);
                };
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Ok(Some(at));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        at += size + 2;
    }
}

pub fn lossy(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b.iter().take(200) {
        if c.is_ascii_graphic() || c == b' ' {
            s.push(c as char);
        } else {
            let _ = write!(s, "\\x{c:02x}");
        }
    }
    s
}

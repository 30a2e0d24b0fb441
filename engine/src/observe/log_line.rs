//! One access log line from a finished [`Exchange`], in either format.
//! Everything the client chose (method, host, target, referer, user agent)
//! is escaped so that no byte of it can end the field or the line: JSON by
//! serde_json (non-UTF-8 bytes become U+FFFD), combined by nginx's `\xHH`
//! for `"`, `\`, control bytes and every byte past ASCII.

use super::Exchange;
use http::HeaderValue;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The fields of a line, borrowed from the exchange.
#[derive(Serialize)]
struct Fields<'a> {
    time: &'a str,
    instance: &'a str,
    client: SocketAddr,
    method: &'a str,
    host: Option<Cow<'a, str>>,
    path: Cow<'a, str>,
    protocol: &'static str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
    upstream: Option<SocketAddr>,
    upstream_connect_ms: Option<f64>,
    upstream_header_ms: Option<f64>,
    retries: u32,
    request_id: Cow<'a, str>,
    error: Option<Cow<'a, str>>,
    completed: bool,
    route: Option<&'a str>,
    referer: Option<Cow<'a, str>>,
    user_agent: Option<Cow<'a, str>>,
}

/// A JSON object and a newline.
pub fn json(e: &Exchange, route: Option<&str>, instance: &str) -> String {
    let time = rfc3339_millis(e.started_wall);
    let f = Fields {
        time: &time,
        instance,
        client: e.client.0,
        method: e.method.as_str(),
        host: e.host.as_ref().map(lossy),
        path: target(e),
        protocol: protocol(e.version),
        status: e.status,
        bytes_in: e.trail.bytes_in(),
        bytes_out: e.bytes_out,
        duration_ms: millis(e.duration),
        upstream: e.trail.backend().map(|b| b.addr.0),
        upstream_connect_ms: e.trail.connect_time().map(millis),
        upstream_header_ms: e.trail.header_time().map(millis),
        retries: e.trail.retries(),
        request_id: lossy(&e.request_id),
        error: e.error.as_ref().map(lossy),
        completed: e.completed,
        route,
        referer: e.referer.as_ref().map(lossy),
        user_agent: e.user_agent.as_ref().map(lossy),
    };
    // Serializing these types cannot fail (string keys, finite numbers).
    let mut line = serde_json::to_string(&f).unwrap_or_default();
    line.push('\n');
    line
}

/// nginx's `combined` and the extras nginx users add, in this order:
///
/// `CLIENT_IP - - [02/Dec/2026:17:20:36 +0000] "GET /p?q HTTP/1.1" 200 1234
/// "REFERER" "USER_AGENT" host="HOST" request_id="ID" rt=0.012
/// upstream="IP:PORT" uct=0.001 uht=0.010 retries=0 error="REASON"
/// bytes_in=0 completed=1 route="NAME" instance="ID"`
///
/// Times are seconds with millisecond precision; a missing value is `-`.
pub fn combined(e: &Exchange, route: Option<&str>, instance: &str) -> String {
    let mut s = String::with_capacity(256);
    let _ = write!(s, "{} - - [", e.client.0.ip());
    clf_time(&mut s, e.started_wall);
    s.push_str("] \"");
    escape(&mut s, e.method.as_str().as_bytes());
    s.push(' ');
    escape(&mut s, target(e).as_bytes());
    let _ = write!(
        s,
        " {}\" {} {} \"",
        protocol(e.version),
        e.status,
        e.bytes_out
    );
    quoted_or_dash(&mut s, e.referer.as_ref());
    s.push_str("\" \"");
    quoted_or_dash(&mut s, e.user_agent.as_ref());
    s.push_str("\" host=\"");
    quoted_or_dash(&mut s, e.host.as_ref());
    s.push_str("\" request_id=\"");
    escape(&mut s, e.request_id.as_bytes());
    let _ = write!(s, "\" rt={:.3} upstream=", e.duration.as_secs_f64());
    match e.trail.backend() {
        Some(b) => {
            let _ = write!(s, "\"{}\"", b.addr);
        }
        None => s.push('-'),
    }
    s.push_str(" uct=");
    secs_or_dash(&mut s, e.trail.connect_time());
    s.push_str(" uht=");
    secs_or_dash(&mut s, e.trail.header_time());
    let _ = write!(s, " retries={} error=\"", e.trail.retries());
    quoted_or_dash(&mut s, e.error.as_ref());
    let _ = write!(
        s,
        "\" bytes_in={} completed={} route=",
        e.trail.bytes_in(),
        u8::from(e.completed)
    );
    match route {
        Some(r) => {
            s.push('"');
            escape(&mut s, r.as_bytes());
            s.push('"');
        }
        None => s.push('-'),
    }
    s.push_str(" instance=\"");
    escape(&mut s, instance.as_bytes());
    s.push_str("\"\n");
    s
}

/// The request target as received: origin-form path and query, or the
/// whole URI for absolute and authority forms.
fn target(e: &Exchange) -> Cow<'_, str> {
    match e.uri.path_and_query() {
        Some(p) if e.uri.authority().is_none() => Cow::Borrowed(p.as_str()),
        _ => Cow::Owned(e.uri.to_string()),
    }
}

fn protocol(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn lossy(v: &HeaderValue) -> Cow<'_, str> {
    String::from_utf8_lossy(v.as_bytes())
}

/// Milliseconds with microsecond precision.
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

fn secs_or_dash(s: &mut String, d: Option<Duration>) {
    match d {
        Some(d) => {
            let _ = write!(s, "{:.3}", d.as_secs_f64());
        }
        None => s.push('-'),
    }
}

fn quoted_or_dash(s: &mut String, v: Option<&HeaderValue>) {
    match v {
        Some(v) if !v.is_empty() => escape(s, v.as_bytes()),
        _ => s.push('-'),
    }
}

/// nginx's `escape=default`: `"`, `\`, control bytes and bytes past ASCII
/// as `\xHH`, so a quoted field always ends at its own quote.
pub fn escape(s: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(s, "\\x{b:02X}");
        } else {
            s.push(char::from(b));
        }
    }
}

/// `2026-12-02T17:20:36.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let (days, secs, ms) = split(t);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `02/Dec/2026:17:20:36 +0000`.
fn clf_time(s: &mut String, t: SystemTime) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs, _) = split(t);
    let (y, m, d) = civil(days);
    let _ = write!(
        s,
        "{d:02}/{}/{y:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

/// Days since the epoch, seconds into the day, milliseconds.
fn split(t: SystemTime) -> (i64, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs();
    ((s / 86_400) as i64, s % 86_400, d.subsec_millis())
}

/// Year, month, day of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_with_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_232_036_123);
        assert_eq!(rfc3339_millis(t), "2026-12-02T17:20:36.123Z");
        let mut s = String::new();
        clf_time(&mut s, t);
        assert_eq!(s, "02/Dec/2026:17:20:36 +0000");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn escape_leaves_no_quote_backslash_or_control_byte() {
        let mut s = String::new();
        escape(&mut s, b"a\"b\\c\nd\re\x1bf\x7f\xc3\xa9 g");
        assert_eq!(s, "a\\x22b\\x5Cc\\x0Ad\\x0De\\x1Bf\\x7F\\xC3\\xA9 g");
    }
}

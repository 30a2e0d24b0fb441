//! The small grammars a config value is written in, shared by the file
//! ([`super::validate`]), the command-line flags and the admin API: each
//! parser returns its own typed error, which the caller places (`At`).

use super::RuntimeShape;
use super::error::{
    CidrError, DurationError, HostPortError, ResolveError, TokenFileError, UnknownPolicy,
    UnknownRuntime,
};
use crate::addr::Cidr;
use crate::balance::{HashOn, Policy};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// The longest duration a value may name: every timeout becomes a deadline
/// `Instant::now() + d`, which must not overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `250ms`, `10s`, `2m`, `1h`; at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| DurationError::Number(s.to_owned()))?;
    let scale_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(DurationError::Unit(s.to_owned())),
    };
    let d = n
        .checked_mul(scale_ms)
        .map(Duration::from_millis)
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| DurationError::TooLong(s.to_owned()))?;
    if d.is_zero() {
        return Err(DurationError::Zero);
    }
    Ok(d)
}

/// Splits `host:port` for a backend given by name.
pub fn split_host_port(s: &str) -> Result<(String, u16), HostPortError> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| HostPortError::NoPort(s.to_owned()))?;
    // Port 0 is nobody's port (addr::BackendAddr::checked says why).
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| HostPortError::Port(s.to_owned()))?;
    if !host_name_ok(host) {
        return Err(HostPortError::Host(s.to_owned()));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// A DNS name (letters, digits, `-`, `.`, `_`; at most 253 bytes).
pub fn host_name_ok(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// A browser origin as the `Origin` header carries it: `http://host`,
/// `https://host:port` (lowercase, no path, no user info).
pub fn origin_ok(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let Ok(parsed) = authority.parse::<http::uri::Authority>() else {
        return false;
    };
    let host = parsed.host();
    matches!(scheme, "http" | "https")
        && !authority.contains(['@', '/'])
        && !authority.ends_with(':')
        && (host.starts_with('[') || host_name_ok(host))
}

/// Resolves `host:port` once (re-resolution is the discovery task's job).
pub fn resolve(addr: &str) -> Result<SocketAddr, ResolveError> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    addr.to_socket_addrs()
        .map_err(|source| ResolveError::Lookup {
            addr: addr.to_owned(),
            source,
        })?
        .next()
        .ok_or_else(|| ResolveError::NoAddress(addr.to_owned()))
}

/// Parses `10.0.0.0/8`, `::1/128`, or a bare IP (a single host). Host bits
/// must be zero, so `10.0.0.1/8` (probably meant as `/32`) is an error.
pub fn parse_cidr(s: &str) -> Result<Cidr, CidrError> {
    let bad = || CidrError::Syntax(s.to_owned());
    let (ip, prefix) = match s.trim().split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s.trim(), None),
    };
    let net: IpAddr = ip.parse().map_err(|_| bad())?;
    let max = if net.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
    };
    if crate::addr::network(net, prefix) != net {
        return Err(CidrError::HostBits(s.to_owned()));
    }
    Ok(Cidr { net, prefix })
}

/// The admin token in `path`: its text without surrounding whitespace (the
/// newline an editor or `echo` adds), and not empty.
pub fn read_token(path: &std::path::Path) -> Result<String, TokenFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty(path.to_owned()));
    }
    Ok(token.to_owned())
}

/// `type/subtype`, `type/*`, `*/*` or `+suffix`, in token characters.
pub fn media_pattern_ok(p: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if let Some(suffix) = p.strip_prefix('+') {
        return token(suffix);
    }
    match p.split_once('/') {
        Some(("*", "*")) => true,
        Some((t, "*")) => token(t),
        Some((t, s)) => token(t) && token(s),
        None => false,
    }
}

impl HashOn {
    fn parse(s: &str) -> Option<HashOn> {
        match s.split_once(':') {
            Some(("header", name)) if !name.is_empty() => {
                http::HeaderName::from_bytes(name.as_bytes())
                    .ok()
                    .map(HashOn::Header)
            }
            Some(("cookie", name)) if !name.is_empty() => Some(HashOn::Cookie(name.to_owned())),
            None if s == "client" => Some(HashOn::Client),
            _ => None,
        }
    }
}

impl RuntimeShape {
    pub fn parse(s: &str) -> Result<RuntimeShape, UnknownRuntime> {
        match s {
            "thread-per-core" => Ok(RuntimeShape::ThreadPerCore),
            "work-stealing" => Ok(RuntimeShape::WorkStealing),
            _ => Err(UnknownRuntime(s.to_owned())),
        }
    }
}

impl Policy {
    /// Parses the `balance` value (also used by `--lb`).
    pub fn parse(s: &str) -> Result<Policy, UnknownPolicy> {
        match s {
            "round-robin" | "rr" => Ok(Policy::RoundRobin),
            "least-conn" | "least-outstanding" => Ok(Policy::LeastConn),
            "p2c" => Ok(Policy::P2c),
            _ => s
                .strip_prefix("hash:")
                .and_then(HashOn::parse)
                .map(Policy::Hash)
                .ok_or_else(|| UnknownPolicy(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_patterns() {
        for ok in [
            "text/html",
            "text/*",
            "*/*",
            "+json",
            "application/vnd.api+json",
        ] {
            assert!(media_pattern_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "json",
            "+",
            "text/",
            "/html",
            "*/html",
            "text/ html",
            "text/h;x",
        ] {
            assert!(!media_pattern_ok(bad), "{bad}");
        }
    }

    #[test]
    fn origins() {
        for ok in [
            "http://localhost:3000",
            "https://ops.example.com",
            "http://[::1]:9090",
        ] {
            assert!(origin_ok(ok), "{ok}");
        }
        for bad in [
            "ops.example.com",
            "ftp://x",
            "https://x/",
            "https://u@x",
            "https://x:",
            "https://",
            "null",
        ] {
            assert!(!origin_ok(bad), "{bad}");
        }
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c = parse_cidr("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        let host = parse_cidr("::1").unwrap();
        assert_eq!(host.prefix, 128);
        assert!(host.contains("::1".parse().unwrap()));
        assert!(!host.contains("127.0.0.1".parse().unwrap()));
        assert!(
            parse_cidr("0.0.0.0/0")
                .unwrap()
                .contains("192.0.2.1".parse().unwrap())
        );
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "::/129",
            "nope",
            "10.0.0.0/",
            "/8",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), Err(DurationError::Zero));
        assert!(matches!(parse_duration("s"), Err(DurationError::Number(_))));
        assert!(matches!(parse_duration("5d"), Err(DurationError::Unit(_))));
        // A deadline is `now + d`: a value that would overflow it is refused.
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        for long in ["8761h", "18446744073709551615s", "5124095576030432h"] {
            assert!(
                matches!(parse_duration(long), Err(DurationError::TooLong(_))),
                "{long}"
            );
        }
    }
}

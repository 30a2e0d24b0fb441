//! The path that routes and rate limits match (stage 2): the request's
//! path in one normal form, so that spellings a backend reads as the same
//! path cannot reach a different route or slip past a limit on a path
//! (review finding 11: `//login` and `/%6Cogin` skipped a limit on `/login`).
//!
//! The request is still forwarded as the client sent it (as nginx does with
//! `proxy_pass` and no URI): only the match uses this form, and a backend
//! that reads the raw spelling differently from this one serves what it
//! reads. Three steps, in the order RFC 3986 §6.2.2 gives them:
//!
//! 1. A `%XX` that encodes an unreserved character (`A-Z a-z 0-9 - . _ ~`)
//!    is decoded (§6.2.2.2: equivalent either way); any other `%xx` keeps
//!    its encoding with its hex digits in upper case (§6.2.2.1), so `%2F`
//!    is not a `/`: a decoded slash would change which segments there are,
//!    and backends differ on it. A `%` not followed by two hex digits is
//!    left alone.
//! 2. Dot segments are removed (§5.2.4): `/a/./b/../c` → `/a/c`, and never
//!    above the root (`/../x` → `/x`). `%2E` counts, being decoded first.
//! 3. Runs of `/` become one (nginx's `merge_slashes`, on by default):
//!    `//login` → `/login`. A trailing `/` stays (`/api/` ≠ `/api`).
//!
//! Case is kept (paths are case-sensitive), and so are `;` parameters and
//! `\`: backends that treat those specially (Tomcat's `;jsessionid`, IIS's
//! backslash) need their own rules. A path that does not start with `/`
//! (`*` is routed as `/` before this) is matched as it is. Config prefixes
//! go through the same function when they are validated.

use std::borrow::Cow;

/// `path` in the normal form above: borrowed when it already is (the
/// common case costs one scan and no allocation).
pub fn normalize(path: &str) -> Cow<'_, str> {
    if !path.starts_with('/') || is_normal(path.as_bytes()) {
        return Cow::Borrowed(path);
    }
    Cow::Owned(normalize_slow(path))
}

/// The three steps on a path that starts with `/`.
fn normalize_slow(path: &str) -> String {
    let decoded = decode_unreserved(path);
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    let mut trailing = false;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        trailing = last;
        match *seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                trailing = false;
            }
        }
    }
    let mut normal = String::with_capacity(decoded.len());
    for seg in &out {
        normal.push('/');
        normal.push_str(seg);
    }
    if trailing || out.is_empty() {
        normal.push('/');
    }
    normal
}

/// No `%`, no empty segment before the last, no `.` or `..` segment.
fn is_normal(path: &[u8]) -> bool {
    if path.contains(&b'%') {
        return false;
    }
    // Every segment starts after a '/'.
    let mut segments = path[1..].split(|&b| b == b'/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if (seg.is_empty() && !last) || seg == b"." || seg == b".." {
            return false;
        }
    }
    true
}

fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| hex(*c)),
                b.get(i + 2).and_then(|c| hex(*c)),
            )
        {
            let c = h << 4 | l;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(c));
            } else {
                out.push('%');
                out.push(char::from(b[i + 1].to_ascii_uppercase()));
                out.push(char::from(b[i + 2].to_ascii_uppercase()));
            }
            i += 3;
            continue;
        }
        // Copies up to the next '%' (a char boundary: '%' is ASCII).
        let next = b[i + 1..]
            .iter()
            .position(|&c| c == b'%')
            .map_or(b.len(), |p| i + 1 + p);
        out.push_str(&path[i..next]);
        i = next;
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    char::from(c).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::{normalize, normalize_slow};
    use std::borrow::Cow;

    #[test]
    fn spellings_of_one_path_match_as_one() {
        for (raw, normal) in [
            ("//login", "/login"),
            ("///login//", "/login/"),
            ("/%6Cogin", "/login"),
            ("/%6cogin", "/login"),
            ("/a/./login", "/a/login"),
            ("/a/b/../../login", "/login"),
            ("/../login", "/login"),
            ("/%2e%2E/login", "/login"),
            ("/x/%2e%2e/login", "/login"),
            ("/a/..", "/"),
            ("/a/.", "/a/"),
            ("/.", "/"),
            ("/api/v1/", "/api/v1/"),
            ("/%7Euser", "/~user"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb/..", "/"),
            ("/100%", "/100%"),
            ("/%zz/%4", "/%zz/%4"),
            ("/é//x", "/é/x"),
        ] {
            assert_eq!(normalize(raw), normal, "{raw}");
            // Normal is a fixed point.
            assert_eq!(normalize(normal), normal, "{normal}");
        }
    }

    /// Every path of up to six characters from the ones that matter: the
    /// result is normal (a fixed point, no empty or dot segment), and the
    /// check that skips the work for normal paths agrees with the work.
    #[test]
    fn every_short_path_normalises_to_a_fixed_point() {
        const ALPHABET: &[u8] = b"/.%2eEaF";
        let mut path = Vec::new();
        let mut todo = vec![b"/".to_vec()];
        while let Some(p) = todo.pop() {
            let s = std::str::from_utf8(&p).expect("ASCII");
            let n = normalize(s);
            assert!(n.starts_with('/'), "{s} → {n}");
            assert_eq!(normalize(&n), n, "{s} → {n} is not a fixed point");
            let segments: Vec<&str> = n[1..].split('/').collect();
            for (i, seg) in segments.iter().enumerate() {
                let last = i + 1 == segments.len();
                assert!(!seg.is_empty() || last, "{s} → {n}");
                assert!(*seg != "." && *seg != "..", "{s} → {n}");
            }
            // The shortcut for normal paths agrees with the full work.
            assert_eq!(normalize_slow(s), n, "{s}");
            if p.len() < 7 {
                for &c in ALPHABET {
                    path.clone_from(&p);
                    path.push(c);
                    todo.push(path.clone());
                }
            }
        }
    }

    #[test]
    fn a_normal_path_is_borrowed() {
        for p in ["/", "/login", "/api/v1/", "/a.b/..c/.d", "*", ""] {
            assert!(matches!(normalize(p), Cow::Borrowed(_)), "{p}");
        }
    }
}

//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the
//! `traceparent` and `tracestate` request headers, parsed strictly and
//! written back for the next hop.
//!
//! Shared by the proxy (`sluice::observe::trace`) and the services, so that
//! every hop reads the headers the same way. Nothing here allocates except
//! [`TraceParent::to_string`]'s caller-visible text; ids come from
//! `fastrand`'s per-thread generator (fast, not cryptographic: trace ids
//! need to be unique, not secret).

use std::fmt;

/// The `traceparent` header's name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header's name.
pub const TRACESTATE: &str = "tracestate";
/// Most list members a `tracestate` may have (W3C §3.3.1.1); past it the
/// whole header is dropped.
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// Most bytes a `tracestate` may have, all its header lines joined by
/// commas; past it the whole header is dropped.
pub const MAX_TRACESTATE_BYTES: usize = 512;
/// Length of a version-00 `traceparent`: `00-` 32 hex `-` 16 hex `-` 2 hex.
pub const TRACEPARENT_LEN: usize = 55;
/// The sampled bit of the trace flags.
pub const FLAG_SAMPLED: u8 = 0x01;

/// A 16-byte trace id; never all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id; never all zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A random, non-zero trace id.
    pub fn random() -> TraceId {
        loop {
            let id = fastrand::u128(..).to_be_bytes();
            if id != [0; 16] {
                return TraceId(id);
            }
        }
    }
}

impl SpanId {
    /// A random, non-zero span id.
    pub fn random() -> SpanId {
        SpanId(fastrand::u64(1..).to_be_bytes())
    }
}

/// One `traceparent`: the trace, the caller's span and the trace flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    /// The span that made this request (the parent of the receiver's).
    pub parent_id: SpanId,
    pub flags: u8,
}

impl TraceParent {
    /// A new trace: random ids, sampled or not.
    pub fn new_root(sampled: bool) -> TraceParent {
        TraceParent {
            trace_id: TraceId::random(),
            parent_id: SpanId::random(),
            flags: if sampled { FLAG_SAMPLED } else { 0 },
        }
    }

    /// Parses a version-00 `traceparent` strictly: exactly 55 bytes,
    /// lowercase hex, `-` separators, non-zero ids. Anything else (another
    /// version included: version 00 is the only one defined) is `None`, and
    /// the receiver starts a new trace (W3C §3.2.2: "restart the trace").
    pub fn parse(v: &[u8]) -> Option<TraceParent> {
        if v.len() != TRACEPARENT_LEN || &v[..3] != b"00-" || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let mut trace = [0u8; 16];
        hex_into(&v[3..35], &mut trace)?;
        let mut parent = [0u8; 8];
        hex_into(&v[36..52], &mut parent)?;
        let mut flags = [0u8; 1];
        hex_into(&v[53..55], &mut flags)?;
        if trace == [0; 16] || parent == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id: TraceId(trace),
            parent_id: SpanId(parent),
            flags: flags[0],
        })
    }

    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// The context for the next hop when `span` is this hop's span: same
    /// trace and flags, `span` as the parent.
    pub fn child(&self, span: SpanId) -> TraceParent {
        TraceParent {
            parent_id: span,
            ..*self
        }
    }

    /// The header value, 55 ASCII bytes.
    pub fn encode(&self) -> [u8; TRACEPARENT_LEN] {
        let mut out = [b'-'; TRACEPARENT_LEN];
        out[0] = b'0';
        out[1] = b'0';
        hex_from(&self.trace_id.0, &mut out[3..35]);
        hex_from(&self.parent_id.0, &mut out[36..52]);
        hex_from(&[self.flags], &mut out[53..55]);
        out
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.encode();
        // Only ASCII hex and '-' are written by `encode`.
        f.write_str(std::str::from_utf8(&bytes).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Whether the `tracestate` header lines `lines` (in order; a receiver
/// joins them with commas) form a valid list within the bounds: at most
/// [`MAX_TRACESTATE_MEMBERS`] members and [`MAX_TRACESTATE_BYTES`] bytes,
/// each member `key=value` by the W3C grammar, no key twice. Empty members
/// (`a=1,,b=2`) are allowed and not counted. A list that fails is dropped
/// whole: W3C §3.3.1.1 lets a vendor drop what it cannot keep intact, and a
/// partial list would misstate other vendors' data.
pub fn tracestate_ok<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> bool {
    let mut bytes = 0usize;
    let mut keys: [&[u8]; MAX_TRACESTATE_MEMBERS] = [&[]; MAX_TRACESTATE_MEMBERS];
    let mut count = 0usize;
    for (i, line) in lines.into_iter().enumerate() {
        bytes += line.len() + usize::from(i > 0);
        if bytes > MAX_TRACESTATE_BYTES {
            return false;
        }
        for member in line.split(|&b| b == b',') {
            let member = trim_ows(member);
            if member.is_empty() {
                continue;
            }
            let Some(key) = member_key(member) else {
                return false;
            };
            if count == MAX_TRACESTATE_MEMBERS || keys[..count].contains(&key) {
                return false;
            }
            keys[count] = key;
            count += 1;
        }
    }
    true
}

/// The key of one `key=value` list member, if both follow the grammar:
/// key `lcalpha 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/")`, or a
/// multi-tenant `tenant@system` (tenant up to 241 characters starting with
/// a letter or digit, system up to 14 starting with a letter); value 1 to
/// 256 printable ASCII characters but `,` and `=`, not ending in a space.
fn member_key(member: &[u8]) -> Option<&[u8]> {
    let eq = member.iter().position(|&b| b == b'=')?;
    let (key, value) = (&member[..eq], &member[eq + 1..]);
    let key_char = |b: u8| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/');
    let key_ok = match key.iter().position(|&b| b == b'@') {
        None => {
            (1..=256).contains(&key.len())
                && key[0].is_ascii_lowercase()
                && key.iter().all(|&b| key_char(b))
        }
        Some(at) => {
            let (tenant, system) = (&key[..at], &key[at + 1..]);
            (1..=241).contains(&tenant.len())
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && tenant.iter().all(|&b| key_char(b))
                && (1..=14).contains(&system.len())
                && system[0].is_ascii_lowercase()
                && system.iter().all(|&b| key_char(b))
        }
    };
    let value_ok = (1..=256).contains(&value.len())
        && value
            .iter()
            .all(|&b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && value.last() != Some(&b' ');
    (key_ok && value_ok).then_some(key)
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Lowercase hex only (W3C: "HEXDIGLC"); `None` on anything else.
fn hex_into(src: &[u8], dst: &mut [u8]) -> Option<()> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (pair, out) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *out = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(())
}

fn hex_from(src: &[u8], dst: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in src.iter().zip(dst.chunks_exact_mut(2)) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

#[cfg(test)]
mod tests;

//! What both harnesses share: the bench's body. A copy, not a dependency,
//! so that this crate stays outside the workspace and builds in seconds; the
//! C zlib row of `levels` (8332 B at level 1, 6777 B at 6) matches what the
//! bench measured from nginx, so the bytes are the same.

/// The body of bench/src/origin.rs `json_like` (same generator, same bytes),
/// which compresses about 8:1 at gzip level 1 like the reference body.
pub fn json_like(len: usize) -> Vec<u8> {
    let mut out = String::with_capacity(len + 256);
    out.push('[');
    let mut i: u64 = 0;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    while out.len() < len - 160 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"id\":{i},\"user\":\"user{}\",\"score\":{},\"active\":{},\"tags\":[\"t{}\",\"t{}\"],\"note\":\"item {} of the list\"}}",
            x % 100,
            x % 10,
            x.is_multiple_of(3),
            (x >> 20) % 8,
            (x >> 30) % 8,
            i
        ));
        i += 1;
    }
    out.push(']');
    while out.len() < len {
        out.push(' ');
    }
    out.truncate(len);
    out.into_bytes()
}

use super::*;

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn a_valid_traceparent_round_trips() {
    let tp = TraceParent::parse(VALID.as_bytes()).expect("valid");
    assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(tp.parent_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(tp.flags, 0x01);
    assert!(tp.sampled());
    assert_eq!(tp.to_string(), VALID);
    let unsampled = TraceParent::parse(&VALID.replace("-01", "-00").into_bytes()).expect("valid");
    assert!(!unsampled.sampled());
    // Flags other than sampled are kept as they came.
    let other = TraceParent::parse(&VALID.replace("-01", "-03").into_bytes()).expect("valid");
    assert_eq!(other.flags, 0x03);
    assert_eq!(other.to_string(), VALID.replace("-01", "-03"));
}

#[test]
fn every_invalid_form_is_refused() {
    let bad = [
        // Other versions, and the forbidden ff.
        VALID.replacen("00-", "01-", 1),
        VALID.replacen("00-", "ff-", 1),
        // Uppercase hex anywhere.
        VALID.to_uppercase(),
        VALID.replace("4bf92f", "4BF92F"),
        VALID.replace("00f067aa", "00F067AA"),
        VALID.replace("-01", "-0A"),
        // All-zero ids.
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01".into(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01".into(),
        // Wrong lengths and separators.
        VALID[..54].into(),
        format!("{VALID}-"),
        format!("{VALID} "),
        format!(" {VALID}"),
        VALID.replace('-', "_"),
        VALID.replacen("-4bf", "_4bf", 1),
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01".into(),
        // Not hex.
        VALID.replace("4bf9", "4bg9"),
        VALID.replace("00f0", "00x0"),
        VALID.replace("-01", "-0g"),
        String::new(),
        "00".into(),
    ];
    for b in &bad {
        assert_eq!(TraceParent::parse(b.as_bytes()), None, "{b:?}");
    }
}

#[test]
fn new_ids_are_valid_and_differ() {
    let a = TraceParent::new_root(true);
    let b = TraceParent::new_root(false);
    assert_ne!(a.trace_id, b.trace_id);
    assert!(a.sampled() && !b.sampled());
    for tp in [a, b] {
        assert_eq!(TraceParent::parse(&tp.encode()), Some(tp));
    }
    let span = SpanId::random();
    let child = a.child(span);
    assert_eq!(
        (child.trace_id, child.parent_id, child.flags),
        (a.trace_id, span, a.flags)
    );
}

#[test]
fn tracestate_members_follow_the_grammar() {
    let ok = |s: &str| tracestate_ok([s.as_bytes()]);
    assert!(ok("congo=t61rcWkgMzE"));
    assert!(ok("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    assert!(ok("a=1 , b=2,,\tc=3"));
    assert!(ok("tenant1@vendor=x,fw529a3039@dt=FW4"));
    assert!(ok("a*/_-9=value with spaces"));
    assert!(ok(""));
    for bad in [
        "Upper=1",
        "9a=1",
        "a",
        "a=",
        "=1",
        "a=1,a=2",
        "a=b=c",
        "a=x\u{1}",
        "a=\u{7f}",
        "@vendor=1",
        "tenant@=1",
        "tenant@Vendor=1",
        "tenant@toolongsystemname=1",
    ] {
        assert!(!ok(bad), "{bad:?}");
    }
    // Two header lines are one list: a key in both is a duplicate.
    assert!(tracestate_ok([&b"a=1"[..], &b"b=2"[..]]));
    assert!(!tracestate_ok([&b"a=1"[..], &b"a=2"[..]]));
}

#[test]
fn tracestate_bounds_hold() {
    let members = |n: usize| {
        (0..n)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",")
    };
    assert!(tracestate_ok([members(32).as_bytes()]));
    assert!(!tracestate_ok([members(33).as_bytes()]));
    // 32 members over two lines, and 33.
    let (a, b) = (members(16), members(16).replace('k', "j"));
    assert!(tracestate_ok([a.as_bytes(), b.as_bytes()]));
    let c = format!("{b},x=1");
    assert!(!tracestate_ok([a.as_bytes(), c.as_bytes()]));
    // 512 bytes exactly, then 513.
    let fill = |n: usize| {
        let head = format!("a={},b={}", "v".repeat(250), "v".repeat(250));
        format!("{head},c={}", "v".repeat(n - head.len() - 3))
    };
    assert_eq!(fill(512).len(), 512);
    assert!(tracestate_ok([fill(512).as_bytes()]));
    assert!(!tracestate_ok([fill(513).as_bytes()]));
    // Over two lines the joining comma counts: 256 + 1 + 255 = 512.
    let a = format!("a={}", "v".repeat(254));
    let b = |n: usize| format!("b={}", "v".repeat(n));
    assert!(tracestate_ok([a.as_bytes(), b(253).as_bytes()]));
    assert!(!tracestate_ok([a.as_bytes(), b(254).as_bytes()]));
}

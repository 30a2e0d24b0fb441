//! `[upstream.NAME]`'s TLS trust and client certificate keys, by field.

use super::*;
use crate::config::{ClientCert, UpstreamVerify};

fn group(tls: bool, extra: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:1\"\n[upstream.api]\nbackends = [\"127.0.0.1:9\"]\ntls = {tls}\n{extra}\n"
    )
}

fn path(key: &str, p: &Path) -> String {
    format!("{key} = {:?}\n", p.display().to_string())
}

fn verify(text: &str) -> UpstreamVerify {
    let c = check(text).expect("valid");
    c.upstreams[0].tls.as_ref().expect("tls").verify.clone()
}

#[test]
fn each_way_of_trusting_a_backend_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [(cert, _), _] = two_pairs(dir.path());
    assert_eq!(
        verify(&group(true, "")),
        UpstreamVerify::Roots { ca_file: None }
    );
    assert_eq!(
        verify(&group(true, &path("pinned_cert", &cert))),
        UpstreamVerify::Pinned(cert.clone())
    );
    assert_eq!(
        verify(&group(true, "insecure_skip_verify = true")),
        UpstreamVerify::Insecure
    );
    // `false` is the default spelled out.
    assert_eq!(
        verify(&group(true, "insecure_skip_verify = false")),
        UpstreamVerify::Roots { ca_file: None }
    );
}

#[test]
fn two_ways_of_trusting_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [(cert, _), _] = two_pairs(dir.path());
    let both = format!("{}{}", path("ca_file", &cert), path("pinned_cert", &cert));
    let err = check(&group(true, &both)).expect_err("ca_file and pinned_cert");
    let text = err.to_string();
    assert!(
        text.contains("upstream.api.pinned_cert: give one of"),
        "{text}"
    );
    assert!(text.contains("not ca_file as well"), "{text}");
    let err = check(&group(
        true,
        &format!("{}insecure_skip_verify = true", path("pinned_cert", &cert)),
    ))
    .expect_err("pinned and insecure");
    let text = err.to_string();
    assert!(text.contains("upstream.api.insecure_skip_verify"), "{text}");
    assert!(text.contains("not pinned_cert as well"), "{text}");
}

#[test]
fn a_pinned_file_must_hold_certificates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [(_, key), _] = two_pairs(dir.path());
    let err = check(&group(true, &path("pinned_cert", &key))).expect_err("a key");
    let text = err.to_string();
    assert!(text.contains("upstream.api.pinned_cert: "), "{text}");
    assert!(text.contains("no certificate"), "{text}");
    let missing = dir.path().join("absent.pem");
    let err = check(&group(true, &path("pinned_cert", &missing))).expect_err("absent");
    assert!(err.to_string().contains("no such file"), "{err}");
}

#[test]
fn a_client_certificate_needs_its_key_and_the_key_must_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [(cert_a, key_a), (_, key_b)] = two_pairs(dir.path());
    let pair = format!(
        "{}{}",
        path("client_cert", &cert_a),
        path("client_key", &key_a)
    );
    let c = check(&group(true, &pair)).expect("a pair");
    assert_eq!(
        c.upstreams[0].tls.as_ref().expect("tls").client_cert,
        Some(ClientCert {
            cert: cert_a.clone(),
            key: key_a.clone(),
        })
    );
    let err = check(&group(true, &path("client_cert", &cert_a))).expect_err("no key");
    assert!(
        err.to_string()
            .contains("client_cert and client_key go together"),
        "{err}"
    );
    let mismatched = format!(
        "{}{}",
        path("client_cert", &cert_a),
        path("client_key", &key_b)
    );
    let err = check(&group(true, &mismatched)).expect_err("another key");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn tls_keys_on_a_plain_group_are_an_error_not_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [(cert, _), _] = two_pairs(dir.path());
    for extra in [
        path("ca_file", &cert),
        path("pinned_cert", &cert),
        "server_name = \"api.internal\"".to_owned(),
        "insecure_skip_verify = true".to_owned(),
        path("client_cert", &cert),
    ] {
        let err = check(&group(false, &extra)).expect_err(&extra);
        assert!(
            err.to_string().contains("needs tls = true"),
            "{extra}: {err}"
        );
    }
}

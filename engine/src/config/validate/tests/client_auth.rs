//! A TLS listener's `client_ca` and `client_auth`, and
//! `[forwarding] client_cert_header`, by field.

use super::*;
use crate::config::ClientAuth;

fn listener(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:1\"\n{extra}\n[[listener.tls]]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

fn ca(p: &Path) -> String {
    format!("client_ca = {:?}", p.display().to_string())
}

#[test]
fn client_certificates_are_required_by_default_or_requested() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [(cert, key), _] = two_pairs(dir.path());
    let c = check(&listener(&cert, &key, &ca(&cert))).expect("valid");
    assert_eq!(
        c.listeners[0].client_auth,
        Some(ClientAuth {
            ca_file: cert.clone(),
            required: true,
        })
    );
    let text = format!("{}\nclient_auth = \"request\"", ca(&cert));
    let c = check(&listener(&cert, &key, &text)).expect("valid");
    assert!(!c.listeners[0].client_auth.as_ref().expect("auth").required);
    assert_eq!(
        check(&listener(&cert, &key, "")).expect("valid").listeners[0].client_auth,
        None
    );
}

#[test]
fn client_auth_errors_name_their_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [(cert, key), _] = two_pairs(dir.path());
    let err = check(&listener(&cert, &key, "client_auth = \"request\"")).expect_err("no CA");
    assert!(
        err.to_string()
            .contains("listener[0].client_auth: needs client_ca"),
        "{err}"
    );
    let text = format!("{}\nclient_auth = \"optional\"", ca(&cert));
    let err = check(&listener(&cert, &key, &text)).expect_err("unknown mode");
    assert!(
        err.to_string().contains("expected require or request"),
        "{err}"
    );
    let err = check(&listener(&cert, &key, &ca(&key))).expect_err("a key is no CA");
    assert!(err.to_string().contains("listener[0].client_ca: "), "{err}");
    let plain = format!("[[listener]]\naddress = \"127.0.0.1:1\"\n{}\n", ca(&cert));
    let err = check(&plain).expect_err("no TLS");
    assert!(err.to_string().contains("needs a TLS listener"), "{err}");
}

#[test]
fn the_client_cert_header_is_a_field_name() {
    let base = "[[listener]]\naddress = \"127.0.0.1:1\"\n[forwarding]\n";
    let c = check(&format!("{base}client_cert_header = \"X-Client-Cert\"")).expect("valid");
    assert_eq!(c.forwarding.client_cert_header, "x-client-cert");
    let c = check(base).expect("valid");
    assert_eq!(c.forwarding.client_cert_header, "x-forwarded-client-cert");
    let err = check(&format!("{base}client_cert_header = \"bad name\"")).expect_err("a space");
    assert!(
        err.to_string()
            .contains("forwarding.client_cert_header: \"bad name\""),
        "{err}"
    );
}

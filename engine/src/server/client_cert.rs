//! What a client's verified TLS certificate tells backends, in Envoy's
//! `X-Forwarded-Client-Cert` form: `Hash=<SHA-256 of the DER, hex>;
//! Subject="<distinguished name>"`. Made once per connection, after the
//! handshake verified the certificate (`server::tls`); the field is
//! removed from whatever clients send (`proxy::headers`), so a backend can
//! trust it.

use http::HeaderValue;
use rustls::ServerConnection;
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The field for the client's certificate, if it sent one (a listener
/// without `client_ca` never asks, and rustls only keeps one it verified).
pub fn field(tls: &ServerConnection) -> Option<HeaderValue> {
    let leaf = tls.peer_certificates()?.first()?;
    Some(value(leaf.as_ref()))
}

/// `Hash=…;Subject="…"` for a certificate's DER; the subject is left out
/// if the certificate cannot be parsed (the hash still names it).
pub fn value(der: &[u8]) -> HeaderValue {
    let mut out = String::with_capacity(160);
    out.push_str("Hash=");
    for b in Sha256::digest(der) {
        let _ = write!(out, "{b:02x}");
    }
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
        out.push_str(";Subject=\"");
        quote(&mut out, &cert.subject().to_string());
        out.push('"');
    }
    HeaderValue::from_str(&out).expect("hex and escaped visible ASCII")
}

/// Envoy's quoting: `"` and `\` escaped with `\`; anything outside
/// visible ASCII and space (a DN may hold any UTF-8, or control bytes a
/// hostile CA put there) as `\xHH` per byte, so the value is always a
/// valid field and never breaks the quotes.
fn quote(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            b' '..=b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn hash_and_subject_in_envoys_form() {
        let der = cert("client one");
        let v = value(&der);
        let v = v.to_str().expect("ascii");
        let hash: String = Sha256::digest(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(v, format!("Hash={hash};Subject=\"CN=client one, O=Acme\""));
    }

    #[test]
    fn quotes_backslashes_and_non_ascii_cannot_break_out() {
        let der = cert("a\"b\\c;Hash=evil é\u{1}");
        let v = value(&der);
        let v = v.to_str().expect("ascii");
        assert!(
            v.ends_with(r#";Subject="CN=a\"b\\c;Hash=evil \xc3\xa9\x01, O=Acme""#),
            "{v}"
        );
    }

    #[test]
    fn an_unparsable_certificate_still_has_its_hash() {
        let v = value(b"not a certificate");
        assert!(v.to_str().unwrap().starts_with("Hash="));
        assert!(!v.to_str().unwrap().contains("Subject"));
    }
}

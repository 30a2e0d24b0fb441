//! `[admin]`: allow lists and the token, by field.

use super::*;

#[test]
fn admin_allow_lists_are_validated_by_field() {
    let file = |key: &str, value: &str| {
        format!(
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[admin]\naddress = \"127.0.0.1:2\"\n{key} = [{value}]\n"
        )
    };
    let c = check(&file("allowed_sources", "\"10.0.0.0/8\", \"::1\"")).expect("valid");
    let admin = c.admin.expect("admin");
    assert_eq!(admin.allowed_sources.len(), 2);
    assert!(admin.allowed_sources[0].contains([10, 9, 8, 7].into()));
    let c = check(&file("allowed_hosts", "\"Proxy.Internal\"")).expect("valid");
    assert_eq!(c.admin.expect("admin").allowed_hosts, ["proxy.internal"]);
    let c = check(&file("allowed_origins", "\"https://Ops.example.com\"")).expect("valid");
    assert_eq!(
        c.admin.expect("admin").allowed_origins,
        ["https://ops.example.com"]
    );
    // The default: changes from loopback only.
    let c = check("[[listener]]\naddress = \"127.0.0.1:1\"\n[admin]\naddress = \"127.0.0.1:2\"\n")
        .unwrap();
    assert_eq!(
        c.admin.expect("admin").allowed_sources,
        crate::addr::Cidr::LOOPBACK
    );

    for (key, value, says) in [
        (
            "allowed_sources",
            "\"10.0.0.1/8\"",
            "admin.allowed_sources[0]: \"10.0.0.1/8\": bits are set",
        ),
        (
            "allowed_sources",
            "\"::1\", \"everyone\"",
            "admin.allowed_sources[1]: \"everyone\": expected an IP",
        ),
        (
            "allowed_hosts",
            "\"a b\"",
            "admin.allowed_hosts[0]: \"a b\" is not a host name",
        ),
        (
            "allowed_origins",
            "\"https://x.example/\"",
            "admin.allowed_origins[0]: \"https://x.example/\" is not an origin",
        ),
    ] {
        let err = check(&file(key, value)).unwrap_err().to_string();
        assert!(
            err.starts_with("test.toml:5:") && err.contains(says),
            "{err}"
        );
    }
}

#[test]
fn the_admin_token_comes_from_the_file_or_a_token_file() {
    let dir = tempfile_dir();
    let token = dir.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let file = |keys: &str| {
        format!(
            "[[listener]]\naddress = \"127.0.0.1:1\"\n[admin]\naddress = \"127.0.0.1:2\"\n{keys}\n"
        )
    };
    let c = check(&file(&format!(
        "token_file = {:?}",
        token.display().to_string()
    )))
    .unwrap();
    assert_eq!(c.admin.unwrap().token.as_deref(), Some("s3cret"));
    let c = check(&file("token = \"t\"")).unwrap();
    assert_eq!(c.admin.unwrap().token.as_deref(), Some("t"));

    let both = format!(
        "token = \"t\"\ntoken_file = {:?}",
        token.display().to_string()
    );
    let err = check(&file(&both)).unwrap_err().to_string();
    assert!(
        err.starts_with("test.toml:6:14: admin.token_file: give token"),
        "{err}"
    );
    std::fs::write(&token, "\n").unwrap();
    let err = check(&file(&format!(
        "token_file = {:?}",
        token.display().to_string()
    )))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("admin.token_file: ") && err.contains("holds no token"),
        "{err}"
    );
    let err = check(&file("token_file = \"/nonexistent/token\""))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("admin.token_file: cannot read /nonexistent/token"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory for one test's files (the engine has no tempfile).
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sluice-validate-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

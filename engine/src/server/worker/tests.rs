use super::*;

#[test]
fn connections_from_one_address_to_one_address_share_its_strings() {
    let mut last = LastClient::default();
    let server: SocketAddr = "10.9.0.1:443".parse().unwrap();
    let a = last.strings("10.0.0.1:5000".parse().unwrap(), server);
    let same_ip = last.strings("10.0.0.1:5001".parse().unwrap(), server);
    assert!(Arc::ptr_eq(&a, &same_ip));
    let other = last.strings("10.0.0.2:5000".parse().unwrap(), server);
    assert!(!Arc::ptr_eq(&a, &other));
    assert_eq!(other.ip, "10.0.0.2");
    assert_eq!(other.forwarded_for, "for=10.0.0.2");
    assert_eq!(other.server, server);
    // Another local address (a wildcard listener): its own strings.
    let elsewhere = "10.9.0.2:443".parse().unwrap();
    let moved = last.strings("10.0.0.2:5000".parse().unwrap(), elsewhere);
    assert!(!Arc::ptr_eq(&other, &moved));
    assert_eq!(moved.server, elsewhere);
}

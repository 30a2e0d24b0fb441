use super::*;

#[test]
fn connections_from_one_address_share_its_strings() {
    let mut last = LastClient::default();
    let a = last.strings("10.0.0.1:5000".parse().unwrap());
    let same_ip = last.strings("10.0.0.1:5001".parse().unwrap());
    assert!(Arc::ptr_eq(&a, &same_ip));
    let other = last.strings("10.0.0.2:5000".parse().unwrap());
    assert!(!Arc::ptr_eq(&a, &other));
    assert_eq!(other.ip, "10.0.0.2");
    assert_eq!(other.forwarded_for, "for=10.0.0.2");
}

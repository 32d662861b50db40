use super::rest::{self, RestError};
use super::*;

#[test]
fn ice_server_json_takes_one_url_or_many_and_writes_an_array() {
    let list = IceServer::parse_list(
        r#"[{"urls":"stun:198.51.100.1"},
            {"urls":["turn:relay.example:3479?transport=tcp","turns:[2001:db8::1]"],
             "username":"u","credential":"p"}]"#,
    )
    .unwrap();
    assert_eq!(list[0].urls, ["stun:198.51.100.1"]);
    let urls = list[1].parsed_urls().unwrap();
    assert_eq!(urls[0].to_string(), "turn:relay.example:3479?transport=tcp");
    assert_eq!(
        urls[1].to_string(),
        "turns:[2001:db8::1]:5349?transport=tcp"
    );
    assert_eq!(urls[1].authority(), "[2001:db8::1]:5349");
    let written = serde_json::to_string(&list[0]).unwrap();
    assert_eq!(written, r#"{"urls":["stun:198.51.100.1"]}"#);
}

#[test]
fn default_ports_and_transports_follow_rfc_7064_and_7065() {
    let u: IceUrl = "stun:example.org".parse().unwrap();
    assert_eq!((u.port, u.transport), (3478, IceTransport::Udp));
    let u: IceUrl = "TURN:10.0.0.1:9?Transport=TCP".parse().unwrap();
    assert_eq!(
        (u.scheme, u.port, u.transport),
        (IceUrlScheme::Turn, 9, IceTransport::Tcp)
    );
    let u: IceUrl = "turns:example.org".parse().unwrap();
    assert_eq!((u.port, u.transport), (5349, IceTransport::Tcp));
}

#[test]
fn bad_urls_are_refused_with_the_reason() {
    for bad in [
        "stun",
        "http://x",
        "stun://host:3478",
        "stun:host?transport=udp",
        "turn:host?transport=sctp",
        "stun:host:0",
        "stun:host:70000",
        "stun:2001:db8::1",
        "stun:[not-v6]",
        "stun:",
        "stun:ho st",
    ] {
        let err = bad.parse::<IceUrl>().unwrap_err();
        assert!(
            matches!(&err, IceServerError::BadUrl { url, .. } if url == bad),
            "{bad}: {err}"
        );
    }
}

#[test]
fn turn_needs_credentials_and_lists_are_bounded() {
    let err = IceServer::parse_list(r#"[{"urls":"turn:h"}]"#).unwrap_err();
    assert!(matches!(err, IceServerError::MissingCredentials(u) if u == "turn:h"));
    let many = format!(
        "[{}]",
        vec![r#"{"urls":"stun:h"}"#; server::MAX_ICE_SERVERS + 1].join(",")
    );
    assert!(matches!(
        IceServer::parse_list(&many),
        Err(IceServerError::TooMany { count: 17, .. })
    ));
    assert!(matches!(
        IceServer::parse_list(r#"[{"urls":[]}]"#),
        Err(IceServerError::NoUrl)
    ));
    assert!(matches!(
        IceServer::parse_list(r#"{"urls":"stun:h"}"#),
        Err(IceServerError::Json(_))
    ));
}

#[test]
fn policy_and_path_names() {
    assert_eq!("RELAY".parse::<IcePolicy>().unwrap(), IcePolicy::Relay);
    assert_eq!("all".parse::<IcePolicy>().unwrap(), IcePolicy::All);
    assert!("direct".parse::<IcePolicy>().is_err());
    assert_eq!(
        serde_json::to_string(&PathKind::Srflx).unwrap(),
        r#""srflx""#
    );
    assert_eq!(PathKind::Relay.to_string(), "relay");
}

#[test]
fn rest_password_matches_coturn_s_hmac_sha1_base64() {
    // HMAC-SHA1(key "secret", "1700000000:alice"), computed independently with
    // `printf %s 1700000000:alice | openssl dgst -sha1 -hmac secret -binary | base64`.
    assert_eq!(rest::password(b"secret", "1700000000:alice"), REST_VECTOR);
    let c = rest::mint(b"secret", "alice", 1_700_000_000).unwrap();
    assert_eq!(c.username, "1700000000:alice");
    assert_eq!(c.password, REST_VECTOR);
    assert_ne!(rest::password(b"other", "1700000000:alice"), REST_VECTOR);
}

const REST_VECTOR: &str = "d8soP47RbdIKLDUOpnJPVQyq5Ts=";

#[test]
fn rest_usernames_expire_and_must_be_well_formed() {
    assert_eq!(rest::check_username("100:x", 100), Ok(100));
    assert_eq!(
        rest::check_username("100:x", 101),
        Err(RestError::Expired {
            expired_unix_s: 100,
            now_unix_s: 101
        })
    );
    for bad in ["x", ":x", "-1:x", "1e3:x", "99999999999999999999999:x"] {
        assert_eq!(
            rest::check_username(bad, 0),
            Err(RestError::Malformed),
            "{bad}"
        );
    }
    assert_eq!(rest::mint(b"s", "a:b", 1), Err(RestError::BadName));
}

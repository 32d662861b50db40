//! Unit tests of LAN discovery: instance names, TXT records and what is accepted from the network.

use super::*;
use mdns_sd::{ResolvedService, ServiceInfo};

const DK: [u8; 32] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
];

/// `DK` with its last byte changed: same name prefix, different key.
fn same_prefix_other_key() -> [u8; 32] {
    let mut k = DK;
    k[31] ^= 1;
    k
}

fn fullname(label: &str) -> String {
    format!("{label}.{SERVICE_TYPE}")
}

#[test]
fn names_have_the_documented_form() {
    let name = instance_name(&DK, 0x0000_abcd);
    assert_eq!(name, "00112233445566778899aabbccddeeff-0000abcd");
    assert!(name.len() <= 63, "one DNS label");
    assert_eq!(
        txt_value(&DK),
        "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"
    );
}

#[test]
fn names_and_txt_values_round_trip() {
    let name = instance_name(&DK, u32::MAX);
    assert_eq!(parse_instance_name(&name).unwrap()[..], DK[..16]);
    assert_eq!(instance_label(&fullname(&name)), Some(name.as_str()));
    assert_eq!(parse_txt_value(txt_value(&DK).as_bytes()), Some(DK));
    // Hex digits of either case, and the suffix without regard to case.
    let upper = fullname(&name).to_ascii_uppercase();
    assert!(instance_matches(
        &DK,
        &upper,
        Some(txt_value(&DK).to_ascii_uppercase().as_bytes())
    ));
}

#[test]
fn malformed_names_are_rejected() {
    let good = instance_name(&DK, 7);
    let bad_labels = [
        String::new(),
        "-".into(),
        "x".into(),
        good.replace('-', ""),
        good.replace('-', "_"),
        format!("{good}0"),
        good[1..].to_string(),
        format!("{}-{}", &good[..32], "0000000g"),
        format!("{}-{}", "g".repeat(32), "00000000"),
        format!("{}-{}-0", &good[..32], "00000000"),
        // Multi-byte characters with the right byte lengths.
        format!("{}-{}", "é".repeat(16), "00000000"),
        format!("{}-{}", &good[..32], "éééé"),
    ];
    for label in &bad_labels {
        assert_eq!(parse_instance_name(label), None, "{label:?}");
        assert!(
            !instance_matches(&DK, &fullname(label), Some(txt_value(&DK).as_bytes())),
            "{label:?}"
        );
    }
    let bad_fullnames = [
        String::new(),
        ".".into(),
        SERVICE_TYPE.into(),
        format!(".{SERVICE_TYPE}"),
        good.clone(),
        format!("{good}._other._tcp.local."),
        format!("{good}._dat-social._udp.local."),
        format!("{good}{SERVICE_TYPE}"),
        format!("x.{good}x{SERVICE_TYPE}"),
        format!("é{SERVICE_TYPE}"),
        format!("é{}", &SERVICE_TYPE[1..]),
        format!("{good}.\u{e9}dat-social._tcp.local."),
    ];
    for name in &bad_fullnames {
        assert!(
            !instance_matches(&DK, name, Some(txt_value(&DK).as_bytes())),
            "{name:?}"
        );
    }
    // A label that is itself a valid name but sits under more labels is not ours.
    assert_eq!(
        instance_label(&format!("a.{}", fullname(&good))),
        Some(&*format!("a.{good}"))
    );
    assert!(!instance_matches(
        &DK,
        &format!("a.{}", fullname(&good)),
        Some(txt_value(&DK).as_bytes())
    ));
}

#[test]
fn malformed_txt_values_are_rejected() {
    let name = fullname(&instance_name(&DK, 1));
    let hex = txt_value(&DK);
    let bad: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        hex.as_bytes()[..63].to_vec(),
        format!("{hex}0").into_bytes(),
        format!("{}zz", &hex[..62]).into_bytes(),
        vec![0xff; 64],
        "é".repeat(32).into_bytes(),
        txt_value(&same_prefix_other_key()).into_bytes(),
    ];
    for value in &bad {
        assert_eq!(
            parse_txt_value(value).filter(|k| *k == DK),
            None,
            "{value:?}"
        );
        assert!(!instance_matches(&DK, &name, Some(value)), "{value:?}");
    }
    assert!(!instance_matches(&DK, &name, None));
    assert!(instance_matches(&DK, &name, Some(hex.as_bytes())));
}

#[test]
fn the_txt_key_decides_not_the_name() {
    // Same 16-byte prefix (so the name matches), other key in TXT: not a peer.
    let other = same_prefix_other_key();
    let name = fullname(&instance_name(&DK, 1));
    assert!(!instance_matches(
        &DK,
        &name,
        Some(txt_value(&other).as_bytes())
    ));
    assert!(!instance_matches(
        &other,
        &name,
        Some(txt_value(&DK).as_bytes())
    ));
    // Right TXT, name of another prefix: not a peer either.
    let mut far = DK;
    far[0] ^= 0x80;
    let far_name = fullname(&instance_name(&far, 1));
    assert!(!instance_matches(
        &DK,
        &far_name,
        Some(txt_value(&DK).as_bytes())
    ));
}

#[test]
fn announcements_carry_only_the_discovery_key() {
    let info = announcement_info(&DK, 0x1234_5678, "dat-social-00000001.local.", 4242).unwrap();
    assert_eq!(
        info.get_fullname(),
        "00112233445566778899aabbccddeeff-12345678._dat-social._tcp.local."
    );
    assert_eq!(info.get_type(), SERVICE_TYPE);
    assert_eq!(info.get_subtype(), &None);
    assert_eq!(info.get_port(), 4242);
    assert_eq!(info.get_hostname(), "dat-social-00000001.local.");
    let props: Vec<(String, String)> = info
        .get_properties()
        .iter()
        .map(|p| (p.key().to_string(), p.val_str().to_string()))
        .collect();
    assert_eq!(props, vec![("dk".to_string(), txt_value(&DK))]);
    assert!(info.is_addr_auto());
}

/// A resolved instance as the daemon would report it.
fn resolved<Ip: mdns_sd::AsIpAddrs>(
    label: &str,
    txt: Option<&str>,
    addrs: Ip,
    port: u16,
) -> ResolvedService {
    let props: Vec<(&str, &str)> = txt.map(|v| (TXT_DISCOVERY_KEY, v)).into_iter().collect();
    ServiceInfo::new(SERVICE_TYPE, label, "h.local.", addrs, port, &props[..])
        .unwrap()
        .as_resolved_service()
}

/// The peer for `dk` that a resolved instance stands for.
fn peer_for(dk: &[u8; 32], rs: &ResolvedService) -> Option<MdnsPeer> {
    decode_resolved(rs).filter(|f| f.dk == *dk).map(|f| f.peer)
}

#[test]
fn resolved_instances_become_peers_only_when_they_match() {
    let label = instance_name(&DK, 9);
    let hex = txt_value(&DK);
    let peer = peer_for(&DK, &resolved(&label, Some(&hex), "10.1.2.3,fd00::7", 4242))
        .expect("a matching instance");
    assert_eq!(peer.instance, label);
    assert_eq!(peer.host, "h.local.");
    assert_eq!(
        peer.addrs,
        vec![
            "10.1.2.3:4242".parse::<SocketAddr>().unwrap(),
            "[fd00::7]:4242".parse().unwrap()
        ]
    );
    let other = txt_value(&same_prefix_other_key());
    let rejected = [
        resolved(&label, Some(&other), "10.1.2.3", 4242),
        resolved(&label, None, "10.1.2.3", 4242),
        resolved(&label, Some("zz"), "10.1.2.3", 4242),
        resolved(&label, Some(&hex), "10.1.2.3", 0),
        resolved(&label, Some(&hex), (), 4242),
        resolved(&label, Some(&hex), "0.0.0.0,224.0.0.251,::,ff02::fb", 4242),
        // Link-local without an interface to reach it through.
        resolved(&label, Some(&hex), "fe80::1", 4242),
        resolved("not-ours", Some(&hex), "10.1.2.3", 4242),
    ];
    for rs in &rejected {
        assert_eq!(peer_for(&DK, rs), None, "{rs:?}");
    }
    // The key in TXT must be the one the name starts with: otherwise the instance is
    // malformed and counts for no key at all.
    let mut far = DK;
    far[0] ^= 0x80;
    let mismatched = resolved(&instance_name(&far, 9), Some(&hex), "10.1.2.3", 4242);
    assert_eq!(decode_resolved(&mismatched), None);
    // A well-formed announcement of another key is heard, but is no peer for `DK`.
    let heard =
        decode_resolved(&resolved(&label, Some(&other), "10.1.2.3", 4242)).expect("well-formed");
    assert_eq!(heard.dk, same_prefix_other_key());
}

//! Unit tests of the WebRTC layer that need no network: descriptions, parameters and errors.

use super::connection::check_label;
use super::*;

#[test]
fn unreliable_is_unordered_with_zero_retransmits() {
    let c = Reliability::Unreliable.channel_config("game");
    assert_eq!(c.label, "game");
    assert!(!c.ordered);
    assert_eq!(
        c.reliability,
        str0m::channel::Reliability::MaxRetransmits { retransmits: 0 }
    );
    assert_eq!(c.negotiated, None);
    let p = ChannelParams::from_config(&c);
    assert_eq!(p.max_retransmits, Some(0));
    assert_eq!(p.reliability(), Reliability::Unreliable);
    assert!(p.is_lossy());
}

#[test]
fn reliable_is_ordered_with_full_retransmission() {
    let c = Reliability::Reliable.channel_config("chat");
    assert!(c.ordered);
    assert_eq!(c.reliability, str0m::channel::Reliability::Reliable);
    let p = ChannelParams::from_config(&c);
    assert_eq!(p.reliability(), Reliability::Reliable);
    assert!(!p.is_lossy());
}

#[test]
fn partial_reliability_counts_as_unreliable() {
    // A browser's {ordered: true, maxPacketLifeTime: 100}.
    let c = ChannelConfig {
        label: "x".into(),
        ordered: true,
        reliability: str0m::channel::Reliability::MaxPacketLifetime { lifetime: 100 },
        negotiated: None,
        protocol: String::new(),
    };
    let p = ChannelParams::from_config(&c);
    assert_eq!(p.max_packet_lifetime_ms, Some(100));
    assert_eq!(p.reliability(), Reliability::Unreliable);
}

#[test]
fn keepalive_is_a_quarter_of_the_idle_timeout_within_bounds() {
    let mut cfg = RtcConfig::default();
    assert_eq!(cfg.keepalive(), Duration::from_millis(1250));
    cfg.idle_timeout = Duration::from_millis(100);
    assert_eq!(cfg.keepalive(), Duration::from_millis(200));
    cfg.idle_timeout = Duration::from_secs(60);
    assert_eq!(cfg.keepalive(), Duration::from_secs(3));
}

#[test]
fn long_labels_are_refused() {
    assert!(check_label(&"a".repeat(MAX_LABEL_BYTES)).is_ok());
    assert!(matches!(
        check_label(&"a".repeat(MAX_LABEL_BYTES + 1)),
        Err(RtcError::LabelTooLong(_))
    ));
}

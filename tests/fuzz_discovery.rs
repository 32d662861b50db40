//! Fuzz target: what LAN discovery reads from multicast DNS answers heard on the network
//! (src/discovery/mdns.rs): service full names ([`mdns::instance_label`]), instance labels
//! ([`mdns::parse_instance_name`]) and TXT `dk` values ([`mdns::parse_txt_value`]), combined in
//! [`mdns::instance_matches`]. The DNS packets themselves are parsed by the `mdns-sd` crate.
//!
//! Inputs: random strings and mutations of real names and values. Nothing may panic; a name and
//! value only match the key they were made from.

mod fuzz_common;

use dat_social::discovery::mdns;
use fuzz_common::{fuzz, mutated, raw};
use proptest::prelude::*;

#[test]
fn discovery_mdns_names() {
    let dk = [0x5a; 32];
    let name = format!(
        "{}._dat-social._tcp.local.",
        mdns::instance_name(&dk, 0xdead_beef)
    );
    let seeds = vec![
        name.clone().into_bytes(),
        name.to_uppercase().into_bytes(),
        mdns::txt_value(&dk).into_bytes(),
        "é-ü._DAT-SOCIAL._TCP.LOCAL.".as_bytes().to_vec(),
    ];
    let txt = mdns::txt_value(&dk).into_bytes();
    fuzz(
        "discovery_mdns_names",
        2_000,
        (
            prop_oneof![raw(90), mutated(seeds.clone())],
            prop_oneof![raw(70), mutated(seeds)],
        ),
        |(fullname, value)| {
            let fullname = String::from_utf8_lossy(&fullname);
            if let Some(label) = mdns::instance_label(&fullname) {
                prop_assert!(fullname.len() > label.len());
                let _ = mdns::parse_instance_name(label);
            }
            if let Some(k) = mdns::parse_txt_value(&value) {
                prop_assert_eq!(
                    hex::encode(k),
                    String::from_utf8_lossy(&value).to_lowercase()
                );
            }
            if mdns::instance_matches(&dk, &fullname, Some(&value)) {
                prop_assert_eq!(value.to_ascii_lowercase(), txt.clone());
            }
            let _ = mdns::instance_matches(&dk, &fullname, None);
            Ok(())
        },
    );
}

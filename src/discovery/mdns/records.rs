//! What goes on the wire and what is accepted back (see the parent module's docs): instance
//! names, TXT values, the record set of an announcement, and the checks on a resolved instance.
//! Pure functions, apart from the daemon's types they read and build.

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

use mdns_sd::{ResolvedService, ScopedIp, ServiceInfo};

use super::{
    daemon_err, MdnsError, KEY_PREFIX_LEN, NONCE_HEX_LEN, SERVICE_TYPE, TXT_DISCOVERY_KEY,
};

/// The instance name (one DNS label) of an announcement of `dk`: the 32 hex digits of
/// `dk[..16]`, `-`, and `nonce` as 8 lowercase hex digits.
pub fn instance_name(dk: &[u8; 32], nonce: u32) -> String {
    format!("{}-{nonce:08x}", hex::encode(&dk[..KEY_PREFIX_LEN]))
}

/// The key prefix (16 bytes) named by an instance label `<32 hex>-<8 hex>`, or `None` if
/// `label` has any other form. Hex digits may be either case.
pub fn parse_instance_name(label: &str) -> Option<[u8; KEY_PREFIX_LEN]> {
    let (prefix, nonce) = label.split_once('-')?;
    if prefix.len() != 2 * KEY_PREFIX_LEN
        || nonce.len() != NONCE_HEX_LEN
        || !nonce.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let mut out = [0u8; KEY_PREFIX_LEN];
    hex::decode_to_slice(prefix, &mut out).ok()?;
    Some(out)
}

/// The instance label of a full service name `<label>._dat-social._tcp.local.` (suffix matched
/// without regard to ASCII case), or `None` if `fullname` is not of that service type.
pub fn instance_label(fullname: &str) -> Option<&str> {
    let cut = fullname.len().checked_sub(SERVICE_TYPE.len())?;
    if !fullname.is_char_boundary(cut) || !fullname[cut..].eq_ignore_ascii_case(SERVICE_TYPE) {
        return None;
    }
    fullname[..cut].strip_suffix('.')
}

/// The TXT value announcing `dk`: its 64 lowercase hex digits.
pub fn txt_value(dk: &[u8; 32]) -> String {
    hex::encode(dk)
}

/// The discovery key in a TXT `dk` value (exactly 64 hex digits, either case), or `None`.
pub fn parse_txt_value(value: &[u8]) -> Option<[u8; 32]> {
    if value.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(value, &mut out).ok()?;
    Some(out)
}

/// Whether a service instance heard on the network announces `dk`: its full name must carry
/// the first 16 bytes of `dk` ([`parse_instance_name`]) and its TXT `dk` value (`txt_dk`, the
/// raw bytes after `dk=`, `None` if absent or without a value) must decode to all 32 bytes.
pub fn instance_matches(dk: &[u8; 32], fullname: &str, txt_dk: Option<&[u8]>) -> bool {
    let name_ok = instance_label(fullname)
        .and_then(parse_instance_name)
        .is_some_and(|prefix| prefix[..] == dk[..KEY_PREFIX_LEN]);
    name_ok && txt_dk.and_then(parse_txt_value).is_some_and(|k| k == *dk)
}

/// The socket address to reach `ip` on `port`, or `None` for addresses one cannot connect to
/// (unspecified, multicast, broadcast, IPv6 link-local without an interface index).
fn socket_addr(ip: &ScopedIp, port: u16) -> Option<SocketAddr> {
    match ip {
        ScopedIp::V4(v4) => {
            let a = *v4.addr();
            (!a.is_unspecified() && !a.is_multicast() && !a.is_broadcast())
                .then(|| SocketAddr::V4(SocketAddrV4::new(a, port)))
        }
        ScopedIp::V6(v6) => {
            let a = *v6.addr();
            if a.is_unspecified() || a.is_multicast() {
                return None;
            }
            // fe80::/10 is only meaningful together with the interface it was heard on.
            let link_local = (a.segments()[0] & 0xffc0) == 0xfe80;
            let scope = if link_local { v6.scope_id().index } else { 0 };
            (!link_local || scope != 0)
                .then(|| SocketAddr::V6(SocketAddrV6::new(a, port, 0, scope)))
        }
        _ => None,
    }
}

/// One peer found by a lookup: a service instance announcing the discovery key looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdnsPeer {
    /// Its instance name, `<32 hex>-<8 hex>` in lowercase.
    pub instance: String,
    /// The host its SRV record names, e.g. `dat-social-1a2b3c4d.local.`.
    pub host: String,
    /// Where to connect (TCP): its IPv4 addresses first, then IPv6 (link-local ones carry their
    /// interface index as scope id), each with the announced port. Never empty.
    pub addrs: Vec<SocketAddr>,
}

/// A peer heard on the network, with the discovery key it announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    pub(super) dk: [u8; 32],
    pub(super) peer: MdnsPeer,
}

/// What a resolved service instance announces, if it is a well-formed dat-social announcement:
/// its TXT `dk` decodes to a key whose first 16 bytes its name carries ([`instance_matches`]),
/// its port is not 0 and it has at least one usable address.
pub(super) fn decode_resolved(rs: &ResolvedService) -> Option<Found> {
    let txt = rs.get_property_val(TXT_DISCOVERY_KEY).flatten();
    let dk = parse_txt_value(txt?)?;
    if !instance_matches(&dk, rs.get_fullname(), txt) || rs.get_port() == 0 {
        return None;
    }
    let mut addrs: Vec<SocketAddr> = rs
        .get_addresses()
        .iter()
        .filter_map(|ip| socket_addr(ip, rs.get_port()))
        .collect();
    addrs.sort_by_key(|a| (a.is_ipv6(), *a));
    addrs.dedup();
    if addrs.is_empty() {
        return None;
    }
    let peer = MdnsPeer {
        instance: instance_label(rs.get_fullname())?.to_ascii_lowercase(),
        host: rs.get_hostname().to_string(),
        addrs,
    };
    Some(Found { dk, peer })
}

/// The DNS-SD record set announcing `dk` on `port` from host `host_name` (see the module docs),
/// with addresses left to the daemon.
pub(super) fn announcement_info(
    dk: &[u8; 32],
    nonce: u32,
    host_name: &str,
    port: u16,
) -> Result<ServiceInfo, MdnsError> {
    let txt = [(TXT_DISCOVERY_KEY, txt_value(dk))];
    let info = ServiceInfo::new(
        SERVICE_TYPE,
        &instance_name(dk, nonce),
        host_name,
        (),
        port,
        &txt[..],
    )
    .map_err(daemon_err("build the announcement"))?;
    Ok(info.enable_addr_auto())
}

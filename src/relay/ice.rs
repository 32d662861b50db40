//! The `dat-social/ice/v1` channel: how a client of our relay gets the relay's STUN/TURN
//! servers and short-lived TURN credentials (docs/RELAY.md, "ICE servers for clients").
//!
//! It is a second protomux channel on the relay connection, beside `@hyperswarm/dht-relay`
//! (PROTOCOL.md §2): protomux pairs channels by protocol name, so a JS relay client, which never
//! opens this one, sees no difference, and a relay that does not serve it (the JS relay, or ours
//! with ICE off) rejects the client's `open`, which the client reads as "no ICE servers".
//! The protocol's version is in its name: a breaking change would open `dat-social/ice/v2`.
//!
//! Messages (protomux message type = index, compact-encoding):
//!
//! | # | name | direction | payload |
//! |---|---|---|---|
//! | 0 | `request` | client → relay | empty (trailing bytes ignored) |
//! | 1 | `servers` | relay → client | `uint ttl` (seconds) `string json` |
//!
//! `json` is a JSON array of `RTCIceServer` objects ([`IceServer`], at most
//! [`MAX_SERVERS_JSON`] bytes, checked by [`IceServer::parse_list`]); `ttl` says how long its
//! credentials stay valid from when the message is sent (relative, so that the client's clock
//! does not matter). A client asks once per session and again before the credentials expire;
//! unknown message types are ignored, as protomux does. The codec is sans-IO and never panics.

use crate::hypercore::encoding::{DecodeError, Decoder, Encoder};
use crate::ice::{IceServer, IceServerError};

/// The protomux protocol name of the ICE channel (no id, no handshake).
pub const ICE_PROTOCOL: &str = "dat-social/ice/v1";

/// Largest `servers` JSON accepted or sent, in bytes: 8 KiB (16 servers of a few URLs each fit
/// many times over).
pub const MAX_SERVERS_JSON: usize = 8 * 1024;

/// Protomux message type of [`IceMessage::Request`].
const REQUEST: u64 = 0;
/// Protomux message type of [`IceMessage::Servers`].
const SERVERS: u64 = 1;

/// One message of the ICE channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IceMessage {
    /// The client asks for the relay's ICE servers (again, to renew the credentials).
    Request,
    /// The relay's ICE servers, with credentials valid for `ttl_s` seconds from now.
    Servers {
        /// How long the credentials stay valid, in seconds from when the relay sent them.
        ttl_s: u64,
        /// The servers (STUN without credentials, TURN with a username and a credential).
        servers: Vec<IceServer>,
    },
}

/// Why an ICE channel message was refused.
#[derive(Debug, thiserror::Error)]
pub enum IceCodecError {
    /// The compact encoding is truncated or invalid.
    #[error("ICE channel message: {0}")]
    Decode(#[from] DecodeError),
    /// The JSON is longer than [`MAX_SERVERS_JSON`].
    #[error("ICE channel message: a server list of {0} bytes (at most {MAX_SERVERS_JSON})")]
    TooLarge(usize),
    /// The JSON is not a valid `RTCIceServer` list.
    #[error("ICE channel message: {0}")]
    Servers(#[from] IceServerError),
}

/// A `servers` message whose JSON is longer than [`MAX_SERVERS_JSON`] (its length in bytes):
/// the relay was configured with too many or too long URLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an ICE server list of {0} bytes does not fit a message (at most {MAX_SERVERS_JSON})")]
pub struct ServersTooLarge(pub usize);

impl IceMessage {
    /// The protomux message type: 0 `request`, 1 `servers`.
    pub fn message_type(&self) -> u64 {
        match self {
            IceMessage::Request => REQUEST,
            IceMessage::Servers { .. } => SERVERS,
        }
    }

    /// The payload (without the protomux channel id and type).
    ///
    /// # Errors
    /// [`ServersTooLarge`] if the servers' JSON is longer than [`MAX_SERVERS_JSON`].
    pub fn encode(&self) -> Result<Vec<u8>, ServersTooLarge> {
        let mut e = Encoder::new();
        if let IceMessage::Servers { ttl_s, servers } = self {
            let json = serde_json::to_string(servers).expect("IceServer serializes");
            if json.len() > MAX_SERVERS_JSON {
                return Err(ServersTooLarge(json.len()));
            }
            e.uint(*ttl_s).string(&json);
        }
        Ok(e.into_vec())
    }

    /// Decodes a message of `message_type`. `Ok(None)` for an unknown type (ignored, as
    /// protomux ignores unknown types, so that later versions may add messages).
    ///
    /// # Errors
    /// [`IceCodecError::Decode`] for a truncated payload, [`IceCodecError::TooLarge`] and
    /// [`IceCodecError::Servers`] for a server list that is too long or invalid.
    pub fn decode(message_type: u64, payload: &[u8]) -> Result<Option<IceMessage>, IceCodecError> {
        match message_type {
            REQUEST => Ok(Some(IceMessage::Request)),
            SERVERS => {
                let mut d = Decoder::new(payload);
                let ttl_s = d.uint()?;
                let json = d.string()?;
                if json.len() > MAX_SERVERS_JSON {
                    return Err(IceCodecError::TooLarge(json.len()));
                }
                let servers = IceServer::parse_list(json)?;
                Ok(Some(IceMessage::Servers { ttl_s, servers }))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn() -> IceServer {
        IceServer {
            urls: vec![
                "turn:203.0.113.5:3478?transport=udp".into(),
                "turn:203.0.113.5:3478?transport=tcp".into(),
            ],
            username: Some("1700000000:abcd".into()),
            credential: Some("c2VjcmV0".into()),
        }
    }

    #[test]
    fn messages_round_trip() {
        let stun = IceServer {
            urls: vec!["stun:203.0.113.5:3478".into()],
            username: None,
            credential: None,
        };
        for m in [
            IceMessage::Request,
            IceMessage::Servers {
                ttl_s: 3600,
                servers: vec![stun, turn()],
            },
            IceMessage::Servers {
                ttl_s: 0,
                servers: vec![],
            },
        ] {
            let bytes = m.encode().unwrap();
            assert_eq!(
                IceMessage::decode(m.message_type(), &bytes).unwrap(),
                Some(m)
            );
        }
        assert_eq!(IceMessage::Request.encode().unwrap(), Vec::<u8>::new());
        // A request's payload is ignored; unknown types are ignored.
        assert_eq!(
            IceMessage::decode(0, &[1, 2, 3]).unwrap(),
            Some(IceMessage::Request)
        );
        assert_eq!(IceMessage::decode(7, &[1, 2]).unwrap(), None);
    }

    #[test]
    fn the_servers_layout_is_uint_ttl_then_string_json() {
        let m = IceMessage::Servers {
            ttl_s: 300,
            servers: vec![],
        };
        // 300 = 0xfd 2c 01; "[]" = 02 5b 5d.
        assert_eq!(hex::encode(m.encode().unwrap()), "fd2c01025b5d");
    }

    #[test]
    fn bad_payloads_are_errors() {
        assert!(matches!(
            IceMessage::decode(1, &[]),
            Err(IceCodecError::Decode(_))
        ));
        assert!(matches!(
            IceMessage::decode(1, &[10, 5, b'[']),
            Err(IceCodecError::Decode(_))
        ));
        let mut e = Encoder::new();
        e.uint(60).string("{\"urls\": 1}");
        assert!(matches!(
            IceMessage::decode(1, e.as_slice()),
            Err(IceCodecError::Servers(_))
        ));
        // TURN without credentials is refused, as a browser refuses it.
        let mut e = Encoder::new();
        e.uint(60).string("[{\"urls\": \"turn:a:1\"}]");
        assert!(matches!(
            IceMessage::decode(1, e.as_slice()),
            Err(IceCodecError::Servers(_))
        ));
        let big = format!("[{}]", " ".repeat(MAX_SERVERS_JSON));
        let mut e = Encoder::new();
        e.uint(60).string(&big);
        assert!(matches!(
            IceMessage::decode(1, e.as_slice()),
            Err(IceCodecError::TooLarge(_))
        ));
        let many = IceMessage::Servers {
            ttl_s: 1,
            servers: vec![turn(); 100],
        };
        assert!(matches!(many.encode(), Err(ServersTooLarge(_))));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics() {
        let mut x: u32 = 0x1234_5678;
        for len in 0..200usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    // xorshift: cheap deterministic noise.
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            for t in 0..3 {
                let _ = IceMessage::decode(t, &bytes);
            }
        }
    }
}

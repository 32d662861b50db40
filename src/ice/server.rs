//! `RTCIceServer`: one STUN or TURN server entry as browsers take it, and its URLs.
//!
//! JSON shape (W3C WebRTC 1.0 §4.2.4): `{"urls": "stun:host:port" | [..], "username": "..",
//! "credential": ".."}`. URL syntax: RFC 7064 (`stun:`/`stuns:`) and RFC 7065
//! (`turn:`/`turns:` with an optional `?transport=udp|tcp`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Most servers an ICE server list may hold: a user lists a handful; gathering sends to each.
pub const MAX_ICE_SERVERS: usize = 16;

/// Most URLs one [`IceServer`] may hold.
pub const MAX_URLS_PER_SERVER: usize = 8;

/// Longest URL, username or credential accepted, in bytes.
pub const MAX_FIELD_BYTES: usize = 512;

/// One STUN or TURN server entry, the browser's `RTCIceServer`.
///
/// `urls` is a string or an array of strings in JSON and always an array when written. TURN
/// URLs need `username` and `credential` (browsers refuse them otherwise; see
/// [`IceServer::validate`]); STUN URLs ignore them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:`, `stuns:`, `turn:` or `turns:` URLs of one server.
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    /// The TURN username (for TURN REST credentials, `"<expiry unix seconds>:<name>"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Urls::deserialize(d)? {
        Urls::One(u) => vec![u],
        Urls::Many(v) => v,
    })
}

/// Why an ICE server list or URL was refused. The text names the offending value.
#[derive(Debug, thiserror::Error)]
pub enum IceServerError {
    /// The text is not a JSON array of `RTCIceServer` objects.
    #[error("not a JSON array of RTCIceServer objects: {0}")]
    Json(#[source] serde_json::Error),
    /// More than [`MAX_ICE_SERVERS`] servers or [`MAX_URLS_PER_SERVER`] URLs in one.
    #[error("too many {what} ({count}; at most {max})")]
    TooMany {
        /// `"ICE servers"` or `"URLs in one ICE server"`.
        what: &'static str,
        /// How many there were.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A server with an empty `urls`.
    #[error("an ICE server has no URL")]
    NoUrl,
    /// A URL, username or credential longer than [`MAX_FIELD_BYTES`].
    #[error("an ICE server field is longer than {MAX_FIELD_BYTES} bytes")]
    TooLong,
    /// A URL that is not `stun:`/`stuns:`/`turn:`/`turns:` `host[:port][?transport=udp|tcp]`.
    #[error("bad ICE server URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `turn:`/`turns:` URL in an entry without `username` and `credential`.
    #[error("TURN URL {0:?} needs a username and a credential")]
    MissingCredentials(String),
}

impl IceServer {
    /// Parses a JSON array of `RTCIceServer` objects (what `--ice-servers FILE` holds) and
    /// validates every entry.
    ///
    /// # Errors
    /// [`IceServerError::Json`] for text that is not such an array, and any error of
    /// [`IceServer::validate`] for the first bad entry.
    pub fn parse_list(json: &str) -> Result<Vec<IceServer>, IceServerError> {
        let servers: Vec<IceServer> = serde_json::from_str(json).map_err(IceServerError::Json)?;
        if servers.len() > MAX_ICE_SERVERS {
            return Err(IceServerError::TooMany {
                what: "ICE servers",
                count: servers.len(),
                max: MAX_ICE_SERVERS,
            });
        }
        for s in &servers {
            s.validate()?;
        }
        Ok(servers)
    }

    /// The parsed URLs of this entry, in order.
    ///
    /// # Errors
    /// See [`IceServer::validate`].
    pub fn parsed_urls(&self) -> Result<Vec<IceUrl>, IceServerError> {
        self.validate()?;
        self.urls.iter().map(|u| u.parse()).collect()
    }

    /// Checks what a browser's `RTCPeerConnection` constructor checks: at least one URL, at
    /// most [`MAX_URLS_PER_SERVER`], each well formed, fields at most [`MAX_FIELD_BYTES`], and
    /// TURN URLs only with a username and a credential.
    ///
    /// # Errors
    /// [`IceServerError::NoUrl`], [`IceServerError::TooMany`], [`IceServerError::TooLong`],
    /// [`IceServerError::BadUrl`], [`IceServerError::MissingCredentials`].
    pub fn validate(&self) -> Result<(), IceServerError> {
        if self.urls.is_empty() {
            return Err(IceServerError::NoUrl);
        }
        if self.urls.len() > MAX_URLS_PER_SERVER {
            return Err(IceServerError::TooMany {
                what: "URLs in one ICE server",
                count: self.urls.len(),
                max: MAX_URLS_PER_SERVER,
            });
        }
        let fields = self
            .urls
            .iter()
            .chain(&self.username)
            .chain(&self.credential);
        if fields.into_iter().any(|f| f.len() > MAX_FIELD_BYTES) {
            return Err(IceServerError::TooLong);
        }
        for u in &self.urls {
            let url: IceUrl = u.parse()?;
            if url.scheme.is_turn() && (self.username.is_none() || self.credential.is_none()) {
                return Err(IceServerError::MissingCredentials(u.clone()));
            }
        }
        Ok(())
    }
}

/// The scheme of an ICE server URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IceUrlScheme {
    /// `stun:` (RFC 7064): Binding requests only, default port 3478.
    Stun,
    /// `stuns:`: STUN over TLS, default port 5349.
    Stuns,
    /// `turn:` (RFC 7065): TURN, default port 3478.
    Turn,
    /// `turns:`: TURN over TLS, default port 5349.
    Turns,
}

impl IceUrlScheme {
    /// `true` for `turn:` and `turns:`.
    pub fn is_turn(self) -> bool {
        matches!(self, IceUrlScheme::Turn | IceUrlScheme::Turns)
    }

    /// `true` for the TLS schemes `stuns:` and `turns:`.
    pub fn is_tls(self) -> bool {
        matches!(self, IceUrlScheme::Stuns | IceUrlScheme::Turns)
    }

    fn default_port(self) -> u16 {
        if self.is_tls() {
            5349
        } else {
            3478
        }
    }

    fn name(self) -> &'static str {
        match self {
            IceUrlScheme::Stun => "stun",
            IceUrlScheme::Stuns => "stuns",
            IceUrlScheme::Turn => "turn",
            IceUrlScheme::Turns => "turns",
        }
    }
}

/// The transport to reach an ICE server over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IceTransport {
    /// UDP (the default for `stun:` and `turn:`).
    Udp,
    /// TCP (RFC 6062 framing is not needed for the client-to-server leg; messages are framed
    /// by their STUN/ChannelData length). The default for `turns:`.
    Tcp,
}

/// A parsed ICE server URL: `scheme:host[:port][?transport=udp|tcp]`.
///
/// `host` is a name or an IP address (IPv6 without its brackets); resolving names is the
/// caller's job. [`fmt::Display`] writes the canonical form with the port and, for TURN, the
/// transport, e.g. `turn:198.51.100.1:3478?transport=tcp`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IceUrl {
    /// The scheme.
    pub scheme: IceUrlScheme,
    /// Host name or IP address.
    pub host: String,
    /// Port (the scheme's default if the URL has none).
    pub port: u16,
    /// Transport (`?transport=`; UDP unless given, TCP for `turns:`).
    pub transport: IceTransport,
}

impl IceUrl {
    /// `host:port`, with brackets around an IPv6 address, for resolving or connecting.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for IceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme.name(), self.authority())?;
        if self.scheme.is_turn() {
            let t = match self.transport {
                IceTransport::Udp => "udp",
                IceTransport::Tcp => "tcp",
            };
            write!(f, "?transport={t}")?;
        }
        Ok(())
    }
}

impl FromStr for IceUrl {
    type Err = IceServerError;

    /// Parses `stun:`/`stuns:`/`turn:`/`turns:` `host[:port][?transport=udp|tcp]`
    /// (scheme and transport ASCII case-insensitive; `?transport` only on TURN URLs, as
    /// RFC 7064 gives STUN URIs no query).
    ///
    /// # Errors
    /// [`IceServerError::BadUrl`] naming the URL and what is wrong.
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = |reason| IceServerError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url.split_once(':').ok_or_else(|| bad("no scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "stun" => IceUrlScheme::Stun,
            "stuns" => IceUrlScheme::Stuns,
            "turn" => IceUrlScheme::Turn,
            "turns" => IceUrlScheme::Turns,
            _ => return Err(bad("the scheme is not stun, stuns, turn or turns")),
        };
        if rest.starts_with("//") {
            return Err(bad("ICE URLs have no \"//\" (write stun:host:port)"));
        }
        let (authority, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let transport = match query {
            None if scheme == IceUrlScheme::Turns => IceTransport::Tcp,
            None => IceTransport::Udp,
            Some(_) if !scheme.is_turn() => return Err(bad("STUN URLs take no query")),
            Some(q) => match q.to_ascii_lowercase().as_str() {
                "transport=udp" => IceTransport::Udp,
                "transport=tcp" => IceTransport::Tcp,
                _ => return Err(bad("the query must be transport=udp or transport=tcp")),
            },
        };
        let (host, port) = split_host_port(authority).map_err(bad)?;
        Ok(IceUrl {
            scheme,
            host,
            port: port.unwrap_or(scheme.default_port()),
            transport,
        })
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), &'static str> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or("an unclosed '['")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("the bracketed host is not an IPv6 address");
        }
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or("junk after ']'")?)),
        }
    } else {
        match authority.split_once(':') {
            Some((_, p)) if p.contains(':') => return Err("an IPv6 host needs brackets"),
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':');
    if host.is_empty() || !host.chars().all(valid) {
        return Err("the host is empty or has characters a host name cannot have");
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err("the port is not a number from 1 to 65535"),
            Ok(n) => Some(n),
        },
    };
    Ok((host.to_owned(), port))
}

//! The relay's side of the `dat-social/ice/v1` channel ([`crate::relay::ice`]): which STUN/TURN
//! servers it advertises ([`RelayIce`], operator config), the TURN REST credentials it mints for
//! each client with a live session ([`crate::ice::rest`], as coturn's `--use-auth-secret`
//! checks them), and the per-session request budget. Sans-IO: time comes in as arguments.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};

use crate::ice::server::{MAX_FIELD_BYTES, MAX_URLS_PER_SERVER};
use crate::ice::{rest, IceServer, IceUrl};
use crate::relay::ice::{IceMessage, MAX_SERVERS_JSON};

/// Requests a session may make at once before the budget refills ([`RelayIce::refill`]): 4.
pub const ICE_REQUEST_BURST: u32 = 4;

/// The STUN/TURN servers a relay gives its clients, and how it mints their credentials.
///
/// `urls` are advertised as given: `stun:`/`stuns:` URLs in one `RTCIceServer` without
/// credentials, `turn:`/`turns:` URLs in one with a fresh TURN REST credential per request
/// (username `"<expiry unix s>:<name>"`, password `base64(HMAC-SHA1(secret, username))`), so
/// the TURN server must share `secret` (the built-in one, or coturn with `--use-auth-secret
/// --static-auth-secret=SECRET`).
#[derive(Clone, PartialEq, Eq)]
pub struct RelayIce {
    /// The TURN REST shared secret (bytes of the secret text, as coturn reads it). May be
    /// empty only when no URL is a TURN URL.
    pub secret: Vec<u8>,
    /// What to advertise: 1 to 8 STUN URLs and 0 to 8 TURN URLs (at least one URL in all).
    pub urls: Vec<IceUrl>,
    /// How long a credential stays valid, [`RelayIce::TTL_RANGE`] (whole seconds count).
    /// Default [`RelayIce::DEFAULT_TTL`]. Clients renew at three quarters of it.
    pub ttl: Duration,
}

impl std::fmt::Debug for RelayIce {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| u.to_string()).collect();
        f.debug_struct("RelayIce")
            .field("urls", &urls)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// Why a [`RelayIce`] is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayIceError {
    /// No URL to advertise.
    #[error("ICE: no STUN or TURN URL to advertise")]
    NoUrls,
    /// More than [`MAX_URLS_PER_SERVER`] STUN or TURN URLs.
    #[error("ICE: more than {MAX_URLS_PER_SERVER} {0} URLs")]
    TooManyUrls(&'static str),
    /// TURN URLs without a secret to mint their credentials with.
    #[error("ICE: TURN URLs need the TURN REST secret (--turn-secret-file)")]
    NoSecret,
    /// A URL longer than [`MAX_FIELD_BYTES`] (clients would refuse the list).
    #[error("ICE: a URL is longer than {MAX_FIELD_BYTES} bytes")]
    UrlTooLong,
    /// [`RelayIce::ttl`] outside [`RelayIce::TTL_RANGE`].
    #[error("ICE: credential lifetime of {0:?} is outside 1 minute to 1 day")]
    Ttl(Duration),
    /// The list would not fit one `servers` message ([`MAX_SERVERS_JSON`]).
    #[error("ICE: the URLs take more than {MAX_SERVERS_JSON} bytes")]
    TooLarge,
}

impl RelayIce {
    /// The credential lifetime by default: 1 hour (a credential bounds when a client may start
    /// a TURN allocation, and the client renews it while its session lasts).
    pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
    /// The credential lifetimes allowed: 1 minute to 1 day.
    pub const TTL_RANGE: RangeInclusive<Duration> =
        Duration::from_secs(60)..=Duration::from_secs(86_400);

    /// Checks the URL counts, the secret and the lifetime.
    ///
    /// # Errors
    /// [`RelayIceError`] naming the problem.
    pub fn validate(&self) -> Result<(), RelayIceError> {
        let (turn, stun): (Vec<&IceUrl>, Vec<&IceUrl>) =
            self.urls.iter().partition(|u| u.scheme.is_turn());
        if self.urls.is_empty() {
            return Err(RelayIceError::NoUrls);
        }
        if stun.len() > MAX_URLS_PER_SERVER {
            return Err(RelayIceError::TooManyUrls("STUN"));
        }
        if turn.len() > MAX_URLS_PER_SERVER {
            return Err(RelayIceError::TooManyUrls("TURN"));
        }
        if !turn.is_empty() && self.secret.is_empty() {
            return Err(RelayIceError::NoSecret);
        }
        if self
            .urls
            .iter()
            .any(|u| u.to_string().len() > MAX_FIELD_BYTES)
        {
            return Err(RelayIceError::UrlTooLong);
        }
        if !Self::TTL_RANGE.contains(&self.ttl) {
            return Err(RelayIceError::Ttl(self.ttl));
        }
        // The longest message this config can produce: one minted for the largest expiry.
        let probe = self.servers_for(&[0xff; 32], u64::MAX - self.ttl.as_secs());
        let message = IceMessage::Servers {
            ttl_s: self.ttl.as_secs(),
            servers: probe,
        };
        message.encode().map_err(|_| RelayIceError::TooLarge)?;
        Ok(())
    }

    /// The servers for the client whose session key is `public_key`, with TURN credentials
    /// expiring [`RelayIce::ttl`] after `now_unix_s` (Unix seconds).
    pub fn servers_for(&self, public_key: &[u8; 32], now_unix_s: u64) -> Vec<IceServer> {
        let (turn, stun): (Vec<&IceUrl>, Vec<&IceUrl>) =
            self.urls.iter().partition(|u| u.scheme.is_turn());
        let mut servers = Vec::new();
        if !stun.is_empty() {
            servers.push(IceServer {
                urls: stun.iter().map(|u| u.to_string()).collect(),
                username: None,
                credential: None,
            });
        }
        if !turn.is_empty() {
            let expiry = now_unix_s.saturating_add(self.ttl.as_secs());
            let credential = rest::mint(&self.secret, &credential_name(public_key), expiry)
                .expect("a hex name has no ':'");
            servers.push(IceServer {
                urls: turn.iter().map(|u| u.to_string()).collect(),
                username: Some(credential.username),
                credential: Some(credential.password),
            });
        }
        servers
    }

    /// How often a session's request budget gains one request: a quarter of the lifetime,
    /// between 1 s and 5 minutes (a client renews at three quarters of it, so an honest client
    /// never runs out).
    pub fn refill(&self) -> Duration {
        (self.ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(300))
    }
}

/// The name in a client's TURN REST username: 16 hex digits of BLAKE2b-256 of its session's
/// public key. Stable per client key (so a TURN server can count allocations per client) but
/// not the key itself, which the TURN username would otherwise show in the clear.
pub fn credential_name(public_key: &[u8; 32]) -> String {
    let mut h = Blake2b::<U32>::new();
    h.update(b"dat-social/ice/v1 turn name");
    h.update(public_key);
    hex::encode(&h.finalize()[..8])
}

/// The relay's ICE service: the config, and the wall clock read once at start, from which the
/// core derives Unix time with its monotonic `now` (so the core never reads a clock).
#[derive(Debug)]
pub(crate) struct IceService {
    pub config: RelayIce,
    anchor: Instant,
    anchor_unix: Duration,
}

impl IceService {
    pub(crate) fn new(config: RelayIce, now: Instant, unix_now: Duration) -> Self {
        Self {
            config,
            anchor: now,
            anchor_unix: unix_now,
        }
    }

    /// Unix seconds at `now`.
    pub(crate) fn unix_s(&self, now: Instant) -> u64 {
        (self.anchor_unix + now.saturating_duration_since(self.anchor)).as_secs()
    }
}

/// One session's ICE requests: one waiting for an answer (until the client's `handshake`
/// arrives, if need be), and a token bucket of [`ICE_REQUEST_BURST`] refilled one per
/// [`RelayIce::refill`]. Requests beyond it are dropped unanswered.
#[derive(Debug)]
pub(crate) struct IceRequests {
    /// A request waits for its answer.
    pub pending: bool,
    tokens: u32,
    refilled: Instant,
}

impl IceRequests {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            pending: false,
            tokens: ICE_REQUEST_BURST,
            refilled: now,
        }
    }

    /// Takes one request from the budget at `now`; `false` when it is spent.
    pub(crate) fn take(&mut self, now: Instant, refill: Duration) -> bool {
        let refill = refill.max(Duration::from_millis(1));
        let elapsed = now.saturating_duration_since(self.refilled);
        let gained = (elapsed.as_nanos() / refill.as_nanos()).min(ICE_REQUEST_BURST as u128);
        if gained > 0 {
            self.tokens = (self.tokens + gained as u32).min(ICE_REQUEST_BURST);
            self.refilled = if self.tokens == ICE_REQUEST_BURST {
                now
            } else {
                self.refilled + refill * gained as u32
            };
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(urls: &[&str]) -> RelayIce {
        RelayIce {
            secret: b"s3cret".to_vec(),
            urls: urls.iter().map(|u| u.parse().unwrap()).collect(),
            ttl: RelayIce::DEFAULT_TTL,
        }
    }

    #[test]
    fn turn_urls_get_rest_credentials_and_stun_urls_none() {
        let c = config(&[
            "stun:203.0.113.5:3478",
            "turn:203.0.113.5:3478?transport=udp",
            "turn:203.0.113.5:3478?transport=tcp",
        ]);
        c.validate().unwrap();
        let servers = c.servers_for(&[7; 32], 1_700_000_000);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].urls, vec!["stun:203.0.113.5:3478"]);
        assert_eq!(servers[0].username, None);
        let turn = &servers[1];
        assert_eq!(turn.urls.len(), 2);
        let user = turn.username.as_deref().unwrap();
        assert_eq!(user, format!("1700003600:{}", credential_name(&[7; 32])));
        assert_eq!(rest::check_username(user, 1_700_000_000), Ok(1_700_003_600));
        assert_eq!(
            turn.credential.as_deref(),
            Some(rest::password(b"s3cret", user).as_str())
        );
        assert!(rest::check_username(user, 1_700_003_601).is_err());
        for s in &servers {
            s.validate().unwrap();
        }
        // Names differ per key and never show the key.
        assert_ne!(credential_name(&[7; 32]), credential_name(&[8; 32]));
        assert_eq!(credential_name(&[7; 32]).len(), 16);
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn bad_configs_are_refused() {
        assert_eq!(config(&[]).validate(), Err(RelayIceError::NoUrls));
        let mut c = config(&["turn:a:1?transport=udp"]);
        c.secret.clear();
        assert_eq!(c.validate(), Err(RelayIceError::NoSecret));
        let mut stun_only = config(&["stun:a:1"]);
        stun_only.secret.clear();
        stun_only.validate().unwrap();
        let mut c = config(&["stun:a:1"]);
        c.ttl = Duration::from_secs(59);
        assert_eq!(c.validate(), Err(RelayIceError::Ttl(c.ttl)));
        let nine: Vec<String> = (1..=9).map(|p| format!("turn:a:{p}")).collect();
        let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
        assert_eq!(
            config(&nine).validate(),
            Err(RelayIceError::TooManyUrls("TURN"))
        );
        let long = format!("turn:{}:1", "h".repeat(600));
        assert_eq!(config(&[&long]).validate(), Err(RelayIceError::UrlTooLong));
        // 16 URLs of 512 bytes each pass one by one, not in one message.
        let (turn, stun) = (
            format!("turn:{}:1?transport=udp", "h".repeat(491)),
            format!("stun:{}:1", "h".repeat(505)),
        );
        assert_eq!(turn.len(), MAX_FIELD_BYTES);
        assert_eq!(stun.len(), MAX_FIELD_BYTES);
        let mut all: Vec<&str> = std::iter::repeat_n(turn.as_str(), 8).collect();
        all.extend(std::iter::repeat_n(stun.as_str(), 8));
        assert_eq!(config(&all).validate(), Err(RelayIceError::TooLarge));
    }

    #[test]
    fn the_request_budget_holds_a_burst_and_refills() {
        let t0 = Instant::now();
        let refill = Duration::from_secs(10);
        let mut r = IceRequests::new(t0);
        for _ in 0..ICE_REQUEST_BURST {
            assert!(r.take(t0, refill));
        }
        assert!(!r.take(t0, refill));
        assert!(!r.take(t0 + Duration::from_secs(9), refill));
        assert!(r.take(t0 + Duration::from_secs(10), refill));
        assert!(!r.take(t0 + Duration::from_secs(19), refill));
        assert!(r.take(t0 + Duration::from_secs(20), refill));
        // A long pause refills up to the burst, no more.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..ICE_REQUEST_BURST {
            assert!(r.take(later, refill));
        }
        assert!(!r.take(later, refill));
    }

    #[test]
    fn unix_time_follows_the_monotonic_clock() {
        let t0 = Instant::now();
        let s = IceService::new(config(&["stun:a:1"]), t0, Duration::from_secs(1000));
        assert_eq!(s.unix_s(t0), 1000);
        assert_eq!(s.unix_s(t0 + Duration::from_millis(2500)), 1002);
    }
}

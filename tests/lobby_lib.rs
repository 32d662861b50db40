//! The lobby as game code uses it (the library, in one process, on loopback): chat, and game
//! data on an unreliable channel both ways, addressed to one player or all.

use std::time::Duration;

use dat_social::endpoint::Endpoint;
use dat_social::home::Home;
use dat_social::lobby::{
    self, ChannelData, ChatMessage, Host, HostEvent, HostNetwork, HostOptions, JoinOptions, Joined,
    PlayerEvent, GAME_LABEL,
};
use dat_social::rtc::Reliability;

async fn player(dir: &std::path::Path, name: &str, host: &Host) -> (Joined, String) {
    let home = Home::new(dir.join(name));
    let (identity, _) = home.init(name).unwrap();
    let url = identity.url().base();
    let options = JoinOptions {
        url: host.info().invite.parse().unwrap(),
        name: name.into(),
        ..JoinOptions::default()
    };
    (lobby::join(&identity, options).await.unwrap(), url)
}

/// An endpoint of `identity` listening on 127.0.0.1 only.
async fn loopback(identity: dat_social::identity::Identity) -> std::sync::Arc<Endpoint> {
    let network = HostNetwork {
        listen: "127.0.0.1:0".into(),
        ..HostNetwork::default()
    };
    std::sync::Arc::new(network.bind(identity).await.unwrap())
}

/// A lobby hosted on 127.0.0.1 by a new user in `dir`/host.
async fn loopback_host(dir: &std::path::Path) -> Host {
    let home = Home::new(dir.join("host"));
    let (identity, _) = home.init("host").unwrap();
    Host::start(&home, loopback(identity).await, HostOptions::default())
        .await
        .unwrap()
}

/// The next event of `$src` that matches `$pat`, mapped to `$val`, within 10 s.
macro_rules! next_event {
    ($src:expr, $pat:pat => $val:expr) => {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match $src.next_event().await.expect("events ended") {
                    $pat => break $val,
                    _ => {}
                }
            }
        })
        .await
        .expect("no matching event within 10 s")
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn game_data_flows_on_an_unreliable_channel_to_one_player_or_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = loopback_host(dir.path()).await;
    let (mut ann, ann_url) = player(dir.path(), "ann", &host).await;
    let (mut ben, ben_url) = player(dir.path(), "ben", &host).await;
    for _ in 0..2 {
        let peers = next_event!(host, HostEvent::PeerJoined { peers, .. } => peers);
        assert!(peers >= 1);
    }

    ann.open_channel(GAME_LABEL, Reliability::Unreliable)
        .await
        .unwrap();
    ben.open_channel(GAME_LABEL, Reliability::Unreliable)
        .await
        .unwrap();
    // The channels are unreliable and each side learns of the other's channel when it opens:
    // send again every 100 ms until the first message is seen (bounded by 10 s).
    macro_rules! send_until_seen {
        ($send:expr, $src:expr, $pat:pat => $val:expr) => {
            tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    $send;
                    let got =
                        tokio::time::timeout(Duration::from_millis(100), $src.next_event()).await;
                    if let Ok(Some($pat)) = got {
                        break $val;
                    }
                }
            })
            .await
            .expect("never seen within 10 s")
        };
    }
    let (from, data) = send_until_seen!(
        ann.send(GAME_LABEL, b"ann-state").unwrap(),
        host,
        HostEvent::Data(ChannelData { from, data, .. }) => (from, data)
    );
    assert_eq!(
        (from.as_str(), data.as_slice()),
        (ann_url.as_str(), &b"ann-state"[..])
    );
    // Ben's channel must be known to the host before anything is addressed to all.
    let from_ben = send_until_seen!(
        ben.send(GAME_LABEL, b"ben-state").unwrap(),
        host,
        HostEvent::Data(ChannelData { from, .. }) => from
    );
    assert_eq!(from_ben, ben_url);

    // To ann only: ann gets it; then to all: ben's first game data is that one, not ann's.
    let got = send_until_seen!(
        host.send(Some(&from), GAME_LABEL, b"for-ann"),
        ann,
        PlayerEvent::Data(ChannelData { data, .. }) => data
    );
    assert_eq!(got, b"for-ann");
    let got = send_until_seen!(
        host.send(None, GAME_LABEL, b"for-all"),
        ben,
        PlayerEvent::Data(ChannelData { data, .. }) => data
    );
    assert_eq!(got, b"for-all", "ben received data addressed to ann only");

    // Chat still works beside it.
    ben.say("gg");
    let text = next_event!(host, HostEvent::Message(ChatMessage { text, .. }) => text);
    assert_eq!(text, "gg");
    ann.leave().await;
    ben.leave().await;
    host.shutdown().await.unwrap();
}

/// A library user's durations can't panic the lobby: a heartbeat outside 1 ms..=1 day is an
/// error from `Host::start` (so is an endpoint without a TCP listener), and a join timeout of `Duration::MAX` waits as long as the host
/// needs instead of overflowing its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_durations_are_refused_or_saturate_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::new(dir.path().join("host"));
    let (identity, _) = home.init("host").unwrap();
    for heartbeat in [Duration::ZERO, Duration::from_secs(86_401), Duration::MAX] {
        let options = HostOptions {
            heartbeat,
            ..HostOptions::default()
        };
        match Host::start(&home, loopback(identity.clone()).await, options).await {
            Err(lobby::LobbyError::Heartbeat(h)) => assert_eq!(h, heartbeat),
            Err(e) => panic!("heartbeat {heartbeat:?}: unexpected error {e}"),
            Ok(_) => panic!("heartbeat {heartbeat:?} was accepted"),
        }
    }
    // A host needs a TCP listener: an endpoint that only dials is refused, not half-started.
    let dialer = std::sync::Arc::new(Endpoint::dialer(identity.clone()));
    match Host::start(&home, dialer, HostOptions::default()).await {
        Err(lobby::LobbyError::NoListener) => {}
        Err(e) => panic!("an endpoint without a listener: unexpected error {e}"),
        Ok(_) => panic!("an endpoint without a listener was accepted"),
    }
    let options = HostOptions {
        heartbeat: Duration::from_secs(86_400),
        admission_timeout: Duration::MAX,
        ..HostOptions::default()
    };
    let mut host = Host::start(&home, loopback(identity).await, options)
        .await
        .unwrap();
    let guest = Home::new(dir.path().join("guest"));
    let (guest_id, _) = guest.init("guest").unwrap();
    let options = JoinOptions {
        url: host.info().invite.parse().unwrap(),
        name: "guest".into(),
        timeout: Duration::MAX,
        ..JoinOptions::default()
    };
    let joined = lobby::join(&guest_id, options).await.unwrap();
    let peer = next_event!(host, HostEvent::PeerJoined { peer, .. } => peer);
    assert_eq!(peer, guest_id.url().base());
    joined.leave().await;
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_names_its_lobby_and_a_stale_lobby_hint_still_joins() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = loopback_host(dir.path()).await;
    let invite: dat_social::identity::DatUrl = host.info().invite.parse().unwrap();
    let lobby: dat_social::identity::DatUrl = host.info().lobby.parse().unwrap();
    assert_eq!(invite.lobby, Some(lobby.key), "the invite's lobby= hint");

    // An invite from an earlier session of the same host: the hint names a lobby that is
    // gone; the joiner finds the live one in session.json and joins it.
    let mut stale = invite.clone();
    stale.lobby = Some(dat_social::keys::CoreKey::from_bytes([7; 32]));
    let player_home = Home::new(dir.path().join("ann"));
    let (ann, _) = player_home.init("ann").unwrap();
    let options = JoinOptions {
        url: stale,
        name: "ann".into(),
        timeout: Duration::from_secs(10),
        ..JoinOptions::default()
    };
    let joined = lobby::join(&ann, options).await.unwrap();
    assert_eq!(joined.info().host, invite.base());
    let peers = next_event!(host, HostEvent::PeerJoined { peers, .. } => peers);
    assert_eq!(peers, 1);
}

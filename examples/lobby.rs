//! A lobby from game code: a host and a player in one process (on loopback), chatting on the
//! reliable channel and streaming game state on an unreliable, unordered one.
//!
//! `cargo run --release --example lobby`

use std::time::Duration;

use dat_social::home::Home;
use dat_social::lobby::{
    self, ChannelData, ChatMessage, HostEvent, HostNetwork, HostOptions, JoinOptions, GAME_LABEL,
};
use dat_social::rtc::Reliability;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (host_home, player_home) = (
        Home::new(dir.path().join("host")),
        Home::new(dir.path().join("player")),
    );
    let (host_id, _) = host_home.init("host")?;
    let (player_id, _) = player_home.init("player")?;

    // The host's endpoint: TCP on loopback (add `relay` or `lan` to be found further away).
    let network = HostNetwork {
        listen: "127.0.0.1:0".into(),
        ..HostNetwork::default()
    };
    let endpoint = std::sync::Arc::new(network.bind(host_id).await?);
    let mut host = lobby::Host::start(&host_home, endpoint, HostOptions::default()).await?;
    println!("hosting: {}", host.info().invite);

    let url = host.info().invite.parse()?;
    let mut player = lobby::join(
        &player_id,
        JoinOptions {
            url,
            name: "player".into(),
            ..JoinOptions::default()
        },
    )
    .await?;
    println!("joined {:?}", player.info().lobby_name);

    // Game state goes on a channel where only the newest update matters.
    player
        .open_channel(GAME_LABEL, Reliability::Unreliable)
        .await?;
    player.say("ready");
    for tick in 0u32..10 {
        player.send(GAME_LABEL, &tick.to_le_bytes())?;
    }

    let mut updates = 0;
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_secs(1), host.next_event()).await
    {
        match event {
            HostEvent::PeerJoined { name, peers, .. } => {
                println!("host: {name} joined ({peers} players)")
            }
            HostEvent::Message(ChatMessage { name, text, .. }) => {
                println!("host: <{name}> {text}");
                host.say("go!");
            }
            HostEvent::Data(ChannelData { label, data, .. }) => {
                updates += 1;
                host.send(None, &label, &data); // echo the state back
            }
            other => println!("host: {other:?}"),
        }
    }
    println!("host: {updates} game updates received");
    while let Ok(Some(event)) =
        tokio::time::timeout(Duration::from_millis(300), player.next_event()).await
    {
        println!("player: {event:?}");
    }
    player.leave().await;
    host.shutdown().await?;
    Ok(())
}

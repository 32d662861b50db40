//! WebRTC data channels between two real peers on loopback (127.0.0.1): offer/answer as browser
//! JSON, ICE + DTLS + SCTP over real UDP sockets.

use std::time::Duration;

use dat_social::rtc::{
    self, ChannelId, DisconnectReason, PeerConnection, Reliability, RtcConfig, RtcError, RtcEvent,
};

/// Upper bound for any single wait in these tests.
const WAIT: Duration = Duration::from_secs(15);

async fn next(pc: &mut PeerConnection) -> RtcEvent {
    tokio::time::timeout(WAIT, pc.next_event())
        .await
        .expect("no event within the wait bound")
        .expect("event stream ended")
}

/// Reads events until `n` channels are open; returns (id, label, event params) in open order.
async fn wait_channels(pc: &mut PeerConnection, n: usize) -> Vec<(ChannelId, String, Reliability)> {
    let mut open = Vec::new();
    for _ in 0..100 {
        if open.len() == n {
            return open;
        }
        match next(pc).await {
            RtcEvent::ChannelOpen {
                channel,
                label,
                params,
            } => open.push((channel, label, params.reliability())),
            RtcEvent::Disconnected { reason } => panic!("disconnected while opening: {reason}"),
            _ => {}
        }
    }
    panic!("only {} of {n} channels opened", open.len());
}

/// A joiner and a host connected with `channels`; the host's view of the channels too.
async fn pair(
    cfg: &RtcConfig,
    channels: &[(&str, Reliability)],
) -> (
    PeerConnection,
    PeerConnection,
    Vec<(ChannelId, String, Reliability)>,
) {
    let (pending, offer) = rtc::create_offer(cfg, channels).await.unwrap();
    let (answer, mut host) = rtc::accept_offer(cfg, &offer).await.unwrap();
    let mut joiner = pending.accept_answer(&answer).await.unwrap();
    let joiner_open = wait_channels(&mut joiner, channels.len()).await;
    assert_eq!(
        joiner_open.iter().map(|c| c.0).collect::<Vec<_>>(),
        joiner.channels()
    );
    let host_open = wait_channels(&mut host, channels.len()).await;
    (joiner, host, host_open)
}

/// Message `i` of a numbered stream: the index, then filler so messages are not tiny.
fn numbered(i: u32) -> Vec<u8> {
    let mut m = i.to_be_bytes().to_vec();
    m.extend(std::iter::repeat_n(
        (i % 251) as u8,
        100 + (i as usize % 400),
    ));
    m
}

/// Receives `n` messages on `channel` and checks they are 0..n in order and intact.
async fn expect_numbered(pc: &mut PeerConnection, channel: ChannelId, n: u32) {
    let mut want = 0u32;
    for _ in 0..(n as usize + 100) {
        if want == n {
            return;
        }
        match next(pc).await {
            RtcEvent::Message {
                channel: c,
                data,
                binary,
            } => {
                assert_eq!(c, channel);
                assert!(binary);
                assert_eq!(
                    data,
                    numbered(want),
                    "message {want} out of order or damaged"
                );
                want += 1;
            }
            RtcEvent::Disconnected { reason } => panic!("disconnected: {reason}"),
            other => panic!("unexpected event {other:?}"),
        }
    }
    panic!("got {want} of {n} messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliable_channel_carries_1000_messages_in_order_both_ways() {
    let cfg = RtcConfig::default();
    let (mut joiner, mut host, host_open) = pair(&cfg, &[("chat", Reliability::Reliable)]).await;
    assert_eq!(host_open.len(), 1);
    assert_eq!(host_open[0].1, "chat");
    assert_eq!(host_open[0].2, Reliability::Reliable);
    let j_chat = joiner.channels()[0];
    let h_chat = host_open[0].0;

    // Both directions at once, from cloned senders in other tasks.
    let js = joiner.sender();
    let hs = host.sender();
    let a = tokio::spawn(async move {
        for i in 0..1000 {
            send_retrying(&js, j_chat, &numbered(i)).await;
        }
    });
    let b = tokio::spawn(async move {
        for i in 0..1000 {
            send_retrying(&hs, h_chat, &numbered(i)).await;
        }
    });
    tokio::join!(
        expect_numbered(&mut host, h_chat, 1000),
        expect_numbered(&mut joiner, j_chat, 1000)
    );
    a.await.unwrap();
    b.await.unwrap();
    assert!(joiner.stats().bytes_received > 1000 * 100);
    assert!(host.remote_addr().is_some_and(|a| a.ip().is_loopback()));
    joiner.close().await;
    host.close().await;
}

/// Sends, waiting a little whenever the connection's queue is full.
async fn send_retrying(s: &rtc::RtcSender, ch: ChannelId, data: &[u8]) {
    for _ in 0..10_000 {
        match s.send(ch, data) {
            Ok(()) => return,
            Err(RtcError::QueueFull { .. }) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(e) => panic!("send failed: {e}"),
        }
    }
    panic!("queue stayed full");
}

#[tokio::test]
async fn unreliable_channel_is_unordered_without_retransmits_and_carries_messages() {
    let cfg = RtcConfig::default();
    let (mut joiner, mut host, host_open) = pair(
        &cfg,
        &[
            ("chat", Reliability::Reliable),
            ("game", Reliability::Unreliable),
        ],
    )
    .await;
    let game = host_open.iter().find(|c| c.1 == "game").unwrap();
    assert_eq!(game.2, Reliability::Unreliable);
    let j_game = joiner.channels()[1];

    for i in 0..50u32 {
        joiner.send(j_game, &i.to_be_bytes()).unwrap();
    }
    let mut got = Vec::new();
    // Loopback loses nothing in practice, but the channel may: stop after the last message or
    // a quiet second.
    for _ in 0..50 {
        match tokio::time::timeout(Duration::from_secs(1), host.next_event()).await {
            Ok(Some(RtcEvent::Message { channel, data, .. })) => {
                assert_eq!(channel, game.0);
                let n = u32::from_be_bytes(data.try_into().unwrap());
                assert!(n < 50);
                got.push(n);
                if n == 49 {
                    break;
                }
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => break,
        }
    }
    assert!(
        !got.is_empty(),
        "no message arrived on the unreliable channel"
    );

    // A channel opened later by the host, announced in-band (DCEP): the joiner sees the exact
    // SCTP parameters.
    let h_state = host
        .open_channel("state", Reliability::Unreliable)
        .await
        .unwrap();
    host.send(h_state, b"tick").unwrap();
    let mut params = None;
    for _ in 0..10 {
        match next(&mut joiner).await {
            RtcEvent::ChannelOpen {
                label, params: p, ..
            } => {
                assert_eq!(label, "state");
                params = Some(p);
            }
            RtcEvent::Message { data, .. } => {
                assert_eq!(data, b"tick");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let p = params.expect("no ChannelOpen for the host's channel");
    assert!(!p.ordered);
    assert_eq!(p.max_retransmits, Some(0));
    assert_eq!(p.max_packet_lifetime_ms, None);
    joiner.close().await;
    host.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_pairs_at_once_all_open_and_talk() {
    let mut tasks = Vec::new();
    for n in 0..8u8 {
        tasks.push(tokio::spawn(async move {
            let cfg = RtcConfig::default();
            let (joiner, mut host, host_open) =
                pair(&cfg, &[("chat", Reliability::Reliable)]).await;
            joiner.send(joiner.channels()[0], &[n]).unwrap();
            match next(&mut host).await {
                RtcEvent::Message { channel, data, .. } => {
                    assert_eq!(channel, host_open[0].0);
                    assert_eq!(data, vec![n]);
                }
                other => panic!("unexpected {other:?}"),
            }
            joiner.close().await;
            host.close().await;
            n
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    assert_eq!(done, (0..8).collect::<Vec<u8>>());
}

/// Events of `pc` until `Disconnected`; returns the channels closed and the reason.
async fn until_disconnected(pc: &mut PeerConnection) -> (Vec<ChannelId>, DisconnectReason) {
    let mut closed = Vec::new();
    for _ in 0..100 {
        match next(pc).await {
            RtcEvent::ChannelClosed { channel } => closed.push(channel),
            RtcEvent::Disconnected { reason } => {
                assert!(
                    tokio::time::timeout(WAIT, pc.next_event())
                        .await
                        .unwrap()
                        .is_none(),
                    "events after Disconnected"
                );
                return (closed, reason);
            }
            _ => {}
        }
    }
    panic!("no Disconnected");
}

#[tokio::test]
async fn a_peer_closing_is_seen_by_the_other_both_ways() {
    let cfg = RtcConfig::default();
    // Joiner closes.
    let (joiner, mut host, host_open) = pair(&cfg, &[("chat", Reliability::Reliable)]).await;
    let sender = joiner.sender();
    joiner.close().await;
    assert!(matches!(
        sender.send(host_open[0].0, b"x"),
        Err(RtcError::Closed)
    ));
    let (closed, reason) = until_disconnected(&mut host).await;
    assert_eq!(closed, vec![host_open[0].0]);
    assert_eq!(reason, DisconnectReason::RemoteClosed);
    assert!(host.is_closed());
    assert_eq!(
        host.disconnect_reason(),
        Some(DisconnectReason::RemoteClosed)
    );

    // Host closes one channel, then the connection.
    let (mut joiner, mut host, host_open) = pair(
        &cfg,
        &[
            ("chat", Reliability::Reliable),
            ("game", Reliability::Unreliable),
        ],
    )
    .await;
    host.close_channel(host_open[1].0).unwrap();
    let game = joiner.channels()[1];
    match next(&mut joiner).await {
        RtcEvent::ChannelClosed { channel } => assert_eq!(channel, game),
        other => panic!("unexpected {other:?}"),
    }
    // The closing side sees it too, once the stream reset completes.
    match next(&mut host).await {
        RtcEvent::ChannelClosed { channel } => assert_eq!(channel, host_open[1].0),
        other => panic!("unexpected {other:?}"),
    }
    // A message for the closed channel is accepted, then dropped and counted.
    host.send(host_open[1].0, b"late").unwrap();
    for _ in 0..200 {
        if host.stats().messages_dropped > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(host.stats().messages_dropped, 1);
    host.close().await;
    let (closed, reason) = until_disconnected(&mut joiner).await;
    assert_eq!(closed, vec![joiner.channels()[0]]);
    assert_eq!(reason, DisconnectReason::RemoteClosed);
}

/// A joiner connected (one reliable "chat" channel, idle timeout 2 s) to a host that lives in
/// a runtime of its own: shutting that runtime down drops the host's task and sockets without
/// any goodbye, as a crashed or unplugged peer would. Returns (the joiner's runtime, the host's
/// runtime, joiner, host).
fn host_in_own_runtime() -> (
    tokio::runtime::Runtime,
    tokio::runtime::Runtime,
    PeerConnection,
    PeerConnection,
) {
    let cfg = RtcConfig {
        idle_timeout: Duration::from_secs(2),
        ..RtcConfig::default()
    };
    let host_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (joiner, host) = rt.block_on(async {
        let (pending, offer) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
            .await
            .unwrap();
        let host_cfg = cfg.clone();
        let (answer, host) = host_rt
            .spawn(async move { rtc::accept_offer(&host_cfg, &offer).await.unwrap() })
            .await
            .unwrap();
        (pending.accept_answer(&answer).await.unwrap(), host)
    });
    (rt, host_rt, joiner, host)
}

#[test]
fn a_vanished_peer_is_seen_as_a_timeout() {
    let (rt, host_rt, mut joiner, host) = host_in_own_runtime();
    rt.block_on(async {
        // Live for longer than the idle timeout: keepalives keep it up.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!joiner.is_closed(), "an idle but live connection timed out");
        let started = std::time::Instant::now();
        drop(host);
        host_rt.shutdown_background();
        let (closed, reason) = until_disconnected(&mut joiner).await;
        assert_eq!(closed, joiner.channels());
        // Dropping the handle may get a close_notify out before the runtime stops; either
        // way the joiner must learn within a few seconds.
        assert!(
            matches!(
                reason,
                DisconnectReason::Timeout | DisconnectReason::RemoteClosed
            ),
            "{reason:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    });
}

#[test]
fn a_vanished_peer_without_goodbye_times_out() {
    // As above, but the host's handle is leaked so nothing can send a goodbye: only the idle
    // timeout can notice.
    let (rt, host_rt, mut joiner, host) = host_in_own_runtime();
    rt.block_on(async {
        std::mem::forget(host);
        host_rt.shutdown_background();
        assert_eq!(joiner.disconnect_reason(), None);
        // The reason is known from the first end event on (a reader that hides
        // `Disconnected`, as the lobby's player does, asks `disconnect_reason` after the chat
        // channel's `ChannelClosed`).
        for _ in 0..10 {
            match next(&mut joiner).await {
                RtcEvent::ChannelClosed { .. } => break,
                RtcEvent::ChannelOpen { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(joiner.disconnect_reason(), Some(DisconnectReason::Timeout));
        let (_, reason) = until_disconnected(&mut joiner).await;
        assert_eq!(reason, DisconnectReason::Timeout);
    });
}

#[tokio::test]
async fn garbage_descriptions_are_errors() {
    let cfg = RtcConfig::default();
    for bad in [
        "",
        "garbage",
        r#"{"type":"offer","sdp":"v=0\r\nthis is not sdp"}"#,
        r#"{"type":"answer","sdp":"v=0\r\n"}"#,
        r#"{"sdp":"v=0"}"#,
    ] {
        match rtc::accept_offer(&cfg, bad).await {
            Err(RtcError::InvalidDescription(_)) => {}
            other => panic!("{bad:?} gave {:?}", other.map(|(a, _)| a)),
        }
    }
    // An offer passed where an answer belongs.
    let (pending, offer) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
        .await
        .unwrap();
    let e = pending.accept_answer(&offer).await.unwrap_err();
    assert!(matches!(e, RtcError::InvalidDescription(_)), "{e}");
    // Random bytes after a valid prefix.
    let (pending, offer) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
        .await
        .unwrap();
    let (answer, _host) = rtc::accept_offer(&cfg, &offer).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let sdp = v["sdp"].as_str().unwrap();
    let mangled = serde_json::json!({"type": "answer", "sdp": &sdp[..sdp.len() / 2]}).to_string();
    assert!(pending.accept_answer(&mangled).await.is_err());
    // No channel, bad candidates.
    assert!(matches!(
        rtc::create_offer(&cfg, &[]).await,
        Err(RtcError::NoChannels)
    ));
    let (joiner, host, _) = pair(&cfg, &[("chat", Reliability::Reliable)]).await;
    assert!(matches!(
        host.add_remote_candidate("candidate:garbage"),
        Err(RtcError::InvalidCandidate(_))
    ));
    joiner.close().await;
    host.close().await;
    // A pending offer keeps a bounded number of trickled candidates.
    let (mut pending, _) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
        .await
        .unwrap();
    let candidate = "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host";
    for _ in 0..rtc::MAX_REMOTE_CANDIDATES {
        pending.add_remote_candidate(candidate).unwrap();
    }
    assert!(matches!(
        pending.add_remote_candidate(candidate),
        Err(RtcError::InvalidCandidate(_))
    ));
}

#[tokio::test]
async fn an_answer_nobody_serves_times_out() {
    let cfg = RtcConfig {
        connect_timeout: Duration::from_millis(800),
        ..RtcConfig::default()
    };
    let (pending, offer) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
        .await
        .unwrap();
    let (answer, host) = rtc::accept_offer(&cfg, &offer).await.unwrap();
    // The host goes away before the joiner applies its answer.
    host.close().await;
    let started = std::time::Instant::now();
    let e = pending.accept_answer(&answer).await.unwrap_err();
    assert!(matches!(e, RtcError::ConnectTimeout(_)), "{e}");
    assert!(started.elapsed() < WAIT);
}

#[tokio::test]
async fn a_host_whose_answer_is_never_applied_times_out() {
    let cfg = RtcConfig {
        connect_timeout: Duration::from_millis(800),
        ..RtcConfig::default()
    };
    let (_pending, offer) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
        .await
        .unwrap();
    let (_answer, mut host) = rtc::accept_offer(&cfg, &offer).await.unwrap();
    let (closed, reason) = until_disconnected(&mut host).await;
    assert!(closed.is_empty());
    assert_eq!(reason, DisconnectReason::ConnectTimeout);
}

/// The `a=candidate:` attributes of a description JSON, and the JSON without them.
fn split_candidates(json: &str) -> (Vec<String>, String) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let sdp = v["sdp"].as_str().unwrap();
    let mut cands = Vec::new();
    let mut rest = String::new();
    for line in sdp.split_inclusive("\r\n") {
        if let Some(c) = line.strip_prefix("a=candidate:") {
            cands.push(format!("candidate:{}", c.trim_end()));
        } else {
            rest.push_str(line);
        }
    }
    let json = serde_json::json!({"type": v["type"], "sdp": rest}).to_string();
    (cands, json)
}

#[tokio::test]
async fn trickled_candidates_connect_when_the_sdp_has_none() {
    let cfg = RtcConfig {
        connect_timeout: Duration::from_secs(5),
        ..RtcConfig::default()
    };
    // Host learns the joiner's candidate by trickle.
    let (pending, offer) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
        .await
        .unwrap();
    let (joiner_cands, bare_offer) = split_candidates(&offer);
    assert_eq!(joiner_cands.len(), 1);
    let (answer, mut host) = rtc::accept_offer(&cfg, &bare_offer).await.unwrap();
    let (_, bare_answer) = split_candidates(&answer);
    host.add_remote_candidate(&format!("a={}", joiner_cands[0]))
        .unwrap();
    let joiner = pending.accept_answer(&bare_answer).await.unwrap();
    assert_eq!(wait_channels(&mut host, 1).await.len(), 1);
    joiner.close().await;
    host.close().await;

    // Joiner learns the host's candidate by trickle, in the browser's JSON form.
    let (mut pending, offer) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
        .await
        .unwrap();
    let (_, bare_offer) = split_candidates(&offer);
    let (answer, mut host) = rtc::accept_offer(&cfg, &bare_offer).await.unwrap();
    let (host_cands, bare_answer) = split_candidates(&answer);
    let init = serde_json::json!({"candidate": host_cands[0], "sdpMid": "0", "sdpMLineIndex": 0});
    pending.add_remote_candidate(&init.to_string()).unwrap();
    let joiner = pending.accept_answer(&bare_answer).await.unwrap();
    assert_eq!(wait_channels(&mut host, 1).await.len(), 1);
    joiner.close().await;
    host.close().await;
}

#[tokio::test]
async fn send_limits_are_enforced() {
    let cfg = RtcConfig {
        max_message_bytes: 16 * 1024,
        max_queued_bytes: 64 * 1024,
        ..RtcConfig::default()
    };
    let (joiner, host, _) = pair(&cfg, &[("chat", Reliability::Reliable)]).await;
    let ch = joiner.channels()[0];
    assert!(matches!(
        joiner.send(ch, &vec![0; 16 * 1024 + 1]),
        Err(RtcError::MessageTooLarge { .. })
    ));
    // Current-thread runtime: the connection task cannot run between these sends.
    for _ in 0..4 {
        joiner.send(ch, &vec![1; 16 * 1024]).unwrap();
    }
    assert!(matches!(
        joiner.send(ch, &[2]),
        Err(RtcError::QueueFull { .. })
    ));
    joiner.close().await;
    host.close().await;
}

#[tokio::test]
async fn ipv6_loopback_pair_works() {
    let cfg = RtcConfig {
        bind_ip: "::1".parse().unwrap(),
        ..RtcConfig::default()
    };
    let (joiner, mut host, host_open) = pair(&cfg, &[("chat", Reliability::Reliable)]).await;
    joiner.send_text(joiner.channels()[0], "hej").unwrap();
    match next(&mut host).await {
        RtcEvent::Message {
            channel,
            data,
            binary,
        } => {
            assert_eq!(channel, host_open[0].0);
            assert_eq!(data, b"hej");
            assert!(!binary, "sent as text");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        host.remote_addr().map(|a| a.ip()),
        Some("::1".parse().unwrap())
    );
    joiner.close().await;
    host.close().await;
}

/// An answer to another offer parses but the stack refuses it: the error is
/// [`RtcError::Refused`] and carries str0m's own error as its source.
#[tokio::test]
async fn an_answer_to_another_offer_is_refused_with_the_stacks_error() {
    let cfg = RtcConfig {
        connect_timeout: Duration::from_millis(800),
        ..RtcConfig::default()
    };
    let (pending, _) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
        .await
        .unwrap();
    let (_, other) = rtc::create_offer(&cfg, &[("chat", Reliability::Reliable)])
        .await
        .unwrap();
    let (answer, host) = rtc::accept_offer(&cfg, &other).await.unwrap();
    let e = pending.accept_answer(&answer).await.unwrap_err();
    assert!(matches!(e, RtcError::Refused(_)), "{e:?}");
    let source = std::error::Error::source(&e).expect("a source");
    assert!(
        source.downcast_ref::<str0m::RtcError>().is_some(),
        "{source:?}"
    );
    assert!(
        e.to_string()
            .starts_with("offer/answer negotiation failed: "),
        "{e}"
    );
    host.close().await;
}

/// The chat channel pre-negotiated on stream `id` (both sides list it).
fn negotiated_chat(id: u16) -> rtc::NegotiatedChannel {
    rtc::NegotiatedChannel {
        label: "chat".into(),
        reliability: Reliability::Reliable,
        id,
    }
}

/// Sends one message each way on the given channels and checks both arrive.
async fn one_message_each_way(
    joiner: &mut PeerConnection,
    j_chat: ChannelId,
    host: &mut PeerConnection,
    h_chat: ChannelId,
) {
    joiner.send(j_chat, &numbered(0)).unwrap();
    expect_numbered(host, h_chat, 1).await;
    host.send(h_chat, &numbered(0)).unwrap();
    expect_numbered(joiner, j_chat, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_negotiated_channel_opens_on_both_sides_and_carries_messages() {
    let cfg = RtcConfig {
        negotiated: vec![negotiated_chat(0)],
        ..RtcConfig::default()
    };
    // No in-band channel at all: the negotiated one gives the offer its data section.
    let (pending, offer) = rtc::create_offer(&cfg, &[]).await.unwrap();
    let (answer, mut host) = rtc::accept_offer(&cfg, &offer).await.unwrap();
    let mut joiner = pending.accept_answer(&answer).await.unwrap();
    let j_open = wait_channels(&mut joiner, 1).await;
    let h_open = wait_channels(&mut host, 1).await;
    assert_eq!(
        (j_open[0].1.as_str(), j_open[0].0),
        ("chat", joiner.channels()[0])
    );
    assert_eq!(
        (h_open[0].1.as_str(), h_open[0].2),
        ("chat", Reliability::Reliable)
    );
    one_message_each_way(&mut joiner, j_open[0].0, &mut host, h_open[0].0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answerer_that_negotiates_nothing_gets_the_channel_in_band_instead() {
    // A joiner offering chat pre-negotiated to a host that does not open it (one from before
    // `chat_stream`): the joiner falls back to opening chat in band, as lobby::join does.
    let joiner_cfg = RtcConfig {
        negotiated: vec![negotiated_chat(0)],
        ..RtcConfig::default()
    };
    let (pending, offer) = rtc::create_offer(&joiner_cfg, &[]).await.unwrap();
    let (answer, mut host) = rtc::accept_offer(&RtcConfig::default(), &offer)
        .await
        .unwrap();
    let mut joiner = pending.accept_answer(&answer).await.unwrap();
    let unused = joiner.channels()[0];
    let chat = joiner
        .open_channel("chat", Reliability::Reliable)
        .await
        .unwrap();
    assert_ne!(chat, unused);
    let j_open = wait_channels(&mut joiner, 2).await;
    assert!(j_open.iter().any(|c| c.0 == chat));
    let h_open = wait_channels(&mut host, 1).await;
    assert_eq!(h_open[0].1, "chat");
    one_message_each_way(&mut joiner, chat, &mut host, h_open[0].0).await;
}

#[tokio::test]
async fn negotiated_stream_ids_must_differ() {
    let cfg = RtcConfig {
        negotiated: vec![negotiated_chat(3), negotiated_chat(3)],
        ..RtcConfig::default()
    };
    assert!(matches!(
        rtc::create_offer(&cfg, &[]).await,
        Err(RtcError::Negotiation(_))
    ));
}

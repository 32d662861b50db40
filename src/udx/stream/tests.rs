//! Two streams pumped against each other in memory, through a link that can drop, duplicate
//! and reorder packets, on a simulated clock.

use super::*;

/// A deterministic xorshift for the link's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What the link does to packets.
#[derive(Clone, Copy, Default)]
struct Link {
    loss: u64,
    duplicate: u64,
    reorder: u64,
}

struct Pair {
    a: Stream,
    b: Stream,
    now: Instant,
    rng: Rng,
    link: Link,
    /// Packets on the wire: (to_b, bytes).
    wire: Vec<(bool, Vec<u8>)>,
    got_a: Vec<StreamEvent>,
    got_b: Vec<StreamEvent>,
    sent: usize,
}

impl Pair {
    fn new(link: Link) -> Pair {
        let (mut a, mut b) = (Stream::new(1), Stream::new(2));
        a.connect(2);
        b.connect(1);
        Pair {
            a,
            b,
            now: Instant::now(),
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            link,
            wire: Vec::new(),
            got_a: Vec::new(),
            got_b: Vec::new(),
            sent: 0,
        }
    }

    /// Runs until neither side has anything to send or a timer within `limit` of simulated
    /// time; returns whether it went quiet.
    fn run(&mut self, limit: Duration) -> bool {
        let until = self.now + limit;
        for _ in 0..2_000_000 {
            self.flush();
            if !self.wire.is_empty() {
                self.deliver_one();
                continue;
            }
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                Some(_) => return false,
                None => return true,
            }
        }
        panic!("did not settle");
    }

    fn flush(&mut self) {
        while let Some(p) = self.a.poll_transmit(self.now) {
            self.put(true, p);
        }
        while let Some(p) = self.b.poll_transmit(self.now) {
            self.put(false, p);
        }
        self.got_a
            .extend(std::iter::from_fn(|| self.a.poll_event()));
        self.got_b
            .extend(std::iter::from_fn(|| self.b.poll_event()));
    }

    fn put(&mut self, to_b: bool, p: Vec<u8>) {
        self.sent += 1;
        if self.rng.chance(self.link.loss) {
            return;
        }
        if self.rng.chance(self.link.duplicate) {
            self.wire.push((to_b, p.clone()));
        }
        self.wire.push((to_b, p));
    }

    fn deliver_one(&mut self) {
        let i = if self.rng.chance(self.link.reorder) {
            (self.rng.next() as usize) % self.wire.len()
        } else {
            0
        };
        let (to_b, bytes) = self.wire.remove(i);
        // One millisecond per packet: time moves, RTTs are sampled.
        self.now += Duration::from_micros(200);
        let packet = Packet::parse(&bytes).expect("we send valid packets");
        let target = if to_b { &mut self.b } else { &mut self.a };
        assert_eq!(packet.header.stream_id, target.local_id());
        target.handle_packet(self.now, &packet);
    }
}

fn data(events: &[StreamEvent]) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Data(d) => Some(d.as_slice()),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn bytes_arrive_in_order_both_ways_and_both_ends_close_cleanly() {
    let mut p = Pair::new(Link::default());
    let (ab, ba) = (pattern(100_000, 1), pattern(3_000, 2));
    p.a.write(&ab);
    p.b.write(&ba);
    p.a.end();
    p.b.end();
    assert!(p.run(Duration::from_secs(5)));
    assert_eq!(data(&p.got_b), ab);
    assert_eq!(data(&p.got_a), ba);
    for got in [&p.got_a, &p.got_b] {
        assert_eq!(
            got[got.len() - 2..],
            [StreamEvent::End, StreamEvent::Closed(None)]
        );
    }
    assert!(p.a.is_closed() && p.b.is_closed());
    // Full packets: 100,000 bytes is 87 packets of at most 1152.
    assert!(p.a.sent.is_empty());
}

#[test]
fn a_lossy_duplicating_reordering_link_delivers_every_byte_exactly_once() {
    let link = Link {
        loss: 10,
        duplicate: 5,
        reorder: 30,
    };
    let mut p = Pair::new(link);
    let ab = pattern(300_000, 3);
    p.a.write(&ab);
    p.a.end();
    p.b.end();
    assert!(p.run(Duration::from_secs(120)));
    assert_eq!(data(&p.got_b), ab);
    assert!(p.got_b.contains(&StreamEvent::End));
    assert_eq!(p.got_a.last(), Some(&StreamEvent::Closed(None)));
}

#[test]
fn a_half_close_still_lets_the_other_side_write() {
    let mut p = Pair::new(Link::default());
    p.a.end();
    assert!(p.run(Duration::from_secs(5)));
    assert_eq!(p.got_b, vec![StreamEvent::End]);
    assert!(!p.a.is_closed() && !p.b.is_closed());
    p.b.write(b"still here");
    p.b.end();
    assert!(p.run(Duration::from_secs(5)));
    assert_eq!(data(&p.got_a), b"still here");
    assert_eq!(p.got_a.last(), Some(&StreamEvent::Closed(None)));
}

#[test]
fn destroy_resets_the_remote() {
    let mut p = Pair::new(Link::default());
    p.a.write(b"hello");
    p.flush();
    p.a.destroy();
    assert_eq!(p.got_a.last(), None, "events are read on the next flush");
    assert!(p.run(Duration::from_secs(5)));
    assert_eq!(p.got_a.last(), Some(&StreamEvent::Closed(None)));
    assert_eq!(data(&p.got_b), b"hello");
    assert_eq!(
        p.got_b.last(),
        Some(&StreamEvent::Closed(Some(StreamError::Reset)))
    );
}

#[test]
fn messages_are_datagrams_beside_the_stream() {
    let mut p = Pair::new(Link::default());
    p.a.send_message(b"ping");
    p.a.write(b"bytes");
    assert!(p.run(Duration::from_secs(5)));
    assert_eq!(p.got_b[0], StreamEvent::Message(b"ping".to_vec()));
    assert_eq!(data(&p.got_b), b"bytes");
}

#[test]
fn a_vanished_remote_times_the_stream_out() {
    let mut p = Pair::new(Link {
        loss: 100,
        ..Link::default()
    });
    p.a.write(b"into the void");
    assert!(p.run(Duration::from_secs(600)));
    assert_eq!(
        p.got_a.last(),
        Some(&StreamEvent::Closed(Some(StreamError::TimedOut)))
    );
    // Six timeouts, backing off: 1 + 2 + 4 + 8 + 16 s and the sixth.
    assert!(p.sent >= 6, "{}", p.sent);
}

#[test]
fn packets_before_connect_are_kept_and_acknowledged_after() {
    let mut a = Stream::new(1);
    a.connect(2);
    let mut b = Stream::new(2);
    let now = Instant::now();
    a.write(b"early");
    let packet = a.poll_transmit(now).unwrap();
    b.handle_packet(now, &Packet::parse(&packet).unwrap());
    assert_eq!(b.poll_event(), Some(StreamEvent::Data(b"early".to_vec())));
    assert_eq!(b.poll_transmit(now), None, "no remote to ack yet");
    b.connect(1);
    let ack = b.poll_transmit(now).expect("the deferred ack");
    let ack = Packet::parse(&ack).unwrap();
    assert_eq!((ack.header.stream_id, ack.header.ack), (1, 1));
    a.handle_packet(now, &ack);
    assert_eq!(a.buffered(), 0);
}

#[test]
fn sequence_numbers_wrap_around() {
    let mut p = Pair::new(Link {
        reorder: 20,
        ..Link::default()
    });
    let start = u32::MAX - 20;
    for s in [&mut p.a, &mut p.b] {
        s.seq = start;
        s.remote_acked = start;
        s.ack = start;
    }
    let ab = pattern(60_000, 9);
    p.a.write(&ab);
    p.a.end();
    assert!(p.run(Duration::from_secs(10)));
    assert_eq!(data(&p.got_b), ab);
    assert!(p.got_b.contains(&StreamEvent::End));
}

#[test]
fn the_sender_never_exceeds_the_receive_window_it_was_given() {
    let mut a = Stream::new(1);
    a.connect(2);
    let now = Instant::now();
    a.write(&[0; 100_000]);
    // The remote says: 3,000 bytes of room.
    let mut ack = Vec::new();
    Header {
        flags: 0,
        data_offset: 0,
        stream_id: 1,
        rwnd: 3_000,
        seq: 0,
        ack: 0,
    }
    .write(&mut ack);
    a.handle_packet(now, &Packet::parse(&ack).unwrap());
    let mut bytes = 0;
    while let Some(p) = a.poll_transmit(now) {
        bytes += p.len() - HEADER_LEN;
    }
    assert!(bytes <= 3_000, "{bytes}");
    assert!(bytes > 0);
}

#[test]
fn hostile_acks_and_sacks_change_nothing() {
    let mut a = Stream::new(1);
    a.connect(2);
    let now = Instant::now();
    a.write(&[7; 5_000]);
    while a.poll_transmit(now).is_some() {}
    let outstanding = a.buffered();
    // An ack for packets never sent, and SACK blocks outside what was sent.
    for (ackn, sacks) in [
        (1_000u32, vec![]),
        (0, vec![(100, 200), (3, 2), (u32::MAX, 1)]),
    ] {
        let mut p = Vec::new();
        Header {
            flags: flags::SACK,
            data_offset: 0,
            stream_id: 1,
            rwnd: RECV_WINDOW,
            seq: 0,
            ack: ackn,
        }
        .write(&mut p);
        write_sacks(&sacks, &mut p);
        a.handle_packet(now, &Packet::parse(&p).unwrap());
    }
    assert_eq!(a.buffered(), outstanding);
    assert!(!a.is_closed());
}

#[test]
fn a_lost_final_ack_after_both_ends_closes_cleanly_not_by_timeout() {
    let (mut a, mut b) = (Stream::new(1), Stream::new(2));
    a.connect(2);
    b.connect(1);
    let mut now = Instant::now();
    let deliver = |to: &mut Stream, bytes: Vec<u8>, now: Instant| {
        to.handle_packet(now, &Packet::parse(&bytes).unwrap());
    };
    // b ends first; a sees it.
    b.end();
    let end_b = b.poll_transmit(now).unwrap();
    deliver(&mut a, end_b, now);
    // a acks b's END and ends too; b gets both and closes (libudx: no TIME_WAIT).
    a.end();
    while let Some(p) = a.poll_transmit(now) {
        deliver(&mut b, p, now);
    }
    assert!(b.is_closed());
    // b's last ack is lost: a's END is never acknowledged.
    while b.poll_transmit(now).is_some() {}
    let events: Vec<_> = std::iter::from_fn(|| a.poll_event()).collect();
    assert_eq!(events, vec![StreamEvent::End]);
    for _ in 0..2 {
        now = a.poll_timeout().expect("the END is outstanding");
        a.handle_timeout(now);
        while a.poll_transmit(now).is_some() {}
    }
    assert_eq!(a.poll_event(), Some(StreamEvent::Closed(None)));
}

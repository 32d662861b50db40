//! The stream half of a relay session (PROTOCOL.md §4): the relay's `connection` and `open`
//! (a stream for a listen or a connect of ours), `data` / `end` / `destroy` both ways, as
//! [`ClientEvent`]s for the driver and methods of [`ClientCore`] for the stream handles.

use tracing::debug;

use super::{Base, ClientCore, ClientEvent, Live, NewStream, StreamEntry, StreamKeys};
use crate::net::secret_stream;
use crate::net::SessionInfo;
use crate::relay::messages::{AliasRef, Connected, Connection, Data, Destroy, DestroyTarget, Open};
use crate::relay::Message;

impl Live {
    /// `open`: the relay paired our connect `o.remote_alias`; check the handshake it names and
    /// hand the stream out, or destroy it.
    pub(super) fn on_open(&mut self, b: &mut Base, o: Open) {
        let destroy = Message::Destroy(Destroy {
            target: DestroyTarget::Paired {
                alias: o.remote_alias,
            },
            error: None,
        });
        let Some(peer) = self.pending.remove(&o.remote_alias) else {
            if !self.streams.contains_key(&o.remote_alias) {
                // A connect that already failed here (e.g. its handshake): don't leave the
                // relay's pair behind.
                self.send(&destroy);
            }
            return;
        };
        let keys = self
            .take_handshake(b, &o.handshake, true)
            .and_then(|keys| match &keys {
                StreamKeys::Own(k) if k.remote_public_key != peer => {
                    Err("the handshake was with another key".into())
                }
                _ => Ok(keys),
            });
        self.forget_handshakes_of(o.remote_alias);
        match keys {
            Ok(keys) => {
                let stream = self.new_stream(b, (o.alias, peer), keys, true, o.remote_alias);
                b.events.push_back(ClientEvent::Opened(stream));
            }
            Err(reason) => {
                b.events.push_back(ClientEvent::ConnectFailed {
                    alias: o.remote_alias,
                    peer,
                    reason,
                });
                self.send(&destroy);
            }
        }
    }

    /// `destroy`: of a connect not yet paired (it fails), or of a stream (it closes).
    pub(super) fn on_destroy(&mut self, b: &mut Base, x: Destroy) {
        match x.target {
            DestroyTarget::Unpaired { remote_alias } => {
                if let Some(peer) = self.pending.remove(&remote_alias) {
                    self.forget_handshakes_of(remote_alias);
                    b.events.push_back(ClientEvent::ConnectFailed {
                        alias: remote_alias,
                        peer,
                        reason: x.error.unwrap_or_else(|| "refused".into()),
                    });
                } else if self.streams.contains_key(&remote_alias) {
                    b.events.push_back(ClientEvent::StreamClosed {
                        alias: remote_alias,
                        reason: x.error.unwrap_or_else(|| "destroyed by the relay".into()),
                    });
                    self.forget(remote_alias);
                }
            }
            DestroyTarget::Paired { alias } => {
                if let Some(ours) = self.by_remote.get(&alias).copied() {
                    if self.streams.contains_key(&ours) {
                        b.events.push_back(ClientEvent::StreamClosed {
                            alias: ours,
                            reason: x
                                .error
                                .unwrap_or_else(|| "the remote destroyed the stream".into()),
                        });
                    }
                    self.forget(ours);
                }
            }
        }
    }

    /// `end`: the remote ended its side; the stream is forgotten once both sides ended.
    pub(super) fn on_end(&mut self, b: &mut Base, remote_alias: u32) {
        let Some(ours) = self.by_remote.get(&remote_alias).copied() else {
            return;
        };
        let Some(st) = self.streams.get_mut(&ours) else {
            return;
        };
        st.remote_ended = true;
        b.events.push_back(ClientEvent::StreamEnd { alias: ours });
        if st.local_ended {
            self.forget(ours);
        }
    }

    /// Registers a stream the relay opened under our `alias` and describes it for the driver.
    /// Non-custodial: starts our secret-stream from the handshake's keys and sends its
    /// id+header first.
    pub(super) fn new_stream(
        &mut self,
        b: &Base,
        (remote_alias, remote_public_key): (u32, [u8; 32]),
        keys: StreamKeys,
        is_initiator: bool,
        alias: u32,
    ) -> NewStream {
        let (info, crypto) = match keys {
            StreamKeys::Custodial(handshake_hash) => {
                let info = SessionInfo {
                    is_initiator,
                    public_key: b.public_key(),
                    remote_public_key,
                    handshake_hash,
                };
                (info, None)
            }
            StreamKeys::Own(keys) => {
                let (info, enc, header, dec) =
                    secret_stream::from_handshake(&keys, is_initiator, b.public_key());
                // Our id+header goes out before anything the stream's writer sends.
                self.send(&Message::Data(Data {
                    alias,
                    chunks: vec![header],
                }));
                (info, Some((Box::new(enc), Box::new(dec))))
            }
        };
        self.streams.insert(
            alias,
            StreamEntry {
                remote_alias,
                local_ended: false,
                remote_ended: false,
            },
        );
        self.by_remote.insert(remote_alias, alias);
        NewStream {
            alias,
            generation: b.generation,
            info,
            crypto,
        }
    }

    pub(super) fn forget(&mut self, alias: u32) {
        if let Some(st) = self.streams.remove(&alias) {
            self.by_remote.remove(&st.remote_alias);
        }
    }

    /// Accepts a `connection` the relay paired with one of our listens.
    pub(super) fn on_connection(&mut self, b: &mut Base, c: Connection) {
        let listen = self.listening(b, c.server_alias);
        let keys = match self.take_handshake(b, &c.handshake, false) {
            Ok(keys) => keys,
            Err(why) => {
                debug!(%why, "relay client: refused a connection");
                return self.destroy_remote(c.alias, &why);
            }
        };
        let Some(listen) = listen else {
            return self.destroy_remote(c.alias, "not listening");
        };
        let alias = b.id();
        self.send(&Message::Connected(Connected {
            alias,
            remote_alias: c.alias,
        }));
        let stream = self.new_stream(b, (c.alias, c.remote_public_key), keys, false, alias);
        b.events.push_back(ClientEvent::Incoming { listen, stream });
    }
}

impl ClientCore {
    /// Stream `alias` of session `generation` sends `chunks` (`data`). False if it is not live
    /// (another session, gone, or ended by us): the chunks are dropped and the write fails.
    pub(crate) fn send_data(&mut self, generation: u64, alias: u32, chunks: Vec<Vec<u8>>) -> bool {
        let Some(live) = self.live_for(generation) else {
            return false;
        };
        if live.streams.get(&alias).is_none_or(|s| s.local_ended) {
            return false;
        }
        live.send(&Message::Data(Data { alias, chunks }));
        true
    }

    /// Our side of stream `alias` ends (`end`, once).
    pub(crate) fn end_stream(&mut self, generation: u64, alias: u32) {
        let Some(live) = self.live_for(generation) else {
            return;
        };
        let Some(st) = live.streams.get_mut(&alias) else {
            return;
        };
        if st.local_ended {
            return;
        }
        st.local_ended = true;
        let forget = st.remote_ended;
        live.send(&Message::End(AliasRef { alias }));
        if forget {
            live.forget(alias);
        }
    }

    /// The reader of stream `alias` is gone: `destroy` unless the remote already ended, and
    /// forget it.
    pub(crate) fn drop_stream(&mut self, generation: u64, alias: u32) {
        let Some(live) = self.live_for(generation) else {
            return;
        };
        let Some(st) = live.streams.get(&alias) else {
            return;
        };
        if !st.remote_ended {
            live.send(&Message::Destroy(Destroy {
                target: DestroyTarget::Paired { alias },
                error: None,
            }));
        }
        live.forget(alias);
    }

    /// Forgets stream `alias` of the current session without a word to the relay (nobody took
    /// its handle).
    pub(crate) fn forget_stream(&mut self, alias: u32) {
        if let Some(live) = self.live.as_mut() {
            live.forget(alias);
        }
    }

    fn live_for(&mut self, generation: u64) -> Option<&mut Live> {
        if generation != self.base.generation {
            return None;
        }
        self.live.as_mut()
    }
}

//! One client session's loops (read, write, timer) around the shared relay core.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::stream::{Reader, Writer};
use super::{Shared, Wakers};
use crate::relay::server::ws::Incoming;
use crate::relay::server::CloseReason;

/// Most bytes the writer takes from the relay core in one batch.
const WRITE_BATCH: usize = 256 << 10;
/// How long a closing session may take to flush its last frames before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Runs one client session until it closes, then forgets it.
pub(super) async fn serve(
    shared: Arc<Shared>,
    peer: String,
    mut reader: Reader,
    mut writer: Writer,
) {
    let (id, wakers) = {
        let mut st = shared.lock();
        let id = match st.relay.open_session(peer.clone(), Instant::now()) {
            Ok(id) => id,
            Err(e) => return warn!(%peer, error = %e, "relay: refusing a session"),
        };
        let wakers = Arc::new(Wakers::default());
        st.wakers.insert(id, wakers.clone());
        (id, wakers)
    };
    // A WebSocket ping waiting for its pong (only the latest needs one, RFC 6455 §5.5.3).
    let pong: Mutex<Option<Vec<u8>>> = Mutex::new(None);
    let read_loop = async {
        loop {
            loop {
                let (wants, closing) = {
                    let st = shared.lock();
                    (st.relay.wants_read(id), st.relay.close_reason(id).is_some())
                };
                if closing {
                    // The write loop flushes the last frames and ends the session.
                    return std::future::pending::<()>().await;
                }
                if wants {
                    break;
                }
                wakers.read.notified().await;
            }
            let r = reader.read().await;
            if let Ok(Incoming::Ping(payload)) = r {
                *crate::sync::lock(&pong) = Some(payload);
                wakers.write.notify_one();
                continue;
            }
            let mut st = shared.lock();
            match r {
                Ok(Incoming::Message(frame)) => st.relay.handle_frame(id, &frame, Instant::now()),
                Ok(Incoming::Ping(_)) => {}
                Ok(Incoming::Closed) => st.relay.close_session(id, CloseReason::ClientGone),
                Err(reason) => st.relay.close_session(id, reason),
            }
            st.wake();
        }
    };
    let write_loop = async {
        loop {
            let ping = crate::sync::lock(&pong).take();
            if let Some(payload) = ping {
                if let Err(reason) = writer.pong(&payload).await {
                    let mut st = shared.lock();
                    st.relay.close_session(id, reason);
                    st.wake();
                    return;
                }
            }
            let (frames, finished) = {
                let mut st = shared.lock();
                let now = Instant::now();
                let (mut frames, mut bytes) = (Vec::new(), 0);
                while bytes < WRITE_BATCH {
                    let Some(f) = st.relay.poll_transmit(id, now) else {
                        break;
                    };
                    bytes += f.len();
                    frames.push(f);
                }
                let finished = st.relay.is_finished(id);
                st.wake();
                (frames, finished)
            };
            if !frames.is_empty() {
                if let Err(reason) = writer.write(frames).await {
                    let mut st = shared.lock();
                    st.relay.close_session(id, reason);
                    st.wake();
                    return;
                }
                continue;
            }
            if finished {
                let reason = shared
                    .lock()
                    .relay
                    .close_reason(id)
                    .unwrap_or(CloseReason::ClientGone);
                let _ = tokio::time::timeout(CLOSE_GRACE, writer.close(&reason)).await;
                return;
            }
            wakers.write.notified().await;
        }
    };
    let timer_loop = async {
        loop {
            let (deadline, closing) = {
                let st = shared.lock();
                (
                    st.relay.poll_timeout(id),
                    st.relay.close_reason(id).is_some(),
                )
            };
            if closing {
                // Normally the write loop ends first; this bounds a client that never reads.
                tokio::time::sleep(CLOSE_GRACE).await;
                return;
            }
            let deadline = deadline.unwrap_or_else(Instant::now);
            tokio::select! {
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let mut st = shared.lock();
                    st.relay.handle_timeout(id, Instant::now());
                    st.wake();
                }
                _ = wakers.timer.notified() => {}
            }
        }
    };
    tokio::select! {
        _ = read_loop => {}
        _ = write_loop => {}
        _ = timer_loop => {}
    }
    let mut st = shared.lock();
    st.relay.remove_session(id);
    st.wakers.remove(&id);
    st.wake();
    debug!(%peer, sessions = st.relay.session_count(), "relay: connection done");
}

//! A delayed Ethernet link between two namespaces: a TAP device in each, and threads in the test
//! process that copy every frame from one to the other after a fixed delay, both directions.
//!
//! Why not `tc qdisc … netem delay`: this machine's kernel is built without netem
//! (`CONFIG_NET_SCH_NETEM` is not set, nor `fq`, so no EDT delay either), and CI may run on the
//! same kind of kernel. TAP devices (`CONFIG_TUN`) are there. Frames keep their order (one FIFO
//! per direction, constant delay); a queue of more than [`QUEUE_FRAMES`] frames drops the newest,
//! as a router's full queue would.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::in_netns;

/// Frames queued per direction before new ones are dropped.
const QUEUE_FRAMES: usize = 4096;
/// How often the threads look at the stop flag while idle.
const POLL: Duration = Duration::from_millis(50);

/// A running link; stopping it (drop) closes both TAP devices, which removes them.
pub struct Wire {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Wire {
    /// TAP `a_dev` in namespace `a` and TAP `b_dev` in namespace `b`, joined with `delay` each
    /// way. The devices exist (down, no address) when this returns; configure them with `ip`.
    pub fn new(a: &str, a_dev: &str, b: &str, b_dev: &str, delay: Duration) -> Wire {
        let tap_a = Arc::new(open_tap(a, a_dev));
        let tap_b = Arc::new(open_tap(b, b_dev));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (from, to) in [(&tap_a, &tap_b), (&tap_b, &tap_a)] {
            let (tx, rx) = sync_channel(QUEUE_FRAMES);
            let (from, to) = (Arc::clone(from), Arc::clone(to));
            let reader_stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || {
                read_frames(&from, &tx, delay, &reader_stop)
            }));
            let writer_stop = Arc::clone(&stop);
            threads.push(std::thread::spawn(move || {
                write_frames(&to, &rx, &writer_stop)
            }));
        }
        Wire { stop, threads }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Opens TAP device `name` inside `netns` (IFF_TAP | IFF_NO_PI: whole Ethernet frames, no
/// header; it lives as long as the file).
fn open_tap(netns: &str, name: &str) -> File {
    let name = name.to_string();
    let what = format!("TAP {name} in {netns}");
    in_netns(netns, move || -> std::io::Result<File> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        // struct ifreq: 16 bytes of name, then the flags (a short), padded to 40 bytes.
        let mut ifreq = [0u8; 40];
        ifreq[..name.len()].copy_from_slice(name.as_bytes());
        let flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        ifreq[16..18].copy_from_slice(&flags.to_ne_bytes());
        // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `ifreq` is large enough for.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, ifreq.as_mut_ptr()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(file)
    })
    .unwrap_or_else(|e| panic!("{what}: {e} (needs /dev/net/tun)"))
}

/// Reads frames from `tap` and queues each with the instant it is due, until `stop`.
fn read_frames(
    tap: &File,
    queue: &SyncSender<(Instant, Vec<u8>)>,
    delay: Duration,
    stop: &AtomicBool,
) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let mut pollfd = libc::pollfd {
            fd: tap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pollfd, 1, POLL.as_millis() as libc::c_int) };
        if ready <= 0 {
            continue;
        }
        match (&*tap).read(&mut buf) {
            Ok(n) => {
                // A full queue drops the frame (tail drop).
                let _ = queue.try_send((Instant::now() + delay, buf[..n].to_vec()));
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Writes queued frames to `tap` when they are due, until `stop` and the reader is gone.
fn write_frames(tap: &File, queue: &Receiver<(Instant, Vec<u8>)>, stop: &AtomicBool) {
    loop {
        match queue.recv_timeout(POLL) {
            Ok((due, frame)) => {
                let wait = due.saturating_duration_since(Instant::now());
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(wait);
                // A device that is down refuses frames; the link just loses them.
                let _ = (&*tap).write(&frame);
            }
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {}
            Err(_) => return,
        }
    }
}

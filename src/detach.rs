//! Takes a long-lived SSE connection away from tiny_http's thread pool.
//!
//! tiny_http 0.12 serves each connection on a pool thread that, after
//! handing us a request, blocks reading the socket for the next one. For a
//! stream that never ends this costs a second thread per client, starves the
//! pool (a burst of new connections is queued behind busy threads and never
//! answered), and keeps the socket open after we want it closed. tiny_http
//! does not expose the socket, so this module finds it: it looks through the
//! process's open descriptors for the TCP socket whose peer is the request's
//! remote address and whose local port is ours, duplicates it into a
//! `TcpStream` we own, and shuts down its read side. The pool thread's read
//! then returns end-of-file, it gives the connection up and goes back to the
//! pool; our duplicate stays writable and can close the stream from the
//! server side at any time (`shutdown(Both)`). Works wherever `/dev/fd`
//! lists open descriptors (Linux, macOS), with a bounded scan as fallback.
//!
//! Runs on the SSE client's own thread, once per connection. Never reads
//! or writes stream data. See docs/ARCHITECTURE.md, "Why detach".
//!
//! The same descriptor scan backs the idle reaper ("reaper" thread): every
//! [`REAP_EVERY`] it closes connections to our port that are not streams and
//! have been open longer than [`CONNECTION_DEADLINE`], so an idle or
//! trickling socket (slowloris) cannot hold a tiny_http thread forever.
//! (A receive timeout on the listener would do it per socket, but tiny_http
//! 0.12 ends its accept loop on the first accept error, and a listener's
//! receive timeout makes `accept` itself fail after that long without a new
//! connection.)

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{BorrowedFd, RawFd};

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use socket2::SockRef;

use crate::debug;
use crate::state::Shared;

/// Highest descriptor tried when `/dev/fd` cannot be listed.
const FALLBACK_MAX_FD: RawFd = 65_536;

/// peer address → descriptor, from the last scan. Entries are verified
/// before use, so a stale one only costs a rescan.
static CACHE: Mutex<Option<HashMap<SocketAddr, RawFd>>> = Mutex::new(None);

/// The addresses of socket `fd`, if it is a connected socket.
fn addrs_of(fd: RawFd) -> Option<(SocketAddr, SocketAddr)> {
    // SAFETY: `fd` came from listing our own descriptor table. It may be
    // closed (or reused) by another thread at any moment; the borrow is only
    // used for getpeername/getsockname, for which the kernel validates the
    // descriptor and reports EBADF or ENOTSOCK. No memory is shared with
    // whatever the descriptor refers to.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = SockRef::from(&borrowed);
    let peer = sock.peer_addr().ok()?.as_socket()?;
    let local = sock.local_addr().ok()?.as_socket()?;
    Some((peer, local))
}

fn open_fds() -> Vec<RawFd> {
    match std::fs::read_dir("/dev/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => (0..FALLBACK_MAX_FD).collect(),
    }
}

fn scan(local_port: u16) -> HashMap<SocketAddr, RawFd> {
    let mut map = HashMap::new();
    for fd in open_fds() {
        if let Some((peer, local)) = addrs_of(fd) {
            if local.port() == local_port {
                map.insert(peer, fd);
            }
        }
    }
    map
}

/// Duplicates `fd` if it still is the socket connected to `peer`. `Ok(None)`
/// when it is not; `Err` when it is but cannot be duplicated (out of
/// descriptors), so the caller reports the real cause.
fn dup_checked(fd: RawFd, peer: SocketAddr, local_port: u16) -> io::Result<Option<TcpStream>> {
    let Some((p, l)) = addrs_of(fd) else {
        return Ok(None);
    };
    if p != peer || l.port() != local_port {
        return Ok(None);
    }
    // SAFETY: as in `addrs_of`; `try_clone_to_owned` is `dup`, which fails
    // cleanly on a closed descriptor. The duplicate is re-checked below, so
    // a descriptor reused between the two calls is never accepted.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let stream = TcpStream::from(borrowed.try_clone_to_owned()?);
    match (stream.peer_addr(), stream.local_addr()) {
        (Ok(p), Ok(l)) if p == peer && l.port() == local_port => Ok(Some(stream)),
        _ => Ok(None),
    }
}

/// [`dup_checked`] for callers that only care whether it worked.
fn dup_if_peer(fd: RawFd, peer: SocketAddr, local_port: u16) -> Option<TcpStream> {
    dup_checked(fd, peer, local_port).ok().flatten()
}

/// Finds the socket of the connection from `peer` to our `local_port`,
/// returns our own handle on it, and releases tiny_http's reader.
///
/// The request must still be alive (not dropped), so its socket is open.
pub fn detach(peer: SocketAddr, local_port: u16) -> io::Result<TcpStream> {
    let mut cache = CACHE.lock();
    let cached = cache.as_ref().and_then(|m| m.get(&peer).copied());
    let stream = match cached.and_then(|fd| dup_if_peer(fd, peer, local_port)) {
        Some(s) => s,
        None => {
            let map = scan(local_port);
            let found = match map.get(&peer) {
                Some(fd) => dup_checked(*fd, peer, local_port)?,
                None => None,
            };
            *cache = Some(map);
            found.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no socket for peer {peer}"),
                )
            })?
        }
    };
    drop(cache);
    stream.shutdown(Shutdown::Read)?;
    Ok(stream)
}

/// How long a connection that is not a stream may stay open: far more than
/// any request and response here take, and a kept-alive client simply
/// reconnects.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(20);

/// Interval of the idle reaper's scan. Costs two `getsockname`/`getpeername`
/// calls per open descriptor (~0.5 ms with 100 clients), so ~0.005 % of a
/// core; a slow socket lives at most deadline + interval.
pub const REAP_EVERY: Duration = Duration::from_secs(10);

/// Starts the reaper thread for connections to `local_port`.
pub fn spawn_reaper(local_port: u16, shared: Arc<Shared>) -> io::Result<thread::JoinHandle<()>> {
    thread::Builder::new().name("reaper".into()).spawn(move || {
        // peer → when a scan first saw it.
        let mut seen: HashMap<SocketAddr, Instant> = HashMap::new();
        while !shared.stopping() {
            thread::sleep(REAP_EVERY);
            let now = Instant::now();
            let sockets = scan(local_port);
            seen.retain(|peer, _| sockets.contains_key(peer));
            let streams = shared.stream_peers.lock().clone();
            for (peer, fd) in sockets {
                if streams.contains(&peer) {
                    continue;
                }
                let first = *seen.entry(peer).or_insert(now);
                if now.duration_since(first) < CONNECTION_DEADLINE {
                    continue;
                }
                // Verified duplicate: never shut down a descriptor reused
                // by another connection since the scan.
                if let Some(sock) = dup_if_peer(fd, peer, local_port) {
                    if !shared.stream_peers.lock().contains(&peer) {
                        let _ = sock.shutdown(Shutdown::Both);
                        shared.metrics.idle_closed.fetch_add(1, Ordering::Relaxed);
                        debug!("closed connection from {peer}: open over {CONNECTION_DEADLINE:?} without a stream");
                    }
                }
                seen.remove(&peer);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn finds_and_duplicates_the_socket_by_peer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server_side, peer) = listener.accept().unwrap();
        let mut ours = detach(peer, port).unwrap();
        // Our handle writes to the same connection.
        ours.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        // The original handle's reads now end (read side shut down).
        let mut rd = &server_side;
        let mut one = [0u8; 1];
        assert_eq!(rd.read(&mut one).unwrap(), 0);
        // A server-side close reaches the client as EOF.
        ours.shutdown(Shutdown::Both).unwrap();
        assert_eq!(client.read(&mut one).unwrap(), 0);
        assert!(detach("127.0.0.1:1".parse().unwrap(), port).is_err());
    }
}

//! One SSE client, from headers to goodbye, on its own thread.
//!
//! Owns a client's connection for its whole life: detaches the socket from
//! tiny_http, writes the headers, subscribes to the hub *before* replaying,
//! sends `ready` and a first `burn_tick`, replays the rows after the
//! client's `Last-Event-ID` from the store, then writes live frames from its
//! queue, de-duplicating at the seam, with a heartbeat when idle. Every way
//! out (write error, slow, shutdown, hub gone) ends in the same
//! [`ClientShared::disconnect`].
//!
//! Runs on a thread named `sse-<peer>`, one per client. Never touches
//! another client and never blocks the hub: it only receives.

use std::io::{self, BufWriter, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use crate::detach;
use crate::hub::{ClientMsg, ClientShared, HubMsg, Subscriber, CLIENT_QUEUE};
use crate::sse::{self, Frame, Kind};
use crate::state::{Reason, Shared};
use crate::store::{self, PAGE_ROWS};
use crate::time::now_ms;
use crate::{debug, warn};

/// Idle time after which a heartbeat comment is written. Below the 30–60 s
/// idle timeouts of common proxies, and frequent enough that a vanished
/// client is reaped within two heartbeats.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);

/// A write blocked this long means the client stopped reading; the write
/// fails and the client is disconnected.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Kernel send buffer of a client socket. Bounds the memory a client that
/// stops reading can pin (loopback autotuning would allow megabytes), and
/// makes such a client hit [`WRITE_TIMEOUT`] sooner; 256 KiB still holds
/// hundreds of frames for a reader that is merely busy.
pub const SEND_BUFFER: usize = 256 * 1024;

/// Stack size of a client thread. Its work is shallow (no recursion, small
/// buffers); a small stack keeps thousands of clients cheap.
pub const CLIENT_STACK: usize = 256 * 1024;

/// What the HTTP layer parsed from the request.
#[derive(Debug, Clone)]
pub struct StreamParams {
    /// Minutes east of UTC, for `burn_tick`.
    pub tz_offset: i64,
    /// Resume position from `Last-Event-ID` or `?last_event_id=`.
    pub resume: Option<(i64, Option<i64>)>,
    /// Without a resume point: also send up to this many of the newest
    /// rows of each kind first (`?recent=N`, our extension, so a page
    /// opened on a quiet machine is not empty).
    pub recent: i64,
    /// Extra response headers (CORS), already formatted `Name: value\r\n`.
    pub extra_headers: String,
}

/// Removes a stream's peer from the reaper's exemptions however it ends.
struct PeerGuard<'a>(&'a Shared, std::net::SocketAddr);

impl Drop for PeerGuard<'_> {
    fn drop(&mut self) {
        self.0.stream_peers.lock().remove(&self.1);
    }
}

/// Decrements the live-client count however the thread ends.
struct Registration<'a>(&'a Shared);

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves one stream. Called on the client's own thread with the request
/// still unanswered; the caller has already counted the client in
/// `shared.clients` (this function uncounts it on every path).
pub fn serve(
    req: tiny_http::Request,
    params: StreamParams,
    shared: Arc<Shared>,
    hub: Sender<HubMsg>,
    local_port: u16,
) {
    let _reg = Registration(&shared);
    let Some(peer) = req.remote_addr().copied() else {
        return;
    };
    // Answering the request hands us its writer; we keep it alive (unused)
    // until the end, because dropping it shuts the socket's write side.
    let tiny_writer = req.into_writer();
    let socket = match detach::detach(peer, local_port) {
        Ok(s) => s,
        Err(e) => {
            warn!("stream {peer}: cannot take over the socket: {e}");
            return;
        }
    };
    shared.stream_peers.lock().insert(peer);
    let _peer_guard = PeerGuard(&shared, peer);
    let _ = socket.set_nodelay(true);
    let _ = socket.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = socket2::SockRef::from(&socket).set_send_buffer_size(SEND_BUFFER);
    // One descriptor shared by the writer here and the disconnect handle
    // (not a second dup): file descriptors, not threads, are what runs out
    // first at a few thousand clients.
    let socket = Arc::new(socket);
    let client = Arc::new(ClientShared::new(peer, socket.clone()));
    shared.metrics.clients_total.fetch_add(1, Ordering::Relaxed);
    debug!("client {peer} connected");
    let mut session = Session {
        out: BufWriter::with_capacity(16 * 1024, SharedSocket(socket)),
        shared: &shared,
        client: &client,
        event_id: 0,
        tool_id: 0,
        last_write: Instant::now(),
    };
    let result = session.run(&params, &hub);
    let reason = match result {
        Ok(()) => Reason::Shutdown,
        Err(_) if client.is_disconnected() => Reason::Shutdown, // decided elsewhere; no-op below
        Err(_) => Reason::WriteError,
    };
    client.disconnect(reason, &shared);
    drop(session);
    drop(tiny_writer);
}

/// Writes through a shared `TcpStream` (`&TcpStream` implements `Write`).
struct SharedSocket(Arc<TcpStream>);

impl Write for SharedSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

struct Session<'a> {
    out: BufWriter<SharedSocket>,
    shared: &'a Shared,
    client: &'a Arc<ClientShared>,
    // This client's delivered watermarks: every event ≤ event_id and every
    // tool call ≤ tool_id has been written (or was before its resume point).
    event_id: i64,
    tool_id: i64,
    last_write: Instant,
}

impl Session<'_> {
    /// Ok(()) when the stream ended because the hub or daemon stopped;
    /// Err when writing failed.
    fn run(&mut self, params: &StreamParams, hub: &Sender<HubMsg>) -> io::Result<()> {
        write!(
            self.out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n\
             X-Accel-Buffering: no\r\nConnection: close\r\n{}\r\nretry: {}\n\n",
            params.extra_headers,
            sse::RETRY_MS
        )?;
        self.out.flush()?;

        // Subscribe first, so nothing committed from here on is missed.
        let (tx, rx) = bounded(CLIENT_QUEUE);
        let (reply_tx, reply_rx) = bounded(1);
        let sub = Subscriber {
            tx,
            tz_offset: params.tz_offset,
            client: self.client.clone(),
        };
        if hub.send(HubMsg::Subscribe(sub, reply_tx)).is_err() {
            return Ok(());
        }
        let Ok((hub_e, hub_t)) = reply_rx.recv() else {
            return Ok(()); // hub refused (shutting down)
        };
        // A resume point beyond what exists (another store, a reset) is
        // clamped, so the client neither waits for rows that will not come
        // nor skips the new ones.
        let (start_e, start_t) = match params.resume {
            Some((e, t)) => (e.min(hub_e), t.unwrap_or(hub_t).min(hub_t)),
            None => (
                (hub_e - params.recent).max(0),
                (hub_t - params.recent).max(0),
            ),
        };
        self.event_id = start_e;
        self.tool_id = start_t;
        let now = now_ms();
        self.out
            .write_all(&sse::ready(start_e, start_t, self.shared.watcher(), now))?;
        self.out
            .write_all(&sse::burn_tick(&self.shared.burn(now, params.tz_offset)))?;
        self.flush()?;
        if start_e < hub_e || start_t < hub_t {
            self.replay(hub_e, hub_t)?;
        }
        self.live(&rx)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.last_write = Instant::now();
        Ok(())
    }

    /// Rows in (start, hub watermark] from the store, events then tool calls.
    fn replay(&mut self, hub_e: i64, hub_t: i64) -> io::Result<()> {
        let conn = match store::open_read_only(&self.shared.store_path) {
            Ok(c) => c,
            Err(e) => {
                warn!("client {}: cannot replay: {e}", self.client.peer);
                return Err(io::Error::other(e.to_string()));
            }
        };
        self.replay_kind(self.event_id, hub_e, |after| {
            Ok(store::recent_events(&conn, after, PAGE_ROWS)?
                .iter()
                .map(sse::event_frame)
                .collect())
        })?;
        self.event_id = self.event_id.max(hub_e);
        self.replay_kind(self.tool_id, hub_t, |after| {
            Ok(store::recent_tool_calls(&conn, after, PAGE_ROWS)?
                .iter()
                .map(sse::tool_frame)
                .collect())
        })?;
        self.tool_id = self.tool_id.max(hub_t);
        self.flush()
    }

    /// Writes the rows of one kind in `(after, upto]`, a page at a time.
    fn replay_kind(
        &mut self,
        mut after: i64,
        upto: i64,
        mut page: impl FnMut(i64) -> rusqlite::Result<Vec<Frame>>,
    ) -> io::Result<()> {
        while after < upto {
            let frames = page(after).map_err(|e| io::Error::other(e.to_string()))?;
            let Some(last) = frames.last().map(|f| f.row_id) else {
                break;
            };
            for f in frames.iter().take_while(|f| f.row_id <= upto) {
                self.write(f)?;
            }
            if last >= upto {
                break;
            }
            after = last;
            self.flush()?;
        }
        Ok(())
    }

    /// Writes one row frame unless the client already has it.
    fn write(&mut self, f: &Frame) -> io::Result<()> {
        match f.kind {
            Kind::Event if f.row_id <= self.event_id => return Ok(()),
            Kind::ToolCall if f.row_id <= self.tool_id => return Ok(()),
            Kind::Event => self.event_id = f.row_id,
            Kind::ToolCall => self.tool_id = f.row_id,
            // A correction of a row the client has (or will get from the
            // store, already corrected): always sent, moves no watermark.
            Kind::EventUpdate => {}
        }
        sse::write_frame(&mut self.out, f, self.event_id, self.tool_id)?;
        self.shared
            .metrics
            .frames_sent
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Writes a queued message; returns when its rows' commit was seen.
    fn deliver(&mut self, msg: ClientMsg) -> io::Result<Option<Instant>> {
        match msg {
            ClientMsg::Frames(frames, seen) => {
                for f in frames.iter() {
                    self.write(f)?;
                }
                return Ok(Some(seen));
            }
            ClientMsg::Raw(bytes) => {
                self.out.write_all(&bytes)?;
                self.shared
                    .metrics
                    .frames_sent
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(None)
    }

    fn live(&mut self, rx: &Receiver<ClientMsg>) -> io::Result<()> {
        loop {
            if self.client.is_disconnected() {
                return Ok(());
            }
            let wait = HEARTBEAT_EVERY.saturating_sub(self.last_write.elapsed());
            match rx.recv_timeout(wait) {
                Ok(msg) => {
                    let mut seen = Vec::new();
                    seen.extend(self.deliver(msg)?);
                    // Drain what else is queued, then one flush: one syscall
                    // per wake-up, however many frames.
                    while let Ok(more) = rx.try_recv() {
                        seen.extend(self.deliver(more)?);
                    }
                    self.flush()?;
                    for s in seen {
                        self.shared
                            .metrics
                            .commit_to_send
                            .observe(s.elapsed().as_secs_f64());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.out.write_all(sse::HEARTBEAT)?;
                    self.flush()?;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }
}

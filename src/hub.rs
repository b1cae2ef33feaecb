//! The hub: turns new rows into frames once and fans them out to clients.
//!
//! Owns the set of subscribed clients and the published watermarks. Runs on
//! its own thread ("hub"), the only thread that sends to client queues. It
//! receives [`HubMsg`]s from the change feed (follow or ingest) and from
//! SSE client threads subscribing, and a timer for `burn_tick` frames.
//! It updates the shared rolling figures, serializes each row once, and
//! offers every client the same `Arc`'d batch with a non-blocking
//! `try_send`.
//!
//! Architecture Invariant: the hub never blocks on a client. A full queue
//! disconnects that client (it resumes with `Last-Event-ID`), because one
//! slow browser must not delay the others or grow memory without bound.
//!
//! Architecture Invariant: the hub never reads the store; rows arrive
//! already read by the feed, so a slow query cannot stall fan-out.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, tick, Receiver, Sender, TrySendError};

use crate::latency::ToolMark;
use crate::sse::{self, Frame};
use crate::state::{Reason, Shared};
use crate::store::{EventRow, ToolRow};
use crate::time::{now_ms, parse_ts_ms};
use crate::{debug, info};

/// Capacity of each client's queue, in messages (a message is one published
/// batch or one tick, however many rows it holds). Enough to ride out a
/// burst of commits and a few seconds of a slow network; beyond it the
/// client is cut off and resumes from the store.
pub const CLIENT_QUEUE: usize = 256;

/// Capacity of the hub's own inbox. Feeds block when it is full, which
/// slows ingest rather than dropping rows.
pub const HUB_QUEUE: usize = 1024;

/// New rows from a change feed, in commit order.
#[derive(Debug, Default)]
pub struct FeedBatch {
    /// New usage events, ascending id.
    pub events: Vec<EventRow>,
    /// New tool-call rows, ascending id.
    pub tools: Vec<ToolRow>,
    /// Usage events that already existed and changed (a larger usage copy
    /// arrived). They update the figures and are re-sent to clients.
    pub corrections: Vec<EventRow>,
    /// Tool calls and results for latency pairing.
    pub marks: Vec<ToolMark>,
    /// When the feed saw the commit (after COMMIT returned in ingest mode;
    /// when the follower read the rows in follow mode).
    pub seen_at: Option<Instant>,
}

impl FeedBatch {
    /// True when the batch carries nothing.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.tools.is_empty()
            && self.corrections.is_empty()
            && self.marks.is_empty()
    }
}

/// What a client queue carries.
#[derive(Debug, Clone)]
pub enum ClientMsg {
    /// Row frames, ascending within each kind, and when their commit was seen.
    Frames(Arc<Vec<Frame>>, Instant),
    /// A complete frame that moves no watermark (`burn_tick`).
    Raw(Arc<[u8]>),
}

/// The part of a client both its thread and the hub can touch.
#[derive(Debug)]
pub struct ClientShared {
    /// Peer address, for logs.
    pub peer: SocketAddr,
    // 0 while connected; the first Reason to arrive wins.
    reason: AtomicU8,
    // Our own handle on the client's socket, so a disconnect decided on
    // another thread (slow, shutdown) reaches the client at once, even when
    // its thread is blocked in a write.
    socket: Arc<TcpStream>,
}

impl ClientShared {
    /// Wraps a client's socket.
    pub fn new(peer: SocketAddr, socket: Arc<TcpStream>) -> Self {
        ClientShared {
            peer,
            reason: AtomicU8::new(0),
            socket,
        }
    }

    /// The one way a client is disconnected, whoever decides it: records
    /// the reason, closes the socket both ways (the client sees EOF, a
    /// blocked write returns), counts and logs it. Idempotent: only the
    /// first call acts; it returns whether this call was the first.
    pub fn disconnect(&self, reason: Reason, shared: &Shared) -> bool {
        if self
            .reason
            .compare_exchange(0, reason as u8, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false;
        }
        let _ = self.socket.shutdown(Shutdown::Both);
        shared.metrics.reaped(reason);
        debug!("client {} disconnected: {}", self.peer, reason.as_str());
        true
    }

    /// Whether a disconnect has been decided.
    pub fn is_disconnected(&self) -> bool {
        self.reason.load(Ordering::SeqCst) != 0
    }
}

/// A subscribed client as the hub holds it.
#[derive(Debug)]
pub struct Subscriber {
    /// Its queue.
    pub tx: Sender<ClientMsg>,
    /// Minutes east of UTC, for its `burn_tick`s.
    pub tz_offset: i64,
    /// Its disconnect handle.
    pub client: Arc<ClientShared>,
}

/// The hub's inbox.
#[derive(Debug)]
pub enum HubMsg {
    /// Rows committed since the last batch.
    Batch(FeedBatch),
    /// A client joins; the hub answers with the watermarks it has published,
    /// so the client replays exactly up to them from the store.
    Subscribe(Subscriber, Sender<(i64, i64)>),
    /// The store's ids went backwards (follow mode, store replaced):
    /// disconnect everyone so they resume against the new store.
    Reset,
    /// Stop: disconnect everyone and exit.
    Shutdown,
}

/// Starts the hub thread.
pub fn spawn(shared: Arc<Shared>, rx: Receiver<HubMsg>) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("hub".into())
        .spawn(move || run(shared, rx))
}

fn run(shared: Arc<Shared>, rx: Receiver<HubMsg>) {
    let mut clients: HashMap<u64, Subscriber> = HashMap::new();
    let mut next_id: u64 = 0;
    let burn_timer = tick(Duration::from_secs_f64(sse::BURN_INTERVAL_SECS));
    loop {
        select! {
            recv(rx) -> msg => match msg {
                Ok(HubMsg::Batch(batch)) => publish(&shared, &mut clients, batch),
                Ok(HubMsg::Subscribe(sub, reply)) => {
                    if shared.stopping() {
                        sub.client.disconnect(Reason::Shutdown, &shared);
                        continue;
                    }
                    let live = shared.live.lock();
                    let marks = (live.event_id, live.tool_id);
                    drop(live);
                    if reply.send(marks).is_ok() {
                        next_id += 1;
                        clients.insert(next_id, sub);
                    }
                }
                Ok(HubMsg::Reset) => {
                    for (_, sub) in clients.drain() {
                        sub.client.disconnect(Reason::Reset, &shared);
                    }
                }
                Ok(HubMsg::Shutdown) | Err(_) => break,
            },
            recv(burn_timer) -> _ => tick_all(&shared, &mut clients),
        }
    }
    for (_, sub) in clients.drain() {
        sub.client.disconnect(Reason::Shutdown, &shared);
    }
    info!("hub stopped");
}

/// Applies a batch to the figures and sends its frames to every client.
fn publish(shared: &Shared, clients: &mut HashMap<u64, Subscriber>, batch: FeedBatch) {
    let now = now_ms();
    let mut frames =
        Vec::with_capacity(batch.events.len() + batch.tools.len() + batch.corrections.len());
    {
        let mut live = shared.live.lock();
        for e in batch.events.iter().chain(batch.corrections.iter()) {
            if let Some(ts) = parse_ts_ms(&e.ts) {
                live.burn.upsert(e.id, ts, e.cost_usd, now);
            }
        }
        for m in batch.marks {
            live.latency.apply(m, now);
        }
        if let Some(last) = batch.events.last() {
            live.event_id = live.event_id.max(last.id);
        }
        if let Some(last) = batch.tools.last() {
            live.tool_id = live.tool_id.max(last.id);
        }
        live.last_change_ms = Some(now);
    }
    {
        let mut usage = shared.usage.lock();
        batch.events.iter().for_each(|e| usage.add(e));
        batch.corrections.iter().for_each(|e| usage.correct(e));
    }
    shared.last_change_ms.store(now, Ordering::Relaxed);
    shared.metrics.rows_published.fetch_add(
        (batch.events.len() + batch.tools.len()) as u64,
        Ordering::Relaxed,
    );
    if clients.is_empty() {
        return; // nobody to serialize for (a backfill with no browser open)
    }
    frames.extend(batch.events.iter().map(sse::event_frame));
    frames.extend(batch.corrections.iter().map(sse::event_update_frame));
    frames.extend(batch.tools.iter().map(sse::tool_frame));
    if frames.is_empty() {
        return;
    }
    let seen = batch.seen_at.unwrap_or_else(Instant::now);
    fan_out(shared, clients, ClientMsg::Frames(Arc::new(frames), seen));
}

/// Offers one message to every client; removes the ones that are gone or full.
fn fan_out(shared: &Shared, clients: &mut HashMap<u64, Subscriber>, msg: ClientMsg) {
    clients.retain(|_, sub| match sub.tx.try_send(msg.clone()) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            if sub.client.disconnect(Reason::Slow, shared) {
                info!(
                    "client {} could not keep up ({CLIENT_QUEUE} messages queued); disconnected",
                    sub.client.peer
                );
            }
            false
        }
        Err(TrySendError::Disconnected(_)) => false,
    });
}

/// Sends each client a `burn_tick` for its time zone (one serialization per
/// distinct zone).
fn tick_all(shared: &Shared, clients: &mut HashMap<u64, Subscriber>) {
    let now = now_ms();
    shared.live.lock().burn.expire(now);
    let mut by_tz: HashMap<i64, Arc<[u8]>> = HashMap::new();
    let mut gone = Vec::new();
    for (id, sub) in clients.iter() {
        let bytes = by_tz
            .entry(sub.tz_offset)
            .or_insert_with(|| sse::burn_tick(&shared.burn(now, sub.tz_offset)))
            .clone();
        match sub.tx.try_send(ClientMsg::Raw(bytes)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                sub.client.disconnect(Reason::Slow, shared);
                gone.push(*id);
            }
            Err(TrySendError::Disconnected(_)) => gone.push(*id),
        }
    }
    for id in gone {
        clients.remove(&id);
    }
}

//! Many SSE clients on a few threads: raw sockets, `epoll`, and a parser
//! that reads only the `event:` and `id:` lines of each frame.
//!
//! One thread per client in the bench would double the thread count the
//! machine has to carry and measure our own scheduler as much as the
//! daemon; instead each pool thread owns an epoll set and a slab of
//! connections. Connector threads open sockets, send the request, hand the
//! connection to its pool thread over a channel and then add the socket to
//! that thread's epoll set (level-triggered, so data that arrived in
//! between is reported at once).
//!
//! Each `read` is stamped once; every `event` frame in it is matched with
//! its commit instant from the [`CommitLog`] and becomes a latency sample.
//! A frame that beats the writer's bookkeeping (the commit returned but the
//! writer thread has not stored the instant yet) is kept aside and
//! resolved at the end, so no sample is lost or guessed.
//!
//! When the daemon assigns the ids (ingest mode), a pool made with
//! [`Pool::capturing`] keeps the `data:` line of every `event` frame with
//! its read instant instead, for the scenario to match on the payload.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};

use crate::writer::CommitLog;

/// How long `epoll_wait` sleeps before looking at the inbox and the stop
/// flag; data wakes it at once, so this only bounds registration and exit.
const POLL_TIMEOUT_MS: i32 = 5;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 256 * 1024;

/// Counters every pool thread updates, readable while the run goes on.
#[derive(Default)]
pub struct Progress {
    /// Set to make the pool threads return.
    stop: AtomicBool,
    /// Connections that received response headers.
    pub headers: AtomicUsize,
    /// Connections that received the `ready` frame (subscribed).
    pub ready: AtomicUsize,
    /// Connections answered with a status other than 200.
    pub refused: AtomicUsize,
    /// Connections the daemon closed (EOF or error) after we registered.
    pub closed: AtomicUsize,
    /// `event` frames received, all connections.
    pub events: AtomicU64,
}

impl Progress {
    /// Connections subscribed (`ready` received).
    pub fn ready(&self) -> usize {
        self.ready.load(Ordering::Relaxed)
    }
    /// Connections refused with a non-200 status.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }
    /// Connections closed by the daemon.
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::Relaxed)
    }
    /// `event` frames received, all connections.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
}

/// One client connection and what it has seen.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// HTTP status (0 until the headers arrived).
    pub status: u16,
    /// When the connect began (ns since the pool's base).
    pub t_start: u64,
    /// When the headers arrived (0 if never).
    pub t_headers: u64,
    /// When `ready` arrived (0 if never).
    pub t_ready: u64,
    /// `event` frames received.
    pub events: u64,
    /// Highest event id received.
    pub last_event: i64,
    /// Event ids that were not exactly previous + 1 (gaps, repeats, reorders).
    pub out_of_sequence: u64,
    /// `burn_tick` frames received.
    pub burn_ticks: u64,
    /// Comment frames (heartbeats) received.
    pub heartbeats: u64,
    /// The daemon closed the connection.
    pub closed: bool,
}

impl Conn {
    fn new(stream: TcpStream, t_start: u64) -> Conn {
        Conn {
            stream,
            buf: Vec::new(),
            status: 0,
            t_start,
            t_headers: 0,
            t_ready: 0,
            events: 0,
            last_event: 0,
            out_of_sequence: 0,
            burn_ticks: 0,
            heartbeats: 0,
            closed: false,
        }
    }
}

/// Where a pool thread puts what it measured.
struct Sink {
    commits: Option<Arc<CommitLog>>,
    progress: Arc<Progress>,
    // (event id − first id, latency µs) of every event frame.
    samples: Vec<(u32, u32)>,
    // (event id, receive ns) of frames that arrived before their commit
    // instant was stored.
    deferred: Vec<(i64, u64)>,
    // Whether to keep `event` payloads.
    capture: bool,
    // (receive ns, `data:` line) of every `event` frame, when capturing.
    payloads: Vec<(u64, Vec<u8>)>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_blank_line(hay: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < hay.len() {
        match hay[i + 1..].iter().position(|&b| b == b'\n') {
            Some(p) => {
                let j = i + 1 + p;
                if hay[j - 1] == b'\n' {
                    return Some(j - 1);
                }
                i = j;
            }
            None => return None,
        }
    }
    None
}

impl Conn {
    /// Consumes bytes read at `now_ns`.
    fn feed(&mut self, data: &[u8], now_ns: u64, sink: &mut Sink) {
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        if self.status == 0 {
            let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                return;
            };
            let status = self.buf[..end]
                .split(|&b| b == b' ')
                .nth(1)
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(|s| s.parse().ok())
                .unwrap_or(999);
            self.status = status;
            self.t_headers = now_ns;
            sink.progress.headers.fetch_add(1, Ordering::Relaxed);
            if status != 200 {
                sink.progress.refused.fetch_add(1, Ordering::Relaxed);
            }
            pos = end + 4;
        }
        if self.status != 200 {
            self.buf.clear();
            return;
        }
        while let Some(end) = find_blank_line(&self.buf[pos..]) {
            let (from, to) = (pos, pos + end);
            pos = to + 2;
            self.frame(from, to, now_ns, sink);
        }
        self.buf.drain(..pos);
    }

    fn frame(&mut self, from: usize, to: usize, now_ns: u64, sink: &mut Sink) {
        let block = &self.buf[from..to];
        let mut kind: &[u8] = b"";
        let mut event_id: Option<i64> = None;
        for line in block.split(|&b| b == b'\n') {
            if let Some(k) = line.strip_prefix(b"event: ") {
                kind = k;
            } else if let Some(id) = line.strip_prefix(b"id: ") {
                let e = id.split(|&b| b == b':').next().unwrap_or(b"");
                event_id = std::str::from_utf8(e).ok().and_then(|s| s.parse().ok());
            } else if line.starts_with(b":") {
                self.heartbeats += 1;
            } else if line.starts_with(b"data:") {
                if sink.capture && kind == b"event" {
                    sink.payloads.push((now_ns, line.to_vec()));
                }
                break;
            }
        }
        match kind {
            b"event" => {
                let id = event_id.unwrap_or(0);
                if self.last_event != 0 && id != self.last_event + 1 {
                    self.out_of_sequence += 1;
                }
                self.last_event = self.last_event.max(id);
                self.events += 1;
                sink.progress.events.fetch_add(1, Ordering::Relaxed);
                if let Some(log) = &sink.commits {
                    match log.get(id) {
                        Some(c) => sink
                            .samples
                            .push((log.offset(id), (now_ns.saturating_sub(c) / 1000) as u32)),
                        None => sink.deferred.push((id, now_ns)),
                    }
                }
            }
            b"ready" => {
                self.t_ready = now_ns;
                sink.progress.ready.fetch_add(1, Ordering::Relaxed);
            }
            b"burn_tick" => self.burn_ticks += 1,
            _ => {}
        }
    }
}

/// Everything a pool measured, after [`Pool::finish`].
pub struct Outcome {
    /// Every connection, in no particular order.
    pub conns: Vec<Conn>,
    /// (event id − first id, latency µs) of every event frame received.
    pub samples: Vec<(u32, u32)>,
    /// Frames read before their COMMIT had returned to the writer (SQLite
    /// publishes a commit, then may run an autocheckpoint inside the same
    /// call); their latency is counted as 0.
    pub early: usize,
    /// (receive ns since the pool's base, `data: {…}` line) of every
    /// `event` frame, from a [`Pool::capturing`] pool; empty otherwise.
    pub payloads: Vec<(u64, Vec<u8>)>,
}

/// A set of pool threads.
pub struct Pool {
    base: Instant,
    progress: Arc<Progress>,
    next: AtomicUsize,
    inboxes: Vec<Sender<(usize, Conn)>>,
    epfds: Vec<i32>,
    threads: Vec<thread::JoinHandle<(Vec<Conn>, Sink)>>,
    commits: Option<Arc<CommitLog>>,
}

#[allow(unsafe_code)]
mod ep {
    //! The three epoll calls, wrapped.
    use std::io;

    /// A new epoll instance.
    pub fn create() -> io::Result<i32> {
        // SAFETY: no pointers involved.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(fd)
        }
    }

    /// Watches `fd` for input under `token`.
    pub fn add(ep: i32, fd: i32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: token,
        };
        // SAFETY: `ev` lives across the call; the kernel copies it.
        if unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Stops watching `fd`.
    pub fn del(ep: i32, fd: i32) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as above.
        unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// Waits for events; returns the tokens that are ready.
    pub fn wait(ep: i32, buf: &mut [libc::epoll_event], timeout_ms: i32, out: &mut Vec<u64>) {
        out.clear();
        // SAFETY: `buf` is a valid, writable array of `buf.len()` events.
        let n = unsafe { libc::epoll_wait(ep, buf.as_mut_ptr(), buf.len() as i32, timeout_ms) };
        for ev in buf.iter().take(n.max(0) as usize) {
            let token = ev.u64;
            out.push(token);
        }
    }

    /// Closes the epoll instance.
    pub fn close(ep: i32) {
        // SAFETY: `ep` is ours and closed once.
        unsafe { libc::close(ep) };
    }
}

impl Pool {
    /// Starts `threads` pool threads. Latencies are computed against
    /// `commits` when given; instants are ns since `base`.
    pub fn new(threads: usize, commits: Option<Arc<CommitLog>>, base: Instant) -> Pool {
        Pool::build(threads, commits, base, false)
    }

    /// Starts `threads` pool threads that keep the payload of every
    /// `event` frame with its read instant (ns since `base`); see
    /// [`Outcome::payloads`].
    pub fn capturing(threads: usize, base: Instant) -> Pool {
        Pool::build(threads, None, base, true)
    }

    fn build(
        threads: usize,
        commits: Option<Arc<CommitLog>>,
        base: Instant,
        capture: bool,
    ) -> Pool {
        let progress = Arc::new(Progress::default());
        let mut pool = Pool {
            base,
            progress,
            next: AtomicUsize::new(0),
            inboxes: Vec::new(),
            epfds: Vec::new(),
            threads: Vec::new(),
            commits,
        };
        for i in 0..threads.max(1) {
            let ep = ep::create().expect("epoll_create1");
            let (tx, rx) = unbounded();
            let progress = pool.progress.clone();
            let commits = pool.commits.clone();
            let handle = thread::Builder::new()
                .name(format!("pool-{i}"))
                .spawn(move || run(ep, rx, progress, commits, base, capture))
                .expect("spawn pool thread");
            pool.inboxes.push(tx);
            pool.epfds.push(ep);
            pool.threads.push(handle);
        }
        pool
    }

    /// The live counters.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Nanoseconds since the pool's base instant.
    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Hands a connected socket (request already sent) to a pool thread.
    pub fn add(&self, stream: TcpStream, t_start: u64) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        let g = self.next.fetch_add(1, Ordering::Relaxed);
        let t = g % self.inboxes.len();
        let local = g / self.inboxes.len();
        let fd = stream.as_raw_fd();
        self.inboxes[t]
            .send((local, Conn::new(stream, t_start)))
            .map_err(|_| io::Error::other("pool thread gone"))?;
        ep::add(self.epfds[t], fd, local as u64)
    }

    /// Waits until `done(progress)` or `timeout`; returns whether done.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&Progress) -> bool) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if done(&self.progress) {
                return true;
            }
            thread::sleep(Duration::from_millis(2));
        }
        done(&self.progress)
    }

    /// Like [`Pool::wait_until`], but also gives up once `settled(progress)`
    /// (a count of connections that reached an end state) has not moved
    /// for `stall`: a daemon that stopped answering must not hold the run
    /// until the deadline.
    pub fn wait_progress(
        &self,
        timeout: Duration,
        stall: Duration,
        settled: impl Fn(&Progress) -> usize,
        done: impl Fn(&Progress) -> bool,
    ) -> bool {
        let t0 = Instant::now();
        let mut last = settled(&self.progress);
        let mut moved = Instant::now();
        while t0.elapsed() < timeout && moved.elapsed() < stall {
            if done(&self.progress) {
                return true;
            }
            let now = settled(&self.progress);
            if now != last {
                last = now;
                moved = Instant::now();
            }
            thread::sleep(Duration::from_millis(5));
        }
        done(&self.progress)
    }

    /// Stops the threads and collects what they measured (closing every
    /// connection).
    pub fn finish(self) -> Outcome {
        self.progress.stop.store(true, Ordering::SeqCst);
        let mut conns = Vec::new();
        let mut samples = Vec::new();
        let mut deferred = Vec::new();
        let mut payloads = Vec::new();
        for h in self.threads {
            if let Ok((c, sink)) = h.join() {
                conns.extend(c);
                samples.extend(sink.samples);
                deferred.extend(sink.deferred);
                payloads.extend(sink.payloads);
            }
        }
        for ep in self.epfds {
            ep::close(ep);
        }
        let mut early = 0;
        if let Some(log) = &self.commits {
            for (id, recv) in deferred {
                if let Some(c) = log.get(id) {
                    early += usize::from(recv < c);
                    samples.push((log.offset(id), (recv.saturating_sub(c) / 1000) as u32));
                }
            }
        }
        Outcome {
            conns,
            samples,
            early,
            payloads,
        }
    }
}

fn run(
    ep: i32,
    inbox: Receiver<(usize, Conn)>,
    progress: Arc<Progress>,
    commits: Option<Arc<CommitLog>>,
    base: Instant,
    capture: bool,
) -> (Vec<Conn>, Sink) {
    crate::sched::boost_current_thread();
    let mut sink = Sink {
        commits,
        progress: progress.clone(),
        samples: Vec::new(),
        deferred: Vec::new(),
        capture,
        payloads: Vec::new(),
    };
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut evbuf = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut ready = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let drain = |conns: &mut Vec<Option<Conn>>| {
        while let Ok((i, c)) = inbox.try_recv() {
            if conns.len() <= i {
                conns.resize_with(i + 1, || None);
            }
            conns[i] = Some(c);
        }
    };
    loop {
        drain(&mut conns);
        if progress.stop.load(Ordering::SeqCst) {
            break;
        }
        ep::wait(ep, &mut evbuf, POLL_TIMEOUT_MS, &mut ready);
        for &token in &ready {
            let i = token as usize;
            if conns.get(i).is_none_or(|c| c.is_none()) {
                drain(&mut conns);
            }
            let Some(Some(c)) = conns.get_mut(i) else {
                continue;
            };
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        c.closed = true;
                        break;
                    }
                    Ok(n) => {
                        let now = base.elapsed().as_nanos() as u64;
                        c.feed(&chunk[..n], now, &mut sink);
                        if n < chunk.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        c.closed = true;
                        break;
                    }
                }
            }
            if c.closed {
                ep::del(ep, c.stream.as_raw_fd());
                progress.closed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    drain(&mut conns);
    (conns.into_iter().flatten().collect(), sink)
}

/// How connecting went.
#[derive(Default)]
pub struct ConnectReport {
    /// Sockets connected and handed to the pool.
    pub ok: usize,
    /// Failures by error text.
    pub errors: HashMap<String, usize>,
    /// Wall time of the whole connect phase.
    pub elapsed: Duration,
}

impl ConnectReport {
    /// "n× error, …" or "none".
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "none".into();
        }
        let mut v: Vec<_> = self.errors.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1));
        v.iter()
            .map(|(e, n)| format!("{n}× {e}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Timeout of one TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens `n` SSE connections to `addr` from `threads` connector threads,
/// all released at once by a barrier, and hands them to `pool`. Stops
/// early (counting the rest as not attempted) once `deadline` passes.
pub fn connect_many(
    pool: &Pool,
    addr: SocketAddr,
    n: usize,
    threads: usize,
    deadline: Duration,
) -> ConnectReport {
    let t0 = Instant::now();
    let threads = threads.clamp(1, n.max(1));
    let barrier = Barrier::new(threads);
    let results: Vec<(usize, HashMap<String, usize>)> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut ok = 0;
                    let mut errors: HashMap<String, usize> = HashMap::new();
                    barrier.wait();
                    for _ in (t..n).step_by(threads) {
                        if t0.elapsed() > deadline {
                            *errors.entry("not attempted (deadline)".into()).or_default() += 1;
                            continue;
                        }
                        let start = pool.now_ns();
                        match open(addr) {
                            Ok(stream) => match pool.add(stream, start) {
                                Ok(()) => ok += 1,
                                Err(e) => *errors.entry(e.to_string()).or_default() += 1,
                            },
                            Err(e) => *errors.entry(e.to_string()).or_default() += 1,
                        }
                    }
                    (ok, errors)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut report = ConnectReport::default();
    for (ok, errors) in results {
        report.ok += ok;
        for (e, k) in errors {
            *report.errors.entry(e).or_default() += k;
        }
    }
    report.elapsed = t0.elapsed();
    report
}

fn open(addr: SocketAddr) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_nodelay(true)?;
    write!(
        s,
        "GET /api/live/stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(p: &Arc<Progress>) -> Sink {
        Sink {
            commits: None,
            progress: p.clone(),
            samples: Vec::new(),
            deferred: Vec::new(),
            capture: true,
            payloads: Vec::new(),
        }
    }

    #[test]
    fn parses_frames_split_anywhere() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 2000\n\n\
            event: ready\nid: 3:0\ndata: {}\n\nevent: burn_tick\ndata: {}\n\n:\n\n\
            event: event\nid: 4:0\ndata: {\"a\":1}\n\nevent: event\nid: 5:0\ndata: {}\n\n\
            event: event\nid: 7:0\ndata: {}\n\n";
        for split in 1..wire.len() {
            let (a, b) = wire.split_at(split);
            let p = Arc::new(Progress::default());
            let mut s = sink(&p);
            let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let stream = TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
            let mut c = Conn::new(stream, 0);
            c.feed(a, 1, &mut s);
            c.feed(b, 2, &mut s);
            assert_eq!(c.status, 200);
            assert_eq!(c.events, 3, "split at {split}");
            assert_eq!(c.last_event, 7);
            assert_eq!(c.out_of_sequence, 1);
            assert_eq!(c.burn_ticks, 1);
            assert_eq!(c.heartbeats, 1);
            assert!(c.t_ready > 0);
            assert_eq!(p.ready.load(Ordering::Relaxed), 1);
            let kept: Vec<&[u8]> = s.payloads.iter().map(|(_, d)| d.as_slice()).collect();
            assert_eq!(
                kept,
                [&b"data: {\"a\":1}"[..], b"data: {}", b"data: {}"],
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_refusal_is_counted() {
        let p = Arc::new(Progress::default());
        let mut s = sink(&p);
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
        let mut c = Conn::new(stream, 0);
        c.feed(
            b"HTTP/1.1 503 Service Unavailable\r\n\r\n{\"detail\":\"x\"}\n\n",
            1,
            &mut s,
        );
        assert_eq!(c.status, 503);
        assert_eq!(p.refused.load(Ordering::Relaxed), 1);
        assert_eq!(c.events, 0);
    }
}

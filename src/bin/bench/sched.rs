//! Real-time priority for the measuring side.
//!
//! At a few thousand clients the daemon has thousands of runnable threads;
//! the kernel's fair scheduler then gives the bench's two reader threads a
//! sliver of the 2 cores, frames pile up unread in *our* receive queues
//! (measured: ~1 GB at 4,000 clients) and the latency we report is our own.
//! Running the readers and the writer under `SCHED_FIFO` lets them run as
//! soon as they have work, so what is measured is the daemon. They spend
//! most of their time blocked in `epoll_wait` or `sleep`, and the kernel
//! caps real-time tasks at 95 % of each second, so nothing else starves.
//! Needs CAP_SYS_NICE (root); without it the run goes on at normal
//! priority and says so. The daemon itself always runs at normal priority.

use std::sync::atomic::{AtomicU8, Ordering};

/// Priority within SCHED_FIFO (1–99): low, only above normal threads.
const PRIORITY: i32 = 10;

// 0 = not tried, 1 = granted, 2 = refused, 3 = disabled.
static STATE: AtomicU8 = AtomicU8::new(0);

/// Disables boosting (`--no-rt`).
pub fn disable() {
    STATE.store(3, Ordering::SeqCst);
}

/// Moves the calling thread to SCHED_FIFO, unless disabled.
pub fn boost_current_thread() {
    if STATE.load(Ordering::SeqCst) == 3 {
        return;
    }
    let param = libc::sched_param {
        sched_priority: PRIORITY,
    };
    // SCHED_RESET_ON_FORK: threads and processes started from a boosted
    // thread (the daemon!) start at normal priority.
    let policy = libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK;
    // SAFETY: pid 0 is the calling thread; `param` lives across the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    let _ = STATE.compare_exchange(
        0,
        if rc == 0 { 1 } else { 2 },
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
}

/// One sentence for a report block.
pub fn summary() -> &'static str {
    match STATE.load(Ordering::SeqCst) {
        1 => "The bench's reader threads and writer ran under SCHED_FIFO (priority 10), so the daemon's threads could not starve the measuring side.",
        2 => "The bench could not get SCHED_FIFO (no CAP_SYS_NICE); its readers ran at normal priority, so at high client counts part of the latency is the bench's own.",
        3 => "Run with --no-rt: the bench's readers ran at normal priority, so at high client counts part of the latency is the bench's own.",
        _ => "The bench's threads ran at normal priority.",
    }
}

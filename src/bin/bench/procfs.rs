//! What the kernel says about a process: resident memory, threads,
//! descriptors and CPU time, read from `/proc` (Linux only).
//!
//! CPU comes from two sources. `/proc/<pid>/stat` utime+stime counts whole
//! clock ticks (10 ms at `CLK_TCK` = 100) for the process including threads
//! that already exited, which is right for a load run. For the idle run,
//! where 0.1 % of a core over 60 s is 6 ticks, the per-thread
//! `/proc/<pid>/task/*/schedstat` nanosecond run times are summed as well.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// One look at a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Resident set, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set, KiB (`VmHWM`).
    pub hwm_kib: u64,
    /// Threads.
    pub threads: u64,
    /// Open descriptors.
    pub fds: u64,
}

fn status_field(status: &str, name: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Memory, threads and descriptors of `pid`, or `None` if it is gone.
pub fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Some(Sample {
        rss_kib: status_field(&status, "VmRSS:"),
        hwm_kib: status_field(&status, "VmHWM:"),
        threads: status_field(&status, "Threads:"),
        fds,
    })
}

/// utime + stime of `pid` in clock ticks (all threads, living and dead).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) in ")".
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// utime + stime in clock ticks of each living thread of `pid`, summed
/// by thread name (`comm`), largest first: which thread did the work.
pub fn thread_cpu(pid: u32) -> Vec<(String, u64)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut by_name: std::collections::BTreeMap<String, u64> = Default::default();
    for t in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        *by_name.entry(name).or_default() += ticks;
    }
    let mut v: Vec<(String, u64)> = by_name.into_iter().collect();
    v.sort_by_key(|t| std::cmp::Reverse(t.1));
    v
}

/// Bytes `pid` passed to read and write calls (`rchar`, `wchar` of
/// `/proc/<pid>/io`), cache hits included: what it asked of the kernel.
pub fn io_chars(pid: u32) -> Option<(u64, u64)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    Some((status_field(&io, "rchar:"), status_field(&io, "wchar:")))
}

/// Clock ticks per second.
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no memory effects; it only returns a number.
    #[allow(unsafe_code)]
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Σ over living threads of their on-CPU time (ns), and of their context
/// switches (voluntary + involuntary): how often the process woke.
pub fn task_totals(pid: u32) -> (u64, u64) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    let (mut ns, mut switches) = (0u64, 0u64);
    for t in dir.flatten() {
        let p = t.path();
        if let Ok(s) = std::fs::read_to_string(p.join("schedstat")) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(s) = std::fs::read_to_string(p.join("status")) {
            switches += status_field(&s, "voluntary_ctxt_switches:")
                + status_field(&s, "nonvoluntary_ctxt_switches:");
        }
    }
    (ns, switches)
}

/// CPU used by a process over an interval, as a percentage of one core.
pub struct CpuMeter {
    pid: u32,
    t0: Instant,
    ticks0: u64,
}

impl CpuMeter {
    /// Starts measuring `pid`.
    pub fn start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            t0: Instant::now(),
            ticks0: cpu_ticks(pid).unwrap_or(0),
        }
    }

    /// % of one core since `start` (NaN if the process is gone).
    pub fn percent(&self) -> f64 {
        let Some(t1) = cpu_ticks(self.pid) else {
            return f64::NAN;
        };
        let secs = self.t0.elapsed().as_secs_f64();
        (t1.saturating_sub(self.ticks0)) as f64 / clk_tck() / secs * 100.0
    }
}

/// Samples a process in the background and keeps the maxima.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Sample>,
}

/// Time between two looks: often enough to catch a peak in a 10 s run,
/// rarely enough to cost nothing (reading `/proc/<pid>/fd` of a process
/// with 20,000 descriptors takes a few ms).
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

impl Sampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut max = Sample::default();
            while !flag.load(Ordering::Relaxed) {
                if let Some(s) = sample(pid) {
                    max.rss_kib = max.rss_kib.max(s.rss_kib);
                    max.hwm_kib = max.hwm_kib.max(s.hwm_kib);
                    max.threads = max.threads.max(s.threads);
                    max.fds = max.fds.max(s.fds);
                }
                thread::sleep(SAMPLE_EVERY);
            }
            max
        });
        Sampler { stop, handle }
    }

    /// Stops and returns the maxima seen.
    pub fn stop(self) -> Sample {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        let s = sample(me).unwrap();
        assert!(s.rss_kib > 0 && s.threads >= 1 && s.fds >= 3, "{s:?}");
        assert!(cpu_ticks(me).is_some());
        assert!(task_totals(me).1 > 0);
        assert!(!thread_cpu(me).is_empty());
        assert!(io_chars(me).is_some_and(|(r, _)| r > 0));
    }
}

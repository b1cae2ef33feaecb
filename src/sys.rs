//! The few operating-system knobs the daemon turns at start-up.
//!
//! Owns raising the open-file limit: every SSE client holds two descriptors
//! (tiny_http's and our duplicate), and macOS starts processes with a soft
//! limit of 256. Called once from `main` before any thread starts.

#![allow(unsafe_code)]

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (capped, as macOS
/// refuses values above `OPEN_MAX`). Returns the new soft limit.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let want = if cfg!(target_os = "macos") {
            lim.rlim_max.min(10_240)
        } else {
            lim.rlim_max
        };
        if want > lim.rlim_cur {
            let new = libc::rlimit {
                rlim_cur: want,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim.rlim_cur = want;
        }
    }
    Ok(lim.rlim_cur as u64)
}

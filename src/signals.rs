//! SIGTERM and SIGINT: the handler only records the signal; each reactor sees it on its next
//! turn (a turn lasts at most `reactor::SIGNAL_CHECK` when idle; with several workers the
//! main thread wakes them at once) and drains before exiting. SIGHUP (and PROXY RELOAD)
//! moves the reload generation on: each reactor reloads the configuration once it sees it.

use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

static STOP: AtomicI32 = AtomicI32::new(0);
static RELOAD: AtomicU64 = AtomicU64::new(0);

extern "C" fn record(sig: libc::c_int) {
    // Only atomic operations: nothing else is async-signal-safe here.
    if sig == libc::SIGHUP {
        RELOAD.fetch_add(1, Ordering::Relaxed);
    } else {
        STOP.store(sig, Ordering::Relaxed);
    }
}

/// How many reloads were asked for since start.
pub fn reload_generation() -> u64 {
    RELOAD.load(Ordering::Relaxed)
}

/// PROXY RELOAD: as a SIGHUP.
pub fn request_reload() {
    RELOAD.fetch_add(1, Ordering::Relaxed);
}

/// Installs the handlers, without SA_RESTART, so that a reactor asleep in `epoll_wait` in
/// the thread that takes the signal wakes at once.
pub fn install() -> std::io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with a handler that only does an atomic store; the
        // mask is emptied with sigemptyset before use.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = record as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The name of the stop signal received, if any.
pub fn requested() -> Option<&'static str> {
    match STOP.load(Ordering::Relaxed) {
        0 => None,
        libc::SIGINT => Some("SIGINT"),
        _ => Some("SIGTERM"),
    }
}

//! Kill points for fault-injection tests. With `TALLYTREE_KILL_AT=POINT`
//! (or `POINT@N`: the N-th time it is reached; several separated by
//! commas) the node kills itself with SIGKILL at that point: no destructor
//! runs, nothing is flushed, exactly as when an operator or the kernel kills
//! it there. Tests restart it and check that nothing acknowledged was lost
//! and nothing is counted twice. Unset (always, in production), a kill point
//! costs one load of a flag.
//!
//! The points, in the order a submission passes them at the parent:
//!
//! - `submit-after-sync`: the summary is written and the write synced
//!   (RocksDB writes the batch and syncs its log in one call), no receipt
//!   signed yet;
//! - `submit-after-receipt`: the receipt is signed, not yet answered;
//! - `submit-after-reply`: the answer is handed to the connection (the
//!   process dies 50 ms later, once it is on the wire);
//!
//! and at the child:
//!
//! - `push-before-receipt-stored`: the parent's receipt is verified, not
//!   yet stored;
//! - `import-after-chunk`: a bulk import's chunk is staged (use `@N` for
//!   the N-th chunk);
//! - `import-after-commit`: the import's commit mark is synced, its rows
//!   not yet applied.

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering},
};

/// The variable that arms kill points.
pub const VAR: &str = "TALLYTREE_KILL_AT";

struct Armed {
    points: Vec<(String, u64)>,
    counts: Vec<AtomicU64>,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(VAR).ok()?;
            let points: Vec<(String, u64)> = spec
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('@') {
                    Some((name, n)) => (name.to_owned(), n.parse().unwrap_or(1).max(1)),
                    None => (p.to_owned(), 1),
                })
                .collect();
            let counts = points.iter().map(|_| AtomicU64::new(0)).collect();
            Some(Armed { points, counts })
        })
        .as_ref()
}

/// Kills the process with SIGKILL if `point` is armed and reached for the
/// armed time.
pub fn kill_point(point: &'static str) {
    let Some(armed) = armed() else { return };
    for ((name, at), count) in armed.points.iter().zip(&armed.counts) {
        if name == point && count.fetch_add(1, Ordering::SeqCst) + 1 == *at {
            eprintln!("kill point {point} reached: SIGKILL");
            kill_self();
        }
    }
}

/// As [`kill_point`], `delay_ms` later, from a task of its own (for a
/// point after the current call has returned).
#[cfg(feature = "server")]
pub fn kill_point_later(point: &'static str, delay_ms: u64) {
    if armed().is_some() {
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            kill_point(point);
        });
    }
}

#[allow(unsafe_code)]
fn kill_self() -> ! {
    // SAFETY: kill(2) on this process's own id with a constant signal has no
    // memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL is not deliverable late; should it ever return, still stop.
    std::process::abort()
}

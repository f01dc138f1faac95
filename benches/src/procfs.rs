//! The broker's own CPU time and resident memory, read from `/proc/PID`, so CPU per delivered
//! message is the broker's alone and not the load generator's it competes with for the cores.

use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    /// User + system CPU seconds of all its threads, living and exited (to the nanosecond
    /// while none has exited, else to the clock tick).
    pub cpu_s: f64,
    /// Resident set size in KiB (`VmRSS`).
    pub rss_kib: u64,
}

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`, 100 on Linux when unknown).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|&t| t > 0.0)
            .unwrap_or(100.0)
    })
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`.
pub fn sample(pid: u32) -> Result<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')').ok_or_else(|| anyhow!("bad stat"))? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the line, utime field 14 and stime field 15.
    let tick = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .ok_or_else(|| anyhow!("short stat"))?
            .parse::<u64>()
            .context("stat field")
    };
    let ticks = tick(11)? + tick(12)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let coarse = ticks as f64 / clock_ticks();
    // Clock ticks are 10 ms: a quick run's connects cost the broker a few ticks in all. The
    // living threads' nanosecond counters are exact, but forget threads that have exited, so
    // they are used unless the ticks say more (by over a tick) was spent.
    let cpu_s = match live_threads_cpu_s(pid) {
        Some(fine) if fine + 1.0 / clock_ticks() >= coarse => fine,
        _ => coarse,
    };
    Ok(Sample { cpu_s, rss_kib })
}

/// CPU seconds of the living threads of `pid`, from the first field (nanoseconds on the CPU) of
/// each `/proc/PID/task/TID/schedstat`; `None` where the kernel has no such file.
fn live_threads_cpu_s(pid: u32) -> Option<f64> {
    let mut ns: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may end between the listing and the read: it no longer counts.
        let Ok(line) = std::fs::read_to_string(path) else {
            continue;
        };
        ns += line.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// Samples `pid` when there is one; a missing process reads as `None`.
pub fn maybe_sample(pid: Option<u32>) -> Option<Sample> {
    pid.and_then(|p| sample(p).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.cpu_s >= 0.0);
    }

    /// CPU time is read finer than clock ticks: 2 ms of work shows as more than nothing, and
    /// not as a whole number of 10 ms ticks (other tests' threads may add to it).
    #[test]
    fn cpu_time_is_finer_than_a_tick() {
        let before = sample(std::process::id()).unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(2) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let spent = sample(std::process::id()).unwrap().cpu_s - before.cpu_s;
        assert!(
            spent > 0.0 && spent < 0.009,
            "2 ms of work read as {spent} s"
        );
    }
}

//! `/metrics` in the Prometheus text format (0.0.4), or OpenMetrics 1.0 when the scraper asks
//! for it: the `$SYS` numbers under Prometheus names (`moco_` prefix, `_total` on counters,
//! units in the name), plus process CPU time and the [`MetricsHook`]'s counters.

use std::fmt::Write;
use std::time::Instant;

use moco_engine::Broker;

use crate::hook::{MetricsHook, DROP_REASONS};

/// The content type of the Prometheus text format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of OpenMetrics text.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The same metrics in OpenMetrics 1.0: a counter's family is named without its `_total`, an
/// `_info` gauge becomes an info family without its `_info` (the samples keep both), and the
/// exposition ends with `# EOF`.
pub(crate) fn to_openmetrics(text: &str) -> String {
    let typed = |kind: &'static str| {
        text.lines()
            .filter_map(move |l| l.strip_prefix("# TYPE ")?.strip_suffix(kind))
            .collect::<std::collections::HashSet<&str>>()
    };
    let (counters, gauges) = (typed(" counter"), typed(" gauge"));
    let mut out = String::with_capacity(text.len() + 8);
    for line in text.lines() {
        let family = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let (name, rest) = line.strip_prefix(p)?.split_once(' ')?;
            if let Some(base) = name
                .strip_suffix("_total")
                .filter(|_| counters.contains(name))
            {
                return Some(format!("{p}{base} {rest}"));
            }
            let base = name
                .strip_suffix("_info")
                .filter(|_| gauges.contains(name))?;
            let rest = if rest == "gauge" { "info" } else { rest };
            Some(format!("{p}{base} {rest}"))
        });
        out.push_str(family.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

/// The metrics of `broker` now, in the Prometheus text format, plus the counters of `hook`
/// if it is installed. Built from one `$SYS` snapshot, so `/metrics` and `/api/v1/sys` read at
/// the same moment agree.
pub fn render(broker: &Broker, hook: Option<&MetricsHook>) -> String {
    let s = broker.sys_snapshot(Instant::now());
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "moco_start_time_seconds",
        "gauge",
        "When the broker started, Unix seconds.",
        s.started,
    );
    metric(
        "moco_uptime_seconds",
        "gauge",
        "Seconds since the broker started.",
        s.uptime,
    );
    metric(
        "moco_clients_connected",
        "gauge",
        "Clients connected now.",
        s.clients_connected,
    );
    metric(
        "moco_clients_disconnected",
        "gauge",
        "Clients away whose session lives on.",
        s.clients_disconnected,
    );
    metric(
        "moco_clients_maximum",
        "gauge",
        "Most clients connected at once since start.",
        s.clients_maximum,
    );
    metric(
        "moco_sessions",
        "gauge",
        "Sessions known: clients connected plus away with a live session.",
        s.clients_total,
    );
    metric(
        "moco_messages_received_total",
        "counter",
        "PUBLISH packets received.",
        s.messages_received,
    );
    metric(
        "moco_messages_sent_total",
        "counter",
        "PUBLISH packets sent.",
        s.messages_sent,
    );
    metric(
        "moco_messages_dropped_total",
        "counter",
        "Messages dropped (slow subscribers, full queues, expiry).",
        s.messages_dropped,
    );
    metric(
        "moco_inflight_dropped_total",
        "counter",
        "QoS 1/2 messages in flight abandoned.",
        s.inflight_dropped,
    );
    metric(
        "moco_packets_received_total",
        "counter",
        "MQTT packets of any type received.",
        s.packets_received,
    );
    metric(
        "moco_packets_sent_total",
        "counter",
        "MQTT packets of any type sent.",
        s.packets_sent,
    );
    metric(
        "moco_received_bytes_total",
        "counter",
        "Bytes received from clients.",
        s.bytes_received,
    );
    metric(
        "moco_sent_bytes_total",
        "counter",
        "Bytes sent to clients.",
        s.bytes_sent,
    );
    metric(
        "moco_retained_messages",
        "gauge",
        "Retained messages held.",
        s.retained,
    );
    metric(
        "moco_subscriptions",
        "gauge",
        "Subscriptions held.",
        s.subscriptions,
    );
    metric(
        "moco_inflight_messages",
        "gauge",
        "QoS 1/2 messages in flight to clients now.",
        s.inflight,
    );
    metric(
        "moco_process_resident_memory_bytes",
        "gauge",
        "Resident memory of the process.",
        s.memory_alloc,
    );
    metric(
        "moco_process_threads",
        "gauge",
        "Threads of the process.",
        s.threads,
    );
    if let Some(cpu) = process_cpu_seconds() {
        let _ = writeln!(
            out,
            "# HELP moco_process_cpu_seconds_total CPU time of the process, user plus system.\n\
             # TYPE moco_process_cpu_seconds_total counter\n\
             moco_process_cpu_seconds_total {cpu}"
        );
    }
    if let Some(h) = hook {
        let connects = h.connects();
        for (name, help, accepted) in [
            (
                "moco_connect_attempts_total",
                "CONNECT packets received, by listener and protocol level (3: v3.1, 4: v3.1.1, \
                 5: v5); less the accepted ones: refused (authentication and other checks).",
                false,
            ),
            (
                "moco_connections_accepted_total",
                "Connections accepted, by listener and protocol level.",
                true,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (listener, protocol, tried, ok) in &connects {
                let n = if accepted { ok } else { tried };
                let _ = writeln!(
                    out,
                    "{name}{{listener=\"{}\",protocol=\"{protocol}\"}} {n}",
                    escape(listener)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP moco_messages_dropped_by_reason_total Messages dropped, by reason.\n\
             # TYPE moco_messages_dropped_by_reason_total counter"
        );
        for (reason, n) in DROP_REASONS.iter().zip(h.dropped()) {
            let _ = writeln!(
                out,
                "moco_messages_dropped_by_reason_total{{reason=\"{reason}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP moco_build_info The broker's version.\n# TYPE moco_build_info gauge\n\
         moco_build_info{{version=\"{}\"}} 1",
        s.version
    );
    out
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// User plus system CPU time of this process from `/proc/self/stat` (Linux), in seconds.
/// The kernel reports it in clock ticks of `USER_HZ`, which is 100 on every Linux ABI.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    // After the name: state (3), ppid … utime is field 14 and stime field 15 overall.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n\
                    # HELP g G.\n# TYPE g gauge\ng 2\n\
                    # HELP b_info B.\n# TYPE b_info gauge\nb_info{v=\"1\"} 1\n";
        assert_eq!(
            super::to_openmetrics(text),
            "# HELP a A.\n# TYPE a counter\na_total 1\n# HELP g G.\n# TYPE g gauge\ng 2\n\
             # HELP b B.\n# TYPE b info\nb_info{v=\"1\"} 1\n# EOF\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn cpu_time_is_read() {
        // Burn a little CPU so that a tick has certainly passed.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 30 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let cpu = super::process_cpu_seconds().expect("readable");
        assert!(cpu > 0.0 && cpu < 1e6, "{cpu}");
    }
}

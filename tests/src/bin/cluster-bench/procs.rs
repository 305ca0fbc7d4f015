//! What a peer's processes cost, read from /proc: CPU seconds and memory
//! of a process and its descendants (nginx's master and workers, old
//! workers still draining after a reload included).

use std::collections::HashMap;
use std::process::Command;

/// Clock ticks per second of /proc's CPU times (USER_HZ: 100 on Linux).
const HZ: f64 = 100.0;

/// `pid` and every descendant alive now.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(ppid) = stat_fields(p).and_then(|f| f.get(1).and_then(|v| v.parse().ok())) {
            children.entry(ppid).or_default().push(p);
        }
    }
    let (mut out, mut todo) = (Vec::new(), vec![pid]);
    while let Some(p) = todo.pop() {
        out.push(p);
        todo.extend(children.get(&p).into_iter().flatten());
    }
    out
}

/// The fields of /proc/PID/stat after the command name: state first.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// CPU seconds (user + system) of the tree under `pid`, with the children
/// it has reaped (cutime, cstime): nginx's old workers, exited after a
/// reload, still count.
pub fn cpu_seconds(pid: u32) -> f64 {
    let field = |f: &[String], i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let mut ticks = 0;
    for p in tree(pid) {
        if let Some(f) = stat_fields(p) {
            ticks += field(&f, 11) + field(&f, 12);
            if p == pid {
                ticks += field(&f, 13) + field(&f, 14);
            }
        }
    }
    ticks as f64 / HZ
}

/// Proportional set size of the tree under `pid`, in KiB: pages shared by
/// a master and its workers counted once.
pub fn pss_kib(pid: u32) -> u64 {
    tree(pid)
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

/// Pins every thread of `pid` to `cpu` (threads it starts later inherit it).
pub fn pin(pid: u32, cpu: &str) {
    let ok = Command::new("taskset")
        .args(["-a", "-cp", cpu, &pid.to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("taskset could not pin {pid} to CPU {cpu}: the figures share cores");
    }
}

//! The process's memory, as the overload guard reads it: resident bytes
//! now, and the container's limit (what `limits.max_memory: auto` takes
//! 90 % of).

/// Resident memory in bytes (VmRSS in `/proc/self/status`, which
/// states it in KiB whatever the page size); `None` off Linux.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The memory limit of the cgroup the process runs in (a pod's
/// `resources.limits.memory`), v2 or v1; `None` when there is none.
pub fn container_limit() -> Option<u64> {
    let read = |path: &str| -> Option<u64> {
        let text = std::fs::read_to_string(path).ok()?;
        let n: u64 = text.trim().parse().ok()?;
        // v1 says "no limit" with a huge number.
        (n < 1 << 60).then_some(n)
    };
    read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
}

/// What `limits.max_memory` means in bytes: `Some(n)` a limit, `None` no
/// guard. `auto` is 90 % of the container's limit, or no guard without one.
pub fn resolve(setting: MaxMemory) -> Option<u64> {
    match setting {
        MaxMemory::Off => None,
        MaxMemory::Bytes(n) => Some(n),
        MaxMemory::Auto => container_limit().map(|n| n / 10 * 9),
    }
}

/// `limits.max_memory` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxMemory {
    /// 90 % of the container's memory limit, when there is one.
    #[default]
    Auto,
    Off,
    Bytes(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let rss = resident_bytes().expect("statm");
            assert!(rss > 1 << 20, "{rss}");
        }
    }

    #[test]
    fn settings_resolve() {
        assert_eq!(resolve(MaxMemory::Off), None);
        assert_eq!(resolve(MaxMemory::Bytes(5)), Some(5));
        assert_eq!(
            resolve(MaxMemory::Auto),
            container_limit().map(|n| n / 10 * 9)
        );
    }
}

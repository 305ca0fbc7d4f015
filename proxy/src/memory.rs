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

/// The allocation size from which glibc's malloc maps memory of its own
/// rather than carving it from an arena. glibc starts at 128 KiB and then
/// raises the line to the size of each mapped block freed, up to 32 MiB:
/// after the first list from the API server (bodies of megabytes, decoded
/// and dropped) every later large buffer lands inside an arena, and the
/// long-lived objects allocated between them keep those pages resident.
/// Held at 128 KiB, the large and short-lived go back to the kernel when
/// freed. 1,000 Services with 10,000 endpoints (`cluster-bench memory`):
/// 45 MiB resident before, 40 MiB with this, 39 MiB with [`trim`] after
/// each rebuild too (`docs/BENCHMARKS.md`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Sets glibc's malloc up for a long-running proxy (see `MMAP_THRESHOLD`),
/// once, at start, before the threads are. A `MALLOC_MMAP_THRESHOLD_` in the
/// environment (glibc's own tunable) is left to win. Elsewhere, nothing.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        glibc::set_mmap_threshold(MMAP_THRESHOLD);
    }
}

/// Hands the allocator's free pages back to the kernel (glibc's
/// `malloc_trim`), in every arena: what a rebuild freed — the old table,
/// the objects a watch replaced — is otherwise kept, resident, in the
/// arena of whichever thread freed it. Called after a rebuild, off the
/// serving threads; it takes each arena's lock for the time of a walk over
/// its free chunks (about a millisecond for 40 MiB). Elsewhere, nothing.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::trim();
}

/// The two calls into glibc: with the parking lot's registration of its
/// epoll set (`server::park`), the proxy's only `unsafe` code.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    /// Whether malloc took the value.
    pub(super) fn set_mmap_threshold(bytes: libc::c_int) -> bool {
        // SAFETY: mallopt takes two integers and is safe to call from any
        // thread at any time; it returns 0 on a value it refuses.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) } != 0;
        if !ok {
            tracing::debug!(bytes, "malloc refused the mmap threshold");
        }
        ok
    }

    pub(super) fn trim() {
        // SAFETY: malloc_trim takes an integer (the bytes to leave at each
        // heap's top) and locks each arena itself; any thread may call it.
        unsafe {
            libc::malloc_trim(0);
        }
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

    /// glibc takes the threshold, and a trim after freeing leaves the
    /// process running and its memory readable.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_threshold_and_trims() {
        assert!(glibc::set_mmap_threshold(MMAP_THRESHOLD));
        let blocks: Vec<Vec<u8>> = (0..256).map(|i| vec![i as u8; 4096]).collect();
        drop(blocks);
        trim();
        assert!(resident_bytes().is_some_and(|b| b > 0));
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

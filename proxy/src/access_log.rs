//! The access log: one line per request, as text or JSON, on stdout.
//!
//! Off the request path's critical section: a request hands its entry to a
//! channel (no lock, no I/O) and a thread of its own formats and writes.
//! While requests keep coming that thread writes in batches, every 10 ms,
//! so a request does not wake it (a futex call and a switch of threads on
//! the serving core, per request, before).
//! At most 8,192 entries wait: when the thread falls behind, entries
//! are dropped and counted in `sluice_access_log_dropped_total`, rather
//! than slowing traffic. The channel grows in small blocks as entries
//! wait and gives them back as they are written, so an idle proxy holds no
//! queue (a preallocated one held 1.7 MB).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus::IntCounter;

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    Off,
    #[default]
    Text,
    Json,
}

/// An access log format that is none of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not off, text or json")]
pub struct FormatError(pub String);

impl std::str::FromStr for Format {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, FormatError> {
        match s {
            "off" => Ok(Format::Off),
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(FormatError(other.to_owned())),
        }
    }
}

/// One request, as logged.
#[derive(Debug, Clone)]
pub struct Entry {
    pub time: SystemTime,
    pub client: IpAddr,
    pub host: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Response body bytes sent (or declared, when hyper streams them).
    pub bytes: Option<u64>,
    pub upstream: Option<SocketAddr>,
    pub duration: Duration,
    pub request_id: String,
}

/// The sending side, shared by every connection.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Sender<Entry>,
    /// Entries sent and not yet on stdout (written and flushed): what the
    /// queue's bound counts, and what [`AccessLog::flush`] waits for.
    waiting: Arc<AtomicUsize>,
    dropped: IntCounter,
    /// The writer thread, which [`AccessLog::flush`] wakes.
    writer: Option<std::thread::Thread>,
}

/// Entries waiting to be written before new ones are dropped.
const QUEUE: usize = 8192;

impl AccessLog {
    /// Starts the writer thread; `None` when the log is off.
    pub fn start(format: Format, dropped: IntCounter) -> Option<AccessLog> {
        if format == Format::Off {
            return None;
        }
        let (tx, rx) = channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let taken = waiting.clone();
        let writer = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_loop(rx, &taken, format, std::io::stdout().lock()))
            .ok()?;
        Some(AccessLog {
            tx,
            waiting,
            dropped,
            writer: Some(writer.thread().clone()),
        })
    }

    /// Hands an entry over; never blocks.
    pub fn log(&self, e: Entry) {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= QUEUE {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            self.dropped.inc();
            return;
        }
        if self.tx.send(e).is_err() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            self.dropped.inc();
        }
    }

    /// Has the writer write what is waiting now, and waits up to `limit`
    /// for it to be on stdout: at shutdown, so that the last requests'
    /// lines are not lost with the process.
    pub async fn flush(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.waiting.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            if let Some(w) = &self.writer {
                w.unpark();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// How long the writer sleeps between batches while requests keep
/// coming. A sender wakes the writer only when it is parked in `recv`, so
/// under load no request pays a futex wake and a switch to this thread:
/// the entries of the last few milliseconds are written together. A line
/// is on stdout at most this late (nginx's `access_log ... flush=` does
/// the same, with seconds).
const BATCH: Duration = Duration::from_millis(10);

fn write_loop(rx: Receiver<Entry>, waiting: &AtomicUsize, format: Format, to: impl Write) {
    let mut out = std::io::BufWriter::new(to);
    let mut line = String::with_capacity(256);
    // Written since the last flush: they count as waiting until flushed,
    // so that `AccessLog::flush` knows when they are out.
    let mut written = 0;
    let flush = |out: &mut std::io::BufWriter<_>, written: &mut usize| {
        let _ = out.flush();
        waiting.fetch_sub(std::mem::take(written), Ordering::Release);
    };
    // Parked until the first entry after a quiet spell.
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Batches while entries keep coming; back to `recv` after a
        // pause in which none came.
        while next.is_some() {
            while let Some(e) = next {
                line.clear();
                render(&mut line, &e, format);
                let _ = out.write_all(line.as_bytes());
                written += 1;
                if written == 256 {
                    flush(&mut out, &mut written);
                }
                next = rx.try_recv().ok();
            }
            flush(&mut out, &mut written);
            // Unparked early by `AccessLog::flush`.
            std::thread::park_timeout(BATCH);
            next = rx.try_recv().ok();
        }
    }
}

/// One line, newline included.
pub fn render(line: &mut String, e: &Entry, format: Format) {
    use std::fmt::Write as _;
    let time = humantime::format_rfc3339_millis(e.time);
    let upstream = e.upstream.map(|u| u.to_string());
    match format {
        Format::Json => {
            let v = serde_json::json!({
                "time": time.to_string(),
                "client": e.client.to_string(),
                "host": e.host,
                "method": e.method,
                "path": e.path,
                "status": e.status,
                "bytes": e.bytes,
                "upstream": upstream,
                "duration_ms": (e.duration.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
                "request_id": e.request_id,
            });
            let _ = writeln!(line, "{v}");
        }
        Format::Text | Format::Off => {
            let _ = writeln!(
                line,
                "{time} {} {:?} {} {:?} {} {} {} {:.3}ms {}",
                e.client,
                e.host,
                e.method,
                e.path,
                e.status,
                e.bytes.map_or("-".to_owned(), |b| b.to_string()),
                upstream.as_deref().unwrap_or("-"),
                e.duration.as_secs_f64() * 1000.0,
                if e.request_id.is_empty() {
                    "-"
                } else {
                    &e.request_id
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000),
            client: "203.0.113.9".parse().unwrap(),
            host: "shop.example.com".into(),
            method: "GET".into(),
            path: "/cart?id=\"1\"".into(),
            status: 200,
            bytes: Some(1234),
            upstream: Some("10.0.0.7:8080".parse().unwrap()),
            duration: Duration::from_micros(1500),
            request_id: "abc".into(),
        }
    }

    /// A writer that has fallen behind: past QUEUE waiting entries, new
    /// ones are dropped and counted, and room made by the writer is used
    /// again.
    #[test]
    fn a_full_queue_drops_and_counts() {
        let (tx, rx) = channel();
        let dropped = IntCounter::new("dropped", "test").unwrap();
        let log = AccessLog {
            tx,
            waiting: Arc::new(AtomicUsize::new(0)),
            dropped: dropped.clone(),
            writer: None,
        };
        for _ in 0..QUEUE + 5 {
            log.log(entry());
        }
        assert_eq!(dropped.get(), 5);
        // The writer writes one out: one more fits.
        rx.recv().unwrap();
        log.waiting.fetch_sub(1, Ordering::Relaxed);
        log.log(entry());
        log.log(entry());
        assert_eq!(dropped.get(), 6);
        assert_eq!(rx.try_iter().count(), QUEUE);
    }

    /// Lines are written in batches, and `flush` returns once the lines
    /// of the entries logged before it are out.
    #[tokio::test]
    async fn flush_returns_once_every_line_is_out() {
        #[derive(Clone, Default)]
        struct Out(Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Out {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let (tx, rx) = channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let out = Out::default();
        let writer = {
            let (waiting, out) = (waiting.clone(), out.clone());
            std::thread::spawn(move || write_loop(rx, &waiting, Format::Text, out))
        };
        let log = AccessLog {
            tx,
            waiting,
            dropped: IntCounter::new("dropped", "test").unwrap(),
            writer: Some(writer.thread().clone()),
        };
        let lines = || {
            out.0
                .lock()
                .unwrap()
                .iter()
                .filter(|b| **b == b'\n')
                .count()
        };
        for round in 1..=3 {
            for _ in 0..100 {
                log.log(entry());
            }
            log.flush(Duration::from_secs(30)).await;
            assert_eq!(lines(), round * 100);
        }
        drop(log);
        writer.join().unwrap();
    }

    #[test]
    fn json_lines_parse_back() {
        let mut line = String::new();
        render(&mut line, &entry(), Format::Json);
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(v["client"], "203.0.113.9");
        assert_eq!(v["path"], "/cart?id=\"1\"");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 1234);
        assert_eq!(v["upstream"], "10.0.0.7:8080");
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["request_id"], "abc");
    }

    #[test]
    fn text_lines_quote_what_the_client_chose() {
        let mut line = String::new();
        render(&mut line, &entry(), Format::Text);
        assert!(
            line.contains(r#" 203.0.113.9 "shop.example.com" GET "/cart?id=\"1\"" 200 1234 10.0.0.7:8080 1.500ms abc"#),
            "{line}"
        );
    }
}

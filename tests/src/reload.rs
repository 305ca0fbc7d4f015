//! Config files a test rewrites under a running process: written at once
//! as a config manager would, and waited on until the new routing table
//! serves (its generation in `/routes` moves).

use std::net::SocketAddr;
use std::time::Duration;

use crate::{get, wait_until, Sluice};

/// Replaces a file at once (write beside, then rename), as a config
/// manager would.
pub fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The routing table's generation, from `/routes`.
pub async fn generation(s: &Sluice) -> u64 {
    let (_, json) = get(s.admin, "/routes").await.unwrap();
    let line = json
        .lines()
        .find(|l| l.contains("\"generation\""))
        .expect("generation in /routes");
    line.trim()
        .trim_start_matches("\"generation\":")
        .trim_end_matches(',')
        .trim()
        .parse()
        .unwrap()
}

/// Rewrites the config file (a template, filled as the one `s` started
/// with) and waits until the new table serves.
pub async fn reload_to(s: &Sluice, path: &std::path::Path, text: &str) {
    let before = generation(s).await;
    replace_file(path, &s.fill(text));
    wait_until(
        "the reload to take effect",
        Duration::from_secs(10),
        || async { generation(s).await > before },
    )
    .await;
}

/// Replaces `{LISTEN}` and `{ADMIN}` in a config template, for a file
/// written before the process it configures starts.
pub fn fill(yaml: &str, listen: SocketAddr, admin: SocketAddr) -> String {
    yaml.replace("{LISTEN}", &listen.to_string())
        .replace("{ADMIN}", &admin.to_string())
}

//! `sluice demo`: three built-in backends and the proxy in front of them,
//! with the commands to try printed once it listens.

use std::net::SocketAddr;

use sluice::config;

use super::error::CliError;
use super::runtime::runtime;

/// Runs the demo until it is told to stop.
pub fn demo(listen: SocketAddr, admin: SocketAddr, base_port: u16) -> Result<(), CliError> {
    let rt = runtime(None).map_err(CliError::Runtime)?;
    rt.block_on(async {
        for (name, addr, _) in sluice::demo::backends(base_port) {
            sluice::demo::start_backend(name, addr).await?;
        }
        let cfg = sluice::demo::config(listen, admin, base_port);
        // Printed once the proxy is bound, so every command works at once.
        let banner = sluice::demo::instructions(listen, admin, base_port);
        tokio::spawn(async move {
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(listen).await.is_ok() {
                    println!("{banner}");
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        sluice::app::run(cfg, None, None, config::Overrides::default()).await
    })?;
    Ok(())
}

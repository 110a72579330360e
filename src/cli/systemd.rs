//! systemd integration without a dependency: `sd_notify` over `$NOTIFY_SOCKET`.

/// Sends a state line (`READY=1`, `STOPPING=1`, `WATCHDOG=1`) to systemd, if it is listening.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), &path)
    };
    if let Err(error) = sent {
        tracing::debug!(%error, "sd_notify failed");
    }
}

/// Pings systemd's watchdog at half the interval it asked for (`WATCHDOG_USEC`), as long as the
/// async runtime is alive to do so.
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    let period = std::time::Duration::from_micros(usec / 2);
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        loop {
            ticker.tick().await;
            notify("WATCHDOG=1");
        }
    }))
}

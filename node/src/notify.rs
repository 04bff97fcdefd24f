//! The systemd notification protocol (`sd_notify`): datagrams to the unix socket in `NOTIFY_SOCKET`, which
//! starts with `@` for a socket in the abstract namespace. `READY=1` once the node runs and its API listens,
//! `WATCHDOG=1` at half the unit's `WatchdogSec`, `STOPPING=1` on the way out. Outside systemd (no
//! `NOTIFY_SOCKET`) every call does nothing.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The socket systemd listens on, as `NOTIFY_SOCKET` names it.
pub fn socket_addr(name: &str) -> io::Result<SocketAddr> {
    match name.strip_prefix('@') {
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name.as_bytes())
        }
        None if name.starts_with('/') => SocketAddr::from_pathname(name),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NOTIFY_SOCKET={name:?} is neither a path nor an abstract name (@…)"),
        )),
    }
}

/// Send `state` (e.g. `READY=1\nSTATUS=…`) to the socket `name`.
pub fn notify_to(name: &str, state: &str) -> io::Result<()> {
    let addr = socket_addr(name)?;
    let socket = UnixDatagram::unbound()?;
    let sent = socket.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short notification datagram",
        ));
    }
    Ok(())
}

/// Tell systemd `state` when the process runs under it; a failure is logged, never fatal.
pub fn notify(state: &str) {
    let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let name = name.to_string_lossy();
    if let Err(e) = notify_to(&name, state) {
        tracing::warn!(target: "firmchain::systemd", socket = %name, "cannot notify systemd: {e}");
    }
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is meant for this process (`WATCHDOG_PID`
/// unset or ours).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// [`watchdog_interval`] of this process's environment.
pub fn process_watchdog_interval() -> Option<Duration> {
    let var = |k| std::env::var(k).ok();
    watchdog_interval(
        var("WATCHDOG_USEC").as_deref(),
        var("WATCHDOG_PID").as_deref(),
        std::process::id(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv(socket: &UnixDatagram) -> String {
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn a_notification_reaches_a_socket_at_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1\nSTATUS=running").unwrap();
        assert_eq!(recv(&socket), "READY=1\nSTATUS=running");
    }

    #[test]
    fn a_notification_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "firmchain-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(&format!("@{name}"), "WATCHDOG=1").unwrap();
        assert_eq!(recv(&socket), "WATCHDOG=1");
    }

    #[test]
    fn a_relative_or_absent_socket_is_an_error_not_a_guess() {
        assert!(notify_to("relative/notify", "READY=1").is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(notify_to(dir.path().join("nobody").to_str().unwrap(), "READY=1").is_err());
    }

    #[test]
    fn the_watchdog_fires_at_half_its_timeout_and_only_for_this_process() {
        let half = Some(Duration::from_secs(15));
        assert_eq!(watchdog_interval(Some("30000000"), None, 7), half);
        assert_eq!(watchdog_interval(Some("30000000"), Some("7"), 7), half);
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
    }
}

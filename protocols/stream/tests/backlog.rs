//! Listen backlogs: the default, and a chosen one at its boundary.

mod support;

use std::io;

use gruvi_stream::{DEFAULT_LISTEN_BACKLOG, UnixListener, UnixStream};
use support::run_clean;

/// A socket path unique to this process and `name`, removed first.
fn socket_path(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("gruvi-bl-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Connects to `path` until a connection fails; returns those that succeeded and the error.
fn connect_until_refused(path: &std::path::Path, most: usize) -> (Vec<UnixStream>, io::Error) {
    let mut pending = Vec::new();
    loop {
        match UnixStream::connect(path) {
            Ok(stream) => pending.push(stream),
            Err(err) => return (pending, err),
        }
        assert!(pending.len() <= most, "the backlog is not applied");
    }
}

/// Binds with `backlog` (the default if `None`), connects until refused, and returns how many
/// connected; checks that each of them is then accepted.
fn connections_before_refusal(name: &str, backlog: Option<u32>) -> usize {
    let most = backlog.unwrap_or(DEFAULT_LISTEN_BACKLOG) as usize + 10;
    let path = socket_path(name);
    let listener = match backlog {
        Some(backlog) => UnixListener::bind_with_backlog(&path, backlog).unwrap(),
        None => UnixListener::bind(&path).unwrap(),
    };
    let (pending, err) = connect_until_refused(&path, most);
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
    for _ in &pending {
        listener.accept().unwrap();
    }
    // With the queue empty again, connecting works again.
    UnixStream::connect(&path).unwrap();
    pending.len()
}

#[test]
fn a_unix_listener_queues_its_backlog_and_refuses_past_it() {
    run_clean(|| {
        for backlog in [1, 2, 5] {
            // Linux queues one more than the backlog, and libuv takes one off the queue
            // ahead of `accept`.
            let connected = connections_before_refusal(&format!("b{backlog}"), Some(backlog));
            assert_eq!(connected, backlog as usize + 2, "backlog {backlog}");
        }
    });
}

/// A number from a `/proc` file, if it can be read.
fn proc_number(path: &str, field: fn(&str) -> Option<&str>) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| field(line)?.trim().parse().ok())
}

#[test]
fn a_unix_listener_bound_without_a_backlog_takes_the_default() {
    // The kernel caps the backlog at net.core.somaxconn.
    let somaxconn = proc_number("/proc/sys/net/core/somaxconn", |line| Some(line)).unwrap_or(4096);
    let backlog = u64::from(DEFAULT_LISTEN_BACKLOG).min(somaxconn);
    let open_files = proc_number("/proc/self/limits", |line| {
        let rest = line.strip_prefix("Max open files")?;
        rest.split_whitespace().next()
    });
    if open_files.is_none_or(|limit| limit < backlog + 100) {
        eprintln!("skipped: {open_files:?} open files are too few for {backlog} connections");
        return;
    }
    run_clean(|| {
        let connected = connections_before_refusal("default", None);
        assert_eq!(connected as u64, backlog + 2);
    });
}

/// A TCP listener bound with a backlog queues that many connections (and, as for Unix
/// sockets, Linux one more and libuv one ahead of `accept`); past that, the kernel drops the
/// attempts (the client would retry), so a connect with a timeout times out.
#[test]
fn a_tcp_listener_queues_its_backlog_and_drops_attempts_past_it() {
    use std::time::Duration;

    use gruvi_stream::{TcpListener, TcpStream};
    run_clean(|| {
        for backlog in [1, 3] {
            let listener = TcpListener::bind_with_backlog("127.0.0.1:0", backlog).unwrap();
            let addr = listener.local_addr().unwrap();
            let mut pending = Vec::new();
            let err = loop {
                match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                    Ok(stream) => pending.push(stream),
                    Err(err) => break err,
                }
                assert!(
                    pending.len() <= backlog as usize + 10,
                    "the backlog is not applied"
                );
            };
            assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
            assert_eq!(pending.len(), backlog as usize + 2, "backlog {backlog}");
            for _ in &pending {
                listener.accept().unwrap();
            }
        }
    });
}

//! Unix-domain streams on fibers: echo over a path and an abstract name, errors, socket pairs,
//! and passing connections over IPC pipes to another thread and another process.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use fiber_core::{spawn, yield_now};
use gruvi_stream::{IpcPipe, Received, TcpListener, TcpStream, UnixListener, UnixStream};
use support::{random_bytes, run_clean};

/// A socket path unique to this process and test.
fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("gruvi-unix-{}-{name}.sock", std::process::id()))
}

/// Accepts one connection and echoes it until EOF, then half-closes.
fn echo_once(listener: UnixListener) -> fiber_core::JoinHandle<io::Result<u64>> {
    spawn(move || {
        let (conn, _) = listener.accept()?;
        let copied = io::copy(&mut &conn, &mut &conn)?;
        conn.shutdown(Shutdown::Write)?;
        Ok(copied)
    })
}

/// Sends `data` to the echo server at `path` with a concurrent writer and reads it all back.
fn echo_through(path: &Path, data: Vec<u8>) {
    let client = Rc::new(UnixStream::connect(path).unwrap());
    let (c, d) = (client.clone(), data.clone());
    let writer = spawn(move || -> io::Result<()> {
        for chunk in d.chunks(10_000) {
            (&*c).write_all(chunk)?;
        }
        c.shutdown(Shutdown::Write)
    });
    let mut back = Vec::new();
    (&*client).read_to_end(&mut back).unwrap();
    writer.join().unwrap().unwrap();
    assert!(back == data, "echoed bytes differ");
}

#[test]
fn a_megabyte_echoes_over_a_socket_path_which_is_removed_on_close() {
    let path = socket_path("echo");
    run_clean(|| {
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        let server = echo_once(listener);
        echo_through(&path, random_bytes(1 << 20, 11));
        assert_eq!(server.join().unwrap().unwrap(), 1 << 20);
    });
    assert!(!path.exists(), "the listener removes its socket file");
}

#[cfg(target_os = "linux")]
#[test]
fn an_abstract_name_echoes_and_reports_its_name() {
    use std::os::linux::net::SocketAddrExt;
    run_clean(|| {
        let name = format!("gruvi-test-{}", std::process::id());
        let path = PathBuf::from(format!("\0{name}"));
        let listener = UnixListener::bind(&path).unwrap();
        let addr = listener.local_addr().unwrap();
        assert_eq!(addr.as_abstract_name(), Some(name.as_bytes()));
        let server = echo_once(listener);
        echo_through(&path, random_bytes(100_000, 5));
        server.join().unwrap().unwrap();
        // The std address form connects too.
        let listener = UnixListener::bind_addr(&addr).unwrap();
        let server = echo_once(listener);
        let mut client = UnixStream::connect_addr(&addr).unwrap();
        client.write_all(b"abstract").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut back = String::new();
        client.read_to_string(&mut back).unwrap();
        assert_eq!(back, "abstract");
        server.join().unwrap().unwrap();
    });
}

#[test]
fn connecting_to_a_missing_path_is_not_found() {
    run_clean(|| {
        let err = UnixStream::connect(socket_path("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        let long = std::env::temp_dir().join("x".repeat(200));
        let err = UnixStream::connect(long).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    });
}

#[test]
fn binding_a_path_in_use_is_addr_in_use() {
    let path = socket_path("in-use");
    run_clean(|| {
        let _first = UnixListener::bind(&path).unwrap();
        let err = UnixListener::bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
    });
}

#[test]
fn a_pair_talks_both_ways_half_closes_and_times_out() {
    run_clean(|| {
        let (a, b) = UnixStream::pair().unwrap();
        assert!(a.local_addr().unwrap().is_unnamed());
        assert!(b.peer_addr().unwrap().is_unnamed());
        (&a).write_all(b"ping\n").unwrap();
        let mut line = String::new();
        BufReader::new(&b).read_line(&mut line).unwrap();
        assert_eq!(line, "ping\n");
        b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let start = Instant::now();
        let err = (&b).read(&mut [0; 4]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(20));
        // Half-close: b still writes after reading EOF.
        a.shutdown(Shutdown::Write).unwrap();
        assert_eq!((&b).read(&mut [0; 4]).unwrap(), 0);
        (&b).write_all(b"pong").unwrap();
        b.shutdown(Shutdown::Write).unwrap();
        let mut back = String::new();
        (&a).read_to_string(&mut back).unwrap();
        assert_eq!(back, "pong");
    });
}

#[test]
fn a_blocked_accept_ends_when_the_listener_closes() {
    let path = socket_path("close");
    run_clean(|| {
        let listener = Rc::new(UnixListener::bind(&path).unwrap());
        let l = listener.clone();
        let acceptor = spawn(move || l.accept().map(|_| ()));
        yield_now().unwrap();
        listener.close();
        let err = acceptor.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotConnected);
    });
    assert!(!path.exists());
}

#[test]
fn a_unix_stream_passes_over_an_ipc_pair_and_eof_ends_receiving() {
    run_clean(|| {
        let (sender, receiver) = IpcPipe::pair().unwrap();
        let (mine, theirs) = UnixStream::pair().unwrap();
        sender.send_stream(&theirs).unwrap();
        theirs.close();
        let Received::Unix(got) = receiver.recv_stream().unwrap() else {
            panic!("expected a Unix stream");
        };
        (&got).write_all(b"via ipc").unwrap();
        got.shutdown(Shutdown::Write).unwrap();
        let mut back = String::new();
        (&mine).read_to_string(&mut back).unwrap();
        assert_eq!(back, "via ipc");
        sender.close();
        let err = receiver.recv_stream().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    });
}

/// Serves one passed TCP connection: answers a line with `"{who}: {line}"`.
fn serve_passed_connection(ipc: &IpcPipe, who: &str) -> io::Result<()> {
    let Received::Tcp(conn) = ipc.recv_stream()? else {
        panic!("expected a TCP stream");
    };
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
    (&conn).write_all(format!("{who}: {line}").as_bytes())?;
    conn.shutdown(Shutdown::Write)?;
    let err = ipc.recv_stream().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    Ok(())
}

/// Accepts a TCP connection, passes it over `ipc` and checks that the other side answers.
fn pass_a_connection(ipc: IpcPipe, who: &str) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (conn, _) = listener.accept().unwrap();
    ipc.send_stream(&conn).unwrap();
    // The other side has its own copy: ours can go, and so can the carrier.
    drop(conn);
    ipc.close();
    client.write_all(b"hello\n").unwrap();
    let mut reply = String::new();
    client.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, format!("{who}: hello\n"));
}

#[test]
fn an_accepted_tcp_connection_passes_to_another_thread_with_its_own_hub() {
    let (here, there) = std::os::unix::net::UnixStream::pair().unwrap();
    let worker = std::thread::spawn(move || {
        run_clean(|| serve_passed_connection(&IpcPipe::from_std(there)?, "worker"))
    });
    run_clean(|| pass_a_connection(IpcPipe::from_std(here).unwrap(), "worker"));
    worker.join().unwrap().unwrap();
}

/// `IpcPipe::connect` reaches an IPC peer listening on a path (here a plain std listener on
/// another thread, whose accepted socket becomes that thread's `IpcPipe`), and connections pass
/// over it as over a pair.
#[test]
fn an_ipc_pipe_connects_to_a_listening_path_and_passes_a_connection() {
    let path = socket_path("ipc-listen");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let worker = std::thread::spawn(move || {
        let (accepted, _) = listener.accept()?;
        run_clean(|| serve_passed_connection(&IpcPipe::from_std(accepted)?, "listener"))
    });
    run_clean(|| pass_a_connection(IpcPipe::connect(&path).unwrap(), "listener"));
    worker.join().unwrap().unwrap();
    std::fs::remove_file(&path).unwrap();
}

/// Set in the child process of the test below, which then plays the receiving side.
const CHILD_ENV: &str = "GRUVI_TEST_IPC_CHILD";
const CHILD_TEST: &str = "an_accepted_tcp_connection_passes_to_a_child_process";

#[test]
fn an_accepted_tcp_connection_passes_to_a_child_process() {
    if std::env::var_os(CHILD_ENV).is_some() {
        // The child: the IPC pipe is its standard input.
        let fd = io::stdin().as_fd().try_clone_to_owned().unwrap();
        run_clean(|| serve_passed_connection(&IpcPipe::from_fd(fd)?, "child")).unwrap();
        return;
    }
    let (here, there) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::from(OwnedFd::from(there)))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    run_clean(|| pass_a_connection(IpcPipe::from_std(here).unwrap(), "child"));
    assert!(child.wait().unwrap().success(), "the child failed");
}

//! Unix domain sockets: echo over a path and the abstract namespace, errors, and passing a TCP
//! handle over an IPC pipe.

mod support;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use support::{LIMIT, close_clean, run_until};
use uv_sys_wrap::{Error, Handle, HandleType, Loop, Pipe, Stream, Tcp};

type Shared<T> = Rc<RefCell<T>>;

fn shared<T>(v: T) -> Shared<T> {
    Rc::new(RefCell::new(v))
}

/// A socket path unique to this process and test.
fn socket_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("uvwrap-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn echo_over(path: &Path) {
    let lp = Loop::new().unwrap();
    let server = Pipe::new(&lp).unwrap();
    server.bind(path).unwrap();
    assert_eq!(server.sockname().unwrap(), path);
    let conns = shared(Vec::new());
    let c = conns.clone();
    server
        .listen(8, move |server, status| {
            status.unwrap();
            let conn = Pipe::new(&server.loop_handle()).unwrap();
            server.accept(&conn).unwrap();
            conn.read_start(Vec::with_capacity, |conn, data| match data {
                Ok(bytes) => conn.write(bytes, |r| r.unwrap()).unwrap(),
                Err(_) => conn.read_stop().unwrap(),
            })
            .unwrap();
            c.borrow_mut().push(conn);
        })
        .unwrap();
    let client = Pipe::new(&lp).unwrap();
    let got = shared(Vec::new());
    let g = got.clone();
    client.connect(path, |r| r.unwrap()).unwrap();
    client
        .read_start(Vec::with_capacity, move |_, data| {
            g.borrow_mut().extend_from_slice(&data.unwrap())
        })
        .unwrap();
    client
        .write(&b"ping over a pipe"[..], |r| r.unwrap())
        .unwrap();
    run_until(&lp, LIMIT, || got.borrow().len() == 16);
    assert_eq!(&*got.borrow(), b"ping over a pipe");
    assert_eq!(client.peername().unwrap(), path);
    drop((server, client, conns));
    close_clean(lp);
}

#[test]
fn echo_over_a_socket_path() {
    let path = socket_path("echo");
    echo_over(&path);
    assert!(!path.exists(), "closing the server removes its socket file");
}

#[test]
fn echo_over_an_abstract_socket() {
    let name = format!("\0uvwrap-abstract-{}", std::process::id());
    echo_over(Path::new(&name));
}

#[test]
fn connecting_to_a_missing_path_reports_enoent() {
    let lp = Loop::new().unwrap();
    let client = Pipe::new(&lp).unwrap();
    let result = shared(None);
    let r = result.clone();
    client
        .connect(socket_path("missing"), move |res| {
            *r.borrow_mut() = Some(res)
        })
        .unwrap();
    run_until(&lp, LIMIT, || result.borrow().is_some());
    assert_eq!(*result.borrow(), Some(Err(Error::ENOENT)));
    drop(client);
    close_clean(lp);
}

#[test]
fn binding_a_path_in_use_or_too_long_fails() {
    let lp = Loop::new().unwrap();
    let path = socket_path("inuse");
    let first = Pipe::new(&lp).unwrap();
    first.bind(&path).unwrap();
    let second = Pipe::new(&lp).unwrap();
    assert_eq!(second.bind(&path), Err(Error::EADDRINUSE));
    let third = Pipe::new(&lp).unwrap();
    let long = std::env::temp_dir().join("x".repeat(200));
    assert_eq!(third.bind(&long), Err(Error::EINVAL));
    drop((first, second, third));
    close_clean(lp);
    assert!(!path.exists());
}

#[test]
fn tcp_handle_passes_over_an_ipc_pipe() {
    let lp = Loop::new().unwrap();
    // Two IPC pipes over a socketpair, as between a parent and a worker.
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out array of two descriptors.
    let ret = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
    assert_eq!(ret, 0);
    let (parent, worker) = (Pipe::new_ipc(&lp).unwrap(), Pipe::new_ipc(&lp).unwrap());
    parent.open(fds[0]).unwrap();
    worker.open(fds[1]).unwrap();

    // A TCP connection accepted by the parent, handed to the worker.
    let server = Tcp::new(&lp).unwrap();
    server.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let accepted = shared(Vec::new());
    let a = accepted.clone();
    server
        .listen(4, move |server, status| {
            status.unwrap();
            let conn = Tcp::new(&server.loop_handle()).unwrap();
            server.accept(&conn).unwrap();
            a.borrow_mut().push(conn);
        })
        .unwrap();
    let client = Tcp::new(&lp).unwrap();
    client
        .connect(server.sockname().unwrap(), |r| r.unwrap())
        .unwrap();
    run_until(&lp, LIMIT, || !accepted.borrow().is_empty());
    let conn = accepted.borrow_mut().pop().unwrap();
    parent.write2(&b"conn"[..], &conn, |r| r.unwrap()).unwrap();

    let received: Shared<Vec<Tcp>> = shared(Vec::new());
    let r = received.clone();
    worker
        .read_start(Vec::with_capacity, move |pipe, data| {
            assert_eq!(data.unwrap(), b"conn");
            while pipe.pending_count() > 0 {
                assert_eq!(pipe.pending_type(), HandleType::Tcp);
                let tcp = Tcp::new(&pipe.loop_handle()).unwrap();
                pipe.accept(&tcp).unwrap();
                r.borrow_mut().push(tcp);
            }
        })
        .unwrap();
    run_until(&lp, LIMIT, || !received.borrow().is_empty());
    // The worker's copy is the same connection: it talks to our client.
    drop(conn);
    let theirs = received.borrow_mut().pop().unwrap();
    assert_eq!(theirs.peername().unwrap(), client.sockname().unwrap());
    let got = shared(Vec::new());
    let g = got.clone();
    client
        .read_start(Vec::with_capacity, move |_, data| {
            g.borrow_mut().extend_from_slice(&data.unwrap())
        })
        .unwrap();
    theirs
        .write(&b"from the worker"[..], |r| r.unwrap())
        .unwrap();
    run_until(&lp, LIMIT, || got.borrow().len() == 15);
    assert_eq!(&*got.borrow(), b"from the worker");
    drop((parent, worker, server, client, theirs, accepted, received));
    close_clean(lp);
}

#[test]
fn peer_credentials_name_this_process_on_both_ends_of_a_socket() {
    let lp = Loop::new().unwrap();
    let path = socket_path("peercred");
    let server = Pipe::new(&lp).unwrap();
    server.bind(&path).unwrap();
    let accepted = shared(None);
    let a = accepted.clone();
    server
        .listen(8, move |server, status| {
            status.unwrap();
            let conn = Pipe::new(&server.loop_handle()).unwrap();
            server.accept(&conn).unwrap();
            *a.borrow_mut() = Some(conn);
        })
        .unwrap();
    let client = Pipe::new(&lp).unwrap();
    // Not connected yet: the kernel has no peer to report.
    assert!(client.peer_credentials().is_err());
    let connected = shared(false);
    let c = connected.clone();
    client
        .connect(&path, move |r| {
            r.unwrap();
            *c.borrow_mut() = true;
        })
        .unwrap();
    run_until(&lp, LIMIT, || {
        *connected.borrow() && accepted.borrow().is_some()
    });
    // SAFETY: plain libc getters without arguments or preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let me = uv_sys_wrap::PeerCredentials {
        pid: std::process::id() as i32,
        uid,
        gid,
    };
    assert_eq!(client.peer_credentials().unwrap(), me);
    let conn = accepted.borrow_mut().take().unwrap();
    assert_eq!(conn.peer_credentials().unwrap(), me);
    drop((conn, client, server));
    close_clean(lp);
}

#[test]
fn peer_credentials_need_a_socket() {
    let lp = Loop::new().unwrap();
    // No descriptor yet.
    let empty = Pipe::new(&lp).unwrap();
    assert_eq!(empty.peer_credentials(), Err(Error::EBADF));
    // A plain pipe is no socket.
    let (reader, _writer) = std::io::pipe().unwrap();
    let pipe = Pipe::new(&lp).unwrap();
    pipe.open(std::os::fd::IntoRawFd::into_raw_fd(reader))
        .unwrap();
    assert_eq!(
        pipe.peer_credentials(),
        Err(Error::from_code(-libc::ENOTSOCK))
    );
    drop((empty, pipe));
    close_clean(lp);
}

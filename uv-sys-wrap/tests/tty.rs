//! Terminals, on pseudo-terminals made with `openpty`.

mod support;

use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use support::{LIMIT, close_clean, run_until};
use uv_sys_wrap::{Error, Handle, HandleType, Loop, Stream, Tty, TtyMode, tty_reset_mode};

/// A new pseudo-terminal: the master side (closed on drop) and the slave descriptor, which
/// the test hands to a [`Tty`] that then owns it.
fn openpty() -> (OwnedFd, RawFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: valid out pointers; null name, termios and window size are allowed.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(ret, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty returned a new descriptor that nothing else owns.
    (unsafe { OwnedFd::from_raw_fd(master) }, slave)
}

/// The terminal settings of `fd`.
fn termios(fd: RawFd) -> libc::termios {
    // SAFETY: termios is plain old data; tcgetattr fills it in.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid out parameter.
    assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0);
    t
}

/// Reads what is available on `fd`, waiting at most [`LIMIT`] for it.
fn read_some(fd: &OwnedFd) -> Vec<u8> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, LIMIT.as_millis() as i32) };
    assert_eq!(ready, 1, "nothing to read within {LIMIT:?}");
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n > 0, "read: {}", std::io::Error::last_os_error());
    buf[..n as usize].to_vec()
}

#[test]
fn tty_opens_on_a_pty_slave_and_reports_its_window_size() {
    let lp = Loop::new().unwrap();
    let (master, slave) = openpty();
    let size = libc::winsize {
        ws_row: 42,
        ws_col: 117,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    let ret = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    assert_eq!(ret, 0);
    let tty = Tty::new(&lp, slave, true).unwrap();
    assert_eq!(tty.handle_type(), HandleType::Tty);
    assert!(tty.fileno().is_ok());
    assert!(tty.is_readable() && tty.is_writable());
    assert_eq!(tty.winsize().unwrap(), (117, 42));
    drop(tty);
    close_clean(lp);
}

#[test]
fn tty_refuses_a_regular_file() {
    let lp = Loop::new().unwrap();
    let file = std::fs::File::open("Cargo.toml").unwrap();
    assert_eq!(
        Tty::new(&lp, file.as_raw_fd(), true).map(drop),
        Err(Error::EINVAL)
    );
    close_clean(lp);
}

#[test]
fn raw_mode_turns_off_line_editing_and_normal_mode_restores_it() {
    let lp = Loop::new().unwrap();
    let (_master, slave) = openpty();
    let tty = Tty::new(&lp, slave, true).unwrap();
    let slave = tty.fileno().unwrap();
    let canonical = |fd| termios(fd).c_lflag & (libc::ICANON | libc::ECHO);
    let before = canonical(slave);
    assert_ne!(before, 0, "a new pty does line editing and echo");

    tty.set_mode(TtyMode::Raw).unwrap();
    assert_eq!(canonical(slave), 0);
    tty.set_mode(TtyMode::Normal).unwrap();
    assert_eq!(canonical(slave), before);

    tty.set_mode(TtyMode::Io).unwrap();
    assert_eq!(canonical(slave), 0);
    assert_eq!(
        termios(slave).c_oflag & libc::OPOST,
        0,
        "IO mode is fully raw"
    );
    // Restores what the first terminal switched out of normal mode had, while it is open.
    tty_reset_mode().unwrap();
    assert_eq!(canonical(slave), before);
    tty.set_mode(TtyMode::Normal).unwrap();
    drop(tty);
    close_clean(lp);
}

#[test]
fn what_the_tty_writes_comes_out_of_the_master() {
    let lp = Loop::new().unwrap();
    let (master, slave) = openpty();
    let tty = Tty::new(&lp, slave, false).unwrap();
    let done = Rc::new(RefCell::new(None));
    let d = done.clone();
    tty.write(b"to the master", move |res| *d.borrow_mut() = Some(res))
        .unwrap();
    run_until(&lp, LIMIT, || done.borrow().is_some());
    assert_eq!(done.borrow_mut().take().unwrap(), Ok(()));
    let mut got = Vec::new();
    while got.len() < b"to the master".len() {
        got.extend(read_some(&master));
    }
    assert_eq!(got, b"to the master");
    assert_eq!(tty.try_write(b"!").unwrap(), 1);
    assert_eq!(read_some(&master), b"!");
    drop(tty);
    close_clean(lp);
}

#[test]
fn tty_reads_the_lines_the_master_types() {
    let lp = Loop::new().unwrap();
    let (master, slave) = openpty();
    let tty = Tty::new(&lp, slave, true).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    tty.read_start(Vec::with_capacity, move |_, data| {
        g.borrow_mut().extend(data.expect("tty read"))
    })
    .unwrap();
    let line = b"typed line\n";
    // SAFETY: `line` is valid for its length; the master is open.
    let n = unsafe { libc::write(master.as_raw_fd(), line.as_ptr().cast(), line.len()) };
    assert_eq!(n, line.len() as isize);
    run_until(&lp, LIMIT, || got.borrow().len() >= line.len());
    assert_eq!(&*got.borrow(), line);
    tty.read_stop().unwrap();
    drop(tty);
    close_clean(lp);
}

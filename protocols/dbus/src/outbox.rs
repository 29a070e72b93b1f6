//! The send side of a connection: messages are marshalled into one buffer and a writer fiber
//! hands the buffer to the stream. Every message queued while the writer waits goes out in
//! one write, so a burst of replies costs one system call instead of one each.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use dbus::Message;
use fiber_core::{Builder, Callback, JoinHandle, SwitchBack};
use gruvi_stream::Stream;

use crate::error::Error;
use crate::framing::SPEC_MAX_MESSAGE_SIZE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// Closed locally: send what is queued, then close the stream.
    Closing,
    Closed,
}

pub(crate) struct Outbox {
    stream: Rc<Stream>,
    buf: RefCell<Vec<u8>>,
    /// The writer's buffer from last time, reused.
    spare: RefCell<Vec<u8>>,
    writer: RefCell<Option<Callback<()>>>,
    senders: RefCell<Vec<Callback<()>>>,
    state: Cell<State>,
    /// Senders wait while this much is queued and not yet handed to the stream
    /// (`Config::write_buffer_limit`).
    high_water: usize,
    /// How long the last messages may take to go out when the connection is closed locally
    /// (`Config::close_flush_timeout`).
    flush_timeout: Duration,
    /// When the connection was closed locally: the flush ends by `flush_timeout` after it.
    closing_since: Cell<Option<Instant>>,
    /// The writer is in a write begun while open (which has no deadline of its own).
    writing: Cell<bool>,
    /// Closes the stream when a write begun while open outlasts the flush timeout.
    watchdog: RefCell<Option<JoinHandle<()>>>,
}

impl Outbox {
    pub(crate) fn new(
        stream: Rc<Stream>,
        high_water: usize,
        flush_timeout: Duration,
    ) -> Rc<Outbox> {
        Rc::new(Outbox {
            stream,
            buf: RefCell::new(Vec::new()),
            spare: RefCell::new(Vec::new()),
            writer: RefCell::new(None),
            senders: RefCell::new(Vec::new()),
            state: Cell::new(State::Open),
            high_water,
            flush_timeout,
            closing_since: Cell::new(None),
            writing: Cell::new(false),
            watchdog: RefCell::new(None),
        })
    }

    /// Starts the writer fiber; `on_error` is told why writing failed.
    pub(crate) fn start(
        self: &Rc<Outbox>,
        on_error: impl FnOnce(String) + 'static,
    ) -> Result<JoinHandle<()>, Error> {
        let outbox = self.clone();
        Builder::new()
            .name("dbus writer")
            .spawn(move || {
                if let Err(err) = outbox.write_loop() {
                    on_error(err);
                }
                outbox.close_now();
            })
            .map_err(Error::Io)
    }

    /// Marshals `message` into the buffer; waits first while the buffer is over its limit.
    pub(crate) fn push(&self, message: &Message) -> Result<(), Error> {
        while self.state.get() == State::Open && self.buf.borrow().len() >= self.high_water {
            let sb = SwitchBack::new();
            self.senders.borrow_mut().push(sb.callback());
            sb.wait()?;
        }
        if self.state.get() != State::Open {
            return Err(Error::Disconnected("the connection is closed".into()));
        }
        let pushed = message.marshal(|bytes| {
            if bytes.len() > SPEC_MAX_MESSAGE_SIZE {
                return Err(Error::InvalidInput(format!(
                    "a message of {} bytes is over the 128 MiB limit",
                    bytes.len()
                )));
            }
            self.buf.borrow_mut().extend_from_slice(bytes);
            Ok(())
        });
        pushed?;
        let writer = self.writer.borrow_mut().take();
        if let Some(writer) = writer {
            writer.call(());
        }
        Ok(())
    }

    /// Closes after sending what is queued (for at most the flush timeout). Never switches.
    pub(crate) fn close_after_flush(self: &Rc<Outbox>) {
        if self.state.get() == State::Open {
            self.state.set(State::Closing);
            self.closing_since.set(Some(Instant::now()));
            // A write begun while open has no deadline (a peer that does not read would
            // block it for ever): a watchdog closes the stream when the flush time is up.
            if self.writing.get() {
                let outbox = self.clone();
                let flush_timeout = self.flush_timeout;
                let watchdog = Builder::new().name("dbus close watchdog").spawn(move || {
                    if fiber_core::sleep(flush_timeout).is_ok() {
                        outbox.close_now();
                    }
                });
                match watchdog {
                    Ok(watchdog) => *self.watchdog.borrow_mut() = Some(watchdog),
                    // Out of stacks: no flush rather than one without a bound.
                    Err(_) => self.close_now(),
                }
            }
            self.wake_all();
        }
    }

    /// Closes the stream now; queued messages are dropped. Never switches.
    pub(crate) fn close_now(&self) {
        self.state.set(State::Closed);
        self.stream.close();
        self.buf.borrow_mut().clear();
        self.wake_all();
        let watchdog = self.watchdog.borrow_mut().take();
        if let Some(watchdog) = watchdog
            && *watchdog.fiber() != fiber_core::current()
        {
            watchdog.cancel();
        }
    }

    fn wake_all(&self) {
        let writer = self.writer.borrow_mut().take();
        if let Some(writer) = writer {
            writer.call(());
        }
        for sender in self.senders.take() {
            sender.call(());
        }
    }

    /// What is left of the flush time of a connection closed locally.
    fn flush_time_left(&self) -> Duration {
        let since = self.closing_since.get().unwrap_or_else(Instant::now);
        self.flush_timeout.saturating_sub(since.elapsed())
    }

    /// Writes the buffer whenever it has something, until closed; `Err` says why writing
    /// failed.
    fn write_loop(&self) -> Result<(), String> {
        loop {
            let data = {
                let mut spare = self.spare.borrow_mut();
                std::mem::replace(&mut *self.buf.borrow_mut(), std::mem::take(&mut *spare))
            };
            if data.is_empty() {
                match self.state.get() {
                    State::Open => {}
                    // Closing the stream drops what its send queue still holds: wait for
                    // it to drain, for what is left of the flush time.
                    State::Closing => {
                        let _ = fiber_core::timeout(self.flush_time_left(), || self.stream.flush());
                        return Ok(());
                    }
                    State::Closed => return Ok(()),
                }
                let sb = SwitchBack::new();
                *self.writer.borrow_mut() = Some(sb.callback());
                if sb.wait().is_err() {
                    // Cancelled: the Hub is closing.
                    return Ok(());
                }
                continue;
            }
            for sender in self.senders.take() {
                sender.call(());
            }
            let written = match self.state.get() {
                State::Open => {
                    self.writing.set(true);
                    let written = self.stream.write_all(&data);
                    self.writing.set(false);
                    written
                }
                State::Closing => {
                    match fiber_core::timeout(self.flush_time_left(), || {
                        self.stream.write_all(&data)
                    }) {
                        Ok(result) => result,
                        Err(_) => return Ok(()),
                    }
                }
                State::Closed => return Ok(()),
            };
            if let Err(err) = written {
                return Err(format!("cannot send: {err}"));
            }
            let mut data = data;
            data.clear();
            *self.spare.borrow_mut() = data;
        }
    }
}

#[cfg(test)]
mod tests {
    use gruvi_stream::UnixStream;

    use super::*;

    /// A signal whose marshalled form is `text.len()` plus a fixed overhead; and that size.
    fn signal(text: &str) -> (Message, usize) {
        let mut m = Message::new_signal("/a", "com.example.I", "S")
            .unwrap()
            .append1(text);
        m.set_serial(1);
        let mut len = 0;
        m.marshal(|bytes| {
            len += bytes.len();
            Ok::<(), ()>(())
        })
        .unwrap();
        (m, len)
    }

    fn pair() -> (Rc<Stream>, Rc<Stream>) {
        let (a, b) = UnixStream::pair().unwrap();
        (Rc::new(Stream::new(a)), Rc::new(Stream::new(b)))
    }

    #[test]
    fn senders_wait_once_write_buffer_limit_bytes_are_queued() {
        fiber_core::run(|| {
            let (message, len) = signal("x");
            // No writer runs: what is pushed stays queued. At exactly three messages' worth
            // the fourth waits; one byte more and it goes in, and the fifth waits.
            for (limit, fit) in [(3 * len, 3), (3 * len + 1, 4)] {
                let (a, _b) = pair();
                let outbox = Outbox::new(a, limit, DEFAULT_FLUSH);
                for _ in 0..fit {
                    let pushed =
                        fiber_core::timeout(Duration::from_secs(5), || outbox.push(&message));
                    assert!(matches!(pushed, Ok(Ok(()))), "limit {limit}: {pushed:?}");
                }
                let blocked =
                    fiber_core::timeout(Duration::from_millis(50), || outbox.push(&message));
                assert!(
                    matches!(blocked, Err(fiber_core::Error::TimedOut)),
                    "limit {limit}: {blocked:?}"
                );
                assert_eq!(outbox.buf.borrow().len(), fit * len, "limit {limit}");
                outbox.close_now();
            }
        });
    }

    const DEFAULT_FLUSH: Duration = crate::config::DEFAULT_CLOSE_FLUSH_TIMEOUT;

    /// Queues big messages until a push has waited for 100 ms (the peer reads nothing, so
    /// the socket and the writer are full too).
    fn fill(outbox: &Outbox) -> usize {
        let (message, len) = signal(&"x".repeat(60 * 1024));
        let mut queued = 0;
        while fiber_core::timeout(Duration::from_millis(100), || outbox.push(&message)).is_ok() {
            queued += len;
            assert!(queued < 256 << 20, "a peer that reads nothing took 256 MiB");
        }
        queued
    }

    #[test]
    fn a_close_sends_what_is_queued_for_at_most_close_flush_timeout() {
        fiber_core::run(|| {
            // A peer that reads nothing: the writer gives up after the flush timeout.
            let flush = Duration::from_millis(200);
            let (a, b) = pair();
            let outbox = Outbox::new(a, 64 * 1024, flush);
            let writer = outbox.start(|_| {}).unwrap();
            fill(&outbox);
            let start = Instant::now();
            outbox.close_after_flush();
            writer.join().unwrap();
            let took = start.elapsed();
            assert!(took >= flush, "{took:?}");
            assert!(took < Duration::from_secs(2), "{took:?}");
            drop(b);
            // A peer that reads, late: everything queued arrives within the flush timeout.
            let (a, b) = pair();
            let outbox = Outbox::new(a, 64 * 1024, Duration::from_secs(5));
            let writer = outbox.start(|_| {}).unwrap();
            let queued = fill(&outbox);
            outbox.close_after_flush();
            fiber_core::sleep(Duration::from_millis(100)).unwrap();
            let received = b.read_bytes(usize::MAX).unwrap().len();
            writer.join().unwrap();
            assert!(received >= queued, "{received} of {queued} bytes arrived");
        });
    }
}

//! The send side of a connection: messages are marshalled into one buffer and a writer fiber
//! hands the buffer to the stream. Every message queued while the writer waits goes out in
//! one write, so a burst of replies costs one system call instead of one each.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

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
    pub(crate) fn close_after_flush(&self) {
        if self.state.get() == State::Open {
            self.state.set(State::Closing);
            self.wake_all();
        }
    }

    /// Closes the stream now; queued messages are dropped. Never switches.
    pub(crate) fn close_now(&self) {
        self.state.set(State::Closed);
        self.stream.close();
        self.buf.borrow_mut().clear();
        self.wake_all();
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

    /// Writes the buffer whenever it has something, until closed; `Err` says why writing
    /// failed.
    fn write_loop(&self) -> Result<(), String> {
        loop {
            let data = {
                let mut spare = self.spare.borrow_mut();
                std::mem::replace(&mut *self.buf.borrow_mut(), std::mem::take(&mut *spare))
            };
            if data.is_empty() {
                if self.state.get() != State::Open {
                    return Ok(());
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
                State::Open => self.stream.write_all(&data),
                State::Closing => {
                    match fiber_core::timeout(self.flush_timeout, || self.stream.write_all(&data)) {
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

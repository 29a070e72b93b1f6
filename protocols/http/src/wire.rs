//! [`Wire`]: one connection's parser, receive side and pending output, shared by the
//! connection loop and the body readers it hands out.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use gruvi_stream::{Connection, FillNotify};

use crate::error::Error;
use crate::head::RequestHead;
use crate::incoming::Incoming;
use crate::parser::{Event, Parser};

/// A sent output buffer up to this capacity is kept for the next answers.
const KEEP_OUT: usize = 8 * 1024;

thread_local! {
    /// The sent output buffer kept for the next answers, shared by the thread's connections:
    /// the next connection to answer writes into memory still in cache (a buffer per
    /// connection would have gone cold while the others ran), and idle connections hold none.
    static SPARE_OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What one parse step over the receive buffer gave.
pub(crate) enum Step<T> {
    /// Nothing usable yet: wait for more bytes.
    NeedMore,
    Got(T),
}

pub(crate) struct Wire {
    pub(crate) conn: Rc<dyn Connection>,
    pub(crate) parser: RefCell<Parser>,
    /// Responses (or requests) serialized but not yet sent: pipelined answers go out together.
    out: RefCell<Vec<u8>>,
    /// `100 Continue` is owed before the body is read (server side).
    pub(crate) continue_pending: Cell<bool>,
    /// How long a body read may wait for bytes.
    pub(crate) body_timeout: Cell<Option<Duration>>,
    /// A protocol error met while reading a body.
    pub(crate) body_error: RefCell<Option<Error>>,
    /// Counts the messages received: a body reader reads only the message it came with.
    pub(crate) message: Cell<u64>,
    /// Counts the sends of pending output.
    pub(crate) flushes: Cell<u64>,
    /// Server side: the client asked to close after the last request, which was read whole,
    /// so it sends nothing more (RFC 9112 section 9.6): the close needs no lingering.
    pub(crate) client_done: Cell<bool>,
    /// The last parse used up the receive buffer, and no wait for bytes came since: a parse
    /// now would find nothing new (unless bytes came during a switch in between).
    pub(crate) drained: Cell<bool>,
    /// The read timeout last set on the connection (`None`: not known).
    read_timeout: Cell<Option<Option<Duration>>>,
    /// Bytes at the start of the connection's buffer that the parser used and the connection
    /// was not told of yet: pipelined messages are consumed in one call, once the parser has
    /// used everything or before a wait, rather than one call per message.
    used: Cell<usize>,
}

impl Wire {
    pub(crate) fn new(conn: Rc<dyn Connection>, parser: Parser) -> Wire {
        Wire {
            conn,
            parser: RefCell::new(parser),
            out: RefCell::new(Vec::new()),
            continue_pending: Cell::new(false),
            body_timeout: Cell::new(None),
            body_error: RefCell::new(None),
            message: Cell::new(0),
            flushes: Cell::new(0),
            client_done: Cell::new(false),
            drained: Cell::new(false),
            read_timeout: Cell::new(None),
            used: Cell::new(0),
        }
    }

    /// Appends to the pending output with `f` (never switches).
    pub(crate) fn with_out<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut out = self.out.borrow_mut();
        if out.capacity() == 0 {
            *out = SPARE_OUT.take();
        }
        f(&mut out)
    }

    pub(crate) fn out_len(&self) -> usize {
        self.out.borrow().len()
    }

    /// Sends the pending output.
    ///
    /// Switchpoint: blocks while the connection's send queue is full.
    pub(crate) fn flush(&self) -> io::Result<()> {
        if self.out.borrow().is_empty() {
            return Ok(());
        }
        // The buffer is taken out while sending: no borrow is held across the switch.
        self.flushes.set(self.flushes.get() + 1);
        let mut out = std::mem::take(&mut *self.out.borrow_mut());
        let sent = self.conn.send(&out);
        // No large buffer is kept.
        if out.capacity() <= KEEP_OUT {
            out.clear();
            SPARE_OUT.with_borrow_mut(|spare| {
                if spare.capacity() < out.capacity() {
                    *spare = out;
                }
            });
        }
        sent
    }

    /// Runs one parse step over the buffered bytes, consuming what the parser used; `f` maps
    /// the event (it must not switch).
    pub(crate) fn parse<T>(
        &self,
        max_data: usize,
        mut f: impl FnMut(Event<'_, Incoming>) -> T,
    ) -> Result<Step<T>, Error> {
        let skip = self.used.get();
        let mut step_over = |data: &[u8]| {
            let data = data.get(skip..).unwrap_or_default();
            let mut parser = self.parser.borrow_mut();
            parser
                .parse_as(data, max_data)
                .map(|(used, event)| match event {
                    Event::NeedMore => (used, data.len(), Step::NeedMore),
                    event => (used, data.len(), Step::Got(f(event))),
                })
        };
        // The buffer borrowed where the connection lends it (no `dyn FnMut` call), and the
        // borrow over before `consume`.
        let result = match self.conn.buffered() {
            Some(data) => step_over(&data),
            None => {
                let mut result = None;
                self.conn
                    .with_buffered(&mut |data| result = Some(step_over(data)));
                result.expect("with_buffered calls its function")
            }
        };
        let (used, len, step) = result?;
        self.advance(skip, used, len);
        Ok(step)
    }

    /// [`parse`](Self::parse) for the next request head: the head, `Got(None)` if the parser
    /// found something else. The usual case (a whole head, the parser between messages, the
    /// buffer lent) takes the parser's shortcut, `Parser::next_request_head`.
    #[inline(always)]
    pub(crate) fn parse_request_head(
        &self,
    ) -> Result<Step<Option<Box<RequestHead<Incoming>>>>, Error> {
        let skip = self.used.get();
        let shortcut = self.conn.buffered().and_then(|data| {
            let data = data.get(skip..).unwrap_or_default();
            let found = self.parser.borrow_mut().next_request_head(data)?;
            Some((found, data.len()))
        });
        match shortcut {
            Some((found, len)) => match found? {
                Some((used, head)) => {
                    self.advance(skip, used, len);
                    Ok(Step::Got(Some(head)))
                }
                None => {
                    self.advance(skip, len, len);
                    Ok(Step::NeedMore)
                }
            },
            None => self.parse(0, |event| match event {
                Event::Request(head) => Some(head),
                _ => None,
            }),
        }
    }

    /// After a parse step that used `used` of the `len` bytes past the `skip` used before:
    /// tells the connection, once the parser used all it had, of everything used.
    #[inline(always)]
    fn advance(&self, skip: usize, used: usize, len: usize) {
        let drained = used == len;
        self.drained.set(drained);
        if drained {
            self.used.set(0);
            if skip + used > 0 {
                self.conn.consume(skip + used);
            }
        } else {
            self.used.set(skip + used);
        }
    }

    /// Tells the connection of the bytes the parser used (before a wait, or before reading
    /// the connection's buffer other than through [`parse`](Self::parse)).
    pub(crate) fn settle(&self) {
        let used = self.used.replace(0);
        if used > 0 {
            self.conn.consume(used);
        }
    }

    /// Leaves the connection waiting for bytes without a fiber: `notify` is told when they
    /// come (see [`Connection::notify_when_filled`]). `false` when the connection does not
    /// support that, or bytes are there already: [`fill`](Self::fill) then.
    pub(crate) fn detach(&self, notify: Rc<dyn FillNotify>) -> bool {
        crate::encode::date_may_be_stale();
        self.settle();
        self.drained.set(false);
        self.conn.notify_when_filled(notify).is_ok()
    }

    /// Waits for more bytes for at most `timeout`: `Ok(false)` at end of stream.
    ///
    /// Switchpoint: blocks until bytes arrive.
    pub(crate) fn fill(&self, timeout: Option<Duration>) -> io::Result<bool> {
        crate::encode::date_may_be_stale();
        self.settle();
        self.drained.set(false);
        let timeout = timeout.map(|t| t.max(Duration::from_millis(1)));
        // Only the wire sets the connection's read timeout once it exists: unchanged (the
        // idle waits of a keep-alive connection), it is not set again.
        if self.read_timeout.get() != Some(timeout) {
            self.read_timeout.set(None);
            self.conn.set_read_timeout(timeout)?;
            self.read_timeout.set(Some(timeout));
        }
        self.conn.fill()
    }
}

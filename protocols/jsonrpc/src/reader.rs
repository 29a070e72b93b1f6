//! The reader fiber of a peer: splits the connection's bytes into JSON values and parses them
//! in place, in the connection's own buffer; routes responses to the calls waiting for them
//! and queues requests for the handler pool.

use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::error::RpcError;
use crate::message::{Id, Message, Response};
use crate::peer::Inner;
use crate::rules::{Incoming, Invalid, parse};
use crate::splitter::{SplitError, Splitter};
use crate::workers::{BatchReplies, Job};

/// How the reading ended.
enum End {
    /// The other end closed its side.
    Eof,
    /// The connection failed, or the fiber was cancelled.
    Error(io::Error),
    /// The bytes cannot be framed: answered with this error, then the connection closes.
    Violation(RpcError),
    /// Nothing came and nothing was in progress for the idle timeout.
    Idle,
}

/// The body of the reader fiber.
pub(crate) fn run(inner: &Rc<Inner>, mut splitter: Splitter) {
    match read(inner, &mut splitter) {
        End::Eof => {
            if splitter.in_message() {
                log::warn!("the JSON-RPC connection ended inside a message");
            }
            inner.stop_reading("the other end closed the connection");
        }
        End::Error(err) => inner.close(&format!("receiving failed: {err}")),
        End::Violation(error) => {
            log::warn!("JSON-RPC protocol violation, closing the connection: {error}");
            inner.send_response(&Response {
                version: inner.config.version,
                id: Id::Null,
                result: Err(error.clone()),
            });
            inner.stop_reading(&format!("protocol violation: {}", error.message));
        }
        End::Idle => {
            log::debug!("closing an idle JSON-RPC connection");
            inner.stop_reading("the connection was idle for longer than the idle timeout");
        }
    }
}

fn read(inner: &Rc<Inner>, splitter: &mut Splitter) -> End {
    // The bytes of a message split across reads (at most max_message_size of them).
    let mut partial = Vec::new();
    // A timeout is at least 1 ms (0 is refused); `Duration::MAX` is no limit (the stream's
    // read deadline and `fiber_core::timeout` saturate, see `fiber_core::deadline_after`).
    let bounded = |t: Duration| t.max(Duration::from_millis(1));
    let idle_timeout = inner.config.idle_timeout.map(bounded);
    let message_timeout = inner.config.message_timeout.map(bounded);
    // When the first byte of the message in progress arrived; `None` while no message is in
    // progress (the clock is read only when a read ends inside a message).
    let mut message_start: Option<Instant> = None;
    // The read timeout in force: the idle timeout, or what is left of it since the connection
    // was last busy (bytes read, or a job that ended while nothing was read).
    let mut read_timeout = None;
    // The last bytes read that were not whitespace between messages (which does not count as
    // activity: a peer sending a space now and then must not dodge the idle timeout), and
    // whether whitespace came after them.
    let mut last_read = Instant::now();
    let mut spaces_since = false;
    let quiet_for = |last_read: Instant| {
        let since_read = last_read.elapsed();
        match inner.workers.last_done() {
            Some(done) => since_read.min(done.elapsed()),
            None => since_read,
        }
    };
    loop {
        // A fill's timeout counts from its start; only a job that ended after the last read,
        // or whitespace read since, makes the quiet time start earlier than that.
        let wanted = idle_timeout.map(|idle| {
            let quiet_since = match inner.workers.last_done() {
                Some(done) if done > last_read => Some(done),
                _ => spaces_since.then_some(last_read),
            };
            quiet_since.map_or(idle, |since| bounded(idle.saturating_sub(since.elapsed())))
        });
        if wanted != read_timeout {
            if let Err(err) = inner.stream.connection().set_read_timeout(wanted) {
                return End::Error(err);
            }
            read_timeout = wanted;
        }
        // The reader answers invalid messages itself: it too stops while the outbox is full,
        // so a peer that sends garbage and never reads cannot grow it without bound.
        if let Err(err) = inner
            .wait_for_job_room()
            .and_then(|()| inner.wait_for_outbox_room())
        {
            return End::Error(err.into());
        }
        // While a message is in progress, the fill may take only what is left of its time: a
        // timeout scope rather than the read timeout, so that it also bounds a fill that waits
        // for the rest of a TLS record whose bytes trickle in (each of which would restart a
        // read timeout).
        let filled = match (message_start, message_timeout) {
            (Some(start), Some(limit)) => {
                let left = limit.saturating_sub(start.elapsed());
                match fiber_core::timeout(left, || inner.stream.fill()) {
                    Ok(filled) => filled,
                    Err(fiber_core::Error::TimedOut) => {
                        return End::Violation(RpcError::message_timeout(limit));
                    }
                    Err(err) => return End::Error(err.into()),
                }
            }
            _ => inner.stream.fill(),
        };
        match filled {
            Ok(true) => {
                if idle_timeout.is_some() {
                    let spaces = !splitter.in_message()
                        && inner
                            .stream
                            .with_buffered(|data| data.iter().all(is_json_space));
                    if spaces {
                        spaces_since = true;
                    } else {
                        last_read = Instant::now();
                        spaces_since = false;
                    }
                }
            }
            Ok(false) => return End::Eof,
            Err(err) if err.kind() == io::ErrorKind::TimedOut && read_timeout.is_some() => {
                // Idle only if the last job also ended a whole timeout ago: one that ended
                // just now, with nothing read meanwhile, kept the connection busy until now.
                let quiet = idle_timeout.is_some_and(|idle| quiet_for(last_read) >= idle);
                if quiet && inner.calls.len() == 0 && inner.workers.is_idle() {
                    return End::Idle;
                }
                continue;
            }
            Err(err) => return End::Error(err),
        }
        let room = inner.job_room();
        let (used, split) = inner
            .stream
            .with_buffered(|data| split(inner, splitter, &mut partial, data, room));
        inner.stream.consume(used);
        match split {
            Split::Violation(error) => return End::Violation(error),
            // A message is in progress: its clock goes on, or starts if it is a new one.
            Split::Started if message_timeout.is_some() && splitter.in_message() => {
                message_start = Some(Instant::now())
            }
            Split::Continued if splitter.in_message() => match (message_start, message_timeout) {
                // Bytes that keep coming faster than the read timeout do not extend it.
                (Some(start), Some(limit)) if start.elapsed() >= limit => {
                    return End::Violation(RpcError::message_timeout(limit));
                }
                (Some(_), _) => {}
                (None, _) => message_start = Some(Instant::now()),
            },
            _ => message_start = None,
        }
    }
}

/// JSON's whitespace (RFC 8259): what may come between messages.
fn is_json_space(byte: &u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// What [`split`] left behind.
enum Split {
    /// No message in progress was continued: any bytes of a message left over started with
    /// this read (or what is left is still in the connection's buffer).
    Started,
    /// The message in progress before this read is still in progress.
    Continued,
    /// The bytes cannot be framed: answer with this error and close.
    Violation(RpcError),
}

/// Dispatches the whole messages in `data`, until `room` requests were queued or the outbox
/// is full (the rest stays in the connection's buffer, so reading pauses); keeps an
/// incomplete tail in `partial`. Returns how many bytes of `data` it took and whether a
/// message in progress was continued (or a framing violation). Never switches (it runs on the
/// connection's buffer in place).
fn split(
    inner: &Rc<Inner>,
    splitter: &mut Splitter,
    partial: &mut Vec<u8>,
    data: &[u8],
    room: usize,
) -> (usize, Split) {
    let (mut used, mut jobs) = (0, 0);
    if !partial.is_empty() {
        let old = partial.len();
        partial.extend_from_slice(data);
        match splitter.split(partial) {
            Ok(Some((value, end))) => {
                jobs += dispatch(inner, &partial[value]);
                partial.clear();
                used = end - old;
            }
            Ok(None) => return (data.len(), Split::Continued),
            Err(err) => return (data.len(), Split::Violation(violation(err))),
        }
    }
    // Stops at a full outbox too: answers to invalid messages are written by the reader.
    while used < data.len() && jobs < room && !inner.outbox.is_full() {
        let rest = &data[used..];
        match splitter.split(rest) {
            Ok(Some((value, end))) => {
                jobs += dispatch(inner, &rest[value]);
                used += end;
            }
            Ok(None) => {
                partial.extend_from_slice(rest);
                return (data.len(), Split::Started);
            }
            Err(err) => return (data.len(), Split::Violation(violation(err))),
        }
    }
    (used, Split::Started)
}

fn violation(err: SplitError) -> RpcError {
    match err {
        SplitError::TooLarge(max) => RpcError::message_too_large(max),
        other => RpcError::parse_error(other),
    }
}

/// Handles one framed JSON value; returns how many requests it queued.
fn dispatch(inner: &Rc<Inner>, bytes: &[u8]) -> usize {
    match parse(bytes) {
        // The value was framed, so the stream is still in step: answer and go on.
        Err(error) => {
            inner.send_response(&Response {
                version: inner.config.version,
                id: Id::Null,
                result: Err(error),
            });
            0
        }
        Ok(Incoming::Single(Ok(Message::Request(request)))) => {
            inner.push_job(Job {
                request,
                batch: None,
            });
            1
        }
        Ok(Incoming::Single(Ok(Message::Response(response)))) => {
            inner.calls.route_response(response);
            0
        }
        Ok(Incoming::Single(Err(invalid))) => {
            match invalid.response() {
                Some(response) => inner.send_response(&response),
                None => invalid_response(inner, invalid),
            }
            0
        }
        Ok(Incoming::Batch(entries)) => dispatch_batch(inner, entries),
    }
}

/// Routes a batch's responses to this side's calls, and runs its requests (answered together
/// in one batch) unless more than `max_batch` entries would need an answer: then the batch
/// gets one `-32600` instead. A batch of responses answers this side's own batch, whatever
/// its size, and is never answered.
fn dispatch_batch(inner: &Rc<Inner>, entries: Vec<Result<Message, Invalid>>) -> usize {
    let (mut requests, mut responses) = (Vec::new(), Vec::new());
    for entry in entries {
        match entry {
            Ok(Message::Request(request)) => requests.push(request),
            Ok(Message::Response(response)) => inner.calls.route_response(response),
            Err(invalid) => match invalid.response() {
                Some(response) => responses.push(response),
                None => invalid_response(inner, invalid),
            },
        }
    }
    let answered = requests.len() + responses.len();
    if answered > inner.config.max_batch {
        // Refused whole (batches are 2.0 only); the stream is still in step.
        inner.send_response(&Response {
            version: crate::message::Version::V2,
            id: Id::Null,
            result: Err(RpcError::invalid_request(format!(
                "a batch of {answered} entries to answer is over the limit of {}",
                inner.config.max_batch
            ))),
        });
        return 0;
    }
    if requests.is_empty() {
        inner.send_batch(&responses);
        return 0;
    }
    let (n, batch) = (requests.len(), BatchReplies::new(requests.len(), responses));
    for request in requests {
        inner.push_job(Job {
            request,
            batch: Some(batch.clone()),
        });
    }
    n
}

/// An invalid response fails the call it answers, if any; it is never answered.
fn invalid_response(inner: &Inner, invalid: Invalid) {
    let why = invalid
        .error
        .data
        .as_ref()
        .and_then(|d| d.as_str())
        .unwrap_or("invalid response")
        .to_owned();
    if invalid.id == Id::Null {
        log::warn!("ignoring an invalid JSON-RPC response: {why}");
    } else {
        inner
            .calls
            .answer(&invalid.id, Err(crate::error::Error::InvalidResponse(why)));
    }
}

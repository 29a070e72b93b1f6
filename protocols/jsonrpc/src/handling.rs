//! Running the handler on received requests: the jobs of a peer's handler pool, and sending
//! their answers (alone, or as the array of a batch).

use std::io;
use std::rc::Rc;

use fiber_core::{Builder, JoinHandle};

use crate::error::RpcError;
use crate::message::Response;
use crate::peer::{Inner, Peer, State};
use crate::workers::Job;

impl Inner {
    /// Queues a request for the handler pool.
    pub(crate) fn push_job(self: &Rc<Inner>, job: Job) {
        let spawn = || self.spawn_worker();
        self.workers.push(job, &spawn);
    }

    fn spawn_worker(self: &Rc<Inner>) -> io::Result<JoinHandle<()>> {
        let inner = self.clone();
        Builder::new()
            .name("jsonrpc handler")
            .spawn(move || inner.work())
    }

    /// The body of a handler fiber.
    fn work(self: &Rc<Inner>) {
        let spawn = || self.spawn_worker();
        let peer = Peer::borrowed(self.clone());
        let run = |job: Job| self.run_job(&peer, job);
        let taken = || {
            if let Some(reader) = self.reader_waiting.take() {
                reader.unpark();
            }
        };
        let stopped = || self.state.get() != State::Open;
        self.workers.work(&spawn, &run, &taken, &stopped);
        // The last answers of a draining connection may be out: let the writer check.
        self.outbox.wake_writer();
    }

    /// Runs the handler on one request and sends (or records, in a batch) its answer.
    fn run_job(&self, peer: &Peer, job: Job) {
        let Job { request, batch } = job;
        let (id, version) = (request.id.clone(), request.version);
        let handler = &self.handler;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handler.handle(peer, request)
        }));
        let result = outcome.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the handler panicked".into());
            Err(RpcError::internal_error(what))
        });
        let response = id.map(|id| Response {
            version,
            id,
            result,
        });
        match batch {
            Some(batch) => {
                if let Some(responses) = batch.complete(response) {
                    self.send_batch(&responses);
                }
            }
            None => {
                if let Some(response) = response {
                    let _ = self
                        .outbox
                        .wait_for_room(|| self.state.get() != State::Closed);
                    self.send_response(&response);
                }
            }
        }
        if self.state.get() == State::Draining {
            self.outbox.wake_writer();
        }
    }

    /// Queues a response. Never switches: handlers wait for room in the outbox first, the
    /// reader (answering invalid requests) never does.
    pub(crate) fn send_response(&self, response: &Response) {
        if self.state.get() == State::Closed {
            return;
        }
        self.outbox.push(|out| response.write_to(out));
    }

    /// Queues the responses of a batch as one array (nothing when there are none).
    pub(crate) fn send_batch(&self, responses: &[Response]) {
        if responses.is_empty() || self.state.get() == State::Closed {
            return;
        }
        self.outbox.push(|out| {
            out.push(b'[');
            for (i, response) in responses.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                response.write_to(out);
            }
            out.push(b']');
        });
    }
}

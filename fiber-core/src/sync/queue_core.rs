//! The machinery under [`Queue`](crate::Queue) and the [`channel`](crate::channel): a buffer
//! with waiting getters and putters, direct hand-over, sizes, task accounting and disconnection.
//!
//! Invariants (under the state's lock): getters wait only while the buffer is empty and
//! putters only while their item does not fit, so the two never wait at the same time; a getter
//! served while it waited finds its item (or `None`: disconnected) in `handed`, and a putter
//! refused because the receivers are gone finds its item in `refused`.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::error::Error;
use crate::sync::waiter::{self, SpinLock, WaitQueue, Waker, Wakeups};

/// An item in the buffer, with its size.
pub(crate) type Entry<T> = (T, usize);

/// How items come out: FIFO, LIFO or by priority.
pub(crate) struct OrderFns<T> {
    pub(crate) push: fn(&mut VecDeque<Entry<T>>, Entry<T>),
    pub(crate) pop: fn(&mut VecDeque<Entry<T>>) -> Option<Entry<T>>,
    /// Puts an item back so that it comes out next.
    pub(crate) unpop: fn(&mut VecDeque<Entry<T>>, Entry<T>),
}

pub(crate) type SizeFn<T> = Box<dyn Fn(&T) -> usize + Send + Sync>;

pub(crate) enum TryPutError<T> {
    Full(T),
    Closed(T),
}

pub(crate) enum PutFail<T> {
    Closed(T),
    Wait(T, Error),
}

pub(crate) enum TryGetError {
    Empty,
    Closed,
}

pub(crate) enum GetFail {
    Closed,
    Wait(Error),
}

/// Wakes the getter an item was handed to, if any (after unlocking).
#[inline(always)]
fn wake(getter: Option<Waker>) {
    if let Some(getter) = getter {
        getter.wake();
    }
}

/// The putters a get must wake after unlocking: usually none, one for a rendezvous.
enum PutterWakes {
    None,
    One(Waker),
    Many(Wakeups),
}

impl PutterWakes {
    #[inline(always)]
    fn wake(self) {
        match self {
            PutterWakes::None => {}
            PutterWakes::One(waker) => waker.wake(),
            PutterWakes::Many(wakeups) => wakeups.wake(),
        }
    }
}

pub(crate) struct Core<T> {
    state: SpinLock<State<T>>,
    /// `None`: unbounded; `Some(0)`: every put waits for a getter (rendezvous).
    capacity: Option<usize>,
    order: OrderFns<T>,
    size_of: Option<SizeFn<T>>,
    /// Set once the receivers are gone, so that a served putter need not lock to learn it.
    receivers_gone: AtomicBool,
}

struct State<T> {
    buf: VecDeque<Entry<T>>,
    qsize: usize,
    getters: WaitQueue,
    putters: WaitQueue<Entry<T>>,
    handed: Vec<(u64, Option<Entry<T>>)>,
    refused: Vec<(u64, T)>,
    unfinished: usize,
    joiners: WaitQueue,
    senders_gone: bool,
    receivers_gone: bool,
}

impl<T> State<T> {
    fn fits(&self, capacity: Option<usize>, size: usize) -> bool {
        match capacity {
            None => true,
            Some(0) => false,
            // An item bigger than the whole queue still goes into an empty one.
            Some(max) => self.qsize + size <= max || self.qsize == 0,
        }
    }

    fn take_handed(&mut self, id: u64) -> Option<Option<Entry<T>>> {
        let at = self.handed.iter().position(|(i, _)| *i == id)?;
        Some(self.handed.swap_remove(at).1)
    }
}

impl<T> Core<T> {
    pub(crate) fn new(
        capacity: Option<usize>,
        order: OrderFns<T>,
        size_of: Option<SizeFn<T>>,
    ) -> Core<T> {
        Core {
            state: SpinLock::new(State {
                buf: VecDeque::new(),
                qsize: 0,
                getters: WaitQueue::new(),
                putters: WaitQueue::new(),
                handed: Vec::new(),
                refused: Vec::new(),
                unfinished: 0,
                joiners: WaitQueue::new(),
                senders_gone: false,
                receivers_gone: false,
            }),
            capacity,
            order,
            size_of,
            receivers_gone: AtomicBool::new(false),
        }
    }

    fn size(&self, item: &T) -> usize {
        self.size_of.as_ref().map_or(1, |f| f(item))
    }

    pub(crate) fn try_put(&self, item: T) -> Result<(), TryPutError<T>> {
        let size = self.size(&item);
        let mut state = self.state.lock();
        match self.offer(&mut state, item, size) {
            Ok(getter) => {
                drop(state);
                wake(getter);
                Ok(())
            }
            Err(item) if state.receivers_gone => Err(TryPutError::Closed(item)),
            Err(item) => Err(TryPutError::Full(item)),
        }
    }

    /// Hands `item` to a waiting getter (returned, to be woken after unlocking) or buffers it,
    /// if it may go in now.
    #[inline]
    fn offer(&self, state: &mut State<T>, item: T, size: usize) -> Result<Option<Waker>, T> {
        if state.receivers_gone {
            return Err(item);
        }
        if let Some(getter) = state.getters.pop() {
            state.unfinished += 1;
            state.handed.push((getter.id, Some((item, size))));
            return Ok(Some(getter.waker));
        }
        if state.putters.is_empty() && state.fits(self.capacity, size) {
            (self.order.push)(&mut state.buf, (item, size));
            state.qsize += size;
            state.unfinished += 1;
            return Ok(None);
        }
        Err(item)
    }

    #[track_caller]
    pub(crate) fn put(
        &self,
        item: T,
        deadline: Option<Instant>,
        what: &'static str,
    ) -> Result<(), PutFail<T>> {
        let size = self.size(&item);
        let mut state = self.state.lock();
        let item = match self.offer(&mut state, item, size) {
            Ok(getter) => {
                drop(state);
                wake(getter);
                return Ok(());
            }
            Err(item) if state.receivers_gone => return Err(PutFail::Closed(item)),
            Err(item) => item,
        };
        let (id, parker) = state.putters.push((item, size));
        drop(state);
        let back = Cell::new(None);
        let waited = waiter::block(
            parker,
            what,
            deadline,
            || match self.state.lock().putters.remove(id) {
                Some((item, _)) => {
                    back.set(Some(item));
                    true
                }
                None => false,
            },
            || self.state.lock().refused.retain(|(i, _)| *i != id),
        );
        match waited {
            Err(err) => Err(PutFail::Wait(
                back.take().expect("a withdrawn putter has its item back"),
                err,
            )),
            Ok(()) if self.receivers_gone.load(Ordering::Acquire) => {
                let mut state = self.state.lock();
                match state.refused.iter().position(|(i, _)| *i == id) {
                    Some(at) => Err(PutFail::Closed(state.refused.swap_remove(at).1)),
                    None => Ok(()),
                }
            }
            Ok(()) => Ok(()),
        }
    }

    pub(crate) fn try_get(&self) -> Result<T, TryGetError> {
        let mut state = self.state.lock();
        match self.take(&mut state) {
            Some((item, wakeups)) => {
                drop(state);
                wakeups.wake();
                Ok(item)
            }
            None if state.senders_gone => Err(TryGetError::Closed),
            None => Err(TryGetError::Empty),
        }
    }

    /// Takes the next item, from the buffer or from a waiting putter, if there is one; with
    /// the putters to wake after unlocking.
    #[inline]
    fn take(&self, state: &mut State<T>) -> Option<(T, PutterWakes)> {
        if !state.buf.is_empty()
            && let Some((item, size)) = (self.order.pop)(&mut state.buf)
        {
            state.qsize -= size;
            if state.putters.is_empty() {
                return Some((item, PutterWakes::None));
            }
            let mut wakeups = Wakeups::new();
            self.admit(state, &mut wakeups);
            return Some((item, PutterWakes::Many(wakeups)));
        }
        // Only a rendezvous channel has putters waiting while the buffer is empty.
        let putter = state.putters.pop()?;
        state.unfinished += 1;
        Some((putter.data.0, PutterWakes::One(putter.waker)))
    }

    /// Moves the items of waiting putters in, in FIFO order, while they fit.
    fn admit(&self, state: &mut State<T>, wakeups: &mut Wakeups) {
        loop {
            if state.putters.drop_if_gone(0) {
                continue;
            }
            let Some(next) = state.putters.front() else {
                break;
            };
            if !state.fits(self.capacity, next.data.1) {
                break;
            }
            let Some(putter) = state.putters.take(0) else {
                break;
            };
            let (item, size) = putter.data;
            (self.order.push)(&mut state.buf, (item, size));
            state.qsize += size;
            state.unfinished += 1;
            wakeups.push(putter.waker);
        }
    }

    #[track_caller]
    pub(crate) fn get(&self, deadline: Option<Instant>, what: &'static str) -> Result<T, GetFail> {
        let mut state = self.state.lock();
        if let Some((item, wakeups)) = self.take(&mut state) {
            drop(state);
            wakeups.wake();
            return Ok(item);
        }
        if state.senders_gone {
            return Err(GetFail::Closed);
        }
        let (id, parker) = state.getters.push(());
        drop(state);
        let waited = waiter::block(
            parker,
            what,
            deadline,
            || self.state.lock().getters.remove(id).is_some(),
            || self.give_back(id),
        );
        match waited {
            Err(err) => Err(GetFail::Wait(err)),
            Ok(()) => match self.state.lock().take_handed(id) {
                Some(Some((item, _))) => Ok(item),
                _ => Err(GetFail::Closed),
            },
        }
    }

    /// Puts back the item handed to a getter that is being unwound.
    fn give_back(&self, id: u64) {
        let mut state = self.state.lock();
        let Some(Some((item, size))) = state.take_handed(id) else {
            return;
        };
        if let Some(getter) = state.getters.pop() {
            state.handed.push((getter.id, Some((item, size))));
            drop(state);
            getter.waker.wake();
        } else {
            (self.order.unpop)(&mut state.buf, (item, size));
            state.qsize += size;
        }
    }

    pub(crate) fn task_done(&self) {
        let mut state = self.state.lock();
        assert!(
            state.unfinished > 0,
            "Queue::task_done: task_done() called too many times"
        );
        state.unfinished -= 1;
        let mut wakeups = Wakeups::new();
        if state.unfinished == 0 {
            for joiner in state.joiners.drain() {
                wakeups.push(joiner.waker);
            }
        }
        drop(state);
        wakeups.wake();
    }

    #[track_caller]
    pub(crate) fn join(&self, deadline: Option<Instant>) -> crate::Result<()> {
        let mut state = self.state.lock();
        if state.unfinished == 0 {
            return Ok(());
        }
        let (id, parker) = state.joiners.push(());
        drop(state);
        waiter::block(
            parker,
            "Queue::join",
            deadline,
            || self.state.lock().joiners.remove(id).is_some(),
            || {},
        )
    }

    /// The last sender is gone: waiting getters are told, and later gets fail once the buffer
    /// is drained.
    pub(crate) fn close_senders(&self) {
        let mut state = self.state.lock();
        state.senders_gone = true;
        let served: Vec<_> = state.getters.drain().collect();
        let mut wakeups = Wakeups::new();
        for getter in served {
            state.handed.push((getter.id, None));
            wakeups.push(getter.waker);
        }
        drop(state);
        wakeups.wake();
    }

    /// The last receiver is gone: waiting putters get their items back, later puts fail, and
    /// the buffered items are dropped.
    pub(crate) fn close_receivers(&self) {
        let mut state = self.state.lock();
        state.receivers_gone = true;
        self.receivers_gone.store(true, Ordering::Release);
        let refused: Vec<_> = state.putters.drain().collect();
        let mut wakeups = Wakeups::new();
        for putter in refused {
            state.refused.push((putter.id, putter.data.0));
            wakeups.push(putter.waker);
        }
        let dropped = std::mem::take(&mut state.buf);
        state.qsize = 0;
        drop(state);
        wakeups.wake();
        // Outside the lock: an item's destructor may use the channel.
        drop(dropped);
    }

    pub(crate) fn qsize(&self) -> usize {
        self.state.lock().qsize
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().buf.len()
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    pub(crate) fn unfinished(&self) -> usize {
        self.state.lock().unfinished
    }

    /// Waiting getters, putters and joiners (for tests: nothing is left behind).
    pub(crate) fn waiter_counts(&self) -> (usize, usize, usize) {
        let state = self.state.lock();
        (
            state.getters.len(),
            state.putters.len(),
            state.joiners.len(),
        )
    }
}

/// FIFO order.
pub(crate) fn fifo<T>() -> OrderFns<T> {
    OrderFns {
        push: |buf, entry| buf.push_back(entry),
        pop: VecDeque::pop_front,
        unpop: VecDeque::push_front,
    }
}

/// LIFO order.
pub(crate) fn lifo<T>() -> OrderFns<T> {
    OrderFns {
        push: |buf, entry| buf.push_back(entry),
        pop: VecDeque::pop_back,
        unpop: |buf, entry| buf.push_back(entry),
    }
}

/// Lowest item first: a binary min-heap laid out in the buffer.
pub(crate) fn priority<T: Ord>() -> OrderFns<T> {
    OrderFns {
        push: heap_push,
        pop: heap_pop,
        unpop: heap_push,
    }
}

fn heap_push<T: Ord>(heap: &mut VecDeque<Entry<T>>, entry: Entry<T>) {
    heap.push_back(entry);
    let mut at = heap.len() - 1;
    while at > 0 {
        let parent = (at - 1) / 2;
        if heap[at].0 >= heap[parent].0 {
            break;
        }
        heap.swap(at, parent);
        at = parent;
    }
}

fn heap_pop<T: Ord>(heap: &mut VecDeque<Entry<T>>) -> Option<Entry<T>> {
    let last = heap.len().checked_sub(1)?;
    heap.swap(0, last);
    let top = heap.pop_back();
    let mut at = 0;
    loop {
        let (left, right) = (2 * at + 1, 2 * at + 2);
        let mut least = at;
        if left < heap.len() && heap[left].0 < heap[least].0 {
            least = left;
        }
        if right < heap.len() && heap[right].0 < heap[least].0 {
            least = right;
        }
        if least == at {
            return top;
        }
        heap.swap(at, least);
        at = least;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heap_pops_in_ascending_order() {
        let order = priority::<u32>();
        let mut heap = VecDeque::new();
        let mut seed = 12345u32;
        let mut values = Vec::new();
        for _ in 0..200 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            values.push(seed % 1000);
            (order.push)(&mut heap, (seed % 1000, 1));
        }
        values.sort_unstable();
        let popped: Vec<u32> = std::iter::from_fn(|| (order.pop)(&mut heap).map(|e| e.0)).collect();
        assert_eq!(popped, values);
    }
}

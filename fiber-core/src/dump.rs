//! The fiber dump: every live fiber of the Hub, its state and what it waits on.

use std::fmt;

use crate::fiber::FiberState;
use crate::hub::Hub;

/// One line of the fiber dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FiberInfo {
    /// The fiber's id (0 for the root fiber).
    pub id: u64,
    /// The fiber's name.
    pub name: String,
    /// Its state.
    pub state: FiberState,
    /// The switchpoint it is blocked in, if it is waiting (e.g. `"sleep"`).
    pub waiting_on: Option<&'static str>,
    /// Whether it has been cancelled.
    pub cancelled: bool,
}

impl fmt::Display for FiberInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {:?} {:?}", self.id, self.name, self.state)?;
        if let Some(what) = self.waiting_on {
            write!(f, " in {what}")?;
        }
        if self.cancelled {
            f.write_str(" (cancelled)")?;
        }
        Ok(())
    }
}

/// Lists every live fiber of the current thread's Hub, root first, then by id.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// fiber_core::run(|| {
///     let napper = fiber_core::Builder::new()
///         .name("napper")
///         .spawn(|| fiber_core::sleep(Duration::from_secs(60)))
///         .unwrap();
///     fiber_core::yield_now().unwrap(); // let it start and block
///     for info in fiber_core::dump() {
///         println!("{info}"); // #0 "Root" Running, #1 "napper" Waiting in sleep
///     }
///     assert_eq!(fiber_core::dump()[1].waiting_on, Some("sleep"));
///     napper.cancel();
/// });
/// ```
pub fn dump() -> Vec<FiberInfo> {
    Hub::current()
        .all_fibers()
        .into_iter()
        .map(|f| FiberInfo {
            id: f.id,
            name: f.name.to_string(),
            state: f.state.get(),
            waiting_on: Some(f.waiting_on.get()).filter(|w| !w.is_empty()),
            cancelled: f.cancelled.get(),
        })
        .collect()
}

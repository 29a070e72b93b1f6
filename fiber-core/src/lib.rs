//! Fibers, the Hub, switchpoints and sync primitives (work in progress: see issue 3).

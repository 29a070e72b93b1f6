//! Helpers for the D-Bus end-to-end tests: gruvi-dbus' own test helpers (a clean Hub per
//! test, a private `dbus-daemon` killed by pid when dropped), plus running the real tools
//! (dbus-send, busctl, gdbus, python3) from a fiber with a time limit.
#![allow(dead_code)]

use std::process::{Command, Stdio};

#[path = "../../protocols/dbus/tests/support/mod.rs"]
mod shared;

pub use shared::*;

/// What a tool printed, and whether it succeeded.
#[derive(Debug)]
pub struct ToolOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program` with `args` on a pool thread (the Hub keeps serving meanwhile), killed by
/// coreutils' `timeout` after 30 s so that a hanging tool fails the test instead of hanging
/// it.
pub fn run_tool(program: &str, args: &[String]) -> ToolOutput {
    let (program, args) = (program.to_owned(), args.to_vec());
    let output = gruvi::fiber::blocking(move || {
        Command::new("timeout")
            .args(["-k", "5", "30"])
            .arg(&program)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("cannot run {program}: {err}"))
    })
    .expect("the blocking pool");
    ToolOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// [`run_tool`] with string-slice arguments.
pub fn tool(program: &str, args: &[&str]) -> ToolOutput {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    run_tool(program, &args)
}

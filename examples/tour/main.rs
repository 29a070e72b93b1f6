//! The tour: a short demo of every layer built so far, each step printing what it did.
//!
//! Run it with `ci/tour` (or `cargo run --release --example tour`).

mod dbus;
mod fibers;
mod http;
mod jsonrpc;
mod streams;
mod sync;
mod tls;
mod uv;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("Gruvi for Rust: the tour");
    println!();
    uv::tour()?;
    println!();
    fibers::tour()?;
    println!();
    sync::tour()?;
    println!();
    streams::tour()?;
    println!();
    tls::tour()?;
    println!();
    http::tour()?;
    println!();
    jsonrpc::tour()?;
    println!();
    dbus::tour()?;
    println!();
    println!("tour complete");
    Ok(())
}

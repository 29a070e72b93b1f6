//! The tour: a short demo of every layer built so far, each step printing what it did.
//!
//! Run it with `ci/tour` (or `cargo run --release --example tour`).

mod fibers;
mod http;
mod streams;
mod sync;
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
    http::tour()?;
    println!();
    println!("tour complete");
    Ok(())
}

//! What TLS costs JSON-RPC: calls per second over loopback TCP, plain and with TLS, with the
//! server and the client on one thread (one core does both ends, so the figure is the
//! cost of a whole call: client and server, encryption and decryption on each side).
//!
//! ```text
//! cargo run --release --example jsonrpc_tls_bench [-- --runs N --secs S --callers C]
//! ```
//!
//! For each transport, `C` fibers (default 100) call `echo` (`[1, "x"]`) back to back over one
//! connection for `S` seconds (default 2); the median of `N` runs (default 5) is printed with
//! every run. The certificate (P-256, self-signed) is made on the spot.

use std::cell::Cell;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gruvi::fiber;
use gruvi::jsonrpc::{Config, Methods, Params, Peer, Server, connect, connect_tls};
use gruvi::tls::{CertifiedKey, ClientConfig, ServerConfig};
use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509Builder, X509NameBuilder};

/// A self-signed certificate for 127.0.0.1 and its key, as PEM.
fn certificate() -> Result<(Vec<u8>, Vec<u8>), openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "127.0.0.1")?;
    let name = name.build();
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    b.set_not_before(&*Asn1Time::days_from_now(0)?)?;
    b.set_not_after(&*Asn1Time::days_from_now(1)?)?;
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))?;
    b.append_extension(san)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok((b.build().to_pem()?, key.private_key_to_pem_pkcs8()?))
}

/// Calls per second of `callers` fibers calling `echo` on `peer` for `secs`.
fn measure(peer: &Peer, callers: usize, secs: Duration) -> f64 {
    let done = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let fibers: Vec<_> = (0..callers)
        .map(|_| {
            let (peer, done) = (peer.clone(), done.clone());
            fiber::spawn(move || {
                while start.elapsed() < secs {
                    peer.call::<serde_json::Value>("echo", (1, "x"))
                        .expect("an echo");
                    done.set(done.get() + 1);
                }
            })
        })
        .collect();
    for f in fibers {
        f.join().expect("a caller");
    }
    done.get() as f64 / start.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn run(runs: usize, secs: Duration, callers: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (cert, key) = certificate()?;
    let methods = || {
        let mut m = Methods::new();
        m.add_raw("echo", |_, params: Params| Ok(params.into_value()));
        m
    };
    let plain = Server::new(methods(), Config::default());
    let tls_config = ServerConfig::builder(CertifiedKey::from_pem(&cert, &key)?).build()?;
    let tls = Server::with_tls(methods(), Config::default(), tls_config);
    let any_port = "127.0.0.1:0".parse()?;
    plain.listen(&any_port)?;
    tls.listen(&any_port)?;
    let client_tls = ClientConfig::builder()
        .use_system_roots(false)
        .add_ca_pem(&cert)
        .build()?;
    let tcp_peer = connect(&plain.addresses()[0], Methods::new(), Config::default())?;
    let tls_peer = connect_tls(
        &tls.addresses()[0],
        &client_tls,
        Methods::new(),
        Config::default(),
    )?;
    for (name, peer) in [("tcp", &tcp_peer), ("tls", &tls_peer)] {
        let all: Vec<f64> = (0..runs).map(|_| measure(peer, callers, secs)).collect();
        let shown: Vec<String> = all.iter().map(|x| format!("{x:.0}")).collect();
        println!(
            "{name}: {callers} callers, {:.0} calls/s (median of {runs}: {})",
            median(all.clone()),
            shown.join(" ")
        );
    }
    tcp_peer.close();
    tls_peer.close();
    plain.close()?;
    tls.close()?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value_of = |flag: &str, default: u64| -> Result<u64, String> {
        match args.iter().position(|a| a == flag) {
            None => Ok(default),
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .filter(|&n| n > 0)
                .ok_or(format!("{flag} needs a positive number")),
        }
    };
    let parsed = (|| {
        Ok::<_, String>((
            value_of("--runs", 5)?,
            value_of("--secs", 2)?,
            value_of("--callers", 100)?,
        ))
    })();
    let (runs, secs, callers) = match parsed {
        Ok(values) => values,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match fiber::run(|| run(runs as usize, Duration::from_secs(secs), callers as usize)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("jsonrpc_tls_bench: {err}");
            ExitCode::FAILURE
        }
    }
}

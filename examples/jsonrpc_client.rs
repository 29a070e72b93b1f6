//! A JSON-RPC client: one call, its result or error printed.
//!
//! ```text
//! jsonrpc_client [--version 1|2] [--timeout SECONDS] [--tls] [--cacert FILE]
//!                [--tls-name NAME] ADDR METHOD [JSON_PARAMS]
//! ```
//!
//! `ADDR` is `host:port`, `tls://host:port` (as `--tls`) or a Unix socket path; `JSON_PARAMS` an array or an object (none by
//! default). Prints `result JSON` and exits 0, or `error JSON` (the error object) and exits 1;
//! other failures (connection, timeout) go to standard error with exit status 2. Notifications
//! from the server are printed as `notification METHOD PARAMS` lines as they come; calls of
//! `ping` from the server are answered with `"pong"`.
//!
//! With `--tls` (or a `tls://` address) the client speaks TLS and verifies the server's
//! certificate for the address's host (or `--tls-name`, which a Unix socket needs), trusting
//! the CA certificates of `--cacert` (PEM) if given, else the system's.

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use gruvi::fiber;
use gruvi::jsonrpc::{
    Config, Error, Peer, Request, RpcError, Value, connect, connect_tls, connect_tls_with_name,
};
use gruvi::stream::Address;
use gruvi::tls::ClientConfig;

const USAGE: &str = "usage: jsonrpc_client [--version 1|2] [--timeout SECONDS] [--tls] \
                     [--cacert FILE] [--tls-name NAME] ADDR METHOD [JSON_PARAMS]";

/// How to speak TLS, if at all.
struct Tls {
    cacert: Option<String>,
    name: Option<String>,
}

struct Options {
    config: Config,
    tls: Option<Tls>,
    addr: Address,
    method: String,
    params: Value,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut config = Config::default();
    let (mut tls, mut cacert, mut name) = (false, None, None);
    let mut positional = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--version" => config.version = value("--version")?.parse()?,
            "--timeout" => {
                let t = value("--timeout")?;
                let secs: f64 = t.parse().map_err(|e| format!("--timeout {t}: {e}"))?;
                let timeout =
                    Duration::try_from_secs_f64(secs).map_err(|e| format!("--timeout {t}: {e}"))?;
                config.call_timeout = Some(timeout);
            }
            "--tls" => tls = true,
            "--cacert" => cacert = Some(value("--cacert")?),
            "--tls-name" => name = Some(value("--tls-name")?),
            "-h" | "--help" => return Err(USAGE.into()),
            _ => positional.push(arg),
        }
    }
    let (addr, method, params) = match positional.as_slice() {
        [addr, method] => (addr, method, "null"),
        [addr, method, params] => (addr, method, params.as_str()),
        _ => return Err(USAGE.into()),
    };
    let addr = match addr.strip_prefix("tls://") {
        Some(rest) => {
            tls = true;
            rest
        }
        None => addr.as_str(),
    };
    let parsed: Address = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    if tls && name.is_none() && matches!(parsed, Address::Unix(_)) {
        return Err(format!(
            "TLS over a Unix socket needs --tls-name (the name to verify)\n{USAGE}"
        ));
    }
    if !tls && (cacert.is_some() || name.is_some()) {
        return Err(format!(
            "--cacert and --tls-name need --tls or a tls:// address\n{USAGE}"
        ));
    }
    Ok(Options {
        config,
        tls: tls.then_some(Tls { cacert, name }),
        addr: parsed,
        method: method.clone(),
        params: serde_json::from_str(params).map_err(|e| format!("JSON_PARAMS: {e}"))?,
    })
}

/// Answers the server's `ping` calls and prints its notifications.
fn handler(_peer: &Peer, request: Request) -> Result<Value, RpcError> {
    if request.is_notification() {
        let params = serde_json::to_string(&request.params).unwrap_or_default();
        println!("notification {} {params}", request.method);
        return Ok(Value::Null);
    }
    match request.method.as_str() {
        "ping" => Ok(Value::from("pong")),
        other => Err(RpcError::method_not_found(other)),
    }
}

/// Connects, over TLS if asked.
fn open(options: &Options) -> io::Result<Peer> {
    let config = options.config.clone();
    let Some(tls) = &options.tls else {
        return connect(&options.addr, handler, config);
    };
    let mut builder = ClientConfig::builder();
    if let Some(file) = &tls.cacert {
        builder = builder.use_system_roots(false).add_ca_file(file);
    }
    let client = builder.build()?;
    match &tls.name {
        Some(name) => connect_tls_with_name(&options.addr, name, &client, handler, config),
        None => connect_tls(&options.addr, &client, handler, config),
    }
}

fn run(options: Options) -> ExitCode {
    let peer = match open(&options) {
        Ok(peer) => peer,
        Err(err) => {
            eprintln!("jsonrpc_client: cannot connect to {}: {err}", options.addr);
            return ExitCode::from(2);
        }
    };
    let outcome = peer.call::<Value>(&options.method, &options.params);
    // A graceful end: over TLS the server gets close_notify, not a truncated stream.
    if let Err(err) = peer.shutdown() {
        eprintln!("jsonrpc_client: the connection did not end cleanly: {err}");
    }
    match outcome {
        Ok(result) => {
            println!("result {result}");
            ExitCode::SUCCESS
        }
        Err(Error::Rpc(error)) => {
            let json = serde_json::to_string(&error).unwrap_or_default();
            println!("error {json}");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("jsonrpc_client: {err}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(options) => fiber::run(|| run(options)),
        Err(msg) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
    }
}

//! A JSON-RPC 1.0/2.0 server: a peer per connection, all on one thread.
//!
//! ```text
//! jsonrpc_server [--listen ADDR]... [--version 1|2] [--max-connections N]
//!                [--max-message-size BYTES] [--tls-cert FILE --tls-key FILE]
//! ```
//!
//! `ADDR` is `host:port` (default `127.0.0.1:7100`; port 0 picks a free one) or a Unix socket
//! path. Both versions are always understood; `--version` (default 2) picks the version of what
//! the server sends first (the notifications of `notify_me`, the calls of `call_me`). Prints
//! `listening on ADDR` per address once it accepts connections; exits with status 0 on SIGINT
//! or SIGTERM. With `--tls-cert` (a PEM certificate chain, leaf first) and `--tls-key` (its
//! PEM private key) every connection speaks TLS (TLS 1.2 or later) on every address.
//!
//! Methods:
//!
//! | method | answer |
//! |---|---|
//! | `echo` | its params (null without) |
//! | `subtract` | `[minuend, subtrahend]` or `{"minuend": .., "subtrahend": ..}`: the difference |
//! | `sum` | the sum of its numbers |
//! | `get_data` | `["hello", 5]` |
//! | `notify_hello` | accepts a notification (answers a call with null) |
//! | `sleep` | `[ms]`: sleeps, answers `ms` |
//! | `fail` | error -32000 `"it failed"` with its params as data |
//! | `notify_me` | `[method, params]`: sends that notification, then answers `null` |
//! | `call_me` | `[method, params]`: calls that method on the client, answers its result |

use std::io;
use std::process::ExitCode;

use gruvi::fiber;
use gruvi::jsonrpc::{Config, Methods, Params, RpcError, Server, Value};
use gruvi::stream::Address;
use serde_json::json;

#[path = "support/serve.rs"]
mod serve;

use serve::ServerOptions;

const USAGE: &str = "usage: jsonrpc_server [--listen ADDR]... [--version 1|2] \
                     [--max-connections N] [--max-message-size BYTES] \
                     [--tls-cert FILE --tls-key FILE]";

struct Options {
    server: ServerOptions,
    config: Config,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        server: ServerOptions::new(Some(gruvi::jsonrpc::DEFAULT_MAX_CONNECTIONS)),
        config: Config::default(),
    };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--version" => options.config.version = value("--version")?.parse()?,
            "--max-message-size" => {
                let n = value("--max-message-size")?;
                let n = n
                    .parse()
                    .map_err(|e| format!("--max-message-size {n}: {e}"))?;
                if n == 0 {
                    return Err("--max-message-size must be at least 1".into());
                }
                options.config.max_message_size = n;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other if options.server.parse(other, &mut value)? => {}
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    options
        .server
        .finish(Address::Tcp("127.0.0.1".into(), 7100), USAGE)?;
    Ok(options)
}

/// `subtract` takes positional or named params, as in the 2.0 specification's examples.
fn subtract(params: Params) -> Result<f64, RpcError> {
    #[derive(serde::Deserialize)]
    struct Named {
        minuend: f64,
        subtrahend: f64,
    }
    let (a, b) = match params {
        Params::Object(_) => {
            let n: Named = params.parse()?;
            (n.minuend, n.subtrahend)
        }
        params => params.parse::<(f64, f64)>()?,
    };
    Ok(a - b)
}

/// A number as JSON: an integer when it is one.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

fn methods() -> Methods {
    let mut m = Methods::new();
    m.add_raw("echo", |_, params| Ok(params.into_value()));
    m.add_raw("subtract", |_, params| subtract(params).map(number));
    m.add("sum", |_, numbers: Vec<f64>| {
        Ok(number(numbers.iter().sum()))
    });
    m.add("get_data", |_, ()| Ok(json!(["hello", 5])));
    m.add_raw("notify_hello", |_, _| Ok(Value::Null));
    m.add("sleep", |_, (ms,): (u64,)| {
        fiber::sleep(std::time::Duration::from_millis(ms)).map_err(RpcError::internal_error)?;
        Ok(ms)
    });
    m.add_raw("fail", |_, params| {
        Err(RpcError::new(-32000, "it failed").with_data(params.into_value()))
    });
    m.add("notify_me", |peer, (method, params): (String, Value)| {
        peer.notify(&method, params)
            .map_err(|e| RpcError::new(-32000, e.to_string()))?;
        Ok(Value::Null)
    });
    m.add("call_me", |peer, (method, params): (String, Value)| {
        peer.call::<Value>(&method, params)
            .map_err(|e| RpcError::new(-32000, format!("calling {method}: {e}")))
    });
    m
}

fn serve(options: Options) -> io::Result<()> {
    let server = match options.server.tls_config()? {
        Some(tls) => Server::with_tls(methods(), options.config, tls),
        None => Server::new(methods(), options.config),
    };
    server.set_max_connections(options.server.max_connections);
    serve::serve_until_signal(&server, &options.server.listen)
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match fiber::run(|| serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("jsonrpc_server: {err}");
            ExitCode::FAILURE
        }
    }
}

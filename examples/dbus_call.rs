//! A tiny busctl-like D-Bus client: calls one method and prints the reply.
//!
//! ```text
//! dbus_call [--address ADDR | --peer ADDR] DEST PATH INTERFACE.METHOD [ARGS...]
//! ```
//!
//! `--address` names a bus (default `session`; `system`, or a D-Bus address such as
//! `unix:path=/run/bus`); `--peer` connects to a peer-to-peer server without saying `Hello`
//! (`DEST` may then be `-`). Arguments are typed as `dbus-send` types them:
//! `string:hello`, `int32:-5`, `uint32:5`, `int64:..`, `uint64:..`, `int16:..`, `uint16:..`,
//! `byte:7`, `boolean:true`, `double:1.5`, `objpath:/a/b`; a bare word is a string. The
//! reply's arguments are printed one per line with their signature (`s "hello"`, `i 5`); an
//! error reply is printed as `Error NAME: MESSAGE` on stderr with exit status 1.
//!
//! ```text
//! $ dbus_call --address unix:path=/tmp/bus com.example.Gruvi /com/example/Gruvi \
//!       com.example.Gruvi.Add int32:2 int32:3
//! i 5
//! ```

use std::process::ExitCode;

use gruvi::dbus::dbus::arg::{ArgType, RefArg};
use gruvi::dbus::{Config, Connection, Error, Message};
use gruvi::fiber;

const USAGE: &str =
    "usage: dbus_call [--address ADDR | --peer ADDR] DEST PATH INTERFACE.METHOD [ARGS...]";

struct Call {
    address: String,
    peer: bool,
    dest: String,
    path: String,
    interface: String,
    method: String,
    args: Vec<String>,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Call, String> {
    let mut args = args.peekable();
    let (mut address, mut peer) = ("session".to_owned(), false);
    while let Some(flag) = args.next_if(|a| a.starts_with("--")) {
        match flag.as_str() {
            "--address" | "--peer" => {
                address = args.next().ok_or(format!("{flag} needs a value"))?;
                peer = flag == "--peer";
            }
            "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    let mut positional = |what: &str| args.next().ok_or(format!("missing {what}\n{USAGE}"));
    let dest = positional("DEST")?;
    let path = positional("PATH")?;
    let member = positional("INTERFACE.METHOD")?;
    let (interface, method) = member
        .rsplit_once('.')
        .ok_or(format!("{member:?} is not INTERFACE.METHOD"))?;
    Ok(Call {
        address,
        peer,
        dest: if dest == "-" { String::new() } else { dest },
        path,
        interface: interface.to_owned(),
        method: method.to_owned(),
        args: args.collect(),
    })
}

/// Appends one `type:value` argument.
fn append(message: Message, arg: &str) -> Result<Message, String> {
    let (kind, value) = arg.split_once(':').unwrap_or(("string", arg));
    let bad = |e: &dyn std::fmt::Display| format!("bad {kind} {value:?}: {e}");
    Ok(match kind {
        "string" => message.append1(value),
        "int32" => message.append1(value.parse::<i32>().map_err(|e| bad(&e))?),
        "uint32" => message.append1(value.parse::<u32>().map_err(|e| bad(&e))?),
        "int64" => message.append1(value.parse::<i64>().map_err(|e| bad(&e))?),
        "uint64" => message.append1(value.parse::<u64>().map_err(|e| bad(&e))?),
        "int16" => message.append1(value.parse::<i16>().map_err(|e| bad(&e))?),
        "uint16" => message.append1(value.parse::<u16>().map_err(|e| bad(&e))?),
        "byte" => message.append1(value.parse::<u8>().map_err(|e| bad(&e))?),
        "boolean" => message.append1(value.parse::<bool>().map_err(|e| bad(&e))?),
        "double" => message.append1(value.parse::<f64>().map_err(|e| bad(&e))?),
        "objpath" => message.append1(gruvi::dbus::dbus::Path::new(value).map_err(|e| bad(&e))?),
        _ => message.append1(arg),
    })
}

/// One reply argument as busctl prints it: its signature, then its value.
fn format_arg(arg: &dyn RefArg) -> String {
    let value = match arg.arg_type() {
        ArgType::String | ArgType::ObjectPath | ArgType::Signature => {
            format!("{:?}", arg.as_str().unwrap_or_default())
        }
        ArgType::Double => arg.as_f64().unwrap_or_default().to_string(),
        ArgType::UInt64 => arg.as_u64().unwrap_or_default().to_string(),
        ArgType::Boolean => (arg.as_i64() == Some(1)).to_string(),
        t if t == ArgType::Byte || t.as_str().len() == 1 && arg.as_i64().is_some() => {
            arg.as_i64().unwrap_or_default().to_string()
        }
        _ => format!("{arg:?}"),
    };
    format!("{} {value}", arg.signature())
}

fn call(call: Call) -> Result<Vec<String>, Error> {
    let connection = if call.peer {
        Connection::connect_peer(&call.address, Config::default())?
    } else {
        Connection::connect(&call.address)?
    };
    let mut message =
        gruvi::dbus::method_call(&call.dest, &call.path, &call.interface, &call.method)?;
    for arg in &call.args {
        message = append(message, arg).map_err(Error::InvalidInput)?;
    }
    let reply = connection.call(message)?;
    let mut lines = Vec::new();
    let mut iter = reply.iter_init();
    while let Some(arg) = iter.get_refarg() {
        lines.push(format_arg(&*arg));
        iter.next();
    }
    connection.close();
    Ok(lines)
}

fn main() -> ExitCode {
    let parsed = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match fiber::run(|| call(parsed)) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(Error::MethodCall(err)) => {
            eprintln!("Error {err}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("dbus_call: {err}");
            ExitCode::FAILURE
        }
    }
}

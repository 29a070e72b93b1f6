//! Building messages with checked names, and reading typed arguments.

use dbus::Message;
use dbus::arg::ReadAll;

use crate::error::Error;

/// A method call message to `destination` (empty: none, for a peer), with its names checked
/// (the `dbus` crate's own constructors panic on bad ones). Append arguments with
/// [`Message::append1`] and the like, then [`Connection::call`](crate::Connection::call) it.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming the bad bus name, path, interface or member.
///
/// # Examples
///
/// ```
/// let call = gruvi_dbus::method_call("com.example", "/a", "com.example.I", "M")?.append1(7u32);
/// assert_eq!(call.member().unwrap().to_string(), "M");
/// assert!(gruvi_dbus::method_call("com.example", "no-slash", "com.example.I", "M").is_err());
/// # Ok::<(), gruvi_dbus::Error>(())
/// ```
pub fn method_call(
    destination: &str,
    path: &str,
    interface: &str,
    method: &str,
) -> Result<Message, Error> {
    use dbus::strings::{BusName, Interface, Member, Path};
    let dest = if destination.is_empty() {
        "org.freedesktop.DBus"
    } else {
        destination
    };
    let mut message = Message::method_call(
        &BusName::new(dest).map_err(Error::InvalidInput)?,
        &Path::new(path).map_err(Error::InvalidInput)?,
        &Interface::new(interface).map_err(Error::InvalidInput)?,
        &Member::new(method).map_err(Error::InvalidInput)?,
    );
    if destination.is_empty() {
        message.set_destination(None);
    }
    Ok(message)
}

/// A signal message from the object at `path`, with its names checked (see [`method_call`]).
///
/// # Errors
///
/// [`Error::InvalidInput`] naming the bad path, interface or member.
pub fn signal(path: &str, interface: &str, name: &str) -> Result<Message, Error> {
    use dbus::strings::{Interface, Member, Path};
    Ok(Message::signal(
        &Path::new(path).map_err(Error::InvalidInput)?,
        &Interface::new(interface).map_err(Error::InvalidInput)?,
        &Member::new(name).map_err(Error::InvalidInput)?,
    ))
}

/// The arguments of `message`, typed.
pub(crate) fn read_args<R: ReadAll>(message: &Message) -> Result<R, Error> {
    R::read(&mut message.iter_init()).map_err(|err| Error::Args(err.to_string()))
}

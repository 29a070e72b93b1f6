//! Helpers for the message bus' own methods (`org.freedesktop.DBus`): names, matches, ids.

use crate::connection::Connection;
use crate::error::Error;

/// The bus' own name.
pub const BUS_NAME: &str = "org.freedesktop.DBus";
/// The bus' object path.
pub const BUS_PATH: &str = "/org/freedesktop/DBus";

/// `RequestName` flag: let another connection take the name over.
pub const NAME_FLAG_ALLOW_REPLACEMENT: u32 = 1;
/// `RequestName` flag: take the name over from its owner if it allows that.
pub const NAME_FLAG_REPLACE_EXISTING: u32 = 2;
/// `RequestName` flag: fail instead of queueing for the name.
pub const NAME_FLAG_DO_NOT_QUEUE: u32 = 4;

/// The answer to `RequestName`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestNameReply {
    /// This connection owns the name now (1).
    PrimaryOwner,
    /// Queued behind the owner (2).
    InQueue,
    /// Another connection owns it and `DO_NOT_QUEUE` was given (3).
    Exists,
    /// This connection owned it already (4).
    AlreadyOwner,
}

/// The answer to `ReleaseName`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseNameReply {
    /// Released (1).
    Released,
    /// Nobody owns the name (2).
    NonExistent,
    /// Someone else owns it (3).
    NotOwner,
}

impl Connection {
    fn bus_call<A: dbus::arg::AppendAll, R: dbus::arg::ReadAll>(
        &self,
        method: &str,
        args: A,
    ) -> Result<R, Error> {
        self.call_method(BUS_NAME, BUS_PATH, BUS_NAME, method, args)
    }

    /// Asks the bus for the well-known `name` (`RequestName`) with the `NAME_FLAG_*` flags.
    ///
    /// # Switchpoint
    ///
    /// Blocks for the call.
    ///
    /// # Errors
    ///
    /// The bus' error reply (e.g. `InvalidArgs` for a bad name), and as
    /// [`call`](Connection::call).
    pub fn request_name(&self, name: &str, flags: u32) -> Result<RequestNameReply, Error> {
        let (code,): (u32,) = self.bus_call("RequestName", (name, flags))?;
        match code {
            1 => Ok(RequestNameReply::PrimaryOwner),
            2 => Ok(RequestNameReply::InQueue),
            3 => Ok(RequestNameReply::Exists),
            4 => Ok(RequestNameReply::AlreadyOwner),
            other => Err(Error::Args(format!("RequestName returned {other}"))),
        }
    }

    /// Gives up the well-known `name` (`ReleaseName`).
    ///
    /// # Switchpoint
    ///
    /// Blocks for the call.
    ///
    /// # Errors
    ///
    /// As [`request_name`](Self::request_name).
    pub fn release_name(&self, name: &str) -> Result<ReleaseNameReply, Error> {
        let (code,): (u32,) = self.bus_call("ReleaseName", (name,))?;
        match code {
            1 => Ok(ReleaseNameReply::Released),
            2 => Ok(ReleaseNameReply::NonExistent),
            3 => Ok(ReleaseNameReply::NotOwner),
            other => Err(Error::Args(format!("ReleaseName returned {other}"))),
        }
    }

    /// The names on the bus (`ListNames`).
    ///
    /// # Switchpoint
    ///
    /// Blocks for the call.
    ///
    /// # Errors
    ///
    /// As [`call`](Connection::call).
    pub fn list_names(&self) -> Result<Vec<String>, Error> {
        let (names,): (Vec<String>,) = self.bus_call("ListNames", ())?;
        Ok(names)
    }

    /// The bus' id (`GetId`).
    ///
    /// # Switchpoint
    ///
    /// Blocks for the call.
    ///
    /// # Errors
    ///
    /// As [`call`](Connection::call).
    pub fn bus_id(&self) -> Result<String, Error> {
        let (id,): (String,) = self.bus_call("GetId", ())?;
        Ok(id)
    }

    /// The unique name owning `name` (`GetNameOwner`).
    ///
    /// # Switchpoint
    ///
    /// Blocks for the call.
    ///
    /// # Errors
    ///
    /// `org.freedesktop.DBus.Error.NameHasNoOwner` as [`Error::MethodCall`], and as
    /// [`call`](Connection::call).
    pub fn name_owner(&self, name: &str) -> Result<String, Error> {
        let (owner,): (String,) = self.bus_call("GetNameOwner", (name,))?;
        Ok(owner)
    }

    /// Removes a match rule from the bus (`RemoveMatch`); signals matching only it stop
    /// coming.
    ///
    /// # Switchpoint
    ///
    /// Blocks for the call.
    ///
    /// # Errors
    ///
    /// `org.freedesktop.DBus.Error.MatchRuleNotFound`, and as [`call`](Connection::call).
    pub fn remove_match(&self, rule: &str) -> Result<(), Error> {
        self.bus_call("RemoveMatch", (rule,))
    }
}

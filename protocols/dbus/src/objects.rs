//! Exported objects: [`Interface`]s of typed methods, signals and properties, registered on
//! object paths; incoming calls are answered as a bus would, with
//! `org.freedesktop.DBus.Introspectable`, `Properties` and `Peer` for every object.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use dbus::Message;
use dbus::arg::{AppendAll, Arg, ArgAll, ArgType, Get, ReadAll, RefArg, Variant};

use crate::connection::Connection;
use crate::error::{MethodError, names};

/// A method call being answered: the message and the connection it came on (to emit
/// signals, or call back).
pub struct MethodCall<'a> {
    /// The call.
    pub message: &'a Message,
    /// The connection it came on.
    pub connection: &'a Connection,
}

type MethodFn = Rc<dyn Fn(&MethodCall<'_>) -> Result<Message, MethodError>>;
type Getter = Rc<dyn Fn() -> Box<dyn RefArg>>;
type Setter = Rc<dyn Fn(&Message) -> Result<(), MethodError>>;

pub(crate) struct Method {
    pub(crate) inputs: Vec<(&'static str, String)>,
    pub(crate) outputs: Vec<(&'static str, String)>,
    call: MethodFn,
}

pub(crate) struct Property {
    pub(crate) signature: String,
    get: Getter,
    pub(crate) set: Option<Setter>,
}

/// One interface of an exported object: typed methods, declared signals and properties.
///
/// # Examples
///
/// ```
/// use gruvi_dbus::{Interface, MethodError};
///
/// let iface = Interface::new("com.example.Calc")
///     .method("Add", ("a", "b"), ("sum",), |_call, (a, b): (i32, i32)| {
///         a.checked_add(b)
///             .map(|sum| (sum,))
///             .ok_or_else(|| MethodError::new("com.example.Calc.Error.Overflow", "too big"))
///     })
///     .signal::<(u32,)>("Tick", ("count",))
///     .property("Version", || 3u32);
/// assert_eq!(iface.name(), "com.example.Calc");
/// ```
pub struct Interface {
    pub(crate) name: String,
    pub(crate) methods: BTreeMap<String, Method>,
    pub(crate) signals: BTreeMap<String, Vec<(&'static str, String)>>,
    pub(crate) properties: BTreeMap<String, Property>,
}

/// The (name, signature) pairs of a tuple type.
fn arg_list<A: ArgAll>(names: A::strs) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    A::strs_sig(names, |name, sig| out.push((name, sig.to_string())));
    out
}

impl Interface {
    /// An interface named `name` (e.g. `com.example.Gruvi`).
    pub fn new(name: impl Into<String>) -> Interface {
        Interface {
            name: name.into(),
            methods: BTreeMap::new(),
            signals: BTreeMap::new(),
            properties: BTreeMap::new(),
        }
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a method taking the arguments `IA` (a tuple, named `in_names` in the
    /// introspection data) and returning `OA` (a tuple). Arguments of other types get an
    /// `InvalidArgs` error reply; an `Err` becomes an error reply. `f` runs in a fiber of its
    /// own and may block.
    pub fn method<IA, OA, F>(
        mut self,
        name: &str,
        in_names: IA::strs,
        out_names: OA::strs,
        f: F,
    ) -> Interface
    where
        IA: ArgAll + ReadAll,
        OA: ArgAll + AppendAll,
        F: Fn(&MethodCall<'_>, IA) -> Result<OA, MethodError> + 'static,
    {
        let call: MethodFn = Rc::new(move |call: &MethodCall<'_>| {
            let args = read_exactly::<IA>(call.message)?;
            let out = f(call, args)?;
            Ok(call.message.return_with_args(out))
        });
        let method = Method {
            inputs: arg_list::<IA>(in_names),
            outputs: arg_list::<OA>(out_names),
            call,
        };
        self.methods.insert(name.to_owned(), method);
        self
    }

    /// Declares a signal with arguments `A` (for introspection; emit it with
    /// [`Connection::emit_signal`]).
    pub fn signal<A: ArgAll>(mut self, name: &str, arg_names: A::strs) -> Interface {
        self.signals
            .insert(name.to_owned(), arg_list::<A>(arg_names));
        self
    }

    /// Adds a read-only property whose value `get` returns.
    pub fn property<T, G>(mut self, name: &str, get: G) -> Interface
    where
        T: Arg + RefArg + 'static,
        G: Fn() -> T + 'static,
    {
        let property = Property {
            signature: <T as Arg>::signature().to_string(),
            get: Rc::new(move || Box::new(get()) as Box<dyn RefArg>),
            set: None,
        };
        self.properties.insert(name.to_owned(), property);
        self
    }

    /// Adds a read-write property: `get` returns its value, `set` takes a new one (or
    /// refuses it with an error).
    pub fn property_rw<T, G, S>(mut self, name: &str, get: G, set: S) -> Interface
    where
        T: Arg + RefArg + for<'a> Get<'a> + 'static,
        G: Fn() -> T + 'static,
        S: Fn(T) -> Result<(), MethodError> + 'static,
    {
        let setter: Setter = Rc::new(move |message: &Message| {
            let (_, _, Variant(value)) = read_exactly::<(String, String, Variant<T>)>(message)?;
            set(value)
        });
        let property = Property {
            signature: <T as Arg>::signature().to_string(),
            get: Rc::new(move || Box::new(get()) as Box<dyn RefArg>),
            set: Some(setter),
        };
        self.properties.insert(name.to_owned(), property);
        self
    }
}

impl fmt::Debug for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interface")
            .field("name", &self.name)
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .field("signals", &self.signals.keys().collect::<Vec<_>>())
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Reads exactly the arguments `A`: other types, missing or extra arguments are
/// `InvalidArgs`.
fn read_exactly<A: ReadAll>(message: &Message) -> Result<A, MethodError> {
    let mut iter = message.iter_init();
    let args = A::read(&mut iter).map_err(|err| MethodError::invalid_args(err.to_string()))?;
    if iter.arg_type() != ArgType::Invalid {
        return Err(MethodError::invalid_args(format!(
            "too many arguments (signature '{}')",
            signature_of(message)
        )));
    }
    Ok(args)
}

/// The body signature of a message.
fn signature_of(message: &Message) -> String {
    let mut sig = String::new();
    let mut iter = message.iter_init();
    while iter.arg_type() != ArgType::Invalid {
        sig.push_str(&iter.signature());
        iter.next();
    }
    sig
}

/// The exported objects of a connection, or of every connection of a server.
#[derive(Default)]
pub(crate) struct Objects {
    by_path: RefCell<BTreeMap<String, Vec<Rc<Interface>>>>,
}

const INTROSPECTABLE: &str = "org.freedesktop.DBus.Introspectable";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
const PEER: &str = "org.freedesktop.DBus.Peer";

impl Objects {
    pub(crate) fn export(&self, path: &str, interface: Interface) -> Result<(), crate::Error> {
        dbus::Path::new(path).map_err(crate::Error::InvalidInput)?;
        dbus::strings::Interface::new(interface.name()).map_err(crate::Error::InvalidInput)?;
        let mut by_path = self.by_path.borrow_mut();
        let list = by_path.entry(path.to_owned()).or_default();
        list.retain(|i| i.name != interface.name);
        list.push(Rc::new(interface));
        Ok(())
    }

    pub(crate) fn unexport(&self, path: &str, interface: &str) -> bool {
        let mut by_path = self.by_path.borrow_mut();
        let Some(list) = by_path.get_mut(path) else {
            return false;
        };
        let before = list.len();
        list.retain(|i| i.name != interface);
        let removed = list.len() != before;
        if list.is_empty() {
            by_path.remove(path);
        }
        removed
    }

    fn interfaces(&self, path: &str) -> Option<Vec<Rc<Interface>>> {
        self.by_path.borrow().get(path).cloned()
    }

    /// The names of the direct children of `path` that lead to exported objects.
    fn children(&self, path: &str) -> Vec<String> {
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        let children: std::collections::BTreeSet<String> = self
            .by_path
            .borrow()
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty())
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned())
            .collect();
        children.into_iter().collect()
    }

    /// Answers a method call: the reply, or the error to send.
    pub(crate) fn handle(&self, call: &MethodCall<'_>) -> Result<Message, MethodError> {
        let message = call.message;
        // Borrowed from the message: no copies on the hot path.
        let (path, interface, member) = (message.path(), message.interface(), message.member());
        let path: &str = path.as_deref().unwrap_or("");
        let interface: Option<&str> = interface.as_deref();
        let member: &str = member.as_deref().unwrap_or("");
        // The standard interfaces answer calls that name no interface too.
        match interface {
            Some(PEER) => return peer(message, member),
            None if matches!(member, "Ping" | "GetMachineId") => return peer(message, member),
            Some(INTROSPECTABLE) | None if member == "Introspect" => {
                let xml = self.introspect(path).ok_or_else(|| unknown_object(path))?;
                return Ok(message.return_with_args((xml,)));
            }
            Some(PROPERTIES) => {
                let interfaces = self.interfaces(path).ok_or_else(|| unknown_object(path))?;
                let reply = properties(message, member, &interfaces)?;
                if member == "Set" {
                    // Tell whoever listens, as the specification asks of a changed property.
                    let (iface, name) = message
                        .read2::<String, String>()
                        .map_err(|e| MethodError::invalid_args(e.to_string()))?;
                    let _ = call
                        .connection
                        .emit_properties_changed(path, &iface, &[&name]);
                }
                return Ok(reply);
            }
            _ => {}
        }
        // Look the method up under the borrow; call it after (it may export or unexport).
        let found = {
            let by_path = self.by_path.borrow();
            let interfaces = by_path.get(path).ok_or_else(|| unknown_object(path))?;
            let found = interfaces.iter().find(|i| {
                interface.is_none_or(|name| name == i.name) && i.methods.contains_key(member)
            });
            match found {
                Some(found) => found.clone(),
                None => {
                    return Err(match interface {
                        Some(name) if !interfaces.iter().any(|i| i.name == name) => {
                            MethodError::new(
                                names::UNKNOWN_INTERFACE,
                                format!("No such interface '{name}' at object path '{path}'"),
                            )
                        }
                        _ => MethodError::new(
                            names::UNKNOWN_METHOD,
                            format!(
                                "No such method '{member}' in interface '{}' at object path '{path}' (signature '{}')",
                                interface.unwrap_or(""),
                                signature_of(message)
                            ),
                        ),
                    });
                }
            }
        };
        (found.methods[member].call)(call)
    }

    /// The introspection XML of `path`, or `None` if nothing is exported at or below it.
    pub(crate) fn introspect(&self, path: &str) -> Option<String> {
        let interfaces = self.interfaces(path);
        let children = self.children(path);
        if interfaces.is_none() && children.is_empty() && path != "/" {
            return None;
        }
        Some(crate::introspection::xml(
            interfaces.as_deref().unwrap_or(&[]),
            &children,
        ))
    }
}

fn unknown_object(path: &str) -> MethodError {
    MethodError::new(
        names::UNKNOWN_OBJECT,
        format!("No such object path '{path}'"),
    )
}

/// `org.freedesktop.DBus.Peer`, for any path.
fn peer(message: &Message, member: &str) -> Result<Message, MethodError> {
    match member {
        "Ping" => {
            read_exactly::<()>(message)?;
            Ok(message.method_return())
        }
        "GetMachineId" => {
            read_exactly::<()>(message)?;
            Ok(message.return_with_args((machine_id()?,)))
        }
        _ => Err(MethodError::new(
            names::UNKNOWN_METHOD,
            format!("No such method '{member}' in interface '{PEER}'"),
        )),
    }
}

/// The machine id (`/etc/machine-id`, else D-Bus' own copy).
fn machine_id() -> Result<String, MethodError> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
        .ok_or_else(|| MethodError::failed("no machine id on this system"))
}

/// `org.freedesktop.DBus.Properties` on an exported object.
fn properties(
    message: &Message,
    member: &str,
    interfaces: &[Rc<Interface>],
) -> Result<Message, MethodError> {
    let find_interface = |name: &str| {
        interfaces.iter().find(|i| i.name == name).ok_or_else(|| {
            MethodError::new(
                names::UNKNOWN_INTERFACE,
                format!("No such interface '{name}'"),
            )
        })
    };
    let find = |iface: &str, name: &str| -> Result<(Rc<Interface>, String), MethodError> {
        let interface = find_interface(iface)?.clone();
        if !interface.properties.contains_key(name) {
            return Err(MethodError::new(
                names::UNKNOWN_PROPERTY,
                format!("No such property '{name}' in interface '{iface}'"),
            ));
        }
        Ok((interface, name.to_owned()))
    };
    match member {
        "Get" => {
            let (iface, name): (String, String) = read_exactly(message)?;
            let (interface, name) = find(&iface, &name)?;
            let value = (interface.properties[&name].get)();
            Ok(message.return_with_args((Variant(value),)))
        }
        "GetAll" => {
            let (iface,): (String,) = read_exactly(message)?;
            let interface = find_interface(&iface)?;
            let all: dbus::arg::PropMap = interface
                .properties
                .iter()
                .map(|(name, p)| (name.clone(), Variant((p.get)())))
                .collect();
            Ok(message.return_with_args((all,)))
        }
        "Set" => {
            let mut iter = message.iter_init();
            let iface: String = iter
                .read()
                .map_err(|e| MethodError::invalid_args(e.to_string()))?;
            let name: String = iter
                .read()
                .map_err(|e| MethodError::invalid_args(e.to_string()))?;
            let (interface, name) = find(&iface, &name)?;
            let property = &interface.properties[&name];
            let set = property.set.as_ref().ok_or_else(|| {
                MethodError::new(
                    names::PROPERTY_READ_ONLY,
                    format!("Property '{name}' is read-only"),
                )
            })?;
            set(message)?;
            Ok(message.method_return())
        }
        _ => Err(MethodError::new(
            names::UNKNOWN_METHOD,
            format!("No such method '{member}' in interface '{PROPERTIES}'"),
        )),
    }
}

impl Connection {
    /// Exports `interface` on the object at `path` (replacing an interface of the same name
    /// there). Calls to it on this connection are answered from now on.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a bad path or interface name.
    pub fn export(&self, path: &str, interface: Interface) -> Result<(), crate::Error> {
        self.inner.objects.export(path, interface)
    }

    /// Emits `org.freedesktop.DBus.Properties.PropertiesChanged` from the object at `path`
    /// with the current values of the properties `names` of `interface`. A successful `Set`
    /// call emits it by itself.
    ///
    /// # Switchpoint
    ///
    /// Blocks while the send queue is full.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) when nothing is exported there or
    /// a property is unknown; the errors of [`send`](Self::send).
    pub fn emit_properties_changed(
        &self,
        path: &str,
        interface: &str,
        names: &[&str],
    ) -> Result<(), crate::Error> {
        let exported = self
            .inner
            .objects
            .interfaces(path)
            .and_then(|list| list.into_iter().find(|i| i.name == interface))
            .ok_or_else(|| {
                crate::Error::InvalidInput(format!("no interface {interface} exported at {path}"))
            })?;
        let mut changed = dbus::arg::PropMap::new();
        for &name in names {
            let property = exported.properties.get(name).ok_or_else(|| {
                crate::Error::InvalidInput(format!("no property {name} in {interface}"))
            })?;
            changed.insert(name.to_owned(), Variant((property.get)()));
        }
        self.emit_signal(
            path,
            PROPERTIES,
            "PropertiesChanged",
            (interface, changed, Vec::<String>::new()),
        )
    }

    /// Stops exporting the interface `interface` at `path`; `false` if it was not exported.
    pub fn unexport(&self, path: &str, interface: &str) -> bool {
        self.inner.objects.unexport(path, interface)
    }
}

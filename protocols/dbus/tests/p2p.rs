//! Our client against our peer-to-peer server: Hello and unique names, calls and the errors
//! a bus would send, introspection, properties, signals, concurrency, connection limit,
//! ANONYMOUS over TCP.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gruvi_dbus::dbus::arg::{PropMap, RefArg, Variant};
use gruvi_dbus::{Config, Connection, Error, Interface, MethodError, Server, names};
use support::run_clean;

const PATH: &str = "/com/example/Gruvi";
const IFACE: &str = "com.example.Gruvi";

fn service(server: &Server) -> Rc<Cell<i32>> {
    let level = Rc::new(Cell::new(3));
    let (get, set) = (level.clone(), level.clone());
    server
        .export(
            PATH,
            Interface::new(IFACE)
                .method("Echo", ("text",), ("text",), |_, (text,): (String,)| {
                    Ok((text,))
                })
                .method("Add", ("a", "b"), ("sum",), |_, (a, b): (i32, i32)| {
                    Ok((a.wrapping_add(b),))
                })
                .method("Fail", (), (), |_, ()| -> Result<(), MethodError> {
                    Err(MethodError::new(
                        "com.example.Gruvi.Error.Failed",
                        "it failed",
                    ))
                })
                .method("Sleep", ("ms",), (), |_, (ms,): (u32,)| {
                    fiber_core::sleep(Duration::from_millis(ms.into()))
                        .map_err(|e| MethodError::failed(e.to_string()))
                })
                .method("EmitTick", ("n",), (), |call, (n,): (u32,)| {
                    call.connection
                        .emit_signal(PATH, IFACE, "Tick", (n,))
                        .map_err(|e| MethodError::failed(e.to_string()))
                })
                .method("Panic", (), (), |_, ()| -> Result<(), MethodError> {
                    panic!("a handler bug")
                })
                .signal::<(u32,)>("Tick", ("n",))
                .property("Name", || "gruvi".to_owned())
                .property_rw(
                    "Level",
                    move || get.get(),
                    move |v: i32| {
                        if v < 0 {
                            return Err(MethodError::invalid_args("negative level"));
                        }
                        set.set(v);
                        Ok(())
                    },
                ),
        )
        .unwrap();
    level
}

fn listen(server: &Server) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let address = server
        .listen(&format!("unix:dir={}", dir.path().display()))
        .unwrap();
    (address, dir)
}

#[test]
fn hello_gives_unique_names_and_calls_are_dispatched() {
    run_clean(|| {
        let server = Server::new();
        service(&server);
        let (address, _dir) = listen(&server);
        assert!(address.contains(&format!("guid={}", server.guid())));
        let a = Connection::connect(&address).unwrap();
        let b = Connection::connect(&address).unwrap();
        assert_eq!(a.unique_name().as_deref(), Some(":1.1"));
        assert_eq!(b.unique_name().as_deref(), Some(":1.2"));
        assert_eq!(a.server_guid(), server.guid());
        assert_eq!(server.connections().len(), 2);
        assert_eq!(server.connections()[0].peer_uid(), Some(rustix_uid()));
        let (sum,): (i32,) = a.call_method("", PATH, IFACE, "Add", (40, 2)).unwrap();
        assert_eq!(sum, 42);
        let (text,): (String,) = b
            .call_method("any.name", PATH, IFACE, "Echo", ("hi",))
            .unwrap();
        assert_eq!(text, "hi");
        let err = a
            .call_method::<_, ()>("", PATH, IFACE, "Fail", ())
            .unwrap_err();
        assert_eq!(err.name(), Some("com.example.Gruvi.Error.Failed"));
        assert_eq!(err.method_error().unwrap().message(), "it failed");
        // A second Hello is refused, as a bus does.
        let err = a
            .call_method::<_, (String,)>(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                (),
            )
            .unwrap_err();
        assert_eq!(err.name(), Some(names::ACCESS_DENIED));
        a.close();
        b.close();
        server.close().unwrap();
    });
}

fn rustix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap()
}

#[test]
fn unknown_objects_interfaces_methods_and_bad_args_get_the_bus_errors() {
    run_clean(|| {
        let server = Server::new();
        service(&server);
        let (address, _dir) = listen(&server);
        let c = Connection::connect(&address).unwrap();
        let name = |path: &str, iface: &str, method: &str| {
            c.call_method::<_, ()>("", path, iface, method, ("x",))
                .unwrap_err()
                .name()
                .map(str::to_owned)
        };
        assert_eq!(
            name("/nowhere", IFACE, "Echo").as_deref(),
            Some(names::UNKNOWN_OBJECT)
        );
        assert_eq!(
            name(PATH, "com.example.Other", "Echo").as_deref(),
            Some(names::UNKNOWN_INTERFACE)
        );
        assert_eq!(
            name(PATH, IFACE, "Nope").as_deref(),
            Some(names::UNKNOWN_METHOD)
        );
        assert_eq!(
            name(PATH, IFACE, "Add").as_deref(),
            Some(names::INVALID_ARGS)
        );
        // Extra arguments are invalid too.
        let err = c
            .call_method::<_, ()>("", PATH, IFACE, "Echo", ("a", "b"))
            .unwrap_err();
        assert_eq!(err.name(), Some(names::INVALID_ARGS));
        // A panicking handler answers with an error and the connection goes on.
        let err = c
            .call_method::<_, ()>("", PATH, IFACE, "Panic", ())
            .unwrap_err();
        assert_eq!(err.name(), Some(names::FAILED));
        let (text,): (String,) = c
            .call_method("", PATH, IFACE, "Echo", ("still here",))
            .unwrap();
        assert_eq!(text, "still here");
        c.close();
        server.close().unwrap();
    });
}

#[test]
fn introspection_properties_and_peer_are_there_for_every_object() {
    run_clean(|| {
        let server = Server::new();
        let level = service(&server);
        let (address, _dir) = listen(&server);
        let c = Connection::connect(&address).unwrap();
        let (xml,): (String,) = c
            .call_method(
                "",
                PATH,
                "org.freedesktop.DBus.Introspectable",
                "Introspect",
                (),
            )
            .unwrap();
        for part in [
            r#"<interface name="com.example.Gruvi">"#,
            r#"<method name="Add"><arg name="a" type="i" direction="in"/><arg name="b" type="i" direction="in"/><arg name="sum" type="i" direction="out"/></method>"#,
            r#"<signal name="Tick"><arg name="n" type="u"/></signal>"#,
            r#"<property name="Level" type="i" access="readwrite"/>"#,
            r#"<property name="Name" type="s" access="read"/>"#,
            "org.freedesktop.DBus.Properties",
        ] {
            assert!(xml.contains(part), "{part} not in {xml}");
        }
        // Parent paths list their children, each once.
        let bad = c.export("/com/example-b/x", Interface::new("com.example.B"));
        assert!(matches!(bad, Err(Error::InvalidInput(_))));
        server
            .export("/com/exampleB/x", Interface::new("com.example.B"))
            .unwrap();
        server
            .export("/com/example/Gruvi/sub", Interface::new("com.example.B"))
            .unwrap();
        let (parent,): (String,) = c
            .call_method(
                "",
                "/com/example",
                "org.freedesktop.DBus.Introspectable",
                "Introspect",
                (),
            )
            .unwrap();
        assert_eq!(
            parent.matches(r#"<node name="Gruvi"/>"#).count(),
            1,
            "{parent}"
        );
        let (com,): (String,) = c
            .call_method(
                "",
                "/com",
                "org.freedesktop.DBus.Introspectable",
                "Introspect",
                (),
            )
            .unwrap();
        assert_eq!(com.matches("<node name=").count(), 2, "{com}");
        let (root,): (String,) = c
            .call_method(
                "",
                "/com",
                "org.freedesktop.DBus.Introspectable",
                "Introspect",
                (),
            )
            .unwrap();
        assert!(root.contains(r#"<node name="example"/>"#), "{root}");
        let props = "org.freedesktop.DBus.Properties";
        let (Variant(name),): (Variant<String>,) = c
            .call_method("", PATH, props, "Get", (IFACE, "Name"))
            .unwrap();
        assert_eq!(name, "gruvi");
        let changes = c
            .add_match("type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'")
            .unwrap();
        c.call_method::<_, ()>("", PATH, props, "Set", (IFACE, "Level", Variant(9i32)))
            .unwrap();
        assert_eq!(level.get(), 9);
        let change = changes.recv_timeout(Duration::from_secs(10)).unwrap();
        let (iface, changed, invalidated): (String, PropMap, Vec<String>) = change.read3().unwrap();
        assert_eq!(iface, IFACE);
        assert_eq!(changed["Level"].0.as_i64(), Some(9));
        assert!(invalidated.is_empty());
        // The client exports nothing: nothing to report.
        let err = c
            .emit_properties_changed(PATH, IFACE, &["Level"])
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        let err = c
            .call_method::<_, ()>("", PATH, props, "Set", (IFACE, "Level", Variant(-1i32)))
            .unwrap_err();
        assert_eq!(err.name(), Some(names::INVALID_ARGS));
        let err = c
            .call_method::<_, ()>("", PATH, props, "Set", (IFACE, "Name", Variant("x")))
            .unwrap_err();
        assert_eq!(err.name(), Some(names::PROPERTY_READ_ONLY));
        let err = c
            .call_method::<_, ()>("", PATH, props, "Get", (IFACE, "Nope"))
            .unwrap_err();
        assert_eq!(err.name(), Some(names::UNKNOWN_PROPERTY));
        let (all,): (PropMap,) = c.call_method("", PATH, props, "GetAll", (IFACE,)).unwrap();
        assert_eq!(all["Level"].0.as_i64(), Some(9));
        assert_eq!(all["Name"].0.as_str(), Some("gruvi"));
        c.call_method::<_, ()>("", "/any/path", "org.freedesktop.DBus.Peer", "Ping", ())
            .unwrap();

        c.close();
        server.close().unwrap();
    });
}

#[test]
fn signals_from_a_method_and_from_the_server_reach_the_peers() {
    run_clean(|| {
        let server = Server::new();
        service(&server);
        let (address, _dir) = listen(&server);
        let a = Connection::connect(&address).unwrap();
        let b = Connection::connect(&address).unwrap();
        let ticks_a = a
            .add_match(&format!("type='signal',interface='{IFACE}',member='Tick'"))
            .unwrap();
        let ticks_b = b
            .add_match(&format!("type='signal',interface='{IFACE}',member='Tick'"))
            .unwrap();
        a.call_method::<_, ()>("", PATH, IFACE, "EmitTick", (5u32,))
            .unwrap();
        let tick = ticks_a.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(tick.read1::<u32>().unwrap(), 5);
        assert_eq!(tick.path().unwrap().to_string(), PATH);
        // Peer to peer, a method's signal goes to the caller's connection only.
        assert!(ticks_b.try_recv().is_none());
        server.emit_signal(PATH, IFACE, "Tick", (6u32,)).unwrap();
        for ticks in [&ticks_a, &ticks_b] {
            assert_eq!(
                ticks
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap()
                    .read1::<u32>()
                    .unwrap(),
                6
            );
        }
        a.close();
        b.close();
        server.close().unwrap();
    });
}

#[test]
fn a_full_signal_queue_drops_and_counts_new_signals() {
    run_clean(|| {
        let server = Server::new();
        service(&server);
        let (address, _dir) = listen(&server);
        let mut config = Config::default();
        config.signal_queue = 2;
        let c = Connection::connect_with(&address, config).unwrap();
        let ticks = c.add_match("type='signal',member='Tick'").unwrap();
        for n in 0..5u32 {
            c.call_method::<_, ()>("", PATH, IFACE, "EmitTick", (n,))
                .unwrap();
        }
        // Every signal came before the reply to the last call.
        assert_eq!(ticks.try_recv().unwrap().read1::<u32>().unwrap(), 0);
        assert_eq!(ticks.try_recv().unwrap().read1::<u32>().unwrap(), 1);
        assert!(ticks.try_recv().is_none());
        assert_eq!(ticks.dropped(), 3);
        c.close();
        server.close().unwrap();
    });
}

#[test]
fn slow_methods_run_concurrently_up_to_the_limit() {
    run_clean(|| {
        const LIMIT: usize = 4;
        let mut config = Config::default();
        config.max_concurrent_calls = LIMIT;
        let server = Server::builder().config(config).build();
        // Counts the calls running at once: up on entry, down on exit, and the most seen.
        let (running, most) = (Rc::new(Cell::new(0usize)), Rc::new(Cell::new(0usize)));
        let (r, m) = (running.clone(), most.clone());
        server
            .export(
                PATH,
                Interface::new(IFACE).method("Sleep", ("ms",), (), move |_, (ms,): (u32,)| {
                    r.set(r.get() + 1);
                    m.set(m.get().max(r.get()));
                    let slept = fiber_core::sleep(Duration::from_millis(ms.into()));
                    r.set(r.get() - 1);
                    slept.map_err(|e| MethodError::failed(e.to_string()))
                }),
            )
            .unwrap();
        let (address, _dir) = listen(&server);
        let c = Connection::connect(&address).unwrap();
        let start = Instant::now();
        let calls: Vec<_> = (0..2 * LIMIT)
            .map(|_| {
                let c = c.clone();
                fiber_core::spawn(move || {
                    c.call_method::<_, ()>("", PATH, IFACE, "Sleep", (300u32,))
                })
            })
            .collect();
        for call in calls {
            call.join().unwrap().unwrap();
        }
        let took = start.elapsed();
        assert_eq!(most.get(), LIMIT, "the most calls running at once");
        assert_eq!(running.get(), 0);
        // Eight 300 ms calls, four at a time: two rounds (600 ms), not eight (2.4 s).
        assert!(took >= Duration::from_millis(600), "{took:?}");
        assert!(took < Duration::from_millis(2000), "{took:?}");
        c.close();
        server.close().unwrap();
    });
}

#[test]
fn the_connection_limit_closes_extra_clients() {
    run_clean(|| {
        let server = Server::builder().max_connections(Some(2)).build();
        service(&server);
        let (address, _dir) = listen(&server);
        let a = Connection::connect(&address).unwrap();
        let b = Connection::connect(&address).unwrap();
        let err = Connection::connect(&address).unwrap_err();
        assert!(err.to_string().contains("could not connect"), "{err}");
        b.close();
        // Once one leaves, a new client gets in.
        let deadline = Instant::now() + Duration::from_secs(10);
        let c = loop {
            match Connection::connect(&address) {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    fiber_core::sleep(Duration::from_millis(10)).unwrap()
                }
                Err(err) => panic!("{err}"),
            }
        };
        a.close();
        c.close();
        server.close().unwrap();
    });
}

#[test]
fn tcp_clients_need_anonymous_which_is_off_by_default() {
    run_clean(|| {
        let closed = Server::new();
        service(&closed);
        let address = closed.listen("tcp:host=127.0.0.1,port=0").unwrap();
        let err = Connection::connect(&address).unwrap_err();
        assert!(err.to_string().contains("rejected"), "{err}");
        closed.close().unwrap();

        let open = Server::builder().allow_anonymous(true).build();
        service(&open);
        let address = open.listen("tcp:host=127.0.0.1,port=0").unwrap();
        assert!(address.starts_with("tcp:host=127.0.0.1,port="), "{address}");
        let c = Connection::connect(&address).unwrap();
        let (text,): (String,) = c
            .call_method("", PATH, IFACE, "Echo", ("over tcp",))
            .unwrap();
        assert_eq!(text, "over tcp");
        assert_eq!(open.connections()[0].peer_uid(), None);
        c.close();
        open.close().unwrap();
    });
}

#[test]
fn peers_may_skip_hello_when_the_server_allows_it() {
    run_clean(|| {
        let server = Server::builder().require_hello(false).build();
        service(&server);
        let (address, _dir) = listen(&server);
        let c = Connection::connect_peer(&address, Config::default()).unwrap();
        assert_eq!(c.unique_name(), None);
        let (sum,): (i32,) = c.call_method("", PATH, IFACE, "Add", (1, 2)).unwrap();
        assert_eq!(sum, 3);
        c.close();
        // With Hello required (the default), the server drops such a peer.
        let strict = Server::new();
        service(&strict);
        let (address, _dir2) = listen(&strict);
        let c = Connection::connect_peer(&address, Config::default()).unwrap();
        let err = c
            .call_method::<_, (i32,)>("", PATH, IFACE, "Add", (1, 2))
            .unwrap_err();
        assert!(matches!(err, Error::Disconnected(_)), "{err}");
        server.close().unwrap();
        strict.close().unwrap();
    });
}

#[test]
fn closing_the_server_ends_its_connections() {
    run_clean(|| {
        let server = Server::new();
        service(&server);
        let (address, _dir) = listen(&server);
        let c = Connection::connect(&address).unwrap();
        let c2 = c.clone();
        let pending = fiber_core::spawn(move || {
            c2.call_method::<_, ()>("", PATH, IFACE, "Sleep", (20_000u32,))
        });
        fiber_core::sleep(Duration::from_millis(20)).unwrap();
        server.close().unwrap();
        let err = pending.join().unwrap().unwrap_err();
        assert!(matches!(err, Error::Disconnected(_)), "{err}");
        assert!(c.wait_closed().unwrap().contains("closed"));
    });
}

#[test]
fn messages_sent_just_before_close_still_go_out() {
    run_clean(|| {
        let server = Server::new();
        service(&server);
        let subscriptions = Rc::new(std::cell::RefCell::new(Vec::new()));
        let s = subscriptions.clone();
        server.on_connect(move |conn| {
            s.borrow_mut()
                .push(conn.add_match("type='signal',member='Bye'").unwrap());
        });
        let (address, _dir) = listen(&server);
        let c = Connection::connect(&address).unwrap();
        for n in 0..100u32 {
            c.emit_signal(PATH, IFACE, "Bye", (n,)).unwrap();
        }
        c.close();
        // Sending on a closed connection is refused.
        let err = c.emit_signal(PATH, IFACE, "Bye", (100u32,)).unwrap_err();
        assert!(matches!(err, Error::Disconnected(_)), "{err}");
        let subscription = subscriptions.borrow_mut().pop().unwrap();
        for n in 0..100u32 {
            let bye = subscription.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(bye.read1::<u32>().unwrap(), n);
        }
        assert!(matches!(subscription.recv(), Err(Error::Disconnected(_))));
        server.close().unwrap();
    });
}

#[test]
fn a_method_handler_can_call_back_into_the_caller_on_the_same_connection() {
    run_clean(|| {
        let server = Server::new();
        server
            .export(
                "/relay",
                Interface::new("com.example.Relay").method(
                    "AskBack",
                    ("text",),
                    ("answer",),
                    |call, (text,): (String,)| {
                        // The reply to this nested call arrives while the outer call is open.
                        let (upper,): (String,) = call
                            .connection
                            .call_method("", "/client", "com.example.Client", "Upper", (text,))
                            .map_err(|e| MethodError::failed(e.to_string()))?;
                        Ok((format!("client said {upper}"),))
                    },
                ),
            )
            .unwrap();
        let (address, _dir) = listen(&server);
        let c = Connection::connect(&address).unwrap();
        c.export(
            "/client",
            Interface::new("com.example.Client").method(
                "Upper",
                ("text",),
                ("text",),
                |_, (text,): (String,)| Ok((text.to_uppercase(),)),
            ),
        )
        .unwrap();
        let (answer,): (String,) = c
            .call_method("", "/relay", "com.example.Relay", "AskBack", ("ping",))
            .unwrap();
        assert_eq!(answer, "client said PING");
        c.close();
        server.close().unwrap();
    });
}

#[test]
fn the_server_listens_on_abstract_sockets_and_resolved_tcp_names() {
    run_clean(|| {
        let server = Server::builder().allow_anonymous(true).build();
        service(&server);
        let name = format!("gruvi-dbus-test-{}", std::process::id());
        let address = server
            .listen(&format!("unix:abstract={name};tcp:host=localhost,port=0"))
            .unwrap();
        let entries: Vec<&str> = address.split(';').collect();
        assert!(
            entries[0].starts_with(&format!("unix:abstract={name},guid=")),
            "{address}"
        );
        assert!(
            entries[1..].iter().all(|e| e.starts_with("tcp:host=")),
            "{address}"
        );
        for entry in entries {
            let c = Connection::connect(entry).unwrap();
            let (sum,): (i32,) = c.call_method("", PATH, IFACE, "Add", (1, 1)).unwrap();
            assert_eq!(sum, 2, "{entry}");
            c.close();
        }
        assert_eq!(server.addresses().len(), address.split(';').count());
        server.close().unwrap();
    });
}

#[test]
fn a_call_flagged_no_reply_through_call_returns_at_once() {
    run_clean(|| {
        let server = Server::new();
        service(&server);
        let (address, _dir) = listen(&server);
        let c = Connection::connect(&address).unwrap();
        let mut message = gruvi_dbus::method_call("", PATH, IFACE, "Sleep")
            .unwrap()
            .append1(5000u32);
        message.set_no_reply(true);
        let start = Instant::now();
        let empty = c.call(message).unwrap();
        assert!(start.elapsed() < Duration::from_secs(2));
        assert_eq!(empty.msg_type(), gruvi_dbus::MessageType::MethodReturn);
        c.close();
        server.close().unwrap();
    });
}

#[test]
fn a_received_signal_can_be_sent_on_again() {
    run_clean(|| {
        let server = Server::new();
        service(&server);
        let (address, _dir) = listen(&server);
        let a = Connection::connect(&address).unwrap();
        let b = Connection::connect(&address).unwrap();
        let at_a = a.add_match("type='signal',member='Tick'").unwrap();
        let at_b = b.add_match("type='signal',member='Tick'").unwrap();
        a.call_method::<_, ()>("", PATH, IFACE, "EmitTick", (9u32,))
            .unwrap();
        let tick = at_a.recv_timeout(Duration::from_secs(10)).unwrap();
        // A received message gets a new serial and goes out again (libdbus aborts the process
        // when the serial of a locked message is set: this one is not).
        a.send(tick).unwrap();
        b.call_method::<_, ()>("", PATH, IFACE, "EmitTick", (10u32,))
            .unwrap();
        assert_eq!(
            at_b.recv_timeout(Duration::from_secs(10))
                .unwrap()
                .read1::<u32>()
                .unwrap(),
            10
        );
        // The connection that forwarded it still works.
        let (sum,): (i32,) = a.call_method("", PATH, IFACE, "Add", (2, 2)).unwrap();
        assert_eq!(sum, 4);
        a.close();
        b.close();
        server.close().unwrap();
    });
}

#[test]
fn a_server_that_never_answers_authentication_times_the_client_out() {
    run_clean(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent");
        // Accepts (the kernel's backlog does) but never says a word.
        let listener = gruvi_stream::UnixListener::bind(&path).unwrap();
        let mut config = Config::default();
        config.auth_timeout = Duration::from_millis(200);
        let start = Instant::now();
        let err =
            Connection::connect_with(&format!("unix:path={}", path.display()), config).unwrap_err();
        assert!(
            err.to_string().contains("authentication did not finish"),
            "{err}"
        );
        assert!(start.elapsed() >= Duration::from_millis(200));
        drop(listener);
    });
}

#[test]
fn garbage_from_the_server_fails_the_pending_call_with_the_reason() {
    run_clean(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage");
        let listener = gruvi_stream::UnixListener::bind(&path).unwrap();
        let server = fiber_core::spawn(move || -> std::io::Result<()> {
            let (conn, _) = listener.accept()?;
            let stream = gruvi_stream::Stream::new(conn);
            assert_eq!(stream.read_bytes(1)?, b"\0");
            assert!(stream.readline(Some(1000))?.starts_with(b"AUTH EXTERNAL "));
            stream.write_all(b"OK 0123456789abcdef0123456789abcdef\r\n")?;
            assert_eq!(stream.readline(Some(1000))?, b"BEGIN\r\n");
            // The Hello call arrives; the answer is garbage.
            stream.read1(4096)?;
            stream.write_all(b"lxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")?;
            stream.read_bytes(usize::MAX).map(drop)
        });
        let err = Connection::connect(&format!("unix:path={}", path.display())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("protocol error") && text.contains("protocol version"),
            "{text}"
        );
        server.join().unwrap().unwrap();
    });
}

#[test]
fn handlers_and_objects_can_be_removed() {
    run_clean(|| {
        let server = Server::new();
        service(&server);
        let (address, _dir) = listen(&server);
        let c = Connection::connect(&address).unwrap();
        let heard = Rc::new(Cell::new(0u32));
        let h = heard.clone();
        let id = c
            .on_signal("type='signal',member='Tick'", move |_| h.set(h.get() + 1))
            .unwrap();
        // A subscription as a marker: once it has a signal, the handler had it too.
        let marker = c.add_match("type='signal',member='Tick'").unwrap();
        c.call_method::<_, ()>("", PATH, IFACE, "EmitTick", (1u32,))
            .unwrap();
        marker.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(heard.get(), 1);
        assert!(c.remove_signal_handler(id));
        assert!(!c.remove_signal_handler(id));
        c.call_method::<_, ()>("", PATH, IFACE, "EmitTick", (2u32,))
            .unwrap();
        marker.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(heard.get(), 1);

        // An object exported on the client, called by the server side, then withdrawn.
        c.export(
            "/client",
            Interface::new("com.example.Client")
                .method("Hi", (), ("hi",), |_, ()| Ok(("hi".to_owned(),))),
        )
        .unwrap();
        let server_side = server.connections().pop().unwrap();
        let (hi,): (String,) = server_side
            .call_method("", "/client", "com.example.Client", "Hi", ())
            .unwrap();
        assert_eq!(hi, "hi");
        assert!(c.unexport("/client", "com.example.Client"));
        assert!(!c.unexport("/client", "com.example.Client"));
        let err = server_side
            .call_method::<_, (String,)>("", "/client", "com.example.Client", "Hi", ())
            .unwrap_err();
        assert_eq!(err.name(), Some(names::UNKNOWN_OBJECT));
        c.close();
        server.close().unwrap();
    });
}

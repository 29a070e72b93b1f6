//! The client against a private `dbus-daemon`: Hello and the unique name, bus methods, error
//! replies, timeouts, `NO_REPLY_EXPECTED`, exported objects called through the bus, signals,
//! and address fallback.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use gruvi_dbus::{
    Config, Connection, Error, Interface, MethodError, NAME_FLAG_DO_NOT_QUEUE, RequestNameReply,
    names,
};
use support::{PrivateBus, run_clean};

fn is_unique_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(":1.") else {
        return false;
    };
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn the_client_gets_a_unique_name_lists_names_and_owns_a_name() {
    let bus = PrivateBus::start();
    run_clean(|| {
        let conn = Connection::connect(&bus.address).unwrap();
        let me = conn.unique_name().unwrap();
        assert!(is_unique_name(&me), "{me}");
        let names = conn.list_names().unwrap();
        assert!(
            names.iter().any(|n| n == "org.freedesktop.DBus"),
            "{names:?}"
        );
        assert!(names.contains(&me));
        assert_eq!(
            conn.request_name("com.example.Gruvi", 0).unwrap(),
            RequestNameReply::PrimaryOwner
        );
        assert_eq!(
            conn.request_name("com.example.Gruvi", 0).unwrap(),
            RequestNameReply::AlreadyOwner
        );
        assert_eq!(conn.name_owner("com.example.Gruvi").unwrap(), me);
        let id = conn.bus_id().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        // Another connection cannot take it and is told so.
        let other = Connection::connect(&bus.address).unwrap();
        assert_ne!(other.unique_name(), Some(me));
        assert_eq!(
            other
                .request_name("com.example.Gruvi", NAME_FLAG_DO_NOT_QUEUE)
                .unwrap(),
            RequestNameReply::Exists
        );
        assert_eq!(
            conn.release_name("com.example.Gruvi").unwrap(),
            gruvi_dbus::ReleaseNameReply::Released
        );
        other.close();
        conn.close();
    });
}

#[test]
fn an_unknown_method_is_a_typed_error_with_name_and_message() {
    let bus = PrivateBus::start();
    run_clean(|| {
        let conn = Connection::connect(&bus.address).unwrap();
        let err = conn
            .call_method::<_, ()>(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "NoSuchMethod",
                (),
            )
            .unwrap_err();
        let method = err.method_error().expect("an error reply");
        assert_eq!(method.name(), names::UNKNOWN_METHOD);
        assert!(method.message().contains("NoSuchMethod"), "{method}");
        // Reply arguments of the wrong type are an Args error, not a panic.
        let err = conn
            .call_method::<_, (u32,)>(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "GetId",
                (),
            )
            .unwrap_err();
        assert!(matches!(err, Error::Args(_)), "{err}");
        // Bad names are refused before anything is sent.
        let err = conn
            .call_method::<_, ()>("com.example", "no/slash", "com.example.I", "M", ())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        conn.close();
    });
}

/// A service on one connection, called by another through the bus.
fn echo_service(conn: &Connection) {
    let calls = Rc::new(Cell::new(0u32));
    let seen = calls.clone();
    conn.export(
        "/com/example/Gruvi",
        Interface::new("com.example.Gruvi")
            .method(
                "Echo",
                ("text",),
                ("text",),
                move |_, (text,): (String,)| {
                    seen.set(seen.get() + 1);
                    Ok((text,))
                },
            )
            .method("Sleep", ("ms",), (), |_, (ms,): (u32,)| {
                fiber_core::sleep(Duration::from_millis(ms.into()))
                    .map_err(|e| MethodError::failed(e.to_string()))?;
                Ok(())
            })
            .method("Fail", (), (), |_, ()| -> Result<(), MethodError> {
                Err(MethodError::new(
                    "com.example.Gruvi.Error.Failed",
                    "it failed",
                ))
            }),
    )
    .unwrap();
    assert_eq!(
        conn.request_name("com.example.Gruvi", 0).unwrap(),
        RequestNameReply::PrimaryOwner
    );
}

#[test]
fn exported_methods_answer_through_the_bus_and_a_slow_one_blocks_no_other() {
    let bus = PrivateBus::start();
    run_clean(|| {
        let service = Connection::connect(&bus.address).unwrap();
        echo_service(&service);
        let client = Connection::connect(&bus.address).unwrap();
        let call = |method: &str, arg: &str| -> Result<(String,), Error> {
            client.call_method(
                "com.example.Gruvi",
                "/com/example/Gruvi",
                "com.example.Gruvi",
                method,
                (arg,),
            )
        };
        assert_eq!(call("Echo", "hello").unwrap().0, "hello");
        let err = client
            .call_method::<_, ()>(
                "com.example.Gruvi",
                "/com/example/Gruvi",
                "com.example.Gruvi",
                "Fail",
                (),
            )
            .unwrap_err();
        assert_eq!(err.to_string(), "com.example.Gruvi.Error.Failed: it failed");
        let err = call("Echo", "x").map(drop);
        assert!(err.is_ok());
        let err = client
            .call_method::<_, ()>(
                "com.example.Gruvi",
                "/nowhere",
                "com.example.Gruvi",
                "Echo",
                ("x",),
            )
            .unwrap_err();
        assert_eq!(err.name(), Some(names::UNKNOWN_OBJECT));
        let err = client
            .call_method::<_, ()>(
                "com.example.Gruvi",
                "/com/example/Gruvi",
                "com.example.Gruvi",
                "Echo",
                (7,),
            )
            .unwrap_err();
        assert_eq!(err.name(), Some(names::INVALID_ARGS));

        // A slow call in one fiber, a fast one in another: the fast one is not held up.
        let slow_client = client.clone();
        let slow = fiber_core::spawn(move || {
            slow_client.call_method::<_, ()>(
                "com.example.Gruvi",
                "/com/example/Gruvi",
                "com.example.Gruvi",
                "Sleep",
                (3000u32,),
            )
        });
        fiber_core::sleep(Duration::from_millis(20)).unwrap();
        let start = Instant::now();
        assert_eq!(call("Echo", "fast").unwrap().0, "fast");
        assert!(
            start.elapsed() < Duration::from_millis(2500),
            "{:?}",
            start.elapsed()
        );
        assert!(!slow.is_finished());
        slow.join().unwrap().unwrap();
        client.close();
        service.close();
    });
}

#[test]
fn a_call_times_out_and_no_reply_expected_does_not_wait() {
    let bus = PrivateBus::start();
    run_clean(|| {
        let service = Connection::connect(&bus.address).unwrap();
        echo_service(&service);
        let mut config = Config::default();
        config.call_timeout = Duration::from_millis(200);
        let client = Connection::connect_with(&bus.address, config).unwrap();
        let start = Instant::now();
        let err = client
            .call_method::<_, ()>(
                "com.example.Gruvi",
                "/com/example/Gruvi",
                "com.example.Gruvi",
                "Sleep",
                (5000u32,),
            )
            .unwrap_err();
        assert!(matches!(err, Error::TimedOut), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(200));
        // NO_REPLY_EXPECTED: returns at once although the method takes 5 s.
        let start = Instant::now();
        client
            .call_method_no_reply(
                "com.example.Gruvi",
                "/com/example/Gruvi",
                "com.example.Gruvi",
                "Sleep",
                (5000u32,),
            )
            .unwrap();
        assert!(start.elapsed() < Duration::from_secs(2));
        // The connection still works.
        let (text,): (String,) = client
            .call_method(
                "com.example.Gruvi",
                "/com/example/Gruvi",
                "com.example.Gruvi",
                "Echo",
                ("after",),
            )
            .unwrap();
        assert_eq!(text, "after");
        client.close();
        service.close();
    });
}

#[test]
fn signals_go_both_ways_through_the_bus_with_receive_and_handlers() {
    let bus = PrivateBus::start();
    run_clean(|| {
        let a = Connection::connect(&bus.address).unwrap();
        let b = Connection::connect(&bus.address).unwrap();
        let at_b = b
            .add_match("type='signal',interface='com.example.Gruvi',member='Tick'")
            .unwrap();
        let heard = Rc::new(Cell::new(0u32));
        let h = heard.clone();
        a.on_signal(
            "type='signal',interface='com.example.Gruvi',member='Tock'",
            move |m| {
                h.set(m.read1::<u32>().unwrap_or(0));
            },
        )
        .unwrap();
        a.emit_signal("/com/example/Gruvi", "com.example.Gruvi", "Tick", (7u32,))
            .unwrap();
        // Not matched by b's rule: not delivered to its subscription.
        a.emit_signal("/com/example/Gruvi", "com.example.Gruvi", "Other", (1u32,))
            .unwrap();
        a.emit_signal("/com/example/Gruvi", "com.example.Gruvi", "Tick", (8u32,))
            .unwrap();
        let first = at_b.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(first.read1::<u32>().unwrap(), 7);
        assert_eq!(
            first.sender().unwrap().to_string(),
            a.unique_name().unwrap()
        );
        let second = at_b.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(second.read1::<u32>().unwrap(), 8);
        assert!(matches!(
            at_b.recv_timeout(Duration::from_millis(50)),
            Err(Error::TimedOut)
        ));
        b.emit_signal("/x", "com.example.Gruvi", "Tock", (42u32,))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while heard.get() != 42 && Instant::now() < deadline {
            fiber_core::sleep(Duration::from_millis(5)).unwrap();
        }
        assert_eq!(heard.get(), 42);
        a.close();
        // A subscription of a closed connection reports it.
        b.close();
        assert!(matches!(at_b.recv(), Err(Error::Disconnected(_))));
    });
}

#[test]
fn address_entries_are_tried_in_order_until_one_works() {
    let bus = PrivateBus::start();
    run_clean(|| {
        let missing = bus.dir.path().join("missing");
        let address = format!("unix:path={};{}", missing.display(), bus.address);
        let conn = Connection::connect(&address).unwrap();
        assert!(conn.unique_name().is_some());
        conn.close();
        // Refused TCP and a missing socket: both reported.
        let err = Connection::connect(&format!(
            "tcp:host=127.0.0.1,port=1;unix:path={}",
            missing.display()
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("could not connect to any address"), "{text}");
        assert!(
            text.contains("tcp:host=127.0.0.1,port=1") && text.contains("missing"),
            "{text}"
        );
        // A wrong GUID in the address is an authentication failure.
        let err = Connection::connect(&format!(
            "{},guid=00000000000000000000000000000000",
            bus.address.split(",guid=").next().unwrap()
        ))
        .unwrap_err();
        assert!(err.to_string().contains("GUID"), "{err}");
    });
}

#[test]
fn the_bus_closing_fails_pending_calls_at_once() {
    let mut bus = Some(PrivateBus::start());
    run_clean(|| {
        let address = bus.as_ref().unwrap().address.clone();
        let service = Connection::connect(&address).unwrap();
        echo_service(&service);
        let client = Connection::connect(&address).unwrap();
        let c = client.clone();
        let pending = fiber_core::spawn(move || {
            c.call_method::<_, ()>(
                "com.example.Gruvi",
                "/com/example/Gruvi",
                "com.example.Gruvi",
                "Sleep",
                (20_000u32,),
            )
        });
        fiber_core::sleep(Duration::from_millis(50)).unwrap();
        let start = Instant::now();
        drop(bus.take());
        let err = pending.join().unwrap().unwrap_err();
        assert!(matches!(err, Error::Disconnected(_)), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(client.is_closed());
        let again = client.list_names().unwrap_err();
        assert!(matches!(again, Error::Disconnected(_)), "{again}");
        service.close();
    });
}

#[test]
fn over_tcp_the_client_falls_back_to_cookie_sha1_then_anonymous() {
    // dbus-daemon keeps DBUS_COOKIE_SHA1 cookies in its user's ~/.dbus-keyrings (from the
    // password database, not $HOME): point the client at the same directory.
    let keyring = gruvi_dbus::auth::Keyring::new(support::passwd_home().join(".dbus-keyrings"));
    let cookie = PrivateBus::start_with("<auth>DBUS_COOKIE_SHA1</auth>", |_| {
        "tcp:host=127.0.0.1,port=0".into()
    });
    let anonymous = PrivateBus::start_with("<auth>ANONYMOUS</auth><allow_anonymous/>", |_| {
        "tcp:host=127.0.0.1,port=0".into()
    });
    run_clean(|| {
        let mut config = Config::default();
        config.keyring = Some(keyring.clone());
        let conn = Connection::connect_with(&cookie.address, config.clone()).unwrap();
        assert!(is_unique_name(&conn.unique_name().unwrap()));
        conn.close();
        let conn = Connection::connect_with(&anonymous.address, config.clone()).unwrap();
        assert!(
            conn.list_names()
                .unwrap()
                .contains(&conn.unique_name().unwrap())
        );
        conn.close();
        // Only EXTERNAL offered by us: the anonymous-only bus rejects us, clearly.
        config.mechanisms = vec![gruvi_dbus::auth::Mechanism::External];
        let err = Connection::connect_with(&anonymous.address, config).unwrap_err();
        assert!(err.to_string().contains("rejected EXTERNAL"), "{err}");
    });
}

#[test]
fn unix_fd_negotiation_with_the_daemon_is_agreed_and_harmless() {
    let bus = PrivateBus::start();
    run_clean(|| {
        let mut config = Config::default();
        config.negotiate_unix_fd = true;
        let conn = Connection::connect_with(&bus.address, config).unwrap();
        assert!(conn.list_names().unwrap().len() >= 2);
        conn.close();
    });
}

#[test]
fn an_arg0_rule_picks_the_name_owner_changes_of_one_name() {
    let bus = PrivateBus::start();
    run_clean(|| {
        let watcher = Connection::connect(&bus.address).unwrap();
        let changes = watcher
            .add_match("type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='com.example.Watched'")
            .unwrap();
        let owner = Connection::connect(&bus.address).unwrap();
        owner.request_name("com.example.Other", 0).unwrap();
        owner.request_name("com.example.Watched", 0).unwrap();
        let change = changes.recv_timeout(Duration::from_secs(10)).unwrap();
        let (name, old, new): (String, String, String) = change.read3().unwrap();
        assert_eq!(name, "com.example.Watched");
        assert_eq!(old, "");
        assert_eq!(Some(new), owner.unique_name());
        assert!(matches!(
            changes.recv_timeout(Duration::from_millis(100)),
            Err(Error::TimedOut)
        ));
        let err = watcher.add_match("arg99='x'").unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        owner.close();
        watcher.close();
    });
}

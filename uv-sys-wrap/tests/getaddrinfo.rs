//! Name resolution: forward and reverse lookups of loopback names, errors. Every lookup is of a
//! name the local resolver answers without the network (`/etc/hosts`, numeric addresses) or
//! one that can never resolve. Cancellation is tested in `work.rs`, which fills the thread pool.

mod support;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use support::{LIMIT, close_clean, run_until};
use uv_sys_wrap::{AddrInfo, AddrInfoHints, Error, Loop, Result, getaddrinfo, getnameinfo, sys};

type Answer<T> = Rc<RefCell<Option<Result<T>>>>;

/// Runs a lookup to completion and returns its result.
fn lookup(
    lp: &Loop,
    node: Option<&str>,
    service: Option<&str>,
    hints: AddrInfoHints,
    limit: Duration,
) -> Result<Vec<AddrInfo>> {
    let answer: Answer<Vec<AddrInfo>> = Rc::new(RefCell::new(None));
    let a = answer.clone();
    let pending = getaddrinfo(lp, node, service, hints, move |res| {
        *a.borrow_mut() = Some(res)
    })
    .unwrap();
    assert!(pending.is_pending());
    run_until(lp, limit, || answer.borrow().is_some());
    assert!(!pending.is_pending());
    assert_eq!(pending.cancel(), Err(Error::EBUSY), "too late to cancel");
    answer.take().unwrap()
}

fn reverse(lp: &Loop, addr: SocketAddr, flags: i32) -> (String, String) {
    let answer: Answer<(String, String)> = Rc::new(RefCell::new(None));
    let a = answer.clone();
    getnameinfo(lp, addr, flags, move |res| *a.borrow_mut() = Some(res)).unwrap();
    run_until(lp, LIMIT, || answer.borrow().is_some());
    answer.take().unwrap().expect("getnameinfo")
}

fn stream_hints(flags: i32) -> AddrInfoHints {
    AddrInfoHints {
        socktype: libc::SOCK_STREAM,
        flags,
        ..Default::default()
    }
}

#[test]
fn localhost_resolves_to_loopback() {
    let lp = Loop::new().unwrap();
    let found = lookup(&lp, Some("localhost"), Some("80"), stream_hints(0), LIMIT).unwrap();
    assert!(!found.is_empty());
    for ai in &found {
        assert!(ai.addr.ip().is_loopback(), "{ai:?}");
        assert_eq!(ai.addr.port(), 80);
        assert_eq!(ai.socktype, libc::SOCK_STREAM);
        let family = if ai.addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        assert_eq!(ai.family, family);
    }
    close_clean(lp);
}

#[test]
fn numeric_host_and_service_need_no_resolver() {
    let lp = Loop::new().unwrap();
    let flags = libc::AI_NUMERICHOST | libc::AI_NUMERICSERV;
    let found = lookup(&lp, Some("::1"), Some("8080"), stream_hints(flags), LIMIT).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].addr, "[::1]:8080".parse().unwrap());
    assert_eq!(found[0].family, libc::AF_INET6);
    assert_eq!(found[0].canonname, None);
    close_clean(lp);
}

#[test]
fn canonical_name_comes_with_the_first_result() {
    let lp = Loop::new().unwrap();
    let hints = AddrInfoHints {
        family: libc::AF_INET,
        ..stream_hints(libc::AI_CANONNAME)
    };
    let found = lookup(&lp, Some("localhost"), None, hints, LIMIT).unwrap();
    assert_eq!(found[0].addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert!(found[0].canonname.is_some(), "{found:?}");
    assert!(found[1..].iter().all(|ai| ai.canonname.is_none()));
    close_clean(lp);
}

#[test]
fn non_numeric_host_with_numerichost_is_eai_noname() {
    // AI_NUMERICHOST forbids any resolver traffic: the answer is always EAI_NONAME.
    let lp = Loop::new().unwrap();
    let hints = stream_hints(libc::AI_NUMERICHOST);
    let err = lookup(&lp, Some("localhost"), None, hints, LIMIT).unwrap_err();
    assert_eq!(err, Error::EAI_NONAME);
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    close_clean(lp);
}

#[test]
fn invalid_tld_never_resolves() {
    // `.invalid` never resolves (RFC 6761). Which error comes back depends on the host, not on
    // this code: NXDOMAIN from a DNS server or a local "not found" is EAI_NONAME (EAI_NODATA on
    // some libcs), while a configured but unreachable DNS server (an offline sandbox) is
    // EAI_AGAIN or EAI_FAIL. The limit allows for the resolver's own timeouts.
    let lp = Loop::new().unwrap();
    let err = lookup(
        &lp,
        Some("no-such-host.invalid"),
        None,
        stream_hints(0),
        Duration::from_secs(60),
    )
    .unwrap_err();
    let accepted = [
        Error::EAI_NONAME,
        Error::from_code(sys::uv_errno_t_UV_EAI_NODATA),
        Error::from_code(sys::uv_errno_t_UV_EAI_AGAIN),
        Error::from_code(sys::uv_errno_t_UV_EAI_FAIL),
    ];
    assert!(accepted.contains(&err), "{err:?}");
    close_clean(lp);
}

#[test]
fn neither_node_nor_service_is_einval() {
    let lp = Loop::new().unwrap();
    let res = getaddrinfo(&lp, None, None, AddrInfoHints::default(), |_| {
        panic!("no callback for a refused request")
    });
    assert_eq!(res.unwrap_err(), Error::EINVAL);
    let res = getaddrinfo(&lp, Some("a\0b"), None, AddrInfoHints::default(), |_| {
        panic!("no callback for a refused request")
    });
    assert_eq!(res.unwrap_err(), Error::EINVAL);
    assert_eq!(lp.live_requests(), 0);
    close_clean(lp);
}

#[test]
fn getnameinfo_names_loopback_port_80() {
    let lp = Loop::new().unwrap();
    let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let (host, service) = reverse(&lp, addr, 0);
    // /etc/hosts names 127.0.0.1 (usually "localhost"); /etc/services names port 80 "http"
    // when the file exists.
    assert!(!host.is_empty());
    assert!(service == "http" || service == "80", "{service}");
    let flags = libc::NI_NUMERICHOST | libc::NI_NUMERICSERV;
    assert_eq!(
        reverse(&lp, addr, flags),
        ("127.0.0.1".to_owned(), "80".to_owned())
    );
    let v6: SocketAddr = "[::1]:443".parse().unwrap();
    assert_eq!(
        reverse(&lp, v6, flags),
        ("::1".to_owned(), "443".to_owned())
    );
    close_clean(lp);
}

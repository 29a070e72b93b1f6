//! Match rules (`type='signal',interface='com.example.I',arg0='x'`) as the specification
//! defines them, for filtering received signals locally. (The `dbus` crate's `MatchRule`
//! knows neither `argN`, `argNpath`, `arg0namespace` nor `destination`.)

use dbus::Message;
use dbus::arg::ArgType;

use crate::error::Error;

/// A parsed match rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MatchRule {
    kind: Option<dbus::MessageType>,
    sender: Option<String>,
    interface: Option<String>,
    member: Option<String>,
    path: Option<String>,
    path_namespace: Option<String>,
    destination: Option<String>,
    /// `argN='value'`: the Nth argument is that string.
    args: Vec<(u8, String)>,
    /// `argNpath='value'`: the Nth argument (string or object path) is that path, or one is a
    /// `/`-terminated prefix of the other.
    arg_paths: Vec<(u8, String)>,
    /// `arg0namespace='a.b'`: the first argument is `a.b` or starts with `a.b.`.
    arg0_namespace: Option<String>,
}

impl MatchRule {
    /// Parses `rule`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a key without `=`, an unknown key or message type, an
    /// unterminated quote, an argument index over 63, or a key given twice.
    pub(crate) fn parse(rule: &str) -> Result<MatchRule, Error> {
        let bad = |what: String| Error::InvalidInput(format!("match rule {rule:?}: {what}"));
        let mut parsed = MatchRule::default();
        let mut seen = Vec::new();
        for (key, value) in split(rule).map_err(&bad)? {
            if seen.contains(&key) {
                return Err(bad(format!("{key} given twice")));
            }
            seen.push(key.clone());
            match key.as_str() {
                "type" => {
                    let kind = dbus::MessageType::try_from(value.as_str())
                        .map_err(|()| bad(format!("unknown message type {value:?}")))?;
                    parsed.kind = Some(kind);
                }
                "sender" => parsed.sender = Some(value),
                "interface" => parsed.interface = Some(value),
                "member" => parsed.member = Some(value),
                "path" => parsed.path = Some(value),
                "path_namespace" => parsed.path_namespace = Some(value),
                "destination" => parsed.destination = Some(value),
                "eavesdrop" => {}
                "arg0namespace" => parsed.arg0_namespace = Some(value),
                other => {
                    let (index, is_path) =
                        arg_key(other).ok_or_else(|| bad(format!("unknown key {other:?}")))?;
                    if is_path {
                        parsed.arg_paths.push((index, value));
                    } else {
                        parsed.args.push((index, value));
                    }
                }
            }
        }
        if parsed.path.is_some() && parsed.path_namespace.is_some() {
            return Err(bad("path and path_namespace together".into()));
        }
        Ok(parsed)
    }

    /// Whether `message` matches. A well-known `sender` is not checked here: a bus rewrites
    /// senders to unique names and applies the rule itself.
    pub(crate) fn matches(&self, message: &Message) -> bool {
        let same = |want: &Option<String>, got: Option<String>| {
            want.as_ref()
                .is_none_or(|w| got.as_deref() == Some(w.as_str()))
        };
        if self.kind.is_some_and(|k| k != message.msg_type()) {
            return false;
        }
        if let Some(sender) = &self.sender
            && sender.starts_with(':')
            && message.sender().as_deref() != Some(sender.as_str())
        {
            return false;
        }
        let path = message.path().map(|p| p.to_string());
        let in_namespace = self.path_namespace.as_ref().is_none_or(|ns| {
            path.as_deref().is_some_and(|p| {
                ns == "/"
                    || p == ns
                    || p.strip_prefix(ns.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        });
        in_namespace
            && same(&self.path, path)
            && same(&self.interface, message.interface().map(|i| i.to_string()))
            && same(&self.member, message.member().map(|m| m.to_string()))
            && same(
                &self.destination,
                message.destination().map(|d| d.to_string()),
            )
            && self.args_match(message)
    }

    fn args_match(&self, message: &Message) -> bool {
        if self.args.is_empty() && self.arg_paths.is_empty() && self.arg0_namespace.is_none() {
            return true;
        }
        let strings = string_args(message);
        let arg = |i: u8| strings.get(usize::from(i)).and_then(|a| a.as_ref());
        self.args
            .iter()
            .all(|(i, want)| arg(*i).is_some_and(|(got, is_path)| !is_path && got == want))
            && self.arg_paths.iter().all(|(i, want)| {
                arg(*i).is_some_and(|(got, _)| {
                    got == want
                        || (want.ends_with('/') && got.starts_with(want.as_str()))
                        || (got.ends_with('/') && want.starts_with(got.as_str()))
                })
            })
            && self.arg0_namespace.as_ref().is_none_or(|ns| {
                arg(0).is_some_and(|(got, is_path)| {
                    !is_path
                        && (got == ns
                            || got
                                .strip_prefix(ns.as_str())
                                .is_some_and(|rest| rest.starts_with('.')))
                })
            })
    }
}

/// The first 64 arguments: each string or object path (with whether it is a path), `None`
/// for other types.
fn string_args(message: &Message) -> Vec<Option<(String, bool)>> {
    let mut out = Vec::new();
    let mut iter = message.iter_init();
    while out.len() < 64 {
        let arg = match iter.arg_type() {
            ArgType::Invalid => break,
            ArgType::String => iter.get::<&str>().map(|s| (s.to_owned(), false)),
            ArgType::ObjectPath => iter.get::<dbus::Path>().map(|p| (p.to_string(), true)),
            _ => None,
        };
        out.push(arg);
        iter.next();
    }
    out
}

/// `argN` or `argNpath` with N in 0..=63.
fn arg_key(key: &str) -> Option<(u8, bool)> {
    let rest = key.strip_prefix("arg")?;
    let (digits, is_path) = match rest.strip_suffix("path") {
        Some(digits) => (digits, true),
        None => (rest, false),
    };
    if digits.is_empty() || digits.len() > 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index: u8 = digits.parse().ok()?;
    (index <= 63).then_some((index, is_path))
}

/// Splits a rule into `key=value` pairs: values may be quoted with `'`; outside quotes `\'`
/// is an apostrophe and `,` ends the pair.
fn split(rule: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = rule.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace() || *c == ',').is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if chars.next() != Some('=') {
            return Err(format!("{:?} has no '='", key.trim()));
        }
        let mut value = String::new();
        let mut quoted = false;
        loop {
            match chars.next() {
                None if quoted => return Err("an unterminated quote".into()),
                None => break,
                Some('\'') => quoted = !quoted,
                Some(',') if !quoted => break,
                Some('\\') if !quoted && chars.peek() == Some(&'\'') => {
                    chars.next();
                    value.push('\'');
                }
                Some(c) => value.push(c),
            }
        }
        pairs.push((key.trim().to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(path: &str, iface: &str, member: &str) -> Message {
        Message::new_signal(path, iface, member).unwrap()
    }

    #[test]
    fn keys_and_quoting_parse_as_the_specification_says() {
        let rule = MatchRule::parse(
            r"type='signal', interface='com.example.I',arg0='don'\''t',arg1path='/a/'",
        )
        .unwrap();
        assert_eq!(rule.kind, Some(dbus::MessageType::Signal));
        assert_eq!(rule.interface.as_deref(), Some("com.example.I"));
        assert_eq!(rule.args, [(0, "don't".to_owned())]);
        assert_eq!(rule.arg_paths, [(1, "/a/".to_owned())]);
        for bad in [
            "type='bogus'",
            "nokey",
            "arg64='x'",
            "argx='y'",
            "member='a",
            "member='a',member='b'",
            "path='/a',path_namespace='/a'",
        ] {
            assert!(MatchRule::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(MatchRule::parse("").unwrap(), MatchRule::default());
    }

    #[test]
    fn header_fields_and_path_namespaces_match() {
        let rule =
            MatchRule::parse("type='signal',member='Tick',path_namespace='/com/example'").unwrap();
        assert!(rule.matches(&signal("/com/example", "a.B", "Tick")));
        assert!(rule.matches(&signal("/com/example/x", "a.B", "Tick")));
        assert!(!rule.matches(&signal("/com/examplex", "a.B", "Tick")));
        assert!(!rule.matches(&signal("/com", "a.B", "Tick")));
        assert!(!rule.matches(&signal("/com/example", "a.B", "Tock")));
        let root = MatchRule::parse("path_namespace='/'").unwrap();
        assert!(root.matches(&signal("/any/thing", "a.B", "C")));
        let call = MatchRule::parse("type='method_call'").unwrap();
        assert!(!call.matches(&signal("/a", "a.B", "C")));
    }

    #[test]
    fn arguments_match_by_value_path_prefix_and_namespace() {
        let m = signal("/a", "a.B", "NameOwnerChanged").append3("com.example.Gruvi", "", ":1.5");
        assert!(
            MatchRule::parse("arg0='com.example.Gruvi',arg2=':1.5'")
                .unwrap()
                .matches(&m)
        );
        assert!(!MatchRule::parse("arg0='com.example'").unwrap().matches(&m));
        assert!(
            MatchRule::parse("arg0namespace='com.example'")
                .unwrap()
                .matches(&m)
        );
        assert!(
            !MatchRule::parse("arg0namespace='com.ex'")
                .unwrap()
                .matches(&m)
        );
        assert!(!MatchRule::parse("arg5='x'").unwrap().matches(&m));
        let p =
            signal("/a", "a.B", "C").append2(dbus::Path::new("/com/example/obj").unwrap(), 7u32);
        assert!(
            MatchRule::parse("arg0path='/com/example/'")
                .unwrap()
                .matches(&p)
        );
        assert!(
            MatchRule::parse("arg0path='/com/example/obj'")
                .unwrap()
                .matches(&p)
        );
        assert!(!MatchRule::parse("arg0path='/com/ex'").unwrap().matches(&p));
        // An object path is not a string for argN, and a number is neither.
        assert!(
            !MatchRule::parse("arg0='/com/example/obj'")
                .unwrap()
                .matches(&p)
        );
        assert!(!MatchRule::parse("arg1='7'").unwrap().matches(&p));
    }

    #[test]
    fn only_unique_senders_are_checked_locally() {
        let mut m = signal("/a", "a.B", "C");
        m.set_sender(Some(dbus::strings::BusName::new(":1.9").unwrap()));
        assert!(MatchRule::parse("sender=':1.9'").unwrap().matches(&m));
        assert!(!MatchRule::parse("sender=':1.8'").unwrap().matches(&m));
        assert!(
            MatchRule::parse("sender='com.example.Owner'")
                .unwrap()
                .matches(&m)
        );
    }
}

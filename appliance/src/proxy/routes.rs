//! Choosing a route from a ClientHello: by server name (exact, then the
//! longest matching wildcard), then by ALPN, then the default, or a refusal.
//!
//! Names follow nginx's `server_name`: `*.example.com` matches any name
//! ending in `.example.com` at any depth, never `example.com` itself; an
//! exact name wins over every wildcard, and a longer wildcard over a
//! shorter one. Among the routes of the chosen name, one whose `alpn` list
//! shares a protocol with the client's wins over one without a list (any
//! ALPN); the client's order decides between routes that both match.

use crate::proxy::hello::Hello;

/// A server-name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    /// This name exactly (lower-case, no trailing dot).
    Exact(String),
    /// Any name ending in `.` + this suffix.
    Wildcard(String),
}

impl NamePattern {
    /// Parses `name` or `*.suffix` (case-insensitive, a trailing dot
    /// ignored); `None` for an empty name or a `*` anywhere else.
    pub fn parse(text: &str) -> Option<NamePattern> {
        let lower = text.trim().trim_end_matches('.').to_ascii_lowercase();
        if let Some(suffix) = lower.strip_prefix("*.") {
            return (!suffix.is_empty() && !suffix.contains('*'))
                .then(|| NamePattern::Wildcard(suffix.to_owned()));
        }
        (!lower.is_empty() && !lower.contains('*')).then_some(NamePattern::Exact(lower))
    }

    /// How specifically this pattern matches `name`: `None` if it does not;
    /// exact matches rank above every wildcard, longer wildcards above
    /// shorter ones.
    fn rank(&self, name: &str) -> Option<usize> {
        match self {
            NamePattern::Exact(n) => (n == name).then_some(usize::MAX),
            NamePattern::Wildcard(suffix) => name
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
                .then_some(suffix.len()),
        }
    }
}

/// One route's matching rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Server names it takes.
    pub names: Vec<NamePattern>,
    /// ALPN protocols it takes; empty: any (and hellos without ALPN).
    pub alpn: Vec<Vec<u8>>,
}

/// What to do with a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Use route `n` (an index into the rules given to [`Table::new`]).
    Route(usize),
    /// Use the default route `n`: no rule matched.
    Default(usize),
    /// Close the connection: no rule matched and there is no default.
    Refuse,
}

/// The rules, in order, and the default.
#[derive(Debug, Clone)]
pub struct Table {
    rules: Vec<Rule>,
    default: Option<usize>,
}

impl Table {
    /// A table of `rules`; `default` (an index into them) takes whatever
    /// no rule matches, else such connections are refused.
    pub fn new(rules: Vec<Rule>, default: Option<usize>) -> Table {
        Table { rules, default }
    }

    /// Where `hello` goes.
    pub fn decide(&self, hello: &Hello) -> Decision {
        let fallback = || self.default.map_or(Decision::Refuse, Decision::Default);
        let Some(name) = hello.server_name.as_deref() else {
            return fallback();
        };
        // The most specific name match over every rule.
        let ranked: Vec<(usize, usize)> = self
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.names
                    .iter()
                    .filter_map(|p| p.rank(name))
                    .max()
                    .map(|k| (i, k))
            })
            .collect();
        let Some(best) = ranked.iter().map(|&(_, k)| k).max() else {
            return fallback();
        };
        let candidates = ranked.iter().filter(|&&(_, k)| k == best).map(|&(i, _)| i);
        // Of those, the first whose ALPN list has the client's most
        // preferred protocol; else the first without a list.
        let mut any_alpn = None;
        let mut by_alpn: Option<(usize, usize)> = None;
        for i in candidates {
            let rule = &self.rules[i];
            if rule.alpn.is_empty() {
                any_alpn.get_or_insert(i);
                continue;
            }
            if let Some(pos) = hello.alpn.iter().position(|p| rule.alpn.contains(p)) {
                if by_alpn.is_none_or(|(_, best_pos)| pos < best_pos) {
                    by_alpn = Some((i, pos));
                }
            }
        }
        match (by_alpn, any_alpn) {
            (Some((i, _)), _) | (None, Some(i)) => Decision::Route(i),
            (None, None) => fallback(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(name: Option<&str>, alpn: &[&str]) -> Hello {
        Hello {
            server_name: name.map(str::to_owned),
            alpn: alpn.iter().map(|a| a.as_bytes().to_vec()).collect(),
            tls13: true,
            ech: false,
        }
    }

    fn rule(names: &[&str], alpn: &[&str]) -> Rule {
        Rule {
            names: names
                .iter()
                .map(|n| NamePattern::parse(n).unwrap())
                .collect(),
            alpn: alpn.iter().map(|a| a.as_bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn exact_beats_wildcards_and_longer_wildcards_beat_shorter() {
        let t = Table::new(
            vec![
                rule(&["*.example.com"], &[]),
                rule(&["api.example.com"], &[]),
                rule(&["*.eu.example.com"], &[]),
            ],
            None,
        );
        assert_eq!(
            t.decide(&hello(Some("api.example.com"), &[])),
            Decision::Route(1)
        );
        assert_eq!(
            t.decide(&hello(Some("www.example.com"), &[])),
            Decision::Route(0)
        );
        assert_eq!(
            t.decide(&hello(Some("a.b.example.com"), &[])),
            Decision::Route(0)
        );
        assert_eq!(
            t.decide(&hello(Some("x.eu.example.com"), &[])),
            Decision::Route(2)
        );
        // A wildcard never takes the bare domain, nor a name that only
        // ends with the same letters.
        assert_eq!(t.decide(&hello(Some("example.com"), &[])), Decision::Refuse);
        assert_eq!(
            t.decide(&hello(Some("badexample.com"), &[])),
            Decision::Refuse
        );
    }

    #[test]
    fn alpn_picks_among_routes_of_one_name() {
        let t = Table::new(
            vec![
                rule(&["svc.local"], &[]),
                rule(&["svc.local"], &["h2"]),
                rule(&["svc.local"], &["mqtt", "x-custom"]),
            ],
            Some(0),
        );
        assert_eq!(
            t.decide(&hello(Some("svc.local"), &["h2", "http/1.1"])),
            Decision::Route(1)
        );
        assert_eq!(
            t.decide(&hello(Some("svc.local"), &["x-custom", "h2"])),
            Decision::Route(2)
        );
        assert_eq!(
            t.decide(&hello(Some("svc.local"), &["http/1.1"])),
            Decision::Route(0)
        );
        assert_eq!(t.decide(&hello(Some("svc.local"), &[])), Decision::Route(0));
    }

    #[test]
    fn no_name_or_no_match_goes_to_the_default_or_is_refused() {
        let only_h2 = vec![rule(&["svc.local"], &["h2"])];
        let t = Table::new(only_h2.clone(), None);
        assert_eq!(t.decide(&hello(None, &["h2"])), Decision::Refuse);
        assert_eq!(
            t.decide(&hello(Some("svc.local"), &["http/1.1"])),
            Decision::Refuse
        );
        let mut with_default = only_h2;
        with_default.push(rule(&["default.invalid"], &[]));
        let t = Table::new(with_default, Some(1));
        assert_eq!(t.decide(&hello(None, &[])), Decision::Default(1));
        assert_eq!(
            t.decide(&hello(Some("other.local"), &[])),
            Decision::Default(1)
        );
    }

    #[test]
    fn patterns_parse_like_server_names() {
        assert_eq!(
            NamePattern::parse("*.Example.COM."),
            Some(NamePattern::Wildcard("example.com".into()))
        );
        assert_eq!(
            NamePattern::parse("A.b"),
            Some(NamePattern::Exact("a.b".into()))
        );
        for bad in ["", "*", "*.", "a.*.b", "*.*.b"] {
            assert_eq!(NamePattern::parse(bad), None, "{bad:?}");
        }
    }
}

//! Linkerd's built-in `/$/<className>` namers (`io.buoyant.rinet` and the
//! path-rewriting `io.buoyant.*` namers).
//!
//! Each gets the path after `/$/<className>` and answers at once with a
//! constant tree. Labels are read as UTF-8 (malformed bytes replaced), as
//! Linkerd's `Path.Utf8` does. Every one of them answers `~` for an empty
//! path; the rewriting ones answer a [`Name::Path`] leaf, so binding goes on
//! through the dtab, or `~` when the path does not have their shape.

use std::borrow::Cow;
use std::sync::Arc;

use dtab::{Label, NameTree, Path};

use super::inet::{InetResolver, parse_port};
use crate::{Activity, Addr, Bound, Live, Lookup, Name, Namer, NamingError};

/// The class name of [`Rinet`].
pub const RINET: &str = "io.buoyant.rinet";

/// `/$/io.buoyant.rinet/<port>/<host>/rest…`: `inet` with the port first.
///
/// Binds to `id = /$/io.buoyant.rinet/<port>/<host>`, residual `/rest…`, and
/// the live address of `host:port`. A port that is not a number in
/// `0..=65535` still binds, with a failed address, as in Linkerd.
#[derive(Clone, Debug)]
pub struct Rinet {
    inet: Arc<InetResolver>,
}

impl Rinet {
    /// The namer, resolving hosts through `inet`.
    pub fn new(inet: Arc<InetResolver>) -> Rinet {
        Rinet { inet }
    }
}

impl Namer for Rinet {
    fn lookup(&self, path: &Path) -> Lookup {
        let Some([port, host]) = utf8_elems(path) else {
            return answer(Ok(None));
        };
        let addr = match parse_port(&port) {
            Ok(port) => self.inet.resolve(&host, port),
            Err(why) => Live::constant(Addr::Failed(why.into())),
        };
        let id: Option<Vec<Label>> = ["$", RINET, &*port, &*host]
            .into_iter()
            .map(Label::new)
            .collect();
        let Some(id) = id.map(Path::from_labels) else {
            return answer(Ok(None));
        };
        let bound = Bound::new(id, path.drop_first(2), addr);
        Live::constant(Activity::Ok(NameTree::Leaf(Name::Bound(bound))))
    }
}

/// The path-rewriting `/$/io.buoyant.*` namers of Linkerd, one variant per
/// class (the result shapes are in the dtab spec's table, §6.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rewriter {
    /// `io.buoyant.hostportPfx`: `/pfx/host:port/rest…` → `/pfx/host/port/rest…`.
    HostPortPfx,
    /// `io.buoyant.porthostPfx`: `/pfx/host:port/rest…` → `/pfx/port/host/rest…`.
    PortHostPfx,
    /// `io.buoyant.http.anyMethod`: `/METHOD/rest…` → `/rest…`.
    AnyMethod,
    /// `io.buoyant.http.anyMethodPfx`: `/pfx/METHOD/rest…` → `/pfx/rest…`.
    AnyMethodPfx,
    /// `io.buoyant.http.anyHost`: `/host/rest…` → `/rest…`.
    AnyHost,
    /// `io.buoyant.http.anyHostPfx`: `/pfx/host/rest…` → `/pfx/rest…`.
    AnyHostPfx,
    /// `io.buoyant.http.subdomainOf`: `/domain/sub.domain[:port]/rest…` → `/sub/rest…`.
    SubdomainOf,
    /// `io.buoyant.http.subdomainOfPfx`: `/domain/pfx/sub.domain[:port]/rest…` → `/pfx/sub/rest…`.
    SubdomainOfPfx,
    /// `io.buoyant.http.domainToPath`: `/a.b.c/rest…` → `/c/b/a/rest…`.
    DomainToPath,
    /// `io.buoyant.http.domainToPathPfx`: `/pfx/a.b.c/rest…` → `/pfx/c/b/a/rest…`.
    DomainToPathPfx,
}

impl Rewriter {
    /// Every rewriting namer.
    pub const ALL: [Rewriter; 10] = [
        Rewriter::HostPortPfx,
        Rewriter::PortHostPfx,
        Rewriter::AnyMethod,
        Rewriter::AnyMethodPfx,
        Rewriter::AnyHost,
        Rewriter::AnyHostPfx,
        Rewriter::SubdomainOf,
        Rewriter::SubdomainOfPfx,
        Rewriter::DomainToPath,
        Rewriter::DomainToPathPfx,
    ];

    /// The Linkerd class name that selects this namer in `/$/<className>`.
    pub fn class_name(self) -> &'static str {
        match self {
            Rewriter::HostPortPfx => "io.buoyant.hostportPfx",
            Rewriter::PortHostPfx => "io.buoyant.porthostPfx",
            Rewriter::AnyMethod => "io.buoyant.http.anyMethod",
            Rewriter::AnyMethodPfx => "io.buoyant.http.anyMethodPfx",
            Rewriter::AnyHost => "io.buoyant.http.anyHost",
            Rewriter::AnyHostPfx => "io.buoyant.http.anyHostPfx",
            Rewriter::SubdomainOf => "io.buoyant.http.subdomainOf",
            Rewriter::SubdomainOfPfx => "io.buoyant.http.subdomainOfPfx",
            Rewriter::DomainToPath => "io.buoyant.http.domainToPath",
            Rewriter::DomainToPathPfx => "io.buoyant.http.domainToPathPfx",
        }
    }

    /// The rewritten path; `Ok(None)` when `path` does not have this
    /// namer's shape; `Err` when the result would have an empty element
    /// (e.g. the domain `a..b`), which Linkerd's `Path` refuses too.
    pub fn rewrite(self, path: &Path) -> Result<Option<Path>, String> {
        if path.is_empty() {
            return Ok(None);
        }
        let parts: Option<Vec<String>> = match self {
            Rewriter::HostPortPfx | Rewriter::PortHostPfx => {
                utf8_elems(path).and_then(|[pfx, host_port]| {
                    let (host, port) = host_colon_port(&host_port)?;
                    let (first, second) = match self {
                        Rewriter::HostPortPfx => (host, port),
                        _ => (port, host),
                    };
                    Some(vec![pfx.to_string(), first.to_owned(), second.to_owned()])
                })
            }
            Rewriter::AnyMethod => {
                utf8_elems(path).and_then(|[method]| is_method(&method).then(Vec::new))
            }
            Rewriter::AnyMethodPfx => utf8_elems(path)
                .and_then(|[pfx, method]| is_method(&method).then(|| vec![pfx.into_owned()])),
            Rewriter::AnyHost => utf8_elems(path).and_then(|[host]| is_host(&host).then(Vec::new)),
            Rewriter::AnyHostPfx => utf8_elems(path)
                .and_then(|[pfx, host]| is_host(&host).then(|| vec![pfx.into_owned()])),
            Rewriter::SubdomainOf => utf8_elems(path).and_then(|[domain, host]| {
                subdomain(&domain, &host).map(|sub| vec![sub.to_owned()])
            }),
            Rewriter::SubdomainOfPfx => utf8_elems(path).and_then(|[domain, pfx, host]| {
                subdomain(&domain, &host).map(|sub| vec![pfx.to_string(), sub.to_owned()])
            }),
            Rewriter::DomainToPath => {
                utf8_elems(path).and_then(|[host]| is_host(&host).then(|| reversed_domain(&host)))
            }
            Rewriter::DomainToPathPfx => utf8_elems(path).and_then(|[pfx, host]| {
                is_host(&host).then(|| {
                    let mut parts = vec![pfx.into_owned()];
                    parts.extend(reversed_domain(&host));
                    parts
                })
            }),
        };
        let Some(parts) = parts else {
            return Ok(None);
        };
        let consumed = self.consumed();
        let mut labels = Vec::with_capacity(parts.len() + path.len() - consumed);
        for part in &parts {
            let label = Label::new(part).ok_or_else(|| {
                format!(
                    "{}: rewriting {} gives an empty path element",
                    self.class_name(),
                    path.show()
                )
            })?;
            labels.push(label);
        }
        Ok(Some(
            Path::from_labels(labels).concat(&path.drop_first(consumed)),
        ))
    }

    /// How many leading elements the pattern reads.
    fn consumed(self) -> usize {
        match self {
            Rewriter::AnyMethod | Rewriter::AnyHost | Rewriter::DomainToPath => 1,
            Rewriter::SubdomainOfPfx => 3,
            _ => 2,
        }
    }
}

impl Namer for Rewriter {
    fn lookup(&self, path: &Path) -> Lookup {
        answer(self.rewrite(path))
    }
}

/// Linkerd's built-in system namers, by class name, for the `/$/<className>`
/// registry.
pub fn linkerd_system_namers(inet: Arc<InetResolver>) -> Vec<(&'static str, Arc<dyn Namer>)> {
    let mut namers: Vec<(&'static str, Arc<dyn Namer>)> = vec![(RINET, Arc::new(Rinet::new(inet)))];
    namers.extend(Rewriter::ALL.map(|r| (r.class_name(), Arc::new(r) as Arc<dyn Namer>)));
    namers
}

fn answer(rewritten: Result<Option<Path>, String>) -> Lookup {
    Live::constant(match rewritten {
        Ok(Some(path)) => Activity::Ok(NameTree::Leaf(Name::Path(path))),
        Ok(None) => Activity::Ok(NameTree::Neg),
        Err(why) => Activity::Failed(NamingError::namer(why)),
    })
}

/// The first `N` labels as text, or `None` when the path is shorter
/// (Linkerd's `path.take(N) match { case Path.Utf8(a, b, …) => … }`).
fn utf8_elems<const N: usize>(path: &Path) -> Option<[Cow<'_, str>; N]> {
    let elems = path.elems().get(..N)?;
    let texts: Vec<Cow<'_, str>> = elems
        .iter()
        .map(|l| String::from_utf8_lossy(l.as_bytes()))
        .collect();
    texts.try_into().ok()
}

/// `[A-Z]+`.
fn is_method(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase())
}

/// `^[A-Za-z0-9.:_-]+$`: a coarse match for DNS names and IPv4/IPv6 literals.
fn is_host(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// `host:port`, split like Java's `split(":")` into exactly two parts, the
/// port being a DNS label (`[a-z0-9][-a-z0-9]*`, at most 63 characters), so
/// a port name like `http` is accepted but `HTTP` is not.
fn host_colon_port(s: &str) -> Option<(&str, &str)> {
    match java_split(s, ':').as_slice() {
        [host, port] if is_dns_label(port) => Some((host, port)),
        _ => None,
    }
}

/// Linkerd's `[a-z0-9][-a-z0-9]*[a-z0-9]?` with its 63-character limit.
fn is_dns_label(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The part of `host` (without any `:port`) before `.domain`, if both are
/// host-like and that part is not empty.
fn subdomain<'h>(domain: &str, host: &'h str) -> Option<&'h str> {
    if !is_host(domain) || !is_host(host) {
        return None;
    }
    // Linkerd drops the port only when the `:` is not the first character.
    let host = match host.find(':') {
        Some(i) if i > 0 => &host[..i],
        _ => host,
    };
    host.strip_suffix(domain)
        .and_then(|h| h.strip_suffix('.'))
        .filter(|sub| !sub.is_empty())
}

/// `a.b.c` → `[c, b, a]`, splitting like Java's `split("\\.")`.
fn reversed_domain(host: &str) -> Vec<String> {
    java_split(host, '.')
        .into_iter()
        .rev()
        .map(str::to_owned)
        .collect()
}

/// Java's `String.split` with a one-character separator: trailing empty
/// strings are removed.
fn java_split(s: &str, sep: char) -> Vec<&str> {
    let mut parts: Vec<&str> = s.split(sep).collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::inet::{DnsAnswer, DnsResolve};

    fn p(s: &str) -> Path {
        Path::read(s).unwrap()
    }

    fn rewrite(r: Rewriter, path: &str) -> Option<String> {
        r.rewrite(&p(path)).unwrap().map(|p| p.show())
    }

    fn lookup(r: Rewriter, path: &str) -> Activity<NameTree<Name>> {
        (*r.lookup(&p(path)).load()).clone()
    }

    /// Never answers; the rinet tests use literal hosts.
    struct NoDns;
    impl DnsResolve for NoDns {
        fn resolve(
            &self,
            _host: &str,
        ) -> futures_util::future::BoxFuture<'static, Result<DnsAnswer, String>> {
            Box::pin(std::future::pending())
        }
    }

    fn rinet() -> Rinet {
        Rinet::new(Arc::new(InetResolver::new(Arc::new(NoDns))))
    }

    #[test]
    fn host_port_and_port_host() {
        use Rewriter::*;
        assert_eq!(
            rewrite(HostPortPfx, "/ia/127.1:8080/etc").as_deref(),
            Some("/ia/127.1/8080/etc")
        );
        assert_eq!(
            rewrite(HostPortPfx, "/ia/google.com:http/etc").as_deref(),
            Some("/ia/google.com/http/etc")
        );
        assert_eq!(
            rewrite(PortHostPfx, "/ia/127.1:8080/etc").as_deref(),
            Some("/ia/8080/127.1/etc")
        );
        assert_eq!(
            rewrite(PortHostPfx, "/ia/127.1:http").as_deref(),
            Some("/ia/http/127.1")
        );
        // Java's split drops a trailing empty part.
        assert_eq!(
            rewrite(HostPortPfx, "/ia/h:80:").as_deref(),
            Some("/ia/h/80")
        );
        assert_eq!(
            rewrite(HostPortPfx, "/ia/h:8-").as_deref(),
            Some("/ia/h/8-")
        );
        for bad in [
            "/ia/google.com:8180:abcdef/etc",
            "/ia/google.com:http:abcdef",
            "/ia/google.com:HTTP",
            "/ia/google.com",
            "/ia/a:b:c",
            "/ia/h:-80",
            "/ia/h:",
            "/ia",
        ] {
            assert_eq!(rewrite(HostPortPfx, bad), None, "{bad}");
        }
        let long_port = format!("/ia/h:{}", "a".repeat(64));
        assert_eq!(rewrite(HostPortPfx, &long_port), None);
        let max_port = format!("/ia/h:{}", "a".repeat(63));
        assert!(rewrite(HostPortPfx, &max_port).is_some());
        // An empty host would be an empty path element.
        assert!(HostPortPfx.rewrite(&p("/ia/:80")).is_err());
        assert!(matches!(
            lookup(HostPortPfx, "/ia/:80"),
            Activity::Failed(_)
        ));
    }

    #[test]
    fn any_method() {
        use Rewriter::*;
        assert_eq!(
            rewrite(AnyMethod, "/GET/foo/bar/bah").as_deref(),
            Some("/foo/bar/bah")
        );
        assert_eq!(rewrite(AnyMethod, "/DELETE").as_deref(), Some("/"));
        assert_eq!(rewrite(AnyMethod, "/A.B/foo/bar/bah"), None);
        assert_eq!(rewrite(AnyMethod, "/get/foo"), None);
        assert_eq!(
            rewrite(AnyMethodPfx, "/foo/GET/bar/bah").as_deref(),
            Some("/foo/bar/bah")
        );
        assert_eq!(rewrite(AnyMethodPfx, "/foo/A.B/bar/bah"), None);
        assert_eq!(rewrite(AnyMethodPfx, "/foo"), None);
    }

    #[test]
    fn any_host() {
        use Rewriter::*;
        assert_eq!(
            rewrite(AnyHost, "/a.b/foo/bar/bah").as_deref(),
            Some("/foo/bar/bah")
        );
        assert_eq!(rewrite(AnyHost, "/::1/foo").as_deref(), Some("/foo"));
        assert_eq!(rewrite(AnyHost, "/a%b/foo/bar/bah"), None);
        assert_eq!(
            rewrite(AnyHostPfx, "/foo/a.b/bar/bah").as_deref(),
            Some("/foo/bar/bah")
        );
        assert_eq!(rewrite(AnyHostPfx, "/foo/a%b/bar/bah"), None);
        assert_eq!(rewrite(AnyHostPfx, "/foo"), None);
    }

    #[test]
    fn subdomain_of() {
        use Rewriter::*;
        assert_eq!(
            rewrite(SubdomainOf, "/a.b/foo.a.b/bar/bah").as_deref(),
            Some("/foo/bar/bah")
        );
        assert_eq!(
            rewrite(SubdomainOf, "/a.b/x.y.a.b").as_deref(),
            Some("/x.y")
        );
        assert_eq!(
            rewrite(SubdomainOf, "/a.b/foo.a.b:8080/x").as_deref(),
            Some("/foo/x")
        );
        for bad in [
            "/a.b/a.b/x",
            "/a.b/.a.b/x",
            "/a.b/fooa.b/x",
            "/a.b/foo.a.bc",
            "/a%b/foo.a%b",
            "/a.b/foo%.a.b",
            "/a.b",
        ] {
            assert_eq!(rewrite(SubdomainOf, bad), None, "{bad}");
        }
        let cases = [
            ("/a.b/foo/bar.a.b/bah", "/foo/bar/bah"),
            ("/a.b/foo/bar_suffix.a.b/bah", "/foo/bar_suffix/bah"),
            ("/a.b/foo/bar-suffix.a.b/bah", "/foo/bar-suffix/bah"),
            ("/a.b/foo/bar.a.b:9090/bah", "/foo/bar/bah"),
        ];
        for (from, to) in cases {
            assert_eq!(rewrite(SubdomainOfPfx, from).as_deref(), Some(to), "{from}");
        }
        assert_eq!(rewrite(SubdomainOfPfx, "/a.b/foo/a.b/bah"), None);
        assert_eq!(rewrite(SubdomainOfPfx, "/a.b/foo"), None);
    }

    #[test]
    fn domain_to_path() {
        use Rewriter::*;
        assert_eq!(
            rewrite(DomainToPath, "/foo.buoyant.io").as_deref(),
            Some("/io/buoyant/foo")
        );
        assert_eq!(
            rewrite(DomainToPath, "/foo.buoyant.io/x/y").as_deref(),
            Some("/io/buoyant/foo/x/y")
        );
        assert_eq!(rewrite(DomainToPath, "/web/x").as_deref(), Some("/web/x"));
        assert_eq!(
            rewrite(DomainToPath, "/foo.io./x").as_deref(),
            Some("/io/foo/x")
        );
        assert_eq!(rewrite(DomainToPath, "/a%b"), None);
        assert!(DomainToPath.rewrite(&p("/a..b")).is_err());
        assert!(DomainToPath.rewrite(&p("/.a")).is_err());
        assert_eq!(
            rewrite(DomainToPathPfx, "/pfx/foo.buoyant.io").as_deref(),
            Some("/pfx/io/buoyant/foo")
        );
        assert_eq!(rewrite(DomainToPathPfx, "/pfx/a%b"), None);
        assert_eq!(rewrite(DomainToPathPfx, "/pfx"), None);
    }

    #[test]
    fn every_rewriter_is_neg_for_the_empty_path_and_keeps_residual_bytes() {
        for r in Rewriter::ALL {
            assert_eq!(
                lookup(r, "/"),
                Activity::Ok(NameTree::Neg),
                "{}",
                r.class_name()
            );
        }
        // The residual after the pattern is kept byte for byte.
        let path = p("/GET/\\xff\\xfe/x");
        let out = Rewriter::AnyMethod.rewrite(&path).unwrap().unwrap();
        assert_eq!(out, path.drop_first(1));
        // A matched element that is not UTF-8 is read with replacement
        // characters, as Linkerd reads it.
        assert_eq!(rewrite(Rewriter::AnyHost, "/\\xff/x"), None);
        let out = Rewriter::AnyMethodPfx
            .rewrite(&p("/\\xff/GET/x"))
            .unwrap()
            .unwrap();
        assert_eq!(out.elems()[0].as_str(), Some("\u{fffd}"));
    }

    #[test]
    fn lookups_answer_leaves_of_paths() {
        assert_eq!(
            lookup(Rewriter::AnyMethod, "/GET/foo"),
            Activity::Ok(NameTree::Leaf(Name::Path(p("/foo"))))
        );
        assert_eq!(
            lookup(Rewriter::AnyMethod, "/A.B/foo"),
            Activity::Ok(NameTree::Neg)
        );
    }

    fn bound_leaf(lookup: &Lookup) -> Bound {
        match &*lookup.load() {
            Activity::Ok(NameTree::Leaf(Name::Bound(b))) => b.clone(),
            other => panic!("not a bound leaf: {other:?}"),
        }
    }

    #[test]
    fn rinet_binds_port_then_host() {
        let bound = bound_leaf(&rinet().lookup(&p("/12345/127.0.0.1/residual/more")));
        assert_eq!(bound.id, p("/$/io.buoyant.rinet/12345/127.0.0.1"));
        assert_eq!(bound.residual, p("/residual/more"));
        assert_eq!(
            *bound.addr.load(),
            Addr::bound(vec![crate::Endpoint::new(
                "127.0.0.1:12345".parse().unwrap()
            )])
        );

        let bound = bound_leaf(&rinet().lookup(&p("/12345/localhost")));
        assert_eq!(bound.id, p("/$/io.buoyant.rinet/12345/localhost"));
        assert_eq!(bound.residual, Path::empty());
        assert_eq!(
            *bound.addr.load(),
            Addr::bound(vec![crate::Endpoint::new(
                "127.0.0.1:12345".parse().unwrap()
            )])
        );
    }

    #[test]
    fn rinet_needs_two_elements_and_a_numeric_port() {
        assert_eq!(*rinet().lookup(&p("/")).load(), Activity::Ok(NameTree::Neg));
        assert_eq!(
            *rinet().lookup(&p("/8080")).load(),
            Activity::Ok(NameTree::Neg)
        );
        // Linkerd binds a bad port anyway, to a failed address.
        let bound = bound_leaf(&rinet().lookup(&p("/http/localhost/x")));
        assert_eq!(bound.id, p("/$/io.buoyant.rinet/http/localhost"));
        assert_eq!(
            *bound.addr.load(),
            Addr::Failed("For input string: \"http\"".into())
        );
        let bound = bound_leaf(&rinet().lookup(&p("/70000/localhost")));
        assert_eq!(
            *bound.addr.load(),
            Addr::Failed("port out of range:70000".into())
        );
    }

    #[test]
    fn the_registry_lists_every_class_once() {
        let inet = Arc::new(InetResolver::new(Arc::new(NoDns)));
        let namers = linkerd_system_namers(inet);
        let mut names: Vec<&str> = namers.iter().map(|(n, _)| *n).collect();
        assert_eq!(names.len(), 11);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 11);
        assert!(names.contains(&"io.buoyant.rinet"));
        assert!(names.contains(&"io.buoyant.http.domainToPathPfx"));
        let (_, any_method) = namers
            .iter()
            .find(|(n, _)| *n == "io.buoyant.http.anyMethod")
            .unwrap();
        assert_eq!(
            *any_method.lookup(&p("/GET/foo/bar/bah")).load(),
            Activity::Ok(NameTree::Leaf(Name::Path(p("/foo/bar/bah"))))
        );
    }
}

//! [`Url`]: an `http://` or `https://` URL parsed, and a redirect's `Location` resolved against it
//! (RFC 3986 §5.2).

use std::fmt;

use super::ClientError;
use crate::http::request::escapes_are_valid;

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Url {
    /// `https`: TLS to the host.
    pub(super) tls: bool,
    /// Lowercase; an IPv6 address without brackets.
    pub(super) host: String,
    pub(super) port: u16,
    /// Path and query, starting with `/`.
    pub(super) target: String,
}

impl Url {
    pub(super) fn parse(url: &str) -> Result<Url, ClientError> {
        let bad = |reason| ClientError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad("no scheme: expected http://host[:port]/path"));
        };
        if scheme.is_empty()
            || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            || !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(bad("malformed scheme"));
        }
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            other => return Err(ClientError::UnsupportedScheme(other.to_string())),
        };
        if rest.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(bad(
                "spaces, control characters and non-ASCII must be percent-encoded",
            ));
        }
        // The fragment is never sent.
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        if authority.contains('@') {
            return Err(bad("credentials in URLs are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((ip, after)) = v6.split_once(']') else {
                return Err(bad("unclosed [ in host"));
            };
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("bad IPv6 address"));
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
            };
            (ip.to_ascii_lowercase(), port)
        } else {
            let (host, port) = match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            };
            if host.is_empty() {
                return Err(bad("no host"));
            }
            let labels_ok = host.split('.').enumerate().all(|(i, label)| {
                // A trailing dot (a fully qualified name) leaves one empty label at the end.
                (!label.is_empty() || (i > 0 && host.ends_with('.') && label.is_empty()))
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
            if !labels_ok || host.starts_with('.') || host.ends_with("..") {
                return Err(bad("bad host name"));
            }
            (host.to_ascii_lowercase(), port)
        };
        let port = match port {
            None => default_port(tls),
            Some(p) => {
                if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("bad port"));
                }
                match p.parse::<u16>() {
                    Ok(0) | Err(_) => return Err(bad("port out of range")),
                    Ok(n) => n,
                }
            }
        };
        let target = if target.starts_with('/') {
            target.to_string()
        } else {
            format!("/{target}")
        };
        let b = target.as_bytes();
        if !escapes_are_valid(b) {
            return Err(bad("% not followed by two hex digits"));
        }
        for &c in b {
            if b"\"<>\\^`{|}".contains(&c) {
                return Err(bad(
                    "characters like \" < > { } | \\ ^ ` must be percent-encoded",
                ));
            }
        }
        Ok(Url {
            tls,
            host,
            port,
            target,
        })
    }

    /// `http` or `https`.
    pub(super) fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// Scheme, host and port: what must match for credentials to be sent on.
    pub(super) fn origin(&self) -> (bool, &str, u16) {
        (self.tls, &self.host, self.port)
    }

    /// `reference` (a `Location` value) resolved against this URL (RFC 3986 §5.2).
    pub(super) fn join(&self, reference: &str) -> Result<Url, ClientError> {
        let reference = reference.trim();
        let reference = reference.split_once('#').map_or(reference, |(r, _)| r);
        let has_scheme = reference.find(':').is_some_and(|i| {
            let scheme = &reference[..i];
            !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        });
        if has_scheme {
            return Url::parse(reference);
        }
        if let Some(rest) = reference.strip_prefix("//") {
            return Url::parse(&format!("{}://{rest}", self.scheme()));
        }
        let (base_path, _) = self
            .target
            .split_once('?')
            .unwrap_or((self.target.as_str(), ""));
        let target = if reference.is_empty() {
            self.target.clone()
        } else if reference.starts_with('?') {
            format!("{base_path}{reference}")
        } else {
            let (path, query) = match reference.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (reference, None),
            };
            let merged = if path.starts_with('/') {
                path.to_string()
            } else {
                let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
                format!("{dir}{path}")
            };
            let mut target = remove_dot_segments(&merged);
            if let Some(q) = query {
                target.push('?');
                target.push_str(q);
            }
            target
        };
        Url::parse(&format!(
            "{}://{}{target}",
            self.scheme(),
            self.host_header()
        ))
    }

    /// `host:port` (brackets around IPv6), for connecting and error messages.
    pub(super) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The `Host` header: the port only when it is not the scheme's (80, 443).
    pub(super) fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port(self.tls) {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme(),
            self.host_header(),
            self.target
        )
    }
}

/// The port of a URL that names none.
fn default_port(tls: bool) -> u16 {
    if tls {
        443
    } else {
        80
    }
}

/// RFC 3986 §5.2.4, for an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." | ".." => {
                if *seg == ".." {
                    out.pop();
                }
                // A trailing `.` or `..` leaves a directory: `/a/b/..` is `/a/`.
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://Example.TEST:8080/a/b?c=d#frag").unwrap();
        assert_eq!(u.host, "example.test");
        assert_eq!(u.port, 8080);
        assert_eq!(u.target, "/a/b?c=d");
        assert_eq!(u.host_header(), "example.test:8080");
        let u = Url::parse("HTTP://127.0.0.1").unwrap();
        assert_eq!((u.port, u.target.as_str()), (80, "/"));
        assert_eq!(u.host_header(), "127.0.0.1");
        let u = Url::parse("http://[::1]:9/x").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.authority(), "[::1]:9");
        let u = Url::parse("http://h?q=1").unwrap();
        assert_eq!(u.target, "/?q=1");
        let u = Url::parse("HTTPS://h/x").unwrap();
        assert_eq!((u.tls, u.port, u.host_header().as_str()), (true, 443, "h"));
        assert_eq!(u.to_string(), "https://h/x");
        let u = Url::parse("https://h:80/").unwrap();
        assert_eq!(u.host_header(), "h:80");
        assert_ne!(
            u.origin(),
            Url::parse("http://h:80/").unwrap().origin(),
            "the scheme is part of the origin"
        );
    }

    #[test]
    fn redirect_targets_keep_the_scheme() {
        let base = Url::parse("https://h/a/b").unwrap();
        assert_eq!(base.join("//o/p").unwrap().to_string(), "https://o/p");
        assert_eq!(base.join("c").unwrap().to_string(), "https://h/a/c");
        assert_eq!(base.join("http://h/").unwrap().to_string(), "http://h/");
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "",
            "example.test/",
            "://x",
            "http://",
            "http:///path",
            "http://a b/",
            "http://h/a b",
            "http://h:/",
            "http://h:0/",
            "http://h:65536/",
            "http://h:8x/",
            "http://user:pw@h/",
            "http://[::1/",
            "http://[zz]/",
            "http://h/%zz",
            "http://h/%4",
            "http://h/é",
            "http://h..x/",
            "http://.h/",
            "http://h/<script>",
        ] {
            let e = Url::parse(bad).unwrap_err();
            assert!(
                matches!(e, ClientError::InvalidUrl { .. }),
                "{bad:?}: {e:?}"
            );
        }
        for other in ["ftp://h/", "FTP://h", "gopher://h/"] {
            assert!(matches!(
                Url::parse(other),
                Err(ClientError::UnsupportedScheme(_))
            ));
        }
    }

    #[test]
    fn redirect_targets() {
        let base = Url::parse("http://h:81/a/b/c?q=1").unwrap();
        for (reference, expected) in [
            ("/x", "http://h:81/x"),
            ("x", "http://h:81/a/b/x"),
            ("../x?y=2", "http://h:81/a/x?y=2"),
            ("../../../../x", "http://h:81/x"),
            ("./", "http://h:81/a/b/"),
            ("..", "http://h:81/a/"),
            ("?z", "http://h:81/a/b/c?z"),
            ("", "http://h:81/a/b/c?q=1"),
            ("#frag", "http://h:81/a/b/c?q=1"),
            ("//other:9/p", "http://other:9/p"),
            ("HTTP://Other/p#f", "http://other/p"),
        ] {
            assert_eq!(
                base.join(reference).unwrap().to_string(),
                expected,
                "{reference}"
            );
        }
        assert!(matches!(
            base.join("ftp://h/"),
            Err(ClientError::UnsupportedScheme(_))
        ));
        assert!(base.join("/a b").is_err());
    }
}

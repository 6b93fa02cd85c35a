//! [`Site`]: routes requests to handlers by path and method.

use std::fmt;
use std::rc::Rc;

use ropewalk_deferred::{Deferred, Outcome};

use super::Handler;
use crate::http::{Request, Response};

/// The methods the server knows; any other gets 501.
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
];

struct Route {
    path: String,
    /// `None`: any method.
    method: Option<String>,
    handler: Rc<dyn Handler>,
}

/// Routes requests to handlers: exact paths with methods, and mounted prefixes (Twisted's
/// `Site` with child resources, flattened into a table).
///
/// - A route for `GET` answers `HEAD` too (the server sends no body).
/// - A path that has routes, but none for the method, gives 405 with `Allow`.
/// - An unknown method gives 501; no match gives 404.
/// - A mount (`/static/`) takes every path under its prefix; the longest prefix wins.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::{Request, Response, Site, Handler, Headers, Version};
///
/// let site = Site::new()
///     .get("/", |_: Request| Ok(Response::text("home")))
///     .post("/echo", |req: Request| Ok(Response::bytes(req.into_body())));
/// let get = |path: &str, method: &str| {
///     site.handle(Request::new(method, path, Version::Http11, Headers::new(), vec![]))
///         .wait().unwrap()
/// };
/// assert_eq!(get("/", "GET").status(), 200);
/// assert_eq!(get("/echo", "GET").status(), 405);
/// assert_eq!(get("/nope", "GET").status(), 404);
/// assert_eq!(get("/", "BREW").status(), 501);
/// ```
#[derive(Default)]
pub struct Site {
    routes: Vec<Route>,
    mounts: Vec<(String, Rc<dyn Handler>)>,
}

impl Site {
    /// A site with no routes (everything is 404).
    ///
    /// # Examples
    ///
    /// ```
    /// let _site = ropewalk_protocols::http::Site::new();
    /// ```
    pub fn new() -> Site {
        Site::default()
    }

    /// Routes `method` requests for exactly `path` to `handler`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{Request, Response, Site};
    /// let site = Site::new().route("PUT", "/item", |_: Request| Ok(Response::new(204)));
    /// # drop(site);
    /// ```
    pub fn route(mut self, method: &str, path: &str, handler: impl Handler) -> Site {
        self.routes.push(Route {
            path: path.to_string(),
            method: Some(method.to_string()),
            handler: Rc::new(handler),
        });
        self
    }

    /// Routes `GET` (and `HEAD`) for `path`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{Request, Response, Site};
    /// let _ = Site::new().get("/", |_: Request| Ok(Response::text("hi")));
    /// ```
    pub fn get(self, path: &str, handler: impl Handler) -> Site {
        self.route("GET", path, handler)
    }

    /// Routes `POST` for `path`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{Request, Response, Site};
    /// let _ = Site::new().post("/echo", |r: Request| Ok(Response::bytes(r.into_body())));
    /// ```
    pub fn post(self, path: &str, handler: impl Handler) -> Site {
        self.route("POST", path, handler)
    }

    /// Routes every method for `path`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{Request, Response, Site};
    /// let _ = Site::new().any("/anything", |r: Request| Ok(Response::text(r.method().to_string())));
    /// ```
    pub fn any(mut self, path: &str, handler: impl Handler) -> Site {
        self.routes.push(Route {
            path: path.to_string(),
            method: None,
            handler: Rc::new(handler),
        });
        self
    }

    /// Sends every path that starts with `prefix` to `handler` (which sees the full path).
    ///
    /// # Examples
    ///
    /// ```
    /// use ropewalk_protocols::http::{Request, Response, Site};
    /// let _ = Site::new().mount("/api/", |r: Request| Ok(Response::text(r.path().to_string())));
    /// ```
    pub fn mount(mut self, prefix: &str, handler: impl Handler) -> Site {
        self.mounts.push((prefix.to_string(), Rc::new(handler)));
        self.mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        self
    }
}

impl Handler for Site {
    fn handle(&self, request: Request) -> Deferred<Response> {
        // Find the handler with the request borrowed, then hand the request over.
        let handler = match self.find(&request) {
            Ok(handler) => handler,
            Err(miss) => return Deferred::succeed(miss.response()),
        };
        handler.handle(request)
    }

    fn handle_outcome(&self, request: Request) -> Outcome<Response> {
        if let Some(handler) = self.exact_route(&request) {
            return handler.handle_outcome(request);
        }
        match self.find(&request) {
            Ok(handler) => handler.handle_outcome(request),
            Err(miss) => Outcome::Value(miss.response()),
        }
    }
}

/// Why no handler takes a request.
enum Miss<'a> {
    /// An unknown method: 501.
    UnknownMethod,
    /// `OPTIONS *`: 200 with the methods.
    Asterisk,
    /// The path has routes, none for this method: 405 with these.
    NotAllowed(Vec<&'a str>),
    /// 404.
    NotFound,
}

impl Miss<'_> {
    fn response(self) -> Response {
        match self {
            Miss::UnknownMethod => Response::error(501),
            Miss::Asterisk => {
                Response::new(200).with_header("Allow", KNOWN_METHODS[..7].join(", "))
            }
            Miss::NotAllowed(allowed) => {
                Response::error(405).with_header("Allow", allowed.join(", "))
            }
            Miss::NotFound => Response::error(404),
        }
    }
}

impl Route {
    /// Whether this route answers `method` (a route for `GET` answers `HEAD` too).
    #[inline]
    fn takes(&self, method: &str) -> bool {
        match &self.method {
            None => true,
            Some(m) => same(m, method) || (same(m, "GET") && same(method, "HEAD")),
        }
    }
}

impl Site {
    /// The route that takes a request with one of the parser's common methods (all
    /// known) and a target other than `*`, if there is one: what [`Self::find`] would
    /// answer for most requests, without the rest of it.
    #[inline]
    fn exact_route(&self, request: &Request) -> Option<&Rc<dyn Handler>> {
        if !request.has_common_method() || request.target() == "*" {
            return None;
        }
        let (method, path) = (request.method(), request.path());
        self.routes
            .iter()
            .find(|r| same(&r.path, path) && r.takes(method))
            .map(|r| &r.handler)
    }

    /// The handler for `request`, or why there is none.
    fn find(&self, request: &Request) -> Result<&Rc<dyn Handler>, Miss<'_>> {
        let method = request.method();
        // The parser's common methods are the known ones: no lookup for them.
        if !request.has_common_method() && !KNOWN_METHODS.iter().any(|m| same(m, method)) {
            return Err(Miss::UnknownMethod);
        }
        if request.target() == "*" {
            return Err(Miss::Asterisk);
        }
        let path = request.path();
        // The route for the path and the method (most requests): nothing else to look at.
        match self
            .routes
            .iter()
            .find(|r| same(&r.path, path) && r.takes(method))
        {
            Some(route) => Ok(&route.handler),
            None => self.miss(path),
        }
    }

    /// No route takes the request: the methods the path has routes for, a mount, or
    /// nothing.
    #[cold]
    fn miss(&self, path: &str) -> Result<&Rc<dyn Handler>, Miss<'_>> {
        let mut allowed: Vec<&str> = Vec::new();
        for route in self.routes.iter().filter(|r| same(&r.path, path)) {
            if let Some(m) = &route.method {
                allowed.push(m);
                if m == "GET" {
                    allowed.push("HEAD");
                }
            }
        }
        if !allowed.is_empty() {
            allowed.dedup();
            return Err(Miss::NotAllowed(allowed));
        }
        if let Some((_, handler)) = self
            .mounts
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()))
        {
            return Ok(handler);
        }
        Err(Miss::NotFound)
    }
}

/// `a == b`, lengths first (most comparisons end there), and a short string byte by
/// byte: a method, a path like `/`, without a call to memcmp.
#[inline]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if a.len() > 16 {
        return a == b;
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Site")
            .field(
                "routes",
                &self
                    .routes
                    .iter()
                    .map(|r| format!("{} {}", r.method.as_deref().unwrap_or("*"), r.path))
                    .collect::<Vec<_>>(),
            )
            .field(
                "mounts",
                &self.mounts.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish()
    }
}

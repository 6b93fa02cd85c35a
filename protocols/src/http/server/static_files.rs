//! [`StaticFiles`]: serves a directory tree (Twisted's `static.File`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use ropewalk_deferred::{Deferred, Failure, Resolver};
use ropewalk_reactor::{Clock, Reactor};

use super::Handler;
use crate::http::request::escapes_are_valid;
use crate::http::wire::date::{http_date, parse_http_date};
use crate::http::{Request, Response};

/// Serves the files under a directory: a [`Handler`] to [`mount`](super::Site::mount)
/// under a prefix.
///
/// What is served and what is refused:
///
/// - A directory answers with its `index.html` if it has one, else **403** (no listings).
///   A directory asked for without a trailing `/` is redirected (301) to the URL with one,
///   so relative links in its index work.
/// - `..` gives 403; names that do not exist, hidden names and undecodable paths give
///   404; a symlink that leads outside the root gives 403; anything but a regular file
///   (a FIFO, a socket) gives 403 and is never opened.
/// - Only `GET` and `HEAD` (405 with `Allow` otherwise). `Last-Modified` is sent, and
///   `If-Modified-Since` (IMF-fixdate form; the two obsolete date forms are ignored)
///   gives 304.
/// - `Range` on `GET` (RFC 9110 §14), with `Accept-Ranges: bytes` on every file
///   response: one range `bytes=a-b`, `bytes=a-` or `bytes=-n` gives **206** with
///   `Content-Range: bytes a-b/len` and just those bytes (sent from the offset, like a
///   large file); a range that starts past the end (or `-0`, or any
///   range of an empty file) gives **416** with `Content-Range: bytes */len`. Several
///   ranges (`bytes=0-1,5-6`) are answered with the whole file as a **200**: this server
///   does not write `multipart/byteranges`, and RFC 9110 lets a server ignore `Range`.
///   A malformed `Range`, another unit, or `Range` on `HEAD` is ignored the same way.
///   `If-Range` is ignored too (there is no `ETag`, and the range is served whether the
///   file changed or not); `If-Modified-Since` is checked first, so a 304 wins.
/// - Not yet: `ETag`, compression, directory listings.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::{Client, HttpServer, Site, StaticFiles};
/// use ropewalk_reactor::{Clock, Reactor};
///
/// let dir = std::env::temp_dir().join(format!("ropewalk-doc-static-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("hello.txt"), "hello from disk")?;
///
/// let reactor = Reactor::new()?;
/// let files = StaticFiles::new(&reactor, &dir)?.with_prefix("/static/");
/// let site = Site::new().mount("/static/", files);
/// let port = HttpServer::new(&reactor, site).listen(&reactor, "127.0.0.1:0".parse().unwrap())?;
///
/// let url = format!("http://{}/static/hello.txt", port.local_addr());
/// let resp = Client::new(&reactor).get(&url).wait()?;
/// assert_eq!(resp.headers().get("content-type"), Some("text/plain; charset=utf-8"));
/// assert_eq!(resp.text(), "hello from disk");
///
/// // One byte range: 206 with Content-Range.
/// let mut headers = ropewalk_protocols::http::Headers::new();
/// headers.append("Range", "bytes=6-9");
/// let part = Client::new(&reactor).request("GET", &url, headers, Vec::new()).wait()?;
/// assert_eq!(part.status(), 206);
/// assert_eq!(part.headers().get("content-range"), Some("bytes 6-9/15"));
/// assert_eq!(part.text(), "from");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Implementation
///
/// The request path (after the mount prefix) is percent-decoded and split into segments;
/// `..`, hidden names (a leading `.`), NUL and `\` are refused before the file system is
/// touched. Everything that touches the file system runs on the reactor's I/O pool
/// ([`Reactor::defer_to_io_thread`]), never queued behind the users' jobs of the worker
/// pool: the path is canonicalized (following symlinks) and must still be
/// under the canonical root, then the file is opened and its metadata read from the open
/// handle. Small files come back read whole in that same job; larger ones, and ranges,
/// are handed to the connection as an open file region
/// ([`BodyWriter::send_file`](crate::http::BodyWriter::send_file)), which the kernel
/// sends with `sendfile(2)` as the client reads (on the portable poller, or over TLS,
/// the region is read with `pread` as it is sent). A slow client holds no memory, and the
/// send timeout sees the file drain as it sees written bytes.
///
/// What a look-up found (the open file, its length and modification time, and a small
/// file's bytes) is kept in an open-file cache on the reactor thread
/// ([`with_open_file_cache`](Self::with_open_file_cache)), so a hot file is answered
/// without a pool job, an `open` or an `fstat` until its entry is `valid` old; `Range`
/// and `If-Modified-Since` are answered from the entry the same way.
pub struct StaticFiles {
    reactor: Reactor,
    clock: Rc<dyn Clock>,
    root: PathBuf,
    prefix: String,
    memory_limit: u64,
    cache: Rc<RefCell<FileCache>>,
}

impl StaticFiles {
    /// Serves the files under `root`, which must be a directory; the mount prefix is
    /// `/` until [`with_prefix`](Self::with_prefix). `reactor`'s I/O pool
    /// ([`Reactor::defer_to_io_thread`]) does the file system work.
    ///
    /// # Errors
    ///
    /// The system error if `root` cannot be canonicalized, or
    /// [`io::ErrorKind::InvalidInput`] if it is not a directory.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let files = ropewalk_protocols::http::StaticFiles::new(&reactor, std::env::temp_dir())?;
    /// assert!(files.root().is_absolute());
    /// assert!(ropewalk_protocols::http::StaticFiles::new(&reactor, "/no/such/dir").is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(reactor: &Reactor, root: impl AsRef<Path>) -> io::Result<StaticFiles> {
        let root = root.as_ref().canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(StaticFiles {
            reactor: reactor.clone(),
            root,
            prefix: "/".to_string(),
            memory_limit: 16 * 1024,
            clock: Rc::new(reactor.clone()),
            cache: Rc::new(RefCell::new(FileCache {
                entries: HashMap::new(),
                capacity: 1024,
                valid: Duration::from_secs(1),
                looking_up: HashMap::new(),
            })),
        })
    }

    /// The prefix this handler is mounted under (the same one given to
    /// [`Site::mount`](super::Site::mount)); it is stripped from the request path. A
    /// missing leading or trailing `/` is added. Default `/`.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let files = ropewalk_protocols::http::StaticFiles::new(&reactor, ".")?.with_prefix("static");
    /// assert_eq!(files.prefix(), "/static/");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_prefix(mut self, prefix: &str) -> StaticFiles {
        let mut p = prefix.trim_matches('/').to_string();
        p.insert(0, '/');
        if p.len() > 1 {
            p.push('/');
        }
        self.prefix = p;
        self
    }

    /// Files of at most `bytes` are read whole (in the same I/O-pool job that opens them)
    /// and sent from memory; larger ones, and every range, are sent from the open file
    /// with [`Transport::send_file`](ropewalk_reactor::Transport::send_file)
    /// (`sendfile(2)` on Linux). Default 16 KiB: below it, one `read` costs less than the
    /// `sendfile` bookkeeping; above it, copying through memory costs more.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let _files = ropewalk_protocols::http::StaticFiles::new(&reactor, ".")?
    ///     .with_memory_limit(64 * 1024);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_memory_limit(mut self, bytes: u64) -> StaticFiles {
        self.memory_limit = bytes;
        self
    }

    /// The open-file cache: at most `entries` request paths are kept with their open file,
    /// its length and modification time, and (at most the memory limit) its bytes, so a
    /// hot file costs no `open`, `fstat` or pool job per request. Each is trusted for
    /// `valid` after it was looked up on the file system, then looked up again (nginx's
    /// `open_file_cache_valid`): a file changed, replaced or deleted is served fresh (or
    /// 404) at most `valid` later. When full, the least recently used path goes. Errors
    /// (404, 403) are not cached. Defaults: 1,024 entries, 1 s; 0 entries turns it off.
    /// An entry for a file larger than the memory limit holds its descriptor open: count
    /// `entries` against the process's descriptor limit (`ulimit -n`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let _files = ropewalk_protocols::http::StaticFiles::new(&reactor, ".")?
    ///     .with_open_file_cache(10_000, Duration::from_secs(5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_open_file_cache(self, entries: usize, valid: Duration) -> StaticFiles {
        {
            let mut cache = self.cache.borrow_mut();
            cache.capacity = entries;
            cache.valid = valid;
            cache.entries.clear();
        }
        self
    }

    /// The clock the open-file cache reads (default: the reactor); tests drive it by hand
    /// with a [`ManualClock`](ropewalk_reactor::ManualClock).
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let clock = ropewalk_reactor::ManualClock::new();
    /// let _files = ropewalk_protocols::http::StaticFiles::new(&reactor, ".")?.with_clock(&clock);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_clock(mut self, clock: &(impl Clock + Clone + 'static)) -> StaticFiles {
        self.clock = Rc::new(clock.clone());
        self
    }

    /// The canonical root directory.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// let files = ropewalk_protocols::http::StaticFiles::new(&reactor, ".")?;
    /// assert_eq!(files.root(), std::env::current_dir()?.canonicalize()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The mount prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// let reactor = ropewalk_reactor::Reactor::new()?;
    /// assert_eq!(ropewalk_protocols::http::StaticFiles::new(&reactor, ".")?.prefix(), "/");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl fmt::Debug for StaticFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cache = self.cache.borrow();
        f.debug_struct("StaticFiles")
            .field("root", &self.root)
            .field("prefix", &self.prefix)
            .field("memory_limit", &self.memory_limit)
            .field("cached", &cache.entries.len())
            .field("cache_capacity", &cache.capacity)
            .field("cache_valid", &cache.valid)
            .finish()
    }
}

/// What the pool found for a request.
enum Found {
    File {
        file: File,
        len: u64,
        mtime: Option<u64>,
        content_type: &'static str,
        /// The whole file, when it was small enough to read in the same job.
        data: Option<Vec<u8>>,
    },
    Redirect,
    Status(u16),
}

/// What a look-up found, as the requests that waited for it share it.
#[derive(Clone)]
enum Looked {
    File(Rc<OpenFile>),
    Redirect,
    Status(u16),
}

/// An open file as the cache holds it, shared by the responses that send it.
struct OpenFile {
    /// The open file, when its bytes are not held (a file held whole holds no descriptor).
    file: Option<Rc<File>>,
    len: u64,
    mtime: Option<u64>,
    content_type: &'static str,
    /// The whole file, when it is at most the memory limit.
    data: Option<Rc<[u8]>>,
}

/// The open-file cache (nginx's `open_file_cache`): request paths to the open files they
/// named when last looked up, each trusted for `valid` after that look-up.
#[derive(Default)]
struct FileCache {
    entries: HashMap<(String, bool), CacheEntry>,
    /// How many entries at most (0: no cache).
    capacity: usize,
    valid: Duration,
    /// Paths being looked up on the I/O pool, with the requests for them that came
    /// meanwhile: they wait for that look-up rather than run one each.
    looking_up: HashMap<(String, bool), Vec<Resolver<Looked>>>,
}

struct CacheEntry {
    file: Rc<OpenFile>,
    /// When it was looked up on the file system (the clock's time).
    checked: Duration,
    /// When it last served a request: the least recent goes first when the cache is full.
    used: Duration,
}

impl FileCache {
    /// The open file for `key`, if looked up less than `valid` ago.
    fn get(&mut self, key: &(String, bool), now: Duration) -> Option<Rc<OpenFile>> {
        let valid = self.valid;
        let entry = self.entries.get_mut(key)?;
        if now.saturating_sub(entry.checked) >= valid {
            // Stale: the next look-up replaces it (or finds it gone).
            self.entries.remove(key);
            return None;
        }
        entry.used = now;
        Some(entry.file.clone())
    }

    fn insert(&mut self, key: (String, bool), file: Rc<OpenFile>, now: Duration) {
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(
            key,
            CacheEntry {
                file,
                checked: now,
                used: now,
            },
        );
    }
}

impl Handler for StaticFiles {
    fn handle(&self, request: Request) -> Deferred<Response> {
        let head = match request.method() {
            "GET" => false,
            "HEAD" => true,
            _ => return Deferred::succeed(Response::error(405).with_header("Allow", "GET, HEAD")),
        };
        let Some(rest) = request.path().strip_prefix(self.prefix.as_str()) else {
            return Deferred::succeed(Response::error(404));
        };
        let (segments, trailing_slash) = match split_path(rest) {
            Ok(s) => s,
            Err(status) => return Deferred::succeed(Response::error(status)),
        };
        let ask = Ask {
            since: request
                .headers()
                .get("if-modified-since")
                .and_then(parse_http_date),
            range: if head {
                None
            } else {
                request.headers().get("range").and_then(parse_range)
            },
            head,
        };
        let key = (segments.join("/"), trailing_slash);
        let now = self.clock.now();
        if let Some(open) = self.cache.borrow_mut().get(&key, now) {
            return Deferred::succeed(respond(&open, &ask));
        }
        let location = match request.query() {
            Some(q) => format!("{}/?{q}", request.path()),
            None => format!("{}/", request.path()),
        };
        let answer = move |looked: Looked| match looked {
            Looked::Status(status) => error_response(status),
            Looked::Redirect => Response::text(format!("moved to {location}\n"))
                .with_status(301)
                .with_header("Location", location),
            Looked::File(open) => respond(&open, &ask),
        };
        {
            let mut cache = self.cache.borrow_mut();
            if let Some(waiting) = cache.looking_up.get_mut(&key) {
                // Another request looks this path up already (a hot file's entry just
                // went stale under load): share its answer.
                let (d, r) = Deferred::<Looked>::pending();
                waiting.push(r);
                return d.add_callback(move |looked| Ok::<_, Failure>(answer(looked)));
            }
            cache.looking_up.insert(key.clone(), Vec::new());
        }
        let root = self.root.clone();
        let limit = self.memory_limit;
        let found = self
            .reactor
            .defer_to_io_thread(move || Ok(find(&root, &segments, trailing_slash, limit)));
        let cache = self.cache.clone();
        found.add_both(move |found| {
            let waiting = cache
                .borrow_mut()
                .looking_up
                .remove(&key)
                .unwrap_or_default();
            let looked = match found {
                Err(failure) => {
                    for r in waiting {
                        let _ = r.errback(failure.clone());
                    }
                    return Err(failure);
                }
                Ok(Found::Status(status)) => Looked::Status(status),
                Ok(Found::Redirect) => Looked::Redirect,
                Ok(Found::File {
                    file,
                    len,
                    mtime,
                    content_type,
                    data,
                }) => {
                    let open = Rc::new(OpenFile {
                        file: data.is_none().then(|| Rc::new(file)),
                        len,
                        mtime,
                        content_type,
                        data: data.map(Rc::from),
                    });
                    cache.borrow_mut().insert(key, open.clone(), now);
                    Looked::File(open)
                }
            };
            for r in waiting {
                let _ = r.callback(looked.clone());
            }
            Ok(answer(looked))
        })
    }
}

/// What a request asks of a file besides its path.
struct Ask {
    since: Option<u64>,
    range: Option<ByteRange>,
    head: bool,
}

/// The response for `open`: 304, 416, 206 with a range, or 200; from memory when the file
/// is held whole, else sent from the file.
fn respond(open: &OpenFile, ask: &Ask) -> Response {
    if let (Some(since), Some(mtime)) = (ask.since, open.mtime) {
        if mtime <= since {
            return with_mtime(Response::new(304), open.mtime);
        }
    }
    let len = open.len;
    let typed = |r: Response| {
        with_mtime(r, open.mtime)
            .with_header("Content-Type", open.content_type)
            .with_header("X-Content-Type-Options", "nosniff")
            .with_header("Accept-Ranges", "bytes")
    };
    let (status, start, count) = match ask.range {
        Some(range) => {
            let Some((start, end)) = range.resolve(len) else {
                return Response::error(416).with_header("Content-Range", format!("bytes */{len}"));
            };
            (206, start, end - start + 1)
        }
        None => (200, 0, len),
    };
    let ranged = |r: Response| {
        if status == 206 {
            r.with_header(
                "Content-Range",
                format!("bytes {start}-{}/{len}", start + count - 1),
            )
        } else {
            r
        }
    };
    let file = match (&open.data, &open.file) {
        (Some(data), _) => {
            let body = data[start as usize..(start + count) as usize].to_vec();
            return ranged(typed(Response::new(status).with_body(body)));
        }
        (None, Some(file)) => file,
        (None, None) => unreachable!("an open file is held whole or open"),
    };
    let (resp, writer) = Response::streaming(status);
    let resp = ranged(typed(resp)).with_header("Content-Length", count.to_string());
    if !ask.head {
        writer.send_file(file.clone(), start, count);
    }
    writer.finish();
    resp
}

fn with_mtime(r: Response, mtime: Option<u64>) -> Response {
    match mtime {
        Some(t) => r.with_header("Last-Modified", http_date(t)),
        None => r,
    }
}

/// One byte range of a `Range: bytes=…` header, before the file's length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// `a-b` (inclusive) or `a-` (to the end).
    From(u64, Option<u64>),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The first and last byte (inclusive) for a file of `len` bytes; `None` if
    /// unsatisfiable (416).
    fn resolve(self, len: u64) -> Option<(u64, u64)> {
        if len == 0 {
            return None;
        }
        match self {
            ByteRange::From(start, _) if start >= len => None,
            ByteRange::From(start, end) => Some((start, end.map_or(len - 1, |e| e.min(len - 1)))),
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => Some((len - n.min(len), len - 1)),
        }
    }
}

/// A `Range` header with exactly one well-formed byte range; `None` for anything else
/// (several ranges, another unit, bad syntax), which is then ignored: the whole file.
fn parse_range(value: &str) -> Option<ByteRange> {
    let (unit, spec) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (a, b) = spec.trim().split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (a.trim(), b.trim()) {
        ("", n) => num(n).map(ByteRange::Suffix),
        (a, "") => num(a).map(|a| ByteRange::From(a, None)),
        (a, b) => {
            let (a, b) = (num(a)?, num(b)?);
            (a <= b).then_some(ByteRange::From(a, Some(b)))
        }
    }
}

/// Decodes and checks the path after the prefix: its segments, and whether it ended
/// with `/`. `Err(status)` for what is refused: 400 for a malformed escape (`%zz`,
/// `%+b`), 403 for `..`, 404 for what cannot name a file here.
fn split_path(rest: &str) -> Result<(Vec<String>, bool), u16> {
    if !escapes_are_valid(rest.as_bytes()) {
        return Err(400);
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(rest).collect();
    let path = String::from_utf8(decoded).map_err(|_| 404u16)?;
    if path.contains(['\0', '\\']) {
        return Err(404);
    }
    let mut segments = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(403),
            s if s.starts_with('.') => return Err(404),
            s => segments.push(s.to_string()),
        }
    }
    Ok((segments, path.is_empty() || path.ends_with('/')))
}

/// On the pool: resolves `segments` under `root`, never outside it.
fn find(root: &Path, segments: &[String], trailing_slash: bool, read_whole_up_to: u64) -> Found {
    let mut candidate = root.to_path_buf();
    candidate.extend(segments);
    let status_of = |e: io::Error| Found::Status(io_error_status(&e, &candidate));
    let mut path = match candidate.canonicalize() {
        Ok(p) => p,
        Err(e) => return status_of(e),
    };
    if !path.starts_with(root) {
        return Found::Status(403);
    }
    let mut meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => return status_of(e),
    };
    if trailing_slash && !meta.is_dir() {
        // `file.txt/`: what the file system would answer (ENOTDIR).
        return Found::Status(404);
    }
    if meta.is_dir() {
        if !trailing_slash {
            return Found::Redirect;
        }
        path = match path.join("index.html").canonicalize() {
            Ok(p) if p.starts_with(root) => p,
            _ => return Found::Status(403),
        };
        meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(_) => return Found::Status(403),
        };
    }
    // Never open a FIFO or a device: opening one can block.
    if !meta.is_file() {
        return Found::Status(403);
    }
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => return status_of(e),
    };
    let meta = match file.metadata() {
        Ok(m) if m.is_file() => m,
        Ok(_) => return Found::Status(403),
        Err(e) => return status_of(e),
    };
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let len = meta.len();
    let data = if len <= read_whole_up_to {
        let mut data = Vec::with_capacity(len as usize);
        if let Err(e) = (&mut file).take(read_whole_up_to).read_to_end(&mut data) {
            return status_of(e);
        }
        if data.len() as u64 != len {
            // It changed while being read: its length is what the response says.
            return Found::Status(503);
        }
        Some(data)
    } else {
        None
    };
    Found::File {
        file,
        len,
        mtime,
        content_type: content_type(&path),
        data,
    }
}

/// The status for a file that could not be looked up, opened or read: 404 when it does
/// not exist, 403 when it may not be read, 503 when the process or the system ran out of
/// descriptors (`EMFILE`, `ENFILE`: the file is there and will be served again once some
/// are freed), and 500 for anything else (an I/O error is the server's problem, never the
/// client's). A 5xx is logged with the error; the others are the client's answer.
fn io_error_status(e: &io::Error, path: &Path) -> u16 {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => 404,
        io::ErrorKind::PermissionDenied => 403,
        _ => {
            let status = match e.raw_os_error() {
                Some(EMFILE | ENFILE) => 503,
                _ => 500,
            };
            log::error!("cannot serve {}: {e}; answering {status}", path.display());
            status
        }
    }
}

/// `errno` values for "too many open files" (the process's limit, and the system's): the
/// same on Linux, the BSDs and macOS.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

/// The error response for `status`; a server error (the descriptors ran out, an I/O error)
/// is never stored by a cache: it says nothing about the file.
fn error_response(status: u16) -> Response {
    let response = Response::error(status);
    if status >= 500 {
        response.with_header("Cache-Control", "no-store")
    } else {
        response
    }
}

/// The media type for a file name, by extension; `application/octet-stream` if unknown.
///
/// # Examples
///
/// ```
/// use ropewalk_protocols::http::content_type;
/// assert_eq!(content_type("a/index.HTML".as_ref()), "text/html; charset=utf-8");
/// assert_eq!(content_type("app.wasm".as_ref()), "application/wasm");
/// assert_eq!(content_type("README".as_ref()), "application/octet-stream");
/// ```
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_statuses() {
        let p = Path::new("/srv/x");
        let kind = |k| io_error_status(&io::Error::from(k), p);
        assert_eq!(kind(io::ErrorKind::NotFound), 404);
        assert_eq!(kind(io::ErrorKind::NotADirectory), 404);
        assert_eq!(kind(io::ErrorKind::PermissionDenied), 403);
        assert_eq!(kind(io::ErrorKind::Other), 500);
        let os = |n| io_error_status(&io::Error::from_raw_os_error(n), p);
        assert_eq!(os(EMFILE), 503, "too many open files (the process)");
        assert_eq!(os(ENFILE), 503, "too many open files (the system)");
        assert_eq!(os(5), 500, "EIO");
        assert_eq!(os(21), 500, "EISDIR");
        assert_eq!(os(2), 404, "ENOENT");
        assert_eq!(os(13), 403, "EACCES");
        assert_eq!(os(20), 404, "ENOTDIR");
        let r = error_response(503);
        assert_eq!(r.headers().get("cache-control"), Some("no-store"));
        assert_eq!(error_response(404).headers().get("cache-control"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(split_path(""), Ok((vec![], true)));
        assert_eq!(
            split_path("a/b%20c.txt"),
            Ok((vec!["a".into(), "b c.txt".into()], false))
        );
        assert_eq!(
            split_path("a/./b/"),
            Ok((vec!["a".into(), "b".into()], true))
        );
        assert_eq!(split_path("../x"), Err(403));
        assert_eq!(split_path("a/%2e%2e/%2E%2E/x"), Err(403));
        assert_eq!(split_path("a%2f..%2fx"), Err(403));
        assert_eq!(split_path("a%00.txt"), Err(404));
        assert_eq!(split_path("a%5c..%5cx"), Err(404));
        assert_eq!(split_path(".git/config"), Err(404));
        // A malformed escape is a bad request, never a guess at a file name.
        assert_eq!(split_path("%zz"), Err(400));
        assert_eq!(split_path("%4"), Err(400));
        assert_eq!(split_path("%"), Err(400));
        assert_eq!(split_path("%+bx"), Err(400));
        assert_eq!(split_path("%-1x"), Err(400));
        assert_eq!(split_path("%0bx"), Ok((vec!["\x0bx".into()], false)));
        assert_eq!(split_path("%ff"), Err(404));
    }
}

#[cfg(test)]
mod range_tests {
    use super::{parse_range, ByteRange};

    #[test]
    fn parses_one_range() {
        assert_eq!(parse_range("bytes=0-4"), Some(ByteRange::From(0, Some(4))));
        assert_eq!(parse_range("Bytes = 7-"), Some(ByteRange::From(7, None)));
        assert_eq!(parse_range("bytes=-3"), Some(ByteRange::Suffix(3)));
        for ignored in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=5-2",
            "bytes=-",
            "bytes=a-b",
            "0-1",
            "bytes=1-2-3",
            "bytes=+1-2",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn resolves_against_the_length() {
        assert_eq!(ByteRange::From(0, Some(4)).resolve(10), Some((0, 4)));
        assert_eq!(ByteRange::From(8, Some(100)).resolve(10), Some((8, 9)));
        assert_eq!(ByteRange::From(10, None).resolve(10), None);
        assert_eq!(ByteRange::Suffix(3).resolve(10), Some((7, 9)));
        assert_eq!(ByteRange::Suffix(30).resolve(10), Some((0, 9)));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(ByteRange::From(0, None).resolve(0), None);
    }
}

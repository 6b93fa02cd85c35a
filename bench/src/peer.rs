//! Running a peer's version of a benchmark as a subprocess and reading its results.
//!
//! A peer script prints one JSON object per line, each flat (string, number, boolean or
//! null values), with a `"kind"`:
//!
//! - `{"kind": "meta", ...}`: what was measured (interpreter and library versions);
//! - `{"kind": "result", "scenario": NAME, "ns_per_op": X, ...}`: one scenario;
//! - `{"kind": "error", "error": TEXT}`: the peer could not run (say, not installed).
//!
//! Other lines are ignored. The parser here reads only that flat shape, so the benchmarks
//! need no JSON library.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

/// One value of a flat JSON object.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string.
    Str(String),
    /// A number.
    Num(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Num(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Null => f.write_str("null"),
        }
    }
}

/// A flat JSON object.
pub type Record = BTreeMap<String, Value>;

/// What a peer script reported.
#[derive(Debug, Clone, Default)]
pub struct PeerOutput {
    /// The `meta` lines, merged.
    pub meta: Record,
    /// Nanoseconds per operation, by scenario name.
    pub ns_per_op: BTreeMap<String, f64>,
    /// The full `result` records, by scenario name.
    pub results: BTreeMap<String, Record>,
}

/// Why a peer gave no results.
#[derive(Debug, Clone)]
pub struct PeerError(pub String);

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PeerError {}

/// The Python interpreter to run peer scripts with: `$PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Runs `program script args...`, its stderr passed through, and reads its JSON lines.
///
/// # Errors
///
/// The program cannot be started, it reported `{"kind": "error"}`, it failed, or it
/// printed no results.
pub fn run(program: &str, script: &Path, args: &[String]) -> Result<PeerOutput, PeerError> {
    let out = Command::new(program)
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| PeerError(format!("cannot run {program} {}: {e}", script.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed = parse_lines(&text);
    if let Some(e) = parsed.1 {
        return Err(PeerError(e));
    }
    if !out.status.success() {
        return Err(PeerError(format!(
            "{program} {} exited with {}",
            script.display(),
            out.status
        )));
    }
    if parsed.0.ns_per_op.is_empty() {
        return Err(PeerError(format!(
            "{program} {} printed no results",
            script.display()
        )));
    }
    Ok(parsed.0)
}

/// Reads JSON lines into a [`PeerOutput`], and the first `error` record's text if any.
pub fn parse_lines(text: &str) -> (PeerOutput, Option<String>) {
    let mut out = PeerOutput::default();
    let mut error = None;
    for rec in text.lines().filter_map(parse_object) {
        match rec.get("kind") {
            Some(Value::Str(k)) if k == "meta" => out.meta.extend(rec),
            Some(Value::Str(k)) if k == "result" => {
                if let (Some(Value::Str(name)), Some(Value::Num(ns))) =
                    (rec.get("scenario"), rec.get("ns_per_op"))
                {
                    out.ns_per_op.insert(name.clone(), *ns);
                    out.results.insert(name.clone(), rec);
                }
            }
            Some(Value::Str(k)) if k == "error" && error.is_none() => {
                error = Some(
                    rec.get("error")
                        .map_or_else(|| "peer reported an error".to_string(), ToString::to_string),
                );
            }
            _ => {}
        }
    }
    (out, error)
}

/// Parses one flat JSON object (no nested arrays or objects); `None` if it is not one.
pub fn parse_object(line: &str) -> Option<Record> {
    let mut p = Parser {
        s: line.trim().as_bytes(),
        i: 0,
    };
    let mut rec = Record::new();
    p.eat(b'{')?;
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
        return p.at_end().then_some(rec);
    }
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        let value = p.value()?;
        rec.insert(key, value);
        p.ws();
        match p.next()? {
            b',' => continue,
            b'}' => return p.at_end().then_some(rec),
            _ => return None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.s.len()
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.next()? {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let c = match self.next()? {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex = self.s.get(self.i..self.i + 4)?;
                            self.i += 4;
                            let code = u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16);
                            // Surrogate pairs are rare in these outputs: replace them.
                            char::from_u32(code.ok()?).unwrap_or('\u{fffd}')
                        }
                        c => c as char,
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
    }

    fn value(&mut self) -> Option<Value> {
        match self.peek()? {
            b'"' => self.string().map(Value::Str),
            b't' => self.word("true", Value::Bool(true)),
            b'f' => self.word("false", Value::Bool(false)),
            b'n' => self.word("null", Value::Null),
            _ => {
                let start = self.i;
                while matches!(
                    self.peek(),
                    Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                ) {
                    self.i += 1;
                }
                let num = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                num.parse().ok().map(Value::Num)
            }
        }
    }

    fn word(&mut self, w: &str, v: Value) -> Option<Value> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Some(v)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flat_objects() {
        let r = parse_object(
            r#"{"kind": "result", "scenario": "a\"b", "ns_per_op": 2.5e3, "x": null, "y": true}"#,
        )
        .unwrap();
        assert_eq!(r["scenario"], Value::Str("a\"b".into()));
        assert_eq!(r["ns_per_op"], Value::Num(2500.0));
        assert_eq!(r["x"], Value::Null);
        assert_eq!(r["y"], Value::Bool(true));
        assert!(parse_object("{}").unwrap().is_empty());
        assert!(parse_object("not json").is_none());
        assert!(parse_object(r#"{"a": [1]}"#).is_none());
        assert!(parse_object(r#"{"a": 1} trailing"#).is_none());
    }

    #[test]
    fn reads_lines() {
        let text = "{\"kind\": \"meta\", \"python\": \"3.11\"}\nnoise\n\
                    {\"kind\": \"result\", \"scenario\": \"s\", \"ns_per_op\": 10}\n";
        let (out, err) = parse_lines(text);
        assert!(err.is_none());
        assert_eq!(out.meta["python"], Value::Str("3.11".into()));
        assert_eq!(out.ns_per_op["s"], 10.0);
        let (_, err) = parse_lines("{\"kind\": \"error\", \"error\": \"no twisted\"}");
        assert_eq!(err.unwrap(), "no twisted");
    }
}

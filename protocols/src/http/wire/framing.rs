//! Body framing (RFC 9112 §6.3): how long a message's body is, decided once for both
//! sides by [`body_framing`].
//!
//! The server frames requests and the client frames responses with the same rules;
//! where a request and a response differ, the [`Message`] says which one is framed:
//!
//! - A response to `HEAD`, and a `1xx`, `204` or `304` response, has no body, whatever
//!   its fields say.
//! - Without `Content-Length` or `Transfer-Encoding`, a request has no body; a
//!   response is read until the connection closes.
//! - `Transfer-Encoding` in an HTTP/1.0 request is rejected (it may be a smuggling
//!   attempt through an HTTP/1.0 front); a response keeps its chunked framing.
//! - A response may repeat one `Content-Length` value (`42, 42`, RFC 9110 §8.6); a
//!   request may not: a server is where a repeat can hide a smuggled request.
//!
//! Everything else is one rule for both: a `Content-Length` that is not one decimal
//! number is an error; `Transfer-Encoding` with `Content-Length` is an error, never a
//! guess at which one wins; the only coding implemented is a lone `chunked`, and any
//! other list is an error: a well-formed list of registered codings (`gzip, chunked`) is
//! one we do not implement (501 for a request), anything else — `chunked` twice or not
//! last, an unregistered or malformed coding (`xchunked`, `\u{a0}chunked`) — is
//! malformed framing (400); a body longer than the limit is an error.
//!
//! The `Content-Length` fields are gathered while the head is read
//! ([`FramingFields::note_length`]), so the server's one pass over its fields is all it
//! takes; nothing here allocates.

use std::fmt;

use super::token::is_tchar;
use crate::http::{Headers, Version};

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// This many bytes follow the head (`0`: no body).
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the connection closes (responses only).
    UntilClose,
}

/// The message being framed, and what about it changes the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    /// A request of this version.
    Request(Version),
    /// A response with this status; `to_head` if it answers a `HEAD` request.
    Response { status: u16, to_head: bool },
}

/// Why a message's framing is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FramingError {
    /// A `Content-Length` that is not a number, or two different (or, in a request,
    /// two at all).
    InvalidLength,
    /// Both `Transfer-Encoding` and `Content-Length`.
    LengthWithEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request.
    EncodingInHttp10,
    /// A transfer-coding list we cannot frame by: an empty coding, one that is not a
    /// token or not registered, `chunked` twice or not last.
    InvalidCoding,
    /// Registered transfer-codings we do not implement, `chunked` last or absent.
    UnsupportedCoding,
    /// A `Content-Length` above the limit.
    TooLarge,
}

impl FramingError {
    /// The status a server answers a request framed so with.
    pub(crate) fn status(self) -> u16 {
        match self {
            FramingError::UnsupportedCoding => 501,
            FramingError::TooLarge => 413,
            _ => 400,
        }
    }
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FramingError::InvalidLength => "bad Content-Length",
            FramingError::LengthWithEncoding => "both Transfer-Encoding and Content-Length",
            FramingError::EncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            FramingError::InvalidCoding => "malformed transfer-coding list",
            FramingError::UnsupportedCoding => "unsupported transfer-coding",
            FramingError::TooLarge => "body over the limit",
        })
    }
}

/// What a message's framing fields said, gathered field by field.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FramingFields {
    /// `Content-Length` values seen, over every field (a field may hold a list).
    lengths: u32,
    /// The first value, if it is a number, and how many digits it has.
    length: Option<u64>,
    length_digits: usize,
    /// A value that is not a number, or not the first one.
    bad_length: bool,
    /// A `Transfer-Encoding` field was seen.
    transfer_encoding: bool,
}

impl FramingFields {
    /// The framing fields of `headers`, in one pass over them.
    pub(crate) fn of(headers: &Headers) -> FramingFields {
        let mut fields = FramingFields::default();
        for (name, value) in headers.iter() {
            if name.eq_ignore_ascii_case("content-length") {
                fields.note_length(value);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                fields.note_transfer_encoding();
            }
        }
        fields
    }

    /// Notes a `Content-Length` field's value.
    #[inline]
    pub(crate) fn note_length(&mut self, value: &str) {
        for item in value.split(',') {
            let item = item.trim_matches([' ', '\t']);
            let digits = !item.is_empty() && item.bytes().all(|b| b.is_ascii_digit());
            self.lengths = self.lengths.saturating_add(1);
            if self.lengths == 1 {
                self.length = if digits { item.parse().ok() } else { None };
                self.length_digits = item.len();
                self.bad_length = self.length.is_none();
            } else if !digits
                || item.len() != self.length_digits
                || item.parse().ok() != self.length
            {
                // Same digits, same number: only an identical repeat passes.
                self.bad_length = true;
            }
        }
    }

    /// Notes a `Transfer-Encoding` field (its codings are read from the headers only
    /// when one is there).
    #[inline]
    pub(crate) fn note_transfer_encoding(&mut self) {
        self.transfer_encoding = true;
    }
}

/// How the body of `message`, whose head is `headers` with the framing fields `fields`,
/// is delimited (RFC 9112 §6.3): the one decision for requests and responses. A
/// `Content-Length` above `max_body` is [`FramingError::TooLarge`].
#[inline(always)]
pub(crate) fn body_framing(
    message: Message,
    headers: &Headers,
    fields: &FramingFields,
    max_body: u64,
) -> Result<BodyFraming, FramingError> {
    // Most requests carry neither field: no body, decided inline in the parser.
    if matches!(message, Message::Request(_)) && fields.lengths == 0 && !fields.transfer_encoding {
        return Ok(BodyFraming::Length(0));
    }
    framing_of(message, headers, fields, max_body)
}

/// [`body_framing`] for a message that has a framing field, or is a response.
fn framing_of(
    message: Message,
    headers: &Headers,
    fields: &FramingFields,
    max_body: u64,
) -> Result<BodyFraming, FramingError> {
    let request = match message {
        Message::Response { status, to_head } => {
            if to_head || status == 204 || status == 304 || (100..200).contains(&status) {
                return Ok(BodyFraming::Length(0));
            }
            None
        }
        Message::Request(version) => Some(version),
    };
    let length = match fields.lengths {
        0 => None,
        _ if fields.bad_length => return Err(FramingError::InvalidLength),
        1 => fields.length,
        // Repeats of one value: allowed in a response only.
        _ if request.is_none() => fields.length,
        _ => return Err(FramingError::InvalidLength),
    };
    let framing = if fields.transfer_encoding {
        if length.is_some() {
            return Err(FramingError::LengthWithEncoding);
        }
        if request == Some(Version::Http10) {
            return Err(FramingError::EncodingInHttp10);
        }
        transfer_coding(headers)?
    } else {
        match (length, request) {
            (Some(n), _) => BodyFraming::Length(n),
            (None, Some(_)) => BodyFraming::Length(0),
            (None, None) => BodyFraming::UntilClose,
        }
    };
    match framing {
        BodyFraming::Length(n) if n > max_body => Err(FramingError::TooLarge),
        framing => Ok(framing),
    }
}

/// The transfer codings registered with IANA (RFC 9112 §7; `identity` once was): a list
/// of these, with `chunked` last or absent, is well-formed and only not implemented.
const REGISTERED_CODINGS: [&str; 6] = [
    "compress",
    "deflate",
    "gzip",
    "identity",
    "x-compress",
    "x-gzip",
];

/// The framing the `Transfer-Encoding` fields of `headers` ask for: only a lone
/// `chunked` is implemented.
///
/// A list we cannot frame by is malformed ([`FramingError::InvalidCoding`]) when a
/// coding is empty or not a token (`\u{a0}chunked` must never pass as `chunked`), is
/// not a registered coding (`xchunked`), or when `chunked` appears twice (RFC 9112 §7.1)
/// or before another coding (§6.3: the length cannot be determined). Otherwise it is a
/// well-formed list of codings we do not implement
/// ([`FramingError::UnsupportedCoding`], 501 per §6.1).
fn transfer_coding(headers: &Headers) -> Result<BodyFraming, FramingError> {
    let mut codings = 0u32;
    let mut chunked = 0u32;
    let mut last_chunked = false;
    for coding in headers
        .get_all("transfer-encoding")
        .flat_map(|v| v.split(','))
        // OWS only: `str::trim` would take U+00A0 for a blank.
        .map(|c| c.trim_matches([' ', '\t']))
    {
        codings = codings.saturating_add(1);
        last_chunked = coding.eq_ignore_ascii_case("chunked");
        if last_chunked {
            chunked += 1;
        } else if coding.is_empty()
            || !coding.bytes().all(is_tchar)
            || !REGISTERED_CODINGS
                .iter()
                .any(|r| coding.eq_ignore_ascii_case(r))
        {
            return Err(FramingError::InvalidCoding);
        }
    }
    match (codings, chunked, last_chunked) {
        (1, 1, true) => Ok(BodyFraming::Chunked),
        (_, 0, _) | (_, 1, true) => Err(FramingError::UnsupportedCoding),
        // Twice, or not last.
        _ => Err(FramingError::InvalidCoding),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BodyFraming::{Chunked, Length, UntilClose};
    use FramingError::*;

    const CL: &str = "Content-Length";
    const TE: &str = "Transfer-Encoding";
    const REQ11: Message = Message::Request(Version::Http11);
    const REQ10: Message = Message::Request(Version::Http10);
    const OK: Message = Message::Response {
        status: 200,
        to_head: false,
    };

    /// A head's fields, and what they frame.
    type Fields = &'static [(&'static str, &'static str)];
    type Framed = Result<BodyFraming, FramingError>;

    fn response(status: u16, to_head: bool) -> Message {
        Message::Response { status, to_head }
    }

    fn frame(message: Message, fields: Fields) -> Framed {
        let mut headers = Headers::new();
        for (name, value) in fields {
            headers.append(*name, *value);
        }
        body_framing(message, &headers, &FramingFields::of(&headers), 1000)
    }

    #[test]
    fn both_sides_share_the_length_and_coding_rules() {
        let table: &[(Fields, Framed)] = &[
            (&[(CL, "5")], Ok(Length(5))),
            (&[(CL, "0")], Ok(Length(0))),
            (&[(CL, "007")], Ok(Length(7))),
            (&[(CL, "")], Err(InvalidLength)),
            (&[(CL, "-1")], Err(InvalidLength)),
            (&[(CL, "+5")], Err(InvalidLength)),
            (&[(CL, "0x5")], Err(InvalidLength)),
            (&[(CL, "5 5")], Err(InvalidLength)),
            (&[(CL, "99999999999999999999999")], Err(InvalidLength)),
            (&[(CL, "5, 6")], Err(InvalidLength)),
            (&[(CL, "5"), (CL, "6")], Err(InvalidLength)),
            (&[(CL, "5,")], Err(InvalidLength)),
            (&[(CL, "1001")], Err(TooLarge)),
            (&[(CL, "1000")], Ok(Length(1000))),
            (&[(TE, "chunked")], Ok(Chunked)),
            (&[(TE, "Chunked")], Ok(Chunked)),
            (&[(TE, " chunked ")], Ok(Chunked)),
            (&[(TE, "chunked"), (CL, "5")], Err(LengthWithEncoding)),
            (&[(CL, "5"), (TE, "chunked")], Err(LengthWithEncoding)),
            (&[(TE, "gzip, chunked")], Err(UnsupportedCoding)),
            (&[(TE, "gzip"), (TE, "chunked")], Err(UnsupportedCoding)),
            (&[(TE, "chunked, chunked")], Err(InvalidCoding)),
            (&[(TE, "chunked"), (TE, "chunked")], Err(InvalidCoding)),
            (&[(TE, ", chunked")], Err(InvalidCoding)),
            (&[(TE, "chunked, gzip")], Err(InvalidCoding)),
            (&[(TE, "xchunked")], Err(InvalidCoding)),
            (&[(TE, "\u{a0}chunked")], Err(InvalidCoding)),
            (&[(TE, "foo, chunked")], Err(InvalidCoding)),
            (&[(TE, "chunked;q=1")], Err(InvalidCoding)),
            (&[(TE, "GZIP, Deflate, chunked")], Err(UnsupportedCoding)),
            (&[(TE, "gzip")], Err(UnsupportedCoding)),
            (&[(TE, "identity")], Err(UnsupportedCoding)),
            (&[(TE, "chunked,")], Err(InvalidCoding)),
            (&[(TE, "")], Err(InvalidCoding)),
        ];
        for (fields, want) in table {
            for message in [REQ11, OK] {
                assert_eq!(frame(message, fields), *want, "{message:?} {fields:?}");
            }
        }
    }

    #[test]
    fn requests_and_responses_differ_where_rfc_9112_says() {
        let table: &[(Message, Fields, Framed)] = &[
            // No framing fields: no body in a request, until close in a response.
            (REQ11, &[], Ok(Length(0))),
            (REQ10, &[], Ok(Length(0))),
            (OK, &[], Ok(UntilClose)),
            (response(404, false), &[], Ok(UntilClose)),
            // No body, whatever the fields say.
            (response(200, true), &[(CL, "5")], Ok(Length(0))),
            (response(200, true), &[(TE, "gzip")], Ok(Length(0))),
            (response(204, false), &[(CL, "5")], Ok(Length(0))),
            (response(304, false), &[(CL, "x")], Ok(Length(0))),
            (response(100, false), &[], Ok(Length(0))),
            (response(199, false), &[(TE, "chunked")], Ok(Length(0))),
            (response(205, false), &[(CL, "5")], Ok(Length(5))),
            // Transfer-Encoding in HTTP/1.0: refused in a request.
            (REQ10, &[(TE, "chunked")], Err(EncodingInHttp10)),
            (REQ10, &[(TE, "gzip")], Err(EncodingInHttp10)),
            (REQ10, &[(CL, "5")], Ok(Length(5))),
            // A repeated Content-Length: allowed in a response only, if identical.
            (REQ11, &[(CL, "5"), (CL, "5")], Err(InvalidLength)),
            (REQ11, &[(CL, "5, 5")], Err(InvalidLength)),
            (OK, &[(CL, "5"), (CL, "5")], Ok(Length(5))),
            (OK, &[(CL, "5, 5")], Ok(Length(5))),
            (OK, &[(CL, "5 , 5"), (CL, "5")], Ok(Length(5))),
            (OK, &[(CL, "5"), (CL, "05")], Err(InvalidLength)),
            (OK, &[(CL, "5"), (CL, "")], Err(InvalidLength)),
            (OK, &[(CL, "1001, 1001")], Err(TooLarge)),
        ];
        for (message, fields, want) in table {
            assert_eq!(frame(*message, fields), *want, "{message:?} {fields:?}");
        }
    }

    #[test]
    fn a_server_answers_each_refusal_with_its_status() {
        assert_eq!(InvalidLength.status(), 400);
        assert_eq!(LengthWithEncoding.status(), 400);
        assert_eq!(EncodingInHttp10.status(), 400);
        assert_eq!(InvalidCoding.status(), 400);
        assert_eq!(UnsupportedCoding.status(), 501);
        assert_eq!(TooLarge.status(), 413);
    }
}

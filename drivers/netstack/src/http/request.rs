//! The HTTP/1.1 request-head parser: bytes in, a [`RequestHead`] borrowing
//! them out, or the status that refuses them. Pure and allocation-free;
//! the fuzz target `fuzz_http_request` feeds it hostile bytes.
//!
//! Strict where leniency is a risk (RFC 9112): lines end with CRLF (a bare
//! CR or LF is refused), no whitespace between a field name and its colon,
//! no obsolete line folding, one Content-Length (or several equal ones),
//! no Transfer-Encoding (request bodies are only taken with a length), and
//! an HTTP/1.1 request must name its Host. Empty lines before a request
//! line are skipped, as the RFC asks.

use super::Limits;
use core::fmt;

/// The request method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the answer to a GET without its body.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
    /// Any other token.
    Other,
}

/// The protocol version of the request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`: closes after the response unless asked to keep alive.
    Http10,
    /// `HTTP/1.1`: keep-alive unless asked to close.
    Http11,
}

/// Why a request head was refused; each maps to the status the server
/// answers before it closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// Not HTTP/1.x syntax (400), with what was wrong.
    Malformed(&'static str),
    /// The head is longer than [`Limits::max_head_bytes`] or has more than
    /// [`Limits::max_headers`] fields (431).
    HeadTooLarge,
    /// Content-Length over [`Limits::max_body_bytes`] (413).
    BodyTooLarge,
    /// A Transfer-Encoding the server does not take (501).
    TransferEncoding,
    /// HTTP/2 or later on the request line (505).
    Version,
}

impl RequestError {
    /// The status code that answers it.
    pub fn status(&self) -> u16 {
        match self {
            Self::Malformed(_) => 400,
            Self::HeadTooLarge => 431,
            Self::BodyTooLarge => 413,
            Self::TransferEncoding => 501,
            Self::Version => 505,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "malformed request: {what}"),
            Self::HeadTooLarge => f.write_str("request head too large"),
            Self::BodyTooLarge => f.write_str("request body too large"),
            Self::TransferEncoding => f.write_str("transfer-encoding not supported"),
            Self::Version => f.write_str("HTTP version not supported"),
        }
    }
}

/// A parsed request head, borrowing the bytes it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: Method,
    /// The method as sent.
    pub method_name: &'a str,
    /// The request target (`/bytes/1024`), as sent.
    pub target: &'a str,
    /// The version.
    pub version: Version,
    /// The body's length from Content-Length (0 without one).
    pub content_length: u64,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// Bytes the head took, the empty line included (and any empty lines
    /// skipped before the request line): where the body starts.
    pub head_len: usize,
    fields: &'a str,
}

impl<'a> RequestHead<'a> {
    /// The target's path: the target without `?query`.
    pub fn path(&self) -> &'a str {
        self.target.split('?').next().unwrap_or(self.target)
    }

    /// The header fields in order, names as sent, values without the
    /// surrounding whitespace.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.fields
            .split("\r\n")
            .filter(|line| !line.is_empty())
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name, value.trim_matches([' ', '\t'])))
    }

    /// The first value of the field `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }
}

/// Parses the request head at the start of `buffer`.
///
/// `Ok(None)`: the head is not complete yet and may still fit the limit
/// (read more). `Ok(Some(head))`: a head of `head.head_len` bytes; the body
/// (`head.content_length` bytes) and any pipelined requests follow it.
pub fn parse_request<'a>(
    buffer: &'a [u8],
    limits: &Limits,
) -> Result<Option<RequestHead<'a>>, RequestError> {
    // Empty lines before the request line are skipped (RFC 9112 2.2), at
    // most as many as the head may hold.
    let mut start = 0;
    while buffer[start..].starts_with(b"\r\n") {
        start += 2;
    }
    let Some(end) = find_head_end(&buffer[start..]) else {
        check_line_endings(&buffer[start..])?;
        return incomplete(buffer, limits);
    };
    let head_len = start + end + 4;
    if head_len > limits.max_head_bytes {
        return Err(RequestError::HeadTooLarge);
    }
    let head = &buffer[start..start + end + 2];
    check_line_endings(head)?;
    let head = core::str::from_utf8(head).map_err(|_| RequestError::Malformed("not UTF-8"))?;
    let (request_line, fields) = head
        .split_once("\r\n")
        .ok_or(RequestError::Malformed("no request line"))?;
    let (method_name, target, version) = parse_request_line(request_line)?;
    let mut head = RequestHead {
        method: method(method_name),
        method_name,
        target,
        version,
        content_length: 0,
        keep_alive: version == Version::Http11,
        head_len,
        fields,
    };
    let mut host = false;
    let mut length: Option<u64> = None;
    let (mut close, mut keep_alive) = (false, false);
    for (count, line) in fields
        .split("\r\n")
        .filter(|line| !line.is_empty())
        .enumerate()
    {
        if count >= limits.max_headers {
            return Err(RequestError::HeadTooLarge);
        }
        let (name, value) = parse_field(line)?;
        if name.eq_ignore_ascii_case("host") {
            if host {
                return Err(RequestError::Malformed("two Host fields"));
            }
            host = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            let value = parse_length(value)?;
            if length.is_some_and(|earlier| earlier != value) {
                return Err(RequestError::Malformed("conflicting Content-Length"));
            }
            length = Some(value);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(RequestError::TransferEncoding);
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(',').map(|o| o.trim_matches([' ', '\t'])) {
                close |= option.eq_ignore_ascii_case("close");
                keep_alive |= option.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    if version == Version::Http11 && !host {
        return Err(RequestError::Malformed("HTTP/1.1 without Host"));
    }
    head.content_length = length.unwrap_or(0);
    if head.content_length > limits.max_body_bytes {
        return Err(RequestError::BodyTooLarge);
    }
    // Close wins over keep-alive; HTTP/1.0 stays open only when asked.
    head.keep_alive = !close && (version == Version::Http11 || keep_alive);
    Ok(Some(head))
}

fn incomplete<'a>(buffer: &[u8], limits: &Limits) -> Result<Option<RequestHead<'a>>, RequestError> {
    if buffer.len() >= limits.max_head_bytes {
        Err(RequestError::HeadTooLarge)
    } else {
        Ok(None)
    }
}

/// Where the empty line ending the head starts (the index of `\r\n\r\n`).
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Every CR is followed by LF and every LF preceded by CR (a trailing CR
/// may still get its LF), and no other control byte appears but tab.
fn check_line_endings(bytes: &[u8]) -> Result<(), RequestError> {
    for (i, &byte) in bytes.iter().enumerate() {
        match byte {
            b'\r' if bytes.get(i + 1).is_some_and(|&next| next != b'\n') => {
                return Err(RequestError::Malformed("bare CR"));
            }
            b'\n' if i == 0 || bytes[i - 1] != b'\r' => {
                return Err(RequestError::Malformed("bare LF"));
            }
            b'\r' | b'\n' | b'\t' => {}
            0..=0x1f | 0x7f => return Err(RequestError::Malformed("control byte")),
            _ => {}
        }
    }
    Ok(())
}

fn parse_request_line(line: &str) -> Result<(&str, &str, Version), RequestError> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed("request line"));
    };
    if method.is_empty() || !method.bytes().all(is_token_byte) {
        return Err(RequestError::Malformed("method"));
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RequestError::Malformed("target"));
    }
    if !(target.starts_with('/') || target == "*" || target.contains("://")) {
        return Err(RequestError::Malformed("target"));
    }
    let version = match version.strip_prefix("HTTP/").map(str::as_bytes) {
        Some(b"1.1") => Version::Http11,
        Some(b"1.0") => Version::Http10,
        // A later 1.x minor version is answered as 1.1 (RFC 9110 6.2).
        Some([b'1', b'.', minor]) if minor.is_ascii_digit() => Version::Http11,
        Some([major, b'.', minor]) if major.is_ascii_digit() && minor.is_ascii_digit() => {
            return Err(RequestError::Version);
        }
        Some([major]) if major.is_ascii_digit() => return Err(RequestError::Version),
        _ => return Err(RequestError::Malformed("version")),
    };
    Ok((method, target, version))
}

fn parse_field(line: &str) -> Result<(&str, &str), RequestError> {
    if line.starts_with([' ', '\t']) {
        return Err(RequestError::Malformed("obsolete line folding"));
    }
    let (name, value) = line
        .split_once(':')
        .ok_or(RequestError::Malformed("field without colon"))?;
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(RequestError::Malformed("field name"));
    }
    Ok((name, value.trim_matches([' ', '\t'])))
}

fn parse_length(value: &str) -> Result<u64, RequestError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RequestError::Malformed("Content-Length"));
    }
    // All digits: the only failure left is overflow, a length over any limit.
    value.parse::<u64>().map_err(|_| RequestError::BodyTooLarge)
}

/// RFC 9110 tchar.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    }
}

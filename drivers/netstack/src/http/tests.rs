//! Host tests of the request parser and the body helpers.

use super::*;
use alloc::string::ToString;
use alloc::vec::Vec;

fn parse(bytes: &[u8]) -> Result<Option<RequestHead<'_>>, RequestError> {
    parse_request(bytes, &Limits::DEFAULT)
}

fn head(bytes: &[u8]) -> RequestHead<'_> {
    parse(bytes).unwrap().unwrap()
}

#[test]
fn a_plain_get() {
    let bytes = b"GET /bytes/10?x=1 HTTP/1.1\r\nHost: 10.0.2.15\r\nUser-Agent: curl/8.5\r\nAccept: */*\r\n\r\n";
    let head = head(bytes);
    assert_eq!(head.method, Method::Get);
    assert_eq!(head.method_name, "GET");
    assert_eq!(head.target, "/bytes/10?x=1");
    assert_eq!(head.path(), "/bytes/10");
    assert_eq!(head.version, Version::Http11);
    assert!(head.keep_alive);
    assert_eq!(head.content_length, 0);
    assert_eq!(head.head_len, bytes.len());
    assert_eq!(head.header("user-agent"), Some("curl/8.5"));
    assert_eq!(head.header("HOST"), Some("10.0.2.15"));
    assert_eq!(head.headers().count(), 3);
}

#[test]
fn versions_and_connection_options() {
    let h = head(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(h.version, Version::Http10);
    assert!(!h.keep_alive);
    assert!(head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    assert!(!head(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
    assert!(
        !head(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n").keep_alive
    );
    assert!(
        !head(b"GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n").keep_alive
    );
    assert_eq!(
        head(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n").version,
        Version::Http11
    );
    assert_eq!(
        parse(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
        Err(RequestError::Version)
    );
    assert_eq!(
        parse(b"GET / HTTP/3\r\nHost: a\r\n\r\n"),
        Err(RequestError::Version)
    );
    assert_eq!(parse(b"GET / HTTP/0.9\r\n\r\n"), Err(RequestError::Version));
    assert!(matches!(
        parse(b"GET / HTTPS/1.1\r\n\r\n"),
        Err(RequestError::Malformed(_))
    ));
    assert!(matches!(
        parse(b"GET / http/1.1\r\n\r\n"),
        Err(RequestError::Malformed(_))
    ));
}

#[test]
fn incomplete_heads_ask_for_more() {
    let full = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for cut in 0..full.len() {
        assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
    }
    assert!(parse(full).unwrap().is_some());
}

#[test]
fn pipelined_requests_parse_one_at_a_time() {
    let bytes = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HT";
    let first = head(bytes);
    assert_eq!(first.target, "/a");
    let rest = &bytes[first.head_len..];
    let second = head(rest);
    assert_eq!(second.target, "/b");
    assert_eq!(parse(&rest[second.head_len..]), Ok(None));
}

#[test]
fn bodies_by_content_length() {
    let bytes = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET";
    let h = head(bytes);
    assert_eq!(h.method, Method::Post);
    assert_eq!(h.content_length, 5);
    assert_eq!(&bytes[h.head_len..h.head_len + 5], b"hello");
    let same = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
    assert_eq!(head(same).content_length, 5);
    let two = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    assert!(matches!(parse(two), Err(RequestError::Malformed(_))));
    for bad in ["-1", "+5", "5 5", "0x10", ""] {
        let text = alloc::format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {bad}\r\n\r\n");
        assert!(
            matches!(parse(text.as_bytes()), Err(RequestError::Malformed(_))),
            "{bad}"
        );
    }
    let big = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n";
    assert_eq!(parse(big), Err(RequestError::BodyTooLarge));
    let huge = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    assert_eq!(parse(huge), Err(RequestError::BodyTooLarge));
    let chunked = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(parse(chunked), Err(RequestError::TransferEncoding));
    assert_eq!(RequestError::TransferEncoding.status(), 501);
}

#[test]
fn malformed_requests() {
    let cases: &[&[u8]] = &[
        b"GET /\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1 x\r\nHost: a\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET nopath HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ];
    for case in cases {
        let result = parse(case);
        assert!(
            matches!(result, Err(RequestError::Malformed(_))),
            "{:?}: {result:?}",
            core::str::from_utf8(case)
        );
        assert_eq!(result.unwrap_err().status(), 400);
    }
}

#[test]
fn bare_line_endings_are_refused_early() {
    // Refused before the head is complete: a client speaking LF-only
    // HTTP does not wait for the idle timeout.
    assert!(matches!(
        parse(b"GET / HTTP/1.1\nHost: a\n"),
        Err(RequestError::Malformed("bare LF"))
    ));
    assert!(matches!(
        parse(b"GET / HTTP/1.1\rHost"),
        Err(RequestError::Malformed("bare CR"))
    ));
    assert_eq!(parse(b"GET / HTTP/1.1\r"), Ok(None));
}

#[test]
fn leading_empty_lines_are_skipped() {
    let bytes = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let h = head(bytes);
    assert_eq!(h.target, "/");
    assert_eq!(h.head_len, bytes.len());
    assert_eq!(parse(b"\r\n"), Ok(None));
}

#[test]
fn head_limits() {
    let limits = Limits {
        max_head_bytes: 64,
        max_headers: 3,
        ..Limits::DEFAULT
    };
    let fits = b"GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n";
    assert!(parse_request(fits, &limits).unwrap().is_some());
    let many = b"GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n";
    assert_eq!(
        parse_request(many, &limits),
        Err(RequestError::HeadTooLarge)
    );
    let mut long = Vec::from(&b"GET / HTTP/1.1\r\nHost: a\r\nX: "[..]);
    long.resize(64, b'x');
    assert_eq!(
        parse_request(&long, &limits),
        Err(RequestError::HeadTooLarge)
    );
    assert_eq!(parse_request(&long[..63], &limits), Ok(None));
    let mut complete_but_long = Vec::from(&b"GET / HTTP/1.1\r\nHost: a\r\nX: "[..]);
    complete_but_long.resize(62, b'x');
    complete_but_long.extend_from_slice(b"\r\n\r\n");
    assert_eq!(
        parse_request(&complete_but_long, &limits),
        Err(RequestError::HeadTooLarge)
    );
    assert_eq!(RequestError::HeadTooLarge.status(), 431);
    assert_eq!(RequestError::BodyTooLarge.status(), 413);
}

#[test]
fn bytes_routes() {
    assert_eq!(bytes_route("/bytes/0", 10), Some(Ok(0)));
    assert_eq!(bytes_route("/bytes/10", 10), Some(Ok(10)));
    assert_eq!(bytes_route("/bytes/11", 10), Some(Err(())));
    assert_eq!(bytes_route("/bytes/", 10), Some(Err(())));
    assert_eq!(bytes_route("/bytes/1x", 10), Some(Err(())));
    assert_eq!(
        bytes_route("/bytes/99999999999999999999999", u64::MAX),
        Some(Err(()))
    );
    assert_eq!(bytes_route("/stats", 10), None);
}

#[test]
fn the_byte_pattern_is_the_same_in_pieces() {
    let mut whole = alloc::vec![0u8; 1000];
    BytePattern::new().fill(&mut whole);
    let mut pieces = Vec::new();
    let mut pattern = BytePattern::new();
    for size in [1usize, 250, 251, 3, 495] {
        let mut piece = alloc::vec![0u8; size];
        assert_eq!(pattern.fill(&mut piece), size);
        pieces.extend_from_slice(&piece);
    }
    assert_eq!(whole, pieces);
    for (i, byte) in whole.iter().enumerate() {
        assert_eq!(*byte, BytePattern::byte_at(i as u64));
    }
}

#[test]
fn stats_print_on_one_line() {
    let stats = Stats {
        connections: 3,
        heap_used: Some(1024),
        ..Stats::default()
    };
    let line = stats.to_string();
    assert!(line.starts_with("connections=3 active=0 requests=0 refused=0"));
    assert!(line.ends_with(" heap_used=1024"));
    assert!(!line.contains('\n'));
}

#[test]
fn the_default_limits_take_about_a_mebibyte_of_sockets() {
    assert_eq!(Limits::DEFAULT.socket_memory(), 32 * 36 * 1024);
}

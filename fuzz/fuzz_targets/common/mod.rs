//! What the parser targets share: a run of the parser over pieces of input, as text.

use gruvi_http::http::{HeaderValue, Method, Uri};
use gruvi_http::{Event, Limits, Parser};

/// The events of one run, body data merged, as text.
pub fn run(make: impl Fn(Limits) -> Parser, pieces: &[&[u8]]) -> Vec<String> {
    let limits = Limits {
        max_request_line: 256,
        max_headers: 16,
        max_head_size: 1024,
        max_chunk_extension: 32,
        max_trailer_size: 256,
        max_body_size: 4096,
    };
    let mut parser = make(limits);
    let mut out = Vec::new();
    let mut data = Vec::new();
    for piece in pieces {
        let mut input = *piece;
        loop {
            match parser.parse(input, 7) {
                Err(err) => {
                    out.push(format!("data {data:?}"));
                    out.push(format!("error {err:?}"));
                    return out;
                }
                Ok((used, event)) => {
                    input = &input[used..];
                    match event {
                        Event::NeedMore => break,
                        Event::Data(d) => data.extend_from_slice(d),
                        Event::End => out.push(format!("data {:?} end", std::mem::take(&mut data))),
                        Event::Request(mut head) => {
                            // Nothing of an earlier request (changed below) shows.
                            assert!(head.request.extensions().is_empty());
                            out.push(format!("{:?} {:?}", head.request, head.framing));
                            // As a server's handler may: changes to the request, then its
                            // box back for the next head on the thread to reuse.
                            let changed = HeaderValue::from_static("changed");
                            head.request.headers_mut().append("x-fuzz", changed);
                            head.request.extensions_mut().insert(1_u8);
                            *head.request.method_mut() = Method::PATCH;
                            *head.request.uri_mut() = Uri::from_static("/changed");
                            parser.recycle(head);
                        }
                        Event::Response(head) => {
                            out.push(format!("{:?} {:?}", head.response, head.framing))
                        }
                    }
                    if input.is_empty() && !parser.in_body() {
                        break;
                    }
                }
            }
        }
    }
    match parser.finish() {
        Ok(Event::End) => out.push(format!("data {data:?} end at eof")),
        Ok(_) => out.push(format!("data {data:?}")),
        Err(err) => {
            // An error found at the end of the input is the same outcome as one found while
            // parsing: a head in pieces is re-parsed only when a line ends.
            out.push(format!("data {data:?}"));
            out.push(format!("error {err:?}"));
        }
    }
    out
}

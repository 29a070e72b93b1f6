//! [`Error`]: what can be wrong with a message on the wire.

use std::fmt;
use std::io;

use http::StatusCode;

/// A protocol error: the peer sent something this crate does not accept. Each one maps to the
/// status a server answers with ([`status`](Self::status)) before closing the connection.
///
/// Converted into an [`io::Error`] of kind [`InvalidData`](io::ErrorKind::InvalidData) (or
/// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) for [`Error::IncompleteMessage`]) with this
/// error inside; [`Error::from_io`] gets it back.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The message does not follow RFC 9112; the text says what was wrong (400).
    Malformed(&'static str),
    /// The request line is longer than [`Limits::max_request_line`](crate::Limits) (414).
    UriTooLong,
    /// The head is larger than [`Limits::max_head_size`](crate::Limits) or has more fields than
    /// [`Limits::max_headers`](crate::Limits) (431).
    HeadTooLarge,
    /// The body is larger than [`Limits::max_body_size`](crate::Limits) (413).
    BodyTooLarge,
    /// A chunk extension is longer than [`Limits::max_chunk_extension`](crate::Limits) (400).
    ChunkExtensionTooLong,
    /// The trailer section is larger than [`Limits::max_trailer_size`](crate::Limits) (431).
    TrailersTooLarge,
    /// An HTTP version other than 1.0 and 1.1 (505).
    UnsupportedVersion,
    /// A transfer coding other than `chunked` (501).
    UnsupportedTransferCoding,
    /// An `Expect` other than `100-continue` (417).
    UnknownExpectation,
    /// The connection ended before the message did.
    IncompleteMessage,
}

impl Error {
    /// The status a server answers this error with.
    ///
    /// # Examples
    ///
    /// ```
    /// use gruvi_http::Error;
    /// assert_eq!(Error::UriTooLong.status().as_u16(), 414);
    /// ```
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Malformed(_) | Error::ChunkExtensionTooLong | Error::IncompleteMessage => {
                StatusCode::BAD_REQUEST
            }
            Error::UriTooLong => StatusCode::URI_TOO_LONG,
            Error::HeadTooLarge | Error::TrailersTooLarge => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            Error::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedVersion => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            Error::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            Error::UnknownExpectation => StatusCode::EXPECTATION_FAILED,
        }
    }

    /// Recovers an [`Error`] converted into an [`io::Error`], if it is one.
    pub fn from_io(err: &io::Error) -> Option<&Error> {
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed(what) => write!(f, "malformed HTTP message: {what}"),
            Error::UriTooLong => f.write_str("request line too long"),
            Error::HeadTooLarge => f.write_str("message head too large"),
            Error::BodyTooLarge => f.write_str("message body too large"),
            Error::ChunkExtensionTooLong => f.write_str("chunk extension too long"),
            Error::TrailersTooLarge => f.write_str("trailer section too large"),
            Error::UnsupportedVersion => f.write_str("unsupported HTTP version"),
            Error::UnsupportedTransferCoding => f.write_str("unsupported transfer coding"),
            Error::UnknownExpectation => f.write_str("unknown expectation"),
            Error::IncompleteMessage => f.write_str("connection closed before the message ended"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = match err {
            Error::IncompleteMessage => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, err)
    }
}

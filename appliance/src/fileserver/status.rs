//! The status codes the file server answers with, and their reason phrases.

/// A response status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Status {
    Ok,
    PartialContent,
    MovedPermanently,
    NotModified,
    BadRequest,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PayloadTooLarge,
    UriTooLong,
    RangeNotSatisfiable,
    HeaderFieldsTooLarge,
    InternalServerError,
    ServiceUnavailable,
    VersionNotSupported,
}

impl Status {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::PartialContent => 206,
            Status::MovedPermanently => 301,
            Status::NotModified => 304,
            Status::BadRequest => 400,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::PayloadTooLarge => 413,
            Status::UriTooLong => 414,
            Status::RangeNotSatisfiable => 416,
            Status::HeaderFieldsTooLarge => 431,
            Status::InternalServerError => 500,
            Status::ServiceUnavailable => 503,
            Status::VersionNotSupported => 505,
        }
    }

    /// The status line, without the CRLF.
    pub fn line(self) -> &'static str {
        match self {
            Status::Ok => "HTTP/1.1 200 OK",
            Status::PartialContent => "HTTP/1.1 206 Partial Content",
            Status::MovedPermanently => "HTTP/1.1 301 Moved Permanently",
            Status::NotModified => "HTTP/1.1 304 Not Modified",
            Status::BadRequest => "HTTP/1.1 400 Bad Request",
            Status::Forbidden => "HTTP/1.1 403 Forbidden",
            Status::NotFound => "HTTP/1.1 404 Not Found",
            Status::MethodNotAllowed => "HTTP/1.1 405 Method Not Allowed",
            Status::RequestTimeout => "HTTP/1.1 408 Request Timeout",
            Status::PayloadTooLarge => "HTTP/1.1 413 Content Too Large",
            Status::UriTooLong => "HTTP/1.1 414 URI Too Long",
            Status::RangeNotSatisfiable => "HTTP/1.1 416 Range Not Satisfiable",
            Status::HeaderFieldsTooLarge => "HTTP/1.1 431 Request Header Fields Too Large",
            Status::InternalServerError => "HTTP/1.1 500 Internal Server Error",
            Status::ServiceUnavailable => "HTTP/1.1 503 Service Unavailable",
            Status::VersionNotSupported => "HTTP/1.1 505 HTTP Version Not Supported",
        }
    }

    /// Whether the connection must close after this answer: the request
    /// stream can no longer be trusted to be in sync, or the server is full.
    pub fn closes(self) -> bool {
        matches!(
            self,
            Status::BadRequest
                | Status::RequestTimeout
                | Status::PayloadTooLarge
                | Status::UriTooLong
                | Status::HeaderFieldsTooLarge
                | Status::ServiceUnavailable
                | Status::VersionNotSupported
        )
    }
}

//! NGSI-LD errors (ETSI GS CIM 009, clause 5.5.2) as RFC 7807 ProblemDetails.

use serde::Serialize;

/// The NGSI-LD error types and the HTTP status each one maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    BadRequestData,
    AlreadyExists,
    OperationNotSupported,
    ResourceNotFound,
    InternalError,
    TooComplexQuery,
    TooManyResults,
    LdContextNotAvailable,
    NonExistentTenant,
    NotAcceptable,
    MethodNotAllowed,
    UnsupportedMediaType,
    PayloadTooLarge,
    ServiceUnavailable,
    /// No credentials, or credentials that do not hold (401). Not an NGSI-LD error
    /// type: access control is the platform's own.
    Unauthenticated,
    /// Credentials that hold, without the right for this request (403).
    Forbidden,
    /// Too many requests from one key or address (429).
    TooManyRequests,
}

impl ErrorKind {
    /// The `type` URI of the ProblemDetails.
    pub fn type_uri(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest",
            ErrorKind::BadRequestData => "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
            ErrorKind::AlreadyExists => "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists",
            ErrorKind::OperationNotSupported => {
                "https://uri.etsi.org/ngsi-ld/errors/OperationNotSupported"
            }
            ErrorKind::ResourceNotFound => "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound",
            ErrorKind::InternalError => "https://uri.etsi.org/ngsi-ld/errors/InternalError",
            ErrorKind::TooComplexQuery => "https://uri.etsi.org/ngsi-ld/errors/TooComplexQuery",
            ErrorKind::TooManyResults => "https://uri.etsi.org/ngsi-ld/errors/TooManyResults",
            ErrorKind::LdContextNotAvailable => {
                "https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable"
            }
            ErrorKind::NonExistentTenant => "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant",
            // Not NGSI-LD error types: HTTP-level refusals, typed as plain HTTP problems.
            ErrorKind::NotAcceptable => "https://uri.etsi.org/ngsi-ld/errors/NotAcceptable",
            ErrorKind::MethodNotAllowed => "https://uri.etsi.org/ngsi-ld/errors/MethodNotAllowed",
            ErrorKind::UnsupportedMediaType => {
                "https://uri.etsi.org/ngsi-ld/errors/UnsupportedMediaType"
            }
            ErrorKind::PayloadTooLarge => "https://uri.etsi.org/ngsi-ld/errors/PayloadTooLarge",
            ErrorKind::ServiceUnavailable => {
                "https://uri.etsi.org/ngsi-ld/errors/ServiceUnavailable"
            }
            ErrorKind::Unauthenticated => "urn:dothi:errors:Unauthenticated",
            ErrorKind::Forbidden => "urn:dothi:errors:Forbidden",
            ErrorKind::TooManyRequests => "urn:dothi:errors:TooManyRequests",
        }
    }

    /// The HTTP status code the spec gives this error.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::BadRequestData => 400,
            ErrorKind::AlreadyExists => 409,
            ErrorKind::OperationNotSupported => 422,
            ErrorKind::ResourceNotFound | ErrorKind::NonExistentTenant => 404,
            ErrorKind::InternalError => 500,
            ErrorKind::TooComplexQuery | ErrorKind::TooManyResults => 403,
            ErrorKind::LdContextNotAvailable | ErrorKind::ServiceUnavailable => 503,
            ErrorKind::NotAcceptable => 406,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::TooManyRequests => 429,
        }
    }

    /// A short human title.
    pub fn title(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "Invalid request",
            ErrorKind::BadRequestData => "Bad request data",
            ErrorKind::AlreadyExists => "Already exists",
            ErrorKind::OperationNotSupported => "Operation not supported",
            ErrorKind::ResourceNotFound => "Resource not found",
            ErrorKind::InternalError => "Internal error",
            ErrorKind::TooComplexQuery => "Too complex query",
            ErrorKind::TooManyResults => "Too many results",
            ErrorKind::LdContextNotAvailable => "@context not available",
            ErrorKind::NonExistentTenant => "Tenant does not exist",
            ErrorKind::NotAcceptable => "Not acceptable",
            ErrorKind::MethodNotAllowed => "Method not allowed",
            ErrorKind::UnsupportedMediaType => "Unsupported media type",
            ErrorKind::PayloadTooLarge => "Payload too large",
            ErrorKind::ServiceUnavailable => "Service unavailable",
            ErrorKind::Unauthenticated => "Authentication required",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::TooManyRequests => "Too many requests",
        }
    }
}

/// An NGSI-LD error: a kind and a detail for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", kind.title())]
pub struct Error {
    pub kind: ErrorKind,
    pub detail: String,
}

impl Error {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error {
            kind,
            detail: detail.into(),
        }
    }
    pub fn bad_data(detail: impl Into<String>) -> Self {
        Error::new(ErrorKind::BadRequestData, detail)
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidRequest, detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Error::new(ErrorKind::ResourceNotFound, detail)
    }
    pub fn already_exists(detail: impl Into<String>) -> Self {
        Error::new(ErrorKind::AlreadyExists, detail)
    }
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unauthenticated, detail)
    }
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Error::new(ErrorKind::Forbidden, detail)
    }

    /// The RFC 7807 body.
    pub fn problem(&self) -> ProblemDetails {
        ProblemDetails {
            kind: self.kind.type_uri(),
            title: self.kind.title(),
            status: self.kind.status(),
            detail: self.detail.clone(),
        }
    }
}

/// RFC 7807 problem details, as NGSI-LD returns them.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemDetails {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The start of a client's text, so that an error detail stays short.
pub(crate) fn shorten(text: &str) -> &str {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

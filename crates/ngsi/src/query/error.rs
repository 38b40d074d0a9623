//! The error every query parser returns, and the limits they all enforce.

/// Why a query text was refused, and where.
///
/// `offset` is a byte offset into the text that was parsed (for `geoQ`, into the
/// parameter named at the start of `message`), so a client can be pointed at the spot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at offset {offset}")]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

impl ParseError {
    pub fn new(offset: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            offset,
            message: message.into(),
        }
    }
}

/// Longest query text accepted, in bytes: queries come from URLs, and a bound keeps
/// the cost of parsing (and of evaluating the result) predictable.
pub const MAX_QUERY_LEN: usize = 64 * 1024;

/// Deepest parenthesis nesting accepted: the parsers recurse once per level, so a
/// bound keeps hostile input such as `((((…` from exhausting the stack.
pub const MAX_NESTING: usize = 64;

/// Refuses texts longer than [`MAX_QUERY_LEN`].
pub(crate) fn check_len(text: &str) -> Result<(), ParseError> {
    if text.len() > MAX_QUERY_LEN {
        return Err(ParseError::new(
            MAX_QUERY_LEN,
            format!("query longer than {MAX_QUERY_LEN} bytes"),
        ));
    }
    Ok(())
}

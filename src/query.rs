//! Query strings, parsed once and strictly for every route that reads one (history, the
//! stream on either path): each percent-escape must decode to UTF-8 (an invalid sequence is
//! `400 invalid_query`, never a silent U+FFFD), then the pairs must fit the route's shape.

use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// `query` (without `?`) read into `T`.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidQuery, message);
    for pair in query.split('&') {
        let text = pair.replace('+', " ");
        if percent_encoding::percent_decode_str(&text)
            .decode_utf8()
            .is_err()
        {
            return Err(invalid(format!(
                "`{pair}` does not decode to UTF-8 text; percent-encode the UTF-8 bytes of each character"
            )));
        }
    }
    serde_urlencoded::from_str(query).map_err(|error| invalid(format!("the query: {error}")))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn escapes_must_decode_to_utf8() {
        let ok: BTreeMap<String, String> = parse("user=%C3%A9t%C3%A9&topics=a%2Cb+c").unwrap();
        assert_eq!(ok["user"], "été");
        assert_eq!(ok["topics"], "a,b c");
        for bad in ["user=%FF", "user=%C3", "%80=x"] {
            let error = parse::<BTreeMap<String, String>>(bad).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidQuery, "{bad}");
        }
    }
}

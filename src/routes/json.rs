//! Request bodies: every JSON body Herald reads comes through here, so every route judges a
//! body the same way and answers a bad one with the same errors.
//!
//! A body must arrive within `server.body_timeout_secs` (408, connection closed) and
//! `server.max_body_bytes` (413), be sent as `application/json` (415), be JSON (400) in
//! which no object repeats a key (400: which of two values was meant cannot be known), and be
//! an object (422) of the shape the route reads (422). The handlers call these after their
//! credentials check out, so a stranger learns nothing from how a body is judged.

use std::fmt;
use std::time::Duration;

use actix_web::{HttpMessage, HttpRequest, web};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::config::ServerSettings;
use crate::error::{ApiError, ErrorCode};

/// A required body: a JSON object of shape `T`.
pub async fn json<T: DeserializeOwned>(
    request: &HttpRequest,
    payload: web::Payload,
    settings: &ServerSettings,
) -> Result<T, ApiError> {
    typed(json_object(request, payload, settings).await?)
}

/// A body that may be left out entirely (empty, or only whitespace, means `None`); anything
/// sent is judged as a required body is.
pub async fn optional_json<T: DeserializeOwned>(
    request: &HttpRequest,
    payload: web::Payload,
    settings: &ServerSettings,
) -> Result<Option<T>, ApiError> {
    let bytes = read(request, payload, settings).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    check_content_type(request)?;
    typed(parse_object(&bytes)?).map(Some)
}

/// A required body that must be a JSON object, left as JSON for the route to read.
pub async fn json_object(
    request: &HttpRequest,
    payload: web::Payload,
    settings: &ServerSettings,
) -> Result<Value, ApiError> {
    check_content_type(request)?;
    let bytes = read(request, payload, settings).await?;
    parse_object(&bytes)
}

fn check_content_type(request: &HttpRequest) -> Result<(), ApiError> {
    if request.content_type() == "application/json" {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::UnsupportedMediaType,
        "send the body as Content-Type: application/json",
    ))
}

/// The whole body, within the size and time limits.
async fn read(
    request: &HttpRequest,
    payload: web::Payload,
    settings: &ServerSettings,
) -> Result<web::Bytes, ApiError> {
    let limit = settings.max_body_bytes;
    let too_large = || {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let timeout = Duration::from_secs(settings.body_timeout_secs);
    match tokio::time::timeout(timeout, payload.to_bytes_limited(limit)).await {
        Err(_) => Err(ApiError::new(
            ErrorCode::BodyTimeout,
            format!("the body did not arrive within {timeout:?}"),
        )),
        Ok(Err(_)) => Err(too_large()),
        Ok(Ok(Err(error))) => Err(ApiError::new(
            ErrorCode::InvalidJson,
            format!("the body could not be read: {error}"),
        )),
        Ok(Ok(Ok(bytes))) => Ok(bytes),
    }
}

/// `bytes` as a JSON object in which no object repeats a key.
fn parse_object(bytes: &[u8]) -> Result<Value, ApiError> {
    let value = serde_json::from_slice::<StrictValue>(bytes)
        .map_err(|error| {
            let message = match error.is_data() {
                // The only data error of a `StrictValue`: a repeated key.
                true => error.to_string(),
                false => format!("the body is not valid JSON: {error}"),
            };
            ApiError::new(ErrorCode::InvalidJson, message)
        })?
        .0;
    if value.is_object() {
        return Ok(value);
    }
    let found = match value {
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::Object(_) => "an object",
    };
    Err(ApiError::new(
        ErrorCode::InvalidBody,
        format!("the body must be a JSON object, not {found}"),
    ))
}

/// An object read into the route's shape; what does not fit is the body's fault.
fn typed<T: DeserializeOwned>(object: Value) -> Result<T, ApiError> {
    serde_json::from_value(object)
        .map_err(|error| ApiError::new(ErrorCode::InvalidBody, error.to_string()))
}

/// Any JSON value, refused where an object names a key twice (serde_json would keep the
/// last silently).
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "the key `{key}` appears twice in one object; each key may appear once"
                )));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_read_whole_and_repeated_keys_refused() {
        let object = parse_object(br#"{"to":{"user":"a"},"data":[1,{"x":null}]}"#).unwrap();
        assert_eq!(object["data"][1]["x"], Value::Null);
        for repeated in [&br#"{"to":1,"to":2}"#[..], br#"{"data":{"a":1,"a":1}}"#] {
            let error = parse_object(repeated).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidJson);
            assert!(error.message.contains("appears twice"), "{}", error.message);
        }
    }

    #[test]
    fn anything_but_an_object_is_refused_as_a_body() {
        for (body, found) in [
            (&b"[null,null]"[..], "an array"),
            (b"null", "null"),
            (b"\"x\"", "a string"),
            (b"1", "a number"),
        ] {
            let error = parse_object(body).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidBody);
            assert!(error.message.ends_with(found), "{}", error.message);
        }
        assert_eq!(parse_object(b"{").unwrap_err().code, ErrorCode::InvalidJson);
    }
}

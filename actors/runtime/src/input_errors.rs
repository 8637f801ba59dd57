//! Our words for input that does not fit: a body, query string or path that serde refused is
//! answered with a short message of our own, never serde's text ("invalid type: string, expected
//! u32", "expected struct LogoutRequest") nor a Rust type name. Messages written by our own
//! `Deserialize` impls (validated newtypes) pass through unchanged.

/// The code and message for a JSON body that serde refused: `malformed_json` when it is not
/// JSON at all, else `invalid_body` with what does not fit.
pub fn describe_json_error(error: &serde_json::Error) -> (&'static str, String) {
    let position = format!("line {}, column {}", error.line(), error.column());
    match error.classify() {
        serde_json::error::Category::Data => {
            let text = error.to_string();
            let text = text.rsplit_once(" at line ").map_or(text.as_str(), |(message, _)| message);
            if text.starts_with("invalid length ") && expects_an_object(text) {
                return ("invalid_body", format!("an array was sent where an object is needed ({position})"));
            }
            ("invalid_body", format!("{} ({position})", describe_serde_message(text)))
        }
        serde_json::error::Category::Eof => {
            ("malformed_json", format!("the body is not valid JSON: it ends early ({position})"))
        }
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
            ("malformed_json", format!("the body is not valid JSON ({position})"))
        }
    }
}

/// A serde data error's text (without position) in our words.
pub fn describe_serde_message(text: &str) -> String {
    if let Some(rest) = text.strip_prefix("missing field `") {
        return format!("`{}` is required", until_backtick(rest));
    }
    if let Some(rest) = text.strip_prefix("unknown field `") {
        return format!("`{}` is not a field of this request", until_backtick(rest));
    }
    if let Some(rest) = text.strip_prefix("unknown variant `") {
        let value = until_backtick(rest);
        let accepted = rest.split_once("expected ").map(|(_, expected)| accepted_values(expected));
        return match accepted {
            Some(accepted) if !accepted.is_empty() => format!("`{value}` is not one of {accepted}"),
            _ => format!("`{value}` is not an accepted value"),
        };
    }
    if let Some(rest) = text.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return format!("{} was sent where {} is needed", kind_of_found(found), kind_of_expected(expected));
    }
    if let Some(rest) = text.strip_prefix("invalid value: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return format!("{} is not allowed here: {} is needed", kind_of_found(found), kind_of_expected(expected));
    }
    if text.starts_with("invalid length") {
        return "a list has the wrong number of items".to_string();
    }
    if let Some(rest) = text.strip_prefix("duplicate field `") {
        return format!("`{}` is given twice", until_backtick(rest));
    }
    if text.contains("invalid digit") || text.contains("number too large") || text.contains("number too small") {
        return "a number is not a whole number in range".to_string();
    }
    if text.contains("invalid float literal") {
        return "a value is not a number".to_string();
    }
    if text.contains("provided string was not `true` or `false`") {
        return "a value is not true or false".to_string();
    }
    if looks_like_library_text(text) {
        return "a value does not fit this request".to_string();
    }
    text.to_string()
}

/// Whether serde wanted an object (a struct or map) where something else came (an array is
/// read as a struct's fields in order: refused too).
fn expects_an_object(text: &str) -> bool {
    let expected = text.split_once(", expected ").map_or("", |(_, expected)| expected);
    (text.starts_with("invalid type: ") || text.starts_with("invalid length "))
        && (expected.starts_with("struct ") || expected == "a map")
}

/// Whether `body` is a JSON object (its first non-blank byte is `{`): serde reads a struct from
/// an array too, so a route whose fields are all optional checks this first.
pub fn is_json_object(body: &[u8]) -> bool {
    body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{')
}

fn until_backtick(text: &str) -> &str {
    text.split('`').next().unwrap_or(text)
}

/// "one of `a`, `b`" or "`a`" as "`a` or `b`" style prose, only when the list is plain names.
fn accepted_values(expected: &str) -> String {
    let values: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    if values.is_empty() || values.iter().any(|value| value.contains("::")) {
        return String::new();
    }
    let quoted: Vec<String> = values.iter().map(|value| format!("`{value}`")).collect();
    format!("the accepted values {}", quoted.join(", "))
}

/// What serde found, as a JSON kind.
fn kind_of_found(found: &str) -> String {
    let value = found.split('`').nth(1);
    let kind = match found.split([' ', '`']).next().unwrap_or("") {
        "string" => "a string",
        "integer" | "floating" => "a number",
        "boolean" => "true or false",
        "sequence" => "an array",
        "map" => "an object",
        "null" | "unit" => "null",
        "character" => "a string",
        _ => "a value",
    };
    match value {
        Some(value) if kind == "a number" && value.len() <= 24 => format!("the number {value}"),
        _ => kind.to_string(),
    }
}

/// What serde expected, as a JSON kind (never a Rust type name).
fn kind_of_expected(expected: &str) -> &'static str {
    let expected = expected.trim();
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number of at least 0",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "a string" | "a borrowed string" | "string" | "a character" | "char" => "a string",
        "a boolean" | "bool" => "true or false",
        "a sequence" | "a tuple" => "an array",
        "a map" => "an object",
        _ if expected.starts_with("struct ") || expected.starts_with("a map") => "an object",
        _ if expected.starts_with("tuple") => "an array",
        _ if expected.contains("integer") => "a whole number",
        _ if expected.contains("number") => "a number",
        _ if expected.contains("string") => "a string",
        _ => "another kind of value",
    }
}

/// Words that only a library would write.
fn looks_like_library_text(text: &str) -> bool {
    const LIBRARY_WORDS: [&str; 6] = ["::", "struct ", "enum ", "variant", "Error(", "expected "];
    LIBRARY_WORDS.iter().any(|word| text.contains(word))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct LogoutRequest {
        refresh_token: String,
        quantity: Option<u32>,
        kind: Option<Kind>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Email,
        Sms,
    }

    fn message(body: &str) -> (&'static str, String) {
        describe_json_error(&serde_json::from_str::<LogoutRequest>(body).unwrap_err())
    }

    #[test]
    fn serde_refusals_are_told_in_our_words() {
        let not_an_object =
            ("invalid_body", "an array was sent where an object is needed (line 1, column 2)".to_string());
        assert_eq!(message("[]"), not_an_object);
        assert_eq!(message(r#"["t", 1]"#).0, "invalid_body");
        assert!(is_json_object(b" {}") && !is_json_object(b"[]") && !is_json_object(b""));
        assert_eq!(message("\"x\"").1, "a string was sent where an object is needed (line 1, column 3)");
        assert_eq!(message("{}").1, "`refreshToken` is required (line 1, column 2)");
        assert_eq!(
            message(r#"{"refreshToken": 5}"#).1,
            "the number 5 was sent where a string is needed (line 1, column 18)"
        );
        assert_eq!(
            message(r#"{"refreshToken": "t", "quantity": "123"}"#).1,
            "a string was sent where a whole number of at least 0 is needed (line 1, column 39)"
        );
        assert_eq!(
            message(r#"{"refreshToken": "t", "quantity": -1}"#).1,
            "the number -1 is not allowed here: a whole number of at least 0 is needed (line 1, column 36)"
        );
        assert_eq!(
            message(r#"{"refreshToken": "t", "kind": "none"}"#).1,
            "`none` is not one of the accepted values `email`, `sms` (line 1, column 36)"
        );
        assert_eq!(
            message(r#"{"refreshToken": "t", "x": 1}"#).1,
            "`x` is not a field of this request (line 1, column 25)"
        );
        assert_eq!(message("{\"refreshToken\": ").0, "malformed_json");
        assert_eq!(message("{not json").1, "the body is not valid JSON (line 1, column 2)");
    }

    #[test]
    fn no_message_names_a_rust_type_or_serde_wording() {
        let bodies = [
            "[]",
            "null",
            "1",
            "true",
            "{}",
            r#"{"refreshToken": []}"#,
            r#"{"refreshToken": {}}"#,
            r#"{"refreshToken": null}"#,
            r#"{"refreshToken": 1.5}"#,
            r#"{"refreshToken": "t", "kind": 3}"#,
            r#"{"refreshToken": "t", "quantity": 99999999999999}"#,
            r#"{"refreshToken": "t", "refreshToken": "u"}"#,
        ];
        for body in bodies {
            let (_, text) = message(body);
            for word in ["LogoutRequest", "struct", "u32", "invalid type", "invalid value", "expected", "variant", "::"]
            {
                assert!(!text.contains(word), "{body}: {text}");
            }
        }
        for text in
            ["invalid digit found in string", "unknown variant `x`, expected one of `a`, `b`", "Foo::Bar failed"]
        {
            let said = describe_serde_message(text);
            assert!(!said.contains("::") && !said.contains("expected") && !said.contains("variant"), "{said}");
        }
    }
}

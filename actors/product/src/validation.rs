//! Input checks of the product service: what a product may hold and what a list query may ask.
//! Everything a store receives has been through here, as typed values: no operator, field name
//! or pattern ever comes from a client.

use std::collections::{BTreeMap, BTreeSet};

use emporium_contracts::money::Money;
use emporium_contracts::page::PageRequest;
use emporium_contracts::product::{ProductFilter, ProductRequest, ProductSort};

use crate::error::ProductError;
use crate::store::{PRICE_DECIMALS, ProductDraft, ProductQuery, scaled_amount};

/// Longest name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 5_000;
/// Longest category, in characters.
pub const MAX_CATEGORY_CHARS: usize = 64;
/// Most attributes of one product.
pub const MAX_ATTRIBUTES: usize = 50;
/// Longest attribute key, in characters.
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 64;
/// Longest string attribute value, in characters.
pub const MAX_ATTRIBUTE_STRING_CHARS: usize = 1_000;
/// Longest text query (`q`), in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words of one text query that are searched for; later ones are ignored.
pub const MAX_SEARCH_WORDS: usize = 10;
/// Most SKUs in one [`emporium_contracts::product::GetProducts`].
pub const MAX_SKUS: usize = 100;

/// The sort orders the list accepts, as the query string spells them.
pub const SORTS: [(&str, ProductSort); 6] = [
    ("price,asc", ProductSort::PriceAsc),
    ("price,desc", ProductSort::PriceDesc),
    ("name,asc", ProductSort::NameAsc),
    ("name,desc", ProductSort::NameDesc),
    ("createdAt,desc", ProductSort::CreatedAtDesc),
    ("createdAt,asc", ProductSort::CreatedAtAsc),
];

/// The order of a list that asks for none: newest first.
pub const DEFAULT_SORT: ProductSort = ProductSort::CreatedAtDesc;

/// A SKU is 1 to 64 characters: letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn check_sku(sku: &str) -> Result<(), ProductError> {
    if is_valid_sku(sku) {
        Ok(())
    } else {
        Err(ProductError::invalid(
            "invalid_sku",
            "a sku is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

/// Whether `sku` is a well-formed SKU (see [`check_sku`]).
pub fn is_valid_sku(sku: &str) -> bool {
    !sku.is_empty()
        && sku.len() <= 64
        && sku.chars().next().is_some_and(|first| first.is_ascii_alphanumeric())
        && sku.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A category is 1 to 64 characters, not blank, without control characters.
pub fn check_category(category: &str) -> Result<(), ProductError> {
    let length = category.chars().count();
    if length == 0
        || length > MAX_CATEGORY_CHARS
        || category.trim().is_empty()
        || category.chars().any(char::is_control)
    {
        return Err(ProductError::invalid(
            "invalid_category",
            format!("a category is 1 to {MAX_CATEGORY_CHARS} printable characters"),
        ));
    }
    Ok(())
}

/// Checks a product's values and answers them typed, the price as exact money.
pub fn check_product(request: ProductRequest) -> Result<ProductDraft, ProductError> {
    let ProductRequest { sku, name, description, price, currency, category, attributes } = request;
    check_sku(&sku)?;
    let name_length = name.chars().count();
    if name_length == 0 || name_length > MAX_NAME_CHARS || name.trim().is_empty() || name.chars().any(char::is_control)
    {
        return Err(ProductError::invalid(
            "invalid_name",
            format!("a name is 1 to {MAX_NAME_CHARS} characters, not blank, without control characters"),
        ));
    }
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ProductError::invalid(
            "invalid_description",
            format!("a description is at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    check_category(&category)?;
    let price = Money::parse(&price, &currency).map_err(|error| {
        let code = if error.code == "unsupported_currency" { "unsupported_currency" } else { "invalid_price" };
        ProductError::invalid(code, error.message)
    })?;
    check_attributes(&attributes)?;
    Ok(ProductDraft { sku, name, description, price, currency, category, attributes })
}

/// At most [`MAX_ATTRIBUTES`] attributes; keys of letters, digits, `_` and `-` (never `$` or
/// `.`, which MongoDB would read as an operator or a path); values strings, numbers or booleans.
pub fn check_attributes(attributes: &BTreeMap<String, serde_json::Value>) -> Result<(), ProductError> {
    let invalid = |message: String| ProductError::invalid("invalid_attributes", message);
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(invalid(format!("at most {MAX_ATTRIBUTES} attributes")));
    }
    for (key, value) in attributes {
        let key_valid = !key.is_empty()
            && key.chars().count() <= MAX_ATTRIBUTE_KEY_CHARS
            && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !key_valid {
            return Err(invalid(format!(
                "attribute key {key:?}: 1 to {MAX_ATTRIBUTE_KEY_CHARS} letters, digits, '_' or '-'"
            )));
        }
        match value {
            serde_json::Value::String(text) if text.chars().count() <= MAX_ATTRIBUTE_STRING_CHARS => {}
            serde_json::Value::String(_) => {
                return Err(invalid(format!(
                    "attribute {key}: a string value is at most {MAX_ATTRIBUTE_STRING_CHARS} characters"
                )));
            }
            serde_json::Value::Number(number) if number.is_i64() || number.is_f64() => {}
            serde_json::Value::Number(_) => {
                return Err(invalid(format!("attribute {key}: the number is out of range")));
            }
            serde_json::Value::Bool(_) => {}
            _ => return Err(invalid(format!("attribute {key}: a value is a string, a number or a boolean"))),
        }
    }
    Ok(())
}

/// The sort named `text` in the query string; 400 `invalid_sort` for anything off the list.
pub fn parse_sort(text: &str) -> Result<ProductSort, ProductError> {
    SORTS.iter().find(|(name, _)| *name == text).map(|(_, sort)| *sort).ok_or_else(|| {
        let names: Vec<&str> = SORTS.iter().map(|(name, _)| *name).collect();
        ProductError::invalid("invalid_sort", format!("sort must be one of {}", names.join(", ")))
    })
}

/// The words of a text query: runs of letters, digits and `_`; everything else separates words
/// and is never syntax (quotes, `-`, `$`, `.`, `*` ...). The first [`MAX_SEARCH_WORDS`]
/// different words count; empty when `q` has no word.
pub fn search_words(query: &str) -> Result<Vec<String>, ProductError> {
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(ProductError::invalid("invalid_query", format!("q is at most {MAX_QUERY_CHARS} characters")));
    }
    let mut seen = BTreeSet::new();
    let words: Vec<String> = query
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .filter(|word| seen.insert(word.to_lowercase()))
        .take(MAX_SEARCH_WORDS)
        .map(str::to_string)
        .collect();
    Ok(words)
}

/// A price bound of the list (`minPrice`, `maxPrice`): a plain decimal (digits, at most
/// [`PRICE_DECIMALS`] decimals, no sign or exponent), as an amount scaled by
/// 10^[`PRICE_DECIMALS`].
pub fn parse_price_bound(parameter: &str, text: &str) -> Result<i64, ProductError> {
    let invalid = || {
        ProductError::invalid(
            "invalid_price",
            format!("{parameter} must be a plain decimal amount such as 19.99 (got {text:?})"),
        )
    };
    if !is_price_bound_text(text) {
        return Err(invalid());
    }
    let currency = emporium_contracts::money::CURRENCIES
        .iter()
        .find(|(_, decimals)| *decimals == PRICE_DECIMALS)
        .map(|(code, _)| *code)
        .ok_or_else(invalid)?;
    let money = Money::parse(text, currency).map_err(|_| invalid())?;
    Ok(scaled_amount(money))
}

/// The shape the OpenAPI document gives both price bounds (the `minPrice` pattern in
/// routes.rs): 1 to 9 digits or 1000000000, then at most 2 decimals.
fn is_price_bound_text(text: &str) -> bool {
    let (whole, decimals) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    let whole_fits = (1..=9).contains(&whole.len()) || whole == "1000000000";
    let decimals_fit = if text.contains('.') { (1..=2).contains(&decimals.len()) } else { decimals.is_empty() };
    digits(whole)
        && digits(decimals)
        && whole_fits
        && decimals_fit
        && (whole.len() < 10 || decimals.bytes().all(|byte| byte == b'0'))
}

/// Checks a list request. `None` when its text query has no word at all (`q=.*`): such a query
/// matches nothing, and is never widened into "everything".
pub fn check_list(
    filter: ProductFilter,
    sort: Option<ProductSort>,
    page: PageRequest,
) -> Result<Option<ProductQuery>, ProductError> {
    // The page may come from another node: check it as the route does.
    let page = PageRequest::new(Some(page.page as i64), Some(page.size as i64))
        .map_err(|error| ProductError::invalid("invalid_page", error.message))?;
    let category = non_empty(filter.category);
    if let Some(category) = &category {
        check_category(category)?;
    }
    let min_price = non_empty(filter.min_price).map(|text| parse_price_bound("minPrice", &text)).transpose()?;
    let max_price = non_empty(filter.max_price).map(|text| parse_price_bound("maxPrice", &text)).transpose()?;
    // A range with no price in it is a question with no answer, not a mistake: no product.
    if let (Some(min), Some(max)) = (min_price, max_price)
        && min > max
    {
        return Ok(None);
    }
    let words = match non_empty(filter.text) {
        Some(text) => {
            let words = search_words(&text)?;
            if words.is_empty() {
                return Ok(None);
            }
            words
        }
        None => Vec::new(),
    };
    Ok(Some(ProductQuery { category, words, min_price, max_price, sort: sort.unwrap_or(DEFAULT_SORT), page }))
}

/// The SKUs of a `GetProducts`: 1 to [`MAX_SKUS`], each once, in the order asked. A malformed
/// one is kept: no product has it, so it is answered missing.
pub fn check_skus(skus: &[String]) -> Result<Vec<String>, ProductError> {
    if skus.is_empty() || skus.len() > MAX_SKUS {
        return Err(ProductError::invalid("invalid_skus", format!("ask for 1 to {MAX_SKUS} skus")));
    }
    let mut seen = BTreeSet::new();
    Ok(skus.iter().filter(|sku| seen.insert(sku.as_str())).cloned().collect())
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ProductRequest {
        ProductRequest {
            sku: "SKU-1".into(),
            name: "Mug".into(),
            description: String::new(),
            price: "19.99".into(),
            currency: "USD".into(),
            category: "kitchen".into(),
            attributes: BTreeMap::new(),
        }
    }

    fn code_of(result: Result<impl std::fmt::Debug, ProductError>) -> &'static str {
        match result {
            Err(ProductError::Invalid { code, .. }) => code,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_product_is_checked_field_by_field() {
        let draft = check_product(request()).unwrap();
        assert_eq!((draft.price.minor_units, draft.price.to_string()), (1999, "19.99".to_string()));
        let with = |change: fn(&mut ProductRequest)| {
            let mut request = request();
            change(&mut request);
            check_product(request)
        };
        assert_eq!(code_of(with(|r| r.sku = "-bad".into())), "invalid_sku");
        assert_eq!(code_of(with(|r| r.name = "  ".into())), "invalid_name");
        assert_eq!(code_of(with(|r| r.name = "x".repeat(201))), "invalid_name");
        assert_eq!(code_of(with(|r| r.description = "x".repeat(5001))), "invalid_description");
        assert_eq!(code_of(with(|r| r.category = String::new())), "invalid_category");
        assert_eq!(code_of(with(|r| r.category = "a\u{0}b".into())), "invalid_category");
        assert_eq!(code_of(with(|r| r.price = "19.999".into())), "invalid_price");
        assert_eq!(code_of(with(|r| r.price = "-1".into())), "invalid_price");
        assert_eq!(code_of(with(|r| r.price = "1e3".into())), "invalid_price");
        assert_eq!(code_of(with(|r| r.currency = "XXX".into())), "unsupported_currency");
        with(|r| r.name = "é".repeat(200)).unwrap();
    }

    #[test]
    fn attributes_cannot_smuggle_operators_or_documents() {
        let attributes = |pairs: &[(&str, serde_json::Value)]| {
            pairs.iter().map(|(key, value)| (key.to_string(), value.clone())).collect::<BTreeMap<_, _>>()
        };
        check_attributes(&attributes(&[
            ("color", "red".into()),
            ("weight_g", 350.into()),
            ("ratio", 0.5.into()),
            ("organic", true.into()),
        ]))
        .unwrap();
        for bad in [
            attributes(&[("$where", "1".into())]),
            attributes(&[("a.b", "1".into())]),
            attributes(&[("", "1".into())]),
            attributes(&[("nested", serde_json::json!({"$ne": 1}))]),
            attributes(&[("list", serde_json::json!([1]))]),
            attributes(&[("nothing", serde_json::Value::Null)]),
            attributes(&[("huge", serde_json::json!(u64::MAX))]),
            attributes(&[("long", "x".repeat(1001).into())]),
            (0..51).map(|index| (format!("k{index}"), serde_json::json!(1))).collect(),
        ] {
            assert_eq!(code_of(check_attributes(&bad)), "invalid_attributes", "{bad:?}");
        }
    }

    #[test]
    fn only_the_listed_sorts_are_accepted() {
        for (name, sort) in SORTS {
            assert_eq!(parse_sort(name).unwrap(), sort);
        }
        for bad in ["$natural", "price", "price,up", "price;drop", "PRICE,ASC", "_id,asc", ""] {
            assert_eq!(code_of(parse_sort(bad)), "invalid_sort", "{bad}");
        }
    }

    #[test]
    fn search_words_are_plain_words_and_never_syntax() {
        assert_eq!(search_words("red  running-shoe").unwrap(), vec!["red", "running", "shoe"]);
        assert_eq!(search_words("$where").unwrap(), vec!["where"]);
        assert_eq!(search_words("{\"$ne\":null}").unwrap(), vec!["ne", "null"]);
        assert_eq!(search_words("foo_bar Red red").unwrap(), vec!["foo_bar", "Red"]);
        assert!(search_words(".*").unwrap().is_empty());
        assert!(search_words("\"\" -").unwrap().is_empty());
        let eleven_words = (0..11).map(|index| format!("w{index}")).collect::<Vec<_>>().join(" ");
        let first_ten: Vec<String> = (0..10).map(|index| format!("w{index}")).collect();
        assert_eq!(search_words(&eleven_words).unwrap(), first_ten, "words after the tenth are ignored");
        assert_eq!(search_words(&"a ".repeat(11)).unwrap(), vec!["a"], "a repeated word counts once");
        assert_eq!(code_of(search_words(&"a".repeat(201))), "invalid_query");
    }

    #[test]
    fn price_bounds_have_the_documented_shape_only() {
        for text in ["0", "0.5", "19.99", "000000001", "999999999.99", "1000000000", "1000000000.00"] {
            assert!(is_price_bound_text(text), "{text}");
        }
        for text in
            ["", ".5", "5.", "1.234", "0000000001", "1000000000.01", "1000000001", "-1", "1e3", "+1", "1,5", " 1"]
        {
            assert!(!is_price_bound_text(text), "{text}");
        }
    }

    #[test]
    fn price_bounds_are_exact_decimals() {
        assert_eq!(parse_price_bound("minPrice", "19.99").unwrap(), 1999);
        assert_eq!(parse_price_bound("minPrice", "0.1").unwrap(), 10);
        assert_eq!(parse_price_bound("minPrice", "1500").unwrap(), 150_000);
        for bad in ["abc", "1e309", "-1", "1.999", "NaN", "", "9".repeat(400).as_str()] {
            assert_eq!(code_of(parse_price_bound("minPrice", bad)), "invalid_price", "{bad}");
        }
    }

    #[test]
    fn a_list_request_is_checked_and_a_wordless_query_matches_nothing() {
        let filter = |text: Option<&str>, min: Option<&str>, max: Option<&str>| ProductFilter {
            category: Some(String::new()),
            text: text.map(str::to_string),
            min_price: min.map(str::to_string),
            max_price: max.map(str::to_string),
        };
        let query = check_list(filter(Some("mug"), Some("1"), None), None, PageRequest::default()).unwrap().unwrap();
        assert_eq!((query.category, query.words, query.min_price), (None, vec!["mug".to_string()], Some(100)));
        assert_eq!(query.sort, DEFAULT_SORT);
        assert!(check_list(filter(Some(".*"), None, None), None, PageRequest::default()).unwrap().is_none());
        let reversed = check_list(filter(None, Some("5"), Some("4")), None, PageRequest::default());
        assert!(reversed.unwrap().is_none(), "a range with no price in it matches nothing");
        let too_big = check_list(filter(None, None, None), None, PageRequest { page: 0, size: 100_000 });
        assert_eq!(code_of(too_big), "invalid_page");
    }

    #[test]
    fn skus_are_bounded_and_deduplicated_in_order() {
        let skus = |list: &[&str]| list.iter().map(|sku| sku.to_string()).collect::<Vec<_>>();
        assert_eq!(check_skus(&skus(&["B", "A", "B", "{\"$ne\":1}"])).unwrap(), skus(&["B", "A", "{\"$ne\":1}"]));
        assert_eq!(code_of(check_skus(&[])), "invalid_skus");
        assert_eq!(code_of(check_skus(&vec!["A".to_string(); 101])), "invalid_skus");
    }
}

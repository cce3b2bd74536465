//! Unit tests of the filter language: what parses into what, where each malformed expression is
//! reported, how expressions evaluate, and that no input panics the parser.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::batch_process::expr::FilterExpr;

/// Parses `input`: the fully parenthesised expression, or `error at byte N: message`.
fn check(input: &str, expect: &str) {
    let got = match FilterExpr::parse(input) {
        Ok(filter) => filter.to_string(),
        Err(error) => format!("error at byte {}: {error}", error.offset),
    };
    assert_eq!(got, expect, "parsing {input:?}");
}

#[test]
fn well_formed_expressions_parse_with_the_documented_precedence() {
    check(r#"amount >= 100 && region == "华东""#, r#"((amount >= 100) && (region == "华东"))"#);
    check("a || b && c", "(a || (b && c))");
    check("a && b || c && d", "((a && b) || (c && d))");
    check("a || b || c", "(a || b || c)");
    check("a && (b || c)", "(a && (b || c))");
    check("!a == b", "(!a == b)");
    check("!(a == b)", "!(a == b)");
    check("!!a", "!!a");
    check("((a))", "a");
    check("!a && b", "(!a && b)");
    check("a==b&&c!=d||e<f", "(((a == b) && (c != d)) || (e < f))");
    check("a <= 1 && b > 2 && c >= -3.5", "((a <= 1) && (b > 2) && (c >= -3.5))");
    check("x >= -1e3 || x < 2E+2", "((x >= -1e3) || (x < 2E+2))");
    check("true", "true");
    check("null == missing", "(null == missing)");
    check("\n\t a \u{3000}==\r\n1 ", "(a == 1)");
}

#[test]
fn lists_strings_and_paths() {
    check("a in [1, 'x', true, null, -2.5,]", r#"(a in [1, "x", true, null, -2.5])"#);
    check("a in []", "(a in [])");
    check(r#"tags contains "sale""#, r#"(tags contains "sale")"#);
    check("customer.address.city == '上海'", r#"(customer.address.city == "上海")"#);
    check("items.0.sku != null", "(items.0.sku != null)");
    check("地区 == \"华东\"", r#"(地区 == "华东")"#);
    check("_x1.y_2 == 1", "(_x1.y_2 == 1)");
    check("`Order ID` == 5", "(`Order ID` == 5)");
    check("`in` == 1 && customer.`first name` == 'a'", r#"((`in` == 1) && (customer.`first name` == "a"))"#);
    check("true.x == 1", "(true.x == 1)");
    check(r#"a == "tab\tq\"\u00e9\ud83d\ude00\/""#, r#"(a == "tab\tq\"é😀/")"#);
    check(r"a == 'it\'s' || b == '\\'", r#"((a == "it's") || (b == "\\"))"#);
}

#[test]
fn malformed_expressions_point_at_the_bad_token() {
    check("", "error at byte 0: expected a value, found end of input at column 1");
    check("   ", "error at byte 3: expected a value, found end of input at column 4");
    check("amount >=", "error at byte 9: expected a value after '>=', found end of input at column 10");
    check("amount >= && x", "error at byte 10: expected a value after '>=', found '&&' at column 11");
    check(r#"region = "华东""#, "error at byte 7: unexpected character '=' (did you mean '=='?) at column 8");
    check("'华东' = 地区", "error at byte 9: unexpected character '=' (did you mean '=='?) at column 6");
    check("a & b", "error at byte 2: unexpected character '&' (did you mean '&&'?) at column 3");
    check("a | b", "error at byte 2: unexpected character '|' (did you mean '||'?) at column 3");
    check("a == #", "error at byte 5: unexpected character '#' at column 6");
    check("a - 1", "error at byte 2: unexpected character '-' at column 3");
    check("a == -", "error at byte 5: unexpected character '-' at column 6");
    check("a == .5", "error at byte 5: unexpected character '.' at column 6");
    check("a == 'x", "error at byte 5: unterminated string at column 6");
    check("地区 == \"华", "error at byte 10: unterminated string at column 7");
    check(r#"a == "\q""#, r"error at byte 6: invalid escape '\q' in string at column 7");
    check(r#"a == "\u12""#, r"error at byte 6: invalid escape '\u12' in string at column 7");
    check(r#"a == "\ud83d""#, r"error at byte 6: invalid escape '\ud83d' in string at column 7");
    check(r#"a == "\ud83d\u0041""#, r"error at byte 6: invalid escape '\ud83d\u0041' in string at column 7");
    check(r#"a == "\udc00""#, r"error at byte 6: invalid escape '\udc00' in string at column 7");
    check(r#"a == "\"#, "error at byte 5: unterminated string at column 6");
    check("1.2.3 == a", "error at byte 0: invalid number '1.2.3' at column 1");
    check("a == 12abc", "error at byte 5: invalid number '12abc' at column 6");
    check("a == 5.", "error at byte 5: invalid number '5.' at column 6");
    check("a == 1e", "error at byte 5: invalid number '1e' at column 6");
    check("a == -1.x", "error at byte 5: invalid number '-1.x' at column 6");
    check("customer. == 1", "error at byte 9: expected a field name after '.' at column 10");
    check("a..b", "error at byte 2: expected a field name after '.' at column 3");
    check("`abc == 1", "error at byte 0: unterminated quoted field name at column 1");
    check("x.`abc == 1", "error at byte 2: unterminated quoted field name at column 3");
    check("`` == 1", "error at byte 0: empty quoted field name at column 1");
    check(
        "(a == 1",
        "error at byte 7: expected ')' to close '(' at column 1, found end of input at column 8",
    );
    check(
        "x && (地区 == 1 y",
        "error at byte 18: expected ')' to close '(' at column 6, found field `y` at column 15",
    );
    check("a == 1)", "error at byte 6: expected '&&', '||' or end of input, found ')' at column 7");
    check(
        "a < b < c",
        "error at byte 6: comparisons cannot be chained: '<' follows a comparison (join them with '&&') at column 7",
    );
    check(
        "a == 1 in [1]",
        "error at byte 7: comparisons cannot be chained: 'in' follows a comparison (join them with '&&') at column 8",
    );
    check("a in 1", "error at byte 5: expected '[' after 'in', found number 1 at column 6");
    check(
        "a in [b]",
        "error at byte 6: expected a literal (string, number, true, false or null) in the list, found field `b` at column 7",
    );
    check("a in [1 2]", "error at byte 8: expected ',' or ']' in the list, found number 2 at column 9");
    check(
        "a in [1,",
        "error at byte 8: expected a literal (string, number, true, false or null) in the list, found end of input at column 9",
    );
    check(
        "amount > 5 and region == 'x'",
        "error at byte 11: expected '&&', '||' or end of input, found field `and` (use '&&') at column 12",
    );
    check(
        "a == b OR c",
        "error at byte 7: expected '&&', '||' or end of input, found field `OR` (use '||') at column 8",
    );
    check("a 'x'", r#"error at byte 2: expected '&&', '||' or end of input, found string "x" at column 3"#);
    check("&& a", "error at byte 0: expected a value, found '&&' at column 1");
    check("!", "error at byte 1: expected a value after '!', found end of input at column 2");
    check("()", "error at byte 1: expected a value after '(', found ')' at column 2");
    check("a == [1]", "error at byte 5: expected a value after '==', found '[' at column 6");
    check(
        "a contains",
        "error at byte 10: expected a value after 'contains', found end of input at column 11",
    );
    check("in == 1", "error at byte 0: expected a value, found 'in' at column 1");
    check("a == 1 ||", "error at byte 9: expected a value after '||', found end of input at column 10");
}

#[test]
fn nesting_is_bounded() {
    let deep = format!("{}a{}", "(".repeat(64), ")".repeat(64));
    check(&deep, "a");
    let too_deep = format!("{}a{}", "(".repeat(65), ")".repeat(65));
    check(&too_deep, "error at byte 64: expression nested more than 64 levels deep at column 65");
    check(
        &format!("{}a", "!".repeat(65)),
        "error at byte 64: expression nested more than 64 levels deep at column 65",
    );
    // Long flat chains are fine: they are n-ary, not nested.
    let chain = vec!["a == 1"; 10_000].join(" && ");
    assert!(FilterExpr::parse(&chain).is_ok());
}

/// The record the truth tables run against.
fn record() -> Value {
    json!({
        "amount": "120.50",
        "n": 100,
        "f": 100.0,
        "s": "abc",
        "empty": "",
        "flag": true,
        "flag_text": "true",
        "nul": null,
        "tags": ["sale", 1, "2"],
        "customer": { "address": { "city": "上海" } },
        "items": [{ "sku": "A1" }],
        "date": "2024-03-01",
        "zip": "007",
        "big": "12345678901234567890123456789",
        "csv.col": "x",
        "padded": " 42 ",
    })
}

/// Evaluates `input` against [`record`]: `true`, `false`, or the parse error.
fn check_eval(input: &str, expect: &str) {
    let got = match FilterExpr::parse(input) {
        Ok(filter) => filter.matches(&record()).to_string(),
        Err(error) => format!("error: {error}"),
    };
    assert_eq!(got, expect, "evaluating {input:?}");
}

#[test]
fn numbers_compare_by_value_when_a_number_is_involved() {
    check_eval("amount >= 100", "true");
    check_eval("amount > 120.5", "false");
    check_eval("amount == 120.5", "true");
    check_eval("amount >= 1e2", "true");
    check_eval("amount == '120.5'", "false"); // two strings: no conversion
    check_eval("n == 100.00", "true");
    check_eval("n == '100.0'", "true");
    check_eval("f == 100", "true");
    check_eval("n == f", "true");
    check_eval("zip == 7", "true");
    check_eval("zip == '7'", "false");
    check_eval("padded == 42", "true");
    check_eval("1 == 1.0", "true");
    check_eval("big < 12345678901234567890123456790", "true");
    check_eval("big == 12345678901234567890123456789.0", "true");
    check_eval("1e400 > 1e300", "true");
    check_eval("-0.5 < 0", "true");
}

#[test]
fn incomparable_values_make_every_ordering_false() {
    check_eval("s > 5", "false");
    check_eval("s <= 5", "false");
    check_eval("s != 5", "true");
    check_eval("missing > 5", "false");
    check_eval("missing <= 5", "false");
    check_eval("!(missing > 5)", "true");
    check_eval("empty > -1", "false");
    check_eval("empty == 0", "false");
    check_eval("flag > 0", "false");
    check_eval("tags > 1", "false");
    check_eval("nul < 1", "false");
}

#[test]
fn null_strings_and_booleans() {
    check_eval("missing == null", "true");
    check_eval("nul == null", "true");
    check_eval("missing != null", "false");
    check_eval("s == null", "false");
    check_eval("empty == ''", "true");
    check_eval("date < '2024-10-01'", "true");
    check_eval("'9' > '10'", "true");
    check_eval("s >= 'abc' && s < 'abd'", "true");
    check_eval("flag == 'true'", "true");
    check_eval("flag_text == true", "true");
    check_eval("flag_text == false", "false");
    check_eval("true == 'TRUE'", "false");
    check_eval("flag == 1", "false");
}

#[test]
fn truth_of_operands() {
    check_eval("flag", "true");
    check_eval("flag_text", "true");
    check_eval("s", "false");
    check_eval("!s", "true");
    check_eval("n", "false");
    check_eval("missing", "false");
    check_eval("!missing", "true");
    check_eval("!flag == false", "true");
    check_eval("flag && missing > 1 || s == 'abc'", "true");
    check_eval("flag && (missing > 1 || s == 'x')", "false");
    check_eval("null", "false");
    check_eval("'true'", "true");
}

#[test]
fn in_contains_and_paths() {
    check_eval("tags contains 'sale'", "true");
    check_eval("tags contains 1", "true");
    check_eval("tags contains 2", "true");
    check_eval("tags contains 'sal'", "false");
    check_eval("s contains 'b'", "true");
    check_eval("s contains ''", "true");
    check_eval("s contains 1", "false");
    check_eval("missing contains 'a'", "false");
    check_eval("amount in [1, 120.50]", "true");
    check_eval("s in []", "false");
    check_eval("missing in [null]", "true");
    check_eval("s in ['abc', 'x']", "true");
    check_eval("customer.address.city == '上海'", "true");
    check_eval("customer.address.city.x == null", "true");
    check_eval("items.0.sku == 'A1'", "true");
    check_eval("items.1.sku == null", "true");
    check_eval("`csv.col` == 'x'", "true");
    check_eval("csv.col == 'x'", "true");
    check_eval("tags == tags && customer == customer", "true");
    check_eval("tags == s", "false");
}

/// Token-ish fragments for the soup.
const FRAGMENTS: [&str; 42] = [
    "a",
    "amount",
    "b.c",
    "items.0",
    "`x y`",
    "`",
    "地区",
    "1",
    "-2.5",
    "1e3",
    "1.",
    "'s'",
    "\"华东\"",
    "'",
    "\"",
    "\\",
    "\\u",
    "(",
    ")",
    "[",
    "]",
    ",",
    "!",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    "&&",
    "||",
    "&",
    "|",
    "in",
    "contains",
    "true",
    "null",
    ".",
    " ",
    "#",
    "\u{3000}",
];

proptest! {
    #[test]
    fn random_token_soup_never_panics_and_errors_point_inside(parts in prop::collection::vec(0..FRAGMENTS.len(), 0..40), glue in prop::collection::vec(prop::bool::ANY, 40)) {
        let mut input = String::new();
        for (index, part) in parts.iter().enumerate() {
            input.push_str(FRAGMENTS[*part]);
            if glue.get(index).copied().unwrap_or(false) {
                input.push(' ');
            }
        }
        match FilterExpr::parse(&input) {
            Ok(filter) => {
                // The display is itself a valid expression that displays the same.
                let again = FilterExpr::parse(&filter.to_string());
                prop_assert_eq!(again.map(|f| f.to_string()), Ok(filter.to_string()));
                filter.matches(&record());
            }
            Err(error) => {
                prop_assert!(error.offset <= input.len());
                prop_assert!(input.is_char_boundary(error.offset));
                prop_assert_eq!(error.column, input[..error.offset].chars().count() + 1);
                prop_assert!(error.caret().ends_with('^'));
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser(input in any::<String>()) {
        let _ = FilterExpr::parse(&input);
    }

    #[test]
    fn deep_nesting_of_any_mix_is_an_error_not_a_crash(opens in prop::collection::vec(prop::bool::ANY, 0..300)) {
        let mut input: String = opens.iter().map(|paren| if *paren { '(' } else { '!' }).collect();
        input.push('a');
        input.extend(opens.iter().filter(|paren| **paren).map(|_| ')'));
        let result = FilterExpr::parse(&input);
        prop_assert_eq!(result.is_ok(), opens.len() <= 64);
    }
}

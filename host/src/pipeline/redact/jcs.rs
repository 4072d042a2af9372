//! RFC 8785, the JSON Canonicalization Scheme: the bytes a v2 commitment
//! covers, so that any JCS library can check a commitment. Keys sorted by
//! UTF-16 code units, numbers in ECMAScript's shortest form, strings escaped
//! as `JSON.stringify` does, no white space.

use serde_json::Value;

/// Why a value has no canonical form. For a parsed [`Value`] this cannot
/// happen (it holds no NaN, no infinity and no duplicate key, and writing to
/// memory does not fail); the type exists so that nothing is hashed in its
/// place should the library ever refuse a value.
#[derive(Debug, thiserror::Error)]
#[error("the value has no RFC 8785 canonical form: {0}")]
pub struct JcsError(#[from] serde_json::Error);

/// `value` in RFC 8785 canonical form: keys sorted by UTF-16 code units,
/// numbers as ECMAScript writes a double, strings escaped as
/// `JSON.stringify` does, no white space. Written by
/// `serde_json_canonicalizer`, so that the bytes are those any JCS library
/// computes, not this project's own reading of the RFC.
///
/// ```
/// use mandate::pipeline::jcs;
///
/// let v = serde_json::json!({"b": [1e21, 1e20, 0.1, -0.0], "a": "x\n"});
/// assert_eq!(jcs(&v)?, br#"{"a":"x\n","b":[1e+21,100000000000000000000,0.1,0]}"#);
/// # Ok::<(), mandate::pipeline::JcsError>(())
/// ```
pub fn jcs(value: &Value) -> Result<Vec<u8>, JcsError> {
    Ok(serde_json_canonicalizer::to_vec(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(value: &Value) -> String {
        String::from_utf8(jcs(value).unwrap()).unwrap()
    }

    fn number(f: f64) -> String {
        text(&Value::from(f))
    }

    #[test]
    fn numbers_follow_the_rfc_8785_and_ecmascript_examples() {
        // RFC 8785 appendix B and section 3.2.2.3.
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xffefffffffffffff, "-1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0xc340000000000000, "-9007199254740992"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af5, "9.999999999999997e+22"),
            (0x44b52d02c7e14af6, "1e+23"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x444b1ae4d6e2ef4e, "999999999999999700000"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x41b3de4355555556, "333333333.3333334"),
            (0x41b3de4355555557, "333333333.33333343"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
            (0x43143ff3c1cb0959, "1424953923781206.2"),
        ];
        for (bits, want) in cases {
            assert_eq!(number(f64::from_bits(*bits)), *want, "{bits:#018x}");
        }
        assert_eq!(number(1e20), "100000000000000000000");
        assert_eq!(number(1e21), "1e+21");
        assert_eq!(number(0.1), "0.1");
        // Integers are doubles too: beyond 2^53 they are written as the
        // double they read as, as JavaScript and Python's `float` do.
        assert_eq!(text(&json!(u64::MAX)), "18446744073709552000");
        assert_eq!(text(&json!(9_007_199_254_740_993_u64)), "9007199254740992");
        assert_eq!(text(&json!(-42)), "-42");
    }

    #[test]
    fn the_rfc_8785_sample_canonicalizes_as_the_rfc_shows() {
        // RFC 8785 section 3.2.2.
        let v: Value = serde_json::from_str(
            r#"{
              "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }"#,
        )
        .unwrap();
        assert_eq!(
            text(&v),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\"string\":\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    #[test]
    fn keys_sort_by_utf16_code_units_as_in_rfc_8785() {
        // RFC 8785 section 3.2.3: the sort order of its example.
        let v: Value = serde_json::from_str(
            r#"{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
                "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control",
                "\u00f6": "Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        let out = text(&v);
        let order: Vec<&str> = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ]
        .to_vec();
        let positions: Vec<usize> = order.iter().map(|n| out.find(n).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{out}");
        assert_eq!(text(&json!([])), "[]");
        // UTF-8 byte order would put the emoji (F0 9F ..) after the Hebrew
        // letter (EF AC B3); UTF-16 puts its surrogate D83D before FB33.
        let v: Value = serde_json::from_str(r#"{"\ufb33": 1, "\ud83d\ude00": 2}"#).unwrap();
        assert_eq!(text(&v), "{\"\u{1f600}\":2,\"\u{fb33}\":1}");
    }
}

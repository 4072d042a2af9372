"""Unit tests of the second verifier's RFC 8785 (JCS) canonical form, with the RFC's own vectors.

Run: python3 -m unittest discover -s verifiers/python (tests/tests/second_verifier.rs runs it).
"""

import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mandate_verify import jcs, jcs_number, parse_json  # noqa: E402

# RFC 8785 appendix B: IEEE 754 bit patterns and their ECMAScript serialisation.
NUMBER_VECTORS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


class JcsTest(unittest.TestCase):
    def test_numbers_follow_the_rfc_8785_appendix_b_vectors(self):
        for bits, expected in NUMBER_VECTORS:
            value = struct.unpack(">d", bytes.fromhex(bits))[0]
            self.assertEqual(jcs_number(value), expected, bits)

    def test_the_issue_s_numbers(self):
        self.assertEqual(jcs(parse_json("[1e20, 1e21, 0.1, -0, 100, 4.50, 2e-3]")),
                         b"[100000000000000000000,1e+21,0.1,0,100,4.5,0.002]")

    def test_the_rfc_8785_sample_object_is_canonicalised_as_the_rfc_shows(self):
        text = r'''{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }'''
        expected = ('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
                    '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}')
        self.assertEqual(jcs(parse_json(text)), expected.encode("utf-8"))

    def test_keys_sort_by_utf_16_code_units_as_the_rfc_shows(self):
        text = r'''{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"}'''
        keys = list(parse_json(jcs(parse_json(text)).decode("utf-8")))
        self.assertEqual(keys, ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"])

    def test_duplicate_keys_and_non_json_constants_are_refused(self):
        with self.assertRaises(ValueError):
            parse_json('{"a":1,"a":2}')
        with self.assertRaises(ValueError):
            parse_json("[NaN]")


if __name__ == "__main__":
    unittest.main()

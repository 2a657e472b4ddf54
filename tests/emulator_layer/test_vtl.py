"""The mapping-template shim alone (no process): Velocity semantics on airspeed and
the `$input`/`$util`/`$context` variables, each against what API Gateway documents."""

import json
import sys
import unittest

from harness import ROOT

sys.path.insert(0, str(ROOT / "deploy/local"))
from emulator import vtl  # noqa: E402


def render(template, body="", context=None, **params):
    return vtl.render(template, vtl.Input(body, **params), context or {})


class EscapeJavaScript(unittest.TestCase):
    def test_quotes_backslash_slash_and_controls(self):
        self.assertEqual(vtl.escape_javascript("it's"), "it\\'s")
        self.assertEqual(vtl.escape_javascript('say "hi"'), 'say \\"hi\\"')
        self.assertEqual(vtl.escape_javascript("a\\b"), "a\\\\b")
        self.assertEqual(vtl.escape_javascript("</x>"), "<\\/x>")
        self.assertEqual(vtl.escape_javascript("a\nb\tc\rd\be\ff"), "a\\nb\\tc\\rd\\be\\ff")
        self.assertEqual(vtl.escape_javascript("\x01\x1f"), "\\u0001\\u001F")

    def test_non_ascii_as_utf16_units(self):
        self.assertEqual(vtl.escape_javascript("é"), "\\u00E9")
        self.assertEqual(vtl.escape_javascript("日本"), "\\u65E5\\u672C")
        self.assertEqual(vtl.escape_javascript("😀"), "\\uD83D\\uDE00")
        self.assertEqual(vtl.escape_javascript("\x7f"), "\x7f")

    def test_null_stays_null(self):
        self.assertIsNone(vtl.escape_javascript(None))
        # A null reference renders as its own text, as in Velocity.
        self.assertEqual(render('"$util.escapeJavaScript($input.path(\'$.nope\'))"', "{}"),
                         '"$util.escapeJavaScript($input.path(\'$.nope\'))"')

    def test_the_escaped_quote_is_invalid_json_and_the_documented_fix_repairs_it(self):
        text = "it's \"quoted\" \\ back\nslash é 😀"
        plain = render('{"m": "$util.escapeJavaScript($input.path(\'$.m\'))"}', json.dumps({"m": text}))
        with self.assertRaises(ValueError):
            json.loads(plain)
        fixed = render('{"m": "$util.escapeJavaScript($input.path(\'$.m\')).replaceAll("\\\\\'", "\'")"}',
                       json.dumps({"m": text}))
        self.assertEqual(json.loads(fixed)["m"], text)

    def test_backslash_before_quote_survives_the_fix(self):
        text = "a\\'b"
        fixed = render('{"m": "$util.escapeJavaScript($input.path(\'$.m\')).replaceAll("\\\\\'", "\'")"}',
                       json.dumps({"m": text}))
        self.assertEqual(json.loads(fixed)["m"], text)


class VelocityLiterals(unittest.TestCase):
    def test_double_quoted_literals_keep_backslashes(self):
        self.assertEqual(render('#set($x = "a\\\\b")$x'), "a\\\\b")
        self.assertEqual(render('#set($x = "a\\"b")$x.length()'), "4")

    def test_unicode_escapes_are_the_only_escapes(self):
        self.assertEqual(render('#set($x = "\\u00e9")$x'), "é")
        self.assertEqual(render('#set($x = "\\n")$x.length()'), "2")

    def test_single_quoted_literals_are_not_interpolated(self):
        self.assertEqual(render("#set($a = 'x')#set($x = '$a')$x"), "$a")
        self.assertEqual(render('#set($a = "x")#set($x = "<$a>")$x'), "<x>")

    def test_replace_all_takes_a_java_replacement(self):
        self.assertEqual(render('#set($s = "ab")$s.replaceAll("(a)(b)", "$2$1")'), "ba")
        self.assertEqual(render("#set($s = 'ab')$s.replaceAll('a', '\\$')"), "$b")

    def test_values_print_the_java_way(self):
        self.assertEqual(render("$input.path('$.t') $input.path('$.f')", '{"t": true, "f": false}'), "true false")
        self.assertEqual(render("$input.path('$.m')", '{"m": {"a": 1, "b": [1, 2]}}'), "{a=1, b=[1, 2]}")

    def test_quiet_and_null_references(self):
        self.assertEqual(render("[$!nothing]"), "[]")
        self.assertEqual(render("[$nothing]"), "[$nothing]")

    def test_foreach_has_next_and_size(self):
        out = render("#foreach($i in $input.path('$.l'))$i#if($foreach.hasNext),#end#end|$input.path('$.l').size()",
                     '{"l": [1, 2, 3]}')
        self.assertEqual(out, "1,2,3|3")

    def test_syntax_errors_are_template_errors(self):
        with self.assertRaises(vtl.TemplateError):
            render("#if($x")


class InputVariable(unittest.TestCase):
    def test_params_by_name_search_path_then_querystring_then_header(self):
        kw = dict(path={"id": "p"}, querystring={"id": "q", "q": "qq"}, header={"Id": "h", "X-Trace": "t"})
        self.assertEqual(render("$input.params('id')", **kw), "p")
        self.assertEqual(render("$input.params('q')", **kw), "qq")
        self.assertEqual(render("$input.params('x-trace')", **kw), "t")
        self.assertEqual(render("[$input.params('absent')]", **kw), "[]")
        self.assertEqual(render("$input.params().path.id $input.params().querystring.q", **kw), "p qq")

    def test_json_serializes_the_selection(self):
        body = json.dumps({"a": {"b": [1, "x"]}, "s": "é \"q\"\n"})
        self.assertEqual(render("$input.json('$.a')", body), '{"b":[1,"x"]}')
        self.assertEqual(json.loads(render("$input.json('$.s')", body)), "é \"q\"\n")
        self.assertEqual(render("[$input.json('$.missing')]", body), "[]")

    def test_path_walks_objects_and_arrays(self):
        body = json.dumps({"Items": [{"s": {"S": "one"}}, {"s": {"S": "two"}}], "k y": 3})
        self.assertEqual(render("$input.path('$.Items[1].s.S')", body), "two")
        self.assertEqual(render("$input.path('$.Items[-1].s.S')", body), "two")
        self.assertEqual(render("$input.path(\"$['k y']\")", body), "3")
        self.assertEqual(render("$input.path('$.Items[*].s.S')", body), "[one, two]")
        self.assertEqual(render("#set($i = $input.path('$').Items)$i[0].s.S", body), "one")

    def test_body_is_the_raw_payload(self):
        self.assertEqual(render("$input.body", "raw text"), "raw text")
        # A payload that is not JSON is one string for $input.path('$').
        self.assertEqual(render("$input.path('$')", "raw text"), "raw text")

    def test_unsupported_jsonpath_is_refused(self):
        with self.assertRaises(vtl.TemplateError):
            render("$input.path('$..deep')", "{}")


class UtilVariable(unittest.TestCase):
    def test_url_encode_is_javas_url_encoder(self):
        self.assertEqual(render("$util.urlEncode('a b~*é/._-')"), "a+b%7E*%C3%A9%2F._-")
        self.assertEqual(render("$util.urlDecode('a+b%7E*%C3%A9%2F')"), "a b~*é/")

    def test_base64_of_utf8(self):
        self.assertEqual(render("$util.base64Encode('é!')"), "w6kh")
        self.assertEqual(render("$util.base64Decode('w6kh')"), "é!")

    def test_parse_json_gives_an_object(self):
        self.assertEqual(render("#set($o = $util.parseJson($input.path('$.s')))$o.k[1]",
                                json.dumps({"s": '{"k": [1, "two"]}'})), "two")


class ContextVariable(unittest.TestCase):
    def test_nested_context(self):
        ctx = {"requestId": "r-1", "identity": {"sourceIp": "127.0.0.1"}, "stage": "prod"}
        self.assertEqual(render("$context.requestId $context.identity.sourceIp $context.stage", context=ctx),
                         "r-1 127.0.0.1 prod")


if __name__ == "__main__":
    unittest.main()

"""API Gateway mapping templates: Velocity rendered by PyPI `airspeed`, with the
`$input`, `$util`, `$context` and `$stageVariables` variables API Gateway documents
("Variables for data transformations for API Gateway", developer guide).

airspeed aims at Velocity, but differs from the Velocity 1.x that API Gateway runs in
a few places that matter to real templates; `_velocity_semantics()` aligns them:

- String literals. Velocity unescapes nothing in a string literal but `\\uXXXX`, so the
  AWS-documented idiom `.replaceAll("\\\\'", "'")` hands Java's regex engine the
  three characters `\\\\'` (a backslash, then a quote). airspeed unescapes `\\\\` and
  `\\"` like Java source and refuses `\\'`; here literals keep their backslashes.
- `String.replaceAll(regex, replacement)` takes a Java replacement (`$1` groups,
  `\\` escapes), not a Python one.
- Values are written the way Java prints them (`true`, `{k=v}`, `[a, b]`).
- A few `java.lang.String`/`Map` methods templates commonly call.

Everything here is pure: no network, no moto.
"""

import base64
import json
import re
import threading
import urllib.parse

import airspeed

# --------------------------------------------------------------------------------
# Velocity semantics on top of airspeed


def _java_text(value):
    """A value as Velocity writes it (Java's toString)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_java_text(k)}={_java_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_java_text(v) for v in value) + "]"
    return str(value)


def _unicode_unescape(text):
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)


def java_replace_all(text, pattern, replacement):
    """`String.replaceAll`: `pattern` is a regex (Java and Python agree on the
    constructs templates use), `replacement` is Java's: `$n` is group n, `\\x` is x."""

    def expand(match):
        out, i = [], 0
        while i < len(replacement):
            c = replacement[i]
            if c == "\\" and i + 1 < len(replacement):
                out.append(replacement[i + 1])
                i += 2
            elif c == "$" and i + 1 < len(replacement) and replacement[i + 1].isdigit():
                j = i + 1
                while j < len(replacement) and replacement[j].isdigit():
                    j += 1
                out.append(match.group(int(replacement[i + 1 : j])) or "")
                i = j
            else:
                out.append(c)
                i += 1
        return "".join(out)

    return re.sub(pattern, expand, text)


_installed = False
_install_lock = threading.Lock()


def _velocity_semantics():
    global _installed
    with _install_lock:
        if _installed:
            return
        single = re.compile(r"'([^']*)'", re.S)
        double = re.compile(r'"((?:\\.|[^"\\])*)"', re.S)

        def parse_single(self):
            (self.value,) = self.identity_match(single)

        def parse_double(self):
            (raw,) = self.identity_match(double)
            self.value = _unicode_unescape(raw)
            self.block = airspeed.Block(self.filename, self.value, 0)

        airspeed.StringLiteral.parse = parse_single
        airspeed.InterpolatedStringLiteral.parse = parse_double

        def evaluate_raw(self, stream, namespace, loader):
            # airspeed's own logic (null: the alternate, nothing when silent, else
            # the reference's text), writing values the Java way.
            value = None
            if self.expression is not None:
                value = self.expression.calculate(namespace, loader)
            if value is None:
                if self.alternate is not None:
                    value = self.alternate.calculate(namespace, loader)
                elif self.silent and self.expression is not None:
                    value = ""
                else:
                    value = self.my_text()
            stream.write(_java_text(value))

        airspeed.FormalReference.evaluate_raw = evaluate_raw

        methods = airspeed.__additional_methods__
        methods[str].update(
            {
                "replaceAll": java_replace_all,
                "toLowerCase": lambda s: s.lower(),
                "toUpperCase": lambda s: s.upper(),
                "trim": lambda s: s.strip(" \t\n\r\x0b\x0c\x00"),
                "isEmpty": lambda s: len(s) == 0,
                "equals": lambda s, o: s == o,
                "substring": lambda s, a, b=None: s[a:] if b is None else s[a:b],
                "indexOf": lambda s, sub: s.find(sub),
                "endsWith": lambda s, suffix: s.endswith(suffix),
                "toString": lambda s: s,
            }
        )
        methods[dict]["size"] = lambda d: len(d)
        methods[dict]["containsKey"] = lambda d, k: k in d
        methods[list]["isEmpty"] = lambda items: len(items) == 0
        _installed = True


# --------------------------------------------------------------------------------
# JSONPath (the subset API Gateway templates use: $, .name, ['name'], [n], [*], .*)

_TOKEN = re.compile(r"""\.(\*|[A-Za-z0-9_$@-]+)|\[(\*|-?\d+|'[^']*'|"[^"]*")\]""")


class JsonPathError(ValueError):
    pass


def _steps(path):
    path = path.strip()
    if not path.startswith("$"):
        raise JsonPathError(f"a JSONPath starts with $: {path!r}")
    steps, pos = [], 1
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            raise JsonPathError(f"unsupported JSONPath {path!r} at {pos}")
        name, index = m.groups()
        if name is not None:
            steps.append("*" if name == "*" else ("key", name))
        elif index == "*":
            steps.append("*")
        elif index[0] in "'\"":
            steps.append(("key", index[1:-1]))
        else:
            steps.append(("index", int(index)))
        pos = m.end()
    return steps


_MISSING = object()


def json_path(document, path):
    """The value at `path`: one value for a definite path (None when absent), a list
    for a path with a wildcard."""
    values, wild = [document], False
    for step in _steps(path):
        nxt = []
        for v in values:
            if step == "*":
                wild = True
                if isinstance(v, dict):
                    nxt.extend(v.values())
                elif isinstance(v, list):
                    nxt.extend(v)
            elif step[0] == "key":
                if isinstance(v, dict) and step[1] in v:
                    nxt.append(v[step[1]])
            elif isinstance(v, list) and -len(v) <= step[1] < len(v):
                nxt.append(v[step[1]])
        values = nxt
    if wild:
        return values
    return values[0] if values else _MISSING


# --------------------------------------------------------------------------------
# $util


def escape_javascript(text):
    """Java's `StringEscapeUtils.escapeJavaScript`: `'` `"` `\\` `/` escaped with a
    backslash, control characters as `\\b \\t \\n \\f \\r` or `\\u00XX`, everything
    outside ASCII as `\\uXXXX` (UTF-16 units, upper-case hex)."""
    if text is None:
        return None
    text = str(text)
    short = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r",
             "'": "\\'", '"': '\\"', "\\": "\\\\", "/": "\\/"}
    out = []
    units = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(units), 2):
        code = (units[i] << 8) | units[i + 1]
        ch = chr(code)
        if ch in short:
            out.append(short[ch])
        elif code < 32 or code > 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(ch)
    return "".join(out)


_URL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*_")


def url_encode(text):
    """Java's `URLEncoder.encode(s, "UTF-8")`: space as `+`, `.-*_` and alphanumerics
    kept, everything else `%XX` of its UTF-8 bytes."""
    if text is None:
        return None
    out = []
    for ch in str(text):
        if ch in _URL_SAFE:
            out.append(ch)
        elif ch == " ":
            out.append("+")
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


class Util:
    """`$util`: exactly the six functions API Gateway documents."""

    def escapeJavaScript(self, text):  # noqa: N802 (the template's name)
        return escape_javascript(text)

    def parseJson(self, text):  # noqa: N802
        return None if text is None else json.loads(text)

    def urlEncode(self, text):  # noqa: N802
        return url_encode(text)

    def urlDecode(self, text):  # noqa: N802
        return None if text is None else urllib.parse.unquote_plus(str(text), encoding="utf-8")

    def base64Encode(self, text):  # noqa: N802
        return None if text is None else base64.b64encode(str(text).encode("utf-8")).decode("ascii")

    def base64Decode(self, text):  # noqa: N802
        return None if text is None else base64.b64decode(str(text)).decode("utf-8")


# --------------------------------------------------------------------------------
# $input


class Input:
    """`$input` over one payload (the method request's in the request template, the
    integration response's in the response template) and the method request's
    parameters."""

    def __init__(self, body, path=None, querystring=None, header=None):
        self.body = body or ""
        self._params = {
            "path": dict(path or {}),
            "querystring": dict(querystring or {}),
            "header": dict(header or {}),
        }
        self._parsed = _MISSING

    def _document(self):
        if self._parsed is _MISSING:
            text = self.body.strip()
            if not text:
                self._parsed = {}
            else:
                try:
                    self._parsed = json.loads(text)
                except ValueError:
                    # Not JSON: the payload is one string.
                    self._parsed = self.body
        return self._parsed

    def path(self, expression):
        """The value at the JSONPath, as an object templates can walk."""
        value = json_path(self._document(), expression)
        return None if value is _MISSING else value

    def json(self, expression):
        """The value at the JSONPath, serialized as JSON text."""
        value = json_path(self._document(), expression)
        if value is _MISSING:
            return ""
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def params(self, name=None):
        """All parameters by kind, or one by name: path, then query string, then
        header (case-insensitive, as HTTP header names are)."""
        if name is None:
            return self._params
        for kind in ("path", "querystring"):
            if name in self._params[kind]:
                return self._params[kind][name]
        for key, value in self._params["header"].items():
            if key.lower() == str(name).lower():
                return value
        return ""


# --------------------------------------------------------------------------------
# Rendering

_cache = {}
_cache_lock = threading.Lock()


class TemplateError(Exception):
    """The template does not parse or fails while rendering (API Gateway answers
    500 "Internal server error" and logs a configuration error)."""


def render(template, input_, context, stage_variables=None):
    _velocity_semantics()
    with _cache_lock:
        compiled = _cache.get(template)
        if compiled is None:
            compiled = airspeed.Template(template)
            _cache[template] = compiled
    namespace = {
        "input": input_,
        "util": Util(),
        "context": context,
        "stageVariables": dict(stage_variables or {}),
    }
    try:
        return compiled.merge(namespace)
    except (airspeed.TemplateSyntaxError, airspeed.TemplateExecutionError) as e:
        raise TemplateError(str(e)) from e

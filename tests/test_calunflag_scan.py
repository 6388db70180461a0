"""calunflag's script scanner (plugins/calunflag/scan.py) on its own, checked against independent views.

Where strings end is checked against Python's own :mod:`tokenize`, literal values against
:func:`ast.literal_eval`, line numbers against the line where the test put the text, and the size
bound against the 16 MiB the README documents for calunflag ("a script or template over 16 MB ...
the bound is 16.0 MiB").
"""

import ast
import io
import tokenize

import pytest
from hypothesis import given
from hypothesis import strategies as st

from almatools.plugins.calunflag import scan
from almatools.plugins.calunflag.scan import Call, LineIndex, ScriptError, find_calls, read_source, step_titles

MiB = 2**20
NAMES = ["flagdata"]


def _scanner(text, lenient=False):
    # the scanner class is private; it is the unit whose string ends the tests compare with tokenize
    return scan._Scanner(text, "t.py", LineIndex(text), lenient=lenient)


def _offsets(text):
    """Offset of the start of each line (1-based rows, as tokenize counts them), from '\\n' alone."""
    starts, pos = [None], 0
    for line in text.split("\n"):
        starts.append(pos)
        pos += len(line) + 1
    return starts


def _python_strings(text):
    """(start, end) offsets of every STRING token Python's tokenizer sees in *text*."""
    starts = _offsets(text)
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.STRING:
            (r0, c0), (r1, c1) = tok.start, tok.end
            out.append((starts[r0] + c0, starts[r1] + c1))
    return out


# ---- the size bound: 16 MiB, documented in the README ----

def test_scripts_up_to_16_mib_are_read_and_one_byte_more_is_refused(tmp_path):
    assert scan.MAX_SCRIPT_BYTES == 16 * MiB  # README: "the bound is 16.0 MiB" for calunflag's scripts
    body = b"# " + b"x" * (16 * MiB - 4) + b"\n"
    assert len(body) == 16 * MiB - 1
    at_limit = tmp_path / "at.ms.scriptForCalibration.py"
    at_limit.write_bytes(body + b"\n")
    assert at_limit.stat().st_size == 16 * MiB
    src = read_source(at_limit)
    assert src.text.encode("utf-8") == body + b"\n" and src.encoding == "utf-8"
    over = tmp_path / "over.ms.scriptForCalibration.py"
    over.write_bytes(body + b"\n\n")
    assert over.stat().st_size == 16 * MiB + 1
    with pytest.raises(ScriptError, match=r"read into memory; the bound is 16\.0 MiB: delivered scripts"):
        read_source(over)


# ---- binary data in a Latin-1 file names its line ----

@pytest.mark.parametrize("before", ["", "\n", "x = 1\n", "\n\n# d\xe9j\xe0 vu\n", "a = 'caf\xe9'\n\n\n\n"])
def test_control_byte_in_a_latin1_script_names_its_line(tmp_path, before):
    text = before + "y = 'caf\xe9'\x01\nz = 2\n"
    data = text.encode("latin-1")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # so the Latin-1 path is the one taken
    expected = [n for n, line in enumerate(text.splitlines(), 1) if "\x01" in line]
    assert len(expected) == 1
    path = tmp_path / "s.py"
    path.write_bytes(data)
    with pytest.raises(ScriptError) as exc:
        read_source(path)
    assert str(exc.value) == f"{path}:{expected[0]}: binary data, not a script or template"


def test_latin1_script_without_control_bytes_is_read_losslessly(tmp_path):
    data = "# d\xe9j\xe0 vu\r\nflagdata(vis='a.ms')\r\n".encode("latin-1")
    path = tmp_path / "s.py"
    path.write_bytes(data)
    src = read_source(path)
    assert (src.encoding, src.newline) == ("latin-1", "\r\n")
    assert src.encode(src.text) == data


# ---- Python 2 and 3 literals ----

def test_python2_and_python3_constants_mean_what_python_means():
    text = ("flagdata(vis='a.ms', autocorr=T, flagbackup=F, a=True, b=False, c=None, d=Tsys, e='T')\n"
            "flagdata(T, F, True, False, None)\n")
    first, second = find_calls(text, NAMES)
    assert first.args["vis"] == "a.ms"
    for key, value in {"autocorr": True, "flagbackup": False, "a": True, "b": False, "c": None}.items():
        assert first.args[key] is value, key
    assert first.args["d"] == "Tsys" and isinstance(first.args["d"], scan.Expr)
    assert first.args["e"] == "T" and not isinstance(first.args["e"], scan.Expr)
    assert [type(v) for v in second.positional] == [bool, bool, bool, bool, type(None)]
    assert second.positional == [True, False, True, False, None]


def test_a_call_is_active_unless_said_otherwise():
    assert Call("flagdata", 0, 0, 0).active is True
    live, commented = find_calls("flagdata(vis='a')\n# flagdata(vis='b')\n", NAMES)
    assert (live.active, commented.active) == (True, False)


# ---- strings: where they end, against Python's tokenizer ----

_PLAIN = ["a", " ", "#", "(", ")", ",", "=", "[", "}", "\xe9", "flagdata(vis="]


@st.composite
def _string_literal(draw):
    """A valid non-prefixed Python string literal rich in quotes, backslashes and (triple) newlines."""
    q = draw(st.sampled_from(["'", '"']))
    other = '"' if q == "'" else "'"
    if draw(st.booleans()):  # triple quoted: raw newlines, lone quotes of its kind, backslash-newline
        unit = st.sampled_from(_PLAIN + ["\n", other, other * 3, q + "a", q * 2 + "a", "\\" + q, "\\" + q * 3 + "a",
                                         "\\\\", "\\\\\\" + q, "\\\n", "\\n", "\\" + other])
        return q * 3 + "".join(draw(st.lists(unit, max_size=12))) + q * 3
    unit = st.sampled_from(_PLAIN + [other, "\\" + q, "\\\\", "\\\\\\" + q, "\\n", "\\" + other, "\\a",
                                     "\\\n"])  # the last: a backslash-newline, which continues the string
    return q + "".join(draw(st.lists(unit, max_size=12))) + q


def _check_against_tokenize(text, nstrings):
    strings = _python_strings(text)
    assert len(strings) == nstrings  # the text is valid Python with exactly these literals
    for lenient in (False, True):
        sc = _scanner(text, lenient)
        for start, end in strings:
            assert sc.skip_string(start) == end, (text, start, end, lenient)


@pytest.mark.fuzz
@given(st.lists(_string_literal(), min_size=1, max_size=4))
def test_string_ends_agree_with_pythons_tokenizer(literals):
    text = "x = (" + " +\n     ".join(literals) + ")  # it's \"done\"\n"
    _check_against_tokenize(text, len(literals))


@pytest.mark.parametrize("literal", [
    r"'\''", r"'\\'", r"'a\\'", r"'a\\\''", r"'\\\\'", r"'\\\'\\'", r"'\'a'", r"'a\'b\'c'",
    r'"\""', r'"\\"', r'"a\\\""', "'''it's'''", '"""a\nb"""', "'''a\n''b'''", "'''\\''''", "'''\\\\'''",
    "'''a\\'''b'''", '"""x"y""z"""', "''''''", "'''\\\n'''", "'a\"b'", "\"a'b\"", "''", '""',
    # a backslash before the newline continues a one-quote string (CRLF too; three: an escaped one, then that)
    "'a\\\nb'", "'\\\n'", "'\\\\\\\n'", "\"a\\\r\nb\"",
])
def test_hand_picked_strings_agree_with_pythons_tokenizer(literal):
    text = f"y = {literal}\nz = {literal} + 'end'\n"
    _check_against_tokenize(text, 3)


@pytest.mark.fuzz
@given(_string_literal(), _string_literal(), _string_literal())
def test_arguments_are_read_as_python_reads_them_on_the_line_they_are_on(head, vis, mode):
    before = f"x = {head}\n\n"
    text = before + f"flagdata(vis={vis}, # note\n         mode = {mode})\nflagdata(vis='last.ms')\n"
    calls = find_calls(text, NAMES, "t.py")
    assert [c.active for c in calls] == [True, True]
    call, last = calls
    assert call.args == {"vis": ast.literal_eval(vis), "mode": ast.literal_eval(mode)}
    assert call.arg_comments == {"vis": "note"} and call.comments == ["note"]
    assert call.start == before.count("\n") and call.column == 0
    first_line = text.split("\n")[call.start]
    assert first_line.startswith("flagdata(vis=")
    assert call.end == text[:text.index("\nflagdata(vis='last.ms')")].count("\n")
    assert last.start == call.end + 1 and last.args == {"vis": "last.ms"}
    assert call.text == text[len(before):text.index("\nflagdata(vis='last")]


@pytest.mark.parametrize("text, line", [
    ("x = 'abc\nflagdata(vis='a')\n", 1),
    ("y = 1\nx = 'abc\\'\n", 2),
    ("y = 1\n\nx = \"a\\\\\\\"\n", 3),
    ("y = 1\nx = '''abc\nflagdata(vis='a')\n", 2),
    ('y = """a""" + """b\n\n', 1),
    ("flagdata(vis='a.ms', spw='0\n)\n", 1),
    ("y = 1\nx = 'a\\\n\n'\n", 2),  # a continued line that is empty ends the string, as in Python
])
def test_unterminated_strings_in_live_code_name_their_line(text, line):
    with pytest.raises(SyntaxError, match="unterminated") as python:  # Python agrees, on the same line
        ast.parse(text)
    assert python.value.lineno == line
    with pytest.raises(ScriptError, match=f"^t.py:{line}: unterminated string$"):
        find_calls(text, NAMES, "t.py")


def test_commented_out_prose_with_a_lone_quote_ends_at_its_line():
    text = "x = 1\n# don't run this twice\n#flagdata(vis='a.ms', mode='manual')\n"
    (call,) = find_calls(text, NAMES)
    assert (call.active, call.start, call.args) == (False, 2, {"vis": "a.ms", "mode": "manual"})
    sc = _scanner("'abc\nd'", lenient=True)
    assert sc.skip_string(0) == 4  # at the end of its line
    assert _scanner("x 'abc\n", lenient=True).skip_string(2) == 6  # also when that newline ends the text
    assert _scanner("x 'abc", lenient=True).skip_string(2) == 6  # at the end of the text
    assert _scanner("x '''abc\n'' d", lenient=True).skip_string(2) == 13


def test_an_unterminated_triple_quote_in_comments_hides_the_rest_but_is_no_error():
    text = "# x = '''\n# flagdata(vis='a.ms')\nflagdata(vis='b.ms')\n"
    calls = find_calls(text, NAMES)
    assert [(c.active, c.args) for c in calls] == [(True, {"vis": "b.ms"})]


# ---- which words are calls ----

def test_method_calls_are_not_the_task():
    text = "ms.flagdata(vis='a.ms')\nx.y.flagdata(vis='b.ms')\nflagdata(vis='c.ms')\nz = 2.\n"
    calls = find_calls(text, NAMES)
    assert [(c.start, c.args["vis"]) for c in calls] == [(2, "c.ms")]


def test_a_call_at_the_very_start_of_a_text_ending_in_a_dot():
    text = "flagdata(vis='a.ms')\nz = 2."
    assert [(c.start, c.column, c.args) for c in find_calls(text, NAMES)] == [(0, 0, {"vis": "a.ms"})]


def test_only_the_named_functions_are_calls():
    text = "listobs(vis='a.ms')\nprint(1)\nflagdata(vis='b.ms')\n"
    assert [(c.name, c.start) for c in find_calls(text, NAMES)] == [("flagdata", 2)]


def test_blanks_between_the_name_and_the_parenthesis():
    text = "flagdata (vis='a')\nflagdata\t(vis='b')\nflagdata  \t (vis='c')\nflagdata\n(vis='d')\n"
    calls = find_calls(text, NAMES)
    assert [(c.start, c.args) for c in calls] == [(0, {"vis": "a"}), (1, {"vis": "b"}), (2, {"vis": "c"})]


@pytest.mark.parametrize("text", ["x = 1\nflagdata", "x = 1\nflagdata  ", "flagdata", "flagdata = 1\n",
                                  "flagdata = None\nx = 1\n"])
def test_the_name_without_a_call_is_no_call(text):
    assert find_calls(text, NAMES, "t.py") == []


def test_a_comment_right_after_a_call_is_not_code():
    text = "flagdata(vis='a.ms')# flagdata(vis='b.ms')\n"
    (call,) = find_calls(text, NAMES)
    assert (call.active, call.args) == (True, {"vis": "a.ms"})
    assert call.arg_comments == {"vis": "flagdata(vis='b.ms')"}


# ---- comments inside and after calls ----

def test_comments_belong_to_the_argument_they_follow():
    text = ("flagdata(vis='a.ms', #MS\n"
            "    field='1', #Titan\n"
            "    # (the flux calibrator)\n"
            "    spw='0' #window\n"
            "    , antenna='DV01',\n"
            "    mode='manual')#end\n")
    (call,) = find_calls(text, NAMES)
    assert call.args == {"vis": "a.ms", "field": "1", "spw": "0", "antenna": "DV01", "mode": "manual"}
    assert call.comments == ["MS", "Titan", "(the flux calibrator)", "window"]
    assert call.arg_comments == {"vis": "MS", "field": "Titan", "spw": "window", "mode": "end"}
    assert (call.start, call.end) == (0, len(text.splitlines()) - 1)


@pytest.mark.parametrize("tail, expected", [
    (" # Titan", {"field": "Titan"}),
    ("#Titan", {"field": "Titan"}),
    ("   #  Titan  ", {"field": "Titan"}),
    ("", {}),
    ("\n#next line", {}),
    ("\n# Titan", {}),
    ("; x = 1 # Titan", {}),
])
def test_a_comment_after_the_closing_parenthesis(tail, expected):
    text = f"flagdata(vis='a.ms', field='2'){tail}\n"
    (call,) = find_calls(text, NAMES)
    assert call.arg_comments == expected


def test_a_comment_after_a_parenthesis_on_its_own_line():
    text = "flagdata(vis='a.ms',\n         field='2'\n) # Titan\n"
    (call,) = find_calls(text, NAMES)
    assert call.arg_comments == {"field": "Titan"} and call.comments == []


def test_a_comment_after_a_positional_argument_names_no_keyword():
    (call,) = find_calls("flagdata('a.ms') # the MS\n", NAMES)
    assert call.positional == ["a.ms"] and call.args == {} and call.arg_comments == {}


# ---- mismatched brackets ----

def test_a_mismatched_bracket_in_live_code_names_both_lines():
    text = "x = 1\n\nflagdata(vis='a.ms',\n         spw=[0, 1)\n"
    lines = text.splitlines()
    opened = next(n for n, line in enumerate(lines, 1) if "flagdata(" in line)
    bad = next(n for n, line in enumerate(lines, 1) if "1)" in line)
    with pytest.raises(ScriptError, match=f"^t.py:{bad}: mismatched '\\)' inside the call opened on line {opened}$"):
        find_calls(text, NAMES, "t.py")


def test_a_mismatched_bracket_in_commented_out_code_is_skipped():
    text = "# flagdata(vis='a.ms', spw=[0, 1)\n# flagdata(vis='b.ms')\nflagdata(vis='c.ms')\n"
    calls = find_calls(text, NAMES, "t.py")
    assert [(c.start, c.active, c.args) for c in calls] == [(1, False, {"vis": "b.ms"}), (2, True, {"vis": "c.ms"})]


# ---- step_title ----

@pytest.mark.parametrize("text, expected", [
    ("step_title={0: 'Import', 1: 'Fix'}\n", {0: "Import", 1: "Fix"}),
    ("step_title = {0: 'Import', # the ASDM\n              1: 'Split'} # done\n", {0: "Import", 1: "Split"}),
    ("step_title = {0: 'Import'};mystep = 0\n", {0: "Import"}),
    ("step_title = {0: 'Import', 1: '{Fix}'}", {0: "Import", 1: "{Fix}"}),
    ("step_title = {0: 'Import', 'x': 'b', True: 'c', 2.5: 'd', 3: 4}\n", {0: "Import", 3: "4"}),
    ("step_title = {0: 'Import',\n", {}),
    ("step_title = {0: 'it's here'}\n", {}),
])
def test_step_titles(text, expected):
    assert step_titles(text) == expected


@pytest.mark.parametrize("value, error", [
    ("title_of_step", ValueError),
    ("'a' 1: 'b'", SyntaxError),
    ("'a', [1]: 'b'", TypeError),
    ("-" * 10000 + "1", MemoryError),
    ("1+" * 10000 + "1", RecursionError),
])
def test_a_step_title_python_cannot_read_as_a_literal_gives_no_titles(value, error):
    literal = "{0: " + value + "}"
    with pytest.raises(error):  # how Python itself fails on it
        ast.literal_eval(literal)
    assert step_titles("mystep = 0\nstep_title = " + literal + "\n") == {}

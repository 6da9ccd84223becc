"""The sandbox chat templates (chat_template.py) render in: jinja2's ImmutableSandboxedEnvironment, tightened.

Attribute access to Python internals (``__class__``, ``__globals__``, ...) is refused by the sandbox, and every
construct is bounded by two budgets, both counts, not times (a busy machine renders what an idle one does):

- steps (chat_template.RENDER_STEPS, more for long conversations). Each loop iteration takes one, whatever is iterated (a string,
  a list, range(), a recursive loop's loop(...)); so does each call, filter, operator and lookup, plus one per
  CHARS_PER_STEP characters (or items) that it reads or produces, so that no operation on big strings repeated
  many times escapes the count.
- output size: the largest string or sequence a render may build, and its whole output. Whatever can build a big
  result in one operation has its size predicted from its operands and refused BEFORE the work is done: ``*`` and
  ``+`` on strings and lists, ``~``, join (filter and method), replace (likewise, the empty pattern included),
  ``%``-formatting, the format filter and str.format / format_map (widths and precisions), center / ljust / rjust /
  zfill / indent / expandtabs, batch and slice fill, tojson's indent, set blocks, macro and filter bodies; huge
  numbers (``**``, ``*`` on integers, numeric arguments) are refused too.

A render runs with a Budget set in `budget` (a context variable); over a budget it raises BudgetExceeded, and the
sandbox's SecurityError for what it refuses outright.
"""
from __future__ import annotations

import contextvars
import datetime as _dt
import functools
import inspect
import json
import re
import string
from collections.abc import Iterable
from typing import Any

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

__all__ = ["Budget", "BudgetExceeded", "budget", "compile_template", "check_size", "MIN_OUTPUT", "CHARS_PER_STEP"]

MAX_INT_ARG = 1_000_000  # largest number a filter / method / repetition may be asked for
MAX_RANGE = 100_000
MAX_INT_BITS = 4096  # largest integer an operator may make
MAX_JSON_INDENT = 64
CHARS_PER_STEP = 1024  # characters (or items) an operation may read or build per step
MIN_OUTPUT = 1 << 20  # output budget: this, or 8x the size of the messages if larger


class Budget:
    """What is left to a render: steps (of `limit`), and characters of output."""
    __slots__ = ("steps", "limit", "output")

    def __init__(self, steps: int, output: int):
        self.steps = self.limit = steps
        self.output = output


budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("wren_chat_budget", default=None)


class BudgetExceeded(Exception):
    """Raised inside a render when a budget runs out (chat_template turns it into its ChatTemplateError)."""


def _step(n: int = 1) -> None:
    b = budget.get()
    if b is not None:
        b.steps -= n
        if b.steps < 0:
            raise BudgetExceeded(f"rendering took more than {b.limit} steps")


def check_size(n: int) -> None:
    b = budget.get()
    limit = b.output if b is not None else MIN_OUTPUT
    if n > limit:
        raise BudgetExceeded(f"template output would exceed {limit} characters")


_SIZED = (str, list, tuple, dict)


def _charge(*values: Any) -> None:
    """The steps for the strings and sequences an operation read or built: one per CHARS_PER_STEP of their size,
    each of them within the output budget."""
    total = 0
    for v in values:
        if isinstance(v, _SIZED):
            check_size(len(v))
            total += len(v)
    if total >= CHARS_PER_STEP:
        _step(total // CHARS_PER_STEP)


def _sized(value: Any) -> Any:
    """A value compared (==, in, <, ...): charged for its size, returned as it is."""
    _charge(value)
    return value


def _check_args(args: Iterable[Any]) -> None:
    for a in args:
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_INT_ARG:
            raise SecurityError(f"numeric argument {a} is too large for a chat template")


# --- sizes predicted before the work ----------------------------------------------------------------------------
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?[a-zA-Z%]")


def _format_size(fmt: Any, braces: bool) -> None:
    """Refuses a format string whose widths and precisions would make more than the output budget: %-style
    (``%0900000000d``) or str.format style (``{:>900000000}``). Variable widths (``*``, nested ``{}``) are refused."""
    if not isinstance(fmt, str):
        return
    _charge(fmt)
    widths = 0
    if braces:
        try:
            fields = [spec for _, name, spec, _ in string.Formatter().parse(fmt) if name is not None]
        except ValueError:
            return  # the call itself raises the format error
        for spec in fields:
            if "{" in spec:
                raise SecurityError("nested format fields are not allowed in a chat template")
            widths += sum(int(d) for d in re.findall(r"\d+", spec))
    else:
        for width, precision in _PERCENT_SPEC.findall(fmt):
            if width == "*" or precision == "*":
                raise SecurityError("variable format widths are not allowed in a chat template")
            widths += int(width or 0) + int(precision or 0)
    check_size(len(fmt) + widths)


def _replace_size(s: Any, old: Any, new: Any, count: Any = None) -> None:
    """s.replace(old, new, count): the result's length, refused when too large (the empty pattern matches
    len(s) + 1 times)."""
    s, old, new = str(s), str(old), str(new)
    _charge(s, old, new)
    n = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    check_size(len(s) + n * max(0, len(new) - len(old)))


def _join_items(sep: Any, items: Iterable[Any]) -> list:
    """The items of a join, listed (a step per item), once the result's length is known to fit."""
    items = list(items)
    _step(1 + len(items) // CHARS_PER_STEP)
    check_size(len(str(sep)) * max(0, len(items) - 1))
    check_size(len(str(sep)) * max(0, len(items) - 1) + sum(len(x) if isinstance(x, str) else 0 for x in items))
    return items


def _check_int_size(left: Any, right: Any, operator: str) -> None:
    if isinstance(left, int) and isinstance(right, int):
        bits = left.bit_length() * abs(right) if operator == "**" else left.bit_length() + right.bit_length()
        if bits > MAX_INT_BITS:
            raise SecurityError(f"a number of {bits} bits is too large for a chat template")


def _range(*args: int):
    """range() that counts a step per item (nested loops cannot run away)."""
    _check_args(args)
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise SecurityError(f"range of {len(r)} items is too large for a chat template")
    for i in r:
        _step()
        yield i


def _counted(iterable):
    """What every {% for %} iterates: its items, a step each."""
    for item in iterable:
        _step()
        yield item


def _tilde(*parts: Any) -> str:
    """``a ~ b ~ ...``: the parts as text, joined once the result is known to fit."""
    texts = [str(p) for p in parts]
    _step()
    check_size(sum(len(t) for t in texts))
    out = "".join(texts)
    _charge(out)
    return out


def _concat(parts: Iterable[str]) -> str:
    """What set blocks, macro, call and filter bodies return: their output, joined once it is known to fit."""
    parts = list(parts)
    check_size(sum(len(p) for p in parts))
    out = "".join(parts)
    _charge(out)
    return out


def _env_call(name: str, args: list, lineno: int) -> nodes.Call:
    return nodes.Call(nodes.EnvironmentAttribute(name), args, [], None, None, lineno=lineno)


class _Bound(NodeTransformer):
    """Rewrites a parsed template so that what jinja does without calling the environment goes through it too:
    each loop's iterable is wrapped in counted() (a step per item, whatever it iterates), ``~`` becomes tilde() (its
    size checked before joining) and each operand of a comparison is charged for its size. The environment's
    attributes are out of a template's reach: it cannot rebind them."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        node = self.generic_visit(node)
        node.iter = _env_call("counted", [node.iter], node.iter.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Call:
        node = self.generic_visit(node)
        return _env_call("tilde", list(node.nodes), node.lineno)

    def visit_Compare(self, node: nodes.Compare) -> nodes.Compare:
        node = self.generic_visit(node)
        node.expr = _env_call("sized", [node.expr], node.lineno)
        for op in node.ops:
            op.expr = _env_call("sized", [op.expr], node.lineno)
        return node


# --- filters -----------------------------------------------------------------------------------------------------
def _arg(a: dict, *names: str) -> Any:
    for n in names:
        if n in a:
            return a[n]
    return None


def _pre_join(a: dict) -> None:
    a["value"] = _join_items(a.get("d", ""), a["value"])


def _pre_replace(a: dict) -> None:
    _replace_size(a["s"], a["old"], a["new"], a.get("count"))


def _pre_format(a: dict) -> None:
    _format_size(a["value"], braces=False)


def _pre_width(a: dict) -> None:
    check_size(max(len(str(a["value"])), int(a.get("width") or 0)))


def _pre_indent(a: dict) -> None:
    s, width = str(a["s"]), a.get("width", 4)
    w = len(width) if isinstance(width, str) else int(width)
    check_size(len(s) + w * (s.count("\n") + 1))


def _pre_batch(a: dict) -> None:
    value, n = a["value"], _arg(a, "linecount", "slices")
    if isinstance(value, _SIZED):
        check_size(len(value) + int(n or 0))
        _step(len(value))  # batch and slice loop over the items in Python
    _step(int(n or 0) // CHARS_PER_STEP)


def _pre_sum(a: dict) -> None:
    start = a.get("start", 0)
    if not isinstance(start, (int, float)):
        raise SecurityError("sum() of strings or lists is not allowed in a chat template (use join)")


def _pre_items(a: dict) -> None:
    value = _arg(a, "value", "seq", "iterable")
    if isinstance(value, (list, tuple, dict)):
        _step(len(value))  # these run Python code per item


_PRE_FILTER = {"join": _pre_join, "replace": _pre_replace, "format": _pre_format, "center": _pre_width,
               "indent": _pre_indent, "batch": _pre_batch, "slice": _pre_batch, "sum": _pre_sum}
_PRE_FILTER.update(dict.fromkeys(("map", "select", "reject", "selectattr", "rejectattr", "unique", "sort",
                                  "dictsort", "groupby", "min", "max", "list", "items"), _pre_items))
_DROPPED_FILTERS = ("wordwrap", "urlize", "pprint")  # slow or unbounded on long text; no chat template needs them


def _guard_filter(name: str, f):
    """A filter that takes a step, refuses huge numeric arguments, has its result's size predicted where one call
    could build a big one (_PRE_FILTER), and is charged for the sizes it reads and builds."""
    pre = _PRE_FILTER.get(name)
    sig = inspect.signature(f) if pre else None

    @functools.wraps(f)  # keeps jinja's pass_context / pass_environment markers
    def guarded(*args, **kwargs):
        _step()
        _check_args(args)
        _check_args(kwargs.values())
        _charge(*args, *kwargs.values())
        if pre is not None:
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError:
                pass  # the filter itself raises the error
            else:
                pre(bound.arguments)
                args, kwargs = bound.args, bound.kwargs
        out = f(*args, **kwargs)
        _charge(out)
        return out
    return guarded


def _guard_test(f):
    """A test (``x is in y``, ...): a step, and the sizes it reads."""

    @functools.wraps(f)
    def guarded(*args, **kwargs):
        _step()
        _charge(*args, *kwargs.values())
        return f(*args, **kwargs)
    return guarded


def _tojson(value, indent=None, ensure_ascii=False, sort_keys=False, separators=None):
    """Like transformers' chat-template tojson: no HTML escaping, Unicode kept."""
    _step()
    if indent is not None and not (isinstance(indent, int) and 0 <= indent <= MAX_JSON_INDENT):
        raise SecurityError(f"tojson indent {indent!r} is not allowed in a chat template (0 to {MAX_JSON_INDENT})")
    out = json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys, separators=separators)
    _charge(out)
    return out


def _bound_str_method(self: str, name: str, method):
    """A string's method that can build a big string, its result's size checked before it runs."""

    def bounded(*args, **kwargs):
        _check_args(args)
        _check_args(kwargs.values())
        _charge(self, *args, *kwargs.values())
        if name in ("format", "format_map"):
            _format_size(self, braces=True)
        elif name == "join" and args:
            args = (_join_items(self, args[0]),) + args[1:]
        elif name == "replace" and len(args) >= 2:
            _replace_size(self, *args[:3])
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            check_size(len(self) + self.count("\t") * max(0, int(size)))
        elif args and isinstance(args[0], int):  # center, ljust, rjust, zfill: the width
            check_size(max(len(self), args[0]))
        out = method(*args, **kwargs)
        _charge(out)
        return out
    return bounded


_BOUNDED_STR_METHODS = frozenset({"format", "format_map", "join", "replace", "expandtabs", "center", "ljust",
                                  "rjust", "zfill"})


def _raise_exception(message: str = "template error"):
    raise TemplateError(str(message))


def _strftime_now(fmt: str) -> str:
    return _dt.datetime.now().strftime(str(fmt))


_INTERNAL = (_counted, _tilde, _sized)


class _Env(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    counted = staticmethod(_counted)
    tilde = staticmethod(_tilde)
    sized = staticmethod(_sized)
    concat = staticmethod(_concat)

    def call_binop(self, context, operator, left, right):
        _step()
        _charge(left, right)
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > 64:
                raise SecurityError("exponent too large for a chat template")
            _check_int_size(left, right, operator)
        elif operator == "*":
            _check_int_size(left, right, operator)
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    check_size(len(seq) * max(n, 0))
        elif operator == "+":
            if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
                check_size(len(left) + len(right))
        elif operator == "%":
            _format_size(left, braces=False)
        out = super().call_binop(context, operator, left, right)
        _charge(out)
        return out

    def getattr(self, obj, attribute):
        _step()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        _step()
        out = super().getitem(obj, argument)
        if isinstance(argument, slice):
            _charge(out)
        return out

    def wrap_str_format(self, value):
        # called on every attribute a template reads: a string's methods that build big strings are bounded
        f_self = getattr(value, "__self__", None)
        name = getattr(value, "__name__", None)
        if isinstance(f_self, str) and name in ("translate", "maketrans"):  # a table can map a char to a long string
            raise SecurityError(f"str.{name} is not allowed in a chat template")
        if isinstance(f_self, str) and name in _BOUNDED_STR_METHODS:
            return _bound_str_method(f_self, name, super().wrap_str_format(value) or value)
        return super().wrap_str_format(value)

    def unsafe_undefined(self, obj, attribute):
        # jinja's sandbox returns an Undefined that prints as ""; refusing outright makes the reason visible
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is unsafe")

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's signature)
        if __obj in _INTERNAL:  # what _Bound inserted (a template cannot name these): they count for themselves
            return __obj(*args)
        _step()
        _check_args(args)
        _check_args(kwargs.values())
        # what a method reads: its object (s.count(...) scans s) and its arguments
        _charge(getattr(__obj, "__self__", None), *args, *kwargs.values())
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's loop(items): counted like any loop
            args = (_counted(args[0]),) + args[1:]
        out = super().call(__context, __obj, *args, **kwargs)
        _charge(out)
        return out


def _make_env() -> _Env:
    env = _Env(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
               extensions=[jinja2.ext.loopcontrols], autoescape=False)
    env.filters = {name: _guard_filter(name, f) for name, f in env.filters.items() if name not in _DROPPED_FILTERS}
    env.filters["tojson"] = _tojson
    env.tests = {name: _guard_test(f) for name, f in env.tests.items()}
    env.globals.pop("lipsum", None)  # generates text of any size; no chat template needs it
    env.globals["range"] = _range
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


def compile_template(source: str) -> jinja2.Template:
    """The template compiled in a new sandbox, with the loops, ``~`` and comparisons rewritten to count (_Bound).
    Raises jinja's TemplateError (and RecursionError, ...) for a template that does not compile."""
    env = _make_env()
    return env.from_string(_Bound().visit(env.parse(source)))

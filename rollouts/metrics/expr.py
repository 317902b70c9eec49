"""A safe evaluator for Argo Rollouts' condition expressions (a subset of expr-lang).

``result >= 0.95``, ``result[0] < 500 && len(result) > 0``, ``isNaN(result) || result.rate < 1``,
``default(result, 0) == 0``, ``not (result > 1) or result == nil``. Tokenised and parsed
here (never ``eval``), so a template cannot run code; errors name the offending position.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ExprError(ValueError):
    pass


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>&&|\|\||==|!=|<=|>=|[<>!+\-*/%()\[\],.])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)


@dataclass(frozen=True)
class Tok:
    kind: str
    text: str
    pos: int


def tokenize(src: str) -> list[Tok]:
    out, pos = [], 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise ExprError(f"unexpected character {src[pos]!r} at position {pos} in {src!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            text = m.group()
            if kind == "name" and text in ("and", "or", "not"):
                kind = "op"
            out.append(Tok(kind, text, pos))
        pos = m.end()
    out.append(Tok("end", "", len(src)))
    return out


def _num(v: Any, op: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ExprError(f"operator {op} needs numbers, got {_show(v)}")
    return float(v)


def _show(v: Any) -> str:
    return "nil" if v is None else repr(v)


def _cmp(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if isinstance(a, str) and isinstance(b, str):
        x: Any = a
        y: Any = b
    else:
        x, y = _num(a, op), _num(b, op)
    return bool({"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op])


def _len(v: Any) -> int:
    if isinstance(v, list | str | dict):
        return len(v)
    raise ExprError(f"len() needs a list, string or map, got {_show(v)}")


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _is_inf(v: Any, sign: Any = 0) -> bool:
    return isinstance(v, float) and math.isinf(v) and (not sign or (v > 0) == (sign > 0))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "isNaN": _is_nan,
    "isInf": _is_inf,
    "default": lambda v, d: d if v is None or _is_nan(v) else v,
    "abs": lambda v: abs(_num(v, "abs")),
    "float": lambda v: float(v),
    "int": lambda v: int(v),
    "all": lambda xs, *_: all(bool(x) for x in xs),
}

_BINARY = {"||": 1, "or": 1, "&&": 2, "and": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4,
           ">=": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}


class _Parser:
    def __init__(self, src: str, env: dict[str, Any]) -> None:
        self.src, self.toks, self.i, self.env = src, tokenize(src), 0, env

    def peek(self) -> Tok:
        return self.toks[self.i]

    def take(self, text: str | None = None) -> Tok:
        t = self.toks[self.i]
        if text is not None and t.text != text:
            raise ExprError(f"expected {text!r} at position {t.pos} in {self.src!r}, found {t.text!r}")
        self.i += 1
        return t

    def parse(self) -> Any:
        v = self.expr(0)
        t = self.peek()
        if t.kind != "end":
            raise ExprError(f"unexpected {t.text!r} at position {t.pos} in {self.src!r}")
        return v

    # Evaluates while parsing. For && and || an error in the right operand is ignored when
    # the left one already decides (``len(result) > 0 && result[0] > 1`` on no data is false).
    def expr(self, min_prec: int) -> Any:
        left = self.unary()
        while True:
            t = self.peek()
            prec = _BINARY.get(t.text) if t.kind == "op" else None
            if prec is None or prec < min_prec:
                return left
            self.take()
            op = t.text
            if op in ("||", "or", "&&", "and"):
                short = bool(left) if op in ("||", "or") else not bool(left)
                try:
                    right = self.expr(prec + 1)
                except ExprError:
                    if short:
                        self._skip_rest_of_operand(prec + 1)
                        right = None
                    else:
                        raise
                left = bool(left) or bool(right) if op in ("||", "or") else bool(left) and bool(right)
                continue
            right = self.expr(prec + 1)
            left = self.binary(op, left, right)

    def _skip_rest_of_operand(self, _prec: int) -> None:
        depth = 0
        while True:
            t = self.peek()
            if t.kind == "end":
                return
            if t.text in ("(", "["):
                depth += 1
            elif t.text in (")", "]"):
                if depth == 0:
                    return
                depth -= 1
            elif depth == 0 and t.text in ("||", "or", "&&", "and"):
                return
            self.take()

    def binary(self, op: str, a: Any, b: Any) -> Any:
        if op in ("==", "!=", "<", "<=", ">", ">="):
            return _cmp(op, a, b)
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        x, y = _num(a, op), _num(b, op)
        if op in ("/", "%") and y == 0:
            return math.nan if op == "%" or x == 0 else math.copysign(math.inf, x)
        return {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else 0.0, "%": math.fmod(x, y)}[op]

    def unary(self) -> Any:
        t = self.peek()
        if t.text in ("!", "not"):
            self.take()
            return not bool(self.unary())
        if t.text == "-":
            self.take()
            return -_num(self.unary(), "-")
        return self.postfix(self.primary())

    def primary(self) -> Any:
        t = self.take()
        if t.kind == "num":
            return float(t.text) if any(c in t.text for c in ".eE") else int(t.text)
        if t.kind == "str":
            return bytes(t.text[1:-1], "utf-8").decode("unicode_escape")
        if t.text == "(":
            v = self.expr(0)
            self.take(")")
            return v
        if t.text == "[":
            items = []
            while self.peek().text != "]":
                items.append(self.expr(0))
                if self.peek().text == ",":
                    self.take()
            self.take("]")
            return items
        if t.kind == "name":
            if t.text in ("true", "false"):
                return t.text == "true"
            if t.text in ("nil", "null"):
                return None
            if t.text in ("NaN",):
                return math.nan
            if self.peek().text == "(":
                if t.text not in FUNCTIONS:
                    raise ExprError(f"unknown function {t.text}() in {self.src!r}")
                self.take("(")
                args = []
                while self.peek().text != ")":
                    args.append(self.expr(0))
                    if self.peek().text == ",":
                        self.take()
                self.take(")")
                try:
                    return FUNCTIONS[t.text](*args)
                except TypeError as e:
                    raise ExprError(f"{t.text}(): {e}") from e
            if t.text not in self.env:
                raise ExprError(f"unknown name {t.text!r} in {self.src!r}")
            return self.env[t.text]
        raise ExprError(f"unexpected {t.text or 'end of expression'!r} at position {t.pos} in {self.src!r}")

    def postfix(self, v: Any) -> Any:
        while True:
            t = self.peek()
            if t.text == "[":
                self.take()
                idx = self.expr(0)
                self.take("]")
                v = _index(v, idx, self.src)
            elif t.text == ".":
                self.take()
                name = self.take()
                if name.kind != "name":
                    raise ExprError(f"expected a field name at position {name.pos} in {self.src!r}")
                v = _index(v, name.text, self.src)
            else:
                return v


def _index(v: Any, idx: Any, src: str) -> Any:
    if isinstance(v, list) and isinstance(idx, int) and not isinstance(idx, bool):
        if -len(v) <= idx < len(v):
            return v[idx]
        raise ExprError(f"index {idx} out of range: result has {len(v)} values (no data returned?)")
    if isinstance(v, dict) and isinstance(idx, str):
        if idx in v:
            return v[idx]
        raise ExprError(f"no field {idx!r} in result (fields: {', '.join(sorted(v)) or 'none'})")
    raise ExprError(f"cannot index {_show(v)} with {_show(idx)} in {src!r}")


def evaluate(src: str, result: Any) -> Any:
    """Value of ``src`` with ``result`` bound; ExprError for syntax or type errors."""
    if not isinstance(src, str) or not src.strip():
        raise ExprError("empty condition")
    return _Parser(src, {"result": result}).parse()


def condition(src: str, result: Any) -> bool:
    v = evaluate(src, result)
    if not isinstance(v, bool):
        raise ExprError(f"condition {src!r} gave {_show(v)}, not true or false")
    return v

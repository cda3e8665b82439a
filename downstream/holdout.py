"""Hold-out rules: a small, safe grammar that selects runs, parsed and never evaluated as code.

Grammar (case-sensitive column names, keywords in lower case)::

    rule       := or_rule
    or_rule    := and_rule ("or" and_rule)*
    and_rule   := not_rule ("and" not_rule)*
    not_rule   := "not" not_rule | "(" rule ")" | comparison
    comparison := COLUMN OP VALUE | COLUMN ["not"] "in" "[" VALUE ("," VALUE)* "]"
    OP         := "<" | "<=" | ">" | ">=" | "==" | "!="
    VALUE      := a number (1e9, 2.5e12, -3) | a quoted string ('7B' or "7B")

Anything else (function calls, attribute access, ``@`` variables, arithmetic) is refused with
an error that points at the offending position.

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"run": ["a", "b", "c"], "params": [1e8, 2e9, 7e9]})
>>> parse_rule("params > 1e9 and run != 'c'").mask(t).tolist()
[False, True, False]
>>> parse_rule("run in ['a', 'c'] or not (params < 5e9)").mask(t).tolist()
[True, False, True]
>>> parse_rule("params > 1 or @os.system('x')")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
downstream.errors.HoldoutError: bad rule "...": unexpected character '@' at position 14
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import HoldoutError

__all__ = ["parse_rule", "Rule"]

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<str>'[^'\\]*'|"[^"\\]*")
  | (?P<op><=|>=|==|!=|<|>)
  | (?P<punct>[()\[\],])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
""", re.X)
_KEYWORDS = {"and", "or", "not", "in"}
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokens(rule: str) -> list[_Tok]:
    out, i = [], 0
    while i < len(rule):
        m = _TOKEN.match(rule, i)
        if m is None:
            raise HoldoutError(f"bad rule {rule!r}: unexpected character {rule[i]!r} at position {i}")
        kind = m.lastgroup or ""
        if kind != "ws":
            text = m.group()
            if kind == "name" and text in _KEYWORDS:
                kind = text
            out.append(_Tok(kind, text, i))
        i = m.end()
    return out


class Rule:
    """A parsed hold-out rule; :meth:`mask` evaluates it on a table's columns."""

    def __init__(self, text: str, tree: tuple) -> None:
        self.text, self._tree = text, tree

    def __repr__(self) -> str:
        return f"Rule({self.text!r})"

    @property
    def columns(self) -> set[str]:
        """Column names the rule refers to."""
        out: set[str] = set()

        def walk(n):
            if n[0] in ("and", "or"):
                walk(n[1])
                walk(n[2])
            elif n[0] == "not":
                walk(n[1])
            else:
                out.add(n[1])

        walk(self._tree)
        return out

    def mask(self, table: pd.DataFrame) -> pd.Series:
        """Boolean Series: rows of ``table`` the rule selects."""
        missing = sorted(self.columns - set(table.columns))
        if missing:
            raise HoldoutError(f"rule {self.text!r}: unknown column(s) {missing}; available: "
                               f"{sorted(map(str, table.columns))}")
        return self._eval(self._tree, table).fillna(False).astype(bool)

    def _eval(self, n: tuple, t: pd.DataFrame) -> pd.Series:
        if n[0] == "and":
            return self._eval(n[1], t) & self._eval(n[2], t)
        if n[0] == "or":
            return self._eval(n[1], t) | self._eval(n[2], t)
        if n[0] == "not":
            return ~self._eval(n[1], t)
        kind, col, op, val = n
        s = t[col]
        vals = val if kind == "in" else [val]
        numeric = pd.api.types.is_numeric_dtype(s)
        for v in vals:
            if numeric != isinstance(v, float):
                what = "a number" if numeric else "a quoted string"
                raise HoldoutError(f"rule {self.text!r}: column {col!r} holds "
                                   f"{'numbers' if numeric else 'text'}; compare it with {what}, "
                                   f"not {v!r}")
        if kind == "in":
            hit = s.isin(vals)
            return ~hit if op == "not in" else hit
        if not numeric and op not in ("==", "!="):
            raise HoldoutError(f"rule {self.text!r}: {op!r} needs a numeric column; {col!r} "
                               "holds text")
        res = _OPS[op](s, val)
        return pd.Series(np.asarray(res, dtype=bool), index=t.index)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.toks, self.i = text, _tokens(text), 0

    def error(self, what: str) -> HoldoutError:
        pos = self.toks[self.i].pos if self.i < len(self.toks) else len(self.text)
        return HoldoutError(f"bad rule {self.text!r}: {what} at position {pos}")

    def peek(self, *kinds: str) -> bool:
        return self.i < len(self.toks) and self.toks[self.i].kind in kinds

    def take(self, kind: str, what: str) -> _Tok:
        if not self.peek(kind):
            got = repr(self.toks[self.i].text) if self.i < len(self.toks) else "the end"
            raise self.error(f"expected {what}, got {got}")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> tuple:
        if not self.toks:
            raise HoldoutError("empty rule: give e.g. 'params > 1e9'")
        tree = self.or_rule()
        if self.i != len(self.toks):
            raise self.error(f"unexpected {self.toks[self.i].text!r}")
        return tree

    def or_rule(self) -> tuple:
        left = self.and_rule()
        while self.peek("or"):
            self.i += 1
            left = ("or", left, self.and_rule())
        return left

    def and_rule(self) -> tuple:
        left = self.not_rule()
        while self.peek("and"):
            self.i += 1
            left = ("and", left, self.not_rule())
        return left

    def not_rule(self) -> tuple:
        if self.peek("not"):
            self.i += 1
            return ("not", self.not_rule())
        if self.peek("punct") and self.toks[self.i].text == "(":
            self.i += 1
            tree = self.or_rule()
            if not (self.peek("punct") and self.toks[self.i].text == ")"):
                raise self.error("expected ')'")
            self.i += 1
            return tree
        return self.comparison()

    def value(self) -> float | str:
        if self.peek("num"):
            return float(self.take("num", "a number").text)
        if self.peek("str"):
            return self.take("str", "a string").text[1:-1]
        raise self.error("expected a number or a quoted string")

    def comparison(self) -> tuple:
        col = self.take("name", "a column name").text
        if self.peek("op"):
            op = self.take("op", "a comparison").text
            return ("cmp", col, op, self.value())
        negate = False
        if self.peek("not"):
            self.i += 1
            negate = True
        if self.peek("in"):
            self.i += 1
            if not (self.peek("punct") and self.toks[self.i].text == "["):
                raise self.error("expected '[' after 'in'")
            self.i += 1
            vals = [self.value()]
            while self.peek("punct") and self.toks[self.i].text == ",":
                self.i += 1
                vals.append(self.value())
            if not (self.peek("punct") and self.toks[self.i].text == "]"):
                raise self.error("expected ']'")
            self.i += 1
            return ("in", col, "not in" if negate else "in", vals)
        raise self.error(f"expected a comparison (<, <=, >, >=, ==, !=) or 'in' after {col!r}")


def parse_rule(text: str) -> Rule:
    """Parse a hold-out rule (see the module docstring); raises
    :class:`~downstream.errors.HoldoutError` naming the position of anything outside the grammar."""
    if not isinstance(text, str):
        raise HoldoutError(f"a rule must be a string, got {type(text).__name__}")
    return Rule(text, _Parser(text).parse())

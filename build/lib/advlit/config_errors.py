"""One line for a config mistake: jsonargparse reports a bad value inside a class as a nested
tree (every Union branch, the given value, the usage); :func:`one_line` keeps the path of keys
to the bad value, what is wrong with it and what would be accepted."""

from __future__ import annotations

import difflib
import importlib
import inspect
import re

_KEY = re.compile(r'^(?:- )?Parser key "([^"]+)":$')
_CLASS = re.compile(r"^(?:- )?Problem with given class_path '([^']+)':$")
_UNKNOWN_OPTION = re.compile(r"^Option '([^']+)' is not accepted")
_NO_ATTRIBUTE = re.compile(r"^module '([^']+)' has no attribute '([^']+)'")
_TOP_OPTION = re.compile(r"^(?:Subcommand '\w+' does not accept option '|unrecognized arguments: --)([\w.]+)")
SECTIONS = {"trainer": "lightning.pytorch.Trainer"}  # top-level keys that are one class's arguments
_NOISE = ("Does not validate against", "Subtypes:", "Errors:", "Given value")


def accepted_arguments(class_path: str) -> list[str]:
    """The keyword arguments a class accepts, following ``**kwargs`` up its bases."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return []
    names: list[str] = []
    for base in cls.__mro__:
        init = base.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names += [p.name for p in params if p.name != "self" and p.name not in names
                  and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def _suggest(wrong: str, options: list[str]) -> str:
    close = difflib.get_close_matches(wrong, options, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _explain(leaf: str, classes: list[str]) -> str:
    if match := _UNKNOWN_OPTION.match(leaf):
        options = accepted_arguments(classes[-1]) if classes else []
        if options:
            return (f"unknown option {match.group(1)!r}; {_suggest(match.group(1), options)}"
                    f"accepted: {', '.join(options)}")
    if (match := _TOP_OPTION.match(leaf)) and match.group(1).partition(".")[0] in SECTIONS:
        section, _, wrong = match.group(1).partition(".")
        options = accepted_arguments(SECTIONS[section])
        hint = _suggest(wrong, options).strip()
        return f"{section}: unknown option {wrong!r}" + (f"; {hint}" if hint else "")
    if match := _NO_ATTRIBUTE.match(leaf):
        module, wrong = match.groups()
        members = [n for n in dir(importlib.import_module(module)) if not n.startswith("_")]
        return f"{module} has no {wrong!r}; {_suggest(wrong, members)}see {module} for the classes it has"
    return re.sub(r"<class '([\w.]+)'>", r"\1", leaf)


def one_line(message: str) -> str:
    """The first innermost error of a jsonargparse message, prefixed by its key path."""
    stack: list[tuple[int, str, str | None]] = []  # (indent, key, class path given there)
    for line in message.splitlines():
        indent, text = len(line) - len(line.lstrip()), line.strip()
        if not text or text.startswith(_NOISE) or (text.startswith("- Expected a") and stack):
            continue
        if match := _KEY.match(text):
            stack = [s for s in stack if s[0] < indent] + [(indent, match.group(1), None)]
        elif match := _CLASS.match(text):
            if stack:
                stack[-1] = (*stack[-1][:2], match.group(1))
        else:
            path = ".".join(key for _, key, _ in stack)
            given = [c for _, _, c in stack if c]
            where = f" ({given[-1]})" if given else ""
            return f"{path}{where}: {_explain(text, given)}" if path else _explain(text, given)
    return (message.strip().splitlines() or ["invalid configuration"])[0]

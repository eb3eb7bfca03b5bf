#!/usr/bin/env python3
"""Extract sd-scripts' training CLI arguments and dataset-config schema to JSON.

Run it with an interpreter that can import sd-scripts (see
tools/README-sd-scripts-cpu.md), against a real sd-scripts checkout:

    cd /work/main
    PYTHONPATH=tests/shims /tmp/sdvenv/bin/python tools/extract_kohya_args.py \\
        --sd-scripts .sd-scripts --out orchestrator/kohya/sd_scripts_args.json

What it records:

* ``scripts``: for ``train_network.py`` and ``sdxl_train_network.py`` every
  action of ``setup_parser()``, in parser order (option strings, dest, type,
  default, const, choices, action, nargs, required, metavar, help, and the
  derived ``value_type`` a config value should have).
* ``parser_settings``: parser-level behaviour (abbreviations allowed, ...).
* ``dataset_schema``: ``library/config_util.py``'s ``ConfigSanitizer`` schemas
  (general / datasets / subsets for DreamBooth, fine-tuning and ControlNet),
  rendered to plain JSON, the raw class-level schema tables, the argparse
  dests that config_util falls back to ("ascends") when a dataset config is
  given, and the dataclass defaults.

This file uses only the standard library itself; voluptuous is reached through
the module that sd-scripts imported. The output is deterministic: sorted keys,
arguments in parser order, no timestamps or interpreter details.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import enum
import functools
import json
import os
import pathlib
import re
import subprocess
import sys
from typing import Any, Dict, List, Optional

FORMAT_VERSION = 1
GENERATED_BY = "tools/extract_kohya_args.py"
SCRIPTS = ("train_network.py", "sdxl_train_network.py")
COMMIT_FILE = ".sd_scripts_commit"

_ADDR_RE = re.compile(r" at 0x[0-9a-fA-F]+")


# --------------------------------------------------------------------------
# generic helpers


def json_safe(value: Any) -> Any:
    """Convert a Python value to something json.dumps handles deterministically."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return repr(value)
        return value
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((json_safe(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, type):
        return type_name(value)
    if callable(value):
        return callable_name(value)
    return _ADDR_RE.sub("", repr(value))


def type_name(tp: Any) -> Optional[str]:
    if tp is None:
        return None
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        return tp.__name__
    return callable_name(tp)


def callable_name(fn: Any) -> str:
    if isinstance(fn, functools.partial):
        return callable_name(fn.func)
    name = getattr(fn, "__name__", None)
    if name:
        return name
    return _ADDR_RE.sub("", repr(fn))


# --------------------------------------------------------------------------
# commit


def resolve_commit(sd_dir: pathlib.Path, explicit: Optional[str]) -> str:
    if explicit:
        return explicit.strip()
    commit_file = sd_dir / COMMIT_FILE
    if commit_file.is_file():
        text = commit_file.read_text(encoding="utf-8").strip()
        if text:
            return text.split()[0]
    try:
        out = subprocess.run(
            ["git", "-C", str(sd_dir), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(
            f"cannot determine the sd-scripts commit: pass --commit, write {commit_file}, "
            f"or use a git checkout ({exc})"
        )


# --------------------------------------------------------------------------
# argparse


def _action_names(parser: argparse.ArgumentParser) -> Dict[type, str]:
    names: Dict[type, str] = {}
    for key, cls in parser._registries.get("action", {}).items():  # noqa: SLF001
        if isinstance(key, str) and isinstance(cls, type):
            names.setdefault(cls, key)
    return names


def _value_type(action: argparse.Action, action_name: str) -> Optional[str]:
    if action_name in ("store_true", "store_false"):
        return "bool"
    if action_name in ("help", "version"):
        return None
    if action_name == "count":
        return "int"
    if action_name in ("store_const", "append_const"):
        return type_name(type(action.const)) if action.const is not None else "null"
    if action.type is None:
        return "str"
    return type_name(action.type)


def describe_action(action: argparse.Action, names: Dict[type, str]) -> Dict[str, Any]:
    action_name = names.get(type(action), type(action).__name__)
    choices = action.choices
    if choices is not None:
        choices = [json_safe(c) for c in choices]
    nargs = action.nargs
    if nargs is not None and not isinstance(nargs, (int, str)):
        nargs = json_safe(nargs)
    return {
        "option_strings": list(action.option_strings),
        "dest": action.dest,
        "action": action_name,
        "type": type_name(action.type),
        "value_type": _value_type(action, action_name),
        "default": json_safe(action.default),
        "const": json_safe(action.const),
        "choices": choices,
        "nargs": nargs,
        "required": bool(action.required),
        "metavar": json_safe(action.metavar),
        "help": action.help,
    }


def describe_parser(parser: argparse.ArgumentParser) -> Dict[str, Any]:
    return {
        "allow_abbrev": bool(parser.allow_abbrev),
        "prefix_chars": parser.prefix_chars,
        "fromfile_prefix_chars": parser.fromfile_prefix_chars,
        "argument_default": json_safe(parser.argument_default),
        "set_defaults": json_safe(dict(sorted(parser._defaults.items()))),  # noqa: SLF001
        "mutually_exclusive_groups": [
            [a.dest for a in g._group_actions]  # noqa: SLF001
            for g in parser._mutually_exclusive_groups  # noqa: SLF001
        ],
        "action_count": len(parser._actions),  # noqa: SLF001
    }


# --------------------------------------------------------------------------
# voluptuous rendering


class SchemaRenderer:
    """Render voluptuous schemas to a small JSON vocabulary.

    Vocabulary (one key per node, except where noted):
      {"type": "int"|"float"|"str"|"bool"|"dict"|"list"|...}  isinstance check
          (voluptuous: float does NOT accept int; int accepts bool)
      {"const": value}                  literal value (None -> null)
      {"any_of": [...]}                 voluptuous.Any
      {"all_of": [...]}                 voluptuous.All
      {"list_of": node}                 list; each item must match node
      {"exact_sequence": [...]}         voluptuous.ExactSequence
      {"object": {key: {"required": bool, "validator": node}}, "extra": ...}
      {"ref": "subsets.dreambooth"}     points at another rendered section
      {"range": {...}}, {"in": [...]}, {"coerce": "int"}, {"length": {...}}, {"match": "re"}
      {"callable": "name", "args": [...]}  anything else that is callable
    A node may carry "converts_to": "tuple" when the validator returns a tuple.
    """

    def __init__(self, vol: Any, refs: Optional[Dict[int, str]] = None) -> None:
        self.vol = vol
        self.refs = refs or {}

    def key(self, k: Any) -> Dict[str, Any]:
        vol = self.vol
        info: Dict[str, Any] = {"required": False}
        name = k
        if isinstance(k, vol.Marker):
            name = k.schema
            info["required"] = isinstance(k, vol.Required)
            info["marker"] = type(k).__name__
            default = getattr(k, "default", vol.UNDEFINED)
            if default is not vol.UNDEFINED:
                try:
                    info["default"] = json_safe(default())
                except Exception:  # pragma: no cover - defensive
                    info["default"] = json_safe(default)
        info["name"] = name if isinstance(name, str) else json_safe(name)
        return info

    def mapping(self, schema: dict, extra: Optional[str] = None) -> Dict[str, Any]:
        keys: Dict[str, Any] = {}
        for k, v in schema.items():
            info = self.key(k)
            name = info.pop("name")
            info["validator"] = self.node(v)
            keys[str(name)] = info
        out: Dict[str, Any] = {"object": keys}
        if extra is not None:
            out["extra"] = extra
        return out

    def node(self, v: Any) -> Any:
        vol = self.vol
        if isinstance(v, (dict, list)) and id(v) in self.refs:
            return {"ref": self.refs[id(v)]}
        if v is None:
            return {"const": None}
        if isinstance(v, type):
            return {"type": type_name(v)}
        if isinstance(v, (bool, int, float, str)):
            return {"const": v}
        if isinstance(v, dict):
            return self.mapping(v)
        if isinstance(v, (list, tuple)):
            items = [self.node(x) for x in v]
            if not items:
                return {"type": "list"}
            inner = items[0] if len(items) == 1 else {"any_of": items}
            return {"list_of": inner}
        if isinstance(v, vol.Schema):
            out = self.node(v.schema)
            if isinstance(out, dict) and "object" in out:
                out["extra"] = self._extra_name(v.extra)
            return out
        if isinstance(v, vol.Any):
            return {"any_of": [self.node(x) for x in v.validators]}
        if isinstance(v, vol.All):
            return {"all_of": [self.node(x) for x in v.validators]}
        if isinstance(v, vol.ExactSequence):
            return {"exact_sequence": [self.node(x) for x in v.validators]}
        if isinstance(v, vol.Object):
            out = self.node(dict(v))
            out["object_attributes"] = True
            return out
        if isinstance(v, vol.Range):
            return {
                "range": {
                    "min": json_safe(v.min),
                    "max": json_safe(v.max),
                    "min_included": v.min_included,
                    "max_included": v.max_included,
                }
            }
        if isinstance(v, vol.Clamp):
            return {"clamp": {"min": json_safe(v.min), "max": json_safe(v.max)}}
        if isinstance(v, vol.In):
            return {"in": json_safe(list(v.container))}
        if isinstance(v, vol.NotIn):
            return {"not_in": json_safe(list(v.container))}
        if isinstance(v, vol.Coerce):
            return {"coerce": type_name(v.type)}
        if isinstance(v, vol.Length):
            return {"length": {"min": v.min, "max": v.max}}
        if isinstance(v, vol.Match):
            return {"match": v.pattern.pattern}
        if isinstance(v, functools.partial):
            return self._partial(v)
        if callable(v):
            return {"callable": callable_name(v)}
        return {"unknown": json_safe(v)}

    def _partial(self, p: functools.partial) -> Dict[str, Any]:
        name = callable_name(p.func)
        args = list(p.args)
        # config_util.ConfigSanitizer.__validate_and_convert_twodim(klass, value)
        if name.endswith("__validate_and_convert_twodim") and len(args) == 1:
            t = self.node(args[0])
            return {"exact_sequence": [t, t], "converts_to": "tuple", "callable": name}
        # ...__validate_and_convert_scalar_or_twodim(klass, value): x -> (x, x)
        if name.endswith("__validate_and_convert_scalar_or_twodim") and len(args) == 1:
            t = self.node(args[0])
            return {
                "any_of": [t, {"exact_sequence": [t, t]}],
                "converts_to": "tuple",
                "scalar_becomes": "pair (x, x)",
                "callable": name,
            }
        return {"callable": name, "args": [self.node(a) for a in args]}

    def _extra_name(self, extra: Any) -> str:
        vol = self.vol
        return {
            vol.PREVENT_EXTRA: "prevent",
            vol.ALLOW_EXTRA: "allow",
            vol.REMOVE_EXTRA: "remove",
        }.get(extra, str(extra))


# --------------------------------------------------------------------------
# train_network.py source facts (read with ast, not executed)


def _source_facts(train_network_path: pathlib.Path) -> Dict[str, Any]:
    facts: Dict[str, Any] = {"sanitizer_call": None, "ignored_args_with_dataset_config": None}
    try:
        tree = ast.parse(train_network_path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return facts
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            fname = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", None)
            if fname == "ConfigSanitizer" and facts["sanitizer_call"] is None:
                facts["sanitizer_call"] = ast.unparse(node)
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            tgt = node.targets[0]
            if isinstance(tgt, ast.Name) and tgt.id == "ignored" and isinstance(node.value, ast.List):
                try:
                    facts["ignored_args_with_dataset_config"] = ast.literal_eval(node.value)
                except ValueError:
                    pass
    return facts


# --------------------------------------------------------------------------
# dataset schema


def _annotation(tp: Any) -> str:
    if isinstance(tp, str):
        return tp
    if isinstance(tp, type):
        return tp.__name__
    return _ADDR_RE.sub("", repr(tp)).replace("typing.", "")


def describe_dataset_schema(config_util: Any, parsers: Dict[str, argparse.ArgumentParser], sd_dir: pathlib.Path) -> Dict[str, Any]:
    vol = config_util.voluptuous
    CS = config_util.ConfigSanitizer
    sanitizer = CS(support_dreambooth=True, support_finetuning=True, support_controlnet=True, support_dropout=True)

    refs = {
        id(sanitizer.db_subset_schema): "subsets.dreambooth",
        id(sanitizer.ft_subset_schema): "subsets.fine_tuning",
        id(sanitizer.cn_subset_schema): "subsets.controlnet",
    }
    r = SchemaRenderer(vol, refs)
    plain = SchemaRenderer(vol)

    # nested dicts inherit the extra-keys policy of the top-level Schema
    extra_policy = r._extra_name(sanitizer.user_config_validator.extra)

    def section(schema: dict) -> Dict[str, Any]:
        out = r.mapping(schema, extra=extra_policy)
        out["keys"] = out.pop("object")
        return out

    # raw class-level tables (e.g. SUBSET_ASCENDABLE_SCHEMA)
    raw_tables: Dict[str, Any] = {}
    for name in sorted(vars(CS)):
        value = getattr(CS, name)
        if name.endswith("_SCHEMA") and isinstance(value, dict):
            raw_tables[name] = plain.mapping(value)["object"]
        elif name.startswith("ARGPARSE_") and isinstance(value, (dict, list)):
            raw_tables[name] = json_safe(value)

    # dataclass defaults used by BlueprintGenerator.generate_params_by_fallbacks
    param_classes = {}
    for name in sorted(vars(config_util)):
        obj = getattr(config_util, name)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and name.endswith("Params"):
            if obj.__module__ != config_util.__name__:
                continue
            fields = {}
            for f in dataclasses.fields(obj):
                if f.default is not dataclasses.MISSING:
                    default = json_safe(f.default)
                elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                    default = json_safe(f.default_factory())  # type: ignore[misc]
                else:
                    default = None
                fields[f.name] = {"default": default, "annotation": _annotation(f.type)}
            param_classes[name] = fields

    # argparse dests that BlueprintGenerator falls back to
    optname_map = dict(CS.ARGPARSE_OPTNAME_TO_CONFIG_OPTNAME)
    config_to_dest = {c: a for a, c in optname_map.items()}
    name_map = dict(getattr(config_util.BlueprintGenerator, "BLUEPRINT_PARAM_NAME_TO_CONFIG_OPTNAME", {}))
    used_by: Dict[str, List[str]] = {}
    for cls_name, fields in param_classes.items():
        if cls_name.startswith("Base"):  # only the concrete classes are instantiated
            continue
        for field in fields:
            config_key = name_map.get(field, field)
            used_by.setdefault(config_key, []).append(cls_name)
    ascended: Dict[str, List[Dict[str, Any]]] = {}
    for script, parser in parsers.items():
        rows = []
        for action in parser._actions:  # noqa: SLF001
            config_key = optname_map.get(action.dest, action.dest)
            if config_key in used_by:
                rows.append(
                    {
                        "dest": action.dest,
                        "config_key": config_key,
                        "used_by": sorted(used_by[config_key]),
                        "argparse_default": json_safe(action.default),
                    }
                )
        ascended[script] = rows

    facts = _source_facts(sd_dir / "train_network.py")

    top_schema = sanitizer.user_config_validator.schema
    if isinstance(top_schema, dict) and set(map(str, top_schema)) == {"general", "datasets"}:
        top_level = {
            "keys": {
                "general": {"required": False, "validator": {"ref": "general"}},
                "datasets": {
                    "required": False,
                    "validator": {
                        "list_of": {
                            "any_of": [
                                {"ref": "datasets.dreambooth"},
                                {"ref": "datasets.fine_tuning"},
                                {"ref": "datasets.controlnet"},
                            ]
                        }
                    },
                },
            },
            "extra": extra_policy,
        }
    else:  # layout changed upstream: fall back to a generic rendering
        top_level = SchemaRenderer(vol).node(sanitizer.user_config_validator)

    return {
        "sanitizer": "ConfigSanitizer(support_dreambooth=True, support_finetuning=True, "
        "support_controlnet=True, support_dropout=True)",
        "train_network_sanitizer_call": facts["sanitizer_call"],
        "ignored_args_with_dataset_config": facts["ignored_args_with_dataset_config"],
        "top_level": top_level,
        "general": section(sanitizer.general_schema),
        "datasets": {
            "dreambooth": section(sanitizer.db_dataset_schema),
            "fine_tuning": section(sanitizer.ft_dataset_schema),
            "controlnet": section(sanitizer.cn_dataset_schema),
        },
        "subsets": {
            "dreambooth": section(sanitizer.db_subset_schema),
            "fine_tuning": section(sanitizer.ft_subset_schema),
            "controlnet": section(sanitizer.cn_subset_schema),
        },
        "dataset_kind_selection": [
            "with support_controlnet: every subset has conditioning_data_dir -> controlnet (an empty subsets list matches this first)",
            "else every subset has metadata_file -> fine_tuning",
            "else no subset has metadata_file -> dreambooth",
            "else (mixed) -> voluptuous.Invalid",
        ],
        "argparse_namespace_schema": plain.mapping(sanitizer.argparse_schema, extra="allow"),
        "argparse_optname_to_config_optname": json_safe(optname_map),
        "argparse_ascended": ascended,
        "fallback_order": {
            "subset": ["subset", "dataset", "general", "argparse", "runtime_params", "dataclass_default"],
            "dataset": ["dataset", "general", "argparse", "runtime_params", "dataclass_default"],
            "note": "a value of None at any level counts as unset and falls through",
        },
        "param_classes": param_classes,
        "raw_tables": raw_tables,
    }


# --------------------------------------------------------------------------
# main


def extract(sd_dir: pathlib.Path, commit: Optional[str]) -> Dict[str, Any]:
    sd_dir = sd_dir.resolve()
    if not (sd_dir / "train_network.py").is_file():
        raise SystemExit(f"{sd_dir} does not look like an sd-scripts checkout (no train_network.py)")
    commit_id = resolve_commit(sd_dir, commit)

    old_cwd = os.getcwd()
    old_argv = sys.argv
    sys.path.insert(0, str(sd_dir))
    os.chdir(sd_dir)
    try:
        sys.argv = [str(sd_dir / "train_network.py")]
        import importlib

        modules = {name: importlib.import_module(name[: -len(".py")]) for name in SCRIPTS}
        config_util = importlib.import_module("library.config_util")
        parsers = {name: mod.setup_parser() for name, mod in modules.items()}

        scripts = {}
        parser_settings = {}
        for name, parser in parsers.items():
            names = _action_names(parser)
            scripts[name] = [describe_action(a, names) for a in parser._actions]  # noqa: SLF001
            parser_settings[name] = describe_parser(parser)

        dataset_schema = describe_dataset_schema(config_util, parsers, sd_dir)
    finally:
        os.chdir(old_cwd)
        sys.argv = old_argv

    return {
        "format_version": FORMAT_VERSION,
        "generated_by": GENERATED_BY,
        "sd_scripts_commit": commit_id,
        "scripts": scripts,
        "parser_settings": parser_settings,
        "dataset_schema": dataset_schema,
    }


def dumps(data: Dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sd-scripts", required=True, type=pathlib.Path, help="sd-scripts checkout directory")
    ap.add_argument("--out", required=True, type=pathlib.Path, help="output JSON file")
    ap.add_argument("--commit", default=None, help="sd-scripts commit id (default: DIR/.sd_scripts_commit or git rev-parse HEAD)")
    args = ap.parse_args(argv)

    out_path = args.out.resolve()
    data = extract(args.sd_scripts, args.commit)
    text = dumps(data)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    os.replace(tmp, out_path)
    counts = ", ".join(f"{k}: {len(v)}" for k, v in data["scripts"].items())
    print(f"wrote {out_path} (commit {data['sd_scripts_commit']}; {counts})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

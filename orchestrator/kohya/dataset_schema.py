"""Validation of a dataset config (``--dataset_config`` TOML) against sd-scripts' own schema.

sd-scripts checks a dataset config with voluptuous in ``library/config_util.py`` (``ConfigSanitizer``), but only
when training starts, after the models are loaded. This module applies the same schema, taken from
``sd_scripts_args.json["dataset_schema"]`` (extracted from ``ConfigSanitizer``), before anything runs, and reports
every problem instead of the first:

* unknown keys are errors (the schemas are ``extra=PREVENT_EXTRA``) with a did-you-mean;
* ``Required`` keys (``image_dir`` of a DreamBooth subset, ``metadata_file`` of a fine-tuning subset);
* value types as voluptuous checks them: ``int``/``float``/``str``/``bool`` by isinstance (an int is not a float
  here: ``validation_split = 0`` is rejected by sd-scripts too; a bool is not accepted as an int, which is
  stricter than voluptuous), ``Any``, ``ExactSequence`` and the scalar-or-pair ``resolution``;
* the dataset kind of each ``[[datasets]]`` entry is chosen as ``ConfigSanitizer.__init__`` does
  (``validate_flex_dataset``): ControlNet when every subset has ``conditioning_data_dir`` (only with
  ``support_controlnet``, which train_network.py enables with ``--masked_loss``), fine-tuning when every subset has
  ``metadata_file``, DreamBooth when none has; a mix is an error.

Other modules (dataset snapshots) may reuse :func:`check_dataset_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.kohya.arguments import load_schema
from orchestrator.problems import Problem, error, suggest

_TYPES: Mapping[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float,),
    "str": (str,),
    "bool": (bool,),
    "dict": (dict,),
}
_TYPE_WORDS = {"int": "an integer", "float": "a float (write 1.0, not 1)", "str": "a string", "bool": "true or false",
               "dict": "a table"}


def _describe(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__)
    shown = repr(value) if not isinstance(value, (list, dict)) else ""
    return f"{kind} {shown}".strip()


class SchemaChecker:
    """Checks values against the JSON rendering of config_util's voluptuous schemas, collecting problems."""

    def __init__(self, schema: Mapping[str, Any], source: str | None) -> None:
        self.schema = schema
        self.source = source
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str,
             hint: str = "the dataset config format: docs/config_README-en.md in sd-scripts") -> None:
        self.problems.append(error(path, message, hint, self.source))

    # -- validators -------------------------------------------------------------------------------------------

    def matches(self, validator: Mapping[str, Any], value: Any) -> str | None:
        """None if ``value`` satisfies ``validator``, else a short description of what was expected."""
        return None if self.accepts(validator, value) else self.expectation(validator)

    def accepts(self, validator: Mapping[str, Any], value: Any) -> bool:
        if "type" in validator:
            kind = validator["type"]
            return isinstance(value, _TYPES[kind]) and not (kind in ("int", "float") and isinstance(value, bool))
        if "const" in validator:
            return value == validator["const"]
        if "any_of" in validator:
            return any(self.accepts(option, value) for option in validator["any_of"])
        if "exact_sequence" in validator:
            items = validator["exact_sequence"]
            return (isinstance(value, (list, tuple)) and len(value) == len(items)
                    and all(self.accepts(v, item) for v, item in zip(items, value)))
        if "list_of" in validator:
            return isinstance(value, list)
        if "ref" in validator:
            return isinstance(value, dict)
        return True  # unknown validator shape: let sd-scripts judge

    def expectation(self, validator: Mapping[str, Any]) -> str:
        if "type" in validator:
            return _TYPE_WORDS[validator["type"]]
        if "const" in validator:
            return repr(validator["const"])
        if "any_of" in validator:
            words = [self.expectation(o) for o in validator["any_of"] if "const" not in o or o["const"] is not None]
            return " or ".join(dict.fromkeys(words))
        if "exact_sequence" in validator:
            items = validator["exact_sequence"]
            words = list(dict.fromkeys(self.expectation(v) for v in items))
            return f"an array of {len(items)}" + (f" ({words[0]} each)" if len(words) == 1 else "")
        if "list_of" in validator:
            return "an array of tables"
        return "a table"

    def check_table(self, path: str, schema: Mapping[str, Any], table: Any) -> None:
        if not isinstance(table, dict):
            self.fail(path, f"expected a table, got {_describe(table)}")
            return
        keys = schema["keys"]
        for key, spec in keys.items():
            if spec.get("required") and key not in table:
                self.fail(path, f"missing required key {key!r}", f"add {key} = … to this table"
                          + (" (the folder of the subset's images)" if key == "image_dir" else ""))
        for key, value in table.items():
            key_path = f"{path}.{key}" if path else key
            if key not in keys:
                if schema.get("extra") == "allow":
                    continue
                close = suggest(key, keys)
                self.fail(key_path, "unknown key" + (f" (did you mean {close}?)" if close else ""),
                          None if close else "sd-scripts' dataset config does not have this key")
                continue
            self.check_value(key_path, keys[key]["validator"], value)

    def check_value(self, path: str, validator: Mapping[str, Any], value: Any) -> None:
        if "list_of" in validator:
            if not isinstance(value, list):
                self.fail(path, f"expected an array of tables, got {_describe(value)}")
                return
            for index, item in enumerate(value):
                self.check_value(f"{path}[{index}]", validator["list_of"], item)
            return
        if "ref" in validator:
            self.check_table(path, self.resolve(validator["ref"]), value)
            return
        expected = self.matches(validator, value)
        if expected is not None:
            self.fail(path, f"expected {expected}, got {_describe(value)}")

    def resolve(self, ref: str) -> Mapping[str, Any]:
        group, _, kind = ref.partition(".")
        return self.schema[group][kind] if kind else self.schema[group]


def dataset_kind(subsets: list[Any], *, support_controlnet: bool = False) -> str | None:
    """``controlnet``, ``fine_tuning`` or ``dreambooth`` as ``ConfigSanitizer`` picks it; None for a mix."""
    tables = [s for s in subsets if isinstance(s, dict)]
    if support_controlnet and all("conditioning_data_dir" in s for s in tables):
        return "controlnet"
    if tables and all("metadata_file" in s for s in tables):
        return "fine_tuning"
    if not any("metadata_file" in s for s in tables):
        return "dreambooth"
    return None


def check_dataset_config(
    data: Any, *, source: str | None = None, key_prefix: str = "", support_controlnet: bool = False
) -> list[Problem]:
    """Every way ``data`` (a decoded dataset TOML) breaks sd-scripts' dataset-config schema; [] when it is valid."""
    schema = load_schema().dataset_schema
    checker = SchemaChecker(schema, source)
    prefix = key_prefix.rstrip(".")

    def at(path: str) -> str:
        return f"{prefix}.{path}" if prefix else path

    if not isinstance(data, dict):
        checker.fail(prefix, f"expected a table, got {_describe(data)}")
        return checker.problems
    top_keys = schema["top_level"]["keys"]
    for key in data:
        if key not in top_keys:
            close = suggest(key, top_keys)
            checker.fail(at(key), "unknown top-level key" + (f" (did you mean {close}?)" if close else ""),
                         "a dataset config has only [general] and [[datasets]]")
    if "general" in data:
        checker.check_table(at("general"), schema["general"], data["general"])
    datasets = data.get("datasets", [])
    if not isinstance(datasets, list):
        checker.fail(at("datasets"), f"expected an array of tables ([[datasets]]), got {_describe(datasets)}")
        return checker.problems
    for index, dataset in enumerate(datasets):
        path = at(f"datasets[{index}]")
        if not isinstance(dataset, dict):
            checker.fail(path, f"expected a table, got {_describe(dataset)}")
            continue
        subsets = dataset.get("subsets", [])
        kind = dataset_kind(subsets if isinstance(subsets, list) else [], support_controlnet=support_controlnet)
        if kind is None:
            checker.fail(path, "mixes fine-tuning subsets (with metadata_file) and DreamBooth subsets (without)",
                         "sd-scripts needs one kind per dataset: put them in separate [[datasets]]")
            continue
        checker.check_table(path, schema["datasets"][kind], dataset)
    return checker.problems

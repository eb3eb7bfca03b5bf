"""The run spec: the one typed description of a training run, from which everything else is rendered.

A spec file is TOML::

    spec_version = 1
    name = "caption-fix-512"            # optional; the run's name and the checkpoint file stem
    preset = "sd15_caption_fix"         # a preset name from kohya_configs/, or a path to a preset .toml
    seed = 42                           # optional; drawn (and recorded) when missing
    tags = ["experiment"]
    notes = "free text"
    unset = ["noise_offset"]            # preset arguments to drop (TOML has no null)

    [base_model]
    family = "sd15"                     # sd15 -> train_network.py, sdxl -> sdxl_train_network.py
    name = "runwayml/stable-diffusion-v1-5"
    path = "/models/v1-5-pruned-emaonly.safetensors"   # a .safetensors file or a diffusers folder
    sha256 = "…"                        # optional; launch computes it

    [dataset]
    path = "../datasets/punks"          # a kohya DreamBooth folder, snapshotted on launch …
    # snapshot = "…"                    # … or an existing dataset snapshot id
    caption_version = "CAPTION_FIX"

    [[dataset.subsets]]                 # optional when path is given: read from the "<repeats>_<class>" folders
    folder = "1_bespoke_baby"
    keep_tokens = 2                     # per-subset sd-scripts dataset options

    [config]                            # sd-scripts arguments overriding the preset (argparse names)
    network_dim = 32

    [sample]                            # sample images sd-scripts renders while training
    every_n_epochs = 1
    prompts = ["pixel art, 24x24, portrait of bespoke punk lady", { text = "…", seed = 7 }]

    [evaluation]                        # scored per epoch: after training (worker / launch), or on_train
    suite = "bespoke_punks_8"           # a prompt suite (name or TOML path) …
    # prompts = ["…"]                   # … or inline prompts (an inline suite)
    seeds = [1, 2, 3]                   # optional: these seeds instead of the suite's
    on_train = false                    # true: sd-scripts renders the suite as its sample images while training

    [sd_scripts]
    commit = "48d368fa557731ad0488c07304dfeba8c07910eb"   # expected commit; default: the pinned one

    [executor]
    kind = "local"

Relative paths (``base_model.path``, ``dataset.path``, a preset path) are resolved against the spec file's folder
when the file is loaded, so the stored spec is unambiguous. Unknown keys are errors naming the file and the key
path with a did-you-mean. The spec is data: it knows nothing of sd-scripts' arguments. ``[config]`` keys are checked
against them by kohya/ — at load time through a ``check_config`` function
(:func:`orchestrator.kohya.validate.load_checked_spec` passes one, so every problem of a file is reported at once),
and again with the preset by :func:`orchestrator.kohya.validate.validate_run`.

Versions: every spec carries ``spec_version``. :data:`MIGRATIONS` maps an old version to a function that turns a
dict of that version into the next one; :meth:`RunSpec.from_dict` applies them in order before parsing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from orchestrator.errors import NotFoundError
from orchestrator.families import FAMILIES, SCRIPT_FOR_FAMILY
from orchestrator.problems import Problem, SpecError, error, suggest
from orchestrator.sd_scripts import pinned_commit

SPEC_VERSION = 1

#: ``{old_version: function(dict) -> dict of old_version + 1}``. Empty while version 1 is the only one.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

EXECUTOR_KINDS = ("local", "ssh", "runpod", "worker")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
_CREDENTIAL_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:[^@\s]+@")
_SECRET_NAME = re.compile(r"(?i)(secret|password|passwd|token|api[_-]?key|private[_-]?key|credential)")
MAX_SEED = 2**31

#: Checks a spec's ``[config]`` table for its family (``config, family, source``): the problems with their key paths.
ConfigCheck = Callable[[Mapping[str, Any], str, "str | None"], list[Problem]]


# ---- the records ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseModelSpec:
    """The model the LoRA is trained on: a local path (file or diffusers folder) and/or a Hub name."""

    family: str
    path: str | None = None
    name: str | None = None
    sha256: str | None = None

    @property
    def script(self) -> str:
        return SCRIPT_FOR_FAMILY[self.family]


@dataclass(frozen=True)
class SubsetSpec:
    """One DreamBooth subset: a folder of the dataset and its sd-scripts subset options."""

    folder: str
    num_repeats: int | None = None
    class_tokens: str | None = None
    is_reg: bool = False
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class DatasetSpec:
    path: str | None = None
    snapshot: str | None = None
    caption_version: str | None = None
    subsets: tuple[SubsetSpec, ...] = ()


@dataclass(frozen=True)
class SamplePrompt:
    """One sample prompt; unset fields fall back to the ``[sample]`` defaults."""

    text: str
    negative: str | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    cfg_scale: float | None = None
    steps: int | None = None


@dataclass(frozen=True)
class SampleSpec:
    prompts: tuple[SamplePrompt, ...] = ()
    every_n_epochs: int | None = None
    sampler: str | None = None
    width: int | None = None
    height: int | None = None
    steps: int = 30
    cfg_scale: float = 7.5
    seed: int | None = None
    negative_prompt: str | None = None


@dataclass(frozen=True)
class EvaluationSpec:
    suite: str | None = None
    prompts: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()
    on_train: bool = False

    @property
    def asked(self) -> bool:
        return bool(self.suite or self.prompts)


@dataclass(frozen=True)
class SdScriptsSpec:
    commit: str | None = None
    path: str | None = None


@dataclass(frozen=True)
class ExecutorSpec:
    kind: str = "local"
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class RunSpec:
    """The whole spec. Build it with :func:`load_spec` or :meth:`from_dict`; store :meth:`to_dict`."""

    preset: str
    base_model: BaseModelSpec
    dataset: DatasetSpec
    config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    unset: tuple[str, ...] = ()
    seed: int | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()
    notes: str | None = None
    sample: SampleSpec = SampleSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    sd_scripts: SdScriptsSpec = SdScriptsSpec()
    executor: ExecutorSpec = ExecutorSpec()
    spec_version: int = SPEC_VERSION
    #: The file it was loaded from (not part of the spec's content: not in to_dict, not hashed).
    source: str | None = field(default=None, compare=False)

    @property
    def family(self) -> str:
        return self.base_model.family

    @property
    def script(self) -> str:
        return self.base_model.script

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-able form (sorted keys, lists not tuples); ``from_dict(to_dict())`` gives it back."""
        return _canonical({
            "spec_version": self.spec_version,
            "preset": self.preset,
            "name": self.name,
            "seed": self.seed,
            "tags": list(self.tags),
            "notes": self.notes,
            "unset": list(self.unset),
            "base_model": _fields(self.base_model),
            "dataset": {
                **_fields(self.dataset, exclude=("subsets",)),
                "subsets": [
                    {**_fields(s, exclude=("options",)), **dict(s.options)} for s in self.dataset.subsets
                ],
            },
            "config": dict(self.config),
            "sample": {
                **_fields(self.sample, exclude=("prompts",)),
                "prompts": [_fields(p) for p in self.sample.prompts],
            },
            "evaluation": _fields(self.evaluation),
            "sd_scripts": _fields(self.sd_scripts),
            "executor": {"kind": self.executor.kind, "options": dict(self.executor.options)},
        })

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def spec_hash(self) -> str:
        """sha256 of the canonical JSON: equal specs, equal hash."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, source: str | None = None, base_dir: str | os.PathLike[str] | None = None,
        check_config: ConfigCheck | None = None,
    ) -> RunSpec:
        """Parse (and migrate) a spec dict; raises :class:`SpecError` listing every problem (with those
        ``check_config`` finds in ``[config]``, when given)."""
        return _parse(data, source=source, base_dir=base_dir, check_config=check_config)

    def with_seed(self, seed: int) -> RunSpec:
        return replace(self, seed=seed)


def _fields(obj: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__ if name not in exclude}


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


# ---- loading -------------------------------------------------------------------------------------------------


def load_spec(path: str | os.PathLike[str], *, check_config: ConfigCheck | None = None) -> RunSpec:
    """Read a spec TOML file; raises :class:`SpecError` (every problem, file and key named, with those
    ``check_config`` finds in ``[config]``, when given) or NotFoundError."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"spec file {file} does not exist",
                            "check the path; example specs are in kohya_configs/specs/") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([error("", f"is not UTF-8 text (byte {exc.start})",
                               "save the spec as UTF-8 (TOML files must be UTF-8)", str(file))]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([error("", f"not valid TOML: {exc}",
                               "fix the TOML at that line and column (strings need quotes; tables are [name])",
                               str(file))]) from None
    return _parse(data, source=str(file), base_dir=file.resolve().parent, check_config=check_config)


def resolve_seed(spec: RunSpec) -> RunSpec:
    """The spec with a seed: unchanged when it has one, else with one drawn from ``secrets`` (0 <= seed < 2**31)."""
    if spec.seed is not None:
        return spec
    return spec.with_seed(secrets.randbelow(MAX_SEED))


def migrate(
    data: Mapping[str, Any],
    *,
    migrations: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
    target: int = SPEC_VERSION,
    source: str | None = None,
) -> dict[str, Any]:
    """Bring a spec dict of an older ``spec_version`` up to ``target`` by applying each step in turn."""
    steps = MIGRATIONS if migrations is None else migrations
    result = dict(data)
    version = result.get("spec_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise SpecError([error("spec_version", "missing or not an integer",
                               f"add `spec_version = {target}` at the top of the spec", source)])
    if version > target:
        raise SpecError([error("spec_version", f"is {version}, newer than this orchestrator understands ({target})",
                               "upgrade the orchestrator", source)])
    while version < target:
        step = steps.get(version)
        if step is None:
            raise SpecError([error("spec_version", f"no migration from version {version}",
                                   f"set spec_version = {target} and check the spec against the current format",
                                   source)])
        result = step(dict(result))
        version += 1
        result["spec_version"] = version
    return result


# the hint of a problem whose fix is plain from the message and the spec's format
SPEC_FORMAT_HINT = ("the annotated spec format is at the top of orchestrator/spec.py; an example: "
                    "kohya_configs/specs/example_plain.toml")


class _Reader:
    """Reads one spec dict, collecting every problem with its key path."""

    def __init__(self, source: str | None, base_dir: str | os.PathLike[str] | None) -> None:
        self.source = source
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str, hint: str = SPEC_FORMAT_HINT) -> None:
        self.problems.append(error(path, message, hint, self.source))

    def table(self, data: Any, path: str, known: tuple[str, ...], *, required: tuple[str, ...] = ()) -> dict:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.fail(path, f"expected a table, got {type(data).__name__}")
            return {}
        for key in data:
            if key not in known:
                close = suggest(key, known)
                where = f"{path}.{key}" if path else key
                self.fail(where, "unknown key" + (f" (did you mean {close}?)" if close else ""),
                          None if close else f"known keys: {', '.join(known)}")
        for key in required:
            if key not in data:
                self.fail(f"{path}.{key}" if path else key, "is required")
        return data

    def get(self, data: dict, key: str, path: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
        value = data.get(key, default)
        if value is None or key not in data:
            return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        where = f"{path}.{key}" if path else key
        if isinstance(value, bool) and bool not in kinds:
            self.fail(where, f"expected {_kind_word(kinds)}, got boolean {value!r}")
            return default
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kinds):
            self.fail(where, f"expected {_kind_word(kinds)}, got {type(value).__name__} {value!r}")
            return default
        return value

    def string_list(self, data: dict, key: str, path: str) -> tuple[str, ...]:
        value = data.get(key, [])
        where = f"{path}.{key}" if path else key
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(where, "expected an array of strings")
            return ()
        return tuple(value)

    def path_value(self, value: str | None) -> str | None:
        if value is None:
            return None
        expanded = Path(value).expanduser()
        if not expanded.is_absolute() and self.base_dir is not None:
            expanded = self.base_dir / expanded
        return os.path.normpath(str(expanded)) if (expanded.is_absolute()) else value


def _kind_word(kinds: tuple[type, ...]) -> str:
    words = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a table",
             list: "an array"}
    return " or ".join(dict.fromkeys(words.get(k, k.__name__) for k in kinds))


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in sorted(value.items())})
    return value


_TOP = ("spec_version", "name", "preset", "seed", "tags", "notes", "unset", "base_model", "dataset", "config",
        "sample", "evaluation", "sd_scripts", "executor")
_BASE_MODEL = ("family", "path", "name", "sha256")
_DATASET = ("path", "snapshot", "caption_version", "subsets")
_SUBSET_FIXED = ("folder", "num_repeats", "class_tokens", "is_reg")
_SAMPLE = ("prompts", "every_n_epochs", "sampler", "width", "height", "steps", "cfg_scale", "seed", "negative_prompt")
_PROMPT = ("text", "negative", "width", "height", "seed", "cfg_scale", "steps")
_EVALUATION = ("suite", "prompts", "seeds", "on_train")
_SD_SCRIPTS = ("commit", "path")
_EXECUTOR = ("kind", "options")


def _parse(data: Mapping[str, Any], *, source: str | None, base_dir: str | os.PathLike[str] | None,
           check_config: ConfigCheck | None = None) -> RunSpec:
    if not isinstance(data, Mapping):
        raise SpecError([error("", "a spec must be a table", SPEC_FORMAT_HINT, source)])
    data = migrate(data, source=source)
    r = _Reader(source, base_dir)
    top = r.table(dict(data), "", _TOP, required=("preset", "base_model", "dataset"))

    preset = r.get(top, "preset", "", str, "")
    if preset and (preset.endswith(".toml") or "/" in preset):
        preset = r.path_value(preset) or preset
    seed = r.get(top, "seed", "", int)
    if seed is not None and not 0 <= seed < 2**32:
        r.fail("seed", f"must be between 0 and {2**32 - 1}", "use a seed in that range, or leave seed out to "
               "have one drawn and recorded")

    base_raw = r.table(top.get("base_model"), "base_model", _BASE_MODEL, required=("family",))
    family = r.get(base_raw, "family", "base_model", str)
    if family is not None and family not in FAMILIES:
        close = suggest(family, FAMILIES)
        r.fail("base_model.family", f"must be one of {', '.join(FAMILIES)} (got {family!r})"
               + (f"; did you mean {close}?" if close else ""),
               "sd15 for SD 1.x models, sdxl for SDXL models")
        family = None
    base_path = r.path_value(r.get(base_raw, "path", "base_model", str))
    base_name = r.get(base_raw, "name", "base_model", str)
    sha256 = r.get(base_raw, "sha256", "base_model", str)
    if sha256 is not None and not _SHA256.match(sha256.lower()):
        r.fail("base_model.sha256", "must be 64 hexadecimal characters",
               "leave sha256 out (launch computes it) or paste what `sha256sum MODEL` prints")
    if isinstance(top.get("base_model"), dict) and base_path is None and base_name is None:
        r.fail("base_model", "needs path (a local .safetensors file or diffusers folder) or name (a Hub id)")
    base_model = BaseModelSpec(family=family or "sd15", path=base_path, name=base_name,
                               sha256=sha256.lower() if sha256 else None)

    dataset = _parse_dataset(r, top.get("dataset"))
    config = _parse_config(r, top.get("config"))
    if family is not None and check_config is not None:
        # [config] keys are sd-scripts arguments of the family's script: report their problems with the others
        r.problems += check_config(config, family, source)
    sample = _parse_sample(r, top.get("sample"))

    eval_raw = r.table(top.get("evaluation"), "evaluation", _EVALUATION)
    seeds = eval_raw.get("seeds", [])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        r.fail("evaluation.seeds", "expected an array of integers")
        seeds = []
    evaluation = EvaluationSpec(suite=r.get(eval_raw, "suite", "evaluation", str),
                                prompts=r.string_list(eval_raw, "prompts", "evaluation"), seeds=tuple(seeds),
                                on_train=r.get(eval_raw, "on_train", "evaluation", bool, False))
    if evaluation.suite and evaluation.prompts:
        r.fail("evaluation.prompts", "give a suite or inline prompts, not both")
    if evaluation.on_train and not evaluation.asked:
        r.fail("evaluation.on_train", "needs a suite or prompts to render", 'add suite = "bespoke_punks_8"')

    sd_raw = r.table(top.get("sd_scripts"), "sd_scripts", _SD_SCRIPTS)
    commit = r.get(sd_raw, "commit", "sd_scripts", str)
    if commit is not None and not _COMMIT.match(commit):
        r.fail("sd_scripts.commit", "must be a git commit id (7-40 lowercase hex characters)")
    sd_scripts = SdScriptsSpec(commit=commit or pinned_commit(),
                               path=r.path_value(r.get(sd_raw, "path", "sd_scripts", str)))

    ex_raw = r.table(top.get("executor"), "executor", _EXECUTOR)
    kind = r.get(ex_raw, "kind", "executor", str, "local")
    if kind not in EXECUTOR_KINDS:
        close = suggest(kind, EXECUTOR_KINDS)
        r.fail("executor.kind", f"unknown executor {kind!r}" + (f" (did you mean {close}?)" if close else ""),
               f"known: {', '.join(EXECUTOR_KINDS)}")
    options = ex_raw.get("options", {})
    if not isinstance(options, dict):
        r.fail("executor.options", "expected a table")
        options = {}
    for key in options:
        if _SECRET_NAME.search(key):
            r.fail(f"executor.options.{key}", "looks like a secret; secrets never go into a spec",
                   "give it to the executor through its environment")
    executor = ExecutorSpec(kind=kind, options=_freeze(options))

    spec = RunSpec(
        spec_version=data["spec_version"],
        preset=preset,
        name=r.get(top, "name", "", str),
        seed=seed,
        tags=r.string_list(top, "tags", ""),
        notes=r.get(top, "notes", "", str),
        unset=r.string_list(top, "unset", ""),
        base_model=base_model,
        dataset=dataset,
        config=config,
        sample=sample,
        evaluation=evaluation,
        sd_scripts=sd_scripts,
        executor=executor,
        source=source,
    )
    _check_no_credentials(r, spec.to_dict(), "")
    if r.problems:
        raise SpecError(r.problems)
    return spec


def _parse_dataset(r: _Reader, raw: Any) -> DatasetSpec:
    table = r.table(raw, "dataset", _DATASET)
    path = r.path_value(r.get(table, "path", "dataset", str))
    snapshot = r.get(table, "snapshot", "dataset", str)
    if isinstance(raw, dict) and path is None and snapshot is None:
        r.fail("dataset", "needs path (a DreamBooth folder, snapshotted on launch) or snapshot (a snapshot id)",
               'add path = "DIR" under [dataset], or snapshot = "ID" (`orchestrator dataset list`)')
    if path is not None and snapshot is not None:
        r.fail("dataset", "has both path and snapshot; give one")
    subsets_raw = table.get("subsets", [])
    if not isinstance(subsets_raw, list):
        r.fail("dataset.subsets", "expected an array of tables ([[dataset.subsets]])")
        subsets_raw = []
    subsets = []
    for index, item in enumerate(subsets_raw):
        where = f"dataset.subsets[{index}]"
        if not isinstance(item, dict):
            r.fail(where, "expected a table")
            continue
        folder = r.get(item, "folder", where, str)
        if not folder:
            r.fail(f"{where}.folder", "is required (the subset's folder inside the dataset)")
            continue
        if "/" in folder or folder in (".", ".."):
            r.fail(f"{where}.folder", "must be one folder name inside the dataset, not a path",
                   'name a folder directly inside the dataset, e.g. folder = "10_bespoke_punk"')
        repeats = r.get(item, "num_repeats", where, int)
        options = {k: v for k, v in item.items() if k not in _SUBSET_FIXED}
        for key, value in options.items():
            if isinstance(value, dict):
                r.fail(f"{where}.{key}", "nested tables are not subset options")
        subsets.append(SubsetSpec(
            folder=folder,
            num_repeats=repeats,
            class_tokens=r.get(item, "class_tokens", where, str),
            is_reg=bool(r.get(item, "is_reg", where, bool, False)),
            options=_freeze(options),
        ))
    return DatasetSpec(path=path, snapshot=snapshot, caption_version=r.get(table, "caption_version", "dataset", str),
                       subsets=tuple(subsets))


def _parse_config(r: _Reader, raw: Any) -> Mapping[str, Any]:
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, dict):
        r.fail("config", "expected a table of sd-scripts arguments")
        return MappingProxyType({})
    for key, value in raw.items():
        if isinstance(value, dict):
            r.fail(f"config.{key}", "nested tables are not sd-scripts arguments",
                   "write the arguments directly under [config]")
    return _freeze({k: v for k, v in raw.items() if not isinstance(v, dict)})


def _parse_sample(r: _Reader, raw: Any) -> SampleSpec:
    table = r.table(raw, "sample", _SAMPLE)
    prompts_raw = table.get("prompts", [])
    if not isinstance(prompts_raw, list):
        r.fail("sample.prompts", "expected an array of strings or tables")
        prompts_raw = []
    prompts = []
    for index, item in enumerate(prompts_raw):
        where = f"sample.prompts[{index}]"
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict):
            r.fail(where, "expected a string or a table with text")
            continue
        r.table(item, where, _PROMPT, required=("text",))
        prompts.append(SamplePrompt(
            text=r.get(item, "text", where, str, ""),
            negative=r.get(item, "negative", where, str),
            width=r.get(item, "width", where, int),
            height=r.get(item, "height", where, int),
            seed=r.get(item, "seed", where, int),
            cfg_scale=r.get(item, "cfg_scale", where, float),
            steps=r.get(item, "steps", where, int),
        ))
    return SampleSpec(
        prompts=tuple(prompts),
        every_n_epochs=r.get(table, "every_n_epochs", "sample", int),
        sampler=r.get(table, "sampler", "sample", str),
        width=r.get(table, "width", "sample", int),
        height=r.get(table, "height", "sample", int),
        steps=r.get(table, "steps", "sample", int, 30),
        cfg_scale=r.get(table, "cfg_scale", "sample", float, 7.5),
        seed=r.get(table, "seed", "sample", int),
        negative_prompt=r.get(table, "negative_prompt", "sample", str),
    )


def _check_no_credentials(r: _Reader, value: Any, path: str) -> None:
    """A URL with a password (a database URL, say) anywhere in the spec is an error: specs are stored and shown."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_no_credentials(r, item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_no_credentials(r, item, f"{path}[{index}]")
    elif isinstance(value, str) and _CREDENTIAL_URL.search(value):
        r.fail(path, "contains a URL with a password; secrets never go into a spec",
               "pass credentials through the environment")

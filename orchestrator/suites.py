"""Prompt suites: named, fixed sets of prompts and seeds, kept as TOML in ``kohya_configs/prompt_suites/``.

A suite file has a ``[suite]`` table (``name``, optional ``description``, ``negative``, ``width``, ``height``,
``steps``, ``cfg_scale``) and one ``[[prompts]]`` table per prompt (``name``, ``text``, ``seeds``, optional
``negative``). Unknown keys are errors naming the file and the key. The content hash covers what changes the images
(prompt names, texts, negatives, seeds, size) and not comments, so scores recorded under one name stay comparable:
the store refuses a suite whose hash differs from the recorded one.

Suites are data, like the spec: kohya/ renders a spec's on-train suite as sd-scripts' sample prompts
(:func:`training_sample_spec`) and evaluation/ generates and scores them, so both import this module and it imports
neither (recording a suite in the tracking database is :func:`orchestrator.evaluation.suites.record_suite`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from orchestrator.errors import InputError, NotFoundError, OrchestratorError
from orchestrator.resources import PROMPT_SUITES_DIR
from orchestrator.spec import RunSpec, SamplePrompt, SampleSpec

#: kohya_configs/prompt_suites/, the checkout's or the installed wheel's.
BUILTIN_SUITES_DIR = PROMPT_SUITES_DIR

_SUITE_KEYS = {"name": str, "description": str, "negative": str, "width": int, "height": int, "steps": int,
               "cfg_scale": float}
_PROMPT_KEYS = {"name": str, "text": str, "seeds": list, "negative": str}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class SuitePrompt:
    name: str
    text: str
    seeds: tuple[int, ...]
    negative: str | None = None


@dataclass(frozen=True)
class PromptSuite:
    name: str
    prompts: tuple[SuitePrompt, ...]
    description: str | None = None
    negative: str | None = None
    width: int = 512
    height: int = 512
    steps: int = 30
    cfg_scale: float = 7.5
    path: str | None = None

    @property
    def content_sha256(self) -> str:
        content = {
            "name": self.name, "width": self.width, "height": self.height,
            "prompts": [[p.name, p.text, self.negative_for(p), list(p.seeds)] for p in self.prompts],
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def negative_for(self, prompt: SuitePrompt) -> str | None:
        return prompt.negative if prompt.negative is not None else self.negative

    def items(self) -> list[tuple[SuitePrompt, int]]:
        """Every (prompt, seed) pair, in file order."""
        return [(p, seed) for p in self.prompts for seed in p.seeds]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["content_sha256"] = self.content_sha256
        return data


def _unknown(path: str, key: str, allowed: dict[str, type]) -> InputError:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, list(allowed), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
    return InputError(f"{path}: unknown key {key!r}", hint)


def _check_types(path: str, where: str, table: dict[str, Any], allowed: dict[str, type]) -> None:
    for key, value in table.items():
        if key not in allowed:
            raise _unknown(path, f"{where}.{key}" if where else key, allowed)
        expected = allowed[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) if expected is float else (
            isinstance(value, expected) and not isinstance(value, bool))
        if not ok:
            raise InputError(f"{path}: {where}.{key} must be {expected.__name__}, not {type(value).__name__}",
                             "the suite format: kohya_configs/prompt_suites/bespoke_punks_8.toml")


def parse_suite(data: dict[str, Any], path: str = "<suite>") -> PromptSuite:
    """Validate the TOML data of a suite file and build the suite."""
    for key in data:
        if key not in ("suite", "prompts"):
            raise _unknown(path, key, {"suite": dict, "prompts": list})
    suite = data.get("suite")
    if not isinstance(suite, dict) or "name" not in suite:
        raise InputError(f"{path}: missing [suite] table with a name", 'start the file with [suite] name = "…"')
    _check_types(path, "suite", suite, _SUITE_KEYS)
    if not _NAME.match(suite["name"]):
        raise InputError(f"{path}: suite.name {suite['name']!r} must be letters, digits, _ . -",
                         "rename it, e.g. my_suite_2")
    raw_prompts = data.get("prompts")
    if not isinstance(raw_prompts, list) or not raw_prompts:
        raise InputError(f"{path}: no [[prompts]]", "add at least one [[prompts]] table with name, text and seeds")
    prompts: list[SuitePrompt] = []
    for i, prompt in enumerate(raw_prompts):
        where = f"prompts[{i}]"
        _check_types(path, where, prompt, _PROMPT_KEYS)
        for required in ("name", "text", "seeds"):
            if required not in prompt:
                raise InputError(f"{path}: {where} has no {required!r}", f"add {required} = … to it (the suite format: kohya_configs/prompt_suites/bespoke_punks_8.toml)")
        if not _NAME.match(prompt["name"]):
            raise InputError(f"{path}: {where}.name {prompt['name']!r} must be letters, digits, _ . -",
                             "rename it, e.g. brown_eyes_lady")
        seeds = prompt["seeds"]
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in seeds):
            raise InputError(f"{path}: {where}.seeds must be a non-empty list of non-negative integers",
                             "e.g. seeds = [1, 2, 3]")
        if len(set(seeds)) != len(seeds):
            raise InputError(f"{path}: {where}.seeds has duplicates", "list each seed once")
        prompts.append(SuitePrompt(prompt["name"], prompt["text"], tuple(seeds), prompt.get("negative")))
    names = [p.name for p in prompts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"{path}: duplicate prompt name(s) {', '.join(duplicates)}",
                         "give each prompt its own name: scores are recorded per prompt name")
    return PromptSuite(
        name=suite["name"], prompts=tuple(prompts), description=suite.get("description"),
        negative=suite.get("negative"), width=suite.get("width", 512), height=suite.get("height", 512),
        steps=suite.get("steps", 30), cfg_scale=float(suite.get("cfg_scale", 7.5)), path=path,
    )


def load_suite_file(path: str | Path) -> PromptSuite:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"no prompt suite file {path}",
                            "name a shipped suite (kohya_configs/prompt_suites/) or give a suite TOML path") from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML: {error}", "fix the TOML at that line and column") from None
    return parse_suite(data, str(path))


def list_suites(directory: Path = BUILTIN_SUITES_DIR) -> list[PromptSuite]:
    return [load_suite_file(p) for p in sorted(directory.glob("*.toml"))]


def load_suite(ref: str, directory: Path = BUILTIN_SUITES_DIR) -> PromptSuite:
    """A suite by name (``kohya_configs/prompt_suites/NAME.toml``) or by the path of a TOML file."""
    candidate = Path(ref)
    if candidate.suffix == ".toml" or candidate.exists():
        return load_suite_file(candidate)
    path = directory / f"{ref}.toml"
    if not path.exists():
        known = ", ".join(p.stem for p in sorted(directory.glob("*.toml")))
        raise NotFoundError(f"no prompt suite {ref!r}", f"suites: {known}; or give the path of a suite TOML")
    return load_suite_file(path)


# ---- the suite a spec asks for -------------------------------------------------------------------------------


def spec_suite(spec: RunSpec) -> PromptSuite | None:
    """The suite the spec's ``[evaluation]`` names, or an inline suite of its prompts; None when it asks for none.

    ``evaluation.seeds`` replaces the suite's seeds (job by job; the recorded suite stays as written).
    """
    evaluation = spec.evaluation
    if evaluation.suite:
        base = Path(spec.source).resolve().parent if spec.source else None
        candidate = base / evaluation.suite if base and evaluation.suite.endswith(".toml") else None
        return load_suite(str(candidate) if candidate and candidate.is_file() else evaluation.suite)
    if evaluation.prompts:
        seeds = evaluation.seeds or (1,)
        digest = hashlib.sha256(repr((evaluation.prompts, seeds)).encode()).hexdigest()[:10]
        return PromptSuite(name=f"inline-{digest}", description="inline [evaluation] prompts of a run spec",
                           prompts=tuple(SuitePrompt(f"prompt_{i + 1}", text, tuple(seeds))
                                         for i, text in enumerate(evaluation.prompts)))
    return None


def suite_items(suite: PromptSuite, seeds: Sequence[int] = ()) -> list[tuple[SuitePrompt, int]]:
    """(prompt, seed) in suite order; ``seeds`` instead of each prompt's own when given."""
    if not seeds:
        return suite.items()
    return [(prompt, seed) for prompt in suite.prompts for seed in seeds]


def training_sample_spec(spec: RunSpec) -> SampleSpec:
    """The sample prompts sd-scripts renders for this spec: ``[sample]``, or the evaluation suite when on_train."""
    if not spec.evaluation.on_train:
        return spec.sample
    suite = spec_suite(spec)
    if suite is None:
        return spec.sample
    prompts = tuple(
        SamplePrompt(text=prompt.text, negative=suite.negative_for(prompt), width=suite.width, height=suite.height,
                     seed=seed, cfg_scale=suite.cfg_scale, steps=suite.steps)
        for prompt, seed in suite_items(suite, spec.evaluation.seeds))
    return replace(spec.sample, prompts=prompts, every_n_epochs=spec.sample.every_n_epochs or 1)


def suite_problem(spec: RunSpec) -> str | None:
    """Why the spec's evaluation suite cannot be used (one line), or None."""
    try:
        spec_suite(spec)
    except OrchestratorError as error:
        return error.one_line()
    return None

"""Every `Error:` line says what to do: ``Error: … (hint: …)`` on one line, with the documented exit code.

Two halves: the 19 cases a new user hit without a hint (issue 13, item 15), each driven through the CLI with real
files; and a guard that reads the library's source (ast) for errors built without a hint, so that a new one is
caught here rather than by a user.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from test_plan import SPEC_HEAD  # a valid spec to break one key of

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "orchestrator"
EXAMPLE_DATASET = ROOT / "datasets" / "example" / "plain"

ONE_LINE = re.compile(r"Error: (?P<message>[^\n]+?) \(hint: (?P<hint>[^\n]+)\)")

NO_DATASET = SPEC_HEAD.replace('snapshot = "ds-1"\n\n[[dataset.subsets]]\nfolder = "1_bespoke_baby"\n', "")
SAMPLED = SPEC_HEAD + "\n[sample]\nevery_n_epochs = 1\n"


def _spec(text: str | bytes):
    def make(tmp: Path) -> list[str]:
        path = tmp / "spec.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["plan", str(path)]
    return make


def _dangling_symlink(tmp: Path) -> list[str]:
    folder = tmp / "dataset" / "10_punk"
    folder.mkdir(parents=True)
    (folder / "a.png").symlink_to(folder / "gone.png")  # inside the dataset, pointing at nothing
    (folder / "a.txt").write_text("a punk")
    return ["dataset", "snapshot", str(tmp / "dataset")]


def _dataset_toml(text: str):
    def make(tmp: Path) -> list[str]:
        (tmp / "10_punk").mkdir()
        path = tmp / "dataset.toml"
        path.write_text(text)
        return ["dataset", "snapshot", str(path)]
    return make


def _materialize_onto_a_file(tmp: Path) -> list[str]:
    store = (tmp / "store").as_uri()
    taken = CliRunner().invoke(cli, ["dataset", "snapshot", str(EXAMPLE_DATASET), "--store", store, "--json"])
    assert taken.exit_code == 0, taken.output
    (tmp / "a-file").write_text("not a folder")
    return ["dataset", "materialize", json.loads(taken.output)["snapshot"]["id"], str(tmp / "a-file"),
            "--store", store]


# case: (make the CLI arguments in a temporary folder, exit code, what the message names, what the hint says)
CASES = {
    "spec TOML syntax error": (_spec("spec_version = 1\npreset = \n"), 1, "not valid TOML", "line and column"),
    "negative epochs": (_spec(SPEC_HEAD + "\n[config]\nmax_train_epochs = -1\n"), 1,
                        "config.max_train_epochs: must be at least 1 (got -1)", "max_train_epochs to 1 or more"),
    "network_dim 0": (_spec(SPEC_HEAD + "\n[config]\nnetwork_dim = 0\n"), 1, "config.network_dim: must be at least 1",
                      "network_dim to 1 or more"),
    "missing preset": (_spec(SPEC_HEAD.replace('"sd15_perfect"', '"nosuch_preset"')), 1,
                       "no preset named 'nosuch_preset'", "known presets: "),
    "missing preset file": (_spec(SPEC_HEAD.replace('"sd15_perfect"', '"/nonexistent/preset.toml"')), 1,
                            "/nonexistent/preset.toml", "presets list"),
    "dataset without path or snapshot": (_spec(NO_DATASET), 1, "dataset: needs path", 'path = "DIR"'),
    "subset folder absolute": (_spec(SPEC_HEAD.replace('"1_bespoke_baby"', '"/etc/10_x"')), 1,
                               "dataset.subsets[0].folder: must be one folder name", 'folder = "10_bespoke_punk"'),
    "subset folder ..": (_spec(SPEC_HEAD.replace('"1_bespoke_baby"', '"../10_x"')), 1,
                         "dataset.subsets[0].folder: must be one folder name", 'folder = "10_bespoke_punk"'),
    "negative seed": (_spec(SPEC_HEAD.replace("seed = 11", "seed = -3")), 1, "seed: must be between 0 and",
                      "leave seed out"),
    "unknown family": (_spec(SPEC_HEAD.replace('family = "sd15"', 'family = "sd99"')), 1,
                       "base_model.family: must be one of sd15, sdxl (got 'sd99')", "sdxl for SDXL"),
    "non-hex sha256": (_spec(SPEC_HEAD.replace('name = "runwayml', 'sha256 = "xyz"\nname = "runwayml')), 1,
                       "base_model.sha256: must be 64 hexadecimal characters", "sha256sum"),
    "sample prompt option injection": (_spec(SAMPLED + 'prompts = ["a cat --n ugly"]\n'), 1,
                                       "sample.prompts[0].text: contains ' --'", "remove the ' --'"),
    "negative prompt option injection": (_spec(SAMPLED + 'negative_prompt = "x --w 5"\nprompts = ["a cat"]\n'), 1,
                                         "sample.negative_prompt: contains ' --'", "remove the ' --'"),
    "multi-line prompt": (_spec(SAMPLED + 'prompts = ["a cat\\nsecond line"]\n'), 1,
                          "sample.prompts[0].text: must be one line", "its own list entry"),
    "missing spec file": (lambda tmp: ["plan", str(tmp / "nosuch.toml")], 2, "nosuch.toml does not exist",
                          "kohya_configs/specs/"),
    "non-UTF-8 spec": (_spec(b'spec_version = 1\nname = "\xff\xfe"\n'), 1, "is not UTF-8 text (byte 25)",
                       "save the spec as UTF-8"),
    "dangling symlink image": (_dangling_symlink, 1, "a.png: a broken link", "remove the link"),
    "dataset TOML wrong type": (_dataset_toml('[[datasets]]\n[[datasets.subsets]]\nimage_dir = 5\n'), 1,
                                "datasets[0].subsets[0].image_dir: expected a string, got integer 5",
                                "docs/config_README-en.md"),
    "dataset TOML missing image_dir": (_dataset_toml('[[datasets]]\n[[datasets.subsets]]\nnum_repeats = 2\n'), 1,
                                       "datasets[0].subsets[0]: missing required key 'image_dir'", "add image_dir"),
    "materialize onto a file": (_materialize_onto_a_file, 1, "a-file: exists and is not a folder",
                                "a new or empty folder"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_error_is_one_line_with_a_hint(case, tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path / "home"))
    make_args, exit_code, names, says = CASES[case]
    work = tmp_path / "case"
    work.mkdir()
    result = CliRunner().invoke(cli, make_args(work))
    assert result.exit_code == exit_code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    shape = ONE_LINE.fullmatch(errors[0])
    assert shape, f"not `Error: … (hint: …)`: {errors[0]}"
    assert names in shape["message"], errors[0]
    assert says in shape["hint"], errors[0]


# ---- the guard: errors built without a hint, found in the source --------------------------------------------------

# Where the guard cannot see the hint, and why it is there anyway.
ALLOWED_WITHOUT_VISIBLE_HINT = {
    ("orchestrator/datasets/scan.py", "fail"): "fail(*problem): _read_regular's (code, message, hint) tuples",
}
# SpecError carries Problems (each with its own hint, checked below), not a message and a hint.
CARRIES_PROBLEMS = {"SpecError"}


def _library_sources() -> list[tuple[str, ast.Module]]:
    return [(str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"), str(path)))
            for path in sorted(PACKAGE.rglob("*.py"))]


def _project_error_classes(sources) -> set[str]:
    names = {"OrchestratorError"}
    grew = True
    while grew:  # subclasses of subclasses, wherever they are defined
        grew = False
        for _, tree in sources:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and node.name not in names and any(
                        isinstance(b, ast.Name) and b.id in names for b in node.bases):
                    names.add(node.name)
                    grew = True
    return names


def _hint_argument(call: ast.Call, position: int) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "hint":
            return keyword.value
    if any(isinstance(a, ast.Starred) for a in call.args[:position + 1]):
        return None
    return call.args[position] if len(call.args) > position else None


def _missing(hint: ast.expr | None) -> bool:
    return hint is None or (isinstance(hint, ast.Constant) and hint.value in (None, ""))


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        if isinstance(call.func.value, ast.Name) and call.func.value.id == "click":
            return None  # click's own errors (click.UsageError: usage text, exit 2) are not the library's
        return call.func.attr
    return None


def _is_error_severity(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "ERROR"


def test_no_library_error_is_built_without_a_hint():
    """Project errors (raised or returned), error Problems (problems.error, RuleInput.error, the readers' fail) and
    error Findings all pass a hint; a helper that builds them never defaults the hint to None."""
    sources = _library_sources()
    error_classes = _project_error_classes(sources) - CARRIES_PROBLEMS
    assert {"InputError", "ConfigError", "NotFoundError", "ArtifactError", "RunPodError"} <= error_classes
    found = []
    checked = 0
    for path, tree in sources:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in ("fail", "error") \
                    and path != "orchestrator/problems.py":
                args = node.args.args + node.args.kwonlyargs
                defaults = dict(zip([a.arg for a in node.args.args][::-1], node.args.defaults[::-1]))
                defaults.update({a.arg: d for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d})
                if any(a.arg == "hint" for a in args) and "hint" in defaults and _missing(defaults["hint"]):
                    found.append(f"{path}:{node.lineno}: helper {node.name}() defaults hint to None")
            if not isinstance(node, ast.Call):
                continue
            name = _callee(node)
            position = None
            if name in error_classes:
                position = 1  # (message, hint)
            elif name == "error" and len(node.args) >= 2:
                position = 2  # problems.error(key_path, message, hint, source) / RuleInput.error(key, message, hint)
            elif name == "fail" and path in ("orchestrator/datasets/scan.py",):
                position = 2  # scan's fail(code, message, hint)
            elif name == "Finding" and node.args and _is_error_severity(node.args[0]):
                position = 4  # Finding(severity, code, path, message, hint)
            elif name == "add" and node.args and _is_error_severity(node.args[0]):
                position = 4  # scan's add(severity, code, rel, message, hint)
            if position is None:
                continue
            checked += 1
            if _missing(_hint_argument(node, position)) and (path, name) not in ALLOWED_WITHOUT_VISIBLE_HINT:
                found.append(f"{path}:{node.lineno}: {name}(…) without a hint")
    assert checked > 200  # the guard sees the library's errors (about 300 today), not nothing
    assert found == []

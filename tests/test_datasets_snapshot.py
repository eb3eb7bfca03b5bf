"""Snapshots end to end on SQLite and PostgreSQL: content ids, one transaction, deterministic archive, exact rebuild."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from orchestrator.artifacts import open_store
from orchestrator.artifacts.base import ArtifactError
from orchestrator.cli import cli
from orchestrator.datasets import materialize_snapshot, scan_dataset, take_snapshot
from orchestrator.datasets.archive import ArchiveError, extract_archive, write_archive
from orchestrator.datasets.manifest import canonical_json, caption_version_id, manifest_bytes, sha256_bytes
from orchestrator.datasets.snapshot import new_caption_version
from orchestrator.errors import InputError
from orchestrator.tracking.entities import NewDatasetSnapshot, SnapshotImageRecord
from orchestrator.tracking.store import TrackingStore

EXAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "example"
SUBSET = "10_bespoke_punk"


@pytest.fixture
def artifacts(tmp_path: Path):
    return open_store(str(tmp_path / "store"))


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "ds"
    shutil.copytree(EXAMPLE / "plain", dest)
    return dest


def ids(path: Path) -> tuple[str, str]:
    dataset = scan_dataset(path)
    return sha256_bytes(manifest_bytes(dataset)), caption_version_id(dataset.caption_pairs())


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---- content ids ---------------------------------------------------------------------------------------------


def test_ids_ignore_names_order_and_times_but_not_caption_edits(example_copy: Path, tmp_path: Path):
    snapshot_id, version_id = ids(example_copy)
    reordered = tmp_path / "reordered" / SUBSET
    reordered.mkdir(parents=True)
    for path in sorted((example_copy / SUBSET).iterdir(), reverse=True):  # other creation order, other times
        shutil.copyfile(path, reordered / path.name)
        os.utime(reordered / path.name, (0, 0))
    assert ids(reordered.parent) == (snapshot_id, version_id)
    folder = example_copy / SUBSET
    (folder / "lad_01.png").rename(folder / "renamed.png")
    (folder / "lad_01.txt").rename(folder / "renamed.txt")
    renamed_snapshot, renamed_version = ids(example_copy)
    assert renamed_version == version_id and renamed_snapshot != snapshot_id  # the folder differs, captions do not
    caption = folder / "lady_03.txt"
    caption.write_text(caption.read_text().replace("solid background", "plain background"))
    edited_snapshot, edited_version = ids(example_copy)
    assert edited_version != version_id and edited_snapshot != renamed_snapshot


def test_caption_version_counts_duplicate_images():
    one = [("a" * 64, "x"), ("b" * 64, "y")]
    assert caption_version_id(one) == caption_version_id(list(reversed(one)))
    assert caption_version_id(one + [("a" * 64, "x")]) != caption_version_id(one)
    assert caption_version_id([("a" * 64, "x"), ("a" * 64, "z")]) == caption_version_id(
        [("a" * 64, "z"), ("a" * 64, "x")])


def test_archive_is_deterministic(example_copy: Path, tmp_path: Path):
    other = tmp_path / "elsewhere" / "copy"
    shutil.copytree(example_copy, other)
    for path in other.rglob("*"):
        os.utime(path, (123456789, 123456789))
    results = []
    for root, name in ((example_copy, "a.tar"), (other, "b.tar")):
        dataset = scan_dataset(root)
        results.append(write_archive(dataset, manifest_bytes(dataset), tmp_path / name))
    assert results[0] == results[1]
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = tar.getmembers()
    assert members[0].name == "manifest.json" and [m.name for m in members[1:]] == sorted(m.name for m in members[1:])
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}


def test_manifest_is_canonical_json_without_machine_details(example_copy: Path):
    data = manifest_bytes(scan_dataset(example_copy))
    manifest = json.loads(data)
    assert canonical_json(manifest) == data
    assert str(example_copy) not in data.decode()
    image = manifest["images"][0]
    assert set(image) == {"path", "subset", "sha256", "size", "width", "height", "mode", "format", "caption",
                          "caption_sha256", "caption_source", "caption_file"}
    assert image["caption_sha256"] == hashlib.sha256(image["caption"].encode()).hexdigest()


# ---- recording -----------------------------------------------------------------------------------------------


def test_snapshot_records_everything_once(store: TrackingStore, artifacts, example_copy: Path):
    first = take_snapshot(example_copy, tracking=store, artifacts=artifacts, label="plain")
    assert first.created and first.caption_version_created
    snapshot_id, version_id = ids(example_copy)
    assert (first.snapshot.id, first.caption_version.id) == (snapshot_id, version_id)
    record = store.get_snapshot("plain")
    assert record.caption_version_id == version_id and record.image_count == 24 and record.label == "plain"
    assert record.archive_uri == artifacts.uri_for(record.archive_sha256)
    assert artifacts.exists(record.archive_sha256) and artifacts.exists(snapshot_id)  # archive + bare manifest
    version = store.get_caption_version("plain")
    assert version.caption_count == 24 and version.max_tokens <= 75 and version.mean_hex_codes == 0
    assert (version.stats["common_prefix"], version.stats["common_prefix_tokens"]) == ("pixel art, 24x24", 2)
    assert version.stats["over_75_tokens"] == 0
    entries = store.caption_entries(version_id)
    assert len(entries) == 24 and all(e.tokens and e.hex_codes == 0 for e in entries)
    images = store.snapshot_images(snapshot_id)
    assert [i.path for i in images][:2] == [f"{SUBSET}/lad_01.png", f"{SUBSET}/lad_02.png"]
    assert {(i.width, i.height, i.mode, i.subset) for i in images} == {(512, 512, "RGB", SUBSET)}

    again = take_snapshot(example_copy, tracking=store, artifacts=artifacts, label="plain")
    assert not again.created and not again.caption_version_created and again.snapshot.id == snapshot_id
    assert len(store.list_snapshots()) == 1 and len(store.list_caption_versions()) == 1
    assert len(store.snapshot_images(snapshot_id)) == 24 and len(store.caption_entries(version_id)) == 24


def test_bad_input_records_and_stores_nothing(store: TrackingStore, artifacts, example_copy: Path):
    target = example_copy / SUBSET / "lady_06.png"
    target.write_bytes(target.read_bytes()[:300])
    (example_copy / SUBSET / "lad_02.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(InputError) as caught:
        take_snapshot(example_copy, tracking=store, artifacts=artifacts)
    message = caught.value.one_line()
    assert "lad_02.txt: caption file is not UTF-8" in message and "(and 1 more problem" in message
    assert "orchestrator captions lint" in message
    assert store.list_snapshots() == [] and store.list_caption_versions() == []
    assert list(artifacts.list()) == []


def test_label_used_by_other_captions_is_refused_before_anything_is_written(store: TrackingStore, artifacts,
                                                                            example_copy: Path, tmp_path: Path):
    take_snapshot(example_copy, tracking=store, artifacts=artifacts, label="v1")
    stored = len(list(artifacts.list()))
    caption = example_copy / SUBSET / "lad_01.txt"
    caption.write_text("pixel art, 24x24, something else\n")
    with pytest.raises(InputError, match="caption label 'v1' is already used") as caught:
        take_snapshot(example_copy, tracking=store, artifacts=artifacts, label="v1")
    assert "orchestrator captions label" in caught.value.hint
    assert len(store.list_snapshots()) == 1 and len(list(artifacts.list())) == stored
    relabelled = take_snapshot(example_copy, tracking=store, artifacts=artifacts, label="v2")
    assert relabelled.caption_version.label == "v2" and relabelled.notes == ()


def test_new_label_on_known_content_keeps_the_old_one_with_a_note(store: TrackingStore, artifacts, example_copy):
    take_snapshot(example_copy, tracking=store, artifacts=artifacts, label="first")
    result = take_snapshot(example_copy, tracking=store, artifacts=artifacts, label="second")
    assert result.snapshot.label == "first" and result.caption_version.label == "first"
    assert len(result.notes) == 2 and "already labelled 'first'" in result.notes[0]


def test_unlabelled_content_gets_a_later_label(store: TrackingStore, artifacts, example_copy):
    take_snapshot(example_copy, tracking=store, artifacts=artifacts)
    result = take_snapshot(example_copy, tracking=store, artifacts=artifacts, label="late")
    assert (result.snapshot.label, result.caption_version.label, result.notes) == ("late", "late", ())


def _recordable(path: Path):
    """A snapshot and its caption version as take_snapshot would record them (the archive not written)."""
    dataset = scan_dataset(path)
    manifest = manifest_bytes(dataset)
    snapshot_id = sha256_bytes(manifest)
    version = new_caption_version(dataset, None)
    snapshot = NewDatasetSnapshot(
        id=snapshot_id, label=None, source_kind=dataset.source_kind, source_path=None,
        total_bytes=dataset.total_bytes, dataset_toml=None, archive_uri="file:///x/sha256/00/" + "0" * 64,
        archive_sha256="0" * 64, archive_bytes=1,
        images=tuple(SnapshotImageRecord(snapshot_id, i.path, i.subset, i.sha256, i.size, i.width, i.height, i.mode,
                                         i.caption_sha256) for i in dataset.images))
    return snapshot, version


def test_concurrent_recording_of_the_same_content(db_url: str, artifacts, example_copy: Path):
    snapshot, version = _recordable(example_copy)
    stores = [TrackingStore(db_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    results, errors = [], []

    def record(tracking: TrackingStore) -> None:
        barrier.wait()
        try:
            results.append(tracking.record_snapshot(snapshot, version))
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=record, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for tracking in stores:
        tracking.close()
    assert errors == [] and sum(r.snapshot_created for r in results) == 1
    with TrackingStore(db_url) as tracking:
        assert len(tracking.list_snapshots()) == 1 and len(tracking.snapshot_images(snapshot.id)) == 24


# SQLite writers take the lock when their transaction begins (BEGIN IMMEDIATE), so there the check and the insert
# cannot be split; on PostgreSQL they can, and the retry is what makes the loser succeed.
@pytest.mark.parametrize("backend", ["postgresql"])
def test_losing_the_race_between_check_and_insert_retries_and_finds_the_winners_rows(db_url: str,
                                                                                     example_copy: Path):
    snapshot, version = _recordable(example_copy)
    winner_results = []
    with TrackingStore(db_url) as loser, TrackingStore(db_url) as winner:
        def winner_records_first(_conn, _cursor, statement: str, *_args) -> None:
            # The loser found no caption version and is about to insert one: another connection commits it now.
            if statement.startswith("INSERT INTO caption_versions") and not winner_results:
                winner_results.append(winner.record_snapshot(snapshot, version))

        sa.event.listen(loser.engine, "before_cursor_execute", winner_records_first)
        result = loser.record_snapshot(snapshot, version)
    (won,) = winner_results
    assert (won.snapshot_created, won.caption_version_created) == (True, True)
    assert (result.snapshot_created, result.caption_version_created) == (False, False)
    assert result.snapshot == won.snapshot and result.caption_version == won.caption_version
    with TrackingStore(db_url) as tracking:
        assert len(tracking.list_snapshots()) == 1 and len(tracking.snapshot_images(snapshot.id)) == 24


# ---- materialize ---------------------------------------------------------------------------------------------


def test_materialize_rebuilds_the_exact_folder(store: TrackingStore, artifacts, example_copy: Path, tmp_path: Path):
    taken = take_snapshot(example_copy, tracking=store, artifacts=artifacts, label="plain")
    dest = tmp_path / "rebuilt"
    result = materialize_snapshot("plain", dest, tracking=store, artifacts=artifacts)
    assert result.files == 48 and result.train_args == ("--train_data_dir", str(dest), "--caption_extension", ".txt")
    rebuilt = tree(dest)
    assert json.loads(rebuilt.pop("manifest.json"))["format"] == "orchestrator.dataset-snapshot/1"
    assert rebuilt == tree(example_copy)
    assert ids(dest)[0] == taken.snapshot.id  # the manifest.json at the top is not part of the dataset
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rebuilt")]  # no staging left behind


def test_materialize_a_dataset_toml_snapshot(store: TrackingStore, artifacts, tmp_path: Path):
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("hex"))
    taken = take_snapshot(root / "dataset.toml", tracking=store, artifacts=artifacts)
    assert taken.snapshot.source_kind == "dataset_toml"
    assert taken.snapshot.dataset_toml == (root / "dataset.toml").read_text()
    assert [s.name for s in taken.subsets] == [f"plain/{SUBSET}"]
    result = materialize_snapshot(taken.snapshot.id[:10], tmp_path / "out", tracking=store, artifacts=artifacts)
    assert result.dataset_toml == str(tmp_path / "out" / "dataset.toml")
    assert (tmp_path / "out" / "dataset.toml").read_bytes() == (root / "dataset.toml").read_bytes()
    assert ids(tmp_path / "out" / "dataset.toml")[0] == taken.snapshot.id


def test_materialize_refuses_a_non_empty_dest_unless_forced(store: TrackingStore, artifacts, example_copy, tmp_path):
    take_snapshot(example_copy, tracking=store, artifacts=artifacts, label="plain")
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="busy: folder is not empty"):
        materialize_snapshot("plain", dest, tracking=store, artifacts=artifacts)
    assert tree(dest) == {"keep.txt": b"mine"}
    materialize_snapshot("plain", dest, tracking=store, artifacts=artifacts, force=True)
    assert "keep.txt" not in tree(dest) and len(tree(dest)) == 49
    empty = tmp_path / "empty"
    empty.mkdir()
    materialize_snapshot("plain", empty, tracking=store, artifacts=artifacts)
    assert len(tree(empty)) == 49


def test_materialize_refuses_a_corrupted_archive_and_writes_nothing(store: TrackingStore, artifacts, example_copy,
                                                                    tmp_path: Path):
    taken = take_snapshot(example_copy, tracking=store, artifacts=artifacts, label="plain")
    stored = artifacts.local_path(taken.snapshot.archive_sha256)
    os.chmod(stored, 0o644)
    data = bytearray(stored.read_bytes())
    data[5000] ^= 0x01
    stored.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="hashes to"):
        materialize_snapshot("plain", tmp_path / "out", tracking=store, artifacts=artifacts)
    assert not (tmp_path / "out").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _manifest(files: dict[str, bytes]) -> bytes:
    return canonical_json({"format": "orchestrator.dataset-snapshot/1", "source_kind": "dreambooth",
                           "dataset_toml": None, "caption_extension": ".txt", "subsets": [], "images": [], "files": [
        {"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d), "kind": "image"}
        for p, d in files.items()]})


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


# Each case names the guard that must refuse it: a case refused by some later check instead would pass
# even with its own guard deleted.
REFUSALS = [
    ("dotdot", "member '../evil.txt' has an unsafe path"),
    ("absolute", "evil.txt' has an unsafe path"),
    ("symlink", "member '1_x/a.png' is a link, not a regular file"),
    ("hardlink", "member '1_x/a.png' is a link, not a regular file"),
    ("device", "member '1_x/a.png' is a device or FIFO, not a regular file"),
    ("extra", "member '1_x/b.png' is not in the manifest"),
    ("tampered", "1_x/a.png hashes to .*, the manifest says"),
    ("missing", "1 file.s. of the manifest are missing, e.g. 1_x/a.txt"),
    ("unsafe-manifest", "the manifest lists an unsafe path '../outside.txt'"),
    ("wrong-id", "the manifest does not hash to snapshot 000000000000"),
]


@pytest.mark.parametrize(("case", "refusal"), REFUSALS, ids=[case for case, _ in REFUSALS])
def test_extract_refuses_unsafe_or_tampered_archives(tmp_path: Path, case: str, refusal: str):
    good = {"1_x/a.png": b"image", "1_x/a.txt": b"caption"}
    manifest = _manifest(good)
    members = [_file("manifest.json", manifest), *(_file(p, d) for p, d in good.items())]
    if case == "dotdot":
        members.append(_file("../evil.txt", b"x"))
    elif case == "absolute":
        members.append(_file(str(tmp_path / "evil.txt"), b"x"))
    elif case == "symlink":
        members.insert(1, _link("1_x/a.png", "/etc/passwd"))
    elif case == "hardlink":
        members.insert(1, _link("1_x/a.png", "1_x/a.txt", tarfile.LNKTYPE))
    elif case == "device":
        members.insert(1, _link("1_x/a.png", "", tarfile.CHRTYPE))
    elif case == "extra":
        members.append(_file("1_x/b.png", b"more"))
    elif case == "tampered":
        members[1] = _file("1_x/a.png", b"IMAGE")
    elif case == "missing":
        members.pop()
    elif case == "unsafe-manifest":
        manifest = _manifest({"../outside.txt": b"x"})
        members = [_file("manifest.json", manifest), _file("../outside.txt", b"x")]
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar(members))
    dest = tmp_path / "dest"
    dest.mkdir()
    snapshot_id = "0" * 64 if case == "wrong-id" else hashlib.sha256(manifest).hexdigest()
    with pytest.raises(ArchiveError, match=refusal):
        extract_archive(archive, dest, snapshot_id)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "outside.txt").exists()
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    if case == "wrong-id":
        assert list(dest.iterdir()) == []


def test_extract_accepts_a_good_archive(tmp_path: Path):
    good = {"1_x/a.png": b"image", "1_x/a.txt": b"caption"}
    manifest = _manifest(good)
    archive = tmp_path / "a.tar"
    archive.write_bytes(_tar([_file("manifest.json", manifest), *(_file(p, d) for p, d in good.items())]))
    (tmp_path / "dest").mkdir()
    extract_archive(archive, tmp_path / "dest", hashlib.sha256(manifest).hexdigest())
    assert tree(tmp_path / "dest") == {**good, "manifest.json": manifest}


# ---- CLI -----------------------------------------------------------------------------------------------------


def run(db_url: str, *args: str):
    return CliRunner().invoke(cli, ["--database", db_url, *args], catch_exceptions=False)


def test_cli_dataset_commands(db_url: str, tmp_path: Path, example_copy: Path):
    store = str(tmp_path / "store")
    first = run(db_url, "dataset", "snapshot", str(example_copy), "--label", "plain", "--store", store)
    assert first.exit_code == 0, first.output
    snapshot_id, version_id = ids(example_copy)
    assert f"snapshot  {snapshot_id}" in first.output and "recorded  new snapshot" in first.output
    assert f"captions  {version_id} (plain)" in first.output and "10_bespoke_punk x10" in first.output
    second = json.loads(run(db_url, "dataset", "snapshot", str(example_copy), "--store", store, "--json").output)
    assert second["created"] is False and second["snapshot"]["id"] == snapshot_id
    listed = json.loads(run(db_url, "dataset", "list", "--json").output)
    assert [r["id"] for r in listed] == [snapshot_id]
    assert "plain" in run(db_url, "dataset", "list").output
    shown = json.loads(run(db_url, "dataset", "show", snapshot_id[:8], "--json").output)
    assert shown["label"] == "plain" and len(shown["images"]) == 24
    table = run(db_url, "dataset", "show", "plain", "--images")
    assert table.exit_code == 0 and "lady_12.png" in table.output and "10_bespoke_punk" in table.output
    out = tmp_path / "out"
    materialized = run(db_url, "dataset", "materialize", "plain", str(out), "--store", store)
    assert materialized.exit_code == 0 and "every hash verified" in materialized.output
    assert f"--train_data_dir {out} --caption_extension .txt" in materialized.output
    refused = run(db_url, "dataset", "materialize", "plain", str(out), "--store", store)
    assert refused.exit_code == 1 and refused.output.strip() == (
        f"Error: {out}: folder is not empty (hint: give a new or empty folder, or --force to replace its contents)")
    forced = json.loads(run(db_url, "dataset", "materialize", "plain", str(out), "--store", store, "--force",
                            "--json").output)
    assert forced["files"] == 48


def test_cli_snapshot_errors_are_one_line(db_url: str, tmp_path: Path, example_copy: Path):
    (example_copy / SUBSET / "lad_04.png").write_text("not an image")
    result = run(db_url, "dataset", "snapshot", str(example_copy), "--store", str(tmp_path / "store"))
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and line.startswith(f"Error: {example_copy / SUBSET / 'lad_04.png'}: not an image")
    missing = run(db_url, "dataset", "materialize", "nope", str(tmp_path / "x"))
    assert missing.exit_code == 2 and "no dataset snapshot 'nope'" in missing.output


def test_cli_snapshot_default_store_and_warnings(db_url: str, example_copy: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_STORE", str(tmp_path / "env-store"))
    (example_copy / "not_a_subset").mkdir()
    result = CliRunner().invoke(cli, ["--database", db_url, "dataset", "snapshot", str(example_copy)])
    assert result.exit_code == 0
    assert "warning:" in result.output and "not_a_subset: folder without a repeat count" in result.output
    assert (tmp_path / "env-store" / "sha256").is_dir()


def test_cli_example_command(tmp_path: Path):
    result = CliRunner().invoke(cli, ["dataset", "example", str(tmp_path / "ex"), "--captions", "hex"])
    assert result.exit_code == 0 and "24 images with hex captions" in result.output
    assert tree(tmp_path / "ex") == tree(EXAMPLE / "hex")

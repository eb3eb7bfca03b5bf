"""`orchestrator artifacts put|get|ls|url` through click's CliRunner, on file://, s3:// (moto) and supabase://
(the real Supabase Storage server): exact output, --json, one-line errors without secrets."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import requests
from artifact_fixtures import _fast_retries, _no_cloud_env, moto_endpoint, s3_uri, supabase  # noqa: F401
from click.testing import CliRunner

from orchestrator.artifacts.base import object_key
from orchestrator.cli import cli
from orchestrator.config import data_dir


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "lora.safetensors"
    path.write_bytes(os.urandom(4321))
    return path


@pytest.fixture(params=["file", "s3", "supabase"])
def store_uri(request, tmp_path) -> str:
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    if request.param == "s3":
        return request.getfixturevalue("s3_uri")
    request.getfixturevalue("supabase")
    return "supabase://checkpoints/cli"


def test_put_get_ls_url_on_every_backend(store_uri, sample, tmp_path):
    sha = hashlib.sha256(sample.read_bytes()).hexdigest()
    root, _, query = store_uri.partition("?")
    uri = f"{root}/{object_key(sha)}" + (f"?{query}" if query else "")

    put = run("artifacts", "put", str(sample), "--store", store_uri)
    assert put.exit_code == 0, put.output
    assert put.output == f"uri     {uri}\nsha256  {sha}\nsize    4321\n"
    again = run("artifacts", "put", str(sample), "--store", store_uri, "--json")
    assert json.loads(again.output) == {"uri": uri, "sha256": sha, "size": 4321}

    got = run("artifacts", "get", uri, str(tmp_path / "out" / "copy.safetensors"))
    assert got.exit_code == 0, got.output
    assert got.output == f"{tmp_path / 'out' / 'copy.safetensors'}\n"
    assert (tmp_path / "out" / "copy.safetensors").read_bytes() == sample.read_bytes()
    into_folder = run("artifacts", "get", uri, str(tmp_path / "out"), "--json")
    assert json.loads(into_folder.output) == {"uri": uri, "sha256": sha, "path": str(tmp_path / "out" / sha),
                                              "size": 4321}

    # the short form tables print (12 characters of the sha256), or sha256:<hash>, in the store named
    for short in (sha[:12], f"sha256:{sha}"):
        by_prefix = run("artifacts", "get", short, str(tmp_path / "short"), "--store", store_uri, "--json")
        assert by_prefix.exit_code == 0, by_prefix.output
        assert json.loads(by_prefix.output) == {"uri": uri, "sha256": sha, "path": str(tmp_path / "short"),
                                                "size": 4321}
        assert (tmp_path / "short").read_bytes() == sample.read_bytes()
        (tmp_path / "short").unlink()
    unknown = CliRunner().invoke(cli, ["artifacts", "get", "0000aaaa", str(tmp_path / "x"), "--store", store_uri])
    assert unknown.exit_code == 2 and unknown.stderr.startswith("Error: no artifact '0000aaaa' in ")
    assert "(hint: list them with `orchestrator artifacts ls`" in unknown.stderr
    not_hex = CliRunner().invoke(cli, ["artifacts", "get", "lora.safetensors", str(tmp_path / "x")])
    assert not_hex.exit_code == 1 and "is neither an artifact URI nor a sha256 prefix (hint: " in not_hex.stderr

    listed = run("artifacts", "ls", "--store", store_uri, "--json")
    assert json.loads(listed.output) == [{"uri": uri, "sha256": sha, "size": 4321}]
    table = run("artifacts", "ls", "--store", store_uri)
    assert table.exit_code == 0
    [row] = [line for line in table.output.splitlines() if sha[:12] in line]
    assert row.split("│")[1:4] == [f" {sha[:12]} ", " 4321 ", f" {uri} "]

    url = run("artifacts", "url", uri, "--expires", "60")
    assert url.exit_code == 0, url.output
    link = url.output.strip().splitlines()[0]
    if store_uri.startswith("file:"):
        assert link == (tmp_path / "store" / object_key(sha)).as_uri()
        assert "works on this machine only" in url.stderr
    else:
        assert requests.get(link, timeout=10).content == sample.read_bytes()
    as_json = json.loads(run("artifacts", "url", uri, "--json").output)
    assert as_json["uri"] == uri and as_json["expires"] == (None if store_uri.startswith("file:") else 3600)


def test_default_store_comes_from_the_environment(sample, tmp_path, monkeypatch):
    put = run("artifacts", "put", str(sample), "--json")
    assert json.loads(put.output)["uri"].startswith((data_dir() / "artifacts").as_uri() + "/sha256/")
    monkeypatch.setenv("ORCHESTRATOR_STORE", str(tmp_path / "team-store"))
    put = run("artifacts", "put", str(sample), "--json")
    assert json.loads(put.output)["uri"].startswith((tmp_path / "team-store").as_uri() + "/sha256/")
    assert len(json.loads(run("artifacts", "ls", "--json").output)) == 1


def test_supabase_url_passes_the_expiry(supabase, sample):
    uri = json.loads(run("artifacts", "put", str(sample), "--store", "supabase://b", "--json").output)["uri"]
    assert run("artifacts", "url", uri, "--expires", "75").exit_code == 0
    assert supabase.calls("POST", "/object/sign/")[-1].json == {"expiresIn": "75"}


def test_bad_credentials_print_one_line_naming_the_store(supabase, sample, monkeypatch):
    wrong = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.d3Jvbmctc2lnbmF0dXJlLWJ5dGVz"
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", wrong)
    result = run("artifacts", "put", str(sample), "--store", "supabase://checkpoints/runs")
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Error: supabase://checkpoints/runs at {supabase.url}/storage/v1: the server refused "
                               "the credentials")
    assert wrong not in result.output and "eyJ" not in result.output


@pytest.mark.parametrize("setting", ["SUPABASE_URL=server", "SUPABASE_STORAGE_URL=gateway"])
def test_a_wrong_supabase_endpoint_is_named_not_taken_for_an_empty_store(supabase, sample, monkeypatch, setting):
    """SUPABASE_URL at a server that serves the API at / (so /storage/v1 is no route there), or
    SUPABASE_STORAGE_URL at the gateway without /storage/v1: route 404s, not an empty store or a missing object."""
    uri = json.loads(run("artifacts", "put", str(sample), "--store", "supabase://checkpoints/cli",
                         "--json").output)["uri"]
    name, where = setting.split("=")
    monkeypatch.delenv("SUPABASE_URL")
    wrong = supabase.direct_url if where == "server" else supabase.url
    monkeypatch.setenv(name, wrong)
    endpoint = f"{wrong}/storage/v1" if name == "SUPABASE_URL" else wrong
    for args in (["artifacts", "ls", "--store", "supabase://checkpoints/cli"],
                 ["artifacts", "get", uri, str(sample.parent / "back")],
                 ["artifacts", "put", str(sample), "--store", "supabase://checkpoints/cli"]):
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        [line] = result.stderr.splitlines()
        assert line.startswith(f"Error: supabase://checkpoints/cli: no Supabase Storage API at {endpoint} (it "
                               f"answered HTTP 404 for {endpoint}/"), line
        assert "set SUPABASE_STORAGE_URL to that URL" in line and "no such artifact" not in line
        assert result.stdout == ""


def test_supabase_storage_url_reaches_a_server_serving_the_api_at_its_root(supabase, sample, monkeypatch):
    monkeypatch.delenv("SUPABASE_URL")
    monkeypatch.setenv("SUPABASE_STORAGE_URL", supabase.direct_url)
    put = run("artifacts", "put", str(sample), "--store", "supabase://checkpoints/cli", "--json")
    assert put.exit_code == 0, put.output
    listed = run("artifacts", "ls", "--store", "supabase://checkpoints/cli", "--json")
    assert [a["uri"] for a in json.loads(listed.output)] == [json.loads(put.output)["uri"]]


def test_s3_bad_credentials_print_one_line(s3_uri, sample, monkeypatch):
    from moto.core.authorization import enable_iam_authentication

    with enable_iam_authentication():
        result = run("artifacts", "ls", "--store", s3_uri)
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"Error: {s3_uri.split('?')[0]} at ") and "refused the credentials" in line
    assert "test-secret-access-key-do-not-show" not in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["artifacts", "put", "missing.bin"], "Error: missing.bin: no such file (hint: give the path of a file to store)"),
    (["artifacts", "ls", "--store", "ftp://host/x"], "Error: artifact store 'ftp://host/x' has an unknown scheme "
                                                     "'ftp' (hint: known schemes: file, s3, supabase)"),
    (["artifacts", "get", "file:///tmp/x/whatever.bin", "out"], "Error: 'file:///tmp/x/whatever.bin' is not a "
                                                                "content-addressed artifact URI"),
    (["artifacts", "ls", "--store", "s3://AKIAX:topsecret@bucket"], "Error: artifact store URI 's3://bucket' embeds "
                                                                    "credentials (a user/password part)"),
])
def test_errors_are_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code != 0
    [line] = result.stderr.splitlines()
    assert line.startswith(message)
    assert "topsecret" not in result.output


def test_missing_artifact_exits_2(tmp_path):
    store = (tmp_path / "store").as_uri()
    result = run("artifacts", "get", f"{store}/{object_key('0' * 64)}", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {store}/{object_key('0' * 64)}: no such artifact")

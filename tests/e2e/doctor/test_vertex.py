"""`gemini-guard doctor` for Vertex AI, against the emulator's Vertex surface on loopback.

The credentials are real files of the kinds Google hands out: a service account's JSON
key (a fresh RSA key, so google-auth signs a real JWT), named by
GOOGLE_APPLICATION_CREDENTIALS or placed where gcloud keeps application default
credentials, and the user login `gcloud auth application-default login` writes. A key's
`token_uri` is the emulator's OAuth endpoint, so the SDK exchanges it for a token the way
it does against Google; a user login is only read (google-auth sends its refresh to
Google whatever the file says), so its test runs with the endpoint refused. Nothing
leaves the machine.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gemini_guard.emulator import EmulatorServer
from tests.e2e.doctor.conftest import (
    SHORT_LOCATION,
    DoctorRun,
    _arguments,
    _command,
    _environment,
)
from tests.support.credentials import new_private_key, write_service_account

PROJECT = "doctor-project"
ROBOT = f"doctor@{PROJECT}.iam.gserviceaccount.com"
KEY_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4"
CLIENT_SECRET = "d-GOCSPX-client-secret-never-shown"
REFRESH_TOKEN = "1//0refresh-token-never-shown"
VERTEX_CHECKS = ("credentials", "project", "location", "sdk_version", "endpoint", "isolation")


@dataclass(frozen=True, slots=True)
class Files:
    service_account: Path
    adc_home: Path  # a HOME whose gcloud application default credentials are a key
    login_home: Path  # a HOME whose gcloud application default credentials are a user login
    empty_home: Path
    pem: str

    def secrets(self) -> list[str]:
        body = "".join(self.pem.splitlines()[1:-1])
        return [body[:40], body[-40:], KEY_ID, CLIENT_SECRET, REFRESH_TOKEN]


@pytest.fixture(scope="module")
def files(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("vertex")
    pem = new_private_key()
    service_account = write_service_account(
        root / "service-account.json",
        pem=pem,
        email=ROBOT,
        project=PROJECT,
        token_uri=emulator.base_url + "/token",
        key_id=KEY_ID,
    )
    # gcloud's ADC file may hold a service account too (`gcloud auth application-default
    # login --cred-file`): the one kind whose token_uri google-auth honours, so the test
    # call can run offline. A user login's refresh always goes to Google's own endpoint.
    adc_home = root / "adc-home"
    gcloud = adc_home / ".config" / "gcloud"
    gcloud.mkdir(parents=True)
    (gcloud / "application_default_credentials.json").write_text(service_account.read_text())
    login_home = root / "login-home"
    gcloud = login_home / ".config" / "gcloud"
    gcloud.mkdir(parents=True)
    (gcloud / "application_default_credentials.json").write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "764086051850-example.apps.googleusercontent.com",
                "client_secret": CLIENT_SECRET,
                "refresh_token": REFRESH_TOKEN,
            }
        )
    )
    empty_home = root / "empty-home"
    empty_home.mkdir()
    return Files(service_account, adc_home, login_home, empty_home, pem)


def _cases(files: Files, closed_port_url: str) -> dict[str, tuple[tuple[str, ...], dict[str, str]]]:
    """name -> (arguments, environment beyond PATH and HOME)."""
    account = {"GOOGLE_APPLICATION_CREDENTIALS": str(files.service_account)}
    place = {"GOOGLE_CLOUD_PROJECT": PROJECT, "GOOGLE_CLOUD_LOCATION": "us-central1"}
    short = {"GOOGLE_CLOUD_PROJECT": PROJECT, "GOOGLE_CLOUD_LOCATION": SHORT_LOCATION}
    auto = {"GOOGLE_GENAI_USE_VERTEXAI": "true"}  # as an app's environment turns Vertex on
    closed_root = closed_port_url.rsplit("/", 1)[0]
    return {
        "ok": (("--json", "--model", "gemini-2.5-flash-lite"), {**account, **place, **auto}),
        "adc": (("--json", "--vertex", "--project", "adc-project", "--location", "global"), {}),
        "no_credentials": (("--json", "--vertex"), place),
        "no_project": (("--json",), {**account, **auto, "GOOGLE_CLOUD_LOCATION": "global"}),
        "unreachable": (("--json", "--base-url", closed_root), {**account, **place, **auto}),
        "shared_quota": (("--json",), {**account, **auto, **short}),
        "no_model": (
            ("--json", "--isolation-model", "gemini-9-unreleased"), {**account, **place, **auto},
        ),
    }  # fmt: skip


@pytest.fixture(scope="module")
def runs(emulator: EmulatorServer, closed_port_url: str, files: Files) -> dict[str, DoctorRun]:
    """Every case as a real process, all launched at once."""
    processes = {}
    for name, (args, extra) in _cases(files, closed_port_url).items():
        home = files.adc_home if name == "adc" else files.empty_home
        processes[name] = subprocess.Popen(
            [*_command(), *_arguments(emulator.base_url, closed_port_url, args)],
            env=_environment(home, extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
    done = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=120)
        done[name] = DoctorRun(process.returncode, stdout, stderr)
    return done


def _no_secret_shown(run: DoctorRun, files: Files) -> None:
    for secret in files.secrets():
        assert secret not in run.stdout
        assert secret not in run.stderr


def _no_ai_studio_advice(check: dict[str, Any]) -> None:
    text = f"{check['detail']} {check['fix']}".lower()
    for studio in ("aistudio", "ai.dev", "api key", "gemini_api_key"):
        assert studio not in text, check


def test_a_service_account_project_and_location_pass(
    runs: dict[str, DoctorRun], emulator: EmulatorServer, files: Files
) -> None:
    run = runs["ok"]
    assert run.code == 0, run.stdout + run.stderr
    statuses = run.statuses()
    assert {name: statuses[name] for name in VERTEX_CHECKS} == dict.fromkeys(VERTEX_CHECKS, "ok")
    assert "api_key" not in statuses  # not Vertex's concerns
    assert "tier" not in statuses
    assert statuses["model:gemini-2.5-flash-lite"] == "ok"
    assert run.check("credentials")["detail"] == (
        f"service account {ROBOT}, from GOOGLE_APPLICATION_CREDENTIALS ({files.service_account})"
    )
    assert run.check("project")["detail"] == f"{PROJECT} (from GOOGLE_CLOUD_PROJECT)"
    assert run.check("location")["detail"] == "us-central1 (from GOOGLE_CLOUD_LOCATION)"
    assert run.check("isolation")["title"] == "Test call (Vertex AI)"
    call = run.check("isolation")["detail"]
    assert call.startswith("gemini-2.5-flash answered in"), call
    assert f"from {PROJECT}/us-central1" in call
    # The calls reached the Vertex surface, accounted to the project in its location.
    admitted = emulator.emulator.stats()["projects"][f"{PROJECT}@us-central1"]
    assert admitted["gemini-2.5-flash"]["admitted"] >= 1
    assert admitted["gemini-2.5-flash-lite"]["admitted"] >= 1
    _no_secret_shown(run, files)


def test_gclouds_application_default_credentials_are_found_and_named(
    runs: dict[str, DoctorRun], emulator: EmulatorServer, files: Files
) -> None:
    run = runs["adc"]
    assert run.code == 0, run.stdout + run.stderr
    adc = files.adc_home / ".config" / "gcloud" / "application_default_credentials.json"
    assert run.check("credentials")["detail"] == f"service account {ROBOT}, from gcloud ADC ({adc})"
    assert run.check("project")["detail"] == "adc-project (from --option)"
    assert run.check("location")["detail"].startswith("global (from --option)")
    assert run.check("isolation")["status"] == "ok"
    assert emulator.emulator.stats()["projects"]["adc-project@global"]
    _no_secret_shown(run, files)


def test_a_gcloud_user_login_is_named_and_its_secrets_are_not_shown(
    doctor: Any, files: Files, closed_port_url: str
) -> None:
    # The endpoint refuses, so no token is asked of Google for this login.
    run = doctor(
        "--json", "--vertex", "--project", PROJECT, "--location", "global",
        env={"HOME": str(files.login_home)},
        base_url=closed_port_url.rsplit("/", 1)[0],
    )  # fmt: skip
    adc = files.login_home / ".config" / "gcloud" / "application_default_credentials.json"
    assert run.check("credentials") == {
        "name": "credentials",
        "status": "ok",
        "title": "Credentials",
        "detail": f"your gcloud user login, from gcloud ADC ({adc})",
        "fix": None,
    }
    assert run.check("isolation")["status"] == "skip"
    _no_secret_shown(run, files)


def test_no_credentials_fails_once_with_both_ways_to_get_them(runs: dict[str, DoctorRun]) -> None:
    run = runs["no_credentials"]
    assert run.code == 1, run.stdout + run.stderr
    assert run.report["failed"] == 1
    check = run.check("credentials")
    assert check["status"] == "fail"
    assert "GOOGLE_APPLICATION_CREDENTIALS is not set" in check["detail"]
    assert "application_default_credentials.json" in check["detail"]
    assert "gcloud auth application-default login" in check["fix"]
    assert "export GOOGLE_APPLICATION_CREDENTIALS=" in check["fix"]
    assert run.check("isolation") == {
        "name": "isolation",
        "status": "skip",
        "title": "Test call (Vertex AI)",
        "detail": "skipped: no usable credentials",
        "fix": None,
    }


def test_no_project_fails_and_suggests_the_one_the_key_names(
    runs: dict[str, DoctorRun], files: Files
) -> None:
    run = runs["no_project"]
    assert run.code == 1, run.stdout + run.stderr
    assert run.statuses()["credentials"] == "ok"
    check = run.check("project")
    assert check["status"] == "fail"
    assert "GOOGLE_CLOUD_PROJECT is not set" in check["detail"]
    assert f"your credentials name {PROJECT}" in check["detail"]
    assert f"export GOOGLE_CLOUD_PROJECT={PROJECT}" in check["fix"]
    assert run.check("isolation")["detail"] == "skipped: no project"
    _no_secret_shown(run, files)


def test_an_unreachable_endpoint_fails_at_tcp_and_skips_the_test_call(
    runs: dict[str, DoctorRun],
) -> None:
    run = runs["unreachable"]
    assert run.code == 1, run.stdout + run.stderr
    check = run.check("endpoint")
    assert check["status"] == "fail"
    assert "TCP failed" in check["detail"]
    assert run.check("isolation")["detail"] == "skipped: the endpoint is unreachable"
    assert run.report["failed"] == 1


def test_a_shared_capacity_429_from_the_test_call_gets_vertex_advice(
    runs: dict[str, DoctorRun],
) -> None:
    run = runs["shared_quota"]
    check = run.check("isolation")
    assert check["status"] == "warn"  # a condition of the moment, not of the setup
    assert run.code == 0, run.stdout + run.stderr
    assert "Vertex AI: the shared capacity" in check["detail"]
    assert "(location='global')" in check["fix"]
    assert "Provisioned Throughput" in check["fix"]
    _no_ai_studio_advice(check)


def test_a_model_missing_from_the_location_fails_with_vertex_advice(
    runs: dict[str, DoctorRun],
) -> None:
    run = runs["no_model"]
    assert run.code == 1, run.stdout + run.stderr
    check = run.check("isolation")
    assert check["status"] == "fail"
    assert check["detail"].startswith("gemini-9-unreleased: 404 Publisher Model")
    assert "gemini-9-unreleased is not offered in us-central1" in check["fix"]
    assert "vertex-ai/generative-ai/docs/learn/locations" in check["fix"]
    _no_ai_studio_advice(check)


# --- in-process: each way a credentials file can be wrong -----------------------------------


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (None, "cannot be read (No such file or directory)"),
        ("not json {", "is not a JSON object"),
        (json.dumps({"client_email": ROBOT}), 'has no "type" field'),
        (
            json.dumps({"type": "service_account", "client_email": ROBOT, "token_uri": "x"}),
            "service_account without private_key",
        ),
        (
            json.dumps(
                {
                    "type": "service_account",
                    "client_email": ROBOT,
                    "token_uri": "https://oauth2.googleapis.com/token",
                    "private_key": "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n"
                    "-----END PRIVATE KEY-----\n",
                }
            ),
            "google-auth cannot load it",
        ),
        (
            json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": "s"}),
            "authorized_user without refresh_token",
        ),
    ],
    ids=["missing", "not-json", "no-type", "no-private-key", "bad-pem", "no-refresh-token"],
)
def test_a_bad_credentials_file_fails_naming_what_is_wrong(
    doctor: Any, tmp_path: Path, content: str | None, detail: str
) -> None:
    path = tmp_path / "key.json"
    if content is not None:
        path.write_text(content)
    run = doctor(
        "--json",
        "--vertex",
        env={
            "GOOGLE_APPLICATION_CREDENTIALS": str(path),
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "GOOGLE_CLOUD_LOCATION": "global",
        },
    )
    assert run.code == 1, run.stdout
    check = run.check("credentials")
    assert check["status"] == "fail"
    assert check["detail"].startswith(f"GOOGLE_APPLICATION_CREDENTIALS ({path}): {detail}")
    assert check["fix"]
    assert run.check("isolation")["status"] == "skip"
    assert "not base64" not in run.stdout


def test_a_location_that_is_not_one_fails(doctor: Any, files: Files) -> None:
    run = doctor(
        "--json", "--vertex", "--project", PROJECT, "--location", "US Central",
        env={"GOOGLE_APPLICATION_CREDENTIALS": str(files.service_account)},
    )  # fmt: skip
    assert run.code == 1, run.stdout
    assert run.check("location")["status"] == "fail"
    assert "'US Central' (from --option) is not a Vertex AI location" in run.stdout
    assert run.check("isolation")["detail"] == "skipped: the location is not valid"


def test_an_unset_location_warns_that_the_sdk_uses_global(doctor: Any, files: Files) -> None:
    run = doctor(
        "--json", "--vertex", "--project", PROJECT,
        env={"GOOGLE_APPLICATION_CREDENTIALS": str(files.service_account)},
    )  # fmt: skip
    assert run.code == 0, run.stdout
    check = run.check("location")
    assert check["status"] == "warn"
    assert check["detail"] == "GOOGLE_CLOUD_LOCATION is not set; google-genai uses global"
    assert run.check("isolation")["status"] == "ok"
    assert "from doctor-project/global" in run.check("isolation")["detail"]


def test_the_human_checklist_in_chinese_names_the_vertex_checks(doctor: Any, files: Files) -> None:
    run = doctor(
        "--lang", "zh", "--vertex", "--project", PROJECT, "--location", SHORT_LOCATION,
        env={"GOOGLE_APPLICATION_CREDENTIALS": str(files.service_account)},
    )  # fmt: skip
    assert run.code == 0, run.stdout
    assert f"服务账号 {ROBOT}，来自 GOOGLE_APPLICATION_CREDENTIALS" in run.stdout
    assert "测试调用（Vertex AI）" in run.stdout
    assert "该模型在此区域的共享容量不足" in run.stdout
    assert "预配吞吐量" in run.stdout

"""Legal gate: unapproved, disallowed, unknown, malformed and hostile manifests are refused with the fix."""
import shutil
from pathlib import Path

import pytest

from tasks.govern.legal import LegalGateError, gate_sources, load_policy, parse_manifest

from tests.conftest import REPO
POLICY = REPO / "data_contracts" / "policy.toml"
GOOD = (REPO / "data_contracts" / "sources" / "mitre_cwe.toml").read_text()


@pytest.fixture
def manifests(tmp_path):
    d = tmp_path / "sources"
    shutil.copytree(REPO / "data_contracts" / "sources", d)
    (tmp_path / "data").mkdir()
    return d


def _write(d: Path, sid: str, text: str) -> None:
    (d / f"{sid}.toml").write_text(text)


def test_demo_sources_are_approved(manifests, tmp_path):
    ok = gate_sources(["shakespeare", "mitre_cwe"], manifests, str(tmp_path / "data"), load_policy(POLICY), "commercial")
    assert [m.id for m in ok] == ["shakespeare", "mitre_cwe"]
    assert ok[1].license == "LicenseRef-scancode-cwe-tou" and ok[1].review_status == "approved"


def test_pending_review_is_refused(manifests, tmp_path):
    _write(manifests, "pend", GOOD.replace('id = "mitre_cwe"', 'id = "pend"').replace('status = "approved"', 'status = "pending"'))
    with pytest.raises(LegalGateError, match=r"'pend': legal review is 'pending'.*finish the review"):
        gate_sources(["pend"], manifests, str(tmp_path / "data"), load_policy(POLICY), "commercial")


def test_non_commercial_licence_refused_for_commercial_use_but_not_research(manifests, tmp_path):
    _write(manifests, "nc", GOOD.replace('id = "mitre_cwe"', 'id = "nc"').replace(
        'license = "LicenseRef-scancode-cwe-tou"', 'license = "CC-BY-NC-4.0"'))
    policy = load_policy(POLICY)
    with pytest.raises(LegalGateError, match=r"licence CC-BY-NC-4.0 \(non_commercial\) is not allowed for intended use 'commercial'"):
        gate_sources(["nc"], manifests, str(tmp_path / "data"), policy, "commercial")
    assert gate_sources(["nc"], manifests, str(tmp_path / "data"), policy, "research")[0].id == "nc"


def test_unknown_source_and_all_refusals_listed(manifests, tmp_path):
    _write(manifests, "rej", GOOD.replace('id = "mitre_cwe"', 'id = "rej"').replace('status = "approved"', 'status = "rejected"'))
    with pytest.raises(LegalGateError) as e:
        gate_sources(["ghost", "rej", "mitre_cwe"], manifests, str(tmp_path / "data"), load_policy(POLICY), "commercial")
    msg = str(e.value)
    assert "'ghost': unknown source" in msg and "'rej': legal review is 'rejected'" in msg
    assert "nothing was ingested" in msg and "mitre_cwe" not in msg


@pytest.mark.parametrize("uri, why", [
    ("../../etc", "outside the data root"),
    ("/etc/passwd", "outside the data root"),
    ("ftp://example.org/data", "scheme 'ftp' is not allowed"),
    ("s3://bucket/../secret", "contains '..'"),
])
def test_hostile_data_uris_are_refused(manifests, tmp_path, uri, why):
    _write(manifests, "evil", GOOD.replace('id = "mitre_cwe"', 'id = "evil"').replace('uri = "mitre_cwe"', f'uri = "{uri}"'))
    with pytest.raises(LegalGateError, match=why):
        parse_manifest(manifests / "evil.toml", str(tmp_path / "data"))


@pytest.mark.parametrize("mutate, why", [
    (lambda t: t.replace('license = "LicenseRef-scancode-cwe-tou"\n', ""), "missing required field"),
    (lambda t: t + "\n[[[broken", "not valid TOML"),
    (lambda t: t.replace('format = "jsonl"', 'format = "exe"'), "format 'exe'"),
    (lambda t: t.replace('status = "approved"', 'status = "maybe"'), r"\[review\].status"),
])
def test_malformed_manifests_are_refused(manifests, tmp_path, mutate, why):
    _write(manifests, "mitre_cwe", mutate(GOOD))
    with pytest.raises(LegalGateError, match=why):
        gate_sources(["mitre_cwe"], manifests, str(tmp_path / "data"), load_policy(POLICY), "commercial")


def test_a_source_outside_the_data_root_needs_its_folder_named_in_the_recipe(manifests, tmp_path):
    """The second study domain (vim_docs) reads a system package's folder: the gate passes it only when the recipe
    names that folder in [sources].extra_roots, and only for research (its licence is copyleft in the policy)."""
    policy = load_policy(POLICY)
    with pytest.raises(LegalGateError, match="extra_roots"):
        gate_sources(["vim_docs"], manifests, str(tmp_path / "data"), policy, "research")
    (ok,) = gate_sources(["vim_docs"], manifests, str(tmp_path / "data"), policy, "research",
                         extra_roots=("/usr/share/vim",))
    assert ok.data_uri == "/usr/share/vim/vim90/doc" and ok.domain == "vim" and ok.format == "text"
    with pytest.raises(LegalGateError, match="OPUBL-1.0"):
        gate_sources(["vim_docs"], manifests, str(tmp_path / "data"), policy, "commercial",
                     extra_roots=("/usr/share/vim",))

"""Cluster launch templates render to valid Slurm scripts and Kubernetes manifests."""
import yaml

from tasks.core.jobs import JobFailed, run_job
from tasks.train.launchers import render_pytorchjob, render_slurm


def test_slurm_script_runs_torchrun_on_every_node():
    text = render_slurm("pretrain", "/shared/run/pretrain.json", "/shared/run", nodes=4, procs_per_node=8,
                        time_limit="10-00:00:00", partition="gpu", account="proj", job_name="keel-pretrain-ab-1-x",
                        signal_lead_s=90, stop_timeout_s=80)
    directives = dict(line.split("=", 1) for line in text.splitlines() if line.startswith("#SBATCH --") and "=" in line)
    assert directives["#SBATCH --nodes"] == "4" and directives["#SBATCH --gpus-per-node"] == "8"
    assert directives["#SBATCH --partition"] == "gpu" and directives["#SBATCH --account"] == "proj"
    assert directives["#SBATCH --time"] == "10-00:00:00" and directives["#SBATCH --signal"] == "USR1@90"
    assert directives["#SBATCH --job-name"] == "keel-pretrain-ab-1-x"
    assert "--signals-to-handle=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1 --shutdown-timeout=80" in text
    cpu = render_slurm("pretrain", "/c.json", "/w", nodes=1, procs_per_node=2, time_limit="1:00:00", gpus_per_node=0)
    assert "--gpus-per-node" not in cpu and "--partition" not in cpu and "--account" not in cpu
    assert "--nnodes=4 --nproc_per_node=8" in text and "-m model.train --config /shared/run/pretrain.json" in text
    assert "$SLURM_JOB_ID" in text and "${" not in text


def test_pytorchjob_manifest_parses():
    doc = yaml.safe_load(render_pytorchjob("specialize", "/work/s.json", "/work", nodes=2, gpus_per_node=8,
                                           image="ghcr.io/example/keel:1", job_name="keel-specialize-1-abc",
                                           stop_timeout_s=100))
    assert doc["kind"] == "PyTorchJob" and doc["metadata"]["name"] == "keel-specialize-1-abc"
    specs = doc["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1 and specs["Worker"]["replicas"] == 1
    c = specs["Master"]["template"]["spec"]["containers"][0]
    assert c["image"] == "ghcr.io/example/keel:1" and c["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert c["command"][-2:] == ["--config", "/work/s.json"] and "--shutdown-timeout=100" in c["command"]
    assert specs["Master"]["template"]["spec"]["terminationGracePeriodSeconds"] == 130


def test_run_job_streams_lines_and_fails_with_the_tail():
    lines = []
    run_job(["python3", "-c", "print('hello'); print('world')"], lines.append, 30)
    assert lines == ["hello", "world"]
    try:
        run_job(["python3", "-c", "print('boom'); raise SystemExit(3)"], lines.append, 30)
    except JobFailed as exc:
        assert "exited with 3" in str(exc) and "boom" in str(exc)
    else:
        raise AssertionError("a failing job must raise")


# Values a hostile or careless recipe could put in a launch file.
PAYLOADS = ["x\nrm -rf pwned", "$(touch pwned)", "'; touch pwned #", "`touch pwned`", "a b", "ok\n",
            "x\n#SBATCH --uid=0", '"; touch pwned; "', "${job_name}", "x: {y: 1}\nkind: Pod", "/w/$(touch pwned)",
            "/w/a'b\"c;touch pwned", 4.5, True, -1, "7"]
SLURM_BASE = dict(kind="pretrain", config_path="/shared/run/job.json", work_dir="/shared/run", nodes=2,
                  procs_per_node=2, time_limit="1:00:00", partition="gpu", account="proj", python="/usr/bin/python3",
                  job_name="keel-pretrain-1", gpus_per_node=2, cpus_per_task=4, signal_lead_s=60, stop_timeout_s=60)


def _run_sbatch_script(text: str, cwd) -> list[str]:
    """Run a batch script under bash with srun/scontrol stand-ins; returns the argv srun was given."""
    import os
    import subprocess

    bin_dir = cwd / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text('#!/bin/bash\nprintf "%s\\0" "$@" > srun.args\n')
    (bin_dir / "scontrol").write_text("#!/bin/bash\necho node1\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    (cwd / "job.sbatch").write_text(text)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID="7", SLURM_JOB_NODELIST="node1")
    subprocess.run(["bash", "job.sbatch"], cwd=cwd, env=env, check=True, timeout=30)
    return (cwd / "srun.args").read_bytes().decode().split("\0")[:-1]


def test_every_slurm_field_rejects_or_neutralises_injection(tmp_path):
    base = render_slurm(**SLURM_BASE)
    base_directives = [line.split("=", 1)[0] for line in base.splitlines() if line.startswith("#SBATCH")]
    accepted = 0
    for field in SLURM_BASE:
        for payload in PAYLOADS:
            try:
                text = render_slurm(**dict(SLURM_BASE, **{field: payload}))
            except ValueError as exc:
                assert field in str(exc)
                continue
            accepted += 1
            directives = [line.split("=", 1)[0] for line in text.splitlines() if line.startswith("#SBATCH")]
            assert directives == base_directives, (field, payload)
            run = tmp_path / f"{field}-{accepted}"
            run.mkdir()
            argv = _run_sbatch_script(text, run)
            assert not list(tmp_path.rglob("pwned")), (field, payload)
            if field in ("config_path", "python"):  # taken verbatim, as one argument
                assert (argv[-1] if field == "config_path" else argv[1]) == payload
    assert accepted >= 4  # the paths in shell lines take any printable text, quoted


def test_every_pytorchjob_field_rejects_or_stays_one_value():
    base = dict(kind="specialize", config_path="/work/s.json", work_dir="/work", nodes=2, gpus_per_node=8,
                image="ghcr.io/example/keel:1", job_name="keel-specialize-1-abc", pvc="keel-work", stop_timeout_s=100)
    shape = _shape(yaml.safe_load(render_pytorchjob(**base)))
    accepted = 0
    for field in base:
        for payload in PAYLOADS:
            try:
                doc = yaml.safe_load(render_pytorchjob(**dict(base, **{field: payload})))
            except ValueError as exc:
                assert field in str(exc)
                continue
            accepted += 1
            assert _shape(doc) == shape, (field, payload)
            c = doc["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
            if field == "config_path":
                assert c["command"][-1] == payload
            if field == "work_dir":
                assert c["volumeMounts"][0]["mountPath"] == payload
    assert accepted >= 4


def _shape(node):
    if isinstance(node, dict):
        return {k: _shape(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_shape(v) for v in node]
    return type(node).__name__


def test_a_job_being_signalled_at_its_time_limit_is_followed_to_its_end(monkeypatch, tmp_path):
    """Slurm reports SIGNALING between RUNNING and TIMEOUT: the job has not ended, and TIMEOUT (resubmitted) is
    what the follower must return, not a failure 'SIGNALING without a result'."""
    from tasks.train import launchers

    states = iter([("RUNNING", ""), ("SIGNALING", ""), ("COMPLETING", ""), ("TIMEOUT", "0:15")])
    monkeypatch.setattr(launchers, "slurm_state", lambda job_id: next(states))
    monkeypatch.setattr(launchers, "POLL_S", 0.0)
    out = launchers._follow_slurm("7", launchers._LogTail(tmp_path / "slurm-7.log", print), float("inf"), None, 5.0)
    assert out.state == "TIMEOUT" and out.state in launchers.RESUBMIT

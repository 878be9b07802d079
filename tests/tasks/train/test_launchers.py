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

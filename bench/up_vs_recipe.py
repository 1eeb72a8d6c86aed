#!/usr/bin/env python3
"""Benchmark: `pulumi up` of a tfbox stack from nothing until the notebook answers, against the
recipe done by hand as a script with the same image (`docker run -d ...`, then
`docker exec ... tensorboard --logdir ... --bind_all`, then polling until both answer).

The image is on the daemon before any timed run, so neither side pays for a pull. tfbox's side
is timed twice: until the notebook and TensorBoard answer (polled while `up` runs), and until
`pulumi up` returns (it waits until both answer: components/docker/ready.py). Between runs the stack is
destroyed and its volumes removed, so every `up` starts from nothing.

A replacement (what an image or GPU change does to the notebook) is timed too: `pulumi up
--replace` of the notebook container until `up` returns, against the recipe's restart
(`docker rm -f`, `docker run`, `docker exec tensorboard`) until both answer.

    bench/up_vs_recipe.py [-n RUNS] [--docker-host unix://...] [--image REF]
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import arguments, log, report, setup, wait_answering
from tests.e2e.harness import Docker, Project, free_port, http_get

RECIPE = "tfbox-bench-recipe"


def tfbox_run(project: Project, stack: str, nb_port: int, tb_port: int) -> tuple[float, float]:
    """Seconds from `pulumi up` start until both answer, and until `up` returns."""
    cmd = ["pulumi", "--non-interactive", "up", "--yes", "--skip-preview", "--stack", stack]
    t0 = time.monotonic()
    with subprocess.Popen(cmd, cwd=project.dir, env=project.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        answered = max(wait_answering(f"http://127.0.0.1:{nb_port}/api"), wait_answering(f"http://127.0.0.1:{tb_port}/data/logdir"))
        out, _ = proc.communicate(timeout=900)
        done = time.monotonic()
    if proc.returncode != 0:
        raise SystemExit(f"pulumi up failed:\n{out[-4000:]}")
    return answered - t0, done - t0


def tfbox_replace(project: Project, stack: str, nb_port: int, tb_port: int) -> float:
    """Seconds for `pulumi up --replace <the notebook container>` to return; both must answer then."""
    state = json.loads(project.pulumi("stack", "export", "--stack", stack).stdout)
    urn = next(r["urn"] for r in state["deployment"]["resources"]
               if r["type"] == "docker:index/container:Container" and r["urn"].endswith("::notebook"))
    t0 = time.monotonic()
    project.pulumi("up", "--yes", "--skip-preview", "--replace", urn, "--stack", stack)
    took = time.monotonic() - t0
    for url in (f"http://127.0.0.1:{nb_port}/api", f"http://127.0.0.1:{tb_port}/data/logdir"):
        if http_get(url, timeout=5)[0] not in (200, 302):
            raise SystemExit(f"{url} did not answer when `up --replace` returned")
    return took


def recipe_restart(docker: Docker, image: str, nb_port: int, tb_port: int) -> float:
    """The recipe's restart with a new container: remove it, then its two commands and polling."""
    t0 = time.monotonic()
    docker("rm", "-f", RECIPE)
    return recipe_run(docker, image, nb_port, tb_port, t0)


def recipe_run(docker: Docker, image: str, nb_port: int, tb_port: int, t0: float | None = None) -> float:
    """The recipe's two commands and polling, as a user's script would do them."""
    t0 = time.monotonic() if t0 is None else t0
    docker("run", "-d", "--name", RECIPE, "-e", f"PASSWORD={secrets.token_urlsafe(12)}",
           "-p", f"127.0.0.1:{nb_port}:8888", "-p", f"127.0.0.1:{tb_port}:6006", image)
    docker("exec", "-d", RECIPE, "tensorboard", "--logdir", "/tf/logs", "--bind_all")
    answered = max(wait_answering(f"http://127.0.0.1:{nb_port}/api"), wait_answering(f"http://127.0.0.1:{tb_port}/data/logdir"))
    return answered - t0


def main() -> None:
    args = arguments(__doc__ or "")
    with setup(args) as s:
        project = s.project("up")
        nb_port, tb_port = free_port(), free_port()
        stack = project.stack("bench", {
            "docker:host": s.docker.host, "tfbox:image": s.image,
            "tfbox:notebookPort": nb_port, "tfbox:tensorboardPort": tb_port,
        }, "bench-" + secrets.token_urlsafe(12))
        answer_times: list[float] = []
        up_times: list[float] = []
        recipe_times: list[float] = []
        replace_times: list[float] = []
        restart_times: list[float] = []
        try:
            for i in range(args.runs):
                # alternate which side goes first, so neither always runs on a warmer host
                order = ("tfbox", "recipe") if i % 2 == 0 else ("recipe", "tfbox")
                for side in order:
                    if side == "tfbox":
                        answered, returned = tfbox_run(project, stack.name, nb_port, tb_port)
                        answer_times.append(answered)
                        up_times.append(returned)
                        log(f"run {i + 1}: pulumi up: answering after {answered:.2f} s, returned after {returned:.2f} s")
                        replace_times.append(tfbox_replace(project, stack.name, nb_port, tb_port))
                        log(f"run {i + 1}: pulumi up --replace notebook: returned after {replace_times[-1]:.2f} s")
                        stack.destroy()
                        for vol in ("tfbox-bench-notebooks", "tfbox-bench-logs"):
                            s.docker("volume", "rm", vol)
                    else:
                        recipe_times.append(recipe_run(s.docker, s.image, nb_port, tb_port))
                        log(f"run {i + 1}: recipe: answering after {recipe_times[-1]:.2f} s")
                        restart_times.append(recipe_restart(s.docker, s.image, nb_port, tb_port))
                        log(f"run {i + 1}: recipe restart: answering after {restart_times[-1]:.2f} s")
                        s.docker("rm", "-f", "-v", RECIPE)
        finally:
            stack.destroy(check=False)
            s.docker("rm", "-f", "-v", RECIPE, check=False)
            for vol in ("tfbox-bench-notebooks", "tfbox-bench-logs"):
                s.docker("volume", "rm", vol, check=False)
        report("pulumi up from nothing vs the recipe by hand (same image, already pulled)", [
            ("recipe: docker run + exec tensorboard, answering", recipe_times),
            ("tfbox: pulumi up start -> both answer", answer_times),
            ("tfbox: pulumi up start -> up returns", up_times),
            ("recipe restart: rm -f + run + exec, answering", restart_times),
            ("tfbox: up --replace notebook -> up returns", replace_times),
        ], [
            ("ratio: tfbox answering / recipe", "tfbox: pulumi up start -> both answer", "recipe: docker run + exec tensorboard, answering"),
            ("ratio: tfbox up returned / recipe", "tfbox: pulumi up start -> up returns", "recipe: docker run + exec tensorboard, answering"),
            ("ratio: tfbox replace / recipe restart", "tfbox: up --replace notebook -> up returns", "recipe restart: rm -f + run + exec, answering"),
        ], args.runs)


if __name__ == "__main__":
    main()

"""Where a comparison's runs execute, on this machine: `compare.workers` runs at a time.

A run goes to a long-lived worker process (comparison/worker.py), which pays the imports of torch, Lightning and W&B
once and then runs fit after fit in-process; a run that starts several processes itself (DDP: its strategy,
devices or nodes say so) gets a `python -m skilltrain fit` process of its own. Each run's output goes to
`<comparison>/logs/<arm>-seed<s>.log`. Every process runs in its own session, so that a Ctrl-C in the terminal
reaches only `compare`, which then stops each running fit once, cleanly, at its next step.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import queue
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from skilltrain.comparison.plan import ENDED, Plan, Run, next_command, settle, settle_finished

PR_SET_PDEATHSIG = 1  # linux/prctl.h


class Worker:
    """One worker process (comparison/worker.py): requests on its stdin, answers (and signs of life) on a pipe of its own."""

    def __init__(self, env: dict, log: Path, reply_timeout: float = 600.0):
        read, write = os.pipe()
        with open(log, "a") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "skilltrain.comparison.worker", str(write)],
                                         stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, pass_fds=(write,),
                                         env=env, text=True, start_new_session=True)
        os.close(write)
        self.replies = read
        self.pending = b""
        self.reply_timeout = reply_timeout  # seconds without a word, or without progress, before it counts as hung
        self.why = ""  # why the last run got no exit code

    def _line(self) -> bytes | None:
        """The worker's next line, or None when it ended or said nothing for `reply_timeout` seconds."""
        while b"\n" not in self.pending:
            ready, _, _ = select.select([self.replies], [], [], self.reply_timeout)
            if not ready:
                self.why = f"its worker stopped answering (no sign of life for {self.reply_timeout:.0f} s, " \
                           "compare.reply_timeout): killed"
                self.kill()
                return None
            chunk = os.read(self.replies, 65536)
            if not chunk:
                self.why = "its worker process died"
                return None
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return line

    def run(self, command: list, log: Path) -> int | list[int] | None:
        """The exit code of `command` (["fit", *args] or ["theory", *args]; or ["fit_stack", args1, args2, …]: the
        exit code of each), or None when the worker died, stopped answering, or its fit made no progress (a step, an
        evaluation batch, a checkpoint) for `reply_timeout` seconds (`why` says which; it is then of no further use)."""
        heartbeat = max(0.05, min(30.0, self.reply_timeout / 4))
        try:
            self.proc.stdin.write(json.dumps({"command": command[0], "args": command[1:], "log": str(log),
                                              "heartbeat": heartbeat}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.why = "its worker process died"
            return None
        while (line := self._line()) is not None:
            answer = json.loads(line)
            if "exit" in answer:
                return answer["exit"]
            if answer.get("idle", 0) > self.reply_timeout:  # alive, but the fit is stuck (inside a step)
                self.why = f"no progress for {self.reply_timeout / 60:.3g} minutes (compare.reply_timeout): killed"
                self.kill()
                return None
        return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=30)

    def finish(self) -> None:
        """End of requests: the worker returns (without waiting for it: `close` does)."""
        with contextlib.suppress(Exception):
            self.proc.stdin.close()

    def close(self) -> None:
        self.finish()
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=30)
        if self.proc.poll() is None:
            self.kill()
        with contextlib.suppress(OSError):
            os.close(self.replies)


def _die_with_parent() -> None:
    """In a run's own process (DDP), before it starts: on Linux, SIGTERM when `compare` dies (a clean stop)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Runner:
    """Runs the planned fits, `compare.workers` at a time, with a progress display; Ctrl-C stops them cleanly."""

    def __init__(self, plan: Plan, show: bool = True):
        self.plan, self.show = plan, show
        self.threads = max(1, (os.cpu_count() or 1) // plan.settings.workers)
        self.env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads),
                    "SKILLTRAIN_MAX_THREADS": str(self.threads)}  # trainer.threads=auto takes no more than its share
        self.running: dict[int, subprocess.Popen] = {}  # pid → the process a run is in (a worker or its own)
        self.idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        self.workers: list[Worker] = []
        self.lock = threading.Lock()
        self.stopping = False
        self.logs = plan.directory / "logs"

    def _worker(self) -> Worker:
        with contextlib.suppress(queue.Empty):
            return self.idle.get_nowait()
        worker = Worker(self.env, self.logs / f"worker{len(self.workers)}.log", 60 * self.plan.settings.reply_timeout)
        self.workers.append(worker)
        return worker

    def run_one(self, run: Run, command: list[str], log_path: Path) -> None:
        with open(log_path, "a") as log:  # a rerun appends: an earlier attempt's error stays readable
            log.write(f"{'=' * 30} {time.strftime('%Y-%m-%d %H:%M:%S')} · python -m skilltrain {shlex.join(command)}\n")
        with self.lock:  # no run starts once stopping began, and every started run is known to `stop`
            if self.stopping:
                return
            worker = None if run.own_process else self._worker()
            if worker is None:
                with open(log_path, "a") as log:
                    proc = subprocess.Popen([sys.executable, "-m", "skilltrain", *command], stdout=log,
                                            stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
                                            preexec_fn=_die_with_parent if sys.platform == "linux" else None)
            else:
                proc = worker.proc
            self.running[proc.pid] = proc
        if worker is None:
            code = proc.wait()
        else:
            code = worker.run(command, log_path)
        with self.lock:
            self.running.pop(proc.pid, None)
        if worker is not None:
            if code is not None and worker.alive():
                self.idle.put(worker)
            else:
                worker.close()  # it crashed, or ended itself after a crash: a fresh one serves the next run
        self._record(run, code, log_path, worker.why if worker is not None and code is None else "")

    def run_stacked(self, runs: list[Run], commands: list[list[str]]) -> None:
        """One arm's seeds in one worker, trained together (skilltrain.stacking; or one after another, when they
        cannot be stacked: its log says why). Their output goes to one log; what this attempt wrote there is copied
        into each run's own log."""
        group_log = self.logs / f"{runs[0].arm}-stacked-seeds.log"
        start = group_log.stat().st_size if group_log.exists() else 0
        with open(group_log, "a") as log:
            log.write(f"{'=' * 30} {time.strftime('%Y-%m-%d %H:%M:%S')} · seeds {', '.join(str(r.seed) for r in runs)} "
                      f"stacked (compare.stack_seeds=true)\n")
            for command in commands:
                log.write(f"    python -m skilltrain {shlex.join(command)}\n")
        with self.lock:
            if self.stopping:
                return
            worker = self._worker()
            self.running[worker.proc.pid] = worker.proc
        codes = worker.run(["fit_stack", *[command[1:] for command in commands]], group_log)
        with self.lock:
            self.running.pop(worker.proc.pid, None)
        if codes is not None and not (isinstance(codes, list) and len(codes) == len(runs)):
            worker.why, codes = f"its worker answered {str(codes)[:80]} for {len(runs)} seeds", None
        if codes is not None and worker.alive():
            self.idle.put(worker)
        else:
            worker.close()
        with open(group_log, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        lines = [line for line in text.splitlines() if line.strip()]
        for i, run in enumerate(runs):
            log_path = self.logs / f"{run.arm}-seed{run.seed}.log"
            with open(log_path, "a") as log:
                log.write(f"{'=' * 30} trained stacked with seeds {', '.join(str(r.seed) for r in runs)}: the "
                          f"shared log ({group_log.name}) follows\n{text}")
                if codes is not None:
                    log.write(f"seed {run.seed}: exit code {codes[i]}\n")
            if codes is None and settle_finished(run):  # it had finished before its worker died
                continue
            mine = [line for line in lines if f"seed {run.seed}:" in line] or [f"its output is in {group_log.name}"]
            self._record(run, None if codes is None else codes[i], log_path, worker.why if codes is None else "",
                         tail=mine[-1])

    @staticmethod
    def _record(run: Run, code: int | None, log_path: Path, why: str = "", tail: str | None = None) -> None:
        """How the run ended: its exit first (a failure now is never hidden by the summary of an earlier attempt),
        then its summary. The note ends with `tail`, by default the last line of its log."""
        if code in ENDED and settle(run, "stopped (rerun the command to resume it)"):
            return
        if tail is None:
            tail = ([line for line in log_path.read_text().splitlines() if line.strip()][-1:] or ["no output"])[0]
        what = why or ("its worker process died" if code is None else f"exit code {code}")
        run.state, run.note = "failed", f"{what}: {tail[:200]}"

    def run(self) -> bool:
        """Run what is left; True when every run finished (completed or diverged)."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.logs.mkdir(parents=True, exist_ok=True)
        todo = []
        for run in self.plan.runs:
            command = next_command(run)
            if command:
                todo.append((run, command))
            else:
                run.state, run.note = "done", "finished earlier"
        done_before = len(self.plan.runs) - len(todo)
        print(f"{done_before} runs finished earlier (kept), {len(todo)} to run", file=sys.stderr, flush=True)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        try:
            with Progress(*columns, transient=False, disable=not self.show) as progress:
                task = progress.add_task("runs", total=len(self.plan.runs), completed=done_before)
                with ThreadPoolExecutor(max_workers=self.plan.settings.workers) as pool:
                    futures = []
                    for group in self._groups(todo):
                        if len(group) > 1:
                            futures.append(pool.submit(self.run_stacked, [r for r, _ in group], [c for _, c in group]))
                        else:
                            run, cmd = group[0]
                            futures.append(pool.submit(self.run_one, run, cmd, self.logs / f"{run.arm}-seed{run.seed}.log"))
                    try:
                        pending = set(futures)
                        while pending:
                            finished = {f for f in pending if f.done()}
                            for f in finished:
                                f.result()
                            progress.update(task, completed=sum(r.state != "pending" for r in self.plan.runs))
                            pending -= finished
                            failed = sum(r.state == "failed" for r in self.plan.runs)
                            diverged = sum(r.note == "diverged" for r in self.plan.runs)
                            progress.update(task, description=f"runs · {len(self.running)} running · {diverged} "
                                                              f"diverged · {failed} failed")
                            time.sleep(0.2)
                    except KeyboardInterrupt:
                        self.stop()
                        for f in futures:
                            f.cancel()
                        raise
        finally:
            for worker in self.workers:
                worker.finish()  # all end at once, not one after another
            for worker in self.workers:
                worker.close()
        return all(r.state == "done" for r in self.plan.runs)

    def _groups(self, todo: list[tuple[Run, list[str]]]) -> list[list[tuple[Run, list[str]]]]:
        """What each worker request runs: one run; or, with compare.stack_seeds=true, an arm's seeds (its fits in
        shared workers) together."""
        if not self.plan.settings.stack_seeds:
            return [[item] for item in todo]
        groups: dict[str, list] = {}
        alone = []
        for run, command in todo:
            if command[0] == "fit" and not run.own_process:
                groups.setdefault(run.arm, []).append((run, command))
            else:
                alone.append([(run, command)])
        return [*groups.values(), *alone]

    def stop(self) -> None:
        """Ask every running fit (all its processes: DDP ranks too) to stop at its next step, and start no more."""
        print("\nstopping the running fits at their next step (their checkpoints are kept) …", file=sys.stderr)
        with self.lock:
            self.stopping = True
            for proc in self.running.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)

"""A long-lived worker process for `compare`: it pays the imports (torch, Lightning, W&B) once, then runs fits one after
another, each in this process, each as `python -m skilltrain fit <args>` would.

    python -m skilltrain.comparison.worker <reply fd>          (started by compare's launcher; not a user command)

Requests arrive on stdin, one JSON line each: {"command": "fit" | "theory", "args": [...], "log": path,
"heartbeat": seconds}; or {"command": "fit_stack", "args": [[...], [...], …], …}: one arm's seeds, trained together
(skilltrain.stacking), answered with one exit code per seed. For each, the worker points its standard output and
error (the file descriptors, so Lightning's and W&B's own writers too) at the run's log file, runs the
command, and answers on the reply pipe with one JSON line: {"exit": code}; while the run is under way it says
{"alive": true, "idle": seconds} every `heartbeat`
seconds, `idle` being the time since the fit last made progress (a training step, an evaluation batch, a checkpoint:
skilltrain.callbacks.run.heartbeat; counted from the start of the request). So the comparison tells a long run from
a worker that stopped answering and from a fit stuck inside a step (a deadlock: the worker's threads still answer,
nothing moves); it kills either after `compare.reply_timeout`, failing the run with the reason. A `theory` run
reports no `idle` (it has no steps to count).

A worker dies with the comparison that started it: when its parent process is gone (killed, crashed), the running
fit is stopped as by SIGTERM (at the end of a step, with a checkpoint) and the worker exits; an orphaned worker never
keeps training.

Nothing leaks from one run into the next: every fit seeds torch, numpy and Python's RNGs from its own seed, restores
the thread count, signal handlers and environment it changed, and finishes its W&B run; the worker restores the
process-wide torch settings Lightning may change (deterministic algorithms, cuDNN benchmark). A run that crashes (an
exception that is not a bad input) ends the worker after answering, so that no half-torn state serves another run;
the comparison starts a fresh worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback

GRACE = 60.0  # seconds a fit has to stop (and checkpoint) once the comparison is gone, before the worker exits anyway


@contextlib.contextmanager
def _output_to(path: str):
    """Standard output and error, at the file-descriptor level, into `path` (appended)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextlib.contextmanager
def _process_wide_torch_settings():
    """Restore what Lightning sets for the whole process when a run asks for it (`trainer.deterministic`,
    `trainer.benchmark`), so that the next run in this worker starts as in a fresh process."""
    import torch

    cudnn = torch.backends.cudnn
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             cudnn.benchmark, cudnn.deterministic, os.environ.get("CUBLAS_WORKSPACE_CONFIG"), torch.get_default_dtype())
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        cudnn.benchmark, cudnn.deterministic = saved[2], saved[3]
        if saved[4] is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[4]
        torch.set_default_dtype(saved[5])


def run_one(args: list, command: str = "fit") -> tuple[int | list[int], bool]:
    """(exit code, whether the worker may serve another run) of `fit <args>` (or another command), as the command
    line would end; for `fit_stack` (args: one argument list per seed), the exit code of each seed's fit."""
    from skilltrain.comparison.plan import run_in_process
    from skilltrain.errors import exit_status
    from skilltrain.stacking import stacked_fit_command

    try:
        with _process_wide_torch_settings():
            if command == "fit_stack":
                codes = stacked_fit_command(args)
                return codes, all(code in (0, 2, 3, 4, 130, 143) for code in codes)
            return run_in_process(command, args), True
    except SystemExit as e:
        code = exit_status(e)
        return ([code] * len(args) if command == "fit_stack" else code), True
    except BaseException:  # a crash (or a second Ctrl-C): report it, and let no other run share this state
        traceback.print_exc()
        return ([1] * len(args) if command == "fit_stack" else 1), False


def die_with_parent(poll: float = 0.5) -> None:
    """Stop this process when the one that started it is gone: SIGTERM to itself (a fit stops at the end of its
    step, with a checkpoint), then, after GRACE seconds, a hard exit. A daemon thread polls the parent's pid (portable;
    Linux's PR_SET_PDEATHSIG would follow the thread that started the worker, not the comparison)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(GRACE)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


class _Replies:
    """The reply pipe: answers, and while a run is under way a sign of life every `every` seconds."""

    def __init__(self, reply):
        self.reply, self.lock = reply, threading.Lock()

    def send(self, message: dict) -> None:
        with self.lock:
            self.reply.write(json.dumps(message) + "\n")
            self.reply.flush()

    @contextlib.contextmanager
    def alive_every(self, every: float | None, progress: bool = True):
        """Signs of life every `every` seconds while the block runs; with `progress`, each says how long the run has
        gone without progress."""
        from skilltrain.callbacks.run.heartbeat import made_progress, seconds_since_progress

        made_progress()  # the clock starts with the run
        done = threading.Event()

        def beat() -> None:
            while not done.wait(every):
                with contextlib.suppress(OSError, ValueError):
                    self.send({"alive": True, **({"idle": round(seconds_since_progress(), 2)} if progress else {})})

        thread = threading.Thread(target=beat, daemon=True) if every else None
        if thread:
            thread.start()
        try:
            yield
        finally:
            done.set()
            if thread:
                thread.join()


def serve(reply_fd: int) -> None:
    die_with_parent()
    import skilltrain.run  # noqa: F401  (the imports every run needs, paid once)

    try:
        with os.fdopen(reply_fd, "w") as reply:
            replies = _Replies(reply)
            for line in sys.stdin:
                request = json.loads(line)
                command = request.get("command", "fit")
                with _output_to(request["log"]), replies.alive_every(request.get("heartbeat"), command != "theory"):
                    code, healthy = run_one(request["args"], command)
                replies.send({"exit": code})
                if not healthy:
                    return
    except BrokenPipeError:  # the comparison is gone: nobody to answer
        return


if __name__ == "__main__":
    serve(int(sys.argv[1]))
    # Every run has written and closed all it keeps (atomically) and finished its W&B run: skip the interpreter's
    # teardown of torch and Lightning (about a second per worker, which the comparison would wait for).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

"""A comparison's runs as jobs on a cluster's scheduler, through submitit (`compare.launcher=submitit`).

The runs still to do are submitted as one job array (`compare.slurm.*`: partition, time, cpus_per_task,
gpus_per_task, mem, array_parallelism, additional_parameters); each job is one `fit`, writing into its run directory
in the comparison directory (which must be on a filesystem the nodes share). `compare` waits with a progress
display; the scheduler's logs are in `<comparison>/jobs/`, and `jobs.json` maps each run to its job: written before
the submission too (each run to be submitted as `{"submitting": <job name>, "at": <time>}`), so that a `compare`
killed while submitting never has its jobs submitted twice: the next one cancels what that name may have queued
(`scancel --name`) before submitting again. A job the scheduler lost (state UNKNOWN for `compare.slurm.lost_after`
minutes) is cancelled and its run failed, with the reason. A job warned
of its time limit stops with a checkpoint, and the next `compare` resumes it. Stopping
`compare` (Ctrl-C) leaves the jobs to the scheduler: run the same command again to wait for them and collect, and
to resubmit the runs whose jobs ended without finishing them.

`compare.slurm.cluster=local` runs the same submission on this machine (submitit's local executor): no SLURM needed,
which is how the tests exercise this path.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time

from skilltrain.comparison.plan import ENDED, Plan, Run, next_command, run_in_process, settle
from skilltrain.errors import UserError
from skilltrain.files import write_json


def fit_job(args: list[str], threads: int = 0, command: str = "fit") -> int:
    """What one job runs: `python -m skilltrain fit <args>` (or `theory <args>`), in the job's process; its exit code.

    `trainer.threads=auto` takes the job's cores (`threads`) exactly, not what a shared node's load leaves. SLURM
    warns a job before its time limit with SIGUSR2 (submitit asks for it 90 s ahead): the fit then stops as on SIGTERM,
    at the end of a step with a checkpoint, so that running `compare` again resumes the run instead of restarting it.
    """
    if threads:
        os.environ["SKILLTRAIN_MAX_THREADS"] = str(threads)
    signal.signal(signal.SIGUSR2, lambda signum, frame: os.kill(os.getpid(), signal.SIGTERM))
    return run_in_process(command, args)


class SubmititLauncher:
    def __init__(self, plan: Plan, show: bool = True):
        self.plan, self.show = plan, show
        self.folder = plan.directory / "jobs"
        self.record = plan.directory / "jobs.json"
        self.name = f"skilltrain-{plan.directory.name}-{secrets.token_hex(3)}"  # this submission's job name

    def _executor(self):
        try:
            import submitit
        except ImportError:
            raise UserError("compare.launcher: submitit is not installed (pip install 'skilltrain[slurm]')") from None
        s = self.plan.settings.slurm
        try:
            executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster=s.cluster)
        except RuntimeError as e:  # cluster=slurm asked for where there is no SLURM
            raise UserError(f"compare.slurm.cluster: {' '.join(str(e).split())[:300]}") from None
        parameters = {"name": self.name, "timeout_min": s.time, "cpus_per_task": s.cpus_per_task,
                      "gpus_per_node": s.gpus_per_task, "mem_gb": s.mem, "tasks_per_node": 1,
                      "slurm_partition": s.partition, "slurm_array_parallelism": s.array_parallelism,
                      "slurm_additional_parameters": dict(s.additional_parameters or {}) or None}
        try:
            executor.update_parameters(**{k: v for k, v in parameters.items() if v is not None})
        except (NameError, AssertionError, ValueError) as e:
            raise UserError(f"compare.slurm: {' '.join(str(e).split())[:300]}") from None
        return executor

    def run(self) -> bool:
        """Submit what is left (or wait for the jobs submitted before), then wait; True when every run finished."""
        for run in self.plan.runs:
            if run.own_process:
                raise UserError(f"compare.launcher=submitit runs each fit as one task; arm {run.arm} asks for several "
                                "processes (DDP): run it with compare.launcher=local, or on one device")
        executor = self._executor()
        recorded = json.loads(self.record.read_text()) if self.record.is_file() else {}
        self._cancel_interrupted_submissions(executor, recorded)
        jobs, submit = {}, []
        for run in self.plan.runs:
            key = f"{run.arm}/seed{run.seed}"
            command = next_command(run)
            if not command:
                run.state, run.note = "done", "finished earlier"
            elif isinstance(recorded.get(key), str) and not self._job(executor, recorded[key]).done():
                jobs[key] = self._job(executor, recorded[key])  # still queued or running: wait for it
            else:
                submit.append((key, run, command))
        threads = self.plan.settings.slurm.cpus_per_task
        if submit:  # the intent first: a kill during the submission leaves a trace the next command acts on
            intent = {"submitting": self.name, "at": time.strftime("%Y-%m-%d %H:%M:%S")}
            write_json(self.record, {**recorded, **{key: intent for key, _, _ in submit}}, indent=1)
        try:
            with executor.batch():  # one job array
                submitted = [(key, executor.submit(fit_job, command[1:], threads, command[0])) for key, _, command in submit]
        except Exception as e:  # the scheduler refused the array (partition, account, an sbatch option)
            if type(e).__name__ != "FailedJobError":
                raise
            raise UserError(f"compare.slurm: the scheduler refused the jobs: {' '.join(str(e).split())[-300:]}") from None
        jobs.update(submitted)
        recorded.update({key: job.job_id for key, job in submitted})
        write_json(self.record, recorded, indent=1)
        print(f"{sum(r.state == 'done' for r in self.plan.runs)} runs finished earlier (kept), {len(submitted)} "
              f"submitted, {len(jobs) - len(submitted)} waited for · logs in {self.folder}", file=sys.stderr, flush=True)
        lost = self._wait(jobs)
        runs = {f"{r.arm}/seed{r.seed}": r for r in self.plan.runs}
        for key, job in jobs.items():
            self._record(runs[key], job, lost.get(key))
        return all(r.state == "done" for r in self.plan.runs)

    def _cancel_interrupted_submissions(self, executor, recorded: dict) -> None:
        """Runs recorded as being submitted, without a job: a `compare` was killed during their submission, and the
        jobs may be queued. Cancel whatever carries that submission's name, so that resubmitting never runs a fit
        twice."""
        names = sorted({v["submitting"] for v in recorded.values() if isinstance(v, dict) and "submitting" in v})
        for name in names:
            print(f"note: a previous compare was stopped while submitting jobs named {name}; cancelling any that "
                  "reached the scheduler before submitting them again", file=sys.stderr)
            if executor.cluster == "slurm":
                cancel_by_name(name)

    @staticmethod
    def _state(job) -> str:
        return str(job.state)

    @staticmethod
    def _still_queued(job) -> bool:
        """Whether SLURM's queue still lists the job (submitit reports UNKNOWN also when the accounting database,
        which it asks, does not answer): a job squeue lists is never cancelled as lost. False where there is no
        squeue (submitit's local executor)."""
        try:
            out = subprocess.run(["squeue", "-h", "-j", str(job.job_id), "-o", "%T"], capture_output=True, text=True,
                                 timeout=60, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
        return out.returncode == 0 and bool(out.stdout.strip())
    def _job(self, executor, job_id: str):
        import submitit

        job_class = submitit.LocalJob if executor.cluster == "local" else submitit.SlurmJob
        return job_class(folder=self.folder / "%j", job_id=job_id)

    def _wait(self, jobs: dict) -> dict[str, str]:
        """Wait for every job to end, or to be lost (state UNKNOWN for compare.slurm.lost_after minutes: then it is
        cancelled); {key: why} for the jobs lost."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        done_before = len(self.plan.runs) - len(jobs)
        lost_after = 60 * self.plan.settings.slurm.lost_after
        unknown_since: dict[str, float] = {}
        lost: dict[str, str] = {}
        with Progress(*columns, transient=False, disable=not self.show) as progress:
            task = progress.add_task("jobs", total=len(self.plan.runs), completed=done_before)
            try:
                while True:
                    now = time.monotonic()
                    for key, job in jobs.items():
                        if key in lost or job.done():
                            continue
                        if self._state(job).upper().startswith("UNKNOWN"):
                            since = unknown_since.setdefault(key, now)
                            if now - since >= lost_after and self._still_queued(job):
                                unknown_since[key] = now  # accounting (sacct) is down, the job is not lost
                            elif now - since >= lost_after:
                                lost[key] = (f"the scheduler lost it (state UNKNOWN for {(now - since) / 60:.1f} min, "
                                             "compare.slurm.lost_after); cancelled: run the same command again to "
                                             "resubmit it")
                                with contextlib.suppress(Exception):
                                    job.cancel(check=False)
                        else:
                            unknown_since.pop(key, None)
                    finished = sum(key in lost or job.done() for key, job in jobs.items())
                    progress.update(task, completed=done_before + finished,
                                    description=f"jobs · {len(jobs) - finished} queued or running")
                    if finished == len(jobs):
                        return lost
                    time.sleep(min(1.0, lost_after / 4))
            except KeyboardInterrupt:
                print(f"\nthe jobs stay with the scheduler; run the same command again to collect them ({self.record})",
                      file=sys.stderr)
                raise

    @staticmethod
    def _record(run: Run, job, lost: str | None = None) -> None:
        """How the run ended: the job's own end first (a failure now is never hidden by the summary of an earlier
        attempt), then the run's summary."""
        if lost:
            run.state, run.note = "failed", f"job {job.job_id}: {lost}"
            return
        try:
            code = job.result()
            why = None if code in ENDED else f"exit code {code}"
        except Exception as e:  # the job failed, timed out or was cancelled
            why = " ".join(str(e).split())[-200:] or type(e).__name__
        if why is None and settle(run, f"job {job.job_id} stopped before finishing (time limit?), with a checkpoint: "
                                       "run the same command again to resume it, or raise compare.slurm.time"):
            return
        run.state, run.note = "failed", f"job {job.job_id}: {why or 'ended without a summary'}"


def cancel_by_name(name: str) -> None:
    """Cancel every SLURM job named `name` (none is fine)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["scancel", f"--name={name}"], check=False, capture_output=True, timeout=60)

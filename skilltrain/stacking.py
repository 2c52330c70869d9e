"""Seeds trained together: runs that differ only in their seed, in one process, their networks stacked.

    results = fit_stacked([cfg_seed1, cfg_seed2, …])        (compare.stack_seeds=true sends an arm's seeds here)

Each seed is an ordinary `skilltrain.fit`, in a thread of its own: its own data stream, initial weights,
interventions and their state, learn steps, early stop, checkpoints, loggers and run directory, written as if it had
run alone. Only the network's arithmetic is shared. Once every seed's fit has started (`on_fit_start`: after
its model is built, moved to the device and, on a resume, restored), their weights are copied into one stacked
tensor per parameter, `[S, *shape]`, and each seed's parameters become views of its row. Then every training step:

    forward    each seed hands its batch over; the last to arrive computes every seed's outputs in one call,
               torch.func.functional_call under vmap over the stacked weights (a seed whose batch differs in
               shape is computed on its own row, in the same graph), and each seed gets its rows back
    loss       each seed builds its loss from its outputs: its own masks, statistics, intervention weights
    backward   each seed hands its loss over; one backward pass of all of them fills the stacked gradients, and
               each seed's parameters get their row as `.grad`
    step       each seed's own hooks (gradient edits, clipping) and optimizer, on its own rows, in place

Evaluation is each seed's own, unstacked (its parameters are its rows). A seed that ends (its skills learned, its
budget spent, a failure) leaves the stack; the others go on without it. The gradients are each seed's own: the
seeds share no parameter, so the backward pass of the sum of their losses gives every seed exactly its gradient.

What can be stacked (`stack_blockers` says why not, and the seeds then run one after another): one device (no
DDP), no `model.compile`, full precision (32 or 64 bit), no dropout, no batch norm (its running statistics are
buffers the forward pass changes: a model that changes any buffer in place fails with a line saying so), and
interventions that declare `stackable` (those that differentiate through the model's parameters inside a step, or
rebuild the model, do not).

Ctrl-C or SIGTERM ask every seed to stop at the end of its step, with its checkpoint (each ends "stopped", exit
130 or 143, as one run alone would); a second Ctrl-C stops them at once, at their next shared step (each exits
130 without a summary, keeping its last scheduled checkpoint). Either way every seed's thread has ended before
`fit_stacked` returns: nothing writes to a run directory after it.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Sequence

import lightning as L
import torch
from omegaconf import DictConfig

from skilltrain.errors import UserError, exit_status
from skilltrain.run import RunResult, fit

FULL_PRECISION = ("32-true", "32", "64-true", "64")


class Interrupted(Exception):
    """Raised in every stacked seed's thread at its next shared step after a second Ctrl-C: the seeds stop at once."""


def stack_blockers(cfg: DictConfig) -> list[str]:
    """Why the seeds of this run's config cannot be trained stacked (empty: they can). Builds the run's model and
    interventions (not its data) to ask them."""
    from skilltrain.build import build_run

    why = []
    trainer = cfg.trainer
    if str(trainer.strategy) not in ("auto", "single_device") or str(trainer.devices) not in ("auto", "1") \
            or int(trainer.num_nodes) != 1:
        why.append(f"trainer.strategy={trainer.strategy}, trainer.devices={trainer.devices}: one device only")
    if cfg.model.compile:
        why.append("model.compile=true")
    if trainer.precision is not None and str(trainer.precision) not in FULL_PRECISION:
        why.append(f"trainer.precision={trainer.precision}: full precision (32-true or 64-true) only")
    module, _, interventions = build_run(cfg, data=False)
    if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in module.modules()) or \
            float(cfg.model.get("dropout", 0.0) or 0.0) > 0:
        why.append("the model has dropout, which draws from one random stream shared by the seeds")
    norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)
    if any(isinstance(m, norms) and m.track_running_stats for m in module.modules()):
        why.append("the model has batch norm, whose running statistics its forward pass changes")
    for iv in interventions:
        if not iv.stackable:
            why.append(f"interventions.{iv.name} ({type(iv).__name__}) does not declare itself stackable")
    return why


class _Rendezvous:
    """Members meet at the same point of their step; the last to arrive (or the last one to leave) runs the meeting's
    work for all, and each gets its own part of the result. A member that left is not waited for."""

    def __init__(self, members: int):
        self.cond = threading.Condition()
        self.active = set(range(members))
        self.arrived: dict[int, tuple[str, object, Callable]] = {}
        self.results: dict[int, object] = {}
        self.error: BaseException | None = None
        self.round = 0
        self.aborted = False

    def meet(self, i: int, kind: str, payload, work: Callable[[dict], dict]):
        with self.cond:
            if i not in self.active:
                raise RuntimeError(f"stacked seed {i} met the others after leaving")
            if self.aborted:
                raise Interrupted("stopped at once (a second Ctrl-C)")
            self.arrived[i] = (kind, payload, work)
            mine = self.round
            self._run_if_complete()
            while self.round == mine and not self.aborted:
                self.cond.wait()
            if self.round == mine:
                self.arrived.pop(i, None)
                raise Interrupted("stopped at once (a second Ctrl-C)")
            if i not in self.results:
                raise RuntimeError("the stacked step failed in another seed's thread") from self.error
            return self.results.pop(i)

    def abort(self) -> None:
        """Every member waiting here, and every one that arrives later, raises Interrupted."""
        with self.cond:
            self.aborted = True
            self.cond.notify_all()

    def leave(self, i: int) -> None:
        with self.cond:
            if i in self.active:
                self.active.discard(i)
                self._run_if_complete()

    def _run_if_complete(self) -> None:
        if not self.arrived or not set(self.arrived) >= self.active:
            return
        kinds = {kind for kind, _, _ in self.arrived.values()}
        try:
            if len(kinds) != 1:
                raise RuntimeError(f"stacked seeds out of step: they met at {sorted(kinds)}")
            work = next(iter(self.arrived.values()))[2]
            self.results = work({i: payload for i, (_, payload, _) in self.arrived.items()})
            self.error = None
        except BaseException as e:  # every waiting seed fails with it
            self.results, self.error = {}, e
        self.arrived = {}
        self.round += 1
        self.cond.notify_all()


class SeedStack:
    """The shared part of stacked seeds: the stacked weights, and the forward and backward passes of all seeds.
    Members call `outputs` (from SkillModule.forward, while training) and `backward` (SkillModule.backward)."""

    def __init__(self, members: int):
        self.meeting = _Rendezvous(members)
        self.joined = [threading.Event() for _ in range(members)]  # a seed reached the stack (or ended before)
        self.rows: dict[int, int] = {}  # member → its row in the stacked tensors
        self.params: dict[str, torch.Tensor] = {}  # name → [S, *shape] leaf tensor
        self.buffers: dict[str, torch.Tensor] = {}
        self.base: torch.nn.Module | None = None  # the model's structure, on the meta device
        self.modules: dict[int, torch.nn.Module] = {}
        self.versions: dict[str, int] = {}  # each stacked buffer's version counter: it moves when changed in place
        self.stoppers: dict[int, L.Callback] = {}
        self.stop_signal: int | None = None  # Ctrl-C or SIGTERM asked every seed to stop at the end of its step
        self.finishing = threading.RLock()  # held by a seed from the end of its training until its fit returns

    # ---- joining and leaving ----------------------------------------------------------------------------
    def join(self, i: int, module) -> None:
        self.joined[i].set()
        self.meeting.meet(i, "join", module, self._stack)
        module.stack = _MemberHandle(self, i)

    def leave(self, i: int) -> None:
        self.joined[i].set()
        self.meeting.leave(i)

    def _stack(self, modules: dict) -> dict:
        """Copy every member's weights into one stacked tensor per parameter and make each member's parameters
        views of its row."""
        order = sorted(modules)
        models = [modules[i].model for i in order]
        names = [[(n, tuple(p.shape), p.dtype) for n, p in m.named_parameters()] for m in models]
        if any(n != names[0] for n in names):
            raise RuntimeError("stacked seeds must have the same model structure")
        self.rows = {i: r for r, i in enumerate(order)}
        self.modules = dict(modules)
        with torch.no_grad():
            for name, _ in models[0].named_parameters():
                params = [dict(m.named_parameters())[name] for m in models]
                stacked = torch.stack([p.detach() for p in params]).requires_grad_(params[0].requires_grad)
                self.params[name] = stacked
                for r, p in enumerate(params):
                    p.data = stacked.data[r]
            for name, _ in models[0].named_buffers():
                buffers = [dict(m.named_buffers())[name] for m in models]
                self.buffers[name] = torch.stack([b.detach() for b in buffers])
                self.versions[name] = self.buffers[name]._version
        self.base = copy.deepcopy(models[0]).to("meta")
        return dict.fromkeys(modules)

    # ---- the shared step --------------------------------------------------------------------------------
    def outputs(self, i: int, x: torch.Tensor, skill: torch.Tensor | None) -> torch.Tensor:
        return self.meeting.meet(i, "outputs", (x, skill), self._forward)

    def _call(self, params: dict, buffers: dict, x, skill):
        args = (x, skill) if getattr(self.base, "routes_by_skill", False) else (x,)
        return torch.func.functional_call(self.base, {**params, **buffers}, args)

    def _forward(self, batches: dict) -> dict:
        order = sorted(batches)
        rows = [self.rows[i] for i in order]
        xs = [batches[i][0] for i in order]
        skills = [batches[i][1] for i in order]
        with torch.enable_grad():
            same = all(x.shape == xs[0].shape for x in xs) and all(
                (s is None) == (skills[0] is None) and (s is None or s.shape == skills[0].shape) for s in skills)
            if same:
                if len(rows) == len(self.rows):
                    params, buffers = self.params, self.buffers
                else:
                    index = torch.tensor(rows, device=xs[0].device)
                    params = {k: v.index_select(0, index) for k, v in self.params.items()}
                    buffers = {k: v.index_select(0, index) for k, v in self.buffers.items()}
                has_skill = skills[0] is not None
                out = torch.vmap(self._call, in_dims=(0, 0, 0, 0 if has_skill else None))(
                    params, buffers, torch.stack(xs), torch.stack(skills) if has_skill else None)
                outputs = dict(zip(order, out.unbind(0)))
            else:
                outputs = {i: self._call({k: v[r] for k, v in self.params.items()},
                                         {k: v[r] for k, v in self.buffers.items()}, x, s)
                           for i, r, x, s in zip(order, rows, xs, skills)}
        changed = [k for k, v in self.buffers.items() if v._version != self.versions[k]]
        if changed:  # each seed's own copy would miss the change: refuse rather than train on stale buffers
            raise RuntimeError(f"the model changes its buffer '{changed[0]}' in its forward pass, so its seeds cannot "
                               "be trained stacked: run them with compare.stack_seeds=false")
        return outputs

    def backward(self, i: int, loss: torch.Tensor) -> None:
        self.meeting.meet(i, "backward", loss, self._backward)

    def _backward(self, losses: dict) -> dict:
        for p in self.params.values():
            p.grad = None
        torch.autograd.backward([losses[i] for i in sorted(losses)])
        for i in losses:
            r = self.rows[i]
            for name, p in self.modules[i].model.named_parameters():
                grad = self.params[name].grad
                p.grad = None if grad is None else grad[r]
        return dict.fromkeys(losses)


class _MemberHandle:
    """What a member's SkillModule holds (`module.stack`): the stack and its own place in it."""

    def __init__(self, stack: SeedStack, i: int):
        self.stack, self.i = stack, i

    def outputs(self, x, skill):
        return self.stack.outputs(self.i, x, skill)

    def backward(self, loss):
        self.stack.backward(self.i, loss)


class _Member(L.Callback):
    """Joins a seed's fit to the stack once it is ready to train, and takes it out when its training ends."""

    def __init__(self, stack: SeedStack, i: int):
        self.stack, self.i = stack, i

    def on_fit_start(self, trainer, pl_module) -> None:
        from skilltrain.callbacks.run import StopOnSigint

        stopper = next((cb for cb in trainer.callbacks if isinstance(cb, StopOnSigint)), None)
        self.stack.stoppers[self.i] = stopper
        if stopper is not None and self.stack.stop_signal is not None:  # asked before this seed had started
            stopper.request(self.stack.stop_signal)
        self.stack.join(self.i, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._leave(pl_module)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._leave(pl_module)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._leave(pl_module)

    def _leave(self, pl_module) -> None:
        """Out of the stack; then what the fit does after training (its summary, plots: matplotlib is not
        thread-safe) waits for the seeds that finished before it (`fit_stacked` lets go once the fit returned)."""
        self.stack.leave(self.i)
        if pl_module.stack is not None:
            pl_module.stack = None
            with torch.no_grad():  # its weights become its own again (not rows of the stacked tensors)
                for p in pl_module.model.parameters():
                    p.data = p.data.clone()
                    p.grad = None if p.grad is None else p.grad.clone()
        self.stack.finishing.acquire()


@contextlib.contextmanager
def _stop_all_on_signal(stack: SeedStack):
    """Ctrl-C or SIGTERM (which reach the main thread only) ask every seed to stop at the end of its step, with its
    checkpoint, as one run's StopOnSigint does; a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        stack.stop_signal = signum  # (a seed that starts later reads it: set before the seeds started are asked)
        for stopper in list(stack.stoppers.values()):
            if stopper is not None:
                stopper.request(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print(f"\nstopping the stacked seeds at the end of a step ({signal.Signals(signum).name}) …", file=sys.stderr,
              flush=True)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def fit_stacked(cfgs: Sequence[DictConfig], callbacks: Sequence[L.Callback] = (),
                show: bool = False) -> list[RunResult | BaseException]:
    """Train the runs `cfgs` (one arm's seeds: configs that differ only in their seed) stacked, each as its own
    `fit`: per run, its RunResult, or the exception its fit raised (a UserError for a bad input). The seeds start one
    after another (each builds its model, data and Trainer alone), then train together."""
    stack = SeedStack(len(cfgs))
    ended = [threading.Event() for _ in cfgs]  # (the main thread waits on these: Python 3.11's Thread.join, when a
    # Ctrl-C interrupts it, can mark a thread that still runs as stopped)
    results: list[RunResult | BaseException] = [Interrupted("not started: stopped at once (a second Ctrl-C)")] * len(cfgs)

    def one(i: int) -> None:
        try:
            results[i] = fit(cfgs[i], callbacks=[*callbacks, _Member(stack, i)], show=show)
        except BaseException as e:  # reported per run; the other seeds go on
            results[i] = e
        finally:
            stack.leave(i)
            with contextlib.suppress(RuntimeError):  # (this thread holds it as many times as it took it)
                while True:
                    stack.finishing.release()
            ended[i].set()

    threads = [threading.Thread(target=one, args=(i,), name=f"seed-{cfgs[i].seed}") for i in range(len(cfgs))]
    filters, num_threads = list(warnings.filters), torch.get_num_threads()  # (each seed sets and restores them: racy)
    try:
        with _stop_all_on_signal(stack):
            for i, thread in enumerate(threads):
                thread.start()
                stack.joined[i].wait()  # built and ready (or ended): only then does the next seed start
            for done in ended:
                while not done.wait(0.2):  # (a timed wait lets the main thread take signals)
                    pass
    except KeyboardInterrupt:  # a second Ctrl-C: every seed stops at its next shared step, and ends before we return
        stack.meeting.abort()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # (a third one must not cut this wait short)
        try:
            for i, thread in enumerate(threads):
                if thread.ident is not None:  # started (also one whose start a Ctrl-C interrupted)
                    ended[i].wait()
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        for thread in threads:
            if thread.ident is not None:  # (started)
                thread.join()
        warnings.filters[:] = filters
        torch.set_num_threads(num_threads)
    return results


def stacked_fit_command(arg_lists: Sequence[Sequence[str]]) -> list[int]:
    """`fit` for each of `arg_lists` (one arm's seeds), trained stacked when they can be (else one after another,
    with a note saying why): each run's exit code, as `python -m skilltrain fit <args>` would end."""
    from skilltrain.config import load_config
    from skilltrain.errors import command_exit
    from skilltrain.run import fit_command

    cfgs, codes = {}, {}
    for j, args in enumerate(arg_lists):
        codes[j] = command_exit("fit", lambda j=j, args=args: cfgs.__setitem__(j, load_config(list(args))) or 0)
    loaded = sorted(cfgs)
    why = _blockers(cfgs[loaded[0]]) if len(loaded) > 1 else []
    if why:
        print(f"note: the seeds run one after another, not stacked: {'; '.join(why)}", file=sys.stderr, flush=True)
    if why or len(loaded) < 2:
        for j in loaded:
            try:
                codes[j] = command_exit("fit", lambda j=j: fit_command(list(arg_lists[j])))
            except SystemExit as e:  # (Lightning exits after a second Ctrl-C): the seeds before keep their codes
                codes[j] = exit_status(e)
        return [codes[j] for j in range(len(arg_lists))]
    for j, result in zip(loaded, fit_stacked([cfgs[j] for j in loaded])):
        seed = f"seed {cfgs[j].seed}"  # (the seeds' output shares one stream: each line says whose it is)
        if isinstance(result, UserError):
            print(f"error: {seed}: {result}", file=sys.stderr)
            codes[j] = 2
        elif isinstance(result, Interrupted):
            print(f"{seed}: {result}; its last scheduled checkpoint is kept", file=sys.stderr)
            codes[j] = 130
        elif isinstance(result, BaseException):
            traceback.print_exception(result)
            print(f"error: {seed}: {type(result).__name__}: {result}"[:300], file=sys.stderr)
            codes[j] = 1
        else:
            if result.message:
                print(f"{'error' if result.status == 'diverged' else 'note'}: {seed}: {result.message}", file=sys.stderr)
            if result.status == "stopped":
                print(f"{seed}: resume with: python -m skilltrain fit ckpt_path=last out_dir={result.run_dir}",
                      file=sys.stderr)
            print(f"run_dir: {result.run_dir}", flush=True)
            codes[j] = result.exit_code
    return [codes[j] for j in range(len(arg_lists))]


def _blockers(cfg: DictConfig) -> list[str]:
    """stack_blockers, or why they could not be asked (a model that fails to build: each seed's fit says so)."""
    try:
        return stack_blockers(cfg)
    except Exception as e:
        return [f"could not check whether they can be ({type(e).__name__}: {e})"[:300]]

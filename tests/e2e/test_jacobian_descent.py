"""jacobian_descent in real fits on domino_2task: every aggregator trains and logs the weights it gave each skill, and
the gradient the optimizer receives is torchjd's aggregate of the Jacobian of the batch's per-skill mean losses (with
params=shared: of its shared columns, the owned entries getting the plain sum). (Exact resume and two DDP ranks:
tests/e2e/test_every_intervention.py, with upgrad, upgrad with params=shared and the stateful nash_mtl.)"""

from __future__ import annotations

import csv
import math

import lightning as L
import pytest
import torch
from helpers import SHORT_RUN, fit_quietly, load

pytest.importorskip("torchjd")

from skilltrain.callbacks.jacobian_descent import AGGREGATORS  # noqa: E402

SKILLS = ("x1x2", "x3x4")


@pytest.mark.slow
@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_a_fit_with_each_aggregator_completes_and_logs_the_weights_it_gave_each_skill(aggregator, tmp_path):
    summary = fit_quietly(*SHORT_RUN, "trainer.max_steps=10", f"interventions.jacobian_descent.aggregator={aggregator}",
                          out_dir=tmp_path / "run")
    assert summary["status"] == "completed" and summary["interventions"] == ["jacobian_descent"]
    keys = [f"intervention/jacobian_descent/weight/{s}" for s in SKILLS]
    with open(tmp_path / "run/metrics.csv") as f:
        logged = [[float(row[k]) for k in keys] for row in csv.DictReader(f) if row.get(keys[0])]
    assert len(logged) == 2  # steps 0 and 5 (log_every_n_steps=5)
    assert all(math.isfinite(w) and w >= 0 for step in logged for w in step)  # every one of them weighs skills ≥ 0 here
    assert all(sum(step) > 0 for step in logged)


class Capture(L.Callback):
    """At one step: the batch, the parameters it was computed with, and the gradient the optimizer is given."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            self.batch = {k: v.clone() for k, v in batch.items()}
            self.params = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.global_step == self.step:
            self.grad = torch.cat([p.grad.flatten() for p in pl_module.parameters()])


@pytest.mark.slow
def test_the_optimizer_receives_upgrads_aggregate_of_the_per_skill_jacobian(tmp_path):
    from torchjd.aggregation import UPGrad

    from skilltrain.module import SkillModule
    from skilltrain.run import fit

    cfg = load(*SHORT_RUN, "trainer.max_steps=4", "interventions.jacobian_descent={}", f"out_dir={tmp_path}/run",
               "trainer.enable_progress_bar=false")
    capture = Capture(step=3)
    fit(cfg, callbacks=[capture], show=False)
    module = SkillModule(cfg)  # by hand: the same network, the same parameters, the same batch
    module.load_state_dict(capture.params)
    losses, _, mask, _ = module.loss_matrix(capture.batch)
    assert mask is not None and 0 < mask[:, 1].float().mean() < 1  # the rare skill is on some rows only
    means = torch.where(mask, losses, 0).sum(0) / mask.sum(0)
    jacobian = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(m, list(module.parameters()),
                                                                                 retain_graph=True)]) for m in means])
    expected = UPGrad()(jacobian)
    torch.testing.assert_close(capture.grad, expected, rtol=1e-6, atol=1e-10)
    assert not torch.allclose(capture.grad, (mask.sum(0) / len(mask)).to(jacobian) @ jacobian)  # not the baseline's gradient


@pytest.mark.slow
def test_with_params_shared_the_optimizer_receives_the_plain_sum_on_owned_entries_and_upgrad_on_shared_ones(tmp_path):
    """domino_2task's MLP in the outputs form: each skill owns its output row; the hidden layer is shared."""
    from torchjd.aggregation import UPGrad

    from skilltrain.models import skill_owners
    from skilltrain.module import SkillModule
    from skilltrain.run import fit

    cfg = load(*SHORT_RUN, "trainer.max_steps=4", "interventions.jacobian_descent.params=shared",
               f"out_dir={tmp_path}/run", "trainer.enable_progress_bar=false")
    capture = Capture(step=3)
    fit(cfg, callbacks=[capture], show=False)
    module = SkillModule(cfg)
    module.load_state_dict(capture.params)
    losses, _, mask, _ = module.loss_matrix(capture.batch)
    means = torch.where(mask, losses, 0).sum(0) / mask.sum(0)
    params = list(module.parameters())
    jacobian = torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(m, params, retain_graph=True)])
                            for m in means])
    owners = skill_owners(module.model)
    shared = torch.cat([owners[n].flatten() < 0 if n in owners else torch.ones(p.numel(), dtype=torch.bool)
                        for n, p in module.model.named_parameters()])
    assert 0 < shared.sum() < len(shared)
    share = (mask.sum(0) / len(mask)).to(jacobian)
    torch.testing.assert_close(capture.grad[~shared], share @ jacobian[:, ~shared], rtol=1e-6, atol=1e-10)
    torch.testing.assert_close(capture.grad[shared], UPGrad()(jacobian[:, shared]), rtol=1e-6, atol=1e-10)

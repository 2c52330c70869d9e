"""hidden_task_parity: the task is in the inputs only as an XOR of control bits, so clustering inputs cannot find it."""

from __future__ import annotations

import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from skilltrain.data import build_task
from skilltrain.data.parity import HiddenTaskParityConfig


def test_the_skill_is_the_xor_of_control_pairs_and_the_label_its_parity():
    task = build_task(HiddenTaskParityConfig(n_tasks=4, n_bits=8, k=3), seed=3)
    skill = torch.arange(4).repeat(50)
    rows = task.sample(200, torch.Generator().manual_seed(0), skill)
    control, bits = rows["x"][:, :4].long(), rows["x"][:, 4:]
    index = (control[:, 0] ^ control[:, 1]) + 2 * (control[:, 2] ^ control[:, 3])
    assert torch.equal(index, skill)
    parity = bits.gather(1, task.subsets[skill]).sum(1).long() % 2
    assert torch.equal(parity, rows["y"])
    assert task.n_inputs == 12 and task.skill_in_inputs


def test_k_means_on_the_inputs_finds_nothing():
    task = build_task(HiddenTaskParityConfig(n_tasks=4), seed=0)
    skill = torch.arange(4).repeat(500)
    rows = task.sample(len(skill), torch.Generator().manual_seed(1), skill)
    found = KMeans(n_clusters=4, n_init=4, random_state=0).fit_predict(rows["x"].double().numpy())
    assert abs(adjusted_rand_score(skill.numpy(), found)) < 0.02
    for k in range(4):  # every control bit is a fair coin in every task
        assert (rows["x"][skill == k, :4].mean(0) - 0.5).abs().max() < 0.1

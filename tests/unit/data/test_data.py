"""Tasks and streams: exact labels, frequencies, determinism, exact resume of the stream."""

from __future__ import annotations

import itertools

import pytest
import torch
from helpers import load
from omegaconf import OmegaConf

from skilltrain.data import build_task
from skilltrain.data.datamodule import SkillDataModule
from skilltrain.data.stream import TrainStream, generator, make_pool_and_eval


def task_of(*args, seed=0, dtype=torch.float64):
    cfg = load(*args)
    return build_task(OmegaConf.to_object(cfg.data), seed, dtype), cfg


def xor(row, bits):
    return sum(int(row[b]) for b in bits) % 2


def test_compositional_labels_are_exact_parities():
    task, _ = task_of("recipe=compositional")
    assert task.skills == ["x3x4", "x1x2", "x1x2x3x4"]
    batch = task.sample(500, generator(1))
    for row, y in zip(batch["x"].tolist(), batch["y"].tolist()):
        assert y == [xor(row, [2, 3]), xor(row, [0, 1]), xor(row, [0, 1, 2, 3])]
        assert set(row) <= {0.0, 1.0}


def test_control_task_is_an_independent_four_bit_parity():
    task, _ = task_of("recipe=compositional_control")
    assert task.skills == ["x3x4", "x1x2", "x5x6x7x8"]
    batch = task.sample(300, generator(2))
    for row, y in zip(batch["x"].tolist(), batch["y"].tolist()):
        assert y[2] == xor(row, [4, 5, 6, 7])


def test_masked_parity_uses_disjoint_bit_pairs_per_skill():
    task, _ = task_of("recipe=domino_2task", "data.frequencies=[1.0,0.5,0.25]", "data.k=3")
    assert task.skills == ["x1x2x3", "x4x5x6", "x7x8x9"]
    batch = task.sample(300, generator(3))
    for row, y in zip(batch["x"].tolist(), batch["y"].tolist()):
        assert y == [xor(row, [0, 1, 2]), xor(row, [3, 4, 5]), xor(row, [6, 7, 8])]


def test_multitask_parity_label_is_the_active_tasks_subset_parity():
    task, cfg = task_of("recipe=multitask_parity", "data.n_tasks=6", "data.k=3", seed=5)
    assert task.skills == [f"task{i}" for i in range(6)]
    skill = torch.arange(6).repeat(50)
    batch = task.sample(len(skill), generator(4), skill)
    n_tasks, subsets = 6, task.subsets.tolist()
    assert all(len(set(s)) == 3 for s in subsets) and len({tuple(s) for s in subsets}) > 1
    for row, s, y in zip(batch["x"].tolist(), skill.tolist(), batch["y"].tolist()):
        assert row[:n_tasks] == [1.0 if i == s else 0.0 for i in range(n_tasks)]
        assert y == xor(row[n_tasks:], subsets[s])
    same, _ = task_of("recipe=multitask_parity", "data.n_tasks=6", seed=5)
    other, _ = task_of("recipe=multitask_parity", "data.n_tasks=6", seed=6)
    assert torch.equal(same.subsets, task.subsets) and not torch.equal(other.subsets, task.subsets)


def test_zipf_frequencies_and_sampling_rates():
    task, _ = task_of("recipe=multitask_parity", "data.n_tasks=5", "data.alpha=1.0")
    expected = torch.tensor([1 / i for i in range(1, 6)], dtype=torch.float64)
    expected /= expected.sum()
    assert torch.allclose(torch.tensor(task.frequencies, dtype=torch.float64), expected)
    stream = TrainStream(task, None, 4096, seed=0)
    counts = torch.zeros(5)
    n = 0
    for i in range(25):
        skill = stream.batch(i)["skill"]
        counts += torch.bincount(skill, minlength=5)
        n += len(skill)
    sigma = (expected * (1 - expected) / n).sqrt()
    assert ((counts / n - expected).abs() < 4 * sigma).all(), (counts / n, expected)


def test_loss_mask_rates_match_the_frequencies():
    task, _ = task_of("recipe=domino_2task", "data.frequencies=[1.0,0.1]")
    pool, _ = make_pool_and_eval(task, 2000, 10, data_seed=0)
    stream = TrainStream(task, pool, None, seed=0)
    masks = torch.stack([stream.batch(i)["loss_mask"] for i in range(20)])  # [20, 2000, 2]
    assert masks[..., 0].all()
    rate = masks[..., 1].double().mean().item()
    sigma = (0.1 * 0.9 / masks[..., 1].numel()) ** 0.5
    assert abs(rate - 0.1) < 4 * sigma
    assert not torch.equal(masks[0, :, 1], masks[1, :, 1])  # a fresh mask every step
    no_mask, _ = task_of("recipe=compositional")
    assert "loss_mask" not in TrainStream(no_mask, make_pool_and_eval(no_mask, 100, 10, 0)[0], None, 0).batch(0)


def test_same_seed_same_stream_and_rank_and_seed_change_it():
    task, _ = task_of("recipe=multitask_parity", "data.n_tasks=4")
    a, b = TrainStream(task, None, 64, seed=3), TrainStream(task, None, 64, seed=3)
    for i in (0, 1, 17):
        assert all(torch.equal(a.batch(i)[k], b.batch(i)[k]) for k in ("x", "y", "skill"))
    assert not torch.equal(a.batch(0)["x"], a.batch(1)["x"])
    assert not torch.equal(a.batch(0)["x"], TrainStream(task, None, 64, seed=4).batch(0)["x"])
    assert not torch.equal(a.batch(0)["x"], TrainStream(task, None, 64, seed=3, rank=1, world_size=2).batch(0)["x"])


def test_minibatches_walk_the_pool_once_per_epoch():
    task, _ = task_of("recipe=compositional")
    pool, _ = make_pool_and_eval(task, 100, 10, data_seed=0)
    pool["id"] = torch.arange(100)
    stream = TrainStream(task, pool, 30, seed=0)
    ids = torch.cat([stream.batch(i)["id"] for i in range(10)])  # 300 samples = 3 epochs exactly
    for epoch in range(3):
        assert sorted(ids[100 * epoch : 100 * (epoch + 1)].tolist()) == list(range(100))


def test_full_batch_under_ddp_shards_the_pool_across_ranks():
    task, _ = task_of("recipe=compositional")
    pool, _ = make_pool_and_eval(task, 101, 10, data_seed=0)
    pool["id"] = torch.arange(101)
    shards = [TrainStream(task, pool, None, 0, rank=r, world_size=2).batch(0)["id"] for r in range(2)]
    assert sorted(torch.cat(shards).tolist()) == list(range(101))
    assert not set(shards[0].tolist()) & set(shards[1].tolist())


def test_eval_sets_are_held_out():
    task, _ = task_of("recipe=compositional")
    pool, eval_set = make_pool_and_eval(task, 3000, 500, data_seed=0)
    train_rows = {tuple(r) for r in pool["x"].int().tolist()}
    assert len(eval_set["x"]) == 500
    assert sum(tuple(r) in train_rows for r in eval_set["x"].int().tolist()) == 0  # 2^32 inputs: no repeats
    mtp, _ = task_of("recipe=multitask_parity", "data.n_tasks=4")
    _, eval_set = make_pool_and_eval(mtp, None, 25, data_seed=0)
    assert torch.bincount(eval_set["skill"]).tolist() == [25, 25, 25, 25]  # per skill, whatever its frequency


@pytest.mark.parametrize("recipe", ["domino_2task", "multitask_parity"])
def test_stream_state_dict_round_trip_continues_the_same_batches(recipe):
    task, cfg = task_of(f"recipe={recipe}", dtype=torch.float32)

    def datamodule():
        dm = SkillDataModule(task, cfg.data.n_samples, cfg.data.batch_size, 20, seed=1, data_seed=1)
        dm.setup("fit")
        return dm

    first = datamodule()
    loader = iter(first.train_dataloader())
    for _ in range(5):
        first.on_after_batch_transfer(next(loader), 0)
    state = first.state_dict()
    assert state["consumed"] == 5 and len(state["rates"]) == task.n_skills
    expected = [first.on_after_batch_transfer(next(loader), 0) for _ in range(3)]

    resumed = datamodule()
    resumed.load_state_dict(state)
    got = [resumed.on_after_batch_transfer(i, 0) for i in itertools.islice(iter(resumed.train_dataloader()), 3)]
    for a, b in zip(expected, got):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

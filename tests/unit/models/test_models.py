"""Models: masked (modular) layers, routing, the transformer's capacity, input checks."""

from __future__ import annotations

import pytest
import torch
from helpers import load
from omegaconf import OmegaConf

from skilltrain.cli import main
from skilltrain.config import to_container
from skilltrain.data import build_task
from skilltrain.models import build_model
from skilltrain.models.modular import MaskedLinear, block_mask
from skilltrain.module import SkillModule


def built(*args):
    cfg = load(*args)
    task = build_task(OmegaConf.to_object(cfg.data), 0, torch.float64)
    return build_model(OmegaConf.to_object(cfg.model), task).double(), task


def test_masked_linear_has_exactly_zero_gradient_off_its_blocks():
    mask = block_mask([2, 3], [4, 1])  # [5 out, 5 in]
    layer = MaskedLinear(mask).double()
    assert torch.equal(layer.weight * (1 - layer.mask), torch.zeros(5, 5, dtype=torch.float64))
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        layer(torch.randn(7, 5, dtype=torch.float64)).pow(2).sum().backward()
        assert torch.equal(layer.weight.grad * (1 - layer.mask), torch.zeros(5, 5, dtype=torch.float64))
        assert (layer.weight.grad * layer.mask).abs().sum() > 0
        opt.step()
    assert torch.equal(layer.weight * (1 - layer.mask), torch.zeros(5, 5, dtype=torch.float64))


def test_modular_mlp_skill_outputs_read_only_their_module():
    model, task = built("recipe=compositional", "model.name=modular_mlp", "model.widths=[30,30]")
    x = torch.randint(0, 2, (16, 32)).double()
    before = model(x)
    with torch.no_grad():  # perturb module 0's hidden units (first 10 of each hidden layer)
        model.hidden[0].weight[:10] += 1.0
        model.hidden[1].weight[:10, :10] += 1.0
    after = model(x)
    assert not torch.allclose(before[:, 0], after[:, 0])  # skill 0 (x3x4) changed
    assert torch.equal(before[:, 1:], after[:, 1:])  # skills 1 and 2 did not


def test_modular_mlp_split_inputs_gives_independent_subnetworks():
    model, task = built("recipe=domino_2task", "model.name=modular_mlp", "model.widths=[10]", "model.split_inputs=true",
                        "data.n_bits=4")
    g = torch.Generator().manual_seed(0)
    # inputs spread both ways around 0: each ReLU unit is active for some of them, whatever the initial weights
    # (at x = 0 alone, every unit of a block is dead for some initialisations, and the test would depend on one)
    x = torch.randn(256, 4, generator=g, dtype=torch.float64)
    base = model(x)
    x2 = x.clone()
    x2[:, 3] = torch.randn(256, generator=g, dtype=torch.float64)  # an input of skill 1's block
    out = model(x2)
    assert torch.equal(base[:, 0], out[:, 0]) and not torch.equal(base[:, 1], out[:, 1])


def test_control_form_routes_each_sample_through_its_skills_module():
    m = SkillModule(to_container(load("recipe=multitask_parity", "data.n_tasks=3", "model.name=modular_mlp",
                                      "model.widths=[12]", "model.head=shared")))
    x = m.task.sample(6, torch.Generator().manual_seed(0), torch.tensor([0, 1, 2, 0, 1, 2]))["x"]
    skill = torch.tensor([0, 1, 2, 0, 1, 2])
    before = m(x, skill)
    with torch.no_grad():
        m.model.hidden[0].weight[4:8] += 1.0  # module of skill 1
    after = m(x, skill)
    changed = (before != after).any(dim=1)
    assert changed.tolist() == [False, True, False, False, True, False]


def test_per_skill_head_selects_each_samples_outputs():
    m = SkillModule(to_container(load("recipe=multitask_parity", "data.n_tasks=3", "model.head=per_skill")))
    assert m.model.layers[-1].out_features == 3 * 2
    batch = m.task.sample(5, torch.Generator().manual_seed(1), torch.tensor([0, 2, 1, 2, 0]))
    losses, _, _, _ = m.loss_matrix(batch)
    logits = m(batch["x"]).view(5, 3, 2)
    picked = logits[torch.arange(5), batch["skill"]]
    expected = torch.nn.functional.cross_entropy(picked, batch["y"], reduction="none")
    assert torch.allclose(losses[torch.arange(5), batch["skill"]], expected)


@pytest.mark.slow  # computes for long; trains no run
def test_transformer_overfits_a_tiny_task():
    torch.manual_seed(0)
    model, task = built("recipe=multitask_parity", "data.token_form=true", "data.n_tasks=2", "data.n_bits=6",
                        "model.name=transformer", "model.width=32", "model.heads=4", "model.depth=2")
    assert task.vocab_size == 4 and task.seq_len == 7
    codes = torch.randperm(2 * 2**6)[:32]  # 32 distinct sequences [task token, 6 bits]
    x = torch.cat([2 + codes[:, None] // 64, (codes[:, None] % 64 >> torch.arange(6)) & 1], dim=1)
    y = torch.randint(0, 2, (32,))  # random labels: only memorising fits them
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    assert (model(x).argmax(-1) == y).all(), loss.item()


@pytest.mark.parametrize("model", ["transformer", "embedding_mlp", "hierarchical_cnn"])
def test_token_models_refuse_vector_inputs(model, capsys):
    assert main(["fit", "recipe=compositional", f"model.name={model}", "trainer.max_steps=1"]) == 2
    assert "needs token inputs" in capsys.readouterr().err


def test_switching_the_model_on_the_command_line_drops_the_recipes_keys_for_the_old_one(capsys):
    cfg = load("recipe=compositional", "model.name=transformer", "data.token_form=true")
    assert cfg.model.name == "transformer" and "widths" not in cfg.model and cfg.model.dtype == "float64"
    assert main(["print-config", "model.name=transformer", "model.widths=[3]"]) == 2  # given with it: an error
    assert "model.widths: unknown key" in capsys.readouterr().err


def test_hierarchical_cnn_is_a_convolution_with_kernel_equal_to_stride():
    model, task = built("recipe=rhm_cnn", "model.width=6")
    assert len(model.layers) == 3 and task.seq_len == 8  # one layer per level: 2^3 leaves
    x = task.sample(5, torch.Generator().manual_seed(0), torch.tensor([0, 1, 2, 3, 0]))["x"]
    h = torch.nn.functional.one_hot(x, task.vocab_size).double().transpose(1, 2)  # [B, v, T], Conv1d's layout
    for layer in model.layers:
        linear = layer.linear  # weight [out, patch · in], read patch-major: the kernel [out, in, patch]
        kernel = linear.weight.view(linear.out_features, 2, -1).permute(0, 2, 1)
        h = torch.relu(torch.nn.functional.conv1d(h, kernel, linear.bias, stride=2))
    assert torch.allclose(model(x), model.head(h.squeeze(-1)))


def test_hierarchical_cnn_refuses_an_input_that_is_not_a_power_of_its_patch(capsys):
    assert main(["fit", "recipe=rhm_cnn", "model.patch=3", "trainer.max_steps=1"]) == 2
    assert "model.patch: hierarchical_cnn merges 3 tokens per layer" in capsys.readouterr().err

"""``stage_loss`` with one generator per example: splitting a batch does not change what each example draws."""
import torch

from openimagen.pipeline import Stage
from openimagen.train.overfit import stage_configs
from openimagen.train.step import stage_loss


def test_split_batch_draws_the_same_randomness():
    torch.manual_seed(0)
    for cfg in stage_configs():                                       # a base and an SR stage
        stage = Stage(cfg)
        for p in stage.parameters():
            p.data += 0.05 * torch.randn_like(p)
        x = torch.rand(4, 3, cfg.resolution, cfg.resolution) * 2 - 1
        text, mask = torch.randn(4, 8, cfg.unet.text_dim), torch.ones(4, 8, dtype=torch.bool)

        def gens(idx):
            return [torch.Generator().manual_seed(100 + i) for i in idx]

        whole = stage_loss(stage, x, text, mask, gens(range(4)), text_drop_prob=0.5)
        halves = torch.cat([stage_loss(stage, x[:2], text[:2], mask[:2], gens(range(2)), text_drop_prob=0.5),
                            stage_loss(stage, x[2:], text[2:], mask[2:], gens(range(2, 4)), text_drop_prob=0.5)])
        assert torch.allclose(whole, halves, rtol=1e-5, atol=1e-6)
        other = stage_loss(stage, x, text, mask, gens(range(10, 14)), text_drop_prob=0.5)
        assert not torch.allclose(whole, other)                       # the generators do matter

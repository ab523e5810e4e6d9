"""``evaluating``: eval mode inside the block, the module's own mode back afterwards."""

from __future__ import annotations

import pytest
from torch import nn

from braindino.eval_mode import evaluating


@pytest.mark.parametrize("training", [True, False])
def test_mode_is_restored_after_the_block_and_after_an_error(training):
    module = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    module.train(training)
    with evaluating(module):
        assert not module.training and not module[1].training
    assert module.training is training and module[1].training is training
    with pytest.raises(RuntimeError), evaluating(module):
        raise RuntimeError("inside")
    assert module.training is training and module[1].training is training
